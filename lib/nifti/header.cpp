// NIfTI-1 / NIfTI-2 / Analyze 7.5 header parsing, validation and in-place
// edits. Field offsets and types come from the layout tables in
// nifti/header_fields.hpp.
#include "nifti/header.hpp"

#include <cmath>
#include <cstring>
#include <string>

#include "error.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/geometry.hpp"
#include "nifti/header_fields.hpp"

namespace medimg::nifti {
namespace {

constexpr char kMagicN1[4] = {'n', '+', '1', '\0'};
constexpr char kMagicNi1[4] = {'n', 'i', '1', '\0'};
constexpr char kMagicN2[8] = {'n', '+', '2', '\0', '\r', '\n', '\032', '\n'};
constexpr char kMagicNi2[8] = {'n', 'i', '2', '\0', '\r', '\n', '\032', '\n'};

[[noreturn]] void fail(ErrorCode code, const std::string& msg) { throw Error(code, msg); }

std::string num(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// Printable form of a few raw magic bytes, for messages.
std::string show_bytes(std::span<const std::uint8_t> bytes) {
    std::string s;
    for (unsigned c : bytes) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            s += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            s += buf;
        }
    }
    return s;
}

bool magic_is(std::span<const std::uint8_t> field, const char* magic) {
    return std::memcmp(field.data(), magic, field.size()) == 0;
}

// The byte order in which sizeof_hdr (at the same offset in every version)
// is 348 or 540.
ByteOrder byte_order_of(const std::uint8_t* p) {
    auto size_in = [&](ByteOrder order) {
        return FieldView(p, Version::Nifti1, order).integer(Field::sizeof_hdr);
    };
    for (ByteOrder order : {ByteOrder::Little, ByteOrder::Big}) {
        const std::int64_t size = size_in(order);
        if (size == static_cast<std::int64_t>(kNifti1Size) || size == static_cast<std::int64_t>(kNifti2Size))
            return order;
    }
    fail(ErrorCode::NotNifti, "sizeof_hdr is " + std::to_string(size_in(ByteOrder::Little)) +
                                  "; a NIfTI-1 or Analyze header has 348 and a NIfTI-2 header 540");
}

// The version from the header size and the magic (rules: docs/ARCHITECTURE.md,
// "Input rules").
Version version_of(const std::uint8_t* p, std::size_t size, bool single) {
    if (size == kNifti2Size) {
        const auto magic = FieldView(p, Version::Nifti2, ByteOrder::Little).bytes(Field::magic);
        if (single && !magic_is(magic, kMagicN2))
            fail(ErrorCode::NotNifti, "magic is \"" + show_bytes(magic) +
                                          "\"; a single-file NIfTI-2 image needs \"n+2\"");
        if (!single && !magic_is(magic, kMagicNi2))
            fail(ErrorCode::NotNifti, "magic is \"" + show_bytes(magic) +
                                          "\"; a NIfTI-2 .hdr/.img pair needs \"ni2\"");
        return Version::Nifti2;
    }
    const auto magic = FieldView(p, Version::Nifti1, ByteOrder::Little).bytes(Field::magic);
    const bool n1 = magic_is(magic, kMagicN1), ni1 = magic_is(magic, kMagicNi1);
    if (single) {
        if (!n1)
            fail(ErrorCode::NotNifti, "magic is \"" + show_bytes(magic) +
                                          "\"; a single-file NIfTI-1 image needs \"n+1\"" +
                                          (ni1 ? " (\"ni1\" is for .hdr/.img pairs)" : ""));
        return Version::Nifti1;
    }
    if (ni1) return Version::Nifti1;
    if (n1 || magic_is(magic, "n+2") || magic_is(magic, "ni2"))
        fail(ErrorCode::NotNifti, "magic is \"" + show_bytes(magic) +
                                      "\"; a NIfTI-1 .hdr/.img pair needs \"ni1\"");
    return Version::Analyze75;   // no magic: Analyze 7.5
}

// dim[0..7] into `dim` (1 beyond dim[0]); returns the voxel count.
std::uint64_t read_dims(const FieldView& f, std::array<std::int64_t, 8>& dim) {
    // dim[0] first: it bounds the loop over dim[].
    const std::int64_t dim0 = f.integer(Field::dim, 0);
    if (dim0 < 1 || dim0 > 7)
        fail(ErrorCode::CorruptHeader, "dim[0] is " + std::to_string(dim0) + "; NIfTI allows 1 to 7");
    dim[0] = dim0;
    std::uint64_t count = 1;
    for (int i = 1; i <= 7; ++i) {
        if (i > dim0) {
            dim[i] = 1;   // dims beyond dim[0] are ignored
            continue;
        }
        const std::int64_t d = f.integer(Field::dim, i);
        if (d < 1)
            fail(ErrorCode::CorruptHeader, "dim[" + std::to_string(i) + "] is " + std::to_string(d) +
                                               "; it must be at least 1");
        dim[i] = d;
        if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count))
            fail(ErrorCode::TooLarge, "the voxel count (product of dim[1..dim[0]]) overflows 64 bits");
    }
    return count;
}

