// Voxel-to-world geometry of a header: the qform's quaternion rotation, and
// the origin a crop moves so that kept voxels keep their world coordinates.
// The one place where degenerate quaternions are decided (docs/ARCHITECTURE.md,
// "Input rules").
#pragma once

#include <array>

namespace medimg::nifti {

class Header;

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;

// The rotation of the qform quaternion whose stored part is (b, c, d).
// NIfTI stores no a: it is sqrt(1 - (b² + c² + d²)) when that is positive,
// and 0 otherwise (a rotation of 180 degrees about (b, c, d)). The matrix is
// that of the quaternion (a, b, c, d) divided by its norm, so (b, c, d) a
// little longer than 1 (float rounding of a 180-degree rotation) still gives a
// proper rotation; a tiny positive a² keeps its tiny a rather than being
// rounded to 0. This is the rule of nibabel, which reads every output
// (nibabel refuses b² + c² + d² beyond 1 + 3 float32 epsilons; the reader
// takes those as 180 degrees like the rest).
Mat3 quaternion_rotation(const Vec3& bcd) noexcept;

// The qform's qfac from pixdim[0]: -1 when negative, else 1 (0 counts as 1).
double qfac_of(double pixdim0) noexcept;

// Makes voxel `ijk` of `h` its voxel (0, 0, 0) in world space: the qform's
// offset moves by its rotation times ijk scaled by (pixdim1, pixdim2,
// qfac * pixdim3) when qform_code > 0, the srow offsets by srow times ijk
// when sform_code > 0; the rest of the header is unchanged.
void move_origin(Header& h, const Vec3& ijk);

}  // namespace medimg::nifti
