// Byte sinks: the atomic file sink leaves either the whole file or nothing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include "catch.hpp"
#include "error.hpp"
#include "nifti/byte_io.hpp"
#include "nifti_builder.hpp"

using namespace medimg;
using namespace medimg::nifti;

TEST_CASE("nifti stream: AtomicFileSink commits by rename, mode 0644 under umask", "[nifti][stream]") {
    test::TempDir dir;
    const auto target = dir / "out.nii";
    test::write_file(target, {'o', 'l', 'd'});
    const mode_t old = ::umask(022);
    {
        AtomicFileSink sink(target);
        const std::uint8_t data[] = {1, 2, 3, 4};
        sink.write(data, 4);
        CHECK(sink.bytes_written() == 4);
        CHECK(test::read_file(target) == std::vector<std::uint8_t>{'o', 'l', 'd'});   // untouched until commit
        CHECK(dir.entries().size() == 2);
        CHECK(dir.entries()[0].rfind(".out.nii.tmp-", 0) == 0);
        sink.commit();
    }
    ::umask(old);
    CHECK(test::read_file(target) == std::vector<std::uint8_t>{1, 2, 3, 4});
    CHECK(dir.entries() == std::vector<std::string>{"out.nii"});
    struct stat st{};
    REQUIRE(::stat(target.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0644);
}

TEST_CASE("nifti stream: AtomicFileSink leaves nothing without commit", "[nifti][stream]") {
    test::TempDir dir;
    try {
        AtomicFileSink sink(dir / "out.nii.gz");
        const std::uint8_t data[] = {1, 2, 3};
        sink.write(data, 3);
        throw Error(ErrorCode::NonIntegralLabels, "simulated failure mid-write");
    } catch (const Error&) {
    }
    CHECK(dir.entries().empty());
}

TEST_CASE("nifti stream: AtomicFileSink in a missing directory fails cleanly", "[nifti][stream]") {
    test::TempDir dir;
    try {
        AtomicFileSink sink(dir / "no" / "such" / "out.nii");
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::NotFound);
    }
}

TEST_CASE("nifti stream: FdSink writes everything and reports EPIPE as Io", "[nifti][stream]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    FdSink sink(fds[1]);
    const std::uint8_t data[] = {9, 8, 7};
    sink.write(data, 3);
    std::uint8_t got[3];
    REQUIRE(::read(fds[0], got, 3) == 3);
    CHECK(got[2] == 7);
    ::close(fds[0]);
    auto prev = std::signal(SIGPIPE, SIG_IGN);
    try {
        sink.write(data, 3);
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::Io);
    }
    std::signal(SIGPIPE, prev);
    ::close(fds[1]);
}
