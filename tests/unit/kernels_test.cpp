// The filter's kernels on their own, without the driver: the range kernel
// for each type, byte order and range count against a per-voxel reference,
// and every plan's output and mask kernels (range, table, exact and map
// paths) on raw voxels, with long background runs so that the all-zero
// shortcut and the dense loop both run.
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "labels/kernels.hpp"
#include "labels/label_set.hpp"
#include "labels/plan.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/datatype.hpp"
#include "nifti/header.hpp"
#include "nifti_builder.hpp"

using medimg::labels::LabelId;
using medimg::labels::LabelMap;
using medimg::labels::LabelSet;
using medimg::labels::Mode;
using medimg::labels::Plan;
using medimg::nifti::ByteOrder;
using medimg::nifti::Header;
using medimg::test::NiftiSpec;
namespace kernels = medimg::labels::kernels;
namespace byteorder = medimg::nifti::byteorder;

namespace {

// Mostly background with islands of small ids, negative ones where T is signed.
template <typename T>
std::vector<T> island_values(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<T> v(n, T(0));
    for (std::size_t i = 0; i < n;) {
        i += 50 + rng() % 300;   // a background run
        for (std::size_t k = 0; k < 1 + rng() % 90 && i < n; ++k, ++i) {
            long long x = static_cast<long long>(rng() % 40);
            if (std::is_signed_v<T> && rng() % 4 == 0) x = -x;
            v[i] = static_cast<T>(x);
        }
    }
    return v;
}

template <typename T>
std::vector<std::uint8_t> bytes_of(const std::vector<T>& v, ByteOrder o) {
    std::vector<std::uint8_t> b(v.size() * sizeof(T));
    for (std::size_t i = 0; i < v.size(); ++i)
        byteorder::store<T>(b.data() + i * sizeof(T), v[i], o == ByteOrder::Little);
    return b;
}

// Runs RangeKernel<U, Swap, M, N> over values in order `o` against the
// selection [lo, hi] of each range.
template <typename T, bool Swap, kernels::Out M, int N>
void check_range_kernel(const std::vector<std::pair<long long, long long>>& ranges) {
    using U = std::make_unsigned_t<T>;
    const ByteOrder o = (byteorder::host_is_little() != Swap) ? ByteOrder::Little : ByteOrder::Big;
    std::vector<std::pair<U, U>> r;
    for (const auto& [lo, hi] : ranges) r.emplace_back(static_cast<U>(lo), static_cast<U>(static_cast<U>(hi) - static_cast<U>(lo)));
    const kernels::RangeKernel<U, Swap, M, N> k(r);
    const auto values = island_values<T>(20000, 5);
    const auto in = bytes_of(values, o);
    const std::size_t out_bytes = M == kernels::Out::Mask ? 1 : sizeof(T);
    std::vector<std::uint8_t> out(values.size() * out_bytes, 0xAA);
    const std::uint64_t count = k.run(in.data(), out.data(), values.size());
    std::uint64_t want_count = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        bool sel = false;
        for (const auto& [lo, hi] : ranges)
            sel = sel || (std::cmp_greater_equal(values[i], lo) && std::cmp_less_equal(values[i], hi));
        want_count += sel;
        if (M == kernels::Out::Mask) {
            REQUIRE(out[i] == (sel ? 1 : 0));
        } else {
            const T got = byteorder::load<T>(out.data() + i * sizeof(T), o == ByteOrder::Little);
            REQUIRE(got == (sel ? values[i] : T(0)));
        }
    }
    CHECK(count == want_count);
}

}  // namespace

TEST_CASE("kernels: the range kernel for each type, byte order and range count",
          "[labels][kernels]") {
    using kernels::Out;
    const std::vector<std::pair<long long, long long>> one = {{5, 9}};
    const std::vector<std::pair<long long, long long>> three = {{-3, -1}, {2, 2}, {30, 39}};
    const std::vector<std::pair<long long, long long>> with_zero = {{0, 1}, {7, 7}, {20, 25}};
    const std::vector<std::pair<long long, long long>> six = {{1, 1}, {3, 3}, {5, 5}, {7, 8}, {10, 12}, {33, 33}};
    SECTION("int8") {
        check_range_kernel<std::int8_t, false, Out::Mask, 1>(one);
        check_range_kernel<std::int8_t, false, Out::KeepRaw, 3>(three);
        check_range_kernel<std::int8_t, false, Out::KeepRaw, 3>(with_zero);
    }
    SECTION("uint16, both byte orders") {
        check_range_kernel<std::uint16_t, false, Out::Mask, 8>(six);
        check_range_kernel<std::uint16_t, true, Out::Mask, 8>(six);
        check_range_kernel<std::uint16_t, true, Out::KeepRaw, 1>(one);
    }
    SECTION("int16 swapped, zero selected (no all-zero shortcut)") {
        check_range_kernel<std::int16_t, true, Out::KeepRaw, 3>(with_zero);
        check_range_kernel<std::int16_t, true, Out::Mask, 3>(three);
    }
    SECTION("int32 and uint64, both byte orders") {
        check_range_kernel<std::int32_t, false, Out::KeepRaw, 8>(six);
        check_range_kernel<std::int32_t, true, Out::Mask, 3>(three);
        check_range_kernel<std::uint64_t, true, Out::KeepRaw, 8>(six);
        check_range_kernel<std::uint64_t, false, Out::Mask, 1>(one);
    }
}

