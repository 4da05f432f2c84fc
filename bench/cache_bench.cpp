// The cost of a results-cache miss (get_or_create of a new key) in a cache
// holding N entries against an empty one, with room left and at the bound
// (every miss evicts); also the time to open the cache (its one walk).
//
//   medimg_cache_bench [--entries 100000] [--misses 2000] [--entry-bytes 1024]
//                      [--rounds 3] [--dir DIR]
//
// Prints a Markdown table; see bench/README.md and docs/PERFORMANCE.md. With
// --dir the filled caches are kept there and reused by the next run.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "cache/result_cache.hpp"

namespace stdfs = std::filesystem;
using medimg::cache::ResultCache;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
    std::uint64_t entries = 100000, misses = 2000, entry_bytes = 1024;
    int rounds = 3;
    stdfs::path dir;
};

std::string payload;

void produce(medimg::nifti::ByteSink& sink) {
    sink.write(reinterpret_cast<const std::uint8_t*>(payload.data()), payload.size());
}

void fill(ResultCache& cache, const std::string& tag, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i)
        cache.get_or_create(medimg::cache::hash_hex(tag + std::to_string(i)), ".nii", produce);
}

struct Stats {
    double median_us, p99_us, max_us, mean_us;
};

void time_misses(ResultCache& cache, const std::string& tag, std::uint64_t n, std::vector<double>& us) {
    for (std::uint64_t i = 0; i < n; ++i) {
        const auto key = medimg::cache::hash_hex(tag + std::to_string(i));
        const auto t0 = Clock::now();
        cache.get_or_create(key, ".nii", produce);
        us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
}

Stats summarize(std::vector<double> us) {
    if (us.empty()) return {0, 0, 0, 0};
    double sum = 0;
    for (double v : us) sum += v;
    std::sort(us.begin(), us.end());
    return {us[us.size() / 2], us[std::min(us.size() - 1, us.size() * 99 / 100)], us.back(),
            sum / double(us.size())};
}

void row(const char* what, std::uint64_t entries, const Stats& s) {
    std::printf("| %s | %llu | %.1f | %.1f | %.1f | %.1f |\n", what,
                static_cast<unsigned long long>(entries), s.median_us, s.mean_us, s.p99_us, s.max_us);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "cache_bench: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--entries") o.entries = std::stoull(next());
        else if (a == "--misses") o.misses = std::stoull(next());
        else if (a == "--entry-bytes") o.entry_bytes = std::stoull(next());
        else if (a == "--dir") o.dir = next();
        else if (a == "--rounds") o.rounds = std::stoi(next());
        else {
            std::fprintf(stderr, "usage: medimg_cache_bench [--entries N] [--misses M] "
                                 "[--entry-bytes B] [--rounds R] [--dir DIR]\n");
            return 2;
        }
    }
    const bool keep = !o.dir.empty();   // a given --dir is kept and reused
    if (o.dir.empty()) {
        std::string templ = (stdfs::temp_directory_path() / "medimg-cache-bench-XXXXXX").string();
        if (!::mkdtemp(templ.data())) return 1;
        o.dir = templ;
    }
    payload.assign(o.entry_bytes, 'c');
    const std::uint64_t unbounded = ~std::uint64_t(0) >> 1;

    // Both caches are filled first, then timed in alternating rounds, so
    // that a busy moment of a shared machine does not land on one side only.
    std::vector<std::pair<std::uint64_t, double>> opens;
    std::vector<stdfs::path> dirs;
    for (const std::uint64_t n : {std::uint64_t(0), o.entries}) {
        dirs.push_back(o.dir / ("n" + std::to_string(n)));
        if (stdfs::exists(dirs.back() / ".filled")) continue;   // kept from an earlier run (--dir)
        ResultCache cache(dirs.back(), unbounded);
        std::fprintf(stderr, "filling %llu entries\n", static_cast<unsigned long long>(n));
        fill(cache, "fill", n);
        // The empty cache is one that has been used and emptied: its 256
        // shard folders exist, as in the full one.
        if (n == 0) {
            fill(cache, "warm", o.misses);
            cache.evict(0);
        }
        std::ofstream(dirs.back() / ".filled") << n << "\n";
    }
    ::sync();   // the fill's writeback would otherwise slow the first round down
    struct Series {
        const char* what;
        std::uint64_t entries;
        std::vector<double> us;
    };
    std::vector<Series> series = {{"room left", 0, {}}, {"room left", o.entries, {}},
                                  {"at the bound (evicts)", o.entries, {}}};
    for (int round = 0; round < o.rounds; ++round) {
        for (std::size_t i = 0; i < dirs.size(); ++i) {
            const std::uint64_t n = i == 0 ? 0 : o.entries;
            const auto t0 = Clock::now();
            ResultCache cache(dirs[i], unbounded);
            opens.push_back({n, std::chrono::duration<double, std::milli>(Clock::now() - t0).count()});
            const std::string tag = "r" + std::to_string(round) + "-";
            time_misses(cache, tag + "room", o.misses, series[i].us);
            if (n > 0) {
                // At the bound: every miss evicts one entry first.
                ResultCache full(dirs[i], cache.size_bytes());
                time_misses(full, tag + "full", o.misses, series[2].us);
            }
        }
    }
    std::printf("| miss | entries | median µs | mean µs | p99 µs | max µs |\n|---|---|---|---|---|---|\n");
    for (auto& s : series) row(s.what, s.entries, summarize(s.us));
    std::printf("\n");
    for (const auto& [n, ms] : opens)
        std::printf("open with %llu entries (one walk): %.1f ms\n", static_cast<unsigned long long>(n), ms);
    if (!keep) {
        std::error_code ec;
        stdfs::remove_all(o.dir, ec);
    }
    return 0;
}
