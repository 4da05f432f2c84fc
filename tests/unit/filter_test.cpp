// The label filter against a straightforward reference computed here, for
// every label-capable datatype, both byte orders, keep/mask, crop, scaling,
// 4-D, and the refusals that must leave nothing written.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "labels/filter.hpp"
#include "nifti/reader.hpp"
#include "nifti_builder.hpp"

using medimg::Error;
using medimg::ErrorCode;
using medimg::labels::FilterOptions;
using medimg::labels::LabelMap;
using medimg::labels::LabelSet;
using medimg::labels::Mode;
using medimg::nifti::ByteOrder;
using medimg::nifti::Container;
using medimg::nifti::Header;
using medimg::nifti::MemorySink;
using medimg::nifti::Reader;
using medimg::nifti::ReadLimits;
using medimg::test::NiftiSpec;
using medimg::test::TempDir;
using medimg::test::code_of;

namespace {

// Encodes int64 ids as the stored values of `code` in `order`.
std::vector<std::uint8_t> encode_as(int code, const std::vector<std::int64_t>& v, ByteOrder o) {
    using medimg::test::encode;
    std::vector<std::uint8_t> out;
    auto conv = [&](auto tag) {
        using T = decltype(tag);
        std::vector<T> t;
        for (auto x : v) t.push_back(static_cast<T>(x));
        out = encode<T>(t, o);
    };
    switch (code) {
    case 2: conv(std::uint8_t{}); break;
    case 256: conv(std::int8_t{}); break;
    case 4: conv(std::int16_t{}); break;
    case 512: conv(std::uint16_t{}); break;
    case 8: conv(std::int32_t{}); break;
    case 768: conv(std::uint32_t{}); break;
    case 1024: conv(std::int64_t{}); break;
    case 1280: conv(std::uint64_t{}); break;
    case 16: conv(float{}); break;
    case 64: conv(double{}); break;
    default: FAIL("unexpected datatype " << code);
    }
    return out;
}

template <typename T>
T get(const std::uint8_t* p, ByteOrder o) {
    std::uint8_t b[sizeof(T)];
    std::memcpy(b, p, sizeof(T));
    const bool host_little = std::endian::native == std::endian::little;
    if (host_little != (o == ByteOrder::Little)) std::reverse(b, b + sizeof(T));
    T v;
    std::memcpy(&v, b, sizeof(T));
    return v;
}

// Stored values decoded exactly (integers) or as doubles (floats).
struct Decoded {
    std::vector<std::int64_t> ints;
    std::vector<double> reals;
};

Decoded decode_as(int code, const std::vector<std::uint8_t>& bytes, ByteOrder o) {
    Decoded d;
    const int n = medimg::test::datatype_bytes(code);
    for (std::size_t off = 0; off + n <= bytes.size(); off += n) {
        const std::uint8_t* p = bytes.data() + off;
        switch (code) {
        case 2: d.ints.push_back(get<std::uint8_t>(p, o)); break;
        case 256: d.ints.push_back(get<std::int8_t>(p, o)); break;
        case 4: d.ints.push_back(get<std::int16_t>(p, o)); break;
        case 512: d.ints.push_back(get<std::uint16_t>(p, o)); break;
        case 8: d.ints.push_back(get<std::int32_t>(p, o)); break;
        case 768: d.ints.push_back(get<std::uint32_t>(p, o)); break;
        case 1024: d.ints.push_back(get<std::int64_t>(p, o)); break;
        case 1280: d.ints.push_back(static_cast<std::int64_t>(get<std::uint64_t>(p, o))); break;
        case 16: d.reals.push_back(get<float>(p, o)); break;
        case 64: d.reals.push_back(get<double>(p, o)); break;
        default: FAIL("unexpected datatype " << code);
        }
    }
    return d;
}

struct Output {
    Header header;
    std::vector<std::uint8_t> ext;
    std::vector<std::uint8_t> data;
};

Output read_back(std::vector<std::uint8_t> bytes) {
    Reader r = Reader::open_memory(std::move(bytes), ReadLimits{});
    std::vector<std::uint8_t> data(r.header().data_bytes());
    std::size_t got = 0;
    while (got < data.size()) {
        const std::size_t n = r.read(data.data() + got, data.size() - got);
        REQUIRE(n > 0);
        got += n;
    }
    return Output{r.header(), r.extension_bytes(), std::move(data)};
}

// The ids a reader sees: stored * slope + inter when scaled.
std::vector<double> ids_of(const Output& out) {
    const Decoded d = decode_as(out.header.datatype().code, out.data, out.header.byte_order());
    std::vector<double> ids;
    const double slope = out.header.scaled() ? out.header.slope() : 1.0;
    const double inter = out.header.scaled() ? out.header.inter() : 0.0;
    for (auto v : d.ints) ids.push_back(static_cast<double>(v) * slope + inter);
    for (auto v : d.reals) ids.push_back(v * slope + inter);
    return ids;
}

Output run_filter(const NiftiSpec& spec, const FilterOptions& opt,
                  Container container = Container::Plain) {
    Reader in = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
    MemorySink sink;
    const auto result = medimg::labels::filter(in, sink, container, opt);
    CHECK(result.bytes_written == sink.bytes.size());
    return read_back(std::move(sink.bytes));
}

struct Box {
    std::array<std::int64_t, 3> lo, hi;
};

// Reference: the box of selected voxels over all volumes, grown by margin.
Box reference_box(const std::vector<std::int64_t>& ids, const std::vector<std::int64_t>& dims,
                  const LabelSet& set, std::int64_t margin) {
    Box b{{dims[0], dims[1], dims[2]}, {-1, -1, -1}};
    const std::int64_t vol = dims[0] * dims[1] * dims[2];
    for (std::size_t n = 0; n < ids.size(); ++n) {
        if (!set.contains(ids[n])) continue;
        const std::int64_t p = static_cast<std::int64_t>(n) % vol;
        const std::int64_t c[3] = {p % dims[0], (p / dims[0]) % dims[1], p / (dims[0] * dims[1])};
        for (int a = 0; a < 3; ++a) {
            b.lo[a] = std::min(b.lo[a], c[a]);
            b.hi[a] = std::max(b.hi[a], c[a]);
        }
    }
    if (b.hi[0] < 0) return Box{{0, 0, 0}, {0, 0, 0}};
    for (int a = 0; a < 3; ++a) {
        b.lo[a] = std::max<std::int64_t>(0, b.lo[a] - margin);
        b.hi[a] = std::min<std::int64_t>(dims[a] - 1, b.hi[a] + margin);
    }
    return b;
}

// Reference output ids: keep or mask, cropped to `box` when crop.
std::vector<double> reference(const std::vector<std::int64_t>& ids,
                              const std::vector<std::int64_t>& dims, const LabelSet& set,
                              Mode mode, const Box* box) {
    std::vector<double> out;
    const std::int64_t vol = dims[0] * dims[1] * dims[2];
    for (std::size_t n = 0; n < ids.size(); ++n) {
        const std::int64_t p = static_cast<std::int64_t>(n) % vol;
        const std::int64_t c[3] = {p % dims[0], (p / dims[0]) % dims[1], p / (dims[0] * dims[1])};
        if (box) {
            bool inside = true;
            for (int a = 0; a < 3; ++a) inside = inside && c[a] >= box->lo[a] && c[a] <= box->hi[a];
            if (!inside) continue;
        }
        const bool sel = set.contains(ids[n]);
        out.push_back(mode == Mode::Mask ? (sel ? 1.0 : 0.0) : (sel ? static_cast<double>(ids[n]) : 0.0));
    }
    return out;
}

// A 7x5x4 map with labels in an interior block (so the crop box is a proper
// sub-box), and id -3 once where the datatype is signed.
std::vector<std::int64_t> interior_labels(int code) {
    const bool is_signed = code == 256 || code == 4 || code == 8 || code == 1024 || code == 16 || code == 64;
    std::vector<std::int64_t> ids(7 * 5 * 4, 0);
    const std::vector<std::int64_t> palette = {1, 2, 3, 5, 6, 7, 9, 13, 20, 100};
    for (std::int64_t k = 1; k < 3; ++k)
        for (std::int64_t j = 1; j < 4; ++j)
            for (std::int64_t i = 2; i < 6; ++i)
                ids[(k * 5 + j) * 7 + i] = palette[(i * 3 + j * 5 + k) % palette.size()];
    ids[(1 * 5 + 2) * 7 + 3] = is_signed ? -3 : 0;
    return ids;
}

std::array<double, 3> world(const Header& h, double i, double j, double k) {
    const auto a = h.affine();
    std::array<double, 3> w{};
    for (int r = 0; r < 3; ++r) w[r] = a[r][0] * i + a[r][1] * j + a[r][2] * k + a[r][3];
    return w;
}


// A scaled input filtered in keep mode (with a map when `map` is given; the
// selection is then the map's sources unless `labels` is given), and the
// output's datatype, scaling, stored values and the ids a reader sees.
struct ScaledCase {
    std::string name;
    int code;
    ByteOrder order;
    double slope, inter;
    std::vector<std::int64_t> stored;
    std::string labels, map;
    int want_code;
    double want_slope, want_inter;   // Header::slope()/inter(): 1, 0 when unscaled
    std::vector<std::int64_t> want_stored;
    std::vector<double> want_ids;
};

void check_scaled(const ScaledCase& c) {
    NiftiSpec spec;
    spec.dims = {4, 2, 1};
    spec.datatype = c.code;
    spec.byte_order = c.order;
    spec.scl_slope = c.slope;
    spec.scl_inter = c.inter;
    spec.data = encode_as(c.code, c.stored, c.order);
    FilterOptions opt;
    if (!c.map.empty()) opt.map = LabelMap::parse(c.map, 10);
    opt.labels = c.labels.empty() ? opt.map.sources() : LabelSet::parse(c.labels, 10);
    const Output out = run_filter(spec, opt);
    CHECK(out.header.datatype().code == c.want_code);
    CHECK(out.header.byte_order() == c.order);
    CHECK(out.header.slope() == c.want_slope);
    CHECK(out.header.inter() == c.want_inter);
    CHECK(decode_as(c.want_code, out.data, c.order).ints == c.want_stored);
    CHECK(ids_of(out) == c.want_ids);
}

const ScaledCase kScaledKeep[] = {
    {"int16 slope 2: stored values kept, zeros stored as 0", 4, ByteOrder::Little, 2, 0,
     {0, 1, 2, 3, 3, 2, 1, 0}, "4,6", "",
     4, 2, 0, {0, 0, 2, 3, 3, 2, 0, 0}, {0, 0, 4, 6, 6, 4, 0, 0}},
    {"int16 slope 1 inter -1024, big-endian: removed voxels stored as 1024", 4, ByteOrder::Big, 1, -1024,
     {1024, 1025, 1030, 0, 1024, 1025, 1030, 2000}, "1,-1024", "",
     4, 1, -1024, {1024, 1025, 1024, 0, 1024, 1025, 1024, 1024}, {0, 1, 0, -1024, 0, 1, 0, 0}},
    {"uint8 slope 1 inter -1024: no stored 0, written as unscaled int32 ids", 2, ByteOrder::Little, 1, -1024,
     {0, 1, 4, 4, 255, 4, 1, 0}, "-1020,-1023", "",
     8, 1, 0, {0, -1023, -1020, -1020, 0, -1020, -1023, 0}, {0, -1023, -1020, -1020, 0, -1020, -1023, 0}},
    {"uint8 slope 1 inter 1: ids fit uint8, written unscaled as uint8", 2, ByteOrder::Little, 1, 1,
     {0, 1, 4, 4, 254, 4, 1, 0}, "5,255", "",
     2, 1, 0, {0, 0, 5, 5, 255, 5, 0, 0}, {0, 0, 5, 5, 255, 5, 0, 0}},
};

const ScaledCase kScaledMap[] = {
    {"int16 slope 2, new id with a stored value: scaling and stored values kept", 4, ByteOrder::Little, 2, 0,
     {0, 1, 2, 3, 3, 2, 1, 0}, "4,6", "4:-8",
     4, 2, 0, {0, 0, -4, 3, 3, -4, 0, 0}, {0, 0, -8, 6, 6, -8, 0, 0}},
    {"int16 slope 2, odd new id: written unscaled as int16 ids", 4, ByteOrder::Little, 2, 0,
     {0, 1, 2, 3, 3, 2, 1, 0}, "4,6", "4:5",
     4, 1, 0, {0, 0, 5, 6, 6, 5, 0, 0}, {0, 0, 5, 6, 6, 5, 0, 0}},
    {"int16 slope 1 inter -1024, big-endian: the new id stored as 1026", 4, ByteOrder::Big, 1, -1024,
     {1024, 1025, 1030, 0, 1024, 1025, 1030, 2000}, "", "1:2,6:-1024",
     4, 1, -1024, {1024, 1026, 0, 1024, 1024, 1026, 0, 1024}, {0, 2, -1024, 0, 0, 2, -1024, 0}},
    {"uint8 inter -1024 (no stored 0): unscaled, narrowest signed type for all ids", 2, ByteOrder::Little, 1, -1024,
     {0, 1, 4, 4, 255, 4, 1, 0}, "-1020,-1023", "-1020:7",
     4, 1, 0, {0, -1023, 7, 7, 0, 7, -1023, 0}, {0, -1023, 7, 7, 0, 7, -1023, 0}},
    {"uint8 inter -1024, only mapped ids selected: unscaled uint8", 2, ByteOrder::Little, 1, -1024,
     {0, 1, 4, 4, 255, 4, 1, 0}, "", "-1020:7,-1023:200",
     2, 1, 0, {0, 200, 7, 7, 0, 7, 200, 0}, {0, 200, 7, 7, 0, 7, 200, 0}},
};

}  // namespace

