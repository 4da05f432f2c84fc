// The filter's kernels: each turns n voxels of raw input (file byte order)
// into output voxels and counts the selected ones. The inner loops are
// written for auto-vectorisation: few ranges are compared directly, 8/16-bit
// inputs with many ranges or scaling go through a table indexed by the raw
// stored value (so byte order costs nothing), the rest take the exact
// per-voxel path. Which kernel runs is planned in labels/plan.cpp; every
// kernel is a template specialised for its types, so that its loop is
// compiled, and inlined, for them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "error.hpp"
#include "labels/detail.hpp"
#include "labels/label_id.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/datatype.hpp"

namespace medimg::labels::kernels {

using nifti::DataType;

constexpr std::size_t kBlock = 1024;   // voxels per inner-loop block

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

// Writes id as a stored value of the label-capable datatype `ot`.
inline void store_id(std::uint8_t* p, std::int64_t id, const DataType& ot, bool little) noexcept {
    nifti::visit_element_type(ot, [&](auto tag) {
        using T = decltype(tag);
        nifti::byteorder::store<T>(p, static_cast<T>(id), little);
    });
}

// Every datatype, any scaling: ids computed per voxel, exactly (integers
// without scaling never go through double).
template <typename T>
class ExactKernel final : public Kernel {
public:
    using K = IdOf<T>;

    ExactKernel(std::vector<std::pair<K, K>> ranges, bool little, bool scaled, double slope,
                double inter, Out mode, std::array<std::uint8_t, 8> zero_raw, DataType ot)
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
    DataType ot_;
};

// ---- Remapping (keep mode with a map, README.md) -----------------------

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
             std::array<std::uint8_t, 8> zero_out, DataType ot, bool little)
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
    DataType ot_;
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

}  // namespace medimg::labels::kernels
