// The streaming label filter. Voxels pass through fixed-size buffers in one
// pass (two for float or fractionally scaled inputs, which are verified
// first, and for crop, which needs the bounding box first). The inner loops
// are written for auto-vectorisation: few ranges are compared directly,
// 8/16-bit inputs with many ranges or scaling go through a table indexed by
// the raw stored value (so byte order costs nothing), the rest fall back to a
// binary search or to the exact scaled-double path.
#include "labels/filter.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "labels/detail.hpp"
#include "nifti/byteorder.hpp"

namespace medimg::labels {
namespace {

using nifti::Header;
using nifti::TypeKind;
using Range = std::pair<LabelId, LabelId>;   // a LabelSet range

constexpr std::size_t kChunkVoxels = 1u << 15;   // voxels per read
constexpr std::size_t kBlock = 1024;              // voxels per inner-loop block

bool host_little() { return nifti::byteorder::host_is_little(); }

template <typename U>
inline U bswap(U v) noexcept {
    if constexpr (sizeof(U) == 1) return v;
    else if constexpr (sizeof(U) == 2) return static_cast<U>(__builtin_bswap16(v));
    else if constexpr (sizeof(U) == 4) return static_cast<U>(__builtin_bswap32(v));
    else return static_cast<U>(__builtin_bswap64(v));
}

template <typename U>
inline U load_raw(const std::uint8_t* p) noexcept {
    U v;
    std::memcpy(&v, p, sizeof(U));
    return v;
}

template <typename U>
inline void store_raw(std::uint8_t* p, U v) noexcept {
    std::memcpy(p, &v, sizeof(U));
}

// Transforms n voxels of raw input (file byte order) into the output buffer
// and returns how many were selected.
class Kernel {
public:
    virtual ~Kernel() = default;
    virtual std::uint64_t run(const std::uint8_t* in, std::uint8_t* out, std::size_t n) const = 0;
};

// True when the 64 bytes at p are all zero (eight unaligned word loads).
inline bool zero64(const std::uint8_t* p) noexcept {
    std::uint64_t acc = 0;
    for (int i = 0; i < 8; ++i) acc |= load_raw<std::uint64_t>(p + 8 * i);
    return acc == 0;
}

enum class Out { Mask, KeepRaw, KeepIds };

// The shared driver of the vectorised kernels: the input in blocks of kBlock
// voxels through Derived::block(in, out, k), which returns how many it
// selected. With zero_fast_ (an all-zero input voxel gives an all-zero,
// unselected output voxel) the input is checked in 64-byte groups first and
// the output of all-zero groups is zero-filled: label maps are mostly
// background, so most groups take the memset.
template <typename Derived, typename U, Out M,
          std::size_t OutBytes = (M == Out::Mask ? 1 : sizeof(U))>
class BlockKernel : public Kernel {
public:
    std::uint64_t run(const std::uint8_t* in, std::uint8_t* out, std::size_t n) const final {
        if (!zero_fast_) return dense(in, out, n);
        constexpr std::size_t kGroup = 64 / kIn;   // voxels per 64-byte group
        std::uint64_t selected = 0;
        const std::size_t full = n - n % kGroup;
        std::size_t i = 0;
        while (i < full) {
            std::size_t j = i;
            while (j < full && zero64(in + j * kIn)) j += kGroup;
            if (j > i) {
                std::memset(out + i * kOut, 0, (j - i) * kOut);
                i = j;
            }
            while (j < full && !zero64(in + j * kIn)) j += kGroup;
            if (j > i) {
                selected += dense(in + i * kIn, out + i * kOut, j - i);
                i = j;
            }
        }
        if (i < n) selected += dense(in + i * kIn, out + i * kOut, n - i);
        return selected;
    }

protected:
    static constexpr std::size_t kIn = sizeof(U);
    static constexpr std::size_t kOut = OutBytes;
    bool zero_fast_ = false;

private:
    std::uint64_t dense(const std::uint8_t* in, std::uint8_t* out, std::size_t n) const {
        const auto& self = static_cast<const Derived&>(*this);
        std::uint64_t selected = 0;
        for (std::size_t base = 0; base < n; base += kBlock)
            selected += self.block(in + base * kIn, out + base * kOut, std::min(kBlock, n - base));
        return selected;
    }
};

// ---- Few ranges, unscaled integers: branch-free range compares ----------
// N compares per voxel in registers, one pass, output written once. Range
// sets of 5..8 use N = 8 padded with copies of the first range (3 padded to
// 4 costs 7 % more kernel instructions, so 3 keeps its own). Byte order is a
// template parameter only for types wider than a byte.
template <typename U, bool Swap, Out M, int N>
class RangeKernel final : public BlockKernel<RangeKernel<U, Swap, M, N>, U, M> {
public:
    // ranges in the unsigned image of the stored type: (start, width); 1..N
    explicit RangeKernel(const std::vector<std::pair<U, U>>& r) {
        for (int i = 0; i < N; ++i) {
            const auto& p = r[static_cast<std::size_t>(i) < r.size() ? static_cast<std::size_t>(i) : 0];
            start_[i] = p.first;
            width_[i] = p.second;
        }
        // Raw 0 is 0 in either byte order; in keep mode an unselected voxel
        // becomes raw & 0 = 0, so zero input bytes give zero output bytes.
        this->zero_fast_ = true;
        for (const auto& [a, w] : r)
            if (static_cast<U>(U(0) - a) <= w) this->zero_fast_ = false;
    }

