// The results cache: computed answers (filtered NIfTI, label JSON) stored as
// files under a cache directory, keyed by a hash of the source's identity and
// the normalised request, written atomically, computed once when requested
// concurrently, and kept under a size bound by least-recently-used eviction
// with running totals shared by the processes using one directory.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <sys/types.h>

#include "error.hpp"
#include "nifti/byte_io.hpp"

namespace medimg::cache {

// What identifies one version of a source file: a changed file gets a new
// identity (and so new cache keys and ETags).
struct SourceIdentity {
    std::uint64_t dev = 0, ino = 0, size = 0;
    std::int64_t mtime_ns = 0;
    bool exists = true;

    // Throws Error(NotFound) when `file` cannot be stat'ed.
    static SourceIdentity of(const std::filesystem::path& file);
    // As of(), with exists = false (and zeros) for a missing file: for
    // optional companions such as label sidecars.
    static SourceIdentity of_optional(const std::filesystem::path& file);
    std::string text() const;   // stable text form, for keys
};

// 128-bit non-cryptographic hash of `text` as 32 lowercase hex digits.
std::string hash_hex(std::string_view text);

// Error(Io) raised because a result could not be stored (a full, read-only
// or otherwise unwritable file system: ENOSPC, EROFS, EACCES, EDQUOT, …),
// as opposed to a failure of the computation itself. Callers may answer
// without storing. Whatever was partly written has been removed.
class StoreError : public Error {
public:
    explicit StoreError(const std::string& detail) : Error(ErrorCode::Io, detail) {}
};

// A ByteSink writing to a descriptor it owns; closed on destruction. write()
// throws StoreError.
class OwnedFdSink final : public nifti::ByteSink {
public:
    explicit OwnedFdSink(int fd) : fd_(fd) {}
    ~OwnedFdSink() override;
    OwnedFdSink(OwnedFdSink&& other) noexcept : fd_(other.release()), written_(other.written_) {}
    OwnedFdSink& operator=(OwnedFdSink&&) = delete;
    OwnedFdSink(const OwnedFdSink&) = delete;
    OwnedFdSink& operator=(const OwnedFdSink&) = delete;
    void write(const std::uint8_t* data, std::size_t n) override;   // throws StoreError
    int fd() const noexcept { return fd_; }
    int release() noexcept { int f = fd_; fd_ = -1; return f; }
    std::uint64_t bytes_written() const noexcept { return written_; }

private:
    int fd_;
    std::uint64_t written_ = 0;
};

// An unlinked temporary file (O_TMPFILE in `dir`, else an unlinked mkstemp
// file) for results that are streamed and never kept. Throws StoreError.
OwnedFdSink make_anonymous_file(const std::filesystem::path& dir);

// Who may read the cache besides its owner (docs/SECURITY.md, "Results
// cache"): nobody, or one group (the web server's, for X-Sendfile).
struct CacheAccess {
    // Empty: files 0600, folders 0700. A group name or number: files 0640
    // and folders 02750 of that group, which this process must belong to
    // (its group or a supplementary one) unless it runs as root.
    std::string group;
};

class ResultCache {
public:
    // Opens the cache in `dir`, creating it (and missing parents, 0700) when
    // absent. Throws Error(Io) when `dir` is a symlink, not a directory,
    // owned by another user, writable by group or others, not writable, or
    // when the group of `access` is unknown or not ours. The cache's folders
    // and files get the modes of `access` (existing ones are corrected), the
    // running size totals are reconciled with one walk, stale temporaries
    // are removed (remove_stale_temporaries()), and entries past
    // `max_bytes` are evicted.
    //
    // The directory is opened once and used through that descriptor; every
    // public operation first checks that the descriptor still names the
    // directory at `dir` (docs/DEPLOYMENT.md, "Results cache"). When `dir`
    // was removed or replaced, the cache is opened again at `dir` with the
    // same checks (created when missing, totals reconciled with what is
    // there); when that fails, the operation throws StoreError (size_bytes(),
    // reconcile() and the operations that may store) or finds nothing
    // (lookup()), so callers answer without the cache.
    ResultCache(std::filesystem::path dir, std::uint64_t max_bytes, CacheAccess access = {});
    ~ResultCache();
    ResultCache(const ResultCache&) = delete;
    ResultCache& operator=(const ResultCache&) = delete;

    const std::filesystem::path& dir() const noexcept { return dir_; }
    std::uint64_t max_bytes() const noexcept { return max_bytes_; }

    // Told after an eviction pass that removed entries: how many, and their
    // bytes (the workers' /metrics count them). Set before first use.
    std::function<void(std::uint64_t entries, std::uint64_t bytes)> on_evict;

    // dir/ab/abcdef…{suffix} for a 32-hex key.
    std::filesystem::path path_for(std::string_view key, std::string_view suffix) const;

    // The entry's path when it exists. A hit is recorded for eviction: the
    // entry's modification time is set to now when it is older than
    // kRecencyGranularityMs.
    std::optional<std::filesystem::path> lookup(std::string_view key, std::string_view suffix) const;
    static constexpr int kRecencyGranularityMs = 1000;

