// The pool's shared counters file (docs/DEPLOYMENT.md, "Metrics") across
// real processes: counts of several processes add up, a process killed with
// SIGKILL keeps its counts and its slot is taken over (a restart), the file
// is private, and a damaged file is started again from zero.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "cache/result_cache.hpp"
#include "metrics.hpp"
#include "nifti_builder.hpp"

using medimg::fcgi::Metrics;

namespace {

const std::vector<std::string> kRoutes = {"/health", "/metrics"};

// The value of one exposition line ("name{labels} value"), -1 when absent.
double value_of(const std::string& text, const std::string& series) {
    auto pos = text.find("\n" + series + " ");
    if (pos == std::string::npos) return -1;
    return std::stod(text.substr(pos + series.size() + 2));
}

// A child process that opens the counters, counts `n` /health answers,
// then waits to be killed (or exits when `exit_after`).
pid_t counting_child(const std::filesystem::path& dir, int n, bool exit_after) {
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(ready[0]);
        auto m = Metrics::open(dir, kRoutes, 2);
        for (int i = 0; i < n; ++i) m->count_request(0, 200, 0.002, 10);
        m->add_busy(1);   // killed while answering
        (void)!::write(ready[1], "x", 1);
        if (exit_after) ::_exit(0);
        for (;;) ::pause();
    }
    ::close(ready[1]);
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    return pid;
}

}  // namespace

