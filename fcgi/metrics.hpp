// Counters for /metrics shared by every worker process of a pool
// (docs/DEPLOYMENT.md, "Metrics"): one small file of fixed layout in the
// cache directory, mapped MAP_SHARED by each worker, one slot per process,
// lock-free atomic increments. The answering worker sums every slot, so
// /metrics tells the pool's totals however the web server spreads requests.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace medimg::fcgi {

class Metrics {
public:
    // Most routes a layout holds (the router's registration order), and the
    // latency buckets' upper bounds in seconds.
    static constexpr std::size_t kMaxRoutes = 15;
    static constexpr std::size_t kSlots = 128;

    // Opens (creating when missing) `dir`/.locks/metrics-{layout} for the router's
    // `routes` (patterns, registration order) and claims a slot for this
    // process: the slot of a process that is gone (its counts are kept, and
    // the start counts as a restart), else a free one. The file is 0600 and
    // must be owned by this user; folders are created 0700 when missing. Throws
    // Error(Io) naming what is wrong.
    static std::unique_ptr<Metrics> open(const std::filesystem::path& dir,
                                         const std::vector<std::string>& routes, int threads);
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    const std::filesystem::path& path() const noexcept { return path_; }

    // Route indices: 0 .. routes.size()-1 as given to open(); unmatched()
    // for a request no route took, refused() for one the acceptor turned
    // away (queue full).
    std::size_t unmatched() const noexcept { return routes_.size(); }
    std::size_t refused() const noexcept { return routes_.size() + 1; }

    void count_request(std::size_t route, int status, double seconds, std::uint64_t body_bytes) noexcept;
    void add_busy(int delta) noexcept;
    void add_queued(int delta) noexcept;
    void count_cache(bool hit) noexcept;
    void count_evictions(std::uint64_t entries, std::uint64_t bytes) noexcept;

    // The exposition text (format 0.0.4) of every slot's sum. `cache_bytes`
    // and `cache_max_bytes` (negative: no cache) are the results cache's.
    std::string render(std::int64_t cache_bytes, std::int64_t cache_max_bytes) const;

private:
    struct File;
    struct Slot;
    struct Totals;       // every slot summed, for render()
    class Exposition;    // the text render() writes
    Metrics() = default;
    std::string label(std::size_t route) const;
    Totals totals() const;
    void render_routes(Exposition& x, const Totals& t) const;
    static void render_cache(Exposition& x, const Totals& t, std::int64_t cache_bytes,
                             std::int64_t cache_max_bytes);
    void render_pool(Exposition& x, const Totals& t) const;

    std::filesystem::path path_;
    std::vector<std::string> routes_;
    File* file_ = nullptr;
    Slot* slot_ = nullptr;   // null: no free slot (this process is not counted)
    std::size_t size_ = 0;
};

}  // namespace medimg::fcgi
