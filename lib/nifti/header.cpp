// NIfTI-1 / NIfTI-2 / Analyze 7.5 header parsing, validation and in-place edits.
//
// Field offsets (bytes from the start of the header):
//
//   NIfTI-1 / Analyze 7.5 (348 bytes)      NIfTI-2 (540 bytes)
//     0 sizeof_hdr  int32                    0 sizeof_hdr  int32
//    39 dim_info    char                     4 magic       char[8]
//    40 dim         int16[8]                12 datatype    int16
//    56 intent_p1..3 float[3]               14 bitpix      int16
//    68 intent_code int16                   16 dim         int64[8]
//    70 datatype    int16                   80 intent_p1..3 double[3]
//    72 bitpix      int16                  104 pixdim      double[8]
//    74 slice_start int16                  168 vox_offset  int64
//    76 pixdim      float[8]               176 scl_slope   double
//   108 vox_offset  float                  184 scl_inter   double
//   112 scl_slope   float                  192 cal_max, 200 cal_min  double
//   116 scl_inter   float                  208 slice_duration, 216 toffset double
//   120 slice_end   int16                  224 slice_start, 232 slice_end int64
//   122 slice_code  char                   240 descrip     char[80]
//   123 xyzt_units  char                   320 aux_file    char[24]
//   124 cal_max, 128 cal_min  float        344 qform_code  int32
//   132 slice_duration, 136 toffset float  348 sform_code  int32
//   140 glmax, 144 glmin  int32            352 quatern_b,c,d  double[3]
//   148 descrip     char[80]               376 qoffset_x,y,z  double[3]
//   228 aux_file    char[24]               400 srow_x      double[4]
//   252 qform_code  int16                  432 srow_y      double[4]
//   254 sform_code  int16                  464 srow_z      double[4]
//   256 quatern_b,c,d  float[3]            496 slice_code  int32
//   268 qoffset_x,y,z  float[3]            500 xyzt_units  int32
//   280 srow_x      float[4]               504 intent_code int32
//   296 srow_y      float[4]               508 intent_name char[16]
//   312 srow_z      float[4]               524 dim_info    char
//   328 intent_name char[16]               525 unused_str  char[15]
//   344 magic       char[4]
//
// Analyze 7.5 shares offsets 0..251 (with other meanings for 39, 56..69,
// 74, 112..123, 132..139) and has orient/originator/... from 252 on; none of
// the NIfTI-only fields is read from an Analyze header.
#include "nifti/header.hpp"

#include <cmath>
#include <cstring>
#include <string>

#include "error.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/geometry.hpp"