TEST_CASE("kernels: the empty kernel writes zeros and selects nothing", "[labels][kernels]") {
    const kernels::EmptyKernel k(2);
    std::vector<std::uint8_t> in(64, 7), out(64, 0xAA);
    CHECK(k.run(in.data(), out.data(), 32) == 0);
    CHECK(out == std::vector<std::uint8_t>(64, 0));
}

namespace {

struct PlanCase {
    std::string name;
    int code;                 // input datatype
    double slope, inter;      // header scaling (slope 0: none)
    std::string labels;       // the selection
    std::string map;          // keep mode's map, or empty
};

// The id a reader sees in a voxel of out_type under the plan's scaling.
double id_in(const std::uint8_t* p, const medimg::nifti::DataType& t, bool little, double slope,
             double inter) {
    return medimg::nifti::visit_element_type(t, [&](auto tag) {
        using T = decltype(tag);
        return static_cast<double>(byteorder::load<T>(p, little)) * slope + inter;
    });
}

}  // namespace

TEST_CASE("kernels: every plan's kernels give the selected ids on raw voxels",
          "[labels][kernels][plan]") {
    const PlanCase cases[] = {
        {"int16, few ranges: range kernel", 4, 0, 0, "1,5-9,-3", ""},
        {"int16, many ranges: table", 4, 0, 0, "1,3,5,7,9,11,13,15,17,19", ""},
        {"uint8 slope 2 inter 1: table on scaled values", 2, 2, 1, "3,11,21-31", ""},
        {"int32, many ranges: exact path", 8, 0, 0, "1,3,5,7,9,11,13,15,17,19", ""},
        {"int64 slope 2: exact path, verified", 1024, 2, 0, "2-8,-6", ""},
        {"uint8 inter -1024, no stored 0: unscaled ids", 2, 1, -1024, "-1020,-1000,-990", ""},
        {"float32: exact path", 16, 0, 0, "2,4-6,-7", ""},
        {"int16 map: table", 4, 0, 0, "1-9", "3:100,5:-2"},
        {"int64 map: exact map path", 1024, 0, 0, "1-9,-3", "3:100,-3:7"},
    };
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    const Mode mode = GENERATE(Mode::Keep, Mode::Mask);
    for (const auto& c : cases) {
        DYNAMIC_SECTION(c.name << (order == ByteOrder::Big ? " big" : " little")
                               << (mode == Mode::Keep ? " keep" : " mask")) {
            const auto& type = *medimg::nifti::find_datatype(c.code);
            std::vector<std::uint8_t> in;
            const std::size_t n = 9000;
            medimg::nifti::visit_element_type(type, [&](auto tag) {
                using T = decltype(tag);
                in = bytes_of(island_values<T>(n, 11), order);
            });
            NiftiSpec s;
            s.byte_order = order;
            s.dims = {static_cast<std::int64_t>(n)};
            s.datatype = c.code;
            s.scl_slope = c.slope;
            s.scl_inter = c.inter;
            s.data = in;
            const auto file = medimg::test::build_nifti(s);
            const Header h = Header::parse(file, medimg::nifti::Layout::Single, {}, file.size());
            const LabelSet set = LabelSet::parse(c.labels, 1000);
            const LabelMap map = c.map.empty() ? LabelMap{} : LabelMap::parse(c.map, 1000);
            const Plan plan = mode == Mode::Keep && !map.empty()
                                  ? medimg::labels::make_map_plan(h, set, map)
                                  : medimg::labels::make_plan(h, set, mode);
            if (plan.verify) plan.verify(in.data(), n);

            std::vector<std::uint8_t> out(n * plan.out_type.bytes), mask(n);
            const std::uint64_t count = plan.out_kernel->run(in.data(), out.data(), n);
            CHECK(plan.mask_kernel->run(in.data(), mask.data(), n) == count);
            const bool little = order == ByteOrder::Little;
            const double out_slope = plan.unscale ? 1 : h.slope(), out_inter = plan.unscale ? 0 : h.inter();
            std::uint64_t want_count = 0;
            for (std::size_t i = 0; i < n; ++i) {
                const double id = id_in(in.data() + i * type.bytes, type, little, h.slope(), h.inter());
                const bool sel = set.contains(static_cast<LabelId>(id));
                want_count += sel;
                REQUIRE(mask[i] == (sel ? 1 : 0));
                double want = mode == Mode::Mask ? (sel ? 1 : 0) : (sel ? id : 0);
                if (mode == Mode::Keep && sel)
                    for (const auto& r : map.rules())
                        if (static_cast<LabelId>(id) >= r.first && static_cast<LabelId>(id) <= r.last)
                            want = static_cast<double>(r.to);
                INFO("voxel " << i << " id " << id);
                REQUIRE(id_in(out.data() + i * plan.out_type.bytes, plan.out_type, little, out_slope,
                              out_inter) == want);
            }
            CHECK(count == want_count);
        }
    }
}
