// ResultCache: atomic entries, compute-once, no partial files on failure,
// LRU eviction under the size bound; MemoryLru.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "cache/result_cache.hpp"
#include "catch.hpp"
#include "error.hpp"

namespace stdfs = std::filesystem;
using medimg::Error;
using medimg::ErrorCode;
using medimg::cache::ResultCache;

namespace {

struct CacheDir {
    stdfs::path dir;
    CacheDir() {
        std::string templ = (stdfs::temp_directory_path() / "medimg-cache-test-XXXXXX").string();
        dir = ::mkdtemp(templ.data());
    }
    ~CacheDir() {
        std::error_code ec;
        stdfs::remove_all(dir, ec);
    }
};

void write_text(medimg::nifti::ByteSink& sink, const std::string& s) {
    sink.write(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

std::string read_text(const stdfs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// Regular files under `dir`, the lock directory excluded.
std::vector<stdfs::path> entries(const stdfs::path& dir) {
    std::vector<stdfs::path> out;
    for (auto& e : stdfs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && e.path().parent_path().filename() != ".locks")
            out.push_back(e.path());
    return out;
}

void set_atime(const stdfs::path& p, std::time_t when) {
    timespec times[2] = {{when, 0}, {when, 0}};
    ::utimensat(AT_FDCWD, p.c_str(), times, 0);
}

}  // namespace

TEST_CASE("cache: keys are stable 32-hex hashes", "[cache]") {
    auto a = medimg::cache::hash_hex("filter|1:2:3:4|ids=1,5");
    CHECK(a.size() == 32);
    CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(a == medimg::cache::hash_hex("filter|1:2:3:4|ids=1,5"));
    CHECK(a != medimg::cache::hash_hex("filter|1:2:3:4|ids=1,6"));
    CHECK(medimg::cache::hash_hex("") != medimg::cache::hash_hex(std::string(1, '\0')));
}

TEST_CASE("cache: an entry is produced once and then found", "[cache]") {
    CacheDir d;
    ResultCache cache(d.dir / "c", 1 << 20);
    const auto key = medimg::cache::hash_hex("one");
    int calls = 0;
    auto produce = [&](medimg::nifti::ByteSink& s) {
        ++calls;
        write_text(s, "payload");
    };
    CHECK_FALSE(cache.lookup(key, ".nii.gz"));
    auto p1 = cache.get_or_create(key, ".nii.gz", produce);
    auto p2 = cache.get_or_create(key, ".nii.gz", produce);
    CHECK(calls == 1);
    CHECK(p1 == p2);
    CHECK(p1 == cache.dir() / key.substr(0, 2) / (key + ".nii.gz"));
    CHECK(read_text(p1) == "payload");
    CHECK(cache.lookup(key, ".nii.gz") == p1);
}

TEST_CASE("cache: a failing producer leaves nothing behind", "[cache]") {
    CacheDir d;
    ResultCache cache(d.dir, 1 << 20);
    const auto key = medimg::cache::hash_hex("fails");
    auto produce = [&](medimg::nifti::ByteSink& s) {
        write_text(s, "half of it");
        throw Error(ErrorCode::NonIntegralLabels, "value 1.5 is not a label");
    };
    CHECK_THROWS_AS(cache.get_or_create(key, ".nii", produce), Error);
    CHECK(entries(d.dir).empty());
    CHECK_FALSE(cache.lookup(key, ".nii"));
}

TEST_CASE("cache: concurrent requests for one key compute it once", "[cache]") {
    CacheDir d;
    ResultCache cache(d.dir, 1 << 20);
    const auto key = medimg::cache::hash_hex("concurrent");
    std::atomic<int> calls{0};
    std::vector<std::thread> threads;
    std::vector<stdfs::path> results(8);
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&, i] {
            results[i] = cache.get_or_create(key, ".json", [&](medimg::nifti::ByteSink& s) {
                ++calls;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                write_text(s, "{}");
            });
        });
    for (auto& t : threads) t.join();
    CHECK(calls == 1);
    for (auto& r : results) CHECK(r == results[0]);
    CHECK(entries(d.dir).size() == 1);
}

TEST_CASE("cache: eviction removes least recently used entries past the bound", "[cache]") {
    CacheDir d;
    ResultCache cache(d.dir, 12000);   // evicts down to 10800
    std::vector<stdfs::path> paths;
    const std::time_t now = ::time(nullptr);
    for (int i = 0; i < 4; ++i) {
        auto key = medimg::cache::hash_hex("entry" + std::to_string(i));
        paths.push_back(cache.get_or_create(key, ".nii", [&](medimg::nifti::ByteSink& s) {
            write_text(s, std::string(3000, 'x'));
        }));
        // entry 0 is the oldest use, entry 3 the newest
        set_atime(paths.back(), now - 1000 + i * 100);
    }
    CHECK(cache.size_bytes() == 12000);
    auto removed = cache.evict(std::nullopt, 0);
    CHECK(removed == 3000);
    CHECK_FALSE(stdfs::exists(paths[0]));
    CHECK(stdfs::exists(paths[1]));
    CHECK(stdfs::exists(paths[3]));
    CHECK(cache.size_bytes() == 9000);

    SECTION("recently used entries survive even past the bound") {
        for (auto& p : paths)
            if (stdfs::exists(p)) set_atime(p, now);
        CHECK(cache.evict(0, 60) == 0);
        CHECK(cache.size_bytes() == 9000);
    }
    SECTION("insertion past the bound evicts") {
        auto key = medimg::cache::hash_hex("big");
        set_atime(paths[1], now - 3600);
        set_atime(paths[2], now - 3600);
        set_atime(paths[3], now - 3600);
        cache.get_or_create(key, ".nii", [&](medimg::nifti::ByteSink& s) {
            write_text(s, std::string(4000, 'y'));
        });
        CHECK(cache.size_bytes() <= 10800);
        CHECK(cache.lookup(key, ".nii"));
    }
}

TEST_CASE("cache: temporaries of dead producers are swept, live producers' are kept", "[cache]") {
    CacheDir d;
    stdfs::create_directories(d.dir / "ab");
    stdfs::create_directories(d.dir / "cd");
    const auto stale = d.dir / "ab" / ".tmp-ab0123-Xq1w2e";
    const auto live = d.dir / "cd" / ".tmp-cd4567-Rt5y6u";
    std::ofstream(stale) << std::string(100, 's');
    std::ofstream(live) << std::string(50, 'l');
    // A producer writing in shard cd holds its lock through another open
    // file description (another process, or another thread of this one).
    stdfs::create_directories(d.dir / ".locks");
    const int held = ::open((d.dir / ".locks" / "cd").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    REQUIRE(held >= 0);
    REQUIRE(::flock(held, LOCK_EX) == 0);

    SECTION("when the cache is opened (a worker starts)") {
        ResultCache cache(d.dir, 1 << 20);
        CHECK_FALSE(stdfs::exists(stale));
        CHECK(stdfs::exists(live));
        ::close(held);   // the producer finished or died
        CHECK(cache.remove_stale_temporaries() == 50);
        CHECK_FALSE(stdfs::exists(live));
    }
    SECTION("by evict(), whatever the temporaries' age") {
        ResultCache cache(d.dir, 1 << 20);
        std::ofstream(stale) << std::string(100, 's');
        CHECK(cache.evict(std::nullopt, 0) == 100);
        CHECK_FALSE(stdfs::exists(stale));
        CHECK(stdfs::exists(live));
        ::close(held);
        CHECK(cache.evict(std::nullopt, 0) == 50);
        CHECK(entries(d.dir).empty());
    }
}

TEST_CASE("cache: a producer's temporary survives a sweep and its entry is complete", "[cache]") {
    CacheDir d;
    ResultCache cache(d.dir, 1 << 20);
    const auto key = medimg::cache::hash_hex("swept while produced");
    std::uint64_t swept = 1;
    auto path = cache.get_or_create(key, ".json", [&](medimg::nifti::ByteSink& s) {
        write_text(s, std::string(1000, 'a'));
        swept = cache.remove_stale_temporaries();   // e.g. another thread's evict()
        write_text(s, std::string(1000, 'b'));
    });
    CHECK(swept == 0);
    CHECK(read_text(path) == std::string(1000, 'a') + std::string(1000, 'b'));
    CHECK(entries(d.dir).size() == 1);
}

TEST_CASE("cache: a cache directory owned by someone else or not a directory is refused", "[cache]") {
    CacheDir d;
    std::ofstream(d.dir / "file") << "x";
    CHECK_THROWS_AS(ResultCache(d.dir / "file", 1), Error);
    stdfs::create_symlink(d.dir / "file", d.dir / "link");
    CHECK_THROWS_AS(ResultCache(d.dir / "link", 1), Error);
}

TEST_CASE("cache: anonymous files vanish with their descriptor", "[cache]") {
    CacheDir d;
    {
        auto sink = medimg::cache::make_anonymous_file(d.dir);
        write_text(sink, "streamed");
        CHECK(sink.bytes_written() == 8);
    }
    CHECK(entries(d.dir).empty());
}

TEST_CASE("cache: memory LRU keeps the most recent entries", "[cache][lru]") {
    medimg::cache::MemoryLru lru(2);
    auto v = [](const char* s) { return std::make_shared<const std::string>(s); };
    lru.put("a", v("1"));
    lru.put("b", v("2"));
    CHECK(lru.get("a"));   // a is now most recent
    lru.put("c", v("3"));  // evicts b
    CHECK_FALSE(lru.get("b"));
    CHECK(*lru.get("a") == "1");
    CHECK(*lru.get("c") == "3");
    CHECK(lru.size() == 2);
}