namespace medimg::nifti {
namespace {

constexpr std::size_t kSize1 = 348;
constexpr std::size_t kSize2 = 540;
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
std::string show_bytes(const std::uint8_t* p, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        unsigned c = p[i];
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

}  // namespace

Header Header::parse(std::span<const std::uint8_t> bytes, Layout layout,
                     const HeaderLimits& limits, std::uint64_t file_bytes) {
    using byteorder::load;
    if (bytes.size() < 4)
        fail(ErrorCode::NotNifti, "file is too short for a NIfTI header (" +
                                      std::to_string(bytes.size()) + " bytes)");
    const std::uint8_t* p = bytes.data();
    bool little = true;
    std::int32_t sizeof_hdr = load<std::int32_t>(p, true);
    if (sizeof_hdr != 348 && sizeof_hdr != 540) {
        little = false;
        sizeof_hdr = load<std::int32_t>(p, false);
        if (sizeof_hdr != 348 && sizeof_hdr != 540)
            fail(ErrorCode::NotNifti,
                 "sizeof_hdr is " + std::to_string(load<std::int32_t>(p, true)) +
                     "; a NIfTI-1 or Analyze header has 348 and a NIfTI-2 header 540");
    }
    const std::size_t size = static_cast<std::size_t>(sizeof_hdr);
    if (bytes.size() < size)
        fail(ErrorCode::TruncatedData, "header is truncated: sizeof_hdr is " +
                                           std::to_string(size) + " but only " +
                                           std::to_string(bytes.size()) + " bytes are present");

    Header h;
    h.byte_order_ = little ? ByteOrder::Little : ByteOrder::Big;
    h.layout_ = layout;
    h.raw_.assign(p, p + size);
    const bool single = layout == Layout::Single;

    // Version from size + magic.
    if (size == kSize2) {
        const bool n2 = std::memcmp(p + 4, kMagicN2, 8) == 0;
        const bool ni2 = std::memcmp(p + 4, kMagicNi2, 8) == 0;
        if (single && !n2)
            fail(ErrorCode::NotNifti, "magic is \"" + show_bytes(p + 4, 8) +
                                          "\"; a single-file NIfTI-2 image needs \"n+2\"");
        if (!single && !ni2)
            fail(ErrorCode::NotNifti, "magic is \"" + show_bytes(p + 4, 8) +
                                          "\"; a NIfTI-2 .hdr/.img pair needs \"ni2\"");
        h.version_ = Version::Nifti2;
    } else {
        const bool n1 = std::memcmp(p + 344, kMagicN1, 4) == 0;
        const bool ni1 = std::memcmp(p + 344, kMagicNi1, 4) == 0;
        if (single) {
            if (!n1)
                fail(ErrorCode::NotNifti,
                     "magic is \"" + show_bytes(p + 344, 4) +
                         "\"; a single-file NIfTI-1 image needs \"n+1\"" +
                         (ni1 ? " (\"ni1\" is for .hdr/.img pairs)" : ""));
            h.version_ = Version::Nifti1;
        } else if (ni1) {
            h.version_ = Version::Nifti1;
        } else if (n1 || std::memcmp(p + 344, "n+2", 4) == 0 ||
                   std::memcmp(p + 344, "ni2", 4) == 0) {
            fail(ErrorCode::NotNifti, "magic is \"" + show_bytes(p + 344, 4) +
                                          "\"; a NIfTI-1 .hdr/.img pair needs \"ni1\"");
        } else {
            h.version_ = Version::Analyze75;   // no magic: Analyze 7.5
        }
    }
    const bool v2 = h.version_ == Version::Nifti2;
    const bool analyze = h.version_ == Version::Analyze75;

    // dim[0] first: it bounds the loop over dim[].
    std::int64_t dim0 = v2 ? load<std::int64_t>(p + 16, little) : load<std::int16_t>(p + 40, little);
    if (dim0 < 1 || dim0 > 7)
        fail(ErrorCode::CorruptHeader,
             "dim[0] is " + std::to_string(dim0) + "; NIfTI allows 1 to 7");
    h.dim_[0] = dim0;
    std::uint64_t count = 1;
    for (int i = 1; i <= 7; ++i) {
        std::int64_t d = v2 ? load<std::int64_t>(p + 16 + 8 * i, little)
                            : load<std::int16_t>(p + 40 + 2 * i, little);
        if (i > dim0) {
            h.dim_[i] = 1;   // dims beyond dim[0] are ignored
            continue;
        }
        if (d < 1)
            fail(ErrorCode::CorruptHeader, "dim[" + std::to_string(i) + "] is " +
                                               std::to_string(d) + "; it must be at least 1");
        h.dim_[i] = d;
        if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(d), &count))
            fail(ErrorCode::TooLarge, "the voxel count (product of dim[1..dim[0]]) overflows 64 bits");
    }

    const int code = v2 ? load<std::int16_t>(p + 12, little) : load<std::int16_t>(p + 70, little);
    const int bitpix = v2 ? load<std::int16_t>(p + 14, little) : load<std::int16_t>(p + 72, little);
    h.type_ = find_datatype(code);
    if (!h.type_)
        fail(ErrorCode::CorruptHeader, "datatype is " + std::to_string(code) +
                                           ", which is not a NIfTI datatype code");
    const int want_bitpix = h.type_->code == 1 ? 1 : 8 * h.type_->bytes;
    if (bitpix != want_bitpix)
        fail(ErrorCode::CorruptHeader, "bitpix is " + std::to_string(bitpix) + " but datatype " +
                                           std::to_string(code) + " (" +
                                           std::string(h.type_->name) + ") needs " +
                                           std::to_string(want_bitpix));

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