    // k <= kBlock voxels; the ranges are copied to locals so that the output
    // stores cannot alias them.
    std::uint32_t block(const std::uint8_t* ip, std::uint8_t* op, std::size_t k) const {
        U a[N], w[N];
        for (int r = 0; r < N; ++r) {
            a[r] = start_[r];
            w[r] = width_[r];
        }
        std::uint32_t count = 0;
        if constexpr (M == Out::Mask) {
            for (std::size_t i = 0; i < k; ++i) {
                U x = load_raw<U>(ip + i * sizeof(U));
                if constexpr (Swap) x = bswap(x);
                bool sel = false;
                for (int r = 0; r < N; ++r) sel |= static_cast<U>(x - a[r]) <= w[r];
                const std::uint8_t b = sel ? 1 : 0;
                op[i] = b;
                count += b;
            }
        } else {
            for (std::size_t i = 0; i < k; ++i) {
                const U raw = load_raw<U>(ip + i * sizeof(U));
                U x = raw;
                if constexpr (Swap) x = bswap(x);
                U m = 0;
                for (int r = 0; r < N; ++r)
                    m |= static_cast<U>(x - a[r]) <= w[r] ? static_cast<U>(~U(0)) : U(0);
                // m is all-ones or zero, so the mask applies in either byte order.
                store_raw<U>(op + i * sizeof(U), raw & m);
                count += static_cast<std::uint32_t>(m & 1u);
            }
        }
        return count;
    }

private:
    U start_[N]{}, width_[N]{};
};

// No range at all: nothing is selected, the output is all zero bytes (keep
// mode only reaches here when the stored zero is raw 0).
class EmptyKernel final : public Kernel {
public:
    explicit EmptyKernel(std::size_t out_bytes) : out_bytes_(out_bytes) {}
    std::uint64_t run(const std::uint8_t*, std::uint8_t* out, std::size_t n) const override {
        std::memset(out, 0, n * out_bytes_);
        return 0;
    }

private:
    std::size_t out_bytes_;
};

// ---- 8/16-bit: a table indexed by the raw stored value --------------------
// Entry: output raw value in the low bits, selected flag above it.
template <typename U, typename E, Out M>
class LutKernel final : public BlockKernel<LutKernel<U, E, M>, U, M> {
public:
    explicit LutKernel(std::vector<E> table) : table_(std::move(table)) {
        // table_[0] == 0: raw 0 is unselected and written as raw 0.
        this->zero_fast_ = table_[0] == 0;
    }