TEST_CASE("filter: keep and mask match the reference for every label datatype",
          "[labels][filter]") {
    const int code = GENERATE(2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64);
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    const Mode mode = GENERATE(Mode::Keep, Mode::Mask);
    const bool crop = GENERATE(false, true);
    // Few ranges take the direct-compare path, many ranges the table/search one.
    const std::string ids_text = GENERATE(as<std::string>{}, "2,5-6", "1,3,5,7,9,11,13,15,17,-3,100");
    const std::int64_t margin = GENERATE(0, 1, 100);
    if (!crop && margin != 0) {
        SUCCEED("margin only applies with crop");
        return;
    }
    INFO("datatype " << code << (order == ByteOrder::Big ? " big" : " little") << " mode "
                     << (mode == Mode::Keep ? "keep" : "mask") << " crop " << crop << " margin "
                     << margin << " ids " << ids_text);

    const std::vector<std::int64_t> dims = {7, 5, 4};
    const std::vector<std::int64_t> ids = interior_labels(code);
    NiftiSpec spec;
    spec.byte_order = order;
    spec.dims = dims;
    spec.datatype = code;
    spec.data = encode_as(code, ids, order);
    spec.pixdim = {-1, 0.8, 0.9, 2.5, 1, 1, 1, 1};
    spec.qform_code = 1;
    spec.quatern = {0.1, -0.2, 0.3};
    spec.qoffset = {-100.5, 20.25, 7};
    spec.sform_code = crop && margin == 1 ? 0 : 2;   // margin 1: check the qform alone
    spec.srow = {{{0.8, 0.01, 0, -90}, {0, 0.9, 0.02, 30}, {0.03, 0, 2.5, -12}}};

    FilterOptions opt;
    opt.labels = LabelSet::parse(ids_text, 1000);
    opt.mode = mode;
    opt.crop = crop;
    opt.margin = margin;
    const Output out = run_filter(spec, opt);
    const Header in_h = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{}).header();

    const Box box = reference_box(ids, dims, opt.labels, margin);
    const auto expected = reference(ids, dims, opt.labels, mode, crop ? &box : nullptr);
    CHECK(ids_of(out) == expected);
    CHECK(out.header.byte_order() == order);
    if (mode == Mode::Mask) {
        CHECK(out.header.datatype().code == 2);
        CHECK((out.header.slope() == 1 && out.header.inter() == 0));
    } else {
        CHECK(out.header.datatype().code == code);
    }
    if (crop) {
        for (int a = 0; a < 3; ++a) CHECK(out.header.dim(a + 1) == box.hi[a] - box.lo[a] + 1);
        for (double i : {0.0, 1.0}) {
            const auto w_out = world(out.header, i, 1, 0);
            const auto w_in = world(in_h, i + box.lo[0], 1 + box.lo[1], box.lo[2]);
            for (int r = 0; r < 3; ++r) CHECK(w_out[r] == Approx(w_in[r]).margin(1e-3));
        }
    } else {
        for (int a = 0; a < 3; ++a) CHECK(out.header.dim(a + 1) == dims[a]);
        CHECK(out.header.affine() == in_h.affine());
    }
}

