// Label metadata: counts, bounding boxes, volumes and units, exact ids, and
// the /labels JSON shape.
#include <functional>
#include <limits>
#include <string>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "labels/metadata.hpp"
#include "nifti/reader.hpp"
#include "nifti_builder.hpp"

using medimg::Error;
using medimg::ErrorCode;
using medimg::labels::Dictionary;
using medimg::labels::Metadata;
using medimg::nifti::ByteOrder;
using medimg::nifti::Reader;
using medimg::nifti::ReadLimits;
using medimg::test::NiftiSpec;
using medimg::test::code_of;

namespace {

Metadata meta_of(const NiftiSpec& spec) {
    Reader r = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
    return medimg::labels::compute_metadata(r);
}

template <typename T>
std::vector<std::uint8_t> enc(const std::vector<T>& v, ByteOrder o) {
    return medimg::test::encode<T>(v, o);
}

}  // namespace

TEST_CASE("metadata: counts and bounding boxes for every datatype", "[labels][metadata]") {
    const int code = GENERATE(2, 256, 4, 512, 8, 768, 1024, 1280, 16, 64);
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    INFO("datatype " << code);
    NiftiSpec spec;
    spec.byte_order = order;
    spec.dims = {4, 3, 2};
    spec.datatype = code;
    std::vector<int> ids(24, 0);
    ids[0 + 4 * 1 + 12 * 0] = 6;    // (0,1,0)
    ids[3 + 4 * 2 + 12 * 1] = 6;    // (3,2,1)
    ids[2 + 4 * 0 + 12 * 1] = 1;    // (2,0,1)
    ids[1 + 4 * 1 + 12 * 1] = 100;  // (1,1,1)
    ids[2 + 4 * 1 + 12 * 1] = 100;  // (2,1,1)
    switch (code) {
    case 2: spec.data = enc(std::vector<std::uint8_t>(ids.begin(), ids.end()), order); break;
    case 256: spec.data = enc(std::vector<std::int8_t>(ids.begin(), ids.end()), order); break;
    case 4: spec.data = enc(std::vector<std::int16_t>(ids.begin(), ids.end()), order); break;
    case 512: spec.data = enc(std::vector<std::uint16_t>(ids.begin(), ids.end()), order); break;
    case 8: spec.data = enc(std::vector<std::int32_t>(ids.begin(), ids.end()), order); break;
    case 768: spec.data = enc(std::vector<std::uint32_t>(ids.begin(), ids.end()), order); break;
    case 1024: spec.data = enc(std::vector<std::int64_t>(ids.begin(), ids.end()), order); break;
    case 1280: spec.data = enc(std::vector<std::uint64_t>(ids.begin(), ids.end()), order); break;
    case 16: spec.data = enc(std::vector<float>(ids.begin(), ids.end()), order); break;
    case 64: spec.data = enc(std::vector<double>(ids.begin(), ids.end()), order); break;
    }
    const Metadata m = meta_of(spec);
    REQUIRE(m.labels.size() == 3);
    CHECK(m.labels[0].id == 1);
    CHECK(m.labels[0].voxels == 1);
    CHECK(m.labels[0].bbox_min == std::array<std::int64_t, 3>{2, 0, 1});
    CHECK(m.labels[0].bbox_max == std::array<std::int64_t, 3>{2, 0, 1});
    CHECK(m.labels[1].id == 6);
    CHECK(m.labels[1].voxels == 2);
    CHECK(m.labels[1].bbox_min == std::array<std::int64_t, 3>{0, 1, 0});
    CHECK(m.labels[1].bbox_max == std::array<std::int64_t, 3>{3, 2, 1});
    CHECK(m.labels[2].id == 100);
    CHECK(m.labels[2].voxels == 2);
    CHECK(m.dims == std::array<std::int64_t, 3>{4, 3, 2});
}

