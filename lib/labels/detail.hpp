// Internals shared by the filter, the metadata pass and the intensity
// statistics: the voxel position walker, the exact scaled-value-to-id rule
// and the label datatype check.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "error.hpp"
#include "labels/label_id.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/header.hpp"
#include "nifti/reader.hpp"

namespace medimg::labels::detail {

// Position (x, y, z) of the next voxel of the stream inside its 3-D volume;
// walk() splits a run of n voxels into row segments and advances.
class Walker {
public:
    Walker(std::int64_t nx, std::int64_t ny, std::int64_t nz) : nx_(nx), ny_(ny), nz_(nz) {}

    // f(offset, length, x, y, z) for every row segment of the next n voxels.
    template <typename F>
    void walk(std::size_t n, F&& f) {
        std::size_t off = 0;
        while (off < n) {
            const std::size_t len =
                static_cast<std::size_t>(std::min<std::uint64_t>(nx_ - x_, n - off));
            f(off, len, x_, y_, z_);
            off += len;
            x_ += static_cast<std::int64_t>(len);
            if (x_ == nx_) {
                x_ = 0;
                if (++y_ == ny_) {
                    y_ = 0;
                    if (++z_ == nz_) z_ = 0;
                }
            }
        }
    }

private:
    std::int64_t nx_, ny_, nz_;
    std::int64_t x_ = 0, y_ = 0, z_ = 0;
};

// The label id of a scaled (or float) value: finite, integral and inside
// int64; nullopt otherwise. 2^63 is the first double outside int64.
inline std::optional<std::int64_t> id_of_double(double x) noexcept {
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) return std::nullopt;  // NaN too
    if (x != std::trunc(x)) return std::nullopt;
    return static_cast<std::int64_t>(x);
}

// The exact id of raw stored bytes (file order): unscaled integers as they
// are, up to UINT64_MAX; throws NonIntegralLabels for a scaled or float value
// that is not an integral int64.
template <typename T>
LabelId id_of_raw(const std::uint8_t* p, const nifti::Header& h) {
    const T v = nifti::byteorder::load<T>(p, h.byte_order() == nifti::ByteOrder::Little);
    if constexpr (std::is_integral_v<T>) {
        if (!h.scaled()) return static_cast<LabelId>(v);
    }
    const double x = h.scaled() ? static_cast<double>(v) * h.slope() + h.inter()
                                : static_cast<double>(v);
    const auto id = id_of_double(x);
    if (!id)
        throw Error(ErrorCode::NonIntegralLabels,
                    "the image holds the value " + std::to_string(x) +
                        (h.scaled() ? " (after scaling)" : "") +
                        ", which is not an integral, finite label id");
    return *id;
}

// More distinct stored values than this in a 32/64-bit or float map: not a
// label map (bounds the memory of the metadata and intensity passes).
inline constexpr std::size_t kMaxDistinctValues = 65536;

[[noreturn]] inline void too_many_distinct_values() {
    throw Error(ErrorCode::TooManyLabels,
                "the image holds more than " + std::to_string(kMaxDistinctValues) +
                    " distinct values; it is not a label map");
}

inline bool is_integral(double x) noexcept { return std::isfinite(x) && x == std::trunc(x); }

// Throws UnsupportedDatatype unless the header's datatype can hold labels.
inline void require_label_type(const nifti::Header& h) {
    const auto& t = h.datatype();
    const bool ok = t.can_hold_labels() &&
                    ((t.kind == nifti::TypeKind::Float && (t.bytes == 4 || t.bytes == 8)) ||
                     ((t.kind == nifti::TypeKind::Signed || t.kind == nifti::TypeKind::Unsigned) &&
                      (t.bytes == 1 || t.bytes == 2 || t.bytes == 4 || t.bytes == 8)));
    if (!ok)
        throw Error(ErrorCode::UnsupportedDatatype,
                    "datatype " + std::string(t.name) + " cannot hold label ids");
}

}  // namespace medimg::labels::detail
