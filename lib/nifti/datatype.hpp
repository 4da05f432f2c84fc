// The NIfTI datatype table: code, bytes per voxel, kind and name, in one place.
#pragma once

#include <cstdint>
#include <string_view>

namespace medimg::nifti {

enum class TypeKind { Unsigned, Signed, Float, Complex, Rgb, Binary };

struct DataType {
    std::int16_t code;     // NIFTI_TYPE_* value
    std::uint16_t bytes;   // bytes per voxel (bitpix / 8); 0 for binary (bitpix 1)
    TypeKind kind;
    std::string_view name; // nibabel's dtype name: "uint8", "int16", "float32", "complex64", "RGB", ...

    // Integers up to 64 bits, float32 and float64 (their values are then
    // checked to be integral while streaming). Complex, RGB(A), float128 and
    // binary cannot hold labels (docs/ARCHITECTURE.md: 415).
    bool can_hold_labels() const noexcept;
};

// The table row for `code`, or nullptr when the code is not in the table.
const DataType* find_datatype(int code) noexcept;

}  // namespace medimg::nifti