TEST_CASE("metadata: volumes follow pixdim and the spatial unit", "[labels][metadata]") {
    auto [units, expected_ml] = GENERATE(table<int, double>({
        {2, 0.8 * 0.8 * 2.5 / 1000},          // mm
        {0, 0.8 * 0.8 * 2.5 / 1000},          // unknown: mm
        {1, 0.8 * 0.8 * 2.5 * 1e9 / 1000},    // metre
        {3, 0.8 * 0.8 * 2.5 * 1e-9 / 1000},   // micron
        {2 | 8, 0.8 * 0.8 * 2.5 / 1000},      // mm with seconds
    }));
    INFO("xyzt_units " << units);
    NiftiSpec spec;
    spec.dims = {2, 2, 2};
    spec.datatype = 2;
    spec.xyzt_units = units;
    spec.pixdim = {1, 0.8, -0.8, 2.5, 1, 1, 1, 1};
    spec.data = std::vector<std::uint8_t>{3, 3, 3, 0, 0, 0, 0, 5};
    const Metadata m = meta_of(spec);
    CHECK(m.voxel_volume_ml == Approx(expected_ml).epsilon(1e-6));
    CHECK(m.pixdim[0] == 0.8);   // the float32 field as written, not 0.800000011920929
    const auto j = medimg::labels::labels_json(m, Dictionary(), "seg.nii.gz");
    REQUIRE(j["labels"].size() == 2);
    if (units == 2) CHECK(j["labels"][0]["volume_ml"].get<double>() == Approx(0.005).margin(1e-9));
}

TEST_CASE("metadata: scaled ids are exact, non-integral ones are refused", "[labels][metadata]") {
    NiftiSpec spec;
    spec.dims = {4};
    spec.datatype = 4;
    SECTION("slope 1 inter -1024") {
        spec.scl_slope = 1;
        spec.scl_inter = -1024;
        spec.data = enc(std::vector<std::int16_t>{1024, 1030, 1030, 0}, ByteOrder::Little);
        const Metadata m = meta_of(spec);
        REQUIRE(m.labels.size() == 2);
        CHECK(m.labels[0].id == -1024);
        CHECK(m.labels[1].id == 6);
        CHECK(m.labels[1].voxels == 2);
    }
    SECTION("slope 0.5 with an odd stored value") {
        spec.scl_slope = 0.5;
        spec.data = enc(std::vector<std::int16_t>{2, 4, 3, 0}, ByteOrder::Little);
        CHECK(code_of([&] { meta_of(spec); }) == ErrorCode::NonIntegralLabels);
    }
    SECTION("float with 0.5") {
        spec.datatype = 16;
        spec.data = enc(std::vector<float>{1, 2, 0.5f, 0}, ByteOrder::Little);
        CHECK(code_of([&] { meta_of(spec); }) == ErrorCode::NonIntegralLabels);
    }
    SECTION("float NaN") {
        spec.datatype = 64;
        spec.data = enc(std::vector<double>{1, std::numeric_limits<double>::quiet_NaN(), 0, 0},
                        ByteOrder::Big);
        spec.byte_order = ByteOrder::Big;
        CHECK(code_of([&] { meta_of(spec); }) == ErrorCode::NonIntegralLabels);
    }
    SECTION("complex is unsupported") {
        spec.datatype = 32;
        spec.data.reset();
        CHECK(code_of([&] { meta_of(spec); }) == ErrorCode::UnsupportedDatatype);
    }
}

TEST_CASE("metadata: 4-D boxes span all volumes; int64 ids are exact", "[labels][metadata]") {
    NiftiSpec spec;
    spec.dims = {2, 2, 1, 2};
    spec.datatype = 1024;
    const std::int64_t big = std::numeric_limits<std::int64_t>::max();
    spec.data = enc(std::vector<std::int64_t>{big, 0, 0, 0, 0, 0, 0, big - 1}, ByteOrder::Little);
    const Metadata m = meta_of(spec);
    REQUIRE(m.labels.size() == 2);
    CHECK(m.labels[0].id == big - 1);
    CHECK(m.labels[0].bbox_min == std::array<std::int64_t, 3>{1, 1, 0});
    CHECK(m.labels[1].id == big);
    CHECK(m.labels[1].bbox_max == std::array<std::int64_t, 3>{0, 0, 0});
}