    std::uint32_t block(const std::uint8_t* ip, std::uint8_t* op, std::size_t k) const {
        const E* t = table_.data();
        constexpr unsigned kShift = 8 * sizeof(U);
        std::uint32_t count = 0;
        for (std::size_t i = 0; i < k; ++i) {
            const E e = t[load_raw<U>(ip + i * sizeof(U))];
            if constexpr (M == Out::Mask) op[i] = static_cast<std::uint8_t>(e >> kShift);
            else store_raw<U>(op + i * sizeof(U), static_cast<U>(e));
            count += static_cast<std::uint32_t>(e >> kShift);
        }
        return count;
    }

private:
    std::vector<E> table_;
};

// ---- Generic exact paths --------------------------------------------------
// Ids of stored type T compare as K: int64, or LabelId for uint64 (whose
// unscaled values reach UINT64_MAX); the kernel's ranges are clipped to K.
template <typename T>
using IdOf = std::conditional_t<std::is_same_v<T, std::uint64_t>, LabelId, std::int64_t>;

template <typename K>
bool contains(const std::vector<std::pair<K, K>>& ranges, K id) noexcept {
    if (ranges.size() <= 4) {
        for (const auto& [a, b] : ranges)
            if (id >= a && id <= b) return true;
        return false;
    }
    auto it = std::upper_bound(ranges.begin(), ranges.end(), id,
                               [](K v, const std::pair<K, K>& r) { return v < r.first; });
    if (it == ranges.begin()) return false;
    return id <= std::prev(it)->second;
}

// Stored value T decoded from file bytes.
template <typename T>
inline T decode(const std::uint8_t* p, bool little) noexcept {
    return nifti::byteorder::load<T>(p, little);
}

struct OutType {
    int code = 0;
    std::uint16_t bytes = 0;
    TypeKind kind = TypeKind::Signed;
};

void store_id(std::uint8_t* p, std::int64_t id, const OutType& ot, bool little) noexcept {
    using nifti::byteorder::store;
    switch (ot.code) {
    case 2: store<std::uint8_t>(p, static_cast<std::uint8_t>(id), little); break;
    case 256: store<std::int8_t>(p, static_cast<std::int8_t>(id), little); break;
    case 4: store<std::int16_t>(p, static_cast<std::int16_t>(id), little); break;
    case 512: store<std::uint16_t>(p, static_cast<std::uint16_t>(id), little); break;
    case 8: store<std::int32_t>(p, static_cast<std::int32_t>(id), little); break;
    case 768: store<std::uint32_t>(p, static_cast<std::uint32_t>(id), little); break;
    case 1024: store<std::int64_t>(p, id, little); break;
    case 1280: store<std::uint64_t>(p, static_cast<std::uint64_t>(id), little); break;
    case 16: store<float>(p, static_cast<float>(id), little); break;
    case 64: store<double>(p, static_cast<double>(id), little); break;
    default: break;
    }
}

// Every datatype, any scaling: ids computed per voxel, exactly (integers
// without scaling never go through double).
template <typename T>
class ExactKernel final : public Kernel {
public:
    using K = IdOf<T>;

    ExactKernel(std::vector<std::pair<K, K>> ranges, bool little, bool scaled, double slope,
                double inter, Out mode, std::array<std::uint8_t, 8> zero_raw, OutType ot)
        : ranges_(std::move(ranges)), little_(little), scaled_(scaled), slope_(slope),
          inter_(inter), mode_(mode), zero_raw_(zero_raw), ot_(ot) {}

    bool selects(K id) const noexcept { return contains(ranges_, id); }

    std::optional<K> id(const std::uint8_t* p) const noexcept {
        const T v = decode<T>(p, little_);
        if constexpr (std::is_integral_v<T>) {
            if (!scaled_) return static_cast<K>(v);
        }
        const double x = scaled_ ? static_cast<double>(v) * slope_ + inter_ : static_cast<double>(v);
        return detail::id_of_double(x);
    }

    // Throws NonIntegralLabels at the first value that is not a label id.
    void verify(const std::uint8_t* in, std::size_t n) const {
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint8_t* p = in + i * sizeof(T);
            if (!id(p)) {
                const T v = decode<T>(p, little_);
                const double x =
                    scaled_ ? static_cast<double>(v) * slope_ + inter_ : static_cast<double>(v);
                throw Error(ErrorCode::NonIntegralLabels,
                            "the image holds the value " + std::to_string(x) +
                                (scaled_ ? " (after scaling)" : "") +
                                ", which is not an integral, finite label id");
            }
        }
    }