TEST_CASE("filter: scaled inputs keep exact ids", "[labels][filter]") {
    NiftiSpec spec;
    spec.dims = {4, 2, 1};
    for (const auto& c : kScaledKeep) DYNAMIC_SECTION(c.name) { check_scaled(c); }
    SECTION("int16 slope 0.5: non-integral scaled values are refused") {
        spec.datatype = 4;
        spec.scl_slope = 0.5;
        spec.data = encode_as(4, {0, 2, 4, 3, 0, 0, 0, 0}, ByteOrder::Little);
        FilterOptions opt;
        opt.labels = LabelSet::parse("1", 10);
        Reader in = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
        MemorySink sink;
        CHECK(code_of([&] { medimg::labels::filter(in, sink, Container::Plain, opt); }) ==
              ErrorCode::NonIntegralLabels);
        CHECK(sink.bytes.empty());
    }
}

TEST_CASE("filter: 64-bit ids near the int64 limits are compared exactly", "[labels][filter]") {
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    const std::int64_t big = std::numeric_limits<std::int64_t>::max();
    NiftiSpec spec;
    spec.byte_order = order;
    spec.dims = {6};
    SECTION("int64") {
        spec.datatype = 1024;
        const std::vector<std::int64_t> v = {big, big - 1, big - 2, INT64_MIN, 0, big - 1};
        spec.data = encode_as(1024, v, order);
        FilterOptions opt;
        opt.labels = LabelSet::parse("9223372036854775806,-9223372036854775808", 10);
        const Output out = run_filter(spec, opt);
        CHECK(decode_as(1024, out.data, order).ints ==
              std::vector<std::int64_t>{0, big - 1, 0, INT64_MIN, 0, big - 1});
    }
    SECTION("uint64 values above INT64_MAX are ids, selected exactly") {
        spec.datatype = 1280;
        const std::vector<std::uint64_t> v = {UINT64_MAX, 9223372036854775807ull,
                                              9223372036854775808ull, 5, 0, 9223372036854775806ull};
        spec.data = medimg::test::encode<std::uint64_t>(v, order);
        // Few ranges take the direct-compare kernel, more than 8 the exact one.
        auto [ids, mask] = GENERATE(table<std::string, std::vector<std::int64_t>>({
            {"9223372036854775806-9223372036854775808,5", {0, 1, 1, 1, 0, 1}},
            {"1,3,7,9,11,13,15,17,19,18446744073709551615,9223372036854775807", {1, 1, 0, 0, 0, 0}},
        }));
        INFO("label_ids=" << ids);
        FilterOptions opt;
        opt.labels = LabelSet::parse(ids, 100);
        opt.mode = GENERATE(Mode::Keep, Mode::Mask);
        const Output out = run_filter(spec, opt);
        if (opt.mode == Mode::Mask) {
            CHECK(decode_as(2, out.data, order).ints == mask);
        } else {
            CHECK(out.header.datatype().code == 1280);
            const auto d = decode_as(1280, out.data, order).ints;
            REQUIRE(d.size() == v.size());
            for (std::size_t i = 0; i < v.size(); ++i) {
                INFO("voxel " << i);
                CHECK(static_cast<std::uint64_t>(d[i]) == (mask[i] ? v[i] : 0));
            }
        }
    }
}