const DataType& read_datatype(const FieldView& f) {
    const auto code = static_cast<int>(f.integer(Field::datatype));
    const auto bitpix = static_cast<int>(f.integer(Field::bitpix));
    const DataType* type = find_datatype(code);
    if (!type)
        fail(ErrorCode::CorruptHeader,
             "datatype is " + std::to_string(code) + ", which is not a NIfTI datatype code");
    const int want_bitpix = type->code == 1 ? 1 : 8 * type->bytes;
    if (bitpix != want_bitpix)
        fail(ErrorCode::CorruptHeader, "bitpix is " + std::to_string(bitpix) + " but datatype " +
                                           std::to_string(code) + " (" + std::string(type->name) +
                                           ") needs " + std::to_string(want_bitpix));
    return *type;
}

// vox_offset: a float in NIfTI-1/Analyze (finite, whole, in range), an
// int64 in NIfTI-2; at least header + extender in a single file.
std::int64_t read_vox_offset(const FieldView& f, Version version, bool single) {
    std::int64_t vox;
    if (f.spec(Field::vox_offset).type == FieldType::Int64) {
        vox = f.integer(Field::vox_offset);
    } else {
        const double v = f.real(Field::vox_offset);
        if (!std::isfinite(v))
            fail(ErrorCode::CorruptHeader, "vox_offset is " + num(v) + "; it must be a finite whole number");
        if (v != std::floor(v))
            fail(ErrorCode::CorruptHeader, "vox_offset is " + num(v) + "; it must be a whole number");
        if (v < 0 || v >= 9.0e18)
            fail(ErrorCode::CorruptHeader, "vox_offset is " + num(v) + "; it is out of range");
        vox = static_cast<std::int64_t>(v);
    }
    const bool v2 = version == Version::Nifti2;
    const std::int64_t min_vox = single ? static_cast<std::int64_t>(header_size(version)) + 4 : 0;
    if (vox < min_vox)
        fail(ErrorCode::CorruptHeader,
             "vox_offset is " + std::to_string(vox) + "; " +
                 (single ? std::string("a single-file NIfTI-") + (v2 ? "2" : "1") +
                               " image needs at least " + std::to_string(min_vox)
                         : std::string("it must not be negative")));
    return vox;
}

}  // namespace

Header Header::parse(std::span<const std::uint8_t> bytes, Layout layout,
                     const HeaderLimits& limits, std::uint64_t file_bytes) {
    if (bytes.size() < 4)
        fail(ErrorCode::NotNifti, "file is too short for a NIfTI header (" +
                                      std::to_string(bytes.size()) + " bytes)");
    const std::uint8_t* p = bytes.data();
    const ByteOrder order = byte_order_of(p);
    const auto size = static_cast<std::size_t>(FieldView(p, Version::Nifti1, order).integer(Field::sizeof_hdr));
    if (bytes.size() < size)
        fail(ErrorCode::TruncatedData, "header is truncated: sizeof_hdr is " + std::to_string(size) +
                                           " but only " + std::to_string(bytes.size()) +
                                           " bytes are present");

    Header h;
    h.byte_order_ = order;
    h.layout_ = layout;
    h.raw_.assign(p, p + size);
    const bool single = layout == Layout::Single;
    h.version_ = version_of(p, size, single);
    const FieldView f(p, h.version_, order);

    const std::uint64_t count = read_dims(f, h.dim_);
    h.type_ = &read_datatype(f);
    h.voxel_count_ = count;
    if (count > limits.max_voxels)
        fail(ErrorCode::TooLarge, "the image has " + std::to_string(count) +
                                      " voxels (dim[1..dim[0]]); the limit is " +
                                      std::to_string(limits.max_voxels));
    std::uint64_t data = 0;
    if (h.type_->code == 1) {
        data = count / 8 + (count % 8 != 0);
    } else if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(h.type_->bytes), &data)) {
        fail(ErrorCode::TooLarge, "the image byte count (voxels x bitpix/8) overflows 64 bits");
    }

    const std::int64_t vox = read_vox_offset(f, h.version_, single);
    h.vox_offset_ = vox;
    std::uint64_t end = 0;
    if (__builtin_add_overflow(static_cast<std::uint64_t>(vox), data, &end))
        fail(ErrorCode::TooLarge, "vox_offset + image bytes overflows 64 bits");
    if (file_bytes != UINT64_MAX && end > file_bytes)
        fail(ErrorCode::TruncatedData,
             "the data needs " + std::to_string(end) + " bytes (vox_offset " + std::to_string(vox) +
                 " + " + std::to_string(data) + " image bytes) but the file has " +
                 std::to_string(file_bytes));

    for (int i = 0; i < 8; ++i) h.pixdim_[i] = f.real(Field::pixdim, i);
    if (h.version_ == Version::Analyze75) return h;   // no NIfTI-only fields: scaling, units, geometry stay 0
    h.scl_slope_ = f.real(Field::scl_slope);
    h.scl_inter_ = f.real(Field::scl_inter);
    h.qform_code_ = static_cast<int>(f.integer(Field::qform_code));
    h.sform_code_ = static_cast<int>(f.integer(Field::sform_code));
    for (int i = 0; i < 3; ++i) {
        h.quatern_[i] = f.real(Field::quatern_b + i);
        h.qoffset_[i] = f.real(Field::qoffset_x + i);
    }
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 4; ++c) h.srow_[r][c] = f.real(Field::srow_x + r, c);
    h.xyzt_units_ = static_cast<int>(f.integer(Field::xyzt_units));
    return h;
}

