// Byte sinks: atomic file (temp + rename), descriptor.
#include "nifti/byte_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "error.hpp"

namespace medimg::nifti {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

// Writes all n bytes; retries on EINTR and partial writes.
void write_all(int fd, const std::uint8_t* data, std::size_t n, const char* what) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            throw Error(ErrorCode::Io, std::string("cannot write ") + what + ": " + errno_text(e));
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}

}  // namespace

AtomicFileSink::AtomicFileSink(const std::filesystem::path& target) : target_(target) {
    const auto dir = target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
    std::string pattern = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
    // mkstemp creates 0600; open with O_EXCL ourselves so umask applies to 0644.
    for (int attempt = 0; attempt < 100; ++attempt) {
        std::string name = pattern;
        char* suffix = name.data() + name.size() - 6;
        static const char kChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        std::uint64_t r = (static_cast<std::uint64_t>(::getpid()) << 32) ^
                          reinterpret_cast<std::uintptr_t>(this) ^
                          (static_cast<std::uint64_t>(::arc4random()));
        for (int i = 0; i < 6; ++i) {
            suffix[i] = kChars[r % 62];
            r /= 62;
        }
        const int fd = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            fd_ = fd;
            temp_ = name;
            return;
        }
        const int e = errno;
        if (e == EEXIST || e == EINTR) continue;
        throw Error(e == ENOENT ? ErrorCode::NotFound : ErrorCode::Io,
                    "cannot create a temporary file in " + dir.string() + ": " + errno_text(e));
    }
    throw Error(ErrorCode::Io, "cannot create a temporary file in " + dir.string());
}

AtomicFileSink::~AtomicFileSink() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_ && !temp_.empty()) ::unlink(temp_.c_str());
}

void AtomicFileSink::write(const std::uint8_t* data, std::size_t n) {
    if (fd_ < 0) throw Error(ErrorCode::Internal, "write after commit");
    write_all(fd_, data, n, temp_.c_str());
    written_ += n;
}

void AtomicFileSink::commit() {
    if (fd_ < 0) throw Error(ErrorCode::Internal, "commit called twice");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
        const int e = errno;
        throw Error(ErrorCode::Io, "cannot write " + temp_.string() + ": " + errno_text(e));
    }
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
        const int e = errno;
        throw Error(ErrorCode::Io, "cannot rename onto " + target_.string() + ": " + errno_text(e));
    }
    committed_ = true;
}

void FdSink::write(const std::uint8_t* data, std::size_t n) {
    write_all(fd_, data, n, "output");
}

}  // namespace medimg::nifti