TEST_CASE("filter: float maps must hold integral finite values", "[labels][filter]") {
    TempDir dir;
    const int code = GENERATE(16, 64);
    const double bad = GENERATE(0.5, std::numeric_limits<double>::quiet_NaN(),
                                std::numeric_limits<double>::infinity(), 1e300);
    if (code == 16 && bad == 1e300) {
        SUCCEED("1e300 is inf in float32, covered by the inf row");
        return;
    }
    INFO("datatype " << code << " value " << bad);
    NiftiSpec spec;
    spec.dims = {4, 4, 4};
    spec.datatype = code;
    std::vector<double> v(64, 1.0);
    v[63] = bad;   // the last voxel: a one-pass filter would already have written the rest
    if (code == 16) {
        std::vector<float> f(v.begin(), v.end());
        spec.data = medimg::test::encode<float>(f, ByteOrder::Little);
    } else {
        spec.data = medimg::test::encode<double>(v, ByteOrder::Little);
    }
    medimg::test::write_nifti(dir / "in.nii.gz", spec, true);
    FilterOptions opt;
    opt.labels = LabelSet::parse("1", 10);
    CHECK(code_of([&] {
              medimg::labels::filter_file(dir / "in.nii.gz", dir / "out.nii.gz", opt, ReadLimits{});
          }) == ErrorCode::NonIntegralLabels);
    CHECK(dir.entries() == std::vector<std::string>{"in.nii.gz"});
    Reader in = Reader::open(dir / "in.nii.gz", ReadLimits{});
    MemorySink sink;
    CHECK(code_of([&] { medimg::labels::filter(in, sink, Container::Gzip, opt); }) ==
          ErrorCode::NonIntegralLabels);
    CHECK(sink.bytes.empty());
}

