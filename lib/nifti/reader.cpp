// Opens .nii / .nii.gz / .hdr+.img(.gz) images and streams their voxel bytes
// through fixed-size buffers. The container is sniffed from the bytes.
//
// gzip verification: once the last voxel byte has been inflated, read()
// drains the rest of the gzip stream (bounded by vox_offset + data + slack)
// before returning, so a bad CRC-32/ISIZE or a truncated final member is
// reported by the call that delivers the last data, never after a caller has
// seen read() return 0.
//
// A stream (stdin from a pipe) is read with read(2), once: the two bytes that
// tell gzip from plain are looked at and handed on, the header and the
// extensions are read, then the voxels. rewind() re-reads such a stream only
// from the copy that keep_for_rewind() makes of the voxels as they pass.
#include "nifti/reader.hpp"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string>

#include "error.hpp"
#include "nifti/file_name.hpp"
#include "nifti/gzip.hpp"
#include "nifti/header_fields.hpp"

namespace medimg::nifti {
namespace {

constexpr std::size_t kScratch = 256 * 1024;
constexpr std::size_t kMaxHeader = 540;
// The extension region is held in memory; larger regions are refused.
constexpr std::uint64_t kMaxExtensionBytes = 16u << 20;

// Reads one open file with pread() from its own offset, so every stream
// over the descriptor (a rewind, a second reader) starts where it should.
class FdSource final : public ByteSource {
public:
    FdSource(std::shared_ptr<const fs::UniqueFd> fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {
        struct stat st{};
        if (!fd_ || !*fd_ || ::fstat(fd_->get(), &st) != 0 || !S_ISREG(st.st_mode))
            throw Error(ErrorCode::NotFound, name_ + " is not a regular file");
        size_ = static_cast<std::uint64_t>(st.st_size);
    }
    std::size_t read(std::uint8_t* buf, std::size_t n) override {
        const std::size_t r = pread_at(offset_, buf, n);
        offset_ += r;
        return r;
    }
    std::uint64_t size() const noexcept { return size_; }
    // The first bytes of the file, without moving the read position.
    std::size_t peek(std::uint8_t* buf, std::size_t n) {
        std::size_t got = 0;
        while (got < n) {
            const std::size_t r = pread_at(got, buf + got, n - got);
            if (r == 0) break;
            got += r;
        }
        return got;
    }

private:
    std::size_t pread_at(std::uint64_t at, std::uint8_t* buf, std::size_t n) {
        for (;;) {
            const ssize_t r = ::pread(fd_->get(), buf, n, static_cast<off_t>(at));
            if (r >= 0) return static_cast<std::size_t>(r);
            if (errno == EINTR) continue;
            const int e = errno;
            throw Error(ErrorCode::Io, "cannot read " + name_ + ": " + std::strerror(e));
        }
    }

    std::shared_ptr<const fs::UniqueFd> fd_;
    std::string name_;
    std::uint64_t size_ = 0;
    std::uint64_t offset_ = 0;
};

// Reads a descriptor front to back with read(2): a pipe or a socket, which
// has no offsets. peek() looks at the first bytes; read() then delivers them
// again before anything new.
class SequentialSource final : public ByteSource {
public:
    SequentialSource(std::shared_ptr<const fs::UniqueFd> fd, std::string name)
        : fd_(std::move(fd)), name_(std::move(name)) {}
    std::size_t read(std::uint8_t* buf, std::size_t n) override {
        if (head_pos_ < head_len_) {
            const std::size_t k = std::min(n, head_len_ - head_pos_);
            std::memcpy(buf, head_ + head_pos_, k);
            head_pos_ += k;
            return k;
        }
        return read_fd(buf, n);
    }
    std::uint64_t size() const noexcept { return UINT64_MAX; }   // unknown until the end
    // Up to n (at most sizeof head_) first bytes, fewer only at the end.
    std::size_t peek(std::uint8_t* buf, std::size_t n) {
        n = std::min(n, sizeof head_);
        while (head_len_ < n) {
            const std::size_t r = read_fd(head_ + head_len_, n - head_len_);
            if (r == 0) break;
            head_len_ += r;
        }
        n = std::min(n, head_len_);
        std::memcpy(buf, head_, n);
        return n;
    }

private:
    std::size_t read_fd(std::uint8_t* buf, std::size_t n) {
        for (;;) {
            const ssize_t r = ::read(fd_->get(), buf, n);
            if (r >= 0) return static_cast<std::size_t>(r);
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {   // a descriptor left non-blocking
                pollfd p{fd_->get(), POLLIN, 0};
                ::poll(&p, 1, -1);
                continue;
            }
            const int e = errno;
            throw Error(ErrorCode::Io, "cannot read " + name_ + ": " + std::strerror(e));
        }
    }

