// ResultCache: atomic entries, compute-once, no partial files on failure,
// LRU eviction under the size bound; MemoryLru.
#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
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

// Bytes of the entries on disk (temporaries and the lock directory aside).
std::uint64_t disk_bytes(const stdfs::path& dir) {
    std::uint64_t total = 0;
    for (auto& p : entries(dir))
        if (p.filename().string().rfind(".tmp-", 0) != 0) total += stdfs::file_size(p);
    return total;
}

// disk_bytes() while holding the cache's totals lock, so that no thread or
// process publishes or evicts during the count; ~0 when the lock cannot be
// taken (no Catch2 assertion: it runs on a sampling thread).
std::uint64_t locked_disk_bytes(const stdfs::path& dir) {
    const int fd = ::open((dir / ".locks" / "usage").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) return ~std::uint64_t(0);
    std::uint64_t total = 0;
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator(dir, ec); !ec && it != stdfs::recursive_directory_iterator();
         it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (name == ".locks") {
            it.disable_recursion_pending();
            continue;
        }
        std::error_code e2;
        if (name.rfind(".tmp-", 0) != 0 && it->is_regular_file(e2)) total += it->file_size(e2);
    }
    ::close(fd);
    return total;
}

// Samples locked_disk_bytes() every 200 µs on a thread until stop(), which
// returns the largest total seen.
class BoundSampler {
public:
    explicit BoundSampler(stdfs::path dir) : dir_(std::move(dir)), thread_([this] {
        while (!done_) {
            worst_ = std::max(worst_, locked_disk_bytes(dir_));
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    }) {}
    ~BoundSampler() { stop(); }
    std::uint64_t stop() {
        done_ = true;
        if (thread_.joinable()) thread_.join();
        return worst_;
    }

private:
    stdfs::path dir_;
    std::atomic<bool> done_{false};
    std::uint64_t worst_ = 0;
    std::thread thread_;
};

// Sets both access and modification time (the recency eviction goes by).
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
    // A cryptographic hash (SHA-256, first 128 bits; FIPS 180-4's "abc"
    // example): nobody who names files can build a colliding key.
    CHECK(medimg::cache::hash_hex("abc") == "ba7816bf8f01cfea414140de5dae2223");
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
    ResultCache cache(d.dir, 12000);
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
    CHECK(cache.evict() == 0);   // at the bound, not past it
    CHECK(cache.evict(10000) == 3000);
    CHECK_FALSE(stdfs::exists(paths[0]));
    CHECK(stdfs::exists(paths[1]));
    CHECK(stdfs::exists(paths[3]));
    CHECK(cache.size_bytes() == 9000);

    SECTION("insertion past the bound evicts before the entry appears") {
        auto key = medimg::cache::hash_hex("big");
        cache.get_or_create(key, ".nii", [&](medimg::nifti::ByteSink& s) {
            write_text(s, std::string(4000, 'y'));
        });
        CHECK(cache.size_bytes() == 10000);   // 9000 + 4000 > 12000: entry 1 went
        CHECK(disk_bytes(d.dir) == 10000);
        CHECK_FALSE(stdfs::exists(paths[1]));
        CHECK(cache.lookup(key, ".nii"));
    }
    SECTION("an entry larger than the bound is kept alone") {
        auto key = medimg::cache::hash_hex("huge");
        cache.get_or_create(key, ".nii", [&](medimg::nifti::ByteSink& s) {
            write_text(s, std::string(20000, 'z'));
        });
        CHECK(entries(d.dir).size() == 1);
        CHECK(cache.size_bytes() == 20000);
    }
}

TEST_CASE("cache: a hit makes an entry recent, whatever its age", "[cache]") {
    // A hit 1 s old was evicted when hits refreshed the access time at most
    // once a minute.
    CacheDir d;
    ResultCache cache(d.dir, 4000);
    const std::time_t now = ::time(nullptr);
    std::vector<std::string> keys;
    std::vector<stdfs::path> paths;
    for (int i = 0; i < 4; ++i) {
        keys.push_back(medimg::cache::hash_hex("recency" + std::to_string(i)));
        paths.push_back(cache.get_or_create(keys.back(), ".json", [&](medimg::nifti::ByteSink& s) {
            write_text(s, std::string(1000, 'r'));
        }));
        set_atime(paths.back(), now - 30 + i);   // entry 0 the oldest
    }
    REQUIRE(cache.lookup(keys[0], ".json"));   // hit on the oldest
    cache.get_or_create(medimg::cache::hash_hex("newcomer"), ".json",
                        [&](medimg::nifti::ByteSink& s) { write_text(s, std::string(1000, 'n')); });
    CHECK(stdfs::exists(paths[0]));         // just hit: kept
    CHECK_FALSE(stdfs::exists(paths[1]));   // the least recently used went
    CHECK(stdfs::exists(paths[2]));
    CHECK(stdfs::exists(paths[3]));
    CHECK(cache.size_bytes() == 4000);
}

