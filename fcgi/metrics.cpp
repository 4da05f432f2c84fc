// The shared counters file (docs/DEPLOYMENT.md, "Metrics").
//
// Robustness: every counter is one std::atomic<uint64_t> (lock-free and
// address-free on the targets medimg builds for), so a worker killed at any
// instruction leaves each counter either before or after its increment, never
// torn. A histogram's count is the sum of its buckets (never stored apart),
// so buckets and count always agree; only its _sum may miss the one
// observation a killed worker was recording. Creating the file and claiming
// a slot happen under flock(), which the kernel drops when its holder dies;
// the file's magic is written last, so a half-initialised file is
// initialised again. Gauges (busy threads, queued requests) are read only
// from slots whose process is alive, so a killed worker's in-flight requests
// do not stay "busy" for ever.
#include "metrics.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "error.hpp"

namespace medimg::fcgi {
namespace {

using Counter = std::atomic<std::uint64_t>;
using Gauge = std::atomic<std::int64_t>;
static_assert(Counter::is_always_lock_free && Gauge::is_always_lock_free,
              "shared counters need lock-free 64-bit atomics");

constexpr std::uint64_t kMagic = 0x31766d676d69646dULL;   // "mdimgmv1"
constexpr std::array<int, 17> kStatuses = {200, 204, 206, 301, 304, 400, 403, 404, 405,
                                           408, 413, 415, 416, 422, 500, 503, 504};
// Statuses not listed are counted by class ("1xx" … "5xx").
constexpr std::size_t kStatusSlots = kStatuses.size() + 5;
constexpr std::array<double, 12> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,   0.25,   0.5,   1.0,  2.5,   10.0};
constexpr std::size_t kRouteSlots = Metrics::kMaxRoutes + 2;   // + unmatched, refused

std::size_t status_index(int status) {
    for (std::size_t i = 0; i < kStatuses.size(); ++i)
        if (kStatuses[i] == status) return i;
    int cls = status / 100;
    if (cls < 1 || cls > 5) cls = 5;
    return kStatuses.size() + static_cast<std::size_t>(cls - 1);
}

std::string status_label(std::size_t i) {
    if (i < kStatuses.size()) return std::to_string(kStatuses[i]);
    return std::to_string(i - kStatuses.size() + 1) + "xx";
}

// Field 22 of /proc/PID/stat (start time in clock ticks since boot): with
// the pid it names one process, so a reused pid is not taken for the old
// process. 0 when the process is gone or a zombie.
std::uint64_t start_ticks(long pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(stat.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22 && rest >> field; ++i) {
        if (i == 3 && field == "Z") return 0;
        if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
    }
    return 0;
}

// Shortest text that reads back as `v` ("0.0025", not "0.0025000000000000001").
std::string format_number(double v) {
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, res.ptr);
}

std::string escape_label(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

// FNV-1a of the route patterns and the file's shape: workers of different
// builds (other routes, other counters) use different files and never
// misread each other's slots.
std::uint64_t layout_hash(const std::vector<std::string>& routes, std::size_t file_size) {
    std::uint64_t h = 1469598103934665603ULL;
    auto mix = [&](std::string_view s) {
        for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    };
    mix(std::to_string(kRouteSlots) + "/" + std::to_string(kStatusSlots) + "/" +
        std::to_string(kBuckets.size()) + "/" + std::to_string(Metrics::kSlots) + "/" +
        std::to_string(file_size));
    for (const auto& r : routes) mix(r);
    return h;
}

}  // namespace

struct Metrics::Slot {
    Gauge pid;            // 0: never used
    Counter start_ticks;  // of `pid`, see start_ticks()
    Gauge threads;        // configured request threads
    Gauge busy;           // requests being answered
    Gauge queued;         // accepted, waiting for a thread
    Counter cache_hits, cache_misses, evictions, evicted_bytes;
    Counter requests[kRouteSlots][kStatusSlots];
    Counter bytes[kRouteSlots];
    Counter latency[kRouteSlots][kBuckets.size() + 1];   // not cumulative; last: +Inf
    Counter latency_sum_us[kRouteSlots];
};

