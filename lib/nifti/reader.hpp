// Opens a NIfTI/Analyze image (.nii, .nii.gz, .hdr/.img pairs, gzip or not,
// container sniffed from the bytes) and streams its voxel bytes in bounded
// memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fs/fd.hpp"
#include "nifti/header.hpp"

namespace medimg::nifti {

struct ReadLimits {
    HeaderLimits header;
    std::uint64_t inflate_slack = 1u << 20;   // inflate at most data end + 1 MiB
    // Past this instant every read() throws Error(Timeout): a per-request
    // time limit that also bounds the inflate of a slow or huge file.
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// The already open files of one image: the file a caller named and, for a
// pair, its partner. The reader reads them with pread() only, so several
// readers may share the descriptors.
struct ImageFiles {
    std::shared_ptr<const fs::UniqueFd> file;
    std::string name;                             // its file name (the pair rules, messages)
    std::shared_ptr<const fs::UniqueFd> partner;  // the other file of a pair; null for single files
    std::string partner_name;
};

class Reader {
public:
    // Reads through descriptors opened by the caller (the worker opens them
    // beneath the data root). A pair needs its partner: a .hdr without one
    // is Error(NotFound). Throws Error: NotFound, NotNifti, CorruptHeader,
    // TooLarge, TruncatedData, BadGzip, Io.
    static Reader open(const ImageFiles& files, const ReadLimits& limits);
    // `path` names a .nii/.nii.gz, or either file of a pair (x.hdr, x.img,
    // x.hdr.gz, x.img.gz): opens it and, for a pair, the partner beside it
    // (nifti/file_name.hpp), then reads as above. A FIFO, socket or device
    // is Error(NotFound), found without blocking.
    static Reader open(const std::filesystem::path& path, const ReadLimits& limits);
    // Opens `path` as Reader::open(path) does, without reading anything.
    static ImageFiles open_files(const std::filesystem::path& path);
    // A single-file image held in memory (tests, fuzzing).
    static Reader open_memory(std::vector<std::uint8_t> bytes, const ReadLimits& limits);
    // An image that comes through one descriptor with no file name (stdin):
    // a single-file .nii or .nii.gz, the container sniffed from the bytes;
    // `name` ("stdin") is what messages call it. `fd` is duplicated, not
    // taken. A regular file is read by offset like a named one. Anything
    // else (a pipe, a socket) is read once, front to back, through bounded
    // buffers: the header and extensions first, then the voxels, and nothing
    // is copied unless keep_for_rewind() asks for it. A .hdr/.img pair header
    // is Error(BadParameter): its voxels are in another file.
    static Reader open_stream(int fd, const std::string& name, const ReadLimits& limits);

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
    // True when the voxels come from a stream that can be read only once.
    bool sequential() const noexcept;
    // For a sequential reader, before the first read(): every voxel byte
    // read is also written to an unlinked temporary file in `dir`, so that
    // rewind() can deliver the voxels again (the one case the command line
    // copies stdin: man/medimg.1). Does nothing for other readers. Throws
    // Error(Io) naming `dir` when no file can be made or written there, and
    // Error(Internal) once read() has been called.
    void keep_for_rewind(const std::filesystem::path& dir);
    // Back to the first voxel (re-opens / re-inflates, or reads the copy
    // kept by keep_for_rewind()); for two-pass work. A sequential reader
    // without that copy throws Error(Internal): its bytes are gone.
    void rewind();

private:
    struct Impl;
    explicit Reader(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace medimg::nifti
