// The NIfTI-1 and NIfTI-2 header layouts: every field with its offset, type
// and element count, once per version. Header parsing, the header edits and
// any code that builds a header read and write fields only through these
// tables (FieldView, FieldEditor); no other code holds a field offset.
//
// Analyze 7.5 shares the NIfTI-1 offsets 0..251 (with other meanings for
// dim_info, intent_*, slice_start, scl_*, slice_end, slice_code, xyzt_units,
// slice_duration and toffset) and has orient/originator/... from 252 on;
// none of the NIfTI-only fields is read from an Analyze header.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "nifti/header.hpp"

namespace medimg::nifti {

// Every field of either version, in NIfTI-1 order; the NIfTI-1-only fields
// (data_type .. regular, glmax, glmin) and the NIfTI-2-only unused_str are
// absent from the other version's table.
enum class Field : std::uint8_t {
    sizeof_hdr, data_type, db_name, extents, session_error, regular, dim_info, dim,
    intent_p1, intent_p2, intent_p3, intent_code, datatype, bitpix, slice_start, pixdim,
    vox_offset, scl_slope, scl_inter, slice_end, slice_code, xyzt_units, cal_max, cal_min,
    slice_duration, toffset, glmax, glmin, descrip, aux_file, qform_code, sform_code,
    quatern_b, quatern_c, quatern_d, qoffset_x, qoffset_y, qoffset_z, srow_x, srow_y, srow_z,
    intent_name, magic, unused_str,
};
inline constexpr std::size_t kFieldCount = static_cast<std::size_t>(Field::unused_str) + 1;

// The field `k` places after `f` in the enumeration (quatern_b + 2 is quatern_d).
constexpr Field operator+(Field f, int k) noexcept {
    return static_cast<Field>(static_cast<int>(f) + k);
}

// Char: bytes (text or a single unsigned byte); the others as named.
enum class FieldType : std::uint8_t { Char, Int16, Int32, Int64, Float32, Float64 };

constexpr std::size_t type_width(FieldType t) noexcept {
    switch (t) {
    case FieldType::Char: return 1;
    case FieldType::Int16: return 2;
    case FieldType::Int32: case FieldType::Float32: return 4;
    case FieldType::Int64: case FieldType::Float64: return 8;
    }
    return 0;
}

struct FieldSpec {
    Field field;
    std::uint16_t offset;   // bytes from the start of the header
    FieldType type;
    std::uint8_t count;     // elements (dim[8], descrip char[80], ...)
    constexpr std::size_t bytes() const noexcept { return type_width(type) * count; }
};

// NIfTI-1 (nifti1.h), 348 bytes.
inline constexpr FieldSpec kNifti1Fields[] = {
    {Field::sizeof_hdr, 0, FieldType::Int32, 1},
    {Field::data_type, 4, FieldType::Char, 10},
    {Field::db_name, 14, FieldType::Char, 18},
    {Field::extents, 32, FieldType::Int32, 1},
    {Field::session_error, 36, FieldType::Int16, 1},
    {Field::regular, 38, FieldType::Char, 1},
    {Field::dim_info, 39, FieldType::Char, 1},
    {Field::dim, 40, FieldType::Int16, 8},
    {Field::intent_p1, 56, FieldType::Float32, 1},
    {Field::intent_p2, 60, FieldType::Float32, 1},
    {Field::intent_p3, 64, FieldType::Float32, 1},
    {Field::intent_code, 68, FieldType::Int16, 1},
    {Field::datatype, 70, FieldType::Int16, 1},
    {Field::bitpix, 72, FieldType::Int16, 1},
    {Field::slice_start, 74, FieldType::Int16, 1},
    {Field::pixdim, 76, FieldType::Float32, 8},
    {Field::vox_offset, 108, FieldType::Float32, 1},
    {Field::scl_slope, 112, FieldType::Float32, 1},
    {Field::scl_inter, 116, FieldType::Float32, 1},
    {Field::slice_end, 120, FieldType::Int16, 1},
    {Field::slice_code, 122, FieldType::Char, 1},
    {Field::xyzt_units, 123, FieldType::Char, 1},
    {Field::cal_max, 124, FieldType::Float32, 1},
    {Field::cal_min, 128, FieldType::Float32, 1},
    {Field::slice_duration, 132, FieldType::Float32, 1},
    {Field::toffset, 136, FieldType::Float32, 1},
    {Field::glmax, 140, FieldType::Int32, 1},
    {Field::glmin, 144, FieldType::Int32, 1},
    {Field::descrip, 148, FieldType::Char, 80},
    {Field::aux_file, 228, FieldType::Char, 24},
    {Field::qform_code, 252, FieldType::Int16, 1},
    {Field::sform_code, 254, FieldType::Int16, 1},
    {Field::quatern_b, 256, FieldType::Float32, 1},
    {Field::quatern_c, 260, FieldType::Float32, 1},
    {Field::quatern_d, 264, FieldType::Float32, 1},
    {Field::qoffset_x, 268, FieldType::Float32, 1},
    {Field::qoffset_y, 272, FieldType::Float32, 1},
    {Field::qoffset_z, 276, FieldType::Float32, 1},
    {Field::srow_x, 280, FieldType::Float32, 4},
    {Field::srow_y, 296, FieldType::Float32, 4},
    {Field::srow_z, 312, FieldType::Float32, 4},
    {Field::intent_name, 328, FieldType::Char, 16},
    {Field::magic, 344, FieldType::Char, 4},
};

// NIfTI-2 (nifti2.h), 540 bytes.
inline constexpr FieldSpec kNifti2Fields[] = {
    {Field::sizeof_hdr, 0, FieldType::Int32, 1},
    {Field::magic, 4, FieldType::Char, 8},
    {Field::datatype, 12, FieldType::Int16, 1},
    {Field::bitpix, 14, FieldType::Int16, 1},
    {Field::dim, 16, FieldType::Int64, 8},
    {Field::intent_p1, 80, FieldType::Float64, 1},
    {Field::intent_p2, 88, FieldType::Float64, 1},
    {Field::intent_p3, 96, FieldType::Float64, 1},
    {Field::pixdim, 104, FieldType::Float64, 8},
    {Field::vox_offset, 168, FieldType::Int64, 1},
    {Field::scl_slope, 176, FieldType::Float64, 1},
    {Field::scl_inter, 184, FieldType::Float64, 1},
    {Field::cal_max, 192, FieldType::Float64, 1},
    {Field::cal_min, 200, FieldType::Float64, 1},
    {Field::slice_duration, 208, FieldType::Float64, 1},
    {Field::toffset, 216, FieldType::Float64, 1},
    {Field::slice_start, 224, FieldType::Int64, 1},
    {Field::slice_end, 232, FieldType::Int64, 1},
    {Field::descrip, 240, FieldType::Char, 80},
    {Field::aux_file, 320, FieldType::Char, 24},
    {Field::qform_code, 344, FieldType::Int32, 1},
    {Field::sform_code, 348, FieldType::Int32, 1},
    {Field::quatern_b, 352, FieldType::Float64, 1},
    {Field::quatern_c, 360, FieldType::Float64, 1},
    {Field::quatern_d, 368, FieldType::Float64, 1},
    {Field::qoffset_x, 376, FieldType::Float64, 1},
    {Field::qoffset_y, 384, FieldType::Float64, 1},
    {Field::qoffset_z, 392, FieldType::Float64, 1},
    {Field::srow_x, 400, FieldType::Float64, 4},
    {Field::srow_y, 432, FieldType::Float64, 4},
    {Field::srow_z, 464, FieldType::Float64, 4},
    {Field::slice_code, 496, FieldType::Int32, 1},
    {Field::xyzt_units, 500, FieldType::Int32, 1},
    {Field::intent_code, 504, FieldType::Int32, 1},
    {Field::intent_name, 508, FieldType::Char, 16},
    {Field::dim_info, 524, FieldType::Char, 1},
    {Field::unused_str, 525, FieldType::Char, 15},
};

inline constexpr std::size_t kNifti1Size = 348;
inline constexpr std::size_t kNifti2Size = 540;

namespace detail {

// True when the fields follow one another without gap or overlap from
// offset 0 to `size`, each field at most once.
template <std::size_t N>
constexpr bool tiles(const FieldSpec (&fields)[N], std::size_t size) {
    std::size_t at = 0;
    bool seen[kFieldCount] = {};
    for (const FieldSpec& f : fields) {
        const auto i = static_cast<std::size_t>(f.field);
        if (f.offset != at || f.count == 0 || seen[i]) return false;
        seen[i] = true;
        at += f.bytes();
    }
    return at == size;
}

// The table by Field; absent fields have count 0.
template <std::size_t N>
constexpr std::array<FieldSpec, kFieldCount> index(const FieldSpec (&fields)[N]) {
    std::array<FieldSpec, kFieldCount> out{};
    for (std::size_t i = 0; i < kFieldCount; ++i) out[i] = {static_cast<Field>(i), 0, FieldType::Char, 0};
    for (const FieldSpec& f : fields) out[static_cast<std::size_t>(f.field)] = f;
    return out;
}

inline constexpr auto kNifti1Index = index(kNifti1Fields);
inline constexpr auto kNifti2Index = index(kNifti2Fields);

}  // namespace detail

static_assert(detail::tiles(kNifti1Fields, kNifti1Size), "NIfTI-1 fields must cover 348 bytes exactly");
static_assert(detail::tiles(kNifti2Fields, kNifti2Size), "NIfTI-2 fields must cover 540 bytes exactly");

// The header size of a version: 348 (NIfTI-1, Analyze 7.5) or 540 (NIfTI-2).
constexpr std::size_t header_size(Version v) noexcept {
    return v == Version::Nifti2 ? kNifti2Size : kNifti1Size;
}

// Where `f` is in a version's header (Analyze 7.5: the NIfTI-1 offsets);
// count 0 when the version has no such field.
constexpr const FieldSpec& field_spec(Version v, Field f) noexcept {
    return (v == Version::Nifti2 ? detail::kNifti2Index : detail::kNifti1Index)[static_cast<std::size_t>(f)];
}

// Reads the fields of header bytes (at least header_size(version) of them)
// in one byte order, converting each element to int64 or double. Element
// indices are not checked: callers pass constants below the field's count.
class FieldView {
public:
    FieldView(const std::uint8_t* bytes, Version version, ByteOrder order) noexcept
        : p_(bytes), version_(version), little_(order == ByteOrder::Little) {}

