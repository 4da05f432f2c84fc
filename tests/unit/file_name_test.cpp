// The one set of image file-name rules (nifti/file_name.hpp): a table of
// names and what each rule derives from them.
#include <string>
#include <vector>

#include "catch.hpp"
#include "nifti/file_name.hpp"

using namespace medimg::nifti;

namespace {

const char* kind_name(NameKind k) {
    switch (k) {
        case NameKind::Single: return "single";
        case NameKind::Header: return "header";
        case NameKind::Image: return "image";
        case NameKind::Other: return "other";
    }
    return "?";
}

}  // namespace

TEST_CASE("file names: stem, kind, partners, sidecars, output", "[nifti][file_name]") {
    struct Row {
        std::string name, kind, stem;
        std::vector<std::string> partners;
        std::string txt, filtered;
        Container container;
    };
    const Row row = GENERATE(values<Row>({
        {"CT.nii.gz", "single", "CT", {}, "CT.txt", "filtered_CT.nii.gz", Container::Gzip},
        {"CT.NII.GZ", "single", "CT", {}, "CT.txt", "filtered_CT.NII.GZ", Container::Gzip},
        {"all.nii", "single", "all", {}, "all.txt", "filtered_all.nii", Container::Plain},
        {"a.NII", "single", "a", {}, "a.txt", "filtered_a.NII", Container::Plain},
        {"seg.hdr", "header", "seg", {"seg.img", "seg.img.gz"}, "seg.txt", "filtered_seg.nii.gz", Container::Gzip},
        {"seg.img", "image", "seg", {"seg.hdr", "seg.hdr.gz"}, "seg.txt", "filtered_seg.nii.gz", Container::Gzip},
        {"seg.hdr.gz", "header", "seg", {"seg.img.gz", "seg.img"}, "seg.txt", "filtered_seg.nii.gz", Container::Gzip},
        {"seg.img.gz", "image", "seg", {"seg.hdr.gz", "seg.hdr"}, "seg.txt", "filtered_seg.nii.gz", Container::Gzip},
        {"X.HDR", "header", "X", {"X.IMG", "X.IMG.GZ"}, "X.txt", "filtered_X.nii.gz", Container::Gzip},
        {"X.IMG.GZ", "image", "X", {"X.HDR.GZ", "X.HDR"}, "X.txt", "filtered_X.nii.gz", Container::Gzip},
        {"x.Hdr", "header", "x", {"x.IMG", "x.IMG.GZ"}, "x.txt", "filtered_x.nii.gz", Container::Gzip},
        {"my.scan.v2.nii.gz", "single", "my.scan.v2", {}, "my.scan.v2.txt", "filtered_my.scan.v2.nii.gz", Container::Gzip},
        {"notes", "other", "notes", {}, "notes.txt", "filtered_notes", Container::Gzip},
        {"blob.gz", "other", "blob.gz", {}, "blob.gz.txt", "filtered_blob.gz", Container::Gzip},
        {".nii", "other", ".nii", {}, ".nii.txt", "filtered_.nii", Container::Gzip},
    }));
    INFO("name: " << row.name);
    const ImageName n = parse_image_name(row.name);
    CHECK(n.name == row.name);
    CHECK(kind_name(n.kind) == row.kind);
    CHECK(n.stem == row.stem);
    CHECK(n.stem + n.suffix == row.name);
    CHECK(partner_names(n) == row.partners);
    CHECK(json_sidecar_name(n) == row.name + ".labels.json");
    CHECK(txt_sidecar_name(n) == row.txt);
    CHECK(filtered_name(n) == row.filtered);
    CHECK(output_container(n) == row.container);
}

TEST_CASE("file names: a folder in front is ignored", "[nifti][file_name]") {
    const ImageName n = parse_image_name("P/scans/seg.HDR");
    CHECK(n.name == "seg.HDR");
    CHECK(n.kind == NameKind::Header);
    CHECK(partner_names(n) == std::vector<std::string>{"seg.IMG", "seg.IMG.GZ"});
}

TEST_CASE("file names: suffixes compare case-insensitively", "[nifti][file_name]") {
    CHECK(ends_with_ci("CT.NII.GZ", ".nii.gz"));
    CHECK(ends_with_ci("a.Img", ".IMG"));
    CHECK_FALSE(ends_with_ci("a.im", ".img"));
    CHECK_FALSE(ends_with_ci("x.niigz", ".nii.gz"));
}