TEST_CASE("metadata: uint64 ids above INT64_MAX are exact", "[labels][metadata]") {
    const ByteOrder order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    constexpr std::uint64_t kTop = std::numeric_limits<std::uint64_t>::max();
    constexpr std::uint64_t kI64 = std::numeric_limits<std::int64_t>::max();
    NiftiSpec spec;
    spec.byte_order = order;
    spec.dims = {3, 2, 2};
    spec.datatype = 1280;
    // Voxel (x, y, z) at x + 3y + 6z.
    spec.data = enc(std::vector<std::uint64_t>{kTop, 0, 5,          // y 0, z 0
                                               kI64 + 1, kI64, 0,   // y 1, z 0
                                               0, 0, kTop,          // y 0, z 1
                                               kI64 + 1, 0, 5},     // y 1, z 1
                    order);
    const Metadata m = meta_of(spec);
    REQUIRE(m.labels.size() == 4);
    using medimg::labels::to_string;
    using Box = std::array<std::int64_t, 3>;
    // Ascending by value, none folded into another through double.
    struct Want {
        std::string id;
        std::uint64_t voxels;
        Box lo, hi;
    };
    const std::vector<Want> want = {{"5", 2, {2, 0, 0}, {2, 1, 1}},
                                    {"9223372036854775807", 1, {1, 1, 0}, {1, 1, 0}},
                                    {"9223372036854775808", 2, {0, 1, 0}, {0, 1, 1}},
                                    {"18446744073709551615", 2, {0, 0, 0}, {2, 0, 1}}};
    for (std::size_t k = 0; k < want.size(); ++k) {
        INFO("label " << want[k].id);
        CHECK(to_string(m.labels[k].id) == want[k].id);
        CHECK(m.labels[k].voxels == want[k].voxels);
        CHECK(m.labels[k].bbox_min == want[k].lo);
        CHECK(m.labels[k].bbox_max == want[k].hi);
    }

    // JSON integers, exact; no dictionary names them.
    const std::string text = medimg::labels::labels_json(m, Dictionary(), "huge.nii").dump();
    INFO(text);
    CHECK(text.find("{\"id\":9223372036854775808,\"name\":\"9223372036854775808\",\"voxels\":2,") !=
          std::string::npos);
    CHECK(text.find("{\"id\":18446744073709551615,\"name\":\"18446744073709551615\",\"voxels\":2,") !=
          std::string::npos);
    const auto j = nlohmann::json::parse(text);
    CHECK(j["labels"][0]["id"].get<std::int64_t>() == 5);
    CHECK(j["labels"][1]["id"].get<std::int64_t>() == std::numeric_limits<std::int64_t>::max());
    CHECK(j["labels"][2]["id"].get<std::uint64_t>() == kI64 + 1);
    CHECK(j["labels"][3]["id"].get<std::uint64_t>() == kTop);
}

TEST_CASE("metadata: labels_json has the documented keys in order", "[labels][metadata]") {
    NiftiSpec spec;
    spec.dims = {2, 2, 1};
    spec.datatype = 4;
    spec.data = enc(std::vector<std::int16_t>{6, 6, 133, 0}, ByteOrder::Little);
    const Metadata m = meta_of(spec);
    const Dictionary dict =
        Dictionary::load(std::filesystem::path(MEDIMG_SOURCE_DIR) / "conf/vista3d_label_dict.json",
                         std::filesystem::path(MEDIMG_SOURCE_DIR) / "conf/vista3d_label_colors.json");
    const auto text = medimg::labels::labels_json(m, dict, "all.nii.gz").dump();
    const auto color = dict.color_of(6).value();
    const std::string expected =
        "{\"labels\":[{\"id\":6,\"name\":\"aorta\",\"color\":[" + std::to_string(color[0]) + "," +
        std::to_string(color[1]) + "," + std::to_string(color[2]) +
        "],\"voxels\":2,\"volume_ml\":0.002,\"bbox\":[[0,0,0],[1,0,0]]},"
        "{\"id\":133,\"name\":\"133\",\"voxels\":1,\"volume_ml\":0.001,\"bbox\":[[0,1,0],[0,1,0]]}],"
        "\"voxel_filename\":\"all.nii.gz\",\"dims\":[2,2,1],\"pixdim\":[1.0,1.0,1.0],"
        "\"datatype\":\"int16\"}";
    CHECK(text == expected);
}