    const FieldSpec& spec(Field f) const noexcept { return field_spec(version_, f); }
    // Element i of an integer field (Char: the unsigned byte).
    std::int64_t integer(Field f, int i = 0) const noexcept;
    // Element i of any numeric field, as double.
    double real(Field f, int i = 0) const noexcept;
    // The field's bytes (for Char fields: text, not assumed NUL-terminated).
    std::span<const std::uint8_t> bytes(Field f) const noexcept {
        const FieldSpec& s = spec(f);
        return {p_ + s.offset, s.bytes()};
    }
    // A Char field up to its first NUL, at most `max` bytes.
    std::string_view text(Field f, std::size_t max = SIZE_MAX) const noexcept;

protected:
    const std::uint8_t* at(const FieldSpec& s, int i) const noexcept {
        return p_ + s.offset + type_width(s.type) * static_cast<std::size_t>(i);
    }
    const std::uint8_t* p_;
    Version version_;
    bool little_;
};

// Writes fields of header bytes in place, in the field's own type and the
// given byte order (a double into a Float32 field is rounded to float).
class FieldEditor : public FieldView {
public:
    FieldEditor(std::uint8_t* bytes, Version version, ByteOrder order) noexcept
        : FieldView(bytes, version, order), w_(bytes) {}

    void set_integer(Field f, int i, std::int64_t v) noexcept;
    void set_integer(Field f, std::int64_t v) noexcept { set_integer(f, 0, v); }
    void set_real(Field f, int i, double v) noexcept;
    void set_real(Field f, double v) noexcept { set_real(f, 0, v); }
    // The first bytes of a Char field (at most the field's size); the rest
    // of the field is left as it is.
    void set_bytes(Field f, std::span<const std::uint8_t> v) noexcept;
    void set_text(Field f, std::string_view v) noexcept {
        set_bytes(f, {reinterpret_cast<const std::uint8_t*>(v.data()), v.size()});
    }
    // Every byte of the field becomes 0.
    void clear(Field f) noexcept;

private:
    std::uint8_t* w_;
};

}  // namespace medimg::nifti
