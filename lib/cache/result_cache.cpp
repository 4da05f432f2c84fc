// The results cache: files named by key hash, atomic publication by rename,
// flock-serialised producers, running size totals shared through a small
// file under flock, LRU eviction by modification time (refreshed on hits).
#include "cache/result_cache.hpp"

#include <openssl/evp.h>

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
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
        fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
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
    // SHA-256 (OpenSSL's libcrypto), its first 128 bits. A key names one
    // patient's result, and part of the text it is made from (file names)
    // is chosen by whoever writes the data root: the hash must not let
    // anyone construct a second text with the same key (docs/SECURITY.md).
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr) != 1 || n < 16)
        throw Error(ErrorCode::Internal, "SHA-256 is not available");
    static const char* digits = "0123456789abcdef";
    std::string out(32, '0');
    for (int i = 0; i < 16; ++i) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
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

namespace {

constexpr std::size_t kShards = 256;
// Oldest entries remembered from one walk: eviction takes them in order and
// walks again only when they are used up, so a walk (about 0.1 s per 100,000
// entries) is paid once per this many evictions, and memory stays small.
constexpr std::size_t kMaxCandidates = 16384;

std::int64_t mtime_ns_of(const struct stat& st) {
    return std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::string shard_name(std::size_t shard) {
    static const char* digits = "0123456789abcdef";
    return {digits[shard >> 4], digits[shard & 15]};
}

std::size_t shard_index(std::string_view key) {
    auto nibble = [](char c) -> std::size_t {
        if (c >= '0' && c <= '9') return std::size_t(c - '0');
        if (c >= 'a' && c <= 'f') return std::size_t(c - 'a' + 10);
        if (c >= 'A' && c <= 'F') return std::size_t(c - 'A' + 10);
        throw Error(ErrorCode::Internal, "cache key is not hexadecimal");
    };
    return nibble(key[0]) << 4 | nibble(key[1]);
}

gid_t resolve_group(const std::string& group) {
    if (std::all_of(group.begin(), group.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        group.size() < 10)
        return static_cast<gid_t>(std::stoul(group));
    std::vector<char> buf(16384);
    struct group gr{};
    struct group* found = nullptr;
    if (::getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
        throw Error(ErrorCode::Io, "[cache] group: unknown group " + group);
    return found->gr_gid;
}

// Whether files may be given to `gid`: a member may, and so may root.
bool in_group(gid_t gid) {
    if (::getegid() == gid || ::geteuid() == 0) return true;
    const int n = ::getgroups(0, nullptr);
    if (n <= 0) return false;
    std::vector<gid_t> groups(static_cast<std::size_t>(n));
    const int got = ::getgroups(n, groups.data());
    return got > 0 && std::find(groups.begin(), groups.begin() + got, gid) != groups.begin() + got;
}

// Creates the missing ancestors of `dir` (0700, or 0711 when a group must
// reach the cache through them) and `dir` itself.
void create_cache_dir(const stdfs::path& dir, mode_t parent_mode) {
    std::vector<stdfs::path> missing;
    for (stdfs::path p = dir; !p.empty() && p != p.root_path(); p = p.parent_path()) {
        struct stat st{};
        if (::lstat(p.c_str(), &st) == 0) break;
        if (errno != ENOENT) break;   // reported when the directory is opened
        missing.push_back(p);
        if (p == p.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        const mode_t mode = *it == dir ? 0700 : parent_mode;
        if (::mkdir(it->c_str(), mode) != 0 && errno != EEXIST)
            throw_io("cannot create cache directory " + it->string());
        if (mode != 0700 && *it != dir) ::chmod(it->c_str(), mode);   // umask aside
    }
}

}  // namespace

struct ResultCache::Candidate {
    std::int64_t mtime_ns;
    std::uint64_t size;
    ino_t ino;
    std::size_t shard;
    std::string name;
};

// The per-shard running totals in `.locks/usage` (kShards native 64-bit
// counts), held under the process mutex and an flock of that file for the
// object's lifetime, so that publishing, evicting and walking are serialised
// across every thread and process using the directory.
class ResultCache::Accounting {
public:
    Accounting(std::mutex& mutex, int fd) : guard_(mutex), fd_(fd) {
        while (::flock(fd_, LOCK_EX) != 0)
            if (errno != EINTR) throw_store("cannot lock the cache totals");
        const ssize_t got = ::pread(fd_, slots.data(), sizeof slots, 0);
        if (got != static_cast<ssize_t>(sizeof slots)) slots.fill(0);   // new: the walk fills it
    }
    ~Accounting() {
        if (dirty_) flush();
        ::flock(fd_, LOCK_UN);
    }
    Accounting(const Accounting&) = delete;
    Accounting& operator=(const Accounting&) = delete;

    std::uint64_t total() const {
        std::uint64_t t = 0;
        for (auto s : slots) t += s;
        return t;
    }
    void add(std::size_t shard, std::uint64_t n) {
        slots[shard] += n;
        dirty_ = true;
    }
    void sub(std::size_t shard, std::uint64_t n) {
        slots[shard] -= std::min(slots[shard], n);
        dirty_ = true;
    }
    void mark_dirty() { dirty_ = true; }
    // A failed write leaves the file's totals behind the truth until the
    // next walk (the next open at the latest).
    void flush() noexcept {
        dirty_ = ::pwrite(fd_, slots.data(), sizeof slots, 0) != static_cast<ssize_t>(sizeof slots);
    }

    std::array<std::uint64_t, kShards> slots{};

private:
    std::lock_guard<std::mutex> guard_;
    int fd_;
    bool dirty_ = false;
};

ResultCache::ResultCache(stdfs::path dir, std::uint64_t max_bytes, CacheAccess access)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
    try {
        // Cached results are patient data (docs/SECURITY.md): the tree grants
        // nothing to other users, whatever the umask; only a configured group
        // (the web server's, reading entries for X-Sendfile) may read.
        if (!access.group.empty()) {
            const gid_t gid = resolve_group(access.group);
            if (!in_group(gid))
                throw Error(ErrorCode::Io, "[cache] group " + access.group +
                                               ": this process is not a member of it");
            group_ = static_cast<long>(gid);
            file_mode_ = 0640;
            dir_mode_ = 02750;
        }
        create_cache_dir(dir_, group_ >= 0 ? 0711 : 0700);
        root_fd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root_fd_ < 0) {
            if (errno == ELOOP)
                throw Error(ErrorCode::Io, "cache directory " + dir_.string() + " is a symlink");
            if (errno == ENOTDIR)
                throw Error(ErrorCode::Io, "cache directory " + dir_.string() + " is not a directory");
            throw_io("cannot open cache directory " + dir_.string());
        }
        // Checked on the open directory, so a name swapped after the check
        // cannot matter.
        struct stat st{};
        if (::fstat(root_fd_, &st) != 0) throw_io("cannot stat cache directory " + dir_.string());
        if (st.st_uid != ::geteuid())
            throw Error(ErrorCode::Io, "cache directory " + dir_.string() + " belongs to another user");
        if (st.st_mode & (S_IWGRP | S_IWOTH))
            throw Error(ErrorCode::Io,
                        "cache directory " + dir_.string() + " is writable by other users");
        if (::faccessat(root_fd_, ".", W_OK | X_OK, AT_EACCESS) != 0)
            throw_io("cache directory " + dir_.string() + " is not writable");
        if (group_ >= 0 && st.st_gid != static_cast<gid_t>(group_) &&
            ::fchown(root_fd_, static_cast<uid_t>(-1), static_cast<gid_t>(group_)) != 0)
            throw_io("cannot give cache directory " + dir_.string() + " to group " + access.group);
        if ((st.st_mode & 07777) != dir_mode_ && ::fchmod(root_fd_, dir_mode_) != 0)
            throw_io("cannot set the mode of cache directory " + dir_.string());
        std::error_code ec;
        dir_ = stdfs::canonical(dir_, ec);
        if (ec) throw Error(ErrorCode::Io, "cannot resolve cache directory: " + ec.message());
        if (::mkdirat(root_fd_, ".locks", 0700) != 0 && errno != EEXIST)
            throw_io("cannot create " + (dir_ / ".locks").string());
        ::fchmodat(root_fd_, ".locks", 0700, 0);
        usage_fd_ = ::openat(root_fd_, ".locks/usage", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (usage_fd_ < 0) throw_io("cannot open " + (dir_ / ".locks" / "usage").string());
        remove_stale_temporaries();
        reconcile();
    } catch (...) {
        if (usage_fd_ >= 0) ::close(usage_fd_);
        if (root_fd_ >= 0) ::close(root_fd_);
        throw;
    }
}

ResultCache::~ResultCache() {
    if (usage_fd_ >= 0) ::close(usage_fd_);
    if (root_fd_ >= 0) ::close(root_fd_);
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
    const std::string rel = std::string(key.substr(0, 2)) + "/" + std::string(key) + std::string(suffix);
    struct stat st{};
    if (::fstatat(root_fd_, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return std::nullopt;
    // A hit makes the entry the most recent: eviction goes by modification
    // time, set explicitly (atime is not kept by relatime/noatime mounts).
    if (now_ns() - mtime_ns_of(st) > std::int64_t(kRecencyGranularityMs) * 1000000) {
        const timespec times[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
        ::utimensat(root_fd_, rel.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
    return p;
}

void ResultCache::ensure_shard(const std::string& shard) {
    auto& ready = shard_ready_[shard_index(shard)];
    const bool created = ::mkdirat(root_fd_, shard.c_str(), dir_mode_ & 0777) == 0;
    if (!created && errno != EEXIST) throw_store("cannot create cache directory " + (dir_ / shard).string());
    if (!created && ready.load(std::memory_order_acquire)) return;
    const int fd = ::openat(root_fd_, shard.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) throw_store("cannot open cache directory " + (dir_ / shard).string());
    struct stat st{};
    bool ok = ::fstat(fd, &st) == 0;
    if (ok && group_ >= 0 && st.st_gid != static_cast<gid_t>(group_))
        ok = ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(group_)) == 0;
    if (ok && (st.st_mode & 07777) != dir_mode_) ok = ::fchmod(fd, dir_mode_) == 0;
    const int e = errno;
    ::close(fd);
    errno = e;
    if (!ok) throw_store("cannot set the mode of cache directory " + (dir_ / shard).string());
    ready.store(true, std::memory_order_release);
}

stdfs::path ResultCache::get_or_create(std::string_view key, std::string_view suffix,
                                       const std::function<void(nifti::ByteSink&)>& produce) {
    if (auto hit = lookup(key, suffix)) return *hit;
    auto final_path = path_for(key, suffix);
    const std::string shard(key.substr(0, 2));
    ensure_shard(shard);
    FileLock lock(dir_ / ".locks" / shard);
    if (auto hit = lookup(key, suffix)) return *hit;   // produced while we waited
    std::string templ = (final_path.parent_path() / (".tmp-" + std::string(key) + "-XXXXXX")).string();
    int fd = ::mkostemp(templ.data(), O_CLOEXEC);
    if (fd < 0) {
        shard_ready_[shard_index(shard)].store(false);   // removed behind our back?
        throw_store("cannot create a cache file in " + final_path.parent_path().string());
    }
    try {
        OwnedFdSink sink(fd);
        struct stat st{};
        if (::fchmod(fd, file_mode_) != 0 || ::fstat(fd, &st) != 0)
            throw_store("cannot set the mode of a cache file");
        if (group_ >= 0 && st.st_gid != static_cast<gid_t>(group_) &&
            ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(group_)) != 0)
            throw_store("cannot give a cache file to the cache group");
        produce(sink);
        const std::uint64_t size = sink.bytes_written();
        if (::close(sink.release()) != 0) throw_store("cannot write cache file");
        Accounting acct(acct_mutex_, usage_fd_);
        evict_locked(acct, max_bytes_, size);
        // Counted before it appears: a process killed in between leaves the
        // total above the truth (more eviction), never below the bound.
        const std::size_t index = shard_index(shard);
        acct.add(index, size);
        acct.flush();
        if (::rename(templ.c_str(), final_path.c_str()) != 0) {
            const int e = errno;
            acct.sub(index, size);
            errno = e;
            throw_store("cannot publish cache file " + final_path.string());
        }
    } catch (...) {
        ::unlink(templ.c_str());
        throw;
    }
    return final_path;
}

std::uint64_t ResultCache::size_bytes() const {
    Accounting acct(acct_mutex_, usage_fd_);
    return acct.total();
}

std::uint64_t ResultCache::reconcile() {
    // Shard by shard, each under the totals lock: a shard's total changes
    // only under that lock, so each is exact, and the other workers wait for
    // one shard's walk at most, not the whole cache's.
    std::vector<Candidate> heap;
    for (std::size_t shard = 0; shard < kShards; ++shard) {
        Accounting acct(acct_mutex_, usage_fd_);
        acct.slots[shard] = walk_shard(shard, true, heap);
        acct.mark_dirty();
    }
    Accounting acct(acct_mutex_, usage_fd_);
    set_candidates(std::move(heap));
    evict_locked(acct, max_bytes_, 0);
    return acct.total();
}

std::uint64_t ResultCache::walk_shard(std::size_t shard, bool fix_modes, std::vector<Candidate>& heap) {
    const std::string name = shard_name(shard);
    const int fd = ::openat(root_fd_, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st{};
    if (fix_modes && ::fstat(fd, &st) == 0) {
        if (group_ >= 0 && st.st_gid != static_cast<gid_t>(group_))
            ::fchown(fd, static_cast<uid_t>(-1), static_cast<gid_t>(group_));
        if ((st.st_mode & 07777) != dir_mode_) ::fchmod(fd, dir_mode_);
    }
    DIR* d = ::fdopendir(fd);
    if (!d) {
        ::close(fd);
        return 0;
    }
    std::uint64_t total = 0;
    // A max-heap on modification time: its top is the newest of the oldest
    // entries kept.
    auto newer = [](const Candidate& a, const Candidate& b) { return a.mtime_ns < b.mtime_ns; };
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;   // ".", "..", temporaries
        if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (fix_modes) {
            if (group_ >= 0 && st.st_gid != static_cast<gid_t>(group_))
                ::fchownat(::dirfd(d), e->d_name, static_cast<uid_t>(-1), static_cast<gid_t>(group_),
                           AT_SYMLINK_NOFOLLOW);
            if ((st.st_mode & 07777) != file_mode_) ::fchmodat(::dirfd(d), e->d_name, file_mode_, 0);
        }
        const auto size = static_cast<std::uint64_t>(st.st_size);
        total += size;
        Candidate c{mtime_ns_of(st), size, st.st_ino, shard, e->d_name};
        if (heap.size() < kMaxCandidates) {
            heap.push_back(std::move(c));
            std::push_heap(heap.begin(), heap.end(), newer);
        } else if (c.mtime_ns < heap.front().mtime_ns) {
            std::pop_heap(heap.begin(), heap.end(), newer);
            heap.back() = std::move(c);
            std::push_heap(heap.begin(), heap.end(), newer);
        }
    }
    ::closedir(d);
    return total;
}

void ResultCache::set_candidates(std::vector<Candidate> heap) {
    // Newest first, so the oldest is taken from the back.
    std::sort(heap.begin(), heap.end(), [](const Candidate& a, const Candidate& b) {
        return a.mtime_ns > b.mtime_ns;
    });
    candidates_ = std::move(heap);
}

void ResultCache::walk_locked(Accounting& acct) {
    std::vector<Candidate> heap;
    for (std::size_t shard = 0; shard < kShards; ++shard) acct.slots[shard] = walk_shard(shard, false, heap);
    acct.mark_dirty();
    set_candidates(std::move(heap));
}

std::uint64_t ResultCache::evict_locked(Accounting& acct, std::uint64_t goal, std::uint64_t incoming) {
    std::uint64_t removed = 0, evicted = 0;
    bool walked = false;
    while (acct.total() + incoming > goal) {
        if (candidates_.empty()) {
            // Entries added since the last walk (by any process) are newer
            // than every remembered one; look for them only now.
            if (walked) break;
            walk_locked(acct);
            walked = true;
            continue;
        }
        const Candidate c = std::move(candidates_.back());
        candidates_.pop_back();
        const std::string rel = shard_name(c.shard) + "/" + c.name;
        struct stat st{};
        // Gone: another process evicted it and took it off the total.
        if (::fstatat(root_fd_, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        // Hit (or replaced) since the walk: it is recent now.
        if (st.st_ino != c.ino || mtime_ns_of(st) != c.mtime_ns) continue;
        if (::unlinkat(root_fd_, rel.c_str(), 0) == 0) {
            acct.sub(c.shard, static_cast<std::uint64_t>(st.st_size));
            removed += static_cast<std::uint64_t>(st.st_size);
            ++evicted;
        }
    }
    if (evicted && on_evict) on_evict(evicted, removed);
    return removed;
}

std::uint64_t ResultCache::evict(std::optional<std::uint64_t> target) {
    std::uint64_t removed = remove_stale_temporaries();
    Accounting acct(acct_mutex_, usage_fd_);
    return removed + evict_locked(acct, target ? *target : max_bytes_, 0);
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
