// An independent NIfTI-1 / NIfTI-2 / Analyze 7.5 writer for tests: it puts
// every header field at its spec offset byte by byte (nifti1.h, nifti2.h),
// in either byte order, and never uses libmedimg's own header code. Also a
// temporary-directory helper and small file/gzip utilities built on zlib.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nifti/header.hpp"

namespace medimg::test {

using nifti::ByteOrder;
using nifti::Version;

struct NiftiSpec {
    Version version = Version::Nifti1;
    ByteOrder byte_order = ByteOrder::Little;
    bool pair = false;                         // .hdr/.img: magic ni1/ni2 (none for Analyze)
    std::vector<std::int64_t> dims = {4, 3, 2};  // dim[1..]; dim[0] = dims.size()
    int datatype = 2;                          // NIFTI_TYPE_* code
    std::optional<int> bitpix;                 // default: from the datatype
    std::array<double, 8> pixdim = {1, 1, 1, 1, 1, 1, 1, 1};
    double scl_slope = 0, scl_inter = 0;
    int qform_code = 0, sform_code = 0;
    std::array<double, 3> quatern = {0, 0, 0};  // b, c, d
    std::array<double, 3> qoffset = {0, 0, 0};
    std::array<std::array<double, 4>, 3> srow = {{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}};
    int xyzt_units = 2;                        // mm
    int intent_code = 0;
    std::string descrip;                       // up to 80 bytes, not NUL-terminated when 80
    // Bytes between the header and vox_offset in a single file (the 4-byte
    // extender and any extensions). Default: 4 zero bytes (no extensions).
    std::optional<std::vector<std::uint8_t>> extension;
    // vox_offset; default header size + extension size (single), 0 (pair).
    std::optional<double> vox_offset;
    // Voxel bytes exactly as stored in the file (already in byte order).
    // Default: zeros, voxel count x bytes per voxel.
    std::optional<std::vector<std::uint8_t>> data;
    // Raw overrides to build broken headers.
    std::optional<std::int64_t> dim0;
    std::optional<std::int32_t> sizeof_hdr;
    std::optional<std::string> magic;          // written verbatim (4 or 8 bytes, NUL padded)
};

// Bytes per voxel of a datatype code (0 for binary/unknown), from nifti1.h.
int datatype_bytes(int code);

// Header offsets used by tests that poke fields directly.
struct Offsets {
    std::size_t dim, datatype, bitpix, pixdim, vox_offset, scl_slope, scl_inter, qform_code,
        sform_code, quatern, qoffset, srow, descrip, magic, xyzt_units;
    std::size_t dim_size, float_size, code_size;   // element sizes of dim[], float fields, *_code
};
Offsets offsets_for(Version v);

// The header bytes alone (348 or 540).
std::vector<std::uint8_t> build_header(const NiftiSpec& spec);
// Header + extension + data (a single file); for pairs, see write_pair.
std::vector<std::uint8_t> build_nifti(const NiftiSpec& spec);
// The .img bytes of a pair: vox_offset bytes of zeros, then the data.
std::vector<std::uint8_t> build_img(const NiftiSpec& spec);

// gzip via zlib's deflate (one member, level 6 by default).
std::vector<std::uint8_t> gzip_bytes(const std::vector<std::uint8_t>& plain, int level = 6);
// Inflates a file with zlib's gzread (an independent reader); throws on error.
std::vector<std::uint8_t> gunzip_file(const std::filesystem::path& path);

void write_file(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> read_file(const std::filesystem::path& path);
// build_nifti to `path`, gzip-compressed (through zlib gzwrite) when `gzip`.
void write_nifti(const std::filesystem::path& path, const NiftiSpec& spec, bool gzip = false);
// A pair: header to hdr_path, data to img_path, each optionally gzipped.
void write_pair(const std::filesystem::path& hdr_path, const std::filesystem::path& img_path,
                const NiftiSpec& spec, bool gzip_hdr = false, bool gzip_img = false);

// Stores v at bytes[off] in `order`.
template <typename T>
void put(std::vector<std::uint8_t>& bytes, std::size_t off, T v, ByteOrder order) {
    std::uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    const bool host_little = [] { const std::uint16_t x = 1; std::uint8_t c; std::memcpy(&c, &x, 1); return c == 1; }();
    if (host_little != (order == ByteOrder::Little))
        for (std::size_t i = 0; i < sizeof(T) / 2; ++i) std::swap(b[i], b[sizeof(T) - 1 - i]);
    std::memcpy(bytes.data() + off, b, sizeof(T));
}

// Encodes values in `order` (voxel data for a spec).
template <typename T>
std::vector<std::uint8_t> encode(const std::vector<T>& values, ByteOrder order) {
    std::vector<std::uint8_t> out(values.size() * sizeof(T));
    for (std::size_t i = 0; i < values.size(); ++i) put<T>(out, i * sizeof(T), values[i], order);
    return out;
}

// A fresh directory under the system temp dir, removed with its contents.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const noexcept { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
    // Names of the entries in the directory (hidden ones included), sorted.
    std::vector<std::string> entries() const;

private:
    std::filesystem::path path_;
};

}  // namespace medimg::test