std::int64_t Header::dim(int i) const noexcept {
    if (i < 1 || i > 7 || i > dim_[0]) return 1;
    return dim_[i];
}

std::uint64_t Header::volume_voxels() const noexcept {
    std::uint64_t v = 1;
    for (int i = 1; i <= 3; ++i) v *= static_cast<std::uint64_t>(dim(i));
    return v;
}

bool Header::scaled() const noexcept {
    if (version_ == Version::Analyze75) return false;
    if (!std::isfinite(scl_slope_) || scl_slope_ == 0) return false;
    // slope 1 with inter 0 (or a non-finite inter, which counts as 0) is the
    // identity: what nibabel writes into every integer image. Treating it as
    // unscaled keeps 64-bit ids exact (no trip through double).
    return !(scl_slope_ == 1 && (scl_inter_ == 0 || !std::isfinite(scl_inter_)));
}

double Header::slope() const noexcept { return scaled() ? scl_slope_ : 1.0; }

double Header::inter() const noexcept {
    if (!scaled()) return 0.0;
    return std::isfinite(scl_inter_) ? scl_inter_ : 0.0;
}

double Header::spatial_unit_mm() const noexcept {
    switch (xyzt_units_ & 0x07) {
    case 1: return 1000.0;   // NIFTI_UNITS_METER
    case 3: return 0.001;    // NIFTI_UNITS_MICRON
    default: return 1.0;     // NIFTI_UNITS_MM, or unknown
    }
}

std::string Header::description() const {
    return std::string(FieldView(raw_.data(), version_, byte_order_).text(Field::descrip));
}

std::string Header::magic() const {
    if (version_ == Version::Analyze75) return "";
    return std::string(FieldView(raw_.data(), version_, byte_order_).text(Field::magic, 3));
}

std::array<std::array<double, 4>, 4> Header::affine() const {
    std::array<std::array<double, 4>, 4> a{};
    a[3] = {0, 0, 0, 1};
    if (sform_code_ > 0) {
        for (int r = 0; r < 3; ++r) a[r] = srow_[r];
        return a;
    }
    if (qform_code_ > 0) {
        const Mat3 R = quaternion_rotation(quatern_);   // nifti/geometry.hpp
        const double qfac = qfac_of(pixdim_[0]);
        const double z[3] = {pixdim_[1], pixdim_[2], pixdim_[3] * qfac};
        for (int r = 0; r < 3; ++r) {
            for (int col = 0; col < 3; ++col) a[r][col] = R[r][col] * z[col];
            a[r][3] = qoffset_[r];
        }
        return a;
    }
    // nibabel's get_base_affine (shape_zoom_affine with x flipped): voxel
    // centre of the volume at the origin.
    const int n = dim_[0] < 3 ? static_cast<int>(dim_[0]) : 3;
    for (int i = 0; i < 3; ++i) {
        const double shape = i < n ? static_cast<double>(dim_[i + 1]) : 1.0;
        double zoom = i < n ? pixdim_[i + 1] : 1.0;
        if (i == 0) zoom = -zoom;
        a[i][i] = zoom;
        a[i][3] = -((shape - 1.0) / 2.0) * zoom;
    }
    return a;
}

// --- edits -----------------------------------------------------------------

