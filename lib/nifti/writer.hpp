// Writes a single-file NIfTI (plain or gzip) to a ByteSink: header, the
// verbatim extension bytes, then voxel data streamed by the caller.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

#include "nifti/file_name.hpp"
#include "nifti/header.hpp"
#include "nifti/stream.hpp"

namespace medimg::nifti {

class Writer {
public:
    // `header` must be a single-file header (Header::make_single_file()) whose
    // vox_offset equals header.size() + extension.size(), or an empty
    // extension with vox_offset == header.size() + 4 (a zero extender is
    // written: what make_single_file() sets up for pairs). gzip_level 0..9
    // (ignored for Plain). Throws Error(Internal) on a header that breaks that.
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
