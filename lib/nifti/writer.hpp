// Writes a single-file NIfTI (plain or gzip) to a ByteSink: header, the
// verbatim extension bytes, then voxel data streamed by the caller.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

#include "nifti/file_name.hpp"
#include "nifti/header.hpp"
#include "nifti/byte_io.hpp"

namespace medimg::nifti {

// True when `region` (the bytes between the header and vox_offset of a
// single file: the 4-byte extender, then the extensions) holds a chain
// readers can walk: every esize (in `order`) at least 16, a multiple of 16
// and within the region, wherever 8 bytes (an esize and an ecode) remain;
// fewer than 8 bytes left at the end are padding.
// A region shorter than the extender has no chain to check (true).
bool extension_chain_valid(std::span<const std::uint8_t> region, ByteOrder order) noexcept;

class Writer {
public:
    // `header` must be a single-file header (Header::make_single_file()) whose
    // vox_offset equals header.size() + extension.size(), or an empty
    // extension with vox_offset == header.size() + 4 (a zero extender is
    // written: what make_single_file() sets up for pairs). gzip_level 0..9
    // (ignored for Plain). Throws Error(Internal) on a header that breaks that.
    // The extension bytes are written verbatim, except that the extension
    // flag (their first byte) is written as 0 when it is set but the chain is
    // invalid (extension_chain_valid), so readers skip the bytes (docs/ARCHITECTURE.md;
    // docs/SECURITY.md).
    Writer(ByteSink& sink, const Header& header, std::span<const std::uint8_t> extension,
           Container container, int gzip_level);
    ~Writer();
    // Voxel bytes in the header's byte order. Throws Error(Internal) when more
    // than header.data_bytes() are written.
    void write(const std::uint8_t* data, std::size_t n);
    // Throws Error(Internal) unless exactly header.data_bytes() were written.
    void finish();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace medimg::nifti
