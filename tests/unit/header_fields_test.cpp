// The header layout tables (nifti/header_fields.hpp) against the test
// builder's independent offsets, and field access in both byte orders.
#include <cmath>
#include <vector>

#include "catch.hpp"
#include "nifti/header_fields.hpp"
#include "nifti_builder.hpp"

using namespace medimg::nifti;

TEST_CASE("header fields: the tables agree with the builder's spec offsets", "[nifti][header]") {
    const Version v = GENERATE(Version::Nifti1, Version::Nifti2);
    const auto off = medimg::test::offsets_for(v);
    INFO("version " << static_cast<int>(v));
    CHECK(header_size(v) == (v == Version::Nifti2 ? 540u : 348u));
    const std::pair<Field, std::size_t> rows[] = {
        {Field::dim, off.dim},           {Field::datatype, off.datatype},
        {Field::bitpix, off.bitpix},     {Field::pixdim, off.pixdim},
        {Field::vox_offset, off.vox_offset}, {Field::scl_slope, off.scl_slope},
        {Field::scl_inter, off.scl_inter},   {Field::qform_code, off.qform_code},
        {Field::sform_code, off.sform_code}, {Field::quatern_b, off.quatern},
        {Field::qoffset_x, off.qoffset},     {Field::srow_x, off.srow},
        {Field::descrip, off.descrip},       {Field::magic, off.magic},
        {Field::xyzt_units, off.xyzt_units},
    };
    for (const auto& [field, offset] : rows) {
        INFO("field " << static_cast<int>(field));
        CHECK(field_spec(v, field).offset == offset);
    }
    CHECK(type_width(field_spec(v, Field::dim).type) == off.dim_size);
    CHECK(type_width(field_spec(v, Field::pixdim).type) == off.float_size);
    CHECK(type_width(field_spec(v, Field::qform_code).type) == off.code_size);
    CHECK(field_spec(v, Field::srow_y).offset == off.srow + 4 * off.float_size);
    CHECK(field_spec(v, Field::quatern_d).offset == off.quatern + 2 * off.float_size);
    CHECK(field_spec(v, Field::descrip).bytes() == 80);
    // Fields of the other version only are absent.
    CHECK(field_spec(v, v == Version::Nifti2 ? Field::glmax : Field::unused_str).count == 0);
}

TEST_CASE("header fields: values are stored in the field's type and byte order", "[nifti][header]") {
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    std::vector<std::uint8_t> b(kNifti1Size, 0);
    FieldEditor f(b.data(), Version::Nifti1, order);
    f.set_integer(Field::dim, 2, 300);
    f.set_real(Field::scl_slope, 0.1);                 // a float field: rounded
    f.set_integer(Field::xyzt_units, 0x8a);            // a char field: one unsigned byte
    f.set_text(Field::magic, "n+1 and more");          // cut to the field's 4 bytes
    CHECK(f.integer(Field::dim, 2) == 300);
    CHECK(b[44 + (order == ByteOrder::Little ? 0 : 1)] == 300 % 256);   // dim[2] at 40 + 2 * 2
    CHECK(f.real(Field::scl_slope) == static_cast<double>(0.1f));
    CHECK(f.integer(Field::xyzt_units) == 0x8a);
    CHECK(b[123] == 0x8a);
    CHECK(f.text(Field::magic) == "n+1 ");
    CHECK(b[343] == 0);                               // intent_name's last byte untouched
    f.clear(Field::dim);
    CHECK(f.integer(Field::dim, 2) == 0);

    std::vector<std::uint8_t> b2(kNifti2Size, 0);
    FieldEditor f2(b2.data(), Version::Nifti2, order);
    f2.set_real(Field::scl_slope, 0.1);                // a double field: exact
    f2.set_integer(Field::vox_offset, std::int64_t{1} << 40);
    CHECK(f2.real(Field::scl_slope) == 0.1);
    CHECK(f2.integer(Field::vox_offset) == std::int64_t{1} << 40);
}