    std::shared_ptr<const fs::UniqueFd> fd_;
    std::string name_;
    std::uint8_t head_[8] = {};
    std::size_t head_len_ = 0, head_pos_ = 0;
};

class MemSource final : public ByteSource {
public:
    explicit MemSource(std::shared_ptr<const std::vector<std::uint8_t>> b) : bytes_(std::move(b)) {}
    std::size_t read(std::uint8_t* buf, std::size_t n) override {
        n = std::min(n, bytes_->size() - pos_);
        if (n > 0) std::memcpy(buf, bytes_->data() + pos_, n);   // data() may be null when empty
        pos_ += n;
        return n;
    }

private:
    std::shared_ptr<const std::vector<std::uint8_t>> bytes_;
    std::size_t pos_ = 0;
};

// One opened file (or memory image): plain or gzip, read sequentially.
struct Stream {
    std::unique_ptr<ByteSource> raw;
    std::unique_ptr<GzipInflater> gz;
    std::uint64_t plain_size = UINT64_MAX;   // known for plain files only
    std::string name;

    std::size_t read(std::uint8_t* buf, std::size_t n) {
        return gz ? gz->read(buf, n) : raw->read(buf, n);
    }
    // Reads exactly n bytes unless the stream ends; returns bytes read.
    std::size_t read_full(std::uint8_t* buf, std::size_t n) {
        std::size_t got = 0;
        while (got < n) {
            const std::size_t r = read(buf + got, n - got);
            if (r == 0) break;
            got += r;
        }
        return got;
    }
    void set_cap(std::uint64_t cap) {
        if (gz) throw Error(ErrorCode::Internal, "gzip cap set twice");
        gz = std::make_unique<GzipInflater>(*raw, cap);
    }
};

// A stream over `src` (an FdSource or a SequentialSource); `gzip` says
// whether its first bytes are gzip's (the inflater is created later, once the
// output cap is known).
template <typename Source>
Stream sniffed(std::unique_ptr<Source> src, const std::string& name, bool& gzip) {
    std::uint8_t magic[2] = {0, 0};
    const std::size_t m = src->peek(magic, 2);
    gzip = is_gzip(std::span<const std::uint8_t>(magic, m));
    Stream s;
    s.plain_size = gzip ? UINT64_MAX : src->size();
    s.name = name;
    s.raw = std::move(src);
    return s;
}

// True when the first `got` bytes of a `hsize`-byte header are those of a
// .hdr/.img pair (magic ni1 or ni2, or none: Analyze 7.5), whose voxels are
// in another file.
bool pair_header(const std::uint8_t* hb, std::size_t got, std::size_t hsize) {
    if (got < hsize) return false;   // too short: the header parser says so
    if (hsize == kNifti2Size)
        return std::memcmp(hb + field_spec(Version::Nifti2, Field::magic).offset, "ni2", 4) == 0;
    const std::uint8_t* m = hb + field_spec(Version::Nifti1, Field::magic).offset;
    if (std::memcmp(m, "ni1", 4) == 0) return true;
    return std::memcmp(m, "n+1", 4) != 0 && std::memcmp(m, "n+2", 4) != 0 &&
           std::memcmp(m, "ni2", 4) != 0;
}

// An unlinked temporary file in `dir`, read and written by descriptor.
std::shared_ptr<const fs::UniqueFd> unlinked_temporary(const std::filesystem::path& dir,
                                                       const std::string& what) {
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {   // no O_TMPFILE there
        std::string name = (dir / ".medimg-copy-XXXXXX").string();
        fd = ::mkostemp(name.data(), O_CLOEXEC);
        if (fd >= 0) ::unlink(name.c_str());
    }
    if (fd < 0) {
        const int e = errno;
        throw Error(ErrorCode::Io, "cannot make a temporary file in " + dir.string() + " for " + what +
                                       ": " + std::strerror(e));
    }
    return std::make_shared<const fs::UniqueFd>(fd);
}

// open(2) of a file the caller named, without blocking on a FIFO; nullopt
// when it does not exist.
std::shared_ptr<const fs::UniqueFd> open_named(int dirfd, const std::filesystem::path& path,
                                               const std::string& shown, bool optional) {
    const int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        if ((e == ENOENT || e == ENOTDIR) && optional) return nullptr;
        if (e == ENOENT || e == ENOTDIR) throw Error(ErrorCode::NotFound, "no such file: " + shown);
        if (e == ENXIO) throw Error(ErrorCode::NotFound, shown + " is not a regular file");
        throw Error(ErrorCode::Io, "cannot open " + shown + ": " + std::strerror(e));
    }
    auto owned = std::make_shared<const fs::UniqueFd>(fd);
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        throw Error(ErrorCode::NotFound, shown + " is not a regular file");
    return owned;
}

}  // namespace

struct Reader::Impl {
    ReadLimits limits;
    std::optional<Header> header;
    std::vector<std::uint8_t> ext;
    bool gzip = false;
    // Where the voxel data lives: a file (single or .img) or memory.
    std::shared_ptr<const fs::UniqueFd> data_fd;
    std::string data_name;
    std::shared_ptr<const std::vector<std::uint8_t>> memory;
    bool from_stream = false;   // open_stream(): no file name, so no pair
    bool sequential = false;    // data_fd is read once, with read(2)
    Stream data;
    std::uint64_t remaining = 0;
    std::vector<std::uint8_t> scratch;
    bool read_started = false;
    // keep_for_rewind(): the voxels read so far, and where that copy is.
    std::shared_ptr<const fs::UniqueFd> copy;
    std::string copy_what;
    bool replaying = false;     // the voxels now come from `copy`

