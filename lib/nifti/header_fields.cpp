// Field access through the layout tables of header_fields.hpp.
#include "nifti/header_fields.hpp"

#include <algorithm>
#include <cstring>

#include "nifti/byteorder.hpp"

namespace medimg::nifti {

using byteorder::load;
using byteorder::store;

std::int64_t FieldView::integer(Field f, int i) const noexcept {
    const FieldSpec& s = spec(f);
    const std::uint8_t* p = at(s, i);
    switch (s.type) {
    case FieldType::Char: return *p;
    case FieldType::Int16: return load<std::int16_t>(p, little_);
    case FieldType::Int32: return load<std::int32_t>(p, little_);
    case FieldType::Int64: return load<std::int64_t>(p, little_);
    case FieldType::Float32: return static_cast<std::int64_t>(load<float>(p, little_));
    case FieldType::Float64: return static_cast<std::int64_t>(load<double>(p, little_));
    }
    return 0;
}

double FieldView::real(Field f, int i) const noexcept {
    const FieldSpec& s = spec(f);
    const std::uint8_t* p = at(s, i);
    switch (s.type) {
    case FieldType::Float32: return load<float>(p, little_);
    case FieldType::Float64: return load<double>(p, little_);
    default: return static_cast<double>(integer(f, i));
    }
}

std::string_view FieldView::text(Field f, std::size_t max) const noexcept {
    const auto b = bytes(f);
    const char* s = reinterpret_cast<const char*>(b.data());
    const std::size_t limit = std::min(b.size(), max);
    std::size_t n = 0;
    while (n < limit && s[n] != '\0') ++n;
    return {s, n};
}

void FieldEditor::set_integer(Field f, int i, std::int64_t v) noexcept {
    const FieldSpec& s = spec(f);
    std::uint8_t* p = w_ + (at(s, i) - p_);
    switch (s.type) {
    case FieldType::Char: *p = static_cast<std::uint8_t>(v); break;
    case FieldType::Int16: store<std::int16_t>(p, static_cast<std::int16_t>(v), little_); break;
    case FieldType::Int32: store<std::int32_t>(p, static_cast<std::int32_t>(v), little_); break;
    case FieldType::Int64: store<std::int64_t>(p, v, little_); break;
    case FieldType::Float32: store<float>(p, static_cast<float>(v), little_); break;
    case FieldType::Float64: store<double>(p, static_cast<double>(v), little_); break;
    }
}

void FieldEditor::set_real(Field f, int i, double v) noexcept {
    const FieldSpec& s = spec(f);
    std::uint8_t* p = w_ + (at(s, i) - p_);
    switch (s.type) {
    case FieldType::Float32: store<float>(p, static_cast<float>(v), little_); break;
    case FieldType::Float64: store<double>(p, v, little_); break;
    default: set_integer(f, i, static_cast<std::int64_t>(v)); break;
    }
}

void FieldEditor::set_bytes(Field f, std::span<const std::uint8_t> v) noexcept {
    const FieldSpec& s = spec(f);
    const std::size_t n = std::min(v.size(), s.bytes());
    if (n > 0) std::memcpy(w_ + s.offset, v.data(), n);
}

void FieldEditor::clear(Field f) noexcept {
    const FieldSpec& s = spec(f);
    std::memset(w_ + s.offset, 0, s.bytes());
}

}  // namespace medimg::nifti
