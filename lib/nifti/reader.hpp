// Opens a NIfTI/Analyze image (.nii, .nii.gz, .hdr/.img pairs, gzip or not,
// container sniffed from the bytes) and streams its voxel bytes in bounded
// memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "nifti/header.hpp"

namespace medimg::nifti {

struct ReadLimits {
    HeaderLimits header;
    std::uint64_t inflate_slack = 1u << 20;   // inflate at most data end + 1 MiB
    // Past this instant every read() throws Error(Timeout): a per-request
    // time limit that also bounds the inflate of a slow or huge file.
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

class Reader {
public:
    // `path` names a .nii/.nii.gz, or either file of a pair (x.hdr, x.img,
    // x.hdr.gz, x.img.gz). Throws Error: NotFound, NotNifti, CorruptHeader,
    // TooLarge, TruncatedData, BadGzip, Io.
    static Reader open(const std::filesystem::path& path, const ReadLimits& limits);
    // A single-file image held in memory (tests, fuzzing).
    static Reader open_memory(std::vector<std::uint8_t> bytes, const ReadLimits& limits);

    Reader(Reader&&) noexcept;
    Reader& operator=(Reader&&) noexcept;
    ~Reader();

    const Header& header() const noexcept;
    // Bytes between the end of the header and vox_offset in a single file
    // (extensions, valid or not), verbatim; empty for pairs.
    const std::vector<std::uint8_t>& extension_bytes() const noexcept;
    bool gzip() const noexcept;   // the voxel data came gzip-compressed

    // Next voxel bytes in the file's byte order: up to min(n, remaining)
    // bytes (gzip: exactly that many), 0 at the end of the data. Throws
    // TruncatedData / BadGzip / Io. For gzip, the call that delivers the last
    // voxel byte first drains the rest of the stream (within the inflate cap)
    // so every member's CRC-32/ISIZE is verified before the data is complete.
    // Extensions (vox_offset - header size) above 16 MiB are refused (TooLarge).
    std::size_t read(std::uint8_t* buf, std::size_t n);
    std::uint64_t remaining() const noexcept;
    // Back to the first voxel (re-opens / re-inflates); for two-pass work.
    void rewind();

private:
    struct Impl;
    explicit Reader(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace medimg::nifti