    std::uint64_t cap() const {
        std::uint64_t c = static_cast<std::uint64_t>(header->vox_offset()) + header->data_bytes();
        if (c > UINT64_MAX - limits.inflate_slack) return UINT64_MAX;
        return c + limits.inflate_slack;
    }

    Stream open_data(bool& gz) {
        if (memory) {
            Stream s;
            gz = is_gzip(std::span<const std::uint8_t>(memory->data(), std::min<std::size_t>(2, memory->size())));
            s.plain_size = gz ? UINT64_MAX : memory->size();
            s.raw = std::make_unique<MemSource>(memory);
            s.name = "image";
            return s;
        }
        if (sequential) return sniffed(std::make_unique<SequentialSource>(data_fd, data_name), data_name, gz);
        return sniffed(std::make_unique<FdSource>(data_fd, data_name), data_name, gz);
    }

    // Skips n bytes of the data stream; TruncatedData if it ends first.
    void skip(Stream& s, std::uint64_t n) {
        ensure_scratch();
        while (n > 0) {
            const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, scratch.size()));
            const std::size_t r = s.read_full(scratch.data(), k);
            if (r < k) throw Error(ErrorCode::TruncatedData, s.name + " ends before vox_offset " +
                                                                 std::to_string(header->vox_offset()));
            n -= r;
        }
    }

    void ensure_scratch() {
        if (scratch.empty()) scratch.resize(kScratch);
    }

    // Reads the extension region [header size, vox_offset) of a single file.
    void read_extension(Stream& s) {
        const std::uint64_t n = static_cast<std::uint64_t>(header->vox_offset()) - header->size();
        if (n > kMaxExtensionBytes)
            throw Error(ErrorCode::TooLarge, "vox_offset " + std::to_string(header->vox_offset()) +
                                                 " leaves " + std::to_string(n) +
                                                 " bytes of extensions; at most " +
                                                 std::to_string(kMaxExtensionBytes) + " are supported");
        // Grow only as bytes really arrive (gzip sizes are not known up front).
        std::uint64_t got = 0;
        while (got < n) {
            const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n - got, 64 * 1024));
            ext.resize(static_cast<std::size_t>(got) + k);
            const std::size_t r = s.read_full(ext.data() + got, k);
            if (r < k)
                throw Error(ErrorCode::TruncatedData, "the file ends inside the extension region before vox_offset " +
                                                          std::to_string(header->vox_offset()));
            got += r;
        }
    }

    // Single file: header, extension, then data from the same stream.
    void open_single() {
        bool gz = false;
        data = open_data(gz);
        gzip = gz;
        // Until the header is known, inflate at most the header + slack.
        if (gz) data.set_cap(kMaxHeader + limits.inflate_slack);
        std::uint8_t hb[kMaxHeader];
        std::size_t got = data.read_full(hb, 4);
        std::size_t hsize = kMaxHeader;
        if (got == 4) {
            std::int32_t le, be;
            std::memcpy(&le, hb, 4);
            be = static_cast<std::int32_t>(__builtin_bswap32(static_cast<std::uint32_t>(le)));
            if (le == 348 || be == 348) hsize = 348;   // host is little-endian (x86-64, arm64)
            got += data.read_full(hb + 4, hsize - 4);
        }
        if (from_stream && pair_header(hb, got, hsize))
            throw Error(ErrorCode::BadParameter,
                        "a .hdr/.img pair cannot be read from " + data_name +
                            " (its header needs the .img beside it); name the .hdr file instead");
        header = Header::parse(std::span<const std::uint8_t>(hb, got), Layout::Single, limits.header,
                               data.plain_size);
        if (gz) data.gz->set_max_output(cap());
        read_extension(data);
        remaining = header->data_bytes();
    }

    void open_pair(const std::shared_ptr<const fs::UniqueFd>& hdr_fd, const std::string& hdr_name) {
        bool hgz = false;
        Stream hs = sniffed(std::make_unique<FdSource>(hdr_fd, hdr_name), hdr_name, hgz);
        if (hgz) hs.set_cap(kMaxHeader + limits.inflate_slack);
        std::uint8_t hb[kMaxHeader];
        const std::size_t got = hs.read_full(hb, kMaxHeader);
        if (hgz) {   // verify the rest of the header member(s) too
            ensure_scratch();
            while (hs.read(scratch.data(), scratch.size()) > 0) {
            }
        }
        bool gz = false;
        data = open_data(gz);
        gzip = gz;
        header = Header::parse(std::span<const std::uint8_t>(hb, got), Layout::Pair, limits.header,
                               data.plain_size);
        if (gz) data.set_cap(cap());
        skip(data, static_cast<std::uint64_t>(header->vox_offset()));
        remaining = header->data_bytes();
    }

    void reopen_data() {
        if (sequential) return replay_copy();
        bool gz = false;
        data = Stream{};
        data = open_data(gz);
        if (gz) data.set_cap(cap());
        std::uint64_t skip_bytes = static_cast<std::uint64_t>(header->vox_offset());
        skip(data, skip_bytes);
        remaining = header->data_bytes();
    }

    void keep_for_rewind(const std::filesystem::path& dir) {
        if (!sequential || copy) return;
        if (read_started)
            throw Error(ErrorCode::Internal,
                        "keep_for_rewind() on " + data_name + " after its voxels were read");
        copy_what = "the copy of " + data_name;
        copy = unlinked_temporary(dir, copy_what);
        copy_what += " in " + dir.string();
    }

    // A sequential reader's rewind: what the caller has not read yet goes
    // into the copy too, then the voxels come from the copy.
    void replay_copy() {
        if (!copy)
            throw Error(ErrorCode::Internal,
                        data_name + " is a stream read once: rewind() needs keep_for_rewind() "
                                    "before the first read()");
        if (!replaying) {
            std::vector<std::uint8_t> rest(kScratch);
            while (read(rest.data(), rest.size()) > 0) {
            }
            replaying = true;
        }
        data = Stream{};
        data.raw = std::make_unique<FdSource>(copy, copy_what);
        data.plain_size = header->data_bytes();
        data.name = copy_what;
        remaining = header->data_bytes();
    }

    void write_copy(const std::uint8_t* buf, std::size_t n) {
        for (std::size_t off = 0; off < n;) {
            const ssize_t w = ::write(copy->get(), buf + off, n - off);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                const int e = errno;
                throw Error(ErrorCode::Io, "cannot write " + copy_what + ": " + std::strerror(e));
            }
            off += static_cast<std::size_t>(w);
        }
    }

    std::size_t read(std::uint8_t* buf, std::size_t n) {
        read_started = true;
        if (remaining == 0) return 0;
        if (limits.deadline != std::chrono::steady_clock::time_point::max() &&
            std::chrono::steady_clock::now() > limits.deadline)
            throw Error(ErrorCode::Timeout,
                        "the request took longer than its time limit ([limits] request_timeout)");
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, remaining));
        std::size_t got = 0;
        while (got < want) {
            const std::size_t r = data.read(buf + got, want - got);
            if (r == 0) {
                throw Error(ErrorCode::TruncatedData,
                            "image data ends after " + std::to_string(header->data_bytes() - remaining + got) +
                                " of " + std::to_string(header->data_bytes()) + " bytes");
            }
            got += r;
            if (!data.gz) break;   // plain: return what the read gave
        }
        if (copy && !replaying) write_copy(buf, got);
        remaining -= got;
        if (remaining == 0 && data.gz) {
            // Drain the gzip stream so CRC-32/ISIZE of every member are verified
            // before the last data is handed out (bounded by the inflate cap).
            ensure_scratch();
            while (data.read(scratch.data(), scratch.size()) > 0) {
            }
        }
        return got;
    }
};