    std::uint64_t run(const std::uint8_t* in, std::uint8_t* out, std::size_t n) const override {
        std::uint64_t selected = 0;
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint8_t* p = in + i * sizeof(T);
            const auto v = id(p);
            const bool sel = v && contains(ranges_, *v);
            selected += sel;
            switch (mode_) {
            case Out::Mask: out[i] = sel ? 1 : 0; break;
            case Out::KeepRaw:
                std::memcpy(out + i * sizeof(T), sel ? p : zero_raw_.data(), sizeof(T));
                break;
            case Out::KeepIds:   // scaled: ids come from id_of_double, inside int64
                store_id(out + i * ot_.bytes, sel ? static_cast<std::int64_t>(*v) : 0, ot_, little_);
                break;
            }
        }
        return selected;
    }

private:
    std::vector<std::pair<K, K>> ranges_;
    bool little_, scaled_;
    double slope_, inter_;
    Out mode_;
    std::array<std::uint8_t, 8> zero_raw_;
    OutType ot_;
};

// ---- Planning -------------------------------------------------------------
struct TypeRange {
    LabelId lo;   // smallest stored value
    LabelId hi;
};

TypeRange int_type_range(const nifti::DataType& t) {
    const bool s = t.kind == TypeKind::Signed;
    switch (t.bytes) {
    case 1: return s ? TypeRange{-128, 127} : TypeRange{0, 255};
    case 2: return s ? TypeRange{-32768, 32767} : TypeRange{0, 65535};
    case 4: return s ? TypeRange{INT32_MIN, INT32_MAX} : TypeRange{0, UINT32_MAX};
    default: return s ? TypeRange{INT64_MIN, INT64_MAX} : TypeRange{0, UINT64_MAX};
    }
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
                                           std::array<std::uint8_t, 8> zero_raw, OutType ot) {
    using K = IdOf<T>;
    std::vector<std::pair<K, K>> ranges;
    const LabelId k_max = std::is_same_v<K, LabelId> ? kMaxLabelId : LabelId{INT64_MAX};
    for (const auto& [a, b] : clip(set.ranges(), TypeRange{kMinLabelId, k_max}))
        ranges.emplace_back(static_cast<K>(a), static_cast<K>(b));
    return std::make_unique<ExactKernel<T>>(std::move(ranges),
                                            h.byte_order() == nifti::ByteOrder::Little, h.scaled(),
                                            h.slope(), h.inter(), mode, zero_raw, ot);
}

