// gzip (RFC 1952) streams: a strict multi-member inflater with an output cap,
// and a deflater. ISA-L (igzip) does the work where it can, zlib elsewhere.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "nifti/byte_io.hpp"

namespace medimg::nifti {

// True when `prefix` starts with the gzip magic 1f 8b.
bool is_gzip(std::span<const std::uint8_t> prefix) noexcept;

// Inflates every member of a gzip stream; checks each member's header (and
// its optional header CRC), CRC-32 and ISIZE. Bytes after the last complete
// member that do not start a new member (NUL padding, garbage) are ignored,
// as gzip(1) does. A zlib-wrapped or raw-deflate stream is not gzip.
// Throws Error(BadGzip) on any violation, Error(TruncatedData) when the
// stream ends inside a member, and Error(BadGzip) when more
// than `max_output` bytes would be produced (a bomb costs bounded work).
class GzipInflater {
public:
    GzipInflater(ByteSource& in, std::uint64_t max_output);
    ~GzipInflater();
    GzipInflater(const GzipInflater&) = delete;
    GzipInflater& operator=(const GzipInflater&) = delete;

    // Up to n decompressed bytes; 0 only at the end of the last member.
    std::size_t read(std::uint8_t* buf, std::size_t n);
    std::uint64_t total_out() const noexcept;
    // Changes the output cap (e.g. once a header has told the data size).
    void set_max_output(std::uint64_t max_output) noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Compresses what is written into one gzip member on `out`. Level 1 (the
// default, as nibabel writes) uses ISA-L; other levels use what serves them.
class GzipDeflater final : public ByteSink {
public:
    GzipDeflater(ByteSink& out, int level);
    ~GzipDeflater() override;
    void write(const std::uint8_t* data, std::size_t n) override;
    void finish();   // writes the trailer; must be called once

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace medimg::nifti