Reader::Reader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&&) noexcept = default;
Reader::~Reader() = default;

Reader Reader::open(const ImageFiles& files, const ReadLimits& limits) {
    auto impl = std::make_unique<Impl>();
    impl->limits = limits;
    const ImageName name = parse_image_name(files.name);
    if (name.kind != NameKind::Header && name.kind != NameKind::Image) {
        impl->data_fd = files.file;
        impl->data_name = files.name;
        impl->open_single();
        return Reader(std::move(impl));
    }
    if (!files.partner)
        throw Error(ErrorCode::NotFound, std::string("no ") + (name.kind == NameKind::Header ? ".img" : ".hdr") +
                                             " file found for " + name.name);
    const bool is_hdr = name.kind == NameKind::Header;
    impl->data_fd = is_hdr ? files.partner : files.file;
    impl->data_name = is_hdr ? files.partner_name : files.name;
    impl->open_pair(is_hdr ? files.file : files.partner, is_hdr ? files.name : files.partner_name);
    return Reader(std::move(impl));
}

ImageFiles Reader::open_files(const std::filesystem::path& path) {
    ImageFiles files;
    files.name = path.filename().string();
    files.file = open_named(AT_FDCWD, path, files.name, false);
    const ImageName name = parse_image_name(files.name);
    for (const std::string& candidate : partner_names(name)) {
        const auto dir = path.parent_path();
        if ((files.partner = open_named(AT_FDCWD, dir.empty() ? std::filesystem::path(candidate) : dir / candidate,
                                        candidate, true))) {
            files.partner_name = candidate;
            break;
        }
    }
    return files;
}

