// The results cache: files named by key hash, atomic publication by rename,
// flock-serialised producers, LRU eviction by access time.
#include "cache/result_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>
#include <vector>

#include "error.hpp"

namespace medimg::cache {
namespace {

namespace stdfs = std::filesystem;

[[noreturn]] void throw_io(const std::string& what) {
    throw Error(ErrorCode::Io, what + ": " + std::strerror(errno));
}

[[noreturn]] void throw_store(const std::string& what) {
    throw StoreError(what + ": " + std::strerror(errno));
}

std::uint64_t mix64(std::uint64_t x) {   // splitmix64 finaliser
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

std::int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Holds an exclusive flock on one lock file for its lifetime.
class FileLock {
public:
    enum class Mode {
        Wait,     // block until locked; throw StoreError when that fails
        NoWait,   // held() is false when another open file description
                  // holds the lock or the lock file cannot be opened
    };

    explicit FileLock(const stdfs::path& file, Mode mode = Mode::Wait) {
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) {
            if (mode == Mode::NoWait) return;
            throw_store("cannot open cache lock " + file.string());
        }
        const int op = mode == Mode::Wait ? LOCK_EX : LOCK_EX | LOCK_NB;
        while (::flock(fd_, op) != 0)
            if (errno != EINTR) {
                const int e = errno;
                ::close(fd_);
                fd_ = -1;
                if (mode == Mode::NoWait) return;
                errno = e;
                throw_store("cannot lock " + file.string());
            }
    }
    ~FileLock() {
        if (fd_ >= 0) ::close(fd_);   // closing releases the lock
    }
    FileLock(const FileLock&) = delete;
    FileLock& operator=(const FileLock&) = delete;
    bool held() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

bool is_temporary(const std::string& name) { return name.rfind(".tmp-", 0) == 0; }

// A shard directory's name: the key's first two hex digits.
bool is_shard(const std::string& name) {
    return name.size() == 2 && std::isxdigit(static_cast<unsigned char>(name[0])) &&
           std::isxdigit(static_cast<unsigned char>(name[1]));
}

void ensure_dir(const stdfs::path& dir, mode_t mode) {
    if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST)
        throw_store("cannot create cache directory " + dir.string());
}

}  // namespace

SourceIdentity SourceIdentity::of(const stdfs::path& file) {
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0)
        throw Error(ErrorCode::NotFound, "no such file: " + file.filename().string());
    SourceIdentity id;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.size = static_cast<std::uint64_t>(st.st_size);
    id.mtime_ns = std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    return id;
}

SourceIdentity SourceIdentity::of_optional(const stdfs::path& file) {
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0) {
        SourceIdentity id;
        id.exists = false;
        return id;
    }
    return of(file);
}

std::string SourceIdentity::text() const {
    if (!exists) return "-";
    return std::to_string(dev) + ":" + std::to_string(ino) + ":" + std::to_string(size) + ":" +
           std::to_string(mtime_ns);
}

std::string hash_hex(std::string_view text) {
    // Two FNV-1a lanes with different bases, each finished with splitmix64.
    std::uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull ^ text.size();
    for (unsigned char c : text) {
        a = (a ^ c) * 0x100000001b3ull;
        b = (b ^ c) * 0x100000001b3ull;
        b ^= b >> 29;
    }
    a = mix64(a ^ text.size());
    b = mix64(b + a);
    static const char* digits = "0123456789abcdef";
    std::string out(32, '0');
    for (int i = 0; i < 16; ++i) {
        out[15 - i] = digits[(a >> (4 * i)) & 15];
        out[31 - i] = digits[(b >> (4 * i)) & 15];
    }
    return out;
}

OwnedFdSink::~OwnedFdSink() {
    if (fd_ >= 0) ::close(fd_);
}