    // vox_offset: float in NIfTI-1/Analyze, int64 in NIfTI-2.
    std::int64_t vox;
    if (v2) {
        vox = load<std::int64_t>(p + 168, little);
    } else {
        const double f = load<float>(p + 108, little);
        if (!std::isfinite(f))
            fail(ErrorCode::CorruptHeader, "vox_offset is " + num(f) + "; it must be a finite whole number");
        if (f != std::floor(f))
            fail(ErrorCode::CorruptHeader, "vox_offset is " + num(f) + "; it must be a whole number");
        if (f < 0 || f >= 9.0e18)
            fail(ErrorCode::CorruptHeader, "vox_offset is " + num(f) + "; it is out of range");
        vox = static_cast<std::int64_t>(f);
    }
    const std::int64_t min_vox = single ? (v2 ? 544 : 352) : 0;
    if (vox < min_vox)
        fail(ErrorCode::CorruptHeader,
             "vox_offset is " + std::to_string(vox) + "; " +
                 (single ? std::string("a single-file NIfTI-") + (v2 ? "2" : "1") +
                               " image needs at least " + std::to_string(min_vox)
                         : std::string("it must not be negative")));
    h.vox_offset_ = vox;
    std::uint64_t end = 0;
    if (__builtin_add_overflow(static_cast<std::uint64_t>(vox), data, &end))
        fail(ErrorCode::TooLarge, "vox_offset + image bytes overflows 64 bits");
    if (file_bytes != UINT64_MAX && end > file_bytes)
        fail(ErrorCode::TruncatedData,
             "the data needs " + std::to_string(end) + " bytes (vox_offset " + std::to_string(vox) +
                 " + " + std::to_string(data) + " image bytes) but the file has " +
                 std::to_string(file_bytes));

    for (int i = 0; i < 8; ++i)
        h.pixdim_[i] = v2 ? load<double>(p + 104 + 8 * i, little) : load<float>(p + 76 + 4 * i, little);

    if (analyze) {
        h.scl_slope_ = 0;
        h.scl_inter_ = 0;
        h.xyzt_units_ = 0;
    } else if (v2) {
        h.scl_slope_ = load<double>(p + 176, little);
        h.scl_inter_ = load<double>(p + 184, little);
        h.qform_code_ = load<std::int32_t>(p + 344, little);
        h.sform_code_ = load<std::int32_t>(p + 348, little);
        for (int i = 0; i < 3; ++i) {
            h.quatern_[i] = load<double>(p + 352 + 8 * i, little);
            h.qoffset_[i] = load<double>(p + 376 + 8 * i, little);
        }
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 4; ++c) h.srow_[r][c] = load<double>(p + 400 + 32 * r + 8 * c, little);
        h.xyzt_units_ = load<std::int32_t>(p + 500, little);
    } else {
        h.scl_slope_ = load<float>(p + 112, little);
        h.scl_inter_ = load<float>(p + 116, little);
        h.qform_code_ = load<std::int16_t>(p + 252, little);
        h.sform_code_ = load<std::int16_t>(p + 254, little);
        for (int i = 0; i < 3; ++i) {
            h.quatern_[i] = load<float>(p + 256 + 4 * i, little);
            h.qoffset_[i] = load<float>(p + 268 + 4 * i, little);
        }
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 4; ++c) h.srow_[r][c] = load<float>(p + 280 + 16 * r + 4 * c, little);
        h.xyzt_units_ = p[123];
    }
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
    const std::size_t off = version_ == Version::Nifti2 ? 240 : 148;
    const char* s = reinterpret_cast<const char*>(raw_.data() + off);
    std::size_t n = 0;
    while (n < 80 && s[n] != '\0') ++n;
    return std::string(s, n);
}

std::string Header::magic() const {
    if (version_ == Version::Analyze75) return "";
    const char* s = reinterpret_cast<const char*>(raw_.data() + (version_ == Version::Nifti2 ? 4 : 344));
    std::size_t n = 0;
    while (n < 3 && s[n] != '\0') ++n;
    return std::string(s, n);
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

void Header::set_dim(int i, std::int64_t value) {
    if (i < 1 || i > dim_[0] || value < 1)
        throw Error(ErrorCode::Internal, "set_dim: dim[" + std::to_string(i) + "] = " +
                                             std::to_string(value) + " is not valid");
    const bool little = byte_order_ == ByteOrder::Little;
    if (version_ == Version::Nifti2) {
        byteorder::store<std::int64_t>(raw_.data() + 16 + 8 * i, value, little);
    } else {
        if (value > 32767)
            throw Error(ErrorCode::Internal, "set_dim: " + std::to_string(value) + " does not fit NIfTI-1 dim[]");
        byteorder::store<std::int16_t>(raw_.data() + 40 + 2 * i, static_cast<std::int16_t>(value), little);
    }
    dim_[i] = value;
    std::uint64_t count = 1;
    for (int k = 1; k <= dim_[0]; ++k)
        if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(dim_[k]), &count))
            throw Error(ErrorCode::Internal, "set_dim: voxel count overflows");
    voxel_count_ = count;
}