Reader Reader::open(const std::filesystem::path& path, const ReadLimits& limits) {
    return open(open_files(path), limits);
}

Reader Reader::open_memory(std::vector<std::uint8_t> bytes, const ReadLimits& limits) {
    auto impl = std::make_unique<Impl>();
    impl->limits = limits;
    impl->memory = std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes));
    impl->open_single();
    return Reader(std::move(impl));
}

Reader Reader::open_stream(int fd, const std::string& name, const ReadLimits& limits) {
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        throw Error(ErrorCode::Io, "cannot read " + name + ": " + std::strerror(e));
    }
    const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) {
        const int e = errno;
        throw Error(ErrorCode::Io, "cannot read " + name + ": " + std::strerror(e));
    }
    auto impl = std::make_unique<Impl>();
    impl->limits = limits;
    impl->data_fd = std::make_shared<const fs::UniqueFd>(own);
    impl->data_name = name;
    impl->from_stream = true;
    impl->sequential = !S_ISREG(st.st_mode);
    impl->open_single();
    return Reader(std::move(impl));
}

const Header& Reader::header() const noexcept { return *impl_->header; }
const std::vector<std::uint8_t>& Reader::extension_bytes() const noexcept { return impl_->ext; }
bool Reader::gzip() const noexcept { return impl_->gzip; }
std::size_t Reader::read(std::uint8_t* buf, std::size_t n) { return impl_->read(buf, n); }
std::uint64_t Reader::remaining() const noexcept { return impl_->remaining; }
bool Reader::sequential() const noexcept { return impl_->sequential; }
void Reader::keep_for_rewind(const std::filesystem::path& dir) { impl_->keep_for_rewind(dir); }
void Reader::rewind() { impl_->reopen_data(); }

}  // namespace medimg::nifti
