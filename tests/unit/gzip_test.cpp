// gzip inflater/deflater: RFC 1952 members, checks, caps, interop with zlib.
#include <zlib.h>

#include <cstring>
#include <numeric>
#include <random>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "nifti/gzip.hpp"
#include "nifti/byte_io.hpp"
#include "nifti_builder.hpp"

using namespace medimg;
using namespace medimg::nifti;
using medimg::test::expect_error;

namespace {

class VecSource final : public ByteSource {
public:
    explicit VecSource(std::vector<std::uint8_t> b, std::size_t chunk = SIZE_MAX) : b_(std::move(b)), chunk_(chunk) {}
    std::size_t read(std::uint8_t* buf, std::size_t n) override {
        n = std::min({n, b_.size() - pos_, chunk_});
        if (n > 0) std::memcpy(buf, b_.data() + pos_, n);   // data() may be null when empty
        pos_ += n;
        return n;
    }

private:
    std::vector<std::uint8_t> b_;
    std::size_t pos_ = 0, chunk_;
};

std::vector<std::uint8_t> inflate_all(std::vector<std::uint8_t> gz, std::uint64_t cap = UINT64_MAX,
                                      std::size_t in_chunk = SIZE_MAX, std::size_t out_chunk = 70000) {
    VecSource src(std::move(gz), in_chunk);
    GzipInflater inf(src, cap);
    std::vector<std::uint8_t> out, buf(out_chunk);
    while (std::size_t n = inf.read(buf.data(), buf.size())) out.insert(out.end(), buf.begin(), buf.begin() + n);
    CHECK(inf.total_out() == out.size());
    return out;
}

std::vector<std::uint8_t> sample(std::size_t n, unsigned seed = 1) {
    std::mt19937 rng(seed);
    std::vector<std::uint8_t> v(n);
    for (auto& x : v) x = static_cast<std::uint8_t>(rng() % 7 == 0 ? rng() : 3);   // compressible
    return v;
}

std::vector<std::uint8_t> cat(std::vector<std::uint8_t> a, const std::vector<std::uint8_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// A member with every optional header field, built by hand around a raw deflate body.
std::vector<std::uint8_t> fancy_member(const std::vector<std::uint8_t>& data, bool good_hcrc = true) {
    std::vector<std::uint8_t> m = {0x1f, 0x8b, 8, 0x02 | 0x04 | 0x08 | 0x10, 0, 0, 0, 0, 0, 3};
    m.push_back(5);
    m.push_back(0);
    for (int i = 0; i < 5; ++i) m.push_back(static_cast<std::uint8_t>('e' + i));
    for (char c : std::string("name.nii")) m.push_back(static_cast<std::uint8_t>(c));
    m.push_back(0);
    for (char c : std::string("a comment")) m.push_back(static_cast<std::uint8_t>(c));
    m.push_back(0);
    std::uint32_t h = static_cast<std::uint32_t>(crc32(0, m.data(), static_cast<uInt>(m.size())));
    if (!good_hcrc) h ^= 1;
    m.push_back(static_cast<std::uint8_t>(h));
    m.push_back(static_cast<std::uint8_t>(h >> 8));
    z_stream zs{};
    REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::vector<std::uint8_t> body(deflateBound(&zs, data.size()) + 16);
    zs.next_in = const_cast<Bytef*>(data.data());
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = body.data();
    zs.avail_out = static_cast<uInt>(body.size());
    REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    body.resize(zs.total_out);
    deflateEnd(&zs);
    m.insert(m.end(), body.begin(), body.end());
    const std::uint32_t crc = static_cast<std::uint32_t>(crc32(0, data.data(), static_cast<uInt>(data.size())));
    const std::uint32_t isize = static_cast<std::uint32_t>(data.size());
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<std::uint8_t>(crc >> (8 * i)));
    for (int i = 0; i < 4; ++i) m.push_back(static_cast<std::uint8_t>(isize >> (8 * i)));
    return m;
}

}  // namespace

TEST_CASE("gzip: is_gzip looks at the magic only", "[gzip]") {
    const std::uint8_t good[] = {0x1f, 0x8b};
    const std::uint8_t zlib_hdr[] = {0x78, 0x9c};
    CHECK(is_gzip(good));
    CHECK_FALSE(is_gzip(zlib_hdr));
    CHECK_FALSE(is_gzip(std::span<const std::uint8_t>(good, 1)));
}

TEST_CASE("gzip: inflates single and multi-member streams, any chunking", "[gzip]") {
    const auto a = sample(300000, 1), b = sample(1000, 2);
    const auto in_chunk = GENERATE(std::size_t{1}, std::size_t{7}, std::size_t{4096}, SIZE_MAX);
    INFO("input chunk " << in_chunk);
    const std::size_t out_chunk = in_chunk == 1 ? 100000 : 3;
    SECTION("one member") {
        CHECK(inflate_all(test::gzip_bytes(a), UINT64_MAX, in_chunk == 1 ? 4096 : in_chunk, 65536) == a);
    }
    SECTION("three members, one empty") {
        const auto gz = cat(cat(test::gzip_bytes(a, 1), test::gzip_bytes({}, 9)), test::gzip_bytes(b));
        CHECK(inflate_all(gz, UINT64_MAX, in_chunk, out_chunk == 3 ? 65536 : out_chunk) == cat(a, b));
    }
    SECTION("tiny output reads") {
        CHECK(inflate_all(test::gzip_bytes(b), UINT64_MAX, in_chunk, 3) == b);
    }
}

