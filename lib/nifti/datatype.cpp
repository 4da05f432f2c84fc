// The NIfTI datatype table (nifti1.h NIFTI_TYPE_*), with nibabel's dtype names.
#include "nifti/datatype.hpp"

#include <array>

namespace medimg::nifti {
namespace {

constexpr std::array<DataType, 17> kTypes = {{
    {1, 0, TypeKind::Binary, "bool"},
    {2, 1, TypeKind::Unsigned, "uint8"},
    {4, 2, TypeKind::Signed, "int16"},
    {8, 4, TypeKind::Signed, "int32"},
    {16, 4, TypeKind::Float, "float32"},
    {32, 8, TypeKind::Complex, "complex64"},
    {64, 8, TypeKind::Float, "float64"},
    {128, 3, TypeKind::Rgb, "RGB"},
    {256, 1, TypeKind::Signed, "int8"},
    {512, 2, TypeKind::Unsigned, "uint16"},
    {768, 4, TypeKind::Unsigned, "uint32"},
    {1024, 8, TypeKind::Signed, "int64"},
    {1280, 8, TypeKind::Unsigned, "uint64"},
    {1536, 16, TypeKind::Float, "float128"},
    {1792, 16, TypeKind::Complex, "complex128"},
    {2048, 32, TypeKind::Complex, "complex256"},
    {2304, 4, TypeKind::Rgb, "RGBA"},
}};

}  // namespace

bool DataType::can_hold_labels() const noexcept {
    switch (kind) {
    case TypeKind::Unsigned:
    case TypeKind::Signed: return bytes <= 8;
    case TypeKind::Float: return bytes == 4 || bytes == 8;
    default: return false;
    }
}

const DataType* find_datatype(int code) noexcept {
    for (const auto& t : kTypes)
        if (t.code == code) return &t;
    return nullptr;
}

}  // namespace medimg::nifti