void OwnedFdSink::write(const std::uint8_t* data, std::size_t n) {
    while (n > 0) {
        ssize_t w = ::write(fd_, data, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw_store("cannot write result");
        }
        data += w;
        n -= static_cast<std::size_t>(w);
        written_ += static_cast<std::uint64_t>(w);
    }
}

OwnedFdSink make_anonymous_file(const stdfs::path& dir) {
#ifdef O_TMPFILE
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return OwnedFdSink(fd);
#endif
    std::string templ = (dir / ".medimg-tmp-XXXXXX").string();
    int fd2 = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd2 < 0) throw_store("cannot create a temporary file in " + dir.string());
    ::unlink(templ.c_str());
    return OwnedFdSink(fd2);
}

ResultCache::ResultCache(stdfs::path dir, std::uint64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
    // The web server reads entries by path (X-Sendfile), possibly as another
    // user, so the tree is world-readable; it is never writable by others.
    ensure_dir(dir_, 0755);
    struct stat st{};
    if (::lstat(dir_.c_str(), &st) != 0) throw_io("cannot stat cache directory " + dir_.string());
    if (!S_ISDIR(st.st_mode))
        throw Error(ErrorCode::Io, "cache directory " + dir_.string() + " is not a directory");
    if (st.st_uid != ::geteuid())
        throw Error(ErrorCode::Io, "cache directory " + dir_.string() + " belongs to another user");
    if (::access(dir_.c_str(), W_OK | X_OK) != 0)
        throw_io("cache directory " + dir_.string() + " is not writable");
    std::error_code ec;
    dir_ = stdfs::canonical(dir_, ec);
    if (ec) throw Error(ErrorCode::Io, "cannot resolve cache directory: " + ec.message());
    ensure_dir(dir_ / ".locks", 0755);
    remove_stale_temporaries();
}

std::uint64_t ResultCache::remove_stale_temporaries() noexcept {
    std::uint64_t removed = 0;
    try {
        std::error_code ec;
        for (auto shard = stdfs::directory_iterator(dir_, ec);
             !ec && shard != stdfs::directory_iterator(); shard.increment(ec)) {
            const auto name = shard->path().filename().string();
            struct stat st{};
            if (!is_shard(name) || ::lstat(shard->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
                continue;
            // Producers hold this lock from before they create their
            // temporary until after they rename or remove it: with the lock
            // held here, every temporary in the shard belongs to a producer
            // that died.
            FileLock lock(dir_ / ".locks" / name, FileLock::Mode::NoWait);
            if (!lock.held()) continue;
            std::error_code e2;
            for (auto it = stdfs::directory_iterator(shard->path(), e2);
                 !e2 && it != stdfs::directory_iterator(); it.increment(e2)) {
                if (!is_temporary(it->path().filename().string())) continue;
                if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                    ::unlink(it->path().c_str()) == 0)
                    removed += static_cast<std::uint64_t>(st.st_size);
            }
        }
    } catch (...) {
        // Out of memory while building a path: the next sweep tries again.
    }
    return removed;
}

stdfs::path ResultCache::path_for(std::string_view key, std::string_view suffix) const {
    if (key.size() < 3) throw Error(ErrorCode::Internal, "cache key too short");
    return dir_ / std::string(key.substr(0, 2)) / (std::string(key) + std::string(suffix));
}

std::optional<stdfs::path> ResultCache::lookup(std::string_view key, std::string_view suffix) const {
    auto p = path_for(key, suffix);
    struct stat st{};
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    // Refresh the access time explicitly (relatime/noatime mounts do not),
    // at most once a minute per entry.
    std::int64_t atime = std::int64_t(st.st_atim.tv_sec);
    if (::time(nullptr) - atime > 60) {
        timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
        ::utimensat(AT_FDCWD, p.c_str(), times, 0);
    }
    return p;
}

stdfs::path ResultCache::get_or_create(std::string_view key, std::string_view suffix,
                                       const std::function<void(nifti::ByteSink&)>& produce) {
    if (auto hit = lookup(key, suffix)) return *hit;
    auto final_path = path_for(key, suffix);
    ensure_dir(final_path.parent_path(), 0755);
    {
        FileLock lock(dir_ / ".locks" / std::string(key.substr(0, 2)));
        if (auto hit = lookup(key, suffix)) return *hit;   // produced while we waited
        std::string templ =
            (final_path.parent_path() / (".tmp-" + std::string(key) + "-XXXXXX")).string();
        int fd = ::mkostemp(templ.data(), O_CLOEXEC);
        if (fd < 0) throw_store("cannot create a cache file in " + final_path.parent_path().string());
        ::fchmod(fd, 0644);
        try {
            OwnedFdSink sink(fd);
            produce(sink);
            if (::close(sink.release()) != 0) throw_store("cannot write cache file");
            if (::rename(templ.c_str(), final_path.c_str()) != 0)
                throw_store("cannot publish cache file " + final_path.string());
        } catch (...) {
            ::unlink(templ.c_str());
            throw;
        }
    }
    if (size_bytes() > max_bytes_) evict();
    return final_path;
}

std::uint64_t ResultCache::size_bytes() const {
    std::uint64_t total = 0;
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(dir_, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->path().filename() == ".locks") {
            it.disable_recursion_pending();
            continue;
        }
        std::error_code e2;
        if (it->is_regular_file(e2)) total += it->file_size(e2);
    }
    return total;
}

