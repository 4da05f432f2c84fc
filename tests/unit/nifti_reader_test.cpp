// Reader + Writer: containers, pairs, round trips, truncation, gzip checks,
// streams read once (pipes).
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <thread>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "nifti/reader.hpp"
#include "nifti/writer.hpp"
#include "nifti_builder.hpp"

using namespace medimg;
using namespace medimg::nifti;
using medimg::test::NiftiSpec;
using medimg::test::expect_error;

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::uint8_t> v(n);
    for (auto& x : v) x = static_cast<std::uint8_t>(rng() % 5);
    return v;
}

std::vector<std::uint8_t> read_all(Reader& r, std::size_t chunk = 65536) {
    std::vector<std::uint8_t> out, buf(chunk);
    while (std::size_t n = r.read(buf.data(), buf.size())) out.insert(out.end(), buf.begin(), buf.begin() + n);
    CHECK(r.remaining() == 0);
    return out;
}

// Reads every voxel of `path` (open + read to the end).
void read_file_fully(const std::filesystem::path& path) {
    Reader r = Reader::open(path, {});
    read_all(r);
}

// A real pipe: a thread writes `bytes` into it in chunks of `chunk` bytes,
// then closes its end. The destructor reads what is left, so the writer
// never blocks (nor meets a closed pipe) and can be joined.
class FedPipe {
public:
    explicit FedPipe(std::vector<std::uint8_t> bytes, std::size_t chunk = 4093) {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        read_end_ = fds[0];
        writer_ = std::thread([w = fds[1], b = std::move(bytes), chunk] {
            for (std::size_t off = 0; off < b.size();) {
                const ssize_t n = ::write(w, b.data() + off, std::min(chunk, b.size() - off));
                if (n <= 0) break;
                off += static_cast<std::size_t>(n);
            }
            ::close(w);
        });
    }
    ~FedPipe() {
        char sink[4096];
        while (::read(read_end_, sink, sizeof sink) > 0) {
        }
        writer_.join();
        ::close(read_end_);
    }
    FedPipe(const FedPipe&) = delete;
    FedPipe& operator=(const FedPipe&) = delete;
    int fd() const noexcept { return read_end_; }

private:
    int read_end_ = -1;
    std::thread writer_;
};

NiftiSpec stream_spec() {
    NiftiSpec s;
    s.dims = {40, 30, 20};
    s.datatype = 4;
    s.data = random_bytes(40 * 30 * 20 * 2, 9);
    s.extension = std::vector<std::uint8_t>{1, 0, 0, 0, 16, 0, 0, 0, 4, 0, 0, 0, 'x', 'y', 'z', 0, 0, 0, 0, 0};
    return s;
}

}  // namespace

