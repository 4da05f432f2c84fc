// The qform rotation and the crop origin (geometry.hpp states the rule).
#include "nifti/geometry.hpp"

#include <cmath>

#include "nifti/header.hpp"

namespace medimg::nifti {

Mat3 quaternion_rotation(const Vec3& bcd) noexcept {
    const double b = bcd[0], c = bcd[1], d = bcd[2];
    const double w2 = 1.0 - (b * b + c * c + d * d);
    const double w = w2 > 0 ? std::sqrt(w2) : 0.0;
    const double n = w * w + b * b + c * c + d * d;
    const double s = n > 0 ? 2.0 / n : 0.0;
    return {{{1 - s * (c * c + d * d), s * (b * c - w * d), s * (b * d + w * c)},
             {s * (b * c + w * d), 1 - s * (b * b + d * d), s * (c * d - w * b)},
             {s * (b * d - w * c), s * (c * d + w * b), 1 - s * (b * b + c * c)}}};
}

double qfac_of(double pixdim0) noexcept { return pixdim0 < 0 ? -1.0 : 1.0; }

void move_origin(Header& h, const Vec3& ijk) {
    if (h.qform_code() > 0) {
        const Mat3 r = quaternion_rotation(h.quatern());
        const Vec3 step{ijk[0] * h.pixdim(1), ijk[1] * h.pixdim(2),
                        ijk[2] * h.pixdim(3) * qfac_of(h.pixdim(0))};
        Vec3 q = h.qoffset();
        for (int row = 0; row < 3; ++row)
            q[row] += r[row][0] * step[0] + r[row][1] * step[1] + r[row][2] * step[2];
        h.set_qoffset(q);
    }
    if (h.sform_code() > 0) {
        const auto& s = h.srow();
        Vec3 t{};
        for (int row = 0; row < 3; ++row)
            t[row] = s[row][3] + s[row][0] * ijk[0] + s[row][1] * ijk[1] + s[row][2] * ijk[2];
        h.set_srow_offsets(t);
    }
}

}  // namespace medimg::nifti
