// NIfTI-1 / NIfTI-2 / Analyze 7.5 headers: parsed field by field from raw
// bytes through the layout tables of nifti/header_fields.hpp, strictly
// validated (docs/ARCHITECTURE.md), and edited in place so every field we do
// not touch is written back byte for byte.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nifti/datatype.hpp"

namespace medimg::nifti {

enum class Version { Analyze75, Nifti1, Nifti2 };
enum class ByteOrder { Little, Big };
// Single: one .nii file, magic n+1 / n+2. Pair: .hdr + .img, magic ni1 / ni2 / none.
enum class Layout { Single, Pair };

class FieldEditor;

struct HeaderLimits {
    std::uint64_t max_voxels = 512ull * 512 * 2048;  // [limits] max_voxels
};

class Header {
public:
    // Parses and validates 348 (NIfTI-1/Analyze) or 540 (NIfTI-2) bytes;
    // `bytes` may be longer (only the header size is used). `file_bytes`, when
    // known, is the size of the (decompressed) file holding the voxel data, so
    // vox_offset + data is checked against it; pass UINT64_MAX when unknown.
    // Throws Error: NotNifti (sizeof_hdr/magic not NIfTI or Analyze),
    // CorruptHeader (field named in the message), TooLarge (voxel count over
    // limits.max_voxels), TruncatedData (data past file_bytes).
    static Header parse(std::span<const std::uint8_t> bytes, Layout layout,
                        const HeaderLimits& limits,
                        std::uint64_t file_bytes = UINT64_MAX);

    Version version() const noexcept { return version_; }
    ByteOrder byte_order() const noexcept { return byte_order_; }
    Layout layout() const noexcept { return layout_; }
    std::size_t size() const noexcept { return raw_.size(); }   // 348 or 540
    // The header bytes, in the file's byte order, including any edits.
    const std::vector<std::uint8_t>& bytes() const noexcept { return raw_; }

    int dim0() const noexcept { return dim_[0]; }
    // dim[i] for i in 1..7; 1 for i > dim0 (dims beyond dim[0] are ignored).
    std::int64_t dim(int i) const noexcept;
    double pixdim(int i) const noexcept { return pixdim_[i]; }
    const DataType& datatype() const noexcept { return *type_; }
    std::int64_t vox_offset() const noexcept { return vox_offset_; }
    std::uint64_t voxel_count() const noexcept { return voxel_count_; }
    std::uint64_t data_bytes() const noexcept { return voxel_count_ * type_->bytes; }
    // nx*ny*nz voxels of one 3-D volume, and how many volumes (dims 4..7).
    std::uint64_t volume_voxels() const noexcept;
    std::uint64_t volume_count() const noexcept { return voxel_count_ / volume_voxels(); }

    // Stored fields, as in the file.
    double scl_slope_raw() const noexcept { return scl_slope_; }
    double scl_inter_raw() const noexcept { return scl_inter_; }
    // Effective scaling (§10): slope 0 or non-finite means none (1, 0); a
    // non-finite inter with a valid slope counts as 0. Analyze: never scaled.
    // scaled() is false for the identity (slope 1, inter 0) too.
    bool scaled() const noexcept;
    double slope() const noexcept;
    double inter() const noexcept;

    int qform_code() const noexcept { return qform_code_; }
    int sform_code() const noexcept { return sform_code_; }
    std::array<double, 3> quatern() const noexcept { return quatern_; }   // b, c, d
    std::array<double, 3> qoffset() const noexcept { return qoffset_; }   // x, y, z
    const std::array<std::array<double, 4>, 3>& srow() const noexcept { return srow_; }
    int xyzt_units() const noexcept { return xyzt_units_; }
    // Millimetres per spatial unit from xyzt_units (metre 1000, mm 1, micron
    // 0.001); unknown (0) is taken as mm, as nibabel and NiiVue do.
    double spatial_unit_mm() const noexcept;
    std::string description() const;   // descrip, up to its first NUL (not assumed terminated)
    std::string magic() const;          // "n+1", "n+2", "ni1", "ni2" or "" (Analyze)
    // The 4x4 voxel-to-world affine nibabel would report (sform if
    // sform_code > 0, else qform if qform_code > 0 with qfac = pixdim[0] < 0
    // ? -1 : 1, else nibabel's base affine: diag(-pixdim1, pixdim2, pixdim3)
    // with the volume centre at the origin).
    std::array<std::array<double, 4>, 4> affine() const;

    // --- Edits for writing a derived file (raw bytes are patched in place,
    // in this header's byte order and version) ---
    void set_dim(int i, std::int64_t value);       // i in 1..dim0; rechecks counts
    void set_datatype(const DataType& type);        // also bitpix
    void set_scaling(double slope, double inter);
    void set_qoffset(const std::array<double, 3>& q);
    void set_srow_offsets(const std::array<double, 3>& t);  // srow_x[3], srow_y[3], srow_z[3]
    void set_vox_offset(std::int64_t offset);
    // Turns a pair header (ni1/ni2/Analyze) into a single-file one (n+1/n+2).
    // Analyze 7.5 becomes NIfTI-1 with the NIfTI-only fields whose bytes mean
    // something else in Analyze (qform/sform codes, quaternions, srows,
    // intent, slice fields, scaling) reset, so the geometry comes from pixdim.
    // vox_offset becomes size() + 4 (header + a zero extender, no extensions):
    // pass an empty extension to Writer, which then writes the 4 zero bytes.
    // A header that is already single-file is left unchanged.
    void make_single_file();

private:
    Header() = default;
    FieldEditor fields();   // the raw bytes, in this header's version and byte order
    Version version_{};
    ByteOrder byte_order_{};
    Layout layout_{};
    std::vector<std::uint8_t> raw_;
    std::array<std::int64_t, 8> dim_{};
    std::array<double, 8> pixdim_{};
    const DataType* type_ = nullptr;
    std::int64_t vox_offset_ = 0;
    double scl_slope_ = 0, scl_inter_ = 0;
    int qform_code_ = 0, sform_code_ = 0;
    std::array<double, 3> quatern_{}, qoffset_{};
    std::array<std::array<double, 4>, 3> srow_{};
    int xyzt_units_ = 0;
    std::uint64_t voxel_count_ = 0;
};

}  // namespace medimg::nifti