TEST_CASE("gzip: FHCRC, FEXTRA, FNAME and FCOMMENT are parsed and checked", "[gzip]") {
    const auto data = sample(50000, 3);
    CHECK(inflate_all(fancy_member(data)) == data);
    CHECK(inflate_all(fancy_member(data), UINT64_MAX, 1, 65536) == data);
    expect_error([&] { inflate_all(fancy_member(data, false)); }, ErrorCode::BadGzip, "header CRC");
}

TEST_CASE("gzip: bad CRC-32 and bad ISIZE are rejected", "[gzip]") {
    const auto data = sample(20000, 4);
    auto gz = test::gzip_bytes(data);
    SECTION("CRC") {
        gz[gz.size() - 8] ^= 0x01;
        expect_error([&] { inflate_all(gz); }, ErrorCode::BadGzip, "CRC");
    }
    SECTION("ISIZE") {
        gz[gz.size() - 4] ^= 0x01;
        expect_error([&] { inflate_all(gz); }, ErrorCode::BadGzip, "ISIZE");
    }
    SECTION("in a second member") {
        auto two = cat(test::gzip_bytes(data), gz);
        two[two.size() - 7] ^= 0x10;
        expect_error([&] { inflate_all(two); }, ErrorCode::BadGzip);
    }
}

TEST_CASE("gzip: truncation anywhere is TruncatedData", "[gzip]") {
    const auto gz = test::gzip_bytes(sample(20000, 5));
    // Inside the header, right after it, inside the body, inside the trailer.
    const std::size_t which = GENERATE(range(0, 6));
    const std::size_t keeps[6] = {5, 10, 100, gz.size() - 1, gz.size() - 4, gz.size() - 7};
    const std::size_t keep = keeps[which];
    INFO("keep " << keep << " of " << gz.size());
    std::vector<std::uint8_t> t(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(keep));
    expect_error([&] { inflate_all(t); }, ErrorCode::TruncatedData);
}

TEST_CASE("gzip: trailing NULs and garbage after the last member are ignored", "[gzip]") {
    const auto data = sample(10000, 6);
    const auto gz = test::gzip_bytes(data);
    CHECK(inflate_all(cat(gz, std::vector<std::uint8_t>(1000, 0))) == data);
    CHECK(inflate_all(cat(gz, {'j', 'u', 'n', 'k'})) == data);
    CHECK(inflate_all(cat(gz, {0x1f})) == data);
}

TEST_CASE("gzip: a truncated member after a complete one is TruncatedData", "[gzip]") {
    const auto data = sample(10000, 7);
    const auto gz = test::gzip_bytes(data);
    std::vector<std::uint8_t> partial(gz.begin(), gz.begin() + 40);
    expect_error([&] { inflate_all(cat(gz, partial)); }, ErrorCode::TruncatedData);
}

TEST_CASE("gzip: zlib-wrapped, raw deflate and empty input are not gzip", "[gzip]") {
    const auto data = sample(1000, 8);
    std::vector<std::uint8_t> z(compressBound(static_cast<uLong>(data.size())));
    uLongf zlen = static_cast<uLongf>(z.size());
    REQUIRE(compress(z.data(), &zlen, data.data(), static_cast<uLong>(data.size())) == Z_OK);
    z.resize(zlen);
    expect_error([&] { inflate_all(z); }, ErrorCode::BadGzip, "not a gzip");
    expect_error([&] { inflate_all({}); }, ErrorCode::TruncatedData);
    auto wrong_method = test::gzip_bytes(data);
    wrong_method[2] = 7;
    expect_error([&] { inflate_all(wrong_method); }, ErrorCode::BadGzip, "method");
    auto corrupt = test::gzip_bytes(data);
    corrupt[12] ^= 0xff;
    corrupt[13] ^= 0xff;
    CHECK_THROWS_AS(inflate_all(corrupt), Error);
}

TEST_CASE("gzip: a bomb is stopped at the output cap", "[gzip]") {
    const std::vector<std::uint8_t> zeros(64u << 20, 0);   // 64 MiB of zeros: ~64 KiB of gzip
    const auto gz = test::gzip_bytes(zeros, 9);
    CHECK(gz.size() < 200000);
    expect_error([&] { inflate_all(gz, 1u << 20); }, ErrorCode::BadGzip, "gzip bomb");
    CHECK(inflate_all(gz, zeros.size()).size() == zeros.size());   // exactly at the cap is fine
}

TEST_CASE("gzip: deflater output is standard gzip at every level", "[gzip]") {
    const int level = GENERATE(0, 1, 2, 3, 6, 9);
    INFO("level " << level);
    const auto data = sample(700000, 9);
    test::TempDir dir;
    const auto path = dir / "out.gz";
    {
        AtomicFileSink sink(path);
        GzipDeflater d(sink, level);
        // Uneven writes, including empty ones.
        std::size_t pos = 0, step = 1;
        while (pos < data.size()) {
            const std::size_t n = std::min(step, data.size() - pos);
            d.write(data.data() + pos, n);
            d.write(data.data() + pos, 0);
            pos += n;
            step = step * 3 + 1;
        }
        d.finish();
        sink.commit();
    }
    CHECK(test::gunzip_file(path) == data);        // zlib's gzread
    CHECK(inflate_all(test::read_file(path)) == data);
    if (level >= 1) CHECK(test::read_file(path).size() < data.size() / 2);
}

TEST_CASE("gzip: deflater writes a valid empty member", "[gzip]") {
    MemorySink sink;
    GzipDeflater d(sink, 1);
    d.finish();
    CHECK(inflate_all(sink.bytes).empty());
}