std::uint64_t ResultCache::evict(std::optional<std::uint64_t> target, int min_age_seconds) {
    std::lock_guard guard(evict_mutex_);
    const std::uint64_t goal = target ? *target : max_bytes_ / 10 * 9;
    struct Entry {
        stdfs::path path;
        std::int64_t atime_ns;
        std::uint64_t size;
    };
    std::vector<Entry> entries;
    std::uint64_t total = 0, removed = remove_stale_temporaries();
    const std::int64_t now = now_ns();
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(dir_, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (name == ".locks") {
            it.disable_recursion_pending();
            continue;
        }
        struct stat st{};
        if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        std::int64_t atime = std::int64_t(st.st_atim.tv_sec) * 1000000000 + st.st_atim.tv_nsec;
        std::int64_t mtime = std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        if (is_temporary(name)) continue;   // being written (stale ones are gone)
        total += static_cast<std::uint64_t>(st.st_size);
        entries.push_back({it->path(), std::max(atime, mtime), static_cast<std::uint64_t>(st.st_size)});
    }
    if (total <= goal) return removed;
    std::sort(entries.begin(), entries.end(),
              [](const Entry& a, const Entry& b) { return a.atime_ns < b.atime_ns; });
    std::uint64_t evicted = 0, evicted_bytes = 0;
    for (const auto& e : entries) {
        if (total <= goal) break;
        if (now - e.atime_ns < std::int64_t(min_age_seconds) * 1000000000) break;
        if (::unlink(e.path.c_str()) == 0) {
            total -= e.size;
            removed += e.size;
            ++evicted;
            evicted_bytes += e.size;
        }
    }
    if (evicted && on_evict) on_evict(evicted, evicted_bytes);
    return removed;
}

std::shared_ptr<const std::string> MemoryLru::get(const std::string& key) {
    std::lock_guard guard(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->second;
}

void MemoryLru::put(const std::string& key, std::shared_ptr<const std::string> value) {
    std::lock_guard guard(mutex_);
    if (capacity_ == 0) return;
    if (auto it = index_.find(key); it != index_.end()) {
        it->second->second = std::move(value);
        order_.splice(order_.begin(), order_, it->second);
        return;
    }
    order_.emplace_front(key, std::move(value));
    index_[key] = order_.begin();
    while (order_.size() > capacity_) {
        index_.erase(order_.back().first);
        order_.pop_back();
    }
}

std::size_t MemoryLru::size() const {
    std::lock_guard guard(mutex_);
    return order_.size();
}

}  // namespace medimg::cache
