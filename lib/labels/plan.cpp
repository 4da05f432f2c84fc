// Planning the filter (labels/plan.hpp): the kernel, its ranges or table and
// the output type for each datatype, scaling and mode.
#include "labels/plan.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "labels/detail.hpp"
#include "nifti/byteorder.hpp"

namespace medimg::labels {
namespace {

using namespace kernels;
using nifti::DataType;
using nifti::Header;
using nifti::TypeKind;
using Range = std::pair<LabelId, LabelId>;   // a LabelSet range


struct TypeRange {
    LabelId lo;   // smallest stored value
    LabelId hi;
};

// The stored values of an integer datatype.
TypeRange int_type_range(const DataType& t) {
    return nifti::visit_element_type(t, [](auto tag) {
        using T = decltype(tag);
        if constexpr (std::is_integral_v<T>)
            return TypeRange{std::numeric_limits<T>::min(), std::numeric_limits<T>::max()};
        else
            return TypeRange{INT64_MIN, INT64_MAX};   // not asked for floats
    });
}

// Set ranges clipped to what the stored type can hold.
std::vector<Range> clip(const std::vector<Range>& ranges, TypeRange tr) {
    std::vector<Range> out;
    for (auto [a, b] : ranges) {
        a = std::max(a, tr.lo);
        b = std::min(b, tr.hi);
        if (a <= b) out.emplace_back(a, b);
    }
    return out;
}

template <typename T>
std::unique_ptr<ExactKernel<T>> make_exact(const Header& h, const LabelSet& set, Out mode,
                                           std::array<std::uint8_t, 8> zero_raw, const DataType& ot) {
    using K = IdOf<T>;
    std::vector<std::pair<K, K>> ranges;
    const LabelId k_max = std::is_same_v<K, LabelId> ? kMaxLabelId : LabelId{INT64_MAX};
    for (const auto& [a, b] : clip(set.ranges(), TypeRange{kMinLabelId, k_max}))
        ranges.emplace_back(static_cast<K>(a), static_cast<K>(b));
    return std::make_unique<ExactKernel<T>>(std::move(ranges),
                                            h.byte_order() == nifti::ByteOrder::Little, h.scaled(),
                                            h.slope(), h.inter(), mode, zero_raw, ot);
}

template <typename U, bool Swap>
std::unique_ptr<Kernel> range_kernel_for(const std::vector<Range>& clipped, Out mode) {
    std::vector<std::pair<U, U>> r;
    for (const auto& [a, b] : clipped)
        r.emplace_back(static_cast<U>(a), static_cast<U>(static_cast<U>(b) - static_cast<U>(a)));
    if (r.empty()) return std::make_unique<EmptyKernel>(mode == Out::Mask ? 1 : sizeof(U));
    auto make = [&](auto n) -> std::unique_ptr<Kernel> {
        constexpr int N = decltype(n)::value;
        if (mode == Out::Mask) return std::make_unique<RangeKernel<U, Swap, Out::Mask, N>>(r);
        return std::make_unique<RangeKernel<U, Swap, Out::KeepRaw, N>>(r);
    };
    switch (r.size()) {
    case 1: return make(std::integral_constant<int, 1>{});
    case 2: return make(std::integral_constant<int, 2>{});
    case 3: return make(std::integral_constant<int, 3>{});
    case 4: return make(std::integral_constant<int, 4>{});
    default: return make(std::integral_constant<int, 8>{});   // 5..8
    }
}

template <typename U>
std::unique_ptr<Kernel> range_kernel(const std::vector<Range>& clipped, Out mode, bool swap) {
    // A single byte reads the same in either order.
    if constexpr (sizeof(U) > 1) {
        if (swap) return range_kernel_for<U, true>(clipped, mode);
    }
    return range_kernel_for<U, false>(clipped, mode);
}

// Table over every raw value of an 8/16-bit type (read natively from the
// file's bytes): the selection and the output raw value.
template <typename T>
std::unique_ptr<Kernel> lut_kernel(const Header& h, const LabelSet& set, Out mode,
                                   std::array<std::uint8_t, 8> zero_raw) {
    using U = std::make_unsigned_t<T>;
    using E = std::conditional_t<sizeof(U) == 1, std::uint16_t, std::uint32_t>;
    const bool little = h.byte_order() == nifti::ByteOrder::Little;
    const bool scaled = h.scaled();
    const double slope = h.slope(), inter = h.inter();
    const U zr = load_raw<U>(zero_raw.data());
    std::vector<E> table(std::size_t{1} << (8 * sizeof(U)));
    for (std::size_t r = 0; r < table.size(); ++r) {
        const U raw = static_cast<U>(r);
        std::uint8_t bytes[sizeof(U)];
        std::memcpy(bytes, &raw, sizeof(U));
        const T v = nifti::byteorder::load<T>(bytes, little);
        std::optional<std::int64_t> id;
        if (scaled) id = detail::id_of_double(static_cast<double>(v) * slope + inter);
        else id = static_cast<std::int64_t>(v);
        const bool sel = id && set.contains(*id);
        const E out_raw = mode == Out::Mask ? E(0) : E(sel ? raw : zr);
        table[r] = static_cast<E>(out_raw | (E(sel ? 1 : 0) << (8 * sizeof(U))));
    }
    if (mode == Out::Mask) return std::make_unique<LutKernel<U, E, Out::Mask>>(std::move(table));
    return std::make_unique<LutKernel<U, E, Out::KeepRaw>>(std::move(table));
}

// The stored value of T whose scaled value is exactly the id `target`, as
// raw bytes in the file's order; nullopt when the type has none. Scaled
// headers only.
template <typename T>
std::optional<std::array<std::uint8_t, 8>> stored_for(const Header& h, std::int64_t target) {
    std::array<std::uint8_t, 8> raw{};
    const double slope = h.slope(), inter = h.inter();
    // (-inter / slope for 0, as ever: a float type's zero keeps its sign.)
    const double q = target == 0 ? -inter / slope : (static_cast<double>(target) - inter) / slope;
    if (!std::isfinite(q)) return std::nullopt;
    T s{};
    if constexpr (std::is_integral_v<T>) {
        if (q != std::trunc(q)) return std::nullopt;
        // Range check in double: [min, max + 1) of T.
        const double lo = static_cast<double>(std::numeric_limits<T>::min());
        const double hi_excl = static_cast<double>(std::numeric_limits<T>::max()) + 1.0;
        if (!(q >= lo && q < hi_excl)) return std::nullopt;
        s = static_cast<T>(q);
    } else {
        s = static_cast<T>(q);
    }
    // Exactly the id a reader (and the selection) computes from s.
    if (detail::id_of_double(static_cast<double>(s) * slope + inter) != target) return std::nullopt;
    nifti::byteorder::store<T>(raw.data(), s, h.byte_order() == nifti::ByteOrder::Little);
    return raw;
}

// The stored value that scales to exactly 0, as raw bytes in the file's
// order; nullopt when the type has none.
template <typename T>
std::optional<std::array<std::uint8_t, 8>> zero_stored(const Header& h) {
    if (!h.scaled()) return std::array<std::uint8_t, 8>{};   // 0 in any byte order (and +0.0)
    return stored_for<T>(h, 0);
}

// The ids the stored values of an integer type can scale to (bounds; float
// types: int64); nullopt when none is an id (detail::id_of_double).
std::optional<Range> reachable_ids(const Header& h) {
    const auto& t = h.datatype();
    if (t.kind == TypeKind::Float) return Range{INT64_MIN, INT64_MAX};
    const TypeRange tr = int_type_range(t);
    if (!h.scaled()) return Range{tr.lo, tr.hi};
    const double e1 = static_cast<double>(tr.lo) * h.slope() + h.inter();
    const double e2 = static_cast<double>(tr.hi) * h.slope() + h.inter();
    const double rlo = std::floor(std::min(e1, e2)), rhi = std::ceil(std::max(e1, e2));
    // Scaled ids are int64 (detail::id_of_double).
    if (!(rlo < 9223372036854775808.0) || rhi < -9223372036854775808.0) return std::nullopt;
    Range r{INT64_MIN, INT64_MAX};
    if (rlo > -9.2e18) r.first = static_cast<std::int64_t>(rlo);
    if (rhi < 9.2e18) r.second = static_cast<std::int64_t>(rhi);
    return r;
}

// The datatype for unscaled ids when no stored value scales to 0: the
// input's if every selectable id fits, else int32, else int64.
DataType ids_type(const Header& h, const LabelSet& set) {
    const auto& t = h.datatype();
    const DataType& in_type = t;
    if (set.empty()) return in_type;
    LabelId lo = set.ranges().front().first, hi = set.ranges().back().second;
    if (t.kind != TypeKind::Float) {
        // Ids reachable from the type's stored values: none reachable, none kept.
        const auto reach = reachable_ids(h);
        if (!reach) return in_type;
        lo = std::max(lo, reach->first);
        hi = std::min(hi, reach->second);
        if (lo > hi) return in_type;
        const TypeRange own = int_type_range(t);
        if (lo >= own.lo && hi <= own.hi) return in_type;
    } else {
        const double lim = t.bytes == 4 ? 16777216.0 : 9007199254740992.0;
        if (static_cast<double>(lo) >= -lim && static_cast<double>(hi) <= lim) return in_type;
    }
    if (lo >= INT32_MIN && hi <= INT32_MAX) return nifti::datatype_of<std::int32_t>();
    return nifti::datatype_of<std::int64_t>();
}

std::unique_ptr<Kernel> selection_kernel(const Header& h, const LabelSet& set, Out mode,
                                         std::array<std::uint8_t, 8> zero_raw) {
    const auto& t = h.datatype();
    const bool swap = (h.byte_order() == nifti::ByteOrder::Little) != nifti::byteorder::host_is_little();
    return nifti::visit_element_type(t, [&](auto tag) -> std::unique_ptr<Kernel> {
        using T = decltype(tag);
        if constexpr (std::is_integral_v<T>) {
            using U = std::make_unsigned_t<T>;
            // slope 1, inter 0 (as many writers store it) is exact in double
            // for stored types up to 32 bits, so such maps are unscaled too.
            const bool identity = !h.scaled() || (sizeof(T) <= 4 && h.slope() == 1.0 &&
                                                  h.inter() == 0.0);
            if (identity) {
                const auto clipped = clip(set.ranges(), int_type_range(t));
                if (clipped.size() <= 8) return range_kernel<U>(clipped, mode, swap);
            }
            if constexpr (sizeof(T) <= 2) return lut_kernel<T>(h, set, mode, zero_raw);
        }
        return make_exact<T>(h, set, mode, zero_raw, h.datatype());
    });
}

// The map's rules restricted to the selection and to the reachable ids.
std::vector<MapRule> applicable_rules(const LabelMap& map, const std::vector<Range>& selected) {
    std::vector<MapRule> out;
    const auto& rules = map.rules();
    std::size_t i = 0, j = 0;
    while (i < rules.size() && j < selected.size()) {
        const LabelId lo = std::max(rules[i].first, selected[j].first);
        const LabelId hi = std::min(rules[i].last, selected[j].second);
        if (lo <= hi) out.push_back(MapRule{lo, hi, rules[i].to});
        if (rules[i].last < selected[j].second) ++i;
        else ++j;
    }
    return out;
}

// Sorted disjoint ranges minus sorted disjoint rule sources.
std::vector<Range> unmapped(const std::vector<Range>& ranges, const std::vector<MapRule>& rules) {
    std::vector<Range> out;
    std::size_t j = 0;
    for (const auto& [lo, hi] : ranges) {
        LabelId cur = lo;
        while (j < rules.size() && rules[j].last < cur) ++j;
        for (std::size_t k = j; k < rules.size() && rules[k].first <= hi && cur <= hi; ++k) {
            if (rules[k].first > cur) out.emplace_back(cur, rules[k].first - 1);
            cur = std::max(cur, rules[k].last + 1);
        }
        if (cur <= hi) out.emplace_back(cur, hi);
    }
    return out;
}

// The narrowest signed integer type holding [lo, hi].
std::optional<DataType> narrowest_signed(LabelId lo, LabelId hi) {
    if (lo >= INT8_MIN && hi <= INT8_MAX) return nifti::datatype_of<std::int8_t>();
    if (lo >= INT16_MIN && hi <= INT16_MAX) return nifti::datatype_of<std::int16_t>();
    if (lo >= INT32_MIN && hi <= INT32_MAX) return nifti::datatype_of<std::int32_t>();
    if (lo >= INT64_MIN && hi <= INT64_MAX) return nifti::datatype_of<std::int64_t>();
    return std::nullopt;
}

// Can the type hold every id of [lo, hi] exactly, unscaled?
bool holds(const DataType& t, LabelId lo, LabelId hi) {
    if (t.kind == TypeKind::Float) {
        const LabelId lim = t.bytes == 4 ? (LabelId{1} << 24) : (LabelId{1} << 53);
        return lo >= -lim && hi <= lim;
    }
    const TypeRange tr = int_type_range(t);
    return lo >= tr.lo && hi <= tr.hi;
}

template <typename T>
std::unique_ptr<Kernel> map_kernel(MapVoxel<T> voxel, std::size_t out_bytes) {
    if constexpr (sizeof(T) <= 2) {
        using U = std::make_unsigned_t<T>;
        switch (out_bytes) {
        case 1: return std::make_unique<MapLutKernel<U, std::uint8_t>>(voxel);
        case 2: return std::make_unique<MapLutKernel<U, std::uint16_t>>(voxel);
        case 4: return std::make_unique<MapLutKernel<U, std::uint32_t>>(voxel);
        default: return std::make_unique<MapLutKernel<U, std::uint64_t>>(voxel);
        }
    } else {
        switch (out_bytes) {
        case 1: return std::make_unique<MapExactKernel<T, 1>>(std::move(voxel));
        case 2: return std::make_unique<MapExactKernel<T, 2>>(std::move(voxel));
        case 4: return std::make_unique<MapExactKernel<T, 4>>(std::move(voxel));
        default: return std::make_unique<MapExactKernel<T, 8>>(std::move(voxel));
        }
    }
}

}  // namespace

Plan make_plan(const Header& h, const LabelSet& set, Mode mode) {
    detail::require_label_type(h);
    const auto& t = h.datatype();
    Plan plan;
    plan.out_type = t;
    std::array<std::uint8_t, 8> zero_raw{};
    Out out = Out::Mask;
    if (mode == Mode::Mask) {
        plan.out_type = nifti::datatype_of<std::uint8_t>();
        plan.unscale = true;
    } else {
        const auto z = nifti::visit_element_type(t, [&](auto tag) { return zero_stored<decltype(tag)>(h); });
        if (z) {
            zero_raw = *z;
            out = Out::KeepRaw;
        } else {
            out = Out::KeepIds;
            plan.out_type = ids_type(h, set);
            plan.unscale = true;
        }
    }
    if (out == Out::KeepIds) {
        plan.out_kernel = nifti::visit_element_type(t, [&](auto tag) -> std::unique_ptr<Kernel> {
            return make_exact<decltype(tag)>(h, set, Out::KeepIds, zero_raw, plan.out_type);
        });
    } else {
        plan.out_kernel = selection_kernel(h, set, out, zero_raw);
    }
    plan.mask_kernel = selection_kernel(h, set, Out::Mask, zero_raw);

    // Values that may not be label ids are checked before anything is written.
    const bool fractional_scaling =
        h.scaled() && (!detail::is_integral(h.slope()) || !detail::is_integral(h.inter()) ||
                       t.bytes == 8);
    if (t.kind == TypeKind::Float || fractional_scaling) {
        plan.verify = nifti::visit_element_type(t, [&](auto tag) {
            using T = decltype(tag);
            std::shared_ptr<ExactKernel<T>> k = make_exact<T>(h, set, Out::Mask, zero_raw, t);
            return std::function<void(const std::uint8_t*, std::size_t)>(
                [k](const std::uint8_t* in, std::size_t n) { k->verify(in, n); });
        });
    }
    return plan;
}

// ---- Remapping (keep mode with a map) --------------------------------------

Plan make_map_plan(const Header& h, const LabelSet& set, const LabelMap& map) {
    Plan plan = make_plan(h, set, Mode::Keep);
    const auto reach = reachable_ids(h);
    if (!reach) return plan;
    const std::vector<Range> selectable = clip(set.ranges(), TypeRange{reach->first, reach->second});
    const std::vector<MapRule> rules = applicable_rules(map, selectable);
    if (rules.empty()) return plan;
    const std::vector<Range> kept = unmapped(selectable, rules);
    LabelId lo = 0, hi = 0;   // every id the output can hold, 0 included
    for (const auto& r : rules) {
        lo = std::min<LabelId>(lo, r.to);
        hi = std::max<LabelId>(hi, r.to);
    }
    if (!kept.empty()) {
        lo = std::min(lo, kept.front().first);
        hi = std::max(hi, kept.back().second);
    }

    const auto& t = h.datatype();
    const bool little = h.byte_order() == nifti::ByteOrder::Little;
    plan.out_kernel = nifti::visit_element_type(t, [&](auto tag) -> std::unique_ptr<Kernel> {
        using T = decltype(tag);
        using K = typename MapVoxel<T>::K;
        const DataType& in_type = t;
        std::vector<typename MapVoxel<T>::Rule> out_rules;
        // Input type and scaling kept: each new id as a stored value.
        auto zero = zero_stored<T>(h);
        bool keep_raw = zero.has_value();
        for (const auto& r : rules) {
            if (!keep_raw) break;
            std::optional<std::array<std::uint8_t, 8>> raw;
            if (h.scaled()) {
                raw = stored_for<T>(h, r.to);
            } else if (holds(t, r.to, r.to)) {
                raw.emplace();
                store_id(raw->data(), r.to, in_type, little);
            }
            if (!raw) keep_raw = false;
            else out_rules.push_back({static_cast<K>(r.first), static_cast<K>(r.last), *raw});
        }
        std::array<std::uint8_t, 8> zero_out{};
        if (keep_raw) {
            zero_out = *zero;
            plan.out_type = in_type;
            plan.unscale = false;
        } else {
            // Unscaled ids.
            out_rules.clear();
            if (holds(t, lo, hi)) {
                plan.out_type = in_type;
            } else if (const auto s = narrowest_signed(lo, hi)) {
                plan.out_type = *s;
            } else {
                throw Error(ErrorCode::BadParameter,
                            "the mapped image would hold ids from " + to_string(lo) + " to " +
                                to_string(hi) + ", which no integer datatype holds");
            }
            plan.unscale = true;
            for (const auto& r : rules) {
                std::array<std::uint8_t, 8> raw{};
                store_id(raw.data(), r.to, plan.out_type, little);
                out_rules.push_back({static_cast<K>(r.first), static_cast<K>(r.last), raw});
            }
        }
        MapVoxel<T> voxel(make_exact<T>(h, set, Out::Mask, zero_out, t),
                          std::move(out_rules), keep_raw, zero_out, plan.out_type, little);
        return map_kernel<T>(std::move(voxel), plan.out_type.bytes);
    });
    return plan;
}

}  // namespace medimg::labels