TEST_CASE("filter: unsupported datatypes are refused before writing", "[labels][filter]") {
    const int code = GENERATE(32, 128, 1536, 1792, 2304);
    INFO("datatype " << code);
    NiftiSpec spec;
    spec.dims = {2, 2, 2};
    spec.datatype = code;
    Reader in = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
    MemorySink sink;
    FilterOptions opt;
    opt.labels = LabelSet::parse("1", 10);
    CHECK(code_of([&] { medimg::labels::filter(in, sink, Container::Plain, opt); }) ==
          ErrorCode::UnsupportedDatatype);
    CHECK(sink.bytes.empty());
}

TEST_CASE("filter: empty selection gives zeros, and a 1x1x1 volume with crop", "[labels][filter]") {
    NiftiSpec spec;
    spec.dims = {3, 3, 3};
    spec.datatype = 4;
    std::vector<std::int64_t> v(27, 6);
    spec.data = encode_as(4, v, ByteOrder::Little);
    FilterOptions opt;   // empty label set
    const Output all = run_filter(spec, opt);
    CHECK(ids_of(all) == std::vector<double>(27, 0.0));
    opt.crop = true;
    opt.margin = 5;
    const Output one = run_filter(spec, opt);
    CHECK(one.header.dim(1) == 1);
    CHECK(one.header.dim(2) == 1);
    CHECK(one.header.dim(3) == 1);
    CHECK(ids_of(one) == std::vector<double>{0.0});
}

TEST_CASE("filter: 4-D maps are filtered volume by volume with one crop box", "[labels][filter]") {
    NiftiSpec spec;
    const std::vector<std::int64_t> dims = {4, 3, 3, 2};
    spec.dims = dims;
    spec.datatype = 512;
    std::vector<std::int64_t> ids(4 * 3 * 3 * 2, 0);
    ids[(0 * 3 + 1) * 4 + 1] = 7;            // volume 0: (1,1,0)
    ids[36 + (2 * 3 + 2) * 4 + 3] = 7;       // volume 1: (3,2,2)
    ids[36 + (1 * 3 + 1) * 4 + 2] = 9;       // not selected
    spec.data = encode_as(512, ids, ByteOrder::Little);
    FilterOptions opt;
    opt.labels = LabelSet::parse("7", 10);
    opt.crop = true;
    const Output out = run_filter(spec, opt);
    const Box box = reference_box(ids, dims, opt.labels, 0);
    CHECK(box.lo == std::array<std::int64_t, 3>{1, 1, 0});
    CHECK(box.hi == std::array<std::int64_t, 3>{3, 2, 2});
    CHECK(out.header.dim(4) == 2);
    CHECK(ids_of(out) == reference(ids, dims, opt.labels, Mode::Keep, &box));
}