template <typename F>
decltype(auto) with_type(const nifti::DataType& t, F&& f) {
    const bool s = t.kind == TypeKind::Signed;
    if (t.kind == TypeKind::Float)
        return t.bytes == 4 ? f(float{}) : f(double{});
    switch (t.bytes) {
    case 1: return s ? f(std::int8_t{}) : f(std::uint8_t{});
    case 2: return s ? f(std::int16_t{}) : f(std::uint16_t{});
    case 4: return s ? f(std::int32_t{}) : f(std::uint32_t{});
    default: return s ? f(std::int64_t{}) : f(std::uint64_t{});
    }
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
OutType ids_type(const Header& h, const LabelSet& set) {
    const auto& t = h.datatype();
    OutType in_type{t.code, t.bytes, t.kind};
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
    if (lo >= INT32_MIN && hi <= INT32_MAX) return OutType{8, 4, TypeKind::Signed};
    return OutType{1024, 8, TypeKind::Signed};
}

struct Plan {
    std::unique_ptr<Kernel> out_kernel;    // what is written (keep or mask)
    std::unique_ptr<Kernel> mask_kernel;   // selection only (crop's first pass)
    std::function<void(const std::uint8_t*, std::size_t)> verify;   // empty: nothing to check
    OutType out_type;
    bool unscale = false;   // output written with slope 1, inter 0
};

std::unique_ptr<Kernel> selection_kernel(const Header& h, const LabelSet& set, Out mode,
                                         std::array<std::uint8_t, 8> zero_raw) {
    const auto& t = h.datatype();
    const bool swap = (h.byte_order() == nifti::ByteOrder::Little) != host_little();
    return with_type(t, [&](auto tag) -> std::unique_ptr<Kernel> {
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
        return make_exact<T>(h, set, mode, zero_raw, OutType{});
    });
}

Plan make_plan(const Header& h, const LabelSet& set, Mode mode) {
    detail::require_label_type(h);
    const auto& t = h.datatype();
    Plan plan;
    plan.out_type = OutType{t.code, t.bytes, t.kind};
    std::array<std::uint8_t, 8> zero_raw{};
    Out out = Out::Mask;
    if (mode == Mode::Mask) {
        plan.out_type = OutType{2, 1, TypeKind::Unsigned};
        plan.unscale = true;
    } else {
        const auto z = with_type(t, [&](auto tag) { return zero_stored<decltype(tag)>(h); });
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
        plan.out_kernel = with_type(t, [&](auto tag) -> std::unique_ptr<Kernel> {
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
        plan.verify = with_type(t, [&](auto tag) {
            using T = decltype(tag);
            std::shared_ptr<ExactKernel<T>> k = make_exact<T>(h, set, Out::Mask, zero_raw, OutType{});
            return std::function<void(const std::uint8_t*, std::size_t)>(
                [k](const std::uint8_t* in, std::size_t n) { k->verify(in, n); });
        });
    }
    return plan;
}

// ---- Remapping (keep mode with a map, README.md) -----------------------
// Off the plain path: make_plan's kernels stay as they are, and a map whose
// rules match no selectable id uses them unchanged.

// One voxel's output bytes: the stored zero when unselected, the rule's
// precomputed bytes when a rule matches its id, else the input's own bytes
// (same type and scaling) or its id written in the output type.
template <typename T>
class MapVoxel {
public:
    using K = IdOf<T>;
    struct Rule {
        K first, last;
        std::array<std::uint8_t, 8> out;
    };

    MapVoxel(std::unique_ptr<ExactKernel<T>> select, std::vector<Rule> rules, bool keep_raw,
             std::array<std::uint8_t, 8> zero_out, OutType ot, bool little)
        : select_(std::move(select)), rules_(std::move(rules)), keep_raw_(keep_raw),
          zero_out_(zero_out), ot_(ot), little_(little) {}

    // Writes ot.bytes bytes at o; true when the voxel is selected.
    bool one(const std::uint8_t* p, std::uint8_t* o) const noexcept {
        const auto v = select_->id(p);
        if (!v || !select_->selects(*v)) {
            std::memcpy(o, zero_out_.data(), ot_.bytes);
            return false;
        }
        if (const Rule* r = find(*v)) std::memcpy(o, r->out.data(), ot_.bytes);
        else if (keep_raw_) std::memcpy(o, p, sizeof(T));
        else store_id(o, static_cast<std::int64_t>(*v), ot_, little_);
        return true;
    }

    // Selected with all-zero output bytes for all-zero input bytes.
    bool zero_in_zero_out() const noexcept {
        const std::uint8_t zero[8]{};
        std::uint8_t out[8]{};
        return !one(zero, out) && std::all_of(out, out + 8, [](std::uint8_t b) { return b == 0; });
    }

private:
    const Rule* find(K id) const noexcept {
        auto it = std::upper_bound(rules_.begin(), rules_.end(), id,
                                   [](K v, const Rule& r) { return v < r.first; });
        if (it == rules_.begin()) return nullptr;
        --it;
        return id <= it->last ? &*it : nullptr;
    }

    std::unique_ptr<ExactKernel<T>> select_;
    std::vector<Rule> rules_;
    bool keep_raw_;
    std::array<std::uint8_t, 8> zero_out_;
    OutType ot_;
    bool little_;
};

// 8/16-bit inputs: MapVoxel evaluated once per raw value into a table.
template <typename U, typename O>
class MapLutKernel final : public BlockKernel<MapLutKernel<U, O>, U, Out::KeepIds, sizeof(O)> {
public:
    template <typename T>
    explicit MapLutKernel(const MapVoxel<T>& voxel)
        : out_(std::size_t{1} << (8 * sizeof(U))), sel_(out_.size()) {
        for (std::size_t r = 0; r < out_.size(); ++r) {
            const U raw = static_cast<U>(r);
            std::uint8_t in[sizeof(U)], out[8]{};
            std::memcpy(in, &raw, sizeof(U));
            sel_[r] = voxel.one(in, out) ? 1 : 0;
            out_[r] = load_raw<O>(out);
        }
        this->zero_fast_ = out_[0] == 0 && sel_[0] == 0;
    }

    std::uint32_t block(const std::uint8_t* ip, std::uint8_t* op, std::size_t k) const {
        const O* t = out_.data();
        const std::uint8_t* s = sel_.data();
        std::uint32_t count = 0;
        for (std::size_t i = 0; i < k; ++i) {
            const U r = load_raw<U>(ip + i * sizeof(U));
            store_raw<O>(op + i * sizeof(O), t[r]);
            count += s[r];
        }
        return count;
    }

private:
    std::vector<O> out_;
    std::vector<std::uint8_t> sel_;
};

// 32/64-bit and float inputs: MapVoxel per voxel, background runs skipped.
template <typename T, std::size_t OutBytes>
class MapExactKernel final
    : public BlockKernel<MapExactKernel<T, OutBytes>, T, Out::KeepIds, OutBytes> {
public:
    explicit MapExactKernel(MapVoxel<T> voxel) : voxel_(std::move(voxel)) {
        this->zero_fast_ = voxel_.zero_in_zero_out();
    }

    std::uint32_t block(const std::uint8_t* ip, std::uint8_t* op, std::size_t k) const {
        std::uint32_t count = 0;
        for (std::size_t i = 0; i < k; ++i)
            count += voxel_.one(ip + i * sizeof(T), op + i * OutBytes) ? 1 : 0;
        return count;
    }

private:
    MapVoxel<T> voxel_;
};

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
std::optional<OutType> narrowest_signed(LabelId lo, LabelId hi) {
    if (lo >= INT8_MIN && hi <= INT8_MAX) return OutType{256, 1, TypeKind::Signed};
    if (lo >= INT16_MIN && hi <= INT16_MAX) return OutType{4, 2, TypeKind::Signed};
    if (lo >= INT32_MIN && hi <= INT32_MAX) return OutType{8, 4, TypeKind::Signed};
    if (lo >= INT64_MIN && hi <= INT64_MAX) return OutType{1024, 8, TypeKind::Signed};
    return std::nullopt;
}

// Can the type hold every id of [lo, hi] exactly, unscaled?
bool holds(const nifti::DataType& t, LabelId lo, LabelId hi) {
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

// Keep mode with a map: make_plan's selection, verification and crop pass,
// with the output kernel and type replaced when a rule can apply. The output
// keeps the input's type and scaling when every new id has an exact stored
// value (and the stored zero exists); else it is unscaled, in the input's
// type when every id it can hold fits, else in the narrowest signed type.
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
    plan.out_kernel = with_type(t, [&](auto tag) -> std::unique_ptr<Kernel> {
        using T = decltype(tag);
        using K = typename MapVoxel<T>::K;
        const OutType in_type{t.code, t.bytes, t.kind};
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
        MapVoxel<T> voxel(make_exact<T>(h, set, Out::Mask, zero_out, OutType{}),
                          std::move(out_rules), keep_raw, zero_out, plan.out_type, little);
        return map_kernel<T>(std::move(voxel), plan.out_type.bytes);
    });
    return plan;
}

// Quaternion rotation as the NIfTI-1 standard (and nifti_clib) builds it.
std::array<std::array<double, 3>, 3> quatern_matrix(const Header& h) {
    const auto q = h.quatern();
    double b = q[0], c = q[1], d = q[2];
    double a = 1.0 - (b * b + c * c + d * d);
    if (a < 1.e-7) {
        a = 1.0 / std::sqrt(b * b + c * c + d * d);
        b *= a;
        c *= a;
        d *= a;
        a = 0.0;
    } else {
        a = std::sqrt(a);
    }
    return {{{a * a + b * b - c * c - d * d, 2 * b * c - 2 * a * d, 2 * b * d + 2 * a * c},
             {2 * b * c + 2 * a * d, a * a + c * c - b * b - d * d, 2 * c * d - 2 * a * b},
             {2 * b * d - 2 * a * c, 2 * c * d + 2 * a * b, a * a + d * d - c * c - b * b}}};
}

struct Box {
    std::array<std::int64_t, 3> lo{0, 0, 0}, hi{0, 0, 0};
};

class CountingSink final : public nifti::ByteSink {
public:
    explicit CountingSink(nifti::ByteSink& inner) : inner_(inner) {}
    void write(const std::uint8_t* data, std::size_t n) override {
        inner_.write(data, n);
        count += n;
    }
    std::uint64_t count = 0;

private:
    nifti::ByteSink& inner_;
};

}  // namespace

FilterResult filter(nifti::Reader& in, nifti::ByteSink& sink, nifti::Container container,
                    const FilterOptions& options) {
    const Header& h = in.header();
    if (options.margin < 0)
        throw Error(ErrorCode::BadParameter, "margin must be 0 or more voxels");
    Plan plan = options.mode == Mode::Keep && !options.map.empty()
                    ? make_map_plan(h, options.labels, options.map)
                    : make_plan(h, options.labels, options.mode);

    const std::int64_t nx = h.dim(1), ny = h.dim(2), nz = h.dim(3);
    const std::uint64_t total = h.voxel_count();
    const std::size_t in_bytes = h.datatype().bytes;
    const std::size_t out_bytes = plan.out_type.bytes;
    std::vector<std::uint8_t> inbuf(kChunkVoxels * in_bytes);
    std::vector<std::uint8_t> outbuf(kChunkVoxels * std::max(out_bytes, std::size_t{1}));

    auto read_chunk = [&](std::uint64_t done) -> std::size_t {
        const std::size_t want =
            static_cast<std::size_t>(std::min<std::uint64_t>(kChunkVoxels, total - done));
        const std::size_t got = detail::read_full(in, inbuf.data(), want * in_bytes);
        if (got != want * in_bytes)
            throw Error(ErrorCode::TruncatedData, "the voxel data ends early");
        return want;
    };

    // Pass 1: verify values that may not be ids, and find the bounding box.
    Box box;
    bool any = false;
    if (plan.verify || options.crop) {
        std::array<std::int64_t, 3> lo{nx, ny, nz}, hi{-1, -1, -1};
        detail::Walker walker(nx, ny, nz);
        for (std::uint64_t done = 0; done < total;) {
            const std::size_t n = read_chunk(done);
            if (plan.verify) plan.verify(inbuf.data(), n);
            if (options.crop) {
                plan.mask_kernel->run(inbuf.data(), outbuf.data(), n);
                const std::uint8_t* m = outbuf.data();
                walker.walk(n, [&](std::size_t off, std::size_t len, std::int64_t x,
                                   std::int64_t y, std::int64_t z) {
                    const std::uint8_t* row = m + off;
                    const std::uint8_t* first = std::find(row, row + len, std::uint8_t{1});
                    if (first == row + len) return;
                    std::size_t last = len - 1;
                    while (row[last] == 0) --last;
                    lo[0] = std::min(lo[0], x + (first - row));
                    hi[0] = std::max(hi[0], x + static_cast<std::int64_t>(last));
                    lo[1] = std::min(lo[1], y);
                    hi[1] = std::max(hi[1], y);
                    lo[2] = std::min(lo[2], z);
                    hi[2] = std::max(hi[2], z);
                    any = true;
                });
            }
            done += n;
        }
        in.rewind();
        if (options.crop && any) {
            const std::array<std::int64_t, 3> dims{nx, ny, nz};
            for (int a = 0; a < 3; ++a) {
                box.lo[a] = lo[a] > options.margin ? lo[a] - options.margin : 0;
                box.hi[a] = dims[a] - 1 - hi[a] > options.margin ? hi[a] + options.margin
                                                                  : dims[a] - 1;
            }
        }
    }

    // Output header.
    Header out = h;
    if (out.layout() == nifti::Layout::Pair) out.make_single_file();
    if (plan.out_type.code != h.datatype().code) {
        const auto* dt = nifti::find_datatype(plan.out_type.code);
        if (!dt) throw Error(ErrorCode::Internal, "output datatype missing from the table");
        out.set_datatype(*dt);
    }
    if (plan.unscale) {
        out.set_scaling(1.0, 0.0);
    } else if (h.version() != nifti::Version::Analyze75 && std::isfinite(h.scl_slope_raw()) &&
               h.scl_slope_raw() != 0 &&
               !std::isfinite(h.scl_inter_raw())) {
        // A non-finite inter with a valid slope counts as 0 (docs/ARCHITECTURE.md);
        // written as 0 so every reader sees the same values we matched on.
        out.set_scaling(h.scl_slope_raw(), 0.0);
    }
    if (options.crop) {
        for (int a = 0; a < 3; ++a) out.set_dim(a + 1, box.hi[a] - box.lo[a] + 1);
        const std::array<double, 3> ijk{static_cast<double>(box.lo[0]),
                                        static_cast<double>(box.lo[1]),
                                        static_cast<double>(box.lo[2])};
        if (out.qform_code() > 0) {
            const auto r = quatern_matrix(out);
            const double qfac = out.pixdim(0) < 0 ? -1.0 : 1.0;
            const std::array<double, 3> step{ijk[0] * out.pixdim(1), ijk[1] * out.pixdim(2),
                                             ijk[2] * out.pixdim(3) * qfac};
            auto q = out.qoffset();
            for (int row = 0; row < 3; ++row)
                q[row] += r[row][0] * step[0] + r[row][1] * step[1] + r[row][2] * step[2];
            out.set_qoffset(q);
        }
        if (out.sform_code() > 0) {
            const auto& s = out.srow();
            std::array<double, 3> t{};
            for (int row = 0; row < 3; ++row)
                t[row] = s[row][3] + s[row][0] * ijk[0] + s[row][1] * ijk[1] + s[row][2] * ijk[2];
            out.set_srow_offsets(t);
        }
    }
    std::vector<std::uint8_t> ext;
    if (h.layout() == nifti::Layout::Single) ext = in.extension_bytes();
    else ext.assign(4, 0);   // the NIfTI-1 "no extensions" extender
    out.set_vox_offset(static_cast<std::int64_t>(out.size() + ext.size()));

    CountingSink counter(sink);
    nifti::Writer writer(counter, out, ext, container, options.gzip_level);

    // Pass 2: filter and write.
    FilterResult result;
    if (!options.crop) {
        for (std::uint64_t done = 0; done < total;) {
            const std::size_t n = read_chunk(done);
            result.voxels_selected += plan.out_kernel->run(inbuf.data(), outbuf.data(), n);
            writer.write(outbuf.data(), n * out_bytes);
            done += n;
        }
    } else {
        std::vector<std::uint8_t> stage(outbuf.size());
        std::size_t staged = 0;
        detail::Walker walker(nx, ny, nz);
        for (std::uint64_t done = 0; done < total;) {
            const std::size_t n = read_chunk(done);
            result.voxels_selected += plan.out_kernel->run(inbuf.data(), outbuf.data(), n);
            walker.walk(n, [&](std::size_t off, std::size_t len, std::int64_t x, std::int64_t y,
                               std::int64_t z) {
                if (y < box.lo[1] || y > box.hi[1] || z < box.lo[2] || z > box.hi[2]) return;
                const std::int64_t x0 = std::max(x, box.lo[0]);
                const std::int64_t x1 = std::min(x + static_cast<std::int64_t>(len) - 1, box.hi[0]);
                if (x0 > x1) return;
                const std::uint8_t* src = outbuf.data() + (off + (x0 - x)) * out_bytes;
                std::size_t bytes = static_cast<std::size_t>(x1 - x0 + 1) * out_bytes;
                while (bytes > 0) {
                    const std::size_t take = std::min(bytes, stage.size() - staged);
                    std::memcpy(stage.data() + staged, src, take);
                    staged += take;
                    src += take;
                    bytes -= take;
                    if (staged == stage.size()) {
                        writer.write(stage.data(), staged);
                        staged = 0;
                    }
                }
            });
            done += n;
        }
        if (staged > 0) writer.write(stage.data(), staged);
    }
    writer.finish();
    result.bytes_written = counter.count;
    return result;
}

FilterResult filter_file(const std::filesystem::path& input, const std::filesystem::path& output,
                         const FilterOptions& options, const nifti::ReadLimits& limits) {
    nifti::Reader reader = nifti::Reader::open(input, limits);
    if (output == "-") {
        nifti::FdSink sink(1);
        return filter(reader, sink, nifti::output_container(nifti::parse_image_name(input.filename().string())), options);
    }
    nifti::AtomicFileSink sink(output);
    FilterResult r = filter(reader, sink, nifti::output_container(nifti::parse_image_name(output.filename().string())), options);
    sink.commit();
    return r;
}

}  // namespace medimg::labels