TEST_CASE("metrics: the counts of every process add up, a killed one's are kept", "[fcgi][metrics]") {
    medimg::test::TempDir tmp;
    const auto dir = tmp.path() / "cache";
    pid_t a = counting_child(dir, 300, false);
    pid_t b = counting_child(dir, 200, false);
    auto self = Metrics::open(dir, kRoutes, 4);
    self->count_request(1, 200, 0.5, 7);
    auto text = self->render(-1, -1);
    CHECK(value_of(text, "medimg_http_requests_total{route=\"/health\",status=\"200\"}") == 500);
    CHECK(value_of(text, "medimg_worker_processes") == 3);
    CHECK(value_of(text, "medimg_busy_threads") == 2);
    CHECK(value_of(text, "medimg_threads") == 8);

    ::kill(a, SIGKILL);
    ::waitpid(a, nullptr, 0);
    text = self->render(-1, -1);
    CHECK(value_of(text, "medimg_http_requests_total{route=\"/health\",status=\"200\"}") == 500);
    CHECK(value_of(text, "medimg_worker_processes") == 2);
    CHECK(value_of(text, "medimg_busy_threads") == 1);   // the dead one's request is not busy
    CHECK(value_of(text, "medimg_worker_restarts_total") == 0);

    // The next process takes the dead one's slot: a restart, counts kept.
    pid_t c = counting_child(dir, 50, false);
    text = self->render(-1, -1);
    CHECK(value_of(text, "medimg_http_requests_total{route=\"/health\",status=\"200\"}") == 550);
    CHECK(value_of(text, "medimg_http_request_duration_seconds_count{route=\"/health\"}") == 550);
    CHECK(value_of(text, "medimg_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.001\"}") == 0);
    CHECK(value_of(text, "medimg_http_request_duration_seconds_bucket{route=\"/health\",le=\"0.0025\"}") == 550);
    CHECK(value_of(text, "medimg_http_response_bytes_total{route=\"/health\"}") == 5500);
    CHECK(value_of(text, "medimg_worker_restarts_total") == 1);
    CHECK(value_of(text, "medimg_worker_starts_total") == 4);
    CHECK(value_of(text, "medimg_worker_processes") == 3);
    for (pid_t p : {b, c}) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
    }

    // Private: 0600, and corrected when loosened.
    struct stat st{};
    REQUIRE(::stat(self->path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    ::chmod(self->path().c_str(), 0644);
    auto again = Metrics::open(dir, kRoutes, 1);
    REQUIRE(::stat(self->path().c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("metrics: workers that start together each get a slot", "[fcgi][metrics]") {
    // Two processes open the new, still empty file while another holds its
    // lock (as the first of a pool's workers does while it sets the file
    // up): the one that sets it up first must not have it truncated again
    // (its slot claim lost) by the other, which saw it empty.
    medimg::test::TempDir tmp;
    const auto dir = tmp.path() / "cache";
    const std::string name = Metrics::open(tmp.path() / "probe", kRoutes, 1)->path().filename();
    std::filesystem::create_directories(dir / ".locks");
    const auto path = dir / ".locks" / name;
    const int held = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(held >= 0);
    REQUIRE(::flock(held, LOCK_EX) == 0);
    std::vector<pid_t> children;
    std::vector<int> readies;
    for (int k = 0; k < 2; ++k) {
        int ready[2];
        REQUIRE(::pipe(ready) == 0);
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::close(ready[0]);
            auto m = Metrics::open(dir, kRoutes, 2);
            m->count_request(0, 200, 0.002, 10);
            (void)!::write(ready[1], "x", 1);
            for (;;) ::pause();
        }
        ::close(ready[1]);
        children.push_back(pid);
        readies.push_back(ready[0]);
    }
    ::usleep(300 * 1000);   // both have seen the empty file and wait for the lock
    REQUIRE(::flock(held, LOCK_UN) == 0);
    for (int fd : readies) {
        char c;
        REQUIRE(::read(fd, &c, 1) == 1);
        ::close(fd);
    }
    auto self = Metrics::open(dir, kRoutes, 1);
    const auto text = self->render(-1, -1);
    CHECK(value_of(text, "medimg_worker_starts_total") == 3);
    CHECK(value_of(text, "medimg_worker_processes") == 3);
    CHECK(value_of(text, "medimg_threads") == 5);
    CHECK(value_of(text, "medimg_http_requests_total{route=\"/health\",status=\"200\"}") == 2);
    for (pid_t p : children) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
    }
    ::close(held);
}

TEST_CASE("metrics: a file of the wrong size or magic starts from zero", "[fcgi][metrics]") {
    medimg::test::TempDir tmp;
    const auto dir = tmp.path();
    std::filesystem::path path;
    {
        auto m = Metrics::open(dir, kRoutes, 1);
        m->count_request(0, 404, 0.01, 1);
        path = m->path();
    }
    { std::ofstream(path, std::ios::binary | std::ios::trunc) << "half a file"; }
    auto m = Metrics::open(dir, kRoutes, 1);
    auto text = m->render(-1, -1);
    CHECK(value_of(text, "medimg_http_requests_total{route=\"/health\",status=\"404\"}") == -1);
    CHECK(value_of(text, "medimg_worker_starts_total") == 1);
    // Other routes, another layout: another file.
    auto other = Metrics::open(dir, {"/health"}, 1);
    CHECK(other->path() != m->path());
}

TEST_CASE("metrics: the counters file is neither cache bytes nor evicted", "[fcgi][metrics]") {
    medimg::test::TempDir tmp;
    const auto dir = tmp.path() / "cache";
    medimg::cache::ResultCache cache(dir, 1 << 20);
    auto m = Metrics::open(dir, kRoutes, 1);
    // Old enough for any eviction rule.
    const timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
    REQUIRE(::utimensat(AT_FDCWD, m->path().c_str(), old, 0) == 0);
    CHECK(cache.size_bytes() == 0);
    cache.evict(0);
    CHECK(std::filesystem::exists(m->path()));
}

TEST_CASE("metrics: evictions of the results cache are counted", "[fcgi][metrics]") {
    medimg::test::TempDir tmp;
    const auto dir = tmp.path() / "cache";
    medimg::cache::ResultCache cache(dir, 1 << 20);
    auto m = Metrics::open(dir, kRoutes, 1);
    cache.on_evict = [&](std::uint64_t entries, std::uint64_t bytes) { m->count_evictions(entries, bytes); };
    const std::string body(1000, 'x');
    const timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
    for (const char* key : {"00112233445566778899aabbccddeeff", "ffeeddccbbaa99887766554433221100"}) {
        auto entry = cache.get_or_create(key, ".json", [&](medimg::nifti::ByteSink& sink) {
            sink.write(reinterpret_cast<const std::uint8_t*>(body.data()), body.size());
        });
        REQUIRE(::utimensat(AT_FDCWD, entry.c_str(), old, 0) == 0);
    }
    CHECK(value_of(m->render(-1, -1), "medimg_cache_evictions_total") == 0);
    cache.evict(0);
    const auto text = m->render(-1, -1);
    CHECK(value_of(text, "medimg_cache_evictions_total") == 2);
    CHECK(value_of(text, "medimg_cache_evicted_bytes_total") == 2000);
}