TEST_CASE("nifti reader: single files, plain or gzip, sniffed from the bytes", "[nifti][reader]") {
    test::TempDir dir;
    auto [name, gzip] = GENERATE(table<std::string, bool>({
        {"a.nii", false}, {"a.nii.gz", true}, {"gzip-named.nii", true}, {"plain-named.nii.gz", false},
    }));
    INFO(name);
    NiftiSpec s;
    s.dims = {30, 20, 10};
    s.datatype = 4;
    s.data = random_bytes(30 * 20 * 10 * 2, 1);
    s.extension = std::vector<std::uint8_t>{1, 0, 0, 0, 32, 0, 0, 0, 4, 0, 0, 0, 'j', 's', 'o', 'n',
                                            '{', '}', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    test::write_nifti(dir / name, s, gzip);
    Reader r = Reader::open(dir / name, {});
    CHECK(r.gzip() == gzip);
    CHECK(r.header().dim(1) == 30);
    CHECK(r.extension_bytes() == *s.extension);
    CHECK(r.remaining() == s.data->size());
    CHECK(read_all(r, 777) == *s.data);
    r.rewind();
    CHECK(read_all(r) == *s.data);
    CHECK(r.read(nullptr, 0) == 0);
}

TEST_CASE("nifti reader: pairs in every compression combination, from either file", "[nifti][reader]") {
    test::TempDir dir;
    auto [hgz, igz, from_img, version] = GENERATE(table<bool, bool, bool, Version>({
        {false, false, false, Version::Nifti1}, {false, false, true, Version::Analyze75},
        {true, false, false, Version::Nifti1}, {false, true, true, Version::Nifti2},
        {true, true, false, Version::Analyze75}, {true, true, true, Version::Nifti1},
    }));
    INFO("hdr gz " << hgz << " img gz " << igz << " from img " << from_img);
    NiftiSpec s;
    s.version = version;
    s.byte_order = ByteOrder::Big;
    s.dims = {9, 8, 7};
    s.datatype = 512;
    s.vox_offset = 16;
    s.data = random_bytes(9 * 8 * 7 * 2, 2);
    const auto hdr = dir / (hgz ? "x.hdr.gz" : "x.hdr");
    const auto img = dir / (igz ? "x.img.gz" : "x.img");
    test::write_pair(hdr, img, s, hgz, igz);
    Reader r = Reader::open(from_img ? img : hdr, {});
    CHECK(r.header().layout() == Layout::Pair);
    CHECK(r.header().version() == version);
    CHECK(r.gzip() == igz);
    CHECK(r.extension_bytes().empty());
    CHECK(read_all(r) == *s.data);
}

TEST_CASE("nifti reader: missing files and partners are NotFound", "[nifti][reader]") {
    test::TempDir dir;
    expect_error([&] { Reader::open(dir / "none.nii.gz", {}); }, ErrorCode::NotFound);
    NiftiSpec s;
    s.pair = true;
    test::write_file(dir / "lonely.hdr", test::build_header(s));
    expect_error([&] { Reader::open(dir / "lonely.hdr", {}); }, ErrorCode::NotFound, ".img");
    expect_error([&] { Reader::open(dir.path(), {}); }, ErrorCode::NotFound);
}

TEST_CASE("nifti reader: truncated data is TruncatedData, plain and gzip", "[nifti][reader]") {
    test::TempDir dir;
    NiftiSpec s;
    s.dims = {50, 50, 20};
    s.data = random_bytes(50 * 50 * 20, 3);
    auto bytes = test::build_nifti(s);
    bytes.resize(bytes.size() - 100);
    test::write_file(dir / "t.nii", bytes);
    expect_error([&] { Reader::open(dir / "t.nii", {}); }, ErrorCode::TruncatedData, "file has");
    // gzip of a short image: complete stream, but too few bytes inside.
    test::write_file(dir / "t.nii.gz", test::gzip_bytes(bytes));
    expect_error([&] { read_file_fully(dir / "t.nii.gz"); }, ErrorCode::TruncatedData, "ends after");
    // A gzip stream cut in the middle.
    const auto gz = test::gzip_bytes(test::build_nifti(s));
    test::write_file(dir / "cut.nii.gz", std::vector<std::uint8_t>(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2)));
    expect_error([&] { read_file_fully(dir / "cut.nii.gz"); }, ErrorCode::TruncatedData);
}

TEST_CASE("nifti reader: reads past the deadline are Timeout", "[nifti][reader]") {
    NiftiSpec s;
    s.dims = {16, 16, 16};
    s.data = random_bytes(16 * 16 * 16, 5);
    ReadLimits limits;
    limits.deadline = std::chrono::steady_clock::now() - std::chrono::seconds(1);
    Reader late = Reader::open_memory(test::gzip_bytes(test::build_nifti(s)), limits);
    std::vector<std::uint8_t> buf(1024);
    expect_error([&] { late.read(buf.data(), buf.size()); }, ErrorCode::Timeout, "time limit");
    limits.deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
    Reader in_time = Reader::open_memory(test::gzip_bytes(test::build_nifti(s)), limits);
    CHECK(read_all(in_time) == *s.data);
}

TEST_CASE("nifti reader: a bad trailing CRC fails before read() reports the end", "[nifti][reader]") {
    NiftiSpec s;
    s.dims = {40, 40, 40};
    s.data = random_bytes(40 * 40 * 40, 4);
    auto gz = test::gzip_bytes(test::build_nifti(s));
    gz[gz.size() - 6] ^= 0x55;
    Reader r = Reader::open_memory(gz, {});
    std::vector<std::uint8_t> buf(s.data->size());
    // Reading exactly the declared data size must already verify the trailer.
    expect_error([&] {
        std::size_t got = 0;
        while (got < buf.size()) got += r.read(buf.data() + got, buf.size() - got);
    }, ErrorCode::BadGzip, "CRC");
}