TEST_CASE("filter: containers, pairs and extensions", "[labels][filter]") {
    TempDir dir;
    NiftiSpec spec;
    spec.dims = {5, 4, 3};
    spec.datatype = 2;
    std::vector<std::int64_t> ids(60);
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>(i % 7);
    spec.data = encode_as(2, ids, ByteOrder::Little);
    FilterOptions opt;
    opt.labels = LabelSet::parse("3", 10);
    std::vector<double> expected;
    for (auto id : ids) expected.push_back(id == 3 ? 3.0 : 0.0);

    SECTION("extension bytes are copied verbatim") {
        std::vector<std::uint8_t> ext = {1, 0, 0, 0, 32, 0, 0, 0, 6, 0, 0, 0};
        for (int i = 0; i < 24; ++i) ext.push_back(static_cast<std::uint8_t>('a' + i));
        spec.extension = ext;
        const Output out = run_filter(spec, opt, Container::Gzip);
        CHECK(out.ext == ext);
        CHECK(out.header.vox_offset() == static_cast<std::int64_t>(348 + ext.size()));
        CHECK(ids_of(out) == expected);
    }
    SECTION("a .hdr/.img pair becomes a single .nii.gz") {
        const auto version = GENERATE(medimg::nifti::Version::Nifti1, medimg::nifti::Version::Nifti2,
                                      medimg::nifti::Version::Analyze75);
        spec.version = version;
        spec.pair = true;
        medimg::test::write_pair(dir / "seg.hdr", dir / "seg.img", spec);
        const auto out_path = dir / "filtered_seg.nii.gz";
        const auto r = medimg::labels::filter_file(dir / "seg.hdr", out_path, opt, ReadLimits{});
        CHECK(r.voxels_selected == 9);
        const auto bytes = medimg::test::read_file(out_path);
        REQUIRE(bytes.size() > 2);
        CHECK((bytes[0] == 0x1f && bytes[1] == 0x8b));
        const Output out = read_back(bytes);
        CHECK(out.header.layout() == medimg::nifti::Layout::Single);
        CHECK(out.header.vox_offset() ==
              (version == medimg::nifti::Version::Nifti2 ? 544 : 352));
        CHECK(ids_of(out) == expected);
    }
    SECTION("plain .nii stays plain") {
        medimg::test::write_nifti(dir / "seg.nii", spec, false);
        medimg::labels::filter_file(dir / "seg.nii", dir / "out.nii", opt, ReadLimits{});
        const auto bytes = medimg::test::read_file(dir / "out.nii");
        CHECK(bytes[0] != 0x1f);
        CHECK(ids_of(read_back(bytes)) == expected);
    }
}

TEST_CASE("filter: long background runs with islands match the reference", "[labels][filter]") {
    // Long runs of stored 0 take the all-zero fast path; islands at odd
    // offsets straddle the 64-byte groups it checks.
    const int code = GENERATE(2, 256, 4, 512, 8, 768, 1024);
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    const Mode mode = GENERATE(Mode::Keep, Mode::Mask);
    // 1, 2, 3, 4, 5 and 8 ranges (direct compares), 10 (table or search),
    // and sets holding 0, where zero input is selected.
    const std::string ids_text = GENERATE(as<std::string>{}, "7", "2,9", "1,4-5,9", "1,3,5,7",
                                          "1,3,5,7,9", "1,3,5,7,9,11,13,15",
                                          "1,3,5,7,9,11,13,15,17,19", "0,7", "0-3", "0");
    // Scaling slope 1: inter 0 is the identity, inter 1 makes stored 0 id 1
    // (removed voxels are then not stored as 0).
    const bool scaled = GENERATE(false, true);
    const double inter = GENERATE(0.0, 1.0);
    if (!scaled && inter != 0) {
        SUCCEED("inter only applies with scaling");
        return;
    }
    INFO("datatype " << code << (order == ByteOrder::Big ? " big" : " little") << " mode "
                     << (mode == Mode::Keep ? "keep" : "mask") << " ids " << ids_text
                     << " scaled " << scaled << " inter " << inter);

    const std::vector<std::int64_t> dims = {97, 13, 11};
    const std::size_t count = 97 * 13 * 11;
    std::vector<std::int64_t> stored(count, 0);
    std::uint32_t rng = 12345;
    for (std::size_t n = 0; n < count;) {
        rng = rng * 1103515245u + 12345u;
        const std::size_t gap = (rng >> 8) % 400;
        rng = rng * 1103515245u + 12345u;
        const std::size_t len = 1 + (rng >> 8) % 70;
        n += gap;
        for (std::size_t i = n; i < std::min(count, n + len); ++i)
            stored[i] = 1 + static_cast<std::int64_t>((i * 7 + len) % 19);
        n += len;
    }
    std::vector<std::int64_t> ids = stored;
    for (auto& v : ids) v += static_cast<std::int64_t>(inter);

    NiftiSpec spec;
    spec.byte_order = order;
    spec.dims = dims;
    spec.datatype = code;
    spec.data = encode_as(code, stored, order);
    if (scaled) {
        spec.scl_slope = 1;
        spec.scl_inter = inter;
    }
    FilterOptions opt;
    opt.labels = LabelSet::parse(ids_text, 1000);
    opt.mode = mode;
    const Output out = run_filter(spec, opt);
    CHECK(ids_of(out) == reference(ids, dims, opt.labels, mode, nullptr));
}