TEST_CASE("cache: modes grant nothing to others whatever the umask", "[cache][modes]") {
    CacheDir d;
    const mode_t old_umask = ::umask(022);
    struct Restore {
        mode_t m;
        ~Restore() { ::umask(m); }
    } restore{old_umask};
    auto mode_of = [](const stdfs::path& p) {
        struct stat st{};
        REQUIRE(::lstat(p.c_str(), &st) == 0);
        return st.st_mode & 07777;
    };
    const auto key = medimg::cache::hash_hex("modes");

    SECTION("no group: owner only") {
        ResultCache cache(d.dir / "c", 1 << 20);
        auto p = cache.get_or_create(key, ".nii", [&](medimg::nifti::ByteSink& s) { write_text(s, "x"); });
        CHECK(mode_of(cache.dir()) == 0700);
        CHECK(mode_of(p.parent_path()) == 0700);
        CHECK(mode_of(p) == 0600);
        CHECK(mode_of(cache.dir() / ".locks") == 0700);
        CHECK(mode_of(cache.dir() / ".locks" / "usage") == 0600);
        CHECK(mode_of(cache.dir() / ".locks" / key.substr(0, 2)) == 0600);
    }
    SECTION("entries of an older version (0644 files, 0755 folders) are corrected at open") {
        stdfs::create_directories(d.dir / "c" / key.substr(0, 2));
        const auto old = d.dir / "c" / key.substr(0, 2) / (key + ".nii");
        std::ofstream(old) << "old";
        ::chmod(old.c_str(), 0644);
        ::chmod((d.dir / "c").c_str(), 0755);
        ResultCache cache(d.dir / "c", 1 << 20);
        CHECK(mode_of(d.dir / "c") == 0700);
        CHECK(mode_of(old.parent_path()) == 0700);
        CHECK(mode_of(old) == 0600);
        CHECK(cache.size_bytes() == 3);
    }
    SECTION("a configured group reads, nobody else") {
        const gid_t gid = ::getegid();
        ResultCache cache(d.dir / "c", 1 << 20, {std::to_string(gid)});
        auto p = cache.get_or_create(key, ".nii", [&](medimg::nifti::ByteSink& s) { write_text(s, "x"); });
        CHECK(mode_of(cache.dir()) == 02750);
        CHECK(mode_of(p.parent_path()) == 02750);
        CHECK(mode_of(p) == 0640);
        struct stat st{};
        REQUIRE(::stat(p.c_str(), &st) == 0);
        CHECK(st.st_gid == gid);
    }
    SECTION("a group this process is not in is refused") {
        // gid 0 (root): not ours unless the tests run as root.
        std::vector<gid_t> groups(256);
        const int n = ::getgroups(int(groups.size()), groups.data());
        groups.resize(n > 0 ? std::size_t(n) : 0);
        if (::getegid() != 0 && std::find(groups.begin(), groups.end(), gid_t(0)) == groups.end())
            CHECK_THROWS_AS(ResultCache(d.dir / "c", 1, {"0"}), Error);
        if (::geteuid() == 0) {
            // As root (which may give files to any group), check in a child
            // that drops to nobody: exit 0 when the group is refused.
            const pid_t child = ::fork();
            REQUIRE(child >= 0);
            if (child == 0) {
                int rc = 3;
                if (::setgroups(0, nullptr) == 0 && ::setgid(65534) == 0 && ::setuid(65534) == 0) {
                    try {
                        ResultCache refused(d.dir / "c", 1, {"0"});
                        rc = 1;
                    } catch (const Error& e) {
                        rc = std::string(e.what()).find("not a member") != std::string::npos ? 0 : 2;
                    }
                }
                ::_exit(rc);
            }
            int status = 0;
            ::waitpid(child, &status, 0);
            CHECK(WIFEXITED(status));
            CHECK(WEXITSTATUS(status) == 0);
        }
        CHECK_THROWS_AS(ResultCache(d.dir / "c2", 1, {"no-such-group-medimg"}), Error);
    }
}