void Header::set_datatype(const DataType& type) {
    const bool little = byte_order_ == ByteOrder::Little;
    const std::int16_t bitpix = type.code == 1 ? 1 : static_cast<std::int16_t>(8 * type.bytes);
    const std::size_t off = version_ == Version::Nifti2 ? 12 : 70;
    byteorder::store<std::int16_t>(raw_.data() + off, type.code, little);
    byteorder::store<std::int16_t>(raw_.data() + off + 2, bitpix, little);
    type_ = find_datatype(type.code);
}

void Header::set_scaling(double slope, double inter) {
    const bool little = byte_order_ == ByteOrder::Little;
    if (version_ == Version::Nifti2) {
        byteorder::store<double>(raw_.data() + 176, slope, little);
        byteorder::store<double>(raw_.data() + 184, inter, little);
    } else {
        byteorder::store<float>(raw_.data() + 112, static_cast<float>(slope), little);
        byteorder::store<float>(raw_.data() + 116, static_cast<float>(inter), little);
    }
    scl_slope_ = version_ == Version::Nifti2 ? slope : static_cast<float>(slope);
    scl_inter_ = version_ == Version::Nifti2 ? inter : static_cast<float>(inter);
}

void Header::set_qoffset(const std::array<double, 3>& q) {
    if (version_ == Version::Analyze75) return;   // no qform in Analyze 7.5
    const bool little = byte_order_ == ByteOrder::Little;
    for (int i = 0; i < 3; ++i) {
        if (version_ == Version::Nifti2) {
            byteorder::store<double>(raw_.data() + 376 + 8 * i, q[i], little);
            qoffset_[i] = q[i];
        } else {
            byteorder::store<float>(raw_.data() + 268 + 4 * i, static_cast<float>(q[i]), little);
            qoffset_[i] = static_cast<float>(q[i]);
        }
    }
}

void Header::set_srow_offsets(const std::array<double, 3>& t) {
    if (version_ == Version::Analyze75) return;   // no sform in Analyze 7.5
    const bool little = byte_order_ == ByteOrder::Little;
    for (int r = 0; r < 3; ++r) {
        if (version_ == Version::Nifti2) {
            byteorder::store<double>(raw_.data() + 400 + 32 * r + 24, t[r], little);
            srow_[r][3] = t[r];
        } else {
            byteorder::store<float>(raw_.data() + 280 + 16 * r + 12, static_cast<float>(t[r]), little);
            srow_[r][3] = static_cast<float>(t[r]);
        }
    }
}

void Header::set_vox_offset(std::int64_t offset) {
    const bool little = byte_order_ == ByteOrder::Little;
    if (offset < 0) throw Error(ErrorCode::Internal, "set_vox_offset: negative offset");
    if (version_ == Version::Nifti2) {
        byteorder::store<std::int64_t>(raw_.data() + 168, offset, little);
    } else {
        if (offset > (1 << 24))
            throw Error(ErrorCode::Internal, "set_vox_offset: offset not exact in a float");
        byteorder::store<float>(raw_.data() + 108, static_cast<float>(offset), little);
    }
    vox_offset_ = offset;
}

void Header::make_single_file() {
    if (layout_ == Layout::Single) return;
    std::uint8_t* p = raw_.data();
    const bool little = byte_order_ == ByteOrder::Little;
    if (version_ == Version::Nifti2) {
        std::memcpy(p + 4, kMagicN2, 8);
    } else {
        if (version_ == Version::Analyze75) {
            // Bytes that mean something else in Analyze 7.5 (hkey_un0,
            // vox_units/cal_units/unused1, dim_un0, funused1..3, compressed,
            // verified, orient..smin) become the NIfTI "not set" values.
            p[39] = 0;                                   // dim_info
            std::memset(p + 56, 0, 14);                  // intent_p1..3, intent_code
            std::memset(p + 74, 0, 2);                   // slice_start
            std::memset(p + 112, 0, 12);                 // scl_slope, scl_inter, slice_end, slice_code, xyzt_units
            std::memset(p + 132, 0, 8);                  // slice_duration, toffset
            std::memset(p + 252, 0, 92);                 // qform/sform codes .. intent_name
            scl_slope_ = scl_inter_ = 0;
            qform_code_ = sform_code_ = 0;
            quatern_ = {};
            qoffset_ = {};
            srow_ = {};
            xyzt_units_ = 0;
            version_ = Version::Nifti1;
        }
        std::memcpy(p + 344, kMagicN1, 4);
    }
    layout_ = Layout::Single;
    // The smallest valid single-file offset: header + 4-byte extender.
    set_vox_offset(static_cast<std::int64_t>(raw_.size()) + 4);
    (void)little;
}

}  // namespace medimg::nifti