TEST_CASE("nifti reader: bytes after the data are ignored; a bomb after it is not", "[nifti][reader]") {
    NiftiSpec s;
    s.dims = {10, 10, 10};
    s.data = random_bytes(1000, 5);
    auto plain = test::build_nifti(s);
    SECTION("a little extra inside the gzip stream") {
        auto extra = plain;
        extra.resize(extra.size() + 5000, 7);
        Reader r = Reader::open_memory(test::gzip_bytes(extra), {});
        CHECK(read_all(r) == *s.data);
    }
    SECTION("a lot of extra: refused as a bomb") {
        auto extra = plain;
        extra.resize(extra.size() + (3u << 20), 0);
        Reader r = Reader::open_memory(test::gzip_bytes(extra, 9), {});
        expect_error([&] { read_all(r); }, ErrorCode::BadGzip, "gzip bomb");
    }
    SECTION("a bomb in the header stage") {
        std::vector<std::uint8_t> zeros(8u << 20, 0);
        expect_error([&] { Reader::open_memory(test::gzip_bytes(zeros, 9), {}); }, ErrorCode::NotNifti);
    }
}

TEST_CASE("nifti reader: open_memory rejects non-NIfTI bytes", "[nifti][reader]") {
    expect_error([&] { Reader::open_memory({}, {}); }, ErrorCode::NotNifti);
    expect_error([&] { Reader::open_memory(std::vector<std::uint8_t>(1000, 'x'), {}); }, ErrorCode::NotNifti);
    expect_error([&] { Reader::open_memory({0x1f, 0x8b, 8}, {}); }, ErrorCode::TruncatedData);
    NiftiSpec s;
    s.vox_offset = 1e9;
    expect_error([&] { Reader::open_memory(test::gzip_bytes(test::build_nifti(s)), {}); }, ErrorCode::TooLarge, "extensions");
}

TEST_CASE("nifti writer: round trip of every label-capable datatype", "[nifti][writer]") {
    auto [code, version, order, container] = GENERATE(table<int, Version, ByteOrder, Container>({
        {2, Version::Nifti1, ByteOrder::Little, Container::Gzip},
        {4, Version::Nifti1, ByteOrder::Big, Container::Gzip},
        {8, Version::Nifti2, ByteOrder::Little, Container::Plain},
        {16, Version::Nifti2, ByteOrder::Big, Container::Gzip},
        {64, Version::Nifti1, ByteOrder::Little, Container::Plain},
        {256, Version::Nifti1, ByteOrder::Big, Container::Plain},
        {512, Version::Nifti2, ByteOrder::Little, Container::Gzip},
        {768, Version::Nifti1, ByteOrder::Little, Container::Gzip},
        {1024, Version::Nifti2, ByteOrder::Big, Container::Plain},
        {1280, Version::Nifti1, ByteOrder::Big, Container::Gzip},
    }));
    INFO("datatype " << code << " version " << static_cast<int>(version) << " order " << static_cast<int>(order));
    const int level = GENERATE(1, 6);
    test::TempDir dir;
    NiftiSpec s;
    s.version = version;
    s.byte_order = order;
    s.datatype = code;
    s.dims = {17, 13, 11, 2};
    s.pixdim = {1, 0.8, 0.9, 2.5, 1, 1, 1, 1};
    s.qform_code = 1;
    s.sform_code = 2;
    s.descrip = "round trip";
    s.data = random_bytes(17 * 13 * 11 * 2 * static_cast<std::size_t>(test::datatype_bytes(code)), 6);
    // A valid chain (one 32-byte extension in the file's byte order), so the
    // whole file comes back verbatim; an invalid one gets its flag cleared
    // (nifti_writer_test.cpp).
    s.extension = std::vector<std::uint8_t>(4 + 32, 0xab);
    (*s.extension)[0] = 1;
    test::put<std::int32_t>(*s.extension, 4, 32, order);
    test::write_nifti(dir / "in.nii", s);
    Reader r = Reader::open(dir / "in.nii", {});
    const auto out_path = dir / (container == Container::Gzip ? "out.nii.gz" : "out.nii");
    {
        AtomicFileSink sink(out_path);
        Writer w(sink, r.header(), r.extension_bytes(), container, level);
        std::vector<std::uint8_t> buf(1000);
        while (std::size_t n = r.read(buf.data(), buf.size())) w.write(buf.data(), n);
        w.finish();
        sink.commit();
    }
    const auto expected = test::build_nifti(s);
    if (container == Container::Gzip)
        CHECK(test::gunzip_file(out_path) == expected);   // independent reader: zlib gzread
    else
        CHECK(test::read_file(out_path) == expected);
    Reader back = Reader::open(out_path, {});
    CHECK(back.header().bytes() == r.header().bytes());
    CHECK(back.extension_bytes() == *s.extension);
    CHECK(read_all(back) == *s.data);
}

