// Per-label intensity statistics against a direct computation (every
// label's values gathered, sorted, summed twice in long double), for integer
// images (exact), float images (documented precision), scaling with either
// sign, both byte orders, table and hash label lookups; the grid checks and
// the histogram bound.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <vector>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "labels/intensity.hpp"
#include "nifti/datatype.hpp"
#include "nifti/reader.hpp"
#include "nifti_builder.hpp"

using medimg::ErrorCode;
using medimg::labels::Intensity;
using medimg::labels::LabelId;
using medimg::nifti::ByteOrder;
using medimg::nifti::Reader;
using medimg::nifti::ReadLimits;
using medimg::test::NiftiSpec;
using medimg::test::expect_error;

namespace {

const std::vector<std::int64_t> kDims = {13, 11, 7};
constexpr std::size_t kN = 13 * 11 * 7;

struct Direct {
    double mean, sd, min, max, p05, p50, p95;
};

// numpy's method="lower" on the sorted values.
double lower(const std::vector<double>& sorted, double pct) {
    const auto r = static_cast<std::size_t>(std::floor(pct / 100.0 * double(sorted.size() - 1)));
    return sorted[r];
}

std::map<LabelId, Direct> direct(const std::vector<int>& labels, const std::vector<double>& values) {
    std::map<LabelId, std::vector<double>> by;
    for (std::size_t i = 0; i < labels.size(); ++i)
        if (labels[i] != 0 && std::isfinite(values[i])) by[labels[i]].push_back(values[i]);
    std::map<LabelId, Direct> out;
    for (auto& [id, v] : by) {
        std::sort(v.begin(), v.end());
        long double s = 0;
        for (double x : v) s += x;
        const long double m = s / v.size();
        long double m2 = 0;
        for (double x : v) m2 += (x - m) * (x - m);
        out[id] = {double(m), double(std::sqrt(m2 / v.size())), v.front(), v.back(),
                   lower(v, 5), lower(v, 50), lower(v, 95)};
    }
    return out;
}

// Integer images: mean and sd to rounding, everything else exact.
void check_exact(const Intensity& g, const Direct& w) {
    CHECK(g.mean == Approx(w.mean).epsilon(1e-12));
    CHECK(g.sd == Approx(w.sd).epsilon(1e-12));
    CHECK(g.min == w.min);
    CHECK(g.max == w.max);
    CHECK(g.p05 == w.p05);
    CHECK(g.p50 == w.p50);
    CHECK(g.p95 == w.p95);
}

template <typename T>
NiftiSpec spec_of(int code, const std::vector<T>& v, ByteOrder order) {
    NiftiSpec s;
    s.dims = kDims;
    s.datatype = code;
    s.byte_order = order;
    s.data = medimg::test::encode<T>(v, order);
    return s;
}

medimg::labels::MetadataWithIntensity run(const NiftiSpec& l, const NiftiSpec& i) {
    Reader lr = Reader::open_memory(medimg::test::build_nifti(l), ReadLimits{});
    Reader ir = Reader::open_memory(medimg::test::build_nifti(i), ReadLimits{});
    return medimg::labels::compute_intensity(lr, ir);
}

// The intensity pass of image `im` under label map `l` (labels, values: the
// same voxels as numbers), every label checked exactly against direct().
medimg::labels::MetadataWithIntensity run_exact(const NiftiSpec& l, const NiftiSpec& im,
                                                const std::vector<int>& labels,
                                                const std::vector<double>& values) {
    auto got = run(l, im);
    const auto want = direct(labels, values);
    REQUIRE(got.intensity.size() == want.size());
    for (const auto& [id, w] : want) {
        INFO("label " << static_cast<long long>(id));
        check_exact(got.intensity.at(id), w);
    }
    return got;
}

std::vector<int> random_labels(std::mt19937& rng, std::vector<int> ids) {
    std::vector<int> l(kN);
    for (auto& x : l) x = ids[rng() % ids.size()];
    return l;
}

}  // namespace