// The editor of this header's raw bytes: its version's layout, its byte order.
FieldEditor Header::fields() { return FieldEditor(raw_.data(), version_, byte_order_); }

void Header::set_dim(int i, std::int64_t value) {
    if (i < 1 || i > dim_[0] || value < 1)
        throw Error(ErrorCode::Internal, "set_dim: dim[" + std::to_string(i) + "] = " +
                                             std::to_string(value) + " is not valid");
    FieldEditor f = fields();
    if (f.spec(Field::dim).type == FieldType::Int16 && value > 32767)
        throw Error(ErrorCode::Internal, "set_dim: " + std::to_string(value) + " does not fit NIfTI-1 dim[]");
    f.set_integer(Field::dim, i, value);
    dim_[i] = value;
    std::uint64_t count = 1;
    for (int k = 1; k <= dim_[0]; ++k)
        if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(dim_[k]), &count))
            throw Error(ErrorCode::Internal, "set_dim: voxel count overflows");
    voxel_count_ = count;
}

void Header::set_datatype(const DataType& type) {
    FieldEditor f = fields();
    f.set_integer(Field::datatype, type.code);
    f.set_integer(Field::bitpix, type.code == 1 ? 1 : 8 * type.bytes);
    type_ = find_datatype(type.code);
}

// Each value is kept as the field stores it (a NIfTI-1 float rounds).
void Header::set_scaling(double slope, double inter) {
    FieldEditor f = fields();
    f.set_real(Field::scl_slope, slope);
    f.set_real(Field::scl_inter, inter);
    scl_slope_ = f.real(Field::scl_slope);
    scl_inter_ = f.real(Field::scl_inter);
}

void Header::set_qoffset(const std::array<double, 3>& q) {
    if (version_ == Version::Analyze75) return;   // no qform in Analyze 7.5
    FieldEditor f = fields();
    for (int i = 0; i < 3; ++i) {
        f.set_real(Field::qoffset_x + i, q[i]);
        qoffset_[i] = f.real(Field::qoffset_x + i);
    }
}

void Header::set_srow_offsets(const std::array<double, 3>& t) {
    if (version_ == Version::Analyze75) return;   // no sform in Analyze 7.5
    FieldEditor f = fields();
    for (int r = 0; r < 3; ++r) {
        f.set_real(Field::srow_x + r, 3, t[r]);
        srow_[r][3] = f.real(Field::srow_x + r, 3);
    }
}

void Header::set_vox_offset(std::int64_t offset) {
    if (offset < 0) throw Error(ErrorCode::Internal, "set_vox_offset: negative offset");
    FieldEditor f = fields();
    if (f.spec(Field::vox_offset).type == FieldType::Float32) {
        if (offset > (1 << 24))
            throw Error(ErrorCode::Internal, "set_vox_offset: offset not exact in a float");
        f.set_real(Field::vox_offset, static_cast<double>(offset));
    } else {
        f.set_integer(Field::vox_offset, offset);
    }
    vox_offset_ = offset;
}

void Header::make_single_file() {
    if (layout_ == Layout::Single) return;
    const auto magic = [](const auto& m) {
        return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(m), sizeof m);
    };
    if (version_ == Version::Analyze75) {
        // Fields whose bytes mean something else in Analyze 7.5 (hkey_un0,
        // vox_units/cal_units/unused1, dim_un0, funused1..3, compressed,
        // verified, orient..smin) become the NIfTI "not set" values.
        FieldEditor f = fields();
        for (Field field : {Field::dim_info, Field::intent_p1, Field::intent_p2, Field::intent_p3,
                            Field::intent_code, Field::slice_start, Field::scl_slope,
                            Field::scl_inter, Field::slice_end, Field::slice_code,
                            Field::xyzt_units, Field::slice_duration, Field::toffset,
                            Field::qform_code, Field::sform_code, Field::quatern_b,
                            Field::quatern_c, Field::quatern_d, Field::qoffset_x,
                            Field::qoffset_y, Field::qoffset_z, Field::srow_x, Field::srow_y,
                            Field::srow_z, Field::intent_name})
            f.clear(field);
        scl_slope_ = scl_inter_ = 0;
        qform_code_ = sform_code_ = 0;
        quatern_ = {};
        qoffset_ = {};
        srow_ = {};
        xyzt_units_ = 0;
        version_ = Version::Nifti1;
    }
    fields().set_bytes(Field::magic, version_ == Version::Nifti2 ? magic(kMagicN2) : magic(kMagicN1));
    layout_ = Layout::Single;
    // The smallest valid single-file offset: header + 4-byte extender.
    set_vox_offset(static_cast<std::int64_t>(raw_.size()) + 4);
}

}  // namespace medimg::nifti