TEST_CASE("nifti writer: a pair becomes a single file with a zero extender", "[nifti][writer]") {
    test::TempDir dir;
    NiftiSpec s;
    s.version = GENERATE(Version::Analyze75, Version::Nifti1, Version::Nifti2);
    s.dims = {5, 4, 3};
    s.data = random_bytes(60, 7);
    test::write_pair(dir / "p.hdr", dir / "p.img", s);
    Reader r = Reader::open(dir / "p.img", {});
    Header h = r.header();
    h.make_single_file();
    MemorySink sink;
    Writer w(sink, h, r.extension_bytes(), Container::Gzip, 1);
    std::vector<std::uint8_t> buf(100);
    while (std::size_t n = r.read(buf.data(), buf.size())) w.write(buf.data(), n);
    w.finish();
    Reader back = Reader::open_memory(sink.bytes, {});
    CHECK(back.gzip());
    CHECK(back.header().layout() == Layout::Single);
    CHECK(back.extension_bytes() == std::vector<std::uint8_t>(4, 0));
    CHECK(read_all(back) == *s.data);
}

TEST_CASE("nifti writer: refuses wrong sizes and pair headers", "[nifti][writer]") {
    NiftiSpec s;
    s.dims = {2, 2, 2};
    const auto bytes = test::build_nifti(s);
    Reader r = Reader::open_memory(bytes, {});
    MemorySink sink;
    SECTION("extension does not match vox_offset") {
        const std::vector<std::uint8_t> ext(8, 0);
        expect_error([&] { Writer(sink, r.header(), ext, Container::Plain, 1); }, ErrorCode::Internal, "vox_offset");
    }
    SECTION("too many and too few bytes") {
        Writer w(sink, r.header(), r.extension_bytes(), Container::Plain, 1);
        std::vector<std::uint8_t> nine(9, 0);
        expect_error([&] { w.write(nine.data(), 9); }, ErrorCode::Internal);
        w.write(nine.data(), 7);
        expect_error([&] { w.finish(); }, ErrorCode::Internal);
    }
    SECTION("pair header") {
        NiftiSpec p = s;
        p.pair = true;
        const Header h = Header::parse(test::build_header(p), Layout::Pair, {});
        expect_error([&] { Writer(sink, h, {}, Container::Plain, 1); }, ErrorCode::Internal, "single-file");
    }
}


TEST_CASE("nifti reader: a pipe is read once, header first, plain or gzip", "[nifti][reader][stream]") {
    const bool gzip = GENERATE(false, true);
    INFO("gzip " << gzip);
    const NiftiSpec s = stream_spec();
    const auto plain = test::build_nifti(s);
    FedPipe pipe(gzip ? test::gzip_bytes(plain) : plain);
    Reader r = Reader::open_stream(pipe.fd(), "stdin", {});
    CHECK(r.sequential());
    CHECK(r.gzip() == gzip);
    CHECK(r.header().dim(2) == 30);
    CHECK(r.extension_bytes() == *s.extension);
    CHECK(read_all(r, 1000) == *s.data);
    // Its bytes are gone: a rewind is a clear internal error, never a
    // silent re-read of nothing.
    expect_error([&] { r.rewind(); }, ErrorCode::Internal, "keep_for_rewind");
    // And it is too late to ask for a copy.
    test::TempDir dir;
    expect_error([&] { r.keep_for_rewind(dir.path()); }, ErrorCode::Internal, "after");
}