TEST_CASE("intensity: integer images are exact, scaled either way, both byte orders",
          "[labels][intensity]") {
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    const double slope = GENERATE(0.0, 1.0, 0.5, -2.0);
    INFO("slope " << slope);
    std::mt19937 rng(42);
    const auto labels = random_labels(rng, {0, 0, 6, 28, 133, 1});
    std::vector<std::int16_t> stored(kN);
    for (auto& x : stored) x = static_cast<std::int16_t>(int(rng() % 4096) - 1024);
    stored[5] = -32768;   // a far outlier: the histogram must grow to it
    NiftiSpec l = spec_of<std::int16_t>(4, std::vector<std::int16_t>(labels.begin(), labels.end()), order);
    NiftiSpec im = spec_of<std::int16_t>(4, stored, order);
    im.scl_slope = slope;
    im.scl_inter = slope == 0.0 ? 0.0 : -1024.0;
    std::vector<double> values(kN);
    for (std::size_t i = 0; i < kN; ++i)
        values[i] = slope == 0.0 ? double(stored[i]) : double(stored[i]) * slope + im.scl_inter;
    const auto got = run_exact(l, im, labels, values);
    // The metadata of the same pass is compute_metadata's.
    Reader lr = Reader::open_memory(medimg::test::build_nifti(l), ReadLimits{});
    const auto meta = medimg::labels::compute_metadata(lr);
    REQUIRE(meta.labels.size() == got.meta.labels.size());
    for (std::size_t k = 0; k < meta.labels.size(); ++k) {
        CHECK(meta.labels[k].id == got.meta.labels[k].id);
        CHECK(meta.labels[k].voxels == got.meta.labels[k].voxels);
    }
}

TEST_CASE("intensity: wide label types (hash lookup) and every integer image type",
          "[labels][intensity]") {
    // Image datatype and the stored values drawn: lo + [0, span).
    const auto row = GENERATE(table<int, std::int64_t, std::int64_t>({
        {2, 0, 256},
        {256, -128, 256},
        {4, -30000, 60000},
        {512, 0, 65536},
        {8, -2000000000, 100000},
        {768, 4000000000LL, 100000},
        {1024, -(std::int64_t{1} << 40), 100000},
        {1280, std::int64_t{1} << 40, 100000},
    }));
    const int code = std::get<0>(row);
    const std::int64_t lo = std::get<1>(row), span = std::get<2>(row);
    INFO("image datatype " << code);
    std::mt19937 rng(7);
    const auto labels = random_labels(rng, {0, 100000, 3, 70000});
    NiftiSpec l = spec_of<std::int32_t>(8, std::vector<std::int32_t>(labels.begin(), labels.end()),
                                        ByteOrder::Little);
    std::vector<double> values(kN);
    NiftiSpec im;
    medimg::nifti::visit_element_type(*medimg::nifti::find_datatype(code), [&](auto tag) {
        using T = decltype(tag);
        std::vector<T> v(kN);
        for (std::size_t i = 0; i < kN; ++i) {
            v[i] = static_cast<T>(lo + std::int64_t(rng() % std::uint64_t(span)));
            values[i] = double(v[i]);
        }
        im = spec_of<T>(code, v, ByteOrder::Little);
    });
    run_exact(l, im, labels, values);
}

TEST_CASE("intensity: float images within half a bin, NaN and inf left out",
          "[labels][intensity]") {
    const int code = GENERATE(16, 64);
    std::mt19937 rng(3);
    const auto labels = random_labels(rng, {0, 2, 9});
    std::normal_distribution<double> noise(40.0, 25.0);
    std::vector<double> values(kN);
    for (auto& x : values) x = code == 16 ? double(float(noise(rng))) : noise(rng);
    values[10] = std::numeric_limits<double>::quiet_NaN();
    values[11] = std::numeric_limits<double>::infinity();
    NiftiSpec l = spec_of<std::uint8_t>(2, std::vector<std::uint8_t>(labels.begin(), labels.end()),
                                        ByteOrder::Little);
    NiftiSpec im = code == 16
        ? spec_of<float>(16, std::vector<float>(values.begin(), values.end()), ByteOrder::Big)
        : spec_of<double>(64, values, ByteOrder::Little);
    const auto got = run(l, im);
    const auto want = direct(labels, values);
    REQUIRE(got.intensity.size() == want.size());
    for (const auto& [id, w] : want) {
        const Intensity& g = got.intensity.at(id);
        const double half_bin = (w.max - w.min) / (2.0 * medimg::labels::kFloatBins);
        CHECK(g.mean == Approx(w.mean).epsilon(1e-12));
        CHECK(g.sd == Approx(w.sd).epsilon(1e-12));
        CHECK(g.min == w.min);
        CHECK(g.max == w.max);
        CHECK(std::fabs(g.p05 - w.p05) <= half_bin);
        CHECK(std::fabs(g.p50 - w.p50) <= half_bin);
        CHECK(std::fabs(g.p95 - w.p95) <= half_bin);
    }
}