    // The entry, computing it with `produce` when missing. Concurrent callers
    // for one key (threads or processes) compute it once: a lock file
    // (flock) serialises producers, and the result appears by rename, so no
    // reader ever sees a partial file. `produce` writes the whole result to
    // the sink; if it throws, nothing is left behind and the error
    // propagates. When the entry cannot be stored (directory, lock file,
    // temporary, write, close or rename fails) it throws StoreError, again
    // leaving nothing behind. Before the entry is published, least recently
    // used entries are evicted so that the cache holds at most max_bytes
    // with it (or only it, when it alone is larger).
    std::filesystem::path get_or_create(std::string_view key, std::string_view suffix,
                                        const std::function<void(nifti::ByteSink&)>& produce);

    // Removes least recently used entries (by modification time, which hits
    // refresh) until the total is at most `target` bytes (default:
    // max_bytes), after remove_stale_temporaries(). Returns bytes removed
    // (temporaries included).
    std::uint64_t evict(std::optional<std::uint64_t> target = std::nullopt);
    // Removes the `.tmp-*` files that producers killed mid-write left behind,
    // safely while other threads and processes produce: a shard whose lock
    // file can be locked without waiting has no producer writing in it, so
    // its temporaries are all stale; a shard locked by a producer is skipped.
    // Runs when the cache is opened and from evict(). Never throws; returns
    // bytes removed.
    std::uint64_t remove_stale_temporaries() noexcept;
    // Bytes held by entries: the running total shared by every process using
    // the directory (no walk).
    std::uint64_t size_bytes() const;
    // Walks the whole cache and sets the running totals to what is there
    // (entries removed or added behind the cache's back), one shard at a
    // time under the totals lock; also corrects modes, then evicts past
    // max_bytes. Runs when the cache is opened. Returns the total.
    std::uint64_t reconcile();

private:
    struct Candidate;
    class Accounting;
    class RootGuard;
    struct Root {
        int root_fd = -1;
        int usage_fd = -1;
        dev_t dev = 0;
        ino_t ino = 0;
    };
    // Opens `path` as the cache directory with the constructor's checks;
    // throws Error(Io). Leaves nothing open when it throws.
    Root open_root(const std::filesystem::path& path) const;
    // True when root_fd_ is still the directory at dir_ (root_mutex_ held).
    bool root_current() const;
    // Holds root_mutex_ shared, with the descriptors current: reopens the
    // directory (exclusively) first when it was removed or replaced. Throws
    // StoreError when it cannot be opened again.
    RootGuard hold_root() const;
    void reopen_root();   // root_mutex_ held exclusively
    std::optional<std::filesystem::path> lookup_unlocked(std::string_view key,
                                                         std::string_view suffix) const;
    std::uint64_t remove_stale_temporaries_unlocked() noexcept;
    std::uint64_t reconcile_unlocked();
    // One shard's entry bytes; its oldest entries go into `heap` (at most
    // kMaxCandidates in all); with `fix_modes`, modes and group corrected.
    std::uint64_t walk_shard(std::size_t shard, bool fix_modes, std::vector<Candidate>& heap);
    void set_candidates(std::vector<Candidate> heap);   // under acct_mutex_
    void walk_locked(Accounting& acct);                  // every shard, totals exact
    std::uint64_t evict_locked(Accounting& acct, std::uint64_t goal, std::uint64_t incoming);
    void ensure_shard(const std::string& shard);

    std::filesystem::path dir_;
    std::uint64_t max_bytes_;
    // The open directory and `.locks/usage` (per-shard totals, under
    // flock). Replaced only under root_mutex_ held exclusively; every other
    // use holds it shared, so no descriptor is closed while in use.
    int root_fd_ = -1;
    int usage_fd_ = -1;
    dev_t root_dev_ = 0;
    ino_t root_ino_ = 0;
    mutable std::shared_mutex root_mutex_;
    mode_t file_mode_ = 0600;
    mode_t dir_mode_ = 0700;
    long group_ = -1;             // gid of CacheAccess::group, or -1
    mutable std::mutex acct_mutex_;   // threads of this process; flock: processes
    std::vector<Candidate> candidates_;   // oldest last (a stack), acct_mutex_
    std::array<std::atomic<bool>, 256> shard_ready_{};
};

// A small thread-safe LRU of strings (rendered JSON answers) in memory.
class MemoryLru {
public:
    explicit MemoryLru(std::size_t capacity) : capacity_(capacity) {}
    std::shared_ptr<const std::string> get(const std::string& key);
    void put(const std::string& key, std::shared_ptr<const std::string> value);
    std::size_t size() const;

private:
    using Item = std::pair<std::string, std::shared_ptr<const std::string>>;
    std::size_t capacity_;
    mutable std::mutex mutex_;
    std::list<Item> order_;   // front: most recent
    std::unordered_map<std::string, std::list<Item>::iterator> index_;
};

}  // namespace medimg::cache