TEST_CASE("nifti reader: keep_for_rewind copies a pipe's voxels to an unlinked file", "[nifti][reader][stream]") {
    const bool gzip = GENERATE(false, true);
    INFO("gzip " << gzip);
    test::TempDir dir;
    const NiftiSpec s = stream_spec();
    const auto plain = test::build_nifti(s);
    FedPipe pipe(gzip ? test::gzip_bytes(plain) : plain);
    Reader r = Reader::open_stream(pipe.fd(), "stdin", {});
    r.keep_for_rewind(dir.path());
    CHECK(dir.entries().empty());   // unlinked from the start
    std::vector<std::uint8_t> part(5000);
    REQUIRE(r.read(part.data(), part.size()) > 0);
    r.rewind();   // copies the rest first
    CHECK(r.remaining() == s.data->size());
    CHECK(read_all(r, 777) == *s.data);
    r.rewind();
    CHECK(read_all(r) == *s.data);
    CHECK(dir.entries().empty());
}

TEST_CASE("nifti reader: keep_for_rewind in a folder that cannot hold the copy is Io", "[nifti][reader][stream]") {
    test::TempDir dir;
    FedPipe pipe(test::build_nifti(stream_spec()));
    Reader r = Reader::open_stream(pipe.fd(), "stdin", {});
    expect_error([&] { r.keep_for_rewind(dir / "missing"); }, ErrorCode::Io, (dir / "missing").string());
}

TEST_CASE("nifti reader: a regular file given as a stream is read in place", "[nifti][reader][stream]") {
    test::TempDir dir;
    const NiftiSpec s = stream_spec();
    test::write_nifti(dir / "f", s, true);
    const int fd = ::open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    Reader r = Reader::open_stream(fd, "stdin", {});
    ::close(fd);   // the reader holds its own descriptor
    CHECK_FALSE(r.sequential());
    r.keep_for_rewind(dir / "missing");   // nothing to copy: a file is read again by offset
    CHECK(read_all(r) == *s.data);
    r.rewind();
    CHECK(read_all(r) == *s.data);
}

TEST_CASE("nifti reader: a pair header on a stream is refused; a stream cut short is TruncatedData", "[nifti][reader][stream]") {
    SECTION("pair headers, plain or gzip, NIfTI-1, NIfTI-2 or Analyze") {
        auto [version, gzip] = GENERATE(table<Version, bool>({
            {Version::Nifti1, false}, {Version::Analyze75, false}, {Version::Nifti2, false},
            {Version::Nifti1, true},
        }));
        NiftiSpec s;
        s.pair = true;
        s.version = version;
        const auto hdr = test::build_header(s);
        FedPipe pipe(gzip ? test::gzip_bytes(hdr) : hdr);
        expect_error([&] { Reader::open_stream(pipe.fd(), "stdin", {}); }, ErrorCode::BadParameter,
                     "pair cannot be read from stdin");
    }
    const NiftiSpec s = stream_spec();
    const auto plain = test::build_nifti(s);
    const auto gz = test::gzip_bytes(plain);
    auto cut = [](const std::vector<std::uint8_t>& v, std::size_t n) {
        return std::vector<std::uint8_t>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
    };
    SECTION("inside the header") {
        FedPipe pipe(cut(plain, 200));
        expect_error([&] { Reader::open_stream(pipe.fd(), "stdin", {}); }, ErrorCode::TruncatedData, "header");
        FedPipe gz_pipe(cut(gz, 30));
        expect_error([&] { Reader::open_stream(gz_pipe.fd(), "stdin", {}); }, ErrorCode::TruncatedData);
    }
    SECTION("inside the extensions") {
        FedPipe pipe(cut(plain, 352 + 6));
        expect_error([&] { Reader::open_stream(pipe.fd(), "stdin", {}); }, ErrorCode::TruncatedData, "extension");
    }
    SECTION("inside the voxels") {
        FedPipe pipe(cut(plain, plain.size() - 100));
        Reader r = Reader::open_stream(pipe.fd(), "stdin", {});
        expect_error([&] { read_all(r); }, ErrorCode::TruncatedData, "ends after");
        FedPipe gz_pipe(cut(gz, gz.size() / 2));
        Reader g = Reader::open_stream(gz_pipe.fd(), "stdin", {});
        expect_error([&] { read_all(g); }, ErrorCode::TruncatedData);
    }
    SECTION("nothing at all") {
        FedPipe pipe({});
        expect_error([&] { Reader::open_stream(pipe.fd(), "stdin", {}); }, ErrorCode::NotNifti);
    }
}