// ---- map= (README.md) ---------------------------------------------------
namespace {


// The reference of a remap, as np.select over the rules: selected voxels get
// their rule's new id or keep theirs, the rest 0 (mask mode: 1 where selected).
std::vector<double> reference_map(const std::vector<std::int64_t>& ids, const LabelSet& set,
                                  const LabelMap& map, Mode mode) {
    std::vector<double> out;
    for (auto id : ids) {
        const bool sel = set.contains(id);
        if (mode == Mode::Mask) out.push_back(sel ? 1.0 : 0.0);
        else out.push_back(sel ? static_cast<double>(map.find(id).value_or(id)) : 0.0);
    }
    return out;
}

struct IntRange {
    std::int64_t lo, hi;
};

IntRange range_of(int code) {
    switch (code) {
    case 2: return {0, 255};
    case 256: return {-128, 127};
    case 4: return {-32768, 32767};
    case 512: return {0, 65535};
    case 8: return {INT32_MIN, INT32_MAX};
    case 768: return {0, UINT32_MAX};
    case 16: return {-(1 << 24), 1 << 24};
    case 64: return {-(std::int64_t{1} << 53), std::int64_t{1} << 53};
    case 1280: return {0, INT64_MAX};   // enough for these small ids
    default: return {INT64_MIN, INT64_MAX};
    }
}

// The output datatype README.md asks for, by brute force over the ids
// -70000..70000 the rules of these tests use: the input's when every new id a
// selectable voxel can get fits it, else the narrowest signed type that holds
// every id the output can hold.
int expected_map_type(int code, const LabelSet& set, const LabelMap& map) {
    const IntRange own = range_of(code);
    const bool is_unsigned = code == 2 || code == 512 || code == 768 || code == 1280;
    bool fits = true;
    std::int64_t lo = 0, hi = 0;
    for (std::int64_t id = -70000; id <= 70000; ++id) {
        if (!set.contains(id)) continue;
        const bool storable = code == 16 || code == 64 ? true : id >= own.lo && id <= own.hi;
        if (!storable || (is_unsigned && id < 0)) continue;
        const std::int64_t v = map.find(id).value_or(id);
        if (map.find(id) && !(v >= own.lo && v <= own.hi)) fits = false;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    if (fits) return code;
    if (lo >= -128 && hi <= 127) return 256;
    if (lo >= -32768 && hi <= 32767) return 4;
    if (lo >= INT32_MIN && hi <= INT32_MAX) return 8;
    return 1024;
}

}  // namespace

TEST_CASE("filter: map gives the rules' new ids for every label datatype", "[labels][filter][map]") {
    const int code = GENERATE(2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64);
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    const bool crop = GENERATE(false, true);
    auto [ids_text, map_text] = GENERATE(table<std::string, std::string>({
        {"-", "5:1,6-9:2"},           // no label_ids: the sources select
        {"1-20", "5:1,6-9:2"},        // unmatched selected ids keep theirs
        {"-", "1:300,2-3:-2"},        // widening, negative new ids
        {"-", "100:-1"},              // unsigned inputs narrow to int8
        {"1-200", "100:-1,13:0"},     // negative new id next to kept ids up to 200
        {"-3,1-3", "-3:40000"},       // int16 cannot hold 40000
        {"2,20", "5:1,6-9:2"},        // no rule matches a selected id: the plain filter
        {"", "5:1"},                  // label_ids= (empty) with a map: nothing selected
        {"-", "1-100000:1"},          // a binary map of everything but 0
    }));
    const Mode mode = GENERATE(Mode::Keep, Mode::Mask);
    INFO("datatype " << code << (order == ByteOrder::Big ? " big" : " little") << " crop " << crop
                     << " label_ids " << ids_text << " map " << map_text << " mode "
                     << (mode == Mode::Keep ? "keep" : "mask"));

    const std::vector<std::int64_t> dims = {7, 5, 4};
    const std::vector<std::int64_t> ids = interior_labels(code);
    NiftiSpec spec;
    spec.byte_order = order;
    spec.dims = dims;
    spec.datatype = code;
    spec.data = encode_as(code, ids, order);
    spec.sform_code = 2;
    spec.srow = {{{0.8, 0, 0, -90}, {0, 0.9, 0, 30}, {0, 0, 2.5, -12}}};

    FilterOptions opt;
    opt.map = LabelMap::parse(map_text, 100000);
    opt.labels = ids_text == "-" ? opt.map.sources() : LabelSet::parse(ids_text, 1000);
    opt.mode = mode;
    opt.crop = crop;
    const Output out = run_filter(spec, opt);

    std::vector<std::int64_t> expected_ids = ids;
    std::vector<std::int64_t> out_dims = dims;
    if (crop) {
        const Box box = reference_box(ids, dims, opt.labels, 0);
        expected_ids.clear();
        for (std::int64_t n = 0; n < static_cast<std::int64_t>(ids.size()); ++n) {
            const std::int64_t c[3] = {n % 7, (n / 7) % 5, n / 35};
            bool inside = true;
            for (int a = 0; a < 3; ++a) inside = inside && c[a] >= box.lo[a] && c[a] <= box.hi[a];
            if (inside) expected_ids.push_back(ids[static_cast<std::size_t>(n)]);
        }
        for (int a = 0; a < 3; ++a) out_dims[a] = box.hi[a] - box.lo[a] + 1;
    }
    CHECK(ids_of(out) == reference_map(expected_ids, opt.labels, opt.map, mode));
    for (int a = 0; a < 3; ++a) CHECK(out.header.dim(a + 1) == out_dims[a]);
    CHECK(out.header.byte_order() == order);
    if (mode == Mode::Mask) {
        CHECK(out.header.datatype().code == 2);
    } else {
        CHECK(out.header.datatype().code == expected_map_type(code, opt.labels, opt.map));
        CHECK((!out.header.scaled() || (out.header.slope() == 1 && out.header.inter() == 0)));
    }
}

TEST_CASE("filter: map on scaled inputs writes exact new ids", "[labels][filter][map]") {
    NiftiSpec spec;
    spec.dims = {4, 2, 1};
    FilterOptions opt;
    for (const auto& c : kScaledMap) DYNAMIC_SECTION(c.name) { check_scaled(c); }
    SECTION("int32 slope 0.5 inter 0: new ids at stored 2*id, non-integral values refused") {
        spec.datatype = 8;
        spec.scl_slope = 0.5;
        spec.data = encode_as(8, {0, 2, 4, 6, 0, 0, 0, 3}, ByteOrder::Little);
        opt.map = LabelMap::parse("1:-7", 10);
        opt.labels = opt.map.sources();
        Reader in = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
        MemorySink sink;
        CHECK(code_of([&] { medimg::labels::filter(in, sink, Container::Plain, opt); }) ==
              ErrorCode::NonIntegralLabels);
        CHECK(sink.bytes.empty());
        spec.data = encode_as(8, {0, 2, 4, 6, 0, 0, 0, 2}, ByteOrder::Little);
        const Output out = run_filter(spec, opt);
        CHECK(out.header.datatype().code == 8);
        CHECK(out.header.slope() == 0.5);
        CHECK(decode_as(8, out.data, ByteOrder::Little).ints ==
              std::vector<std::int64_t>{0, -14, 0, 0, 0, 0, 0, -14});
    }
}

TEST_CASE("filter: map on 64-bit ids beyond int64", "[labels][filter][map]") {
    const std::uint64_t top = UINT64_MAX;
    NiftiSpec spec;
    spec.dims = {4};
    spec.datatype = 1280;
    spec.data = medimg::test::encode<std::uint64_t>({0, 5, top, top - 1}, ByteOrder::Little);
    FilterOptions opt;
    SECTION("the largest uint64 id mapped to -1: int8") {
        opt.map = LabelMap::parse("18446744073709551615:-1", 10);
        opt.labels = opt.map.sources();
        const Output out = run_filter(spec, opt);
        CHECK(out.header.datatype().code == 256);
        CHECK(decode_as(256, out.data, ByteOrder::Little).ints ==
              std::vector<std::int64_t>{0, 0, -1, 0});
    }
    SECTION("a new id that fits uint64: stays uint64 and exact") {
        opt.map = LabelMap::parse("5:9223372036854775807", 10);
        opt.labels = LabelSet::parse("5,18446744073709551614-18446744073709551615", 10);
        const Output out = run_filter(spec, opt);
        CHECK(out.header.datatype().code == 1280);
        std::vector<std::uint64_t> got;
        for (int i = 0; i < 4; ++i) got.push_back(get<std::uint64_t>(out.data.data() + 8 * i, ByteOrder::Little));
        CHECK(got == std::vector<std::uint64_t>{0, 9223372036854775807ull, top, top - 1});
    }
    SECTION("ids above int64 kept next to a negative new id: no datatype holds both") {
        opt.map = LabelMap::parse("5:-1", 10);
        opt.labels = LabelSet::parse("5,18446744073709551615", 10);
        Reader in = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
        MemorySink sink;
        medimg::test::expect_error(
            [&] { medimg::labels::filter(in, sink, Container::Plain, opt); },
            ErrorCode::BadParameter, "no integer datatype holds");
        CHECK(sink.bytes.empty());
    }
}

TEST_CASE("filter: map over long background runs matches the reference", "[labels][filter][map]") {
    const int code = GENERATE(2, 4, 512, 8, 1024);
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    INFO("datatype " << code << (order == ByteOrder::Big ? " big" : " little"));
    const std::vector<std::int64_t> dims = {64, 48, 9};
    const std::size_t count = 64 * 48 * 9;
    std::vector<std::int64_t> ids(count, 0);
    std::uint32_t rng = 777;
    for (std::size_t n = 0; n < count;) {
        rng = rng * 1103515245u + 12345u;
        n += (rng >> 8) % 500;
        rng = rng * 1103515245u + 12345u;
        const std::size_t len = 1 + (rng >> 8) % 90;
        for (std::size_t i = n; i < std::min(count, n + len); ++i)
            ids[i] = 1 + static_cast<std::int64_t>((i * 5 + len) % 23);
        n += len;
    }
    NiftiSpec spec;
    spec.byte_order = order;
    spec.dims = dims;
    spec.datatype = code;
    spec.data = encode_as(code, ids, order);
    FilterOptions opt;
    opt.map = LabelMap::parse("1-5:300,7:-2,20-23:0", 1000);
    opt.labels = LabelSet::parse("1-9,20-23", 1000);
    const Output out = run_filter(spec, opt);
    CHECK(out.header.datatype().code == (code == 4 || code == 8 || code == 1024 ? code : 4));
    CHECK(ids_of(out) == reference_map(ids, opt.labels, opt.map, Mode::Keep));
}
