// The NIfTI datatype table: code, bytes per voxel, kind and name, in one
// place; and the mapping between a real scalar datatype and its C++ element
// type, both ways (visit_element_type, datatype_of).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <type_traits>

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

// Every datatype of the format, by NIFTI_TYPE_* code.
inline constexpr std::array<DataType, 17> kDataTypes = {{
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

// The table row for `code`, or nullptr when the code is not in the table.
const DataType* find_datatype(int code) noexcept;

// The element types of the real scalar datatypes: the signed and unsigned
// integers of 8 to 64 bits, float and double.
template <typename T>
inline constexpr bool kIsElementType =
    std::is_same_v<T, float> || std::is_same_v<T, double> ||
    (std::is_integral_v<T> && !std::is_same_v<T, bool> && sizeof(T) <= 8);

// The table row of element type T: datatype_of<std::int16_t>() is int16.
template <typename T>
constexpr const DataType& datatype_of() noexcept {
    static_assert(kIsElementType<T>);
    constexpr TypeKind kind = std::is_floating_point_v<T> ? TypeKind::Float
                              : std::is_signed_v<T>       ? TypeKind::Signed
                                                          : TypeKind::Unsigned;
    constexpr std::size_t i = [] {
        std::size_t k = 0;
        while (kDataTypes[k].kind != kind || kDataTypes[k].bytes != sizeof(T)) ++k;
        return k;
    }();
    return kDataTypes[i];
}

// f(T{}) with T the element type of `t`: the integers by size and sign,
// float32 as float, float64 as double. Defined for the datatypes that can
// hold labels (DataType::can_hold_labels); callers check that first.
template <typename F>
decltype(auto) visit_element_type(const DataType& t, F&& f) {
    const bool s = t.kind == TypeKind::Signed;
    if (t.kind == TypeKind::Float) return t.bytes == 4 ? f(float{}) : f(double{});
    switch (t.bytes) {
    case 1: return s ? f(std::int8_t{}) : f(std::uint8_t{});
    case 2: return s ? f(std::int16_t{}) : f(std::uint16_t{});
    case 4: return s ? f(std::int32_t{}) : f(std::uint32_t{});
    default: return s ? f(std::int64_t{}) : f(std::uint64_t{});
    }
}

// The unsigned integer of T's size: the type a stored value's raw bits are
// compared and indexed as, whatever T and the byte order.
template <typename T>
using raw_bits_t =
    std::conditional_t<sizeof(T) == 1, std::uint8_t,
    std::conditional_t<sizeof(T) == 2, std::uint16_t,
    std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;

}  // namespace medimg::nifti