TEST_CASE("cache: the bound holds under a burst of misses from many threads", "[cache][bound]") {
    CacheDir d;
    constexpr std::uint64_t kMax = 20000, kEntry = 1000;
    ResultCache cache(d.dir, kMax);
    BoundSampler sampler(d.dir);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 100; ++i)
                cache.get_or_create(medimg::cache::hash_hex("burst" + std::to_string(t * 1000 + i)), ".nii",
                                    [&](medimg::nifti::ByteSink& s) { write_text(s, std::string(kEntry, 'b')); });
        });
    for (auto& th : threads) th.join();
    CHECK(sampler.stop() <= kMax);
    CHECK(disk_bytes(d.dir) <= kMax);
    CHECK(disk_bytes(d.dir) >= kMax - kEntry);   // and the room is used
    CHECK(cache.size_bytes() == disk_bytes(d.dir));
}

TEST_CASE("cache: the bound holds with two processes sharing the directory", "[cache][bound]") {
    CacheDir d;
    constexpr std::uint64_t kMax = 20000, kEntry = 1000;
    { ResultCache create(d.dir, kMax); }
    auto burst = [&](const char* who) {
        ResultCache cache(d.dir, kMax);
        for (int i = 0; i < 200; ++i)
            cache.get_or_create(medimg::cache::hash_hex(std::string(who) + std::to_string(i)), ".nii",
                                [&](medimg::nifti::ByteSink& s) { write_text(s, std::string(kEntry, 'p')); });
        return cache.size_bytes();
    };
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        int rc = 1;
        try {
            rc = burst("child") <= kMax ? 0 : 2;
        } catch (...) {
        }
        ::_exit(rc);
    }
    BoundSampler sampler(d.dir);
    std::uint64_t parent_total = 0;
    std::string failure;
    try {
        parent_total = burst("parent");
    } catch (const std::exception& e) {
        failure = e.what();
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    const std::uint64_t worst = sampler.stop();
    CHECK(failure.empty());
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(parent_total <= kMax);
    CHECK(worst <= kMax);
    CHECK(disk_bytes(d.dir) <= kMax);
    ResultCache after(d.dir, kMax);   // reconciles: the shared total was exact
    CHECK(after.size_bytes() == disk_bytes(d.dir));
}

TEST_CASE("cache: the running total is shared and reconciled when the cache opens", "[cache]") {
    CacheDir d;
    ResultCache a(d.dir, 1 << 20);
    ResultCache b(d.dir, 1 << 20);   // another worker of the pool
    std::vector<stdfs::path> paths;
    for (int i = 0; i < 5; ++i)
        paths.push_back(a.get_or_create(medimg::cache::hash_hex("total" + std::to_string(i)), ".json",
                                        [&](medimg::nifti::ByteSink& s) { write_text(s, std::string(1000, 't')); }));
    CHECK(a.size_bytes() == 5000);
    CHECK(b.size_bytes() == 5000);   // seen without a walk
    stdfs::remove(paths[0]);         // behind the cache's back
    stdfs::remove(paths[1]);
    CHECK(a.size_bytes() == 5000);   // a running total: not walked per call
    ResultCache c(d.dir, 1 << 20);   // a worker starts: one walk
    CHECK(c.size_bytes() == 3000);
    CHECK(a.size_bytes() == 3000);
    std::ofstream(d.dir / paths[2].parent_path().filename() / "extra.json") << std::string(500, 'e');
    CHECK(a.reconcile() == 3500);
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
        CHECK(cache.evict() == 100);
        CHECK_FALSE(stdfs::exists(stale));
        CHECK(stdfs::exists(live));
        ::close(held);
        CHECK(cache.evict() == 50);
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
    // A symlink to a directory of ours: the path must name the directory.
    stdfs::create_directory(d.dir / "real");
    stdfs::create_symlink(d.dir / "real", d.dir / "dirlink");
    CHECK_THROWS_AS(ResultCache(d.dir / "dirlink", 1), Error);
    // Writable by group or others (e.g. planted in /tmp with mode 0777).
    stdfs::create_directory(d.dir / "open");
    ::chmod((d.dir / "open").c_str(), 0777);
    CHECK_THROWS_AS(ResultCache(d.dir / "open", 1), Error);
    ::chmod((d.dir / "open").c_str(), 0770);
    CHECK_THROWS_AS(ResultCache(d.dir / "open", 1), Error);
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
