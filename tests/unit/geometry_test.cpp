// The qform rotation against the matrices nibabel computes for the same
// stored (b, c, d) (nibabel.quaternions: fillpositive with the NIfTI-1
// threshold, then quat2mat; values computed once with nibabel and written
// here), the degenerate quaternions included; and moving the origin for a
// crop keeps every voxel's world coordinates.
#include <array>
#include <string>

#include "catch.hpp"
#include "nifti/geometry.hpp"
#include "nifti/header.hpp"
#include "nifti_builder.hpp"

using medimg::nifti::ByteOrder;
using medimg::nifti::Header;
using medimg::nifti::Layout;
using medimg::nifti::Mat3;
using medimg::nifti::Vec3;
using medimg::nifti::Version;
using medimg::test::NiftiSpec;

namespace {

struct RotationCase {
    std::string name;
    Vec3 bcd;
    Mat3 nibabel;   // nibabel's rotation for bcd
};

const RotationCase kRotations[] = {
    {"no rotation", {0, 0, 0}, {{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}},
    {"an ordinary rotation", {0.1, -0.2, 0.3},
     {{{0.74, -0.5964171097297422, -0.3109447398198282},
       {0.5164171097297422, 0.8, -0.3054723699099141},
       {0.43094473981982817, 0.06547236990991408, 0.9}}}},
    {"180 degrees about z: a is exactly 0", {0, 0, 1}, {{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}}},
    {"180 degrees about x", {1, 0, 0}, {{{1, 0, 0}, {0, -1, 0}, {0, 0, -1}}}},
    {"a squared tiny and positive: a kept, not rounded to 0", {0.6, 0, 0.79999996},
     {{{-0.27999987200000304, -0.0004047715155181372, 0.9599999519999999},
       {0.0004047715155181372, -0.999999872000003, -0.0003035786518175355},
       {0.9599999519999999, 0.0003035786518175355, 0.28}}}},
    {"(b, c, d) just longer than 1 (float32 rounding): a = 0, normalised",
     {0.6000000238418579, 0, 0.800000011920929},
     {{{-0.2799999771118169, 0, 0.9600000066757198},
       {0, -1, 0},
       {0.9600000066757198, 0, 0.2799999771118169}}}},
    // nibabel's header refuses this one; its quat2mat with a = 0 gives:
    {"(b, c, d) of length 2: a = 0, normalised", {0, 0, 2}, {{{-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}}},
};

Header parse(const NiftiSpec& s) {
    const auto bytes = medimg::test::build_nifti(s);
    return Header::parse(bytes, Layout::Single, {}, bytes.size());
}

Vec3 world(const Header& h, const Vec3& ijk) {
    const auto a = h.affine();
    Vec3 w{};
    for (int r = 0; r < 3; ++r) w[r] = a[r][0] * ijk[0] + a[r][1] * ijk[1] + a[r][2] * ijk[2] + a[r][3];
    return w;
}

}  // namespace

TEST_CASE("geometry: the qform rotation is nibabel's, degenerate quaternions included",
          "[nifti][geometry]") {
    for (const auto& c : kRotations) {
        DYNAMIC_SECTION(c.name) {
            const Mat3 r = medimg::nifti::quaternion_rotation(c.bcd);
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j) {
                    INFO("row " << i << " column " << j);
                    CHECK(r[i][j] == Approx(c.nibabel[i][j]).margin(1e-12));
                }
        }
    }
}

TEST_CASE("geometry: the header's qform affine uses that rotation", "[nifti][geometry]") {
    for (const auto& c : kRotations) {
        DYNAMIC_SECTION(c.name) {
            NiftiSpec s;
            s.version = Version::Nifti2;   // doubles: the quaternion is stored exactly
            s.qform_code = 1;
            s.quatern = c.bcd;
            s.qoffset = {7, -8, 9};
            s.pixdim = {-1, 2, 3, 4, 1, 1, 1, 1};
            const auto a = parse(s).affine();
            const Vec3 zoom{2, 3, -4};   // qfac -1 flips the third column
            for (int i = 0; i < 3; ++i) {
                for (int j = 0; j < 3; ++j) CHECK(a[i][j] == Approx(c.nibabel[i][j] * zoom[j]).margin(1e-11));
                CHECK(a[i][3] == s.qoffset[i]);
            }
        }
    }
}

TEST_CASE("geometry: moving the origin keeps world coordinates, qform and sform",
          "[nifti][geometry]") {
    const Version version = GENERATE(Version::Nifti1, Version::Nifti2);
    const bool sform = GENERATE(false, true);
    for (const auto& c : kRotations) {
        DYNAMIC_SECTION(c.name << (version == Version::Nifti2 ? " nifti2" : " nifti1")
                               << (sform ? " sform" : " qform")) {
            NiftiSpec s;
            s.version = version;
            s.byte_order = ByteOrder::Big;
            s.dims = {40, 30, 20};
            s.qform_code = 1;
            s.quatern = c.bcd;
            s.qoffset = {-100.5, 20.25, 7};
            s.pixdim = {-1, 0.8, 0.9, 2.5, 1, 1, 1, 1};
            s.sform_code = sform ? 2 : 0;
            s.srow = {{{0.8, 0.01, 0, -90}, {0, 0.9, 0.02, 30}, {0.03, 0, 2.5, -12}}};
            const Header in = parse(s);
            Header out = in;
            const Vec3 lo{11, 3, 17};
            medimg::nifti::move_origin(out, lo);
            // float32 offsets in NIfTI-1: within their rounding of ~1e-5 mm
            const double tol = version == Version::Nifti2 ? 1e-9 : 1e-4;
            for (const Vec3& ijk : {Vec3{0, 0, 0}, Vec3{1, 2, 3}, Vec3{28, 26, 2}}) {
                const Vec3 w_out = world(out, ijk);
                const Vec3 w_in = world(in, {ijk[0] + lo[0], ijk[1] + lo[1], ijk[2] + lo[2]});
                for (int r = 0; r < 3; ++r) CHECK(w_out[r] == Approx(w_in[r]).margin(tol));
            }
            CHECK(out.quatern() == in.quatern());
            if (!sform) CHECK(out.srow() == in.srow());
        }
    }
}