struct Metrics::File {
    Counter magic;
    Counter starts;     // processes that claimed a slot
    Counter restarts;   // ... the slot of a process that had gone
    Counter no_slot;    // processes that found every slot taken
    Slot slots[Metrics::kSlots];
};

std::unique_ptr<Metrics> Metrics::open(const std::filesystem::path& dir,
                                       const std::vector<std::string>& routes, int threads) {
    if (routes.size() > kMaxRoutes)
        throw Error(ErrorCode::Internal, "metrics: more routes than the counters file holds");
    // In the cache's `.locks/` folder, which the cache's size accounting and
    // eviction skip (docs/DEPLOYMENT.md, "7. Metrics"): never evicted, never
    // counted as cache bytes. Folders created here are 0700.
    std::error_code ec;
    for (const auto& d : {dir, dir / ".locks"}) {
        if (std::filesystem::exists(d, ec)) continue;
        std::filesystem::create_directory(d, ec);
        if (!ec) std::filesystem::permissions(d, std::filesystem::perms::owner_all, ec);
    }
    auto m = std::unique_ptr<Metrics>(new Metrics());
    m->routes_ = routes;
    char name[40];
    std::snprintf(name, sizeof name, "metrics-%016llx",
                  static_cast<unsigned long long>(layout_hash(routes, sizeof(File))));
    m->path_ = dir / ".locks" / name;
    auto fail = [&](const std::string& what) {
        return Error(ErrorCode::Io, "metrics file " + m->path_.string() + ": " + what);
    };
    int fd = ::open(m->path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw fail(std::strerror(errno));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st{};
    if (::fstat(fd, &st) != 0) throw fail(std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw fail("not a regular file");
    if (st.st_uid != ::geteuid()) throw fail("owned by another user");
    // Nobody else may read or write it (docs/DEPLOYMENT.md, "Metrics").
    if ((st.st_mode & 077) != 0 && ::fchmod(fd, 0600) != 0) throw fail(std::strerror(errno));
    if (::flock(fd, LOCK_EX) != 0) throw fail(std::strerror(errno));
    // The size again, under the lock: workers starting together all open the
    // file before the first has sized it, and a size seen before the lock
    // would have the next one truncate (zero) what the first just set up,
    // its slot claim included.
    if (::fstat(fd, &st) != 0) throw fail(std::strerror(errno));
    m->size_ = sizeof(File);
    if (static_cast<std::size_t>(st.st_size) != m->size_ && ::ftruncate(fd, 0) == 0 &&
        ::ftruncate(fd, static_cast<off_t>(m->size_)) != 0)
        throw fail(std::strerror(errno));
    void* map = ::mmap(nullptr, m->size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) throw fail(std::strerror(errno));
    m->file_ = static_cast<File*>(map);
    File& f = *m->file_;
    if (f.magic.load() != kMagic) {
        // New, or a creator died before finishing: start from zeros (the
        // mapping is of a file of zeros or of a partial initialisation).
        std::memset(static_cast<void*>(&f), 0, sizeof f);
        ::msync(map, m->size_, MS_SYNC);
        f.magic.store(kMagic);
    }
    const long self = ::getpid();
    const std::uint64_t ticks = start_ticks(self);
    Slot* dead = nullptr;
    Slot* free_slot = nullptr;
    for (auto& s : f.slots) {
        const auto pid = s.pid.load();
        if (pid == 0) {
            if (!free_slot) free_slot = &s;
        } else if (!dead && start_ticks(pid) != s.start_ticks.load()) {
            dead = &s;
        }
    }
    Slot* slot = dead ? dead : free_slot;
    if (slot) {
        slot->busy.store(0);
        slot->queued.store(0);
        slot->threads.store(threads);
        slot->start_ticks.store(ticks);
        slot->pid.store(self);
        f.starts.fetch_add(1);
        if (dead) f.restarts.fetch_add(1);
    } else {
        f.no_slot.fetch_add(1);
    }
    m->slot_ = slot;
    ::flock(fd, LOCK_UN);
    return m;
}

Metrics::~Metrics() {
    if (file_) ::munmap(file_, size_);
}

void Metrics::count_request(std::size_t route, int status, double seconds,
                            std::uint64_t body_bytes) noexcept {
    if (!slot_ || route >= kRouteSlots) return;
    slot_->requests[route][status_index(status)].fetch_add(1, std::memory_order_relaxed);
    slot_->bytes[route].fetch_add(body_bytes, std::memory_order_relaxed);
    std::size_t b = 0;
    while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
    slot_->latency[route][b].fetch_add(1, std::memory_order_relaxed);
    const double us = seconds > 0 ? std::round(seconds * 1e6) : 0;
    slot_->latency_sum_us[route].fetch_add(static_cast<std::uint64_t>(us), std::memory_order_relaxed);
}

void Metrics::add_busy(int delta) noexcept {
    if (slot_) slot_->busy.fetch_add(delta, std::memory_order_relaxed);
}

void Metrics::add_queued(int delta) noexcept {
    if (slot_) slot_->queued.fetch_add(delta, std::memory_order_relaxed);
}

void Metrics::count_evictions(std::uint64_t entries, std::uint64_t bytes) noexcept {
    if (!slot_) return;
    slot_->evictions.fetch_add(entries, std::memory_order_relaxed);
    slot_->evicted_bytes.fetch_add(bytes, std::memory_order_relaxed);
}

void Metrics::count_cache(bool hit) noexcept {
    if (slot_) (hit ? slot_->cache_hits : slot_->cache_misses).fetch_add(1, std::memory_order_relaxed);
}

std::string Metrics::label(std::size_t route) const {
    if (route < routes_.size()) return escape_label(routes_[route]);
    return route == unmatched() ? "unmatched" : "refused";
}

// Every slot's counters summed; the gauges of live processes only.
struct Metrics::Totals {
    std::uint64_t requests[kRouteSlots][kStatusSlots] = {};
    std::uint64_t bytes[kRouteSlots] = {};
    std::uint64_t latency[kRouteSlots][kBuckets.size() + 1] = {};
    std::uint64_t latency_sum_us[kRouteSlots] = {};
    std::uint64_t hits = 0, misses = 0, evictions = 0, evicted_bytes = 0;
    std::int64_t busy = 0, queued = 0, threads = 0, live = 0;
};

Metrics::Totals Metrics::totals() const {
    Totals t;
    for (const auto& s : file_->slots) {
        const auto pid = s.pid.load();
        if (pid == 0) continue;
        for (std::size_t r = 0; r < kRouteSlots; ++r) {
            for (std::size_t i = 0; i < kStatusSlots; ++i) t.requests[r][i] += s.requests[r][i].load();
            t.bytes[r] += s.bytes[r].load();
            for (std::size_t b = 0; b <= kBuckets.size(); ++b) t.latency[r][b] += s.latency[r][b].load();
            t.latency_sum_us[r] += s.latency_sum_us[r].load();
        }
        t.hits += s.cache_hits.load();
        t.misses += s.cache_misses.load();
        t.evictions += s.evictions.load();
        t.evicted_bytes += s.evicted_bytes.load();
        if (start_ticks(pid) == s.start_ticks.load()) {
            ++t.live;
            t.busy += std::max<std::int64_t>(0, s.busy.load());
            t.queued += std::max<std::int64_t>(0, s.queued.load());
            t.threads += s.threads.load();
        }
    }
    return t;
}

// The exposition text, one metric family after another.
class Metrics::Exposition {
public:
    void head(const char* name, const char* type, const char* help) {
        out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    }
    void line(const std::string& series, const std::string& value) { out_ += series + " " + value + "\n"; }
    // A metric of one unlabelled series.
    template <typename V>
    void single(const char* name, const char* type, const char* help, V value) {
        head(name, type, help);
        line(name, std::to_string(value));
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

// Requests, latency histograms and bytes, by route ("unmatched" and
// "refused" after the patterns); a route without requests has no series.
void Metrics::render_routes(Exposition& x, const Totals& t) const {
    const std::size_t nroutes = routes_.size() + 2;
    x.head("medimg_http_requests_total", "counter", "Requests answered by the pool, by route pattern and status.");
    for (std::size_t r = 0; r < nroutes; ++r)
        for (std::size_t i = 0; i < kStatusSlots; ++i)
            if (t.requests[r][i])
                x.line("medimg_http_requests_total{route=\"" + label(r) + "\",status=\"" + status_label(i) + "\"}",
                       std::to_string(t.requests[r][i]));

    x.head("medimg_http_request_duration_seconds", "histogram",
           "Time from the request's arrival at a thread to the answer written, by route.");
    for (std::size_t r = 0; r < nroutes; ++r) {
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b <= kBuckets.size(); ++b) cumulative += t.latency[r][b];
        if (!cumulative) continue;
        const std::string route = "route=\"" + label(r) + "\"";
        cumulative = 0;
        for (std::size_t b = 0; b <= kBuckets.size(); ++b) {
            cumulative += t.latency[r][b];
            const std::string le = b < kBuckets.size() ? format_number(kBuckets[b]) : "+Inf";
            x.line("medimg_http_request_duration_seconds_bucket{" + route + ",le=\"" + le + "\"}",
                   std::to_string(cumulative));
        }
        x.line("medimg_http_request_duration_seconds_sum{" + route + "}",
               format_number(static_cast<double>(t.latency_sum_us[r]) / 1e6));
        x.line("medimg_http_request_duration_seconds_count{" + route + "}", std::to_string(cumulative));
    }

    x.head("medimg_http_response_bytes_total", "counter",
           "Body bytes of the answers, by route (for X-Sendfile answers: the file the web server sends).");
    for (std::size_t r = 0; r < nroutes; ++r)
        if (t.bytes[r]) x.line("medimg_http_response_bytes_total{route=\"" + label(r) + "\"}", std::to_string(t.bytes[r]));
}

std::string Metrics::render(std::int64_t cache_bytes, std::int64_t cache_max_bytes) const {
    const Totals t = totals();
    Exposition x;
    x.head("medimg_build_info", "gauge", "Version of the medimg-fcgi workers answering (always 1).");
    x.line("medimg_build_info{version=\"" + escape_label(MEDIMG_VERSION) + "\"}", "1");
    render_routes(x, t);
    render_cache(x, t, cache_bytes, cache_max_bytes);
    render_pool(x, t);
    return x.take();
}

// The results cache's counters and, when it is on, its size and bound.
void Metrics::render_cache(Exposition& x, const Totals& t, std::int64_t cache_bytes, std::int64_t cache_max_bytes) {
    x.single("medimg_cache_hits_total", "counter", "Results cache lookups answered from the cache.", t.hits);
    x.single("medimg_cache_misses_total", "counter", "Results cache lookups that computed the result.", t.misses);
    x.single("medimg_cache_evictions_total", "counter",
             "Results cache entries removed to keep the cache under its bound.", t.evictions);
    x.single("medimg_cache_evicted_bytes_total", "counter", "Bytes of the entries evicted.", t.evicted_bytes);
    if (cache_bytes >= 0)
        x.single("medimg_cache_bytes", "gauge", "Bytes held by results cache entries.", cache_bytes);
    if (cache_max_bytes >= 0)
        x.single("medimg_cache_max_bytes", "gauge", "The results cache's size bound ([cache] max_bytes).",
                 cache_max_bytes);
}

// The pool's threads and processes.
void Metrics::render_pool(Exposition& x, const Totals& t) const {
    x.single("medimg_busy_threads", "gauge", "Request threads answering a request now, all live workers.", t.busy);
    x.single("medimg_threads", "gauge", "Request threads of all live workers.", t.threads);
    x.single("medimg_queue_depth", "gauge", "Requests accepted and waiting for a thread, all live workers.", t.queued);
    x.single("medimg_worker_processes", "gauge", "Live worker processes sharing the counters file.", t.live);
    x.single("medimg_worker_starts_total", "counter", "Worker processes started.", file_->starts.load());
    x.single("medimg_worker_restarts_total", "counter",
             "Worker processes started in place of one that had exited (killed, crashed or stopped).",
             file_->restarts.load());
    x.single("medimg_worker_uncounted_total", "counter",
             "Worker processes that found every counter slot held by a live process (their requests are "
             "not counted).",
             file_->no_slot.load());
}

}  // namespace medimg::fcgi