TEST_CASE("intensity: a label whose values are all NaN has no statistics", "[labels][intensity]") {
    std::vector<std::uint8_t> l(kN, 0);
    l[0] = 4;
    l[1] = 5;
    std::vector<float> v(kN, 1.0f);
    v[0] = std::numeric_limits<float>::quiet_NaN();
    const auto got = run(spec_of<std::uint8_t>(2, l, ByteOrder::Little),
                         spec_of<float>(16, v, ByteOrder::Little));
    CHECK(got.intensity.count(4) == 0);
    REQUIRE(got.intensity.count(5) == 1);
    CHECK(got.intensity.at(5).mean == 1.0);
    nlohmann::ordered_json answer = medimg::labels::labels_json(got.meta, medimg::labels::Dictionary{}, "x");
    medimg::labels::add_intensity_json(answer, got.intensity);
    CHECK(answer["labels"][0]["intensity"].is_null());
    CHECK(answer["labels"][1]["intensity"]["p50"] == 1.0);
}

TEST_CASE("intensity: a different grid is geometry_mismatch naming what differs",
          "[labels][intensity]") {
    std::vector<std::uint8_t> l(kN, 1);
    NiftiSpec ls = spec_of<std::uint8_t>(2, l, ByteOrder::Little);
    ls.sform_code = 1;
    SECTION("dims") {
        NiftiSpec im = ls;
        im.dims = {13, 7, 11};
        expect_error([&] { run(ls, im); }, ErrorCode::GeometryMismatch, "dims [13,7,11]");
    }
    SECTION("a 4-D image over a 3-D label map") {
        NiftiSpec im = ls;
        im.dims = {13, 11, 7, 2};
        im.data = std::vector<std::uint8_t>(2 * kN, 1);
        expect_error([&] { run(ls, im); }, ErrorCode::GeometryMismatch, "dims [13,11,7,2]");
    }
    SECTION("affine beyond 1e-3 mm at the far corner") {
        NiftiSpec im = ls;
        im.srow[1][1] = 1.0 + 0.002 / 10.0;   // voxel j=10 moves 0.002 mm
        expect_error([&] { run(ls, im); }, ErrorCode::GeometryMismatch, "(0,10,0)");
    }
    SECTION("offset within 1e-3 mm is the same grid") {
        NiftiSpec im = ls;
        im.srow[0][3] = 0.0005;
        CHECK(run(ls, im).intensity.at(1).mean == 1.0);
    }
    SECTION("the same affine in metres is the same grid") {
        NiftiSpec im = ls;
        im.xyzt_units = 1;   // metres
        for (auto& row : im.srow)
            for (auto& x : row) x /= 1000.0;
        CHECK(run(ls, im).intensity.at(1).mean == 1.0);
    }
    CHECK(medimg::error_info(ErrorCode::GeometryMismatch).http_status == 422);
}

TEST_CASE("intensity: more distinct stored values than the histogram bound is refused",
          "[labels][intensity]") {
    std::vector<std::uint8_t> l(kN, 1);
    std::vector<std::int32_t> v(kN);
    for (std::size_t i = 0; i < kN; ++i) v[i] = std::int32_t(i) * 10000;   // span ~10^7
    expect_error([&] { run(spec_of<std::uint8_t>(2, l, ByteOrder::Little),
                           spec_of<std::int32_t>(8, v, ByteOrder::Little)); },
                 ErrorCode::TooLarge, "distinct stored values");
}

TEST_CASE("intensity: an image that is not real scalars is refused", "[labels][intensity]") {
    std::vector<std::uint8_t> l(kN, 1);
    NiftiSpec im = spec_of<std::uint8_t>(2, l, ByteOrder::Little);
    im.datatype = 128;   // RGB24
    im.data = std::vector<std::uint8_t>(3 * kN, 1);
    expect_error([&] { run(spec_of<std::uint8_t>(2, l, ByteOrder::Little), im); },
                 ErrorCode::UnsupportedDatatype, "RGB");
}
