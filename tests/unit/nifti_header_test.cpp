// Header parsing: version/byte-order detection, strict field checks, edits, affine.
#include <cmath>
#include <cstring>
#include <functional>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "nifti/header.hpp"
#include "nifti_builder.hpp"

using namespace medimg;
using namespace medimg::nifti;
using medimg::test::NiftiSpec;
using medimg::test::expect_error;

namespace {

Header parse_single(const std::vector<std::uint8_t>& bytes, const HeaderLimits& limits = {}) {
    return Header::parse(bytes, Layout::Single, limits, bytes.size());
}

}  // namespace

TEST_CASE("nifti header: parses a valid NIfTI-1 and NIfTI-2 in both byte orders", "[nifti][header]") {
    auto [version, order] = GENERATE(table<Version, ByteOrder>({
        {Version::Nifti1, ByteOrder::Little},
        {Version::Nifti1, ByteOrder::Big},
        {Version::Nifti2, ByteOrder::Little},
        {Version::Nifti2, ByteOrder::Big},
    }));
    INFO("version " << static_cast<int>(version) << " order " << static_cast<int>(order));
    NiftiSpec s;
    s.version = version;
    s.byte_order = order;
    s.dims = {5, 6, 7, 2};
    s.datatype = 4;
    s.pixdim = {-1, 0.5, 0.75, 2.5, 1, 1, 1, 1};
    s.scl_slope = 2;
    s.scl_inter = -1;
    s.descrip = "hello";
    s.xyzt_units = 2;
    const auto bytes = test::build_nifti(s);
    const Header h = parse_single(bytes);
    CHECK(h.version() == version);
    CHECK(h.byte_order() == order);
    CHECK(h.size() == (version == Version::Nifti2 ? 540u : 348u));
    CHECK(h.dim0() == 4);
    CHECK(h.dim(1) == 5);
    CHECK(h.dim(2) == 6);
    CHECK(h.dim(3) == 7);
    CHECK(h.dim(4) == 2);
    CHECK(h.dim(5) == 1);
    CHECK(h.voxel_count() == 5 * 6 * 7 * 2);
    CHECK(h.volume_voxels() == 5 * 6 * 7);
    CHECK(h.volume_count() == 2);
    CHECK(h.datatype().name == "int16");
    CHECK(h.data_bytes() == 5 * 6 * 7 * 2 * 2);
    CHECK(h.pixdim(2) == 0.75);
    CHECK(h.scaled());
    CHECK(h.slope() == 2);
    CHECK(h.inter() == -1);
    CHECK(h.description() == "hello");
    CHECK(h.magic() == (version == Version::Nifti2 ? "n+2" : "n+1"));
    CHECK(h.vox_offset() == static_cast<std::int64_t>(h.size() + 4));
    CHECK(h.bytes() == std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + h.size()));
}

TEST_CASE("nifti header: rejects broken fields, naming them", "[nifti][header]") {
    using test::put;
    auto [version, order] = GENERATE(table<Version, ByteOrder>({
        {Version::Nifti1, ByteOrder::Little},
        {Version::Nifti1, ByteOrder::Big},
        {Version::Nifti2, ByteOrder::Little},
        {Version::Nifti2, ByteOrder::Big},
    }));
    const bool v2 = version == Version::Nifti2;
    const auto off = test::offsets_for(version);
    auto put_dim = [&](std::vector<std::uint8_t>& b, int i, std::int64_t v) {
        if (v2) put<std::int64_t>(b, off.dim + 8 * i, v, order);
        else put<std::int16_t>(b, off.dim + 2 * i, static_cast<std::int16_t>(v), order);
    };
    auto put_vox = [&](std::vector<std::uint8_t>& b, double v) {
        if (v2) put<std::int64_t>(b, off.vox_offset, static_cast<std::int64_t>(v), order);
        else put<float>(b, off.vox_offset, static_cast<float>(v), order);
    };
    struct Row {
        const char* what;
        std::function<void(std::vector<std::uint8_t>&)> poke;
        ErrorCode code;
        const char* needle;
    };
    const std::vector<Row> rows = {
        {"sizeof_hdr 0", [&](auto& b) { put<std::int32_t>(b, 0, 0, order); }, ErrorCode::NotNifti, "sizeof_hdr"},
        {"sizeof_hdr 349", [&](auto& b) { put<std::int32_t>(b, 0, 349, order); }, ErrorCode::NotNifti, "sizeof_hdr"},
        {"magic garbage", [&](auto& b) { std::memcpy(b.data() + off.magic, "xyz", 3); }, ErrorCode::NotNifti, "magic"},
        {"magic ni1/ni2 in a single file", [&](auto& b) { std::memcpy(b.data() + off.magic, "ni", 2); }, ErrorCode::NotNifti, "magic"},
        {"dim[0] 0", [&](auto& b) { put_dim(b, 0, 0); }, ErrorCode::CorruptHeader, "dim[0] is 0"},
        {"dim[0] 8", [&](auto& b) { put_dim(b, 0, 8); }, ErrorCode::CorruptHeader, "dim[0] is 8; NIfTI allows 1 to 7"},
        {"dim[0] -1", [&](auto& b) { put_dim(b, 0, -1); }, ErrorCode::CorruptHeader, "dim[0] is -1"},
        {"dim[2] 0", [&](auto& b) { put_dim(b, 2, 0); }, ErrorCode::CorruptHeader, "dim[2] is 0"},
        {"dim[3] -5", [&](auto& b) { put_dim(b, 3, -5); }, ErrorCode::CorruptHeader, "dim[3] is -5"},
        {"datatype 3", [&](auto& b) { put<std::int16_t>(b, off.datatype, 3, order); }, ErrorCode::CorruptHeader, "datatype"},
        {"bitpix 16 for uint8", [&](auto& b) { put<std::int16_t>(b, off.bitpix, 16, order); }, ErrorCode::CorruptHeader, "bitpix"},
        {"vox_offset too small", [&](auto& b) { put_vox(b, v2 ? 540 : 348); }, ErrorCode::CorruptHeader, "vox_offset"},
        {"vox_offset past end", [&](auto& b) { put_vox(b, 4096); }, ErrorCode::TruncatedData, "vox_offset"},
    };
    for (const auto& row : rows) {
        INFO("row: " << row.what << " version " << static_cast<int>(version) << " order " << static_cast<int>(order));
        NiftiSpec s;
        s.version = version;
        s.byte_order = order;
        s.dims = {4, 3, 2};
        auto bytes = test::build_nifti(s);
        row.poke(bytes);
        expect_error([&] { parse_single(bytes); }, row.code, row.needle);
    }
}

TEST_CASE("nifti header: rejects non-finite or fractional NIfTI-1 vox_offset", "[nifti][header]") {
    const float bad = GENERATE(std::nanf(""), INFINITY, 352.5f, -400.0f);
    INFO("vox_offset " << bad);
    NiftiSpec s;
    auto bytes = test::build_nifti(s);
    test::put<float>(bytes, 108, bad, ByteOrder::Little);
    expect_error([&] { parse_single(bytes); }, ErrorCode::CorruptHeader, "vox_offset");
}

TEST_CASE("nifti header: voxel count overflow and max_voxels give TooLarge", "[nifti][header]") {
    SECTION("NIfTI-2 dims whose product overflows 64 bits") {
        NiftiSpec s;
        s.version = Version::Nifti2;
        s.dims = {1, 1, 1};
        auto bytes = test::build_nifti(s);
        for (int i = 1; i <= 3; ++i) test::put<std::int64_t>(bytes, 16 + 8 * i, std::int64_t{1} << 40, ByteOrder::Little);
        expect_error([&] { parse_single(bytes); }, ErrorCode::TooLarge, "overflows");
    }
    SECTION("max_voxels") {
        NiftiSpec s;
        s.dims = {10, 10, 10};
        const auto bytes = test::build_nifti(s);
        HeaderLimits lim;
        lim.max_voxels = 999;
        expect_error([&] { parse_single(bytes, lim); }, ErrorCode::TooLarge, "voxels");
        lim.max_voxels = 1000;
        CHECK(parse_single(bytes, lim).voxel_count() == 1000);
    }
}

TEST_CASE("nifti header: short input and truncated data", "[nifti][header]") {
    NiftiSpec s;
    const auto bytes = test::build_nifti(s);
    expect_error([&] { Header::parse(std::span(bytes.data(), 3), Layout::Single, {}); }, ErrorCode::NotNifti, "short");
    expect_error([&] { Header::parse(std::span(bytes.data(), 200), Layout::Single, {}); }, ErrorCode::TruncatedData, "sizeof_hdr");
    expect_error([&] { Header::parse(bytes, Layout::Single, {}, bytes.size() - 1); }, ErrorCode::TruncatedData, "bytes");
}

TEST_CASE("nifti header: magic rules for pairs and Analyze 7.5", "[nifti][header]") {
    NiftiSpec s;
    s.pair = true;
    SECTION("ni1 pair") {
        const auto h = Header::parse(test::build_header(s), Layout::Pair, {});
        CHECK(h.version() == Version::Nifti1);
        CHECK(h.layout() == Layout::Pair);
        CHECK(h.vox_offset() == 0);
    }
    SECTION("n+1 in a pair is rejected") {
        s.magic = std::string("n+1\0", 4);
        expect_error([&] { Header::parse(test::build_header(s), Layout::Pair, {}); }, ErrorCode::NotNifti, "magic");
    }
    SECTION("Analyze 7.5 (no magic) in a pair, never scaled, no qform") {
        s.version = Version::Analyze75;
        s.byte_order = ByteOrder::Big;
        const auto h = Header::parse(test::build_header(s), Layout::Pair, {});
        CHECK(h.version() == Version::Analyze75);
        CHECK(h.magic().empty());
        CHECK_FALSE(h.scaled());
        CHECK(h.qform_code() == 0);
    }
    SECTION("Analyze 7.5 in a single file is rejected") {
        s.version = Version::Analyze75;
        s.pair = false;
        expect_error([&] { parse_single(test::build_nifti(s)); }, ErrorCode::NotNifti, "magic");
    }
}

TEST_CASE("nifti header: scaling rules of the input rules", "[nifti][header]") {
    auto [slope, inter, scaled, eff_slope, eff_inter] = GENERATE(table<double, double, bool, double, double>({
        {0, 5, false, 1, 0},
        {NAN, 5, false, 1, 0},
        {INFINITY, 0, false, 1, 0},
        {2, NAN, true, 2, 0},
        {2, 3, true, 2, 3},
        {1, 0, false, 1, 0},     // identity, as nibabel writes integer images
        {1, NAN, false, 1, 0},
        {1, 5, true, 1, 5},
    }));
    INFO("slope " << slope << " inter " << inter);
    NiftiSpec s;
    s.scl_slope = slope;
    s.scl_inter = inter;
    const auto h = parse_single(test::build_nifti(s));
    CHECK(h.scaled() == scaled);
    CHECK(h.slope() == eff_slope);
    CHECK(h.inter() == eff_inter);
}

TEST_CASE("nifti header: descrip is not assumed NUL-terminated", "[nifti][header]") {
    NiftiSpec s;
    s.descrip = std::string(80, 'x');
    const auto h = parse_single(test::build_nifti(s));
    CHECK(h.description() == std::string(80, 'x'));
}

TEST_CASE("nifti header: affine follows sform, qform, then pixdim as nibabel", "[nifti][header]") {
    const Version version = GENERATE(Version::Nifti1, Version::Nifti2);
    NiftiSpec s;
    s.version = version;
    s.dims = {10, 20, 30};
    s.pixdim = {-1, 2, 3, 4, 1, 1, 1, 1};
    SECTION("sform") {
        s.sform_code = 2;
        s.qform_code = 1;
        s.srow = {{{1, 2, 3, 4}, {5, 6, 7, 8}, {9, 10, 11, 12}}};
        const auto a = parse_single(test::build_nifti(s)).affine();
        CHECK(a[0][3] == 4);
        CHECK(a[2][2] == 11);
        CHECK(a[3][3] == 1);
    }
    SECTION("qform: 180 degrees about z, qfac -1") {
        s.qform_code = 1;
        s.quatern = {0, 0, 1};
        s.qoffset = {7, 8, 9};
        const auto a = parse_single(test::build_nifti(s)).affine();
        CHECK(a[0][0] == Approx(-2));
        CHECK(a[1][1] == Approx(-3));
        CHECK(a[2][2] == Approx(-4));
        CHECK(a[0][1] == Approx(0).margin(1e-12));
        CHECK(a[0][3] == 7);
        CHECK(a[2][3] == 9);
    }
    SECTION("neither: nibabel's base affine (x flipped, centred)") {
        const auto a = parse_single(test::build_nifti(s)).affine();
        CHECK(a[0][0] == -2);
        CHECK(a[1][1] == 3);
        CHECK(a[2][2] == 4);
        CHECK(a[0][3] == Approx(9.0));     // -((10-1)/2) * -2
        CHECK(a[1][3] == Approx(-28.5));   // -((20-1)/2) * 3
        CHECK(a[2][3] == Approx(-58.0));   // -((30-1)/2) * 4
    }
}

TEST_CASE("nifti header: edits patch raw bytes in the header's own order", "[nifti][header]") {
    auto [version, order] = GENERATE(table<Version, ByteOrder>({
        {Version::Nifti1, ByteOrder::Little},
        {Version::Nifti1, ByteOrder::Big},
        {Version::Nifti2, ByteOrder::Little},
        {Version::Nifti2, ByteOrder::Big},
    }));
    INFO("version " << static_cast<int>(version) << " order " << static_cast<int>(order));
    NiftiSpec s;
    s.version = version;
    s.byte_order = order;
    s.dims = {10, 20, 30};
    s.datatype = 512;
    s.qform_code = 1;
    s.sform_code = 1;
    s.descrip = "keep me";
    Header h = parse_single(test::build_nifti(s));
    h.set_dim(2, 7);
    h.set_datatype(*find_datatype(2));
    h.set_scaling(1, 0);
    h.set_qoffset({1.5, -2.5, 3.25});
    h.set_srow_offsets({4.5, 5.5, -6.5});
    h.set_vox_offset(static_cast<std::int64_t>(h.size()) + 36);
    CHECK(h.voxel_count() == 10 * 7 * 30);

    // The expected bytes, built independently.
    NiftiSpec e = s;
    e.dims = {10, 7, 30};
    e.datatype = 2;
    e.scl_slope = 1;
    e.qoffset = {1.5, -2.5, 3.25};
    e.srow[0][3] = 4.5;
    e.srow[1][3] = 5.5;
    e.srow[2][3] = -6.5;
    e.vox_offset = static_cast<double>(h.size() + 36);
    CHECK(h.bytes() == test::build_header(e));
    // And they parse back to the same fields.
    std::vector<std::uint8_t> file = h.bytes();
    file.resize(h.size() + 36 + h.data_bytes(), 0);
    const Header back = parse_single(file);
    CHECK(back.dim(2) == 7);
    CHECK(back.datatype().code == 2);
    CHECK(back.qoffset()[2] == 3.25);
    CHECK(back.srow()[2][3] == -6.5);
    CHECK(back.byte_order() == order);
}

TEST_CASE("nifti header: make_single_file turns pairs into single-file headers", "[nifti][header]") {
    SECTION("ni1 -> n+1") {
        NiftiSpec s;
        s.pair = true;
        s.qform_code = 1;
        Header h = Header::parse(test::build_header(s), Layout::Pair, {});
        h.make_single_file();
        CHECK(h.layout() == Layout::Single);
        CHECK(h.magic() == "n+1");
        CHECK(h.vox_offset() == 352);
        CHECK(h.qform_code() == 1);
    }
    SECTION("ni2 -> n+2") {
        NiftiSpec s;
        s.pair = true;
        s.version = Version::Nifti2;
        Header h = Header::parse(test::build_header(s), Layout::Pair, {});
        h.make_single_file();
        CHECK(h.magic() == "n+2");
        CHECK(h.vox_offset() == 544);
    }
    SECTION("Analyze -> NIfTI-1 with NIfTI-only fields cleared") {
        NiftiSpec s;
        s.pair = true;
        s.version = Version::Analyze75;
        auto bytes = test::build_header(s);
        std::memset(bytes.data() + 252, 'A', 92);   // orient, originator, ... smin
        test::put<float>(bytes, 112, 3.0f, ByteOrder::Little);   // funused1 (SPM scale)
        Header h = Header::parse(bytes, Layout::Pair, {});
        h.make_single_file();
        CHECK(h.version() == Version::Nifti1);
        CHECK(h.magic() == "n+1");
        CHECK_FALSE(h.scaled());
        std::vector<std::uint8_t> file = h.bytes();
        file.resize(352 + h.data_bytes(), 0);
        const Header back = parse_single(file);
        CHECK(back.qform_code() == 0);
        CHECK(back.sform_code() == 0);
        CHECK_FALSE(back.scaled());
    }
}

TEST_CASE("nifti datatype: table codes, sizes and label capability", "[nifti][header]") {
    auto [code, bytes, name, labels] = GENERATE(table<int, int, std::string, bool>({
        {2, 1, "uint8", true}, {4, 2, "int16", true}, {8, 4, "int32", true}, {16, 4, "float32", true},
        {32, 8, "complex64", false}, {64, 8, "float64", true}, {128, 3, "RGB", false},
        {256, 1, "int8", true}, {512, 2, "uint16", true}, {768, 4, "uint32", true},
        {1024, 8, "int64", true}, {1280, 8, "uint64", true}, {1536, 16, "float128", false},
        {1792, 16, "complex128", false}, {2048, 32, "complex256", false}, {2304, 4, "RGBA", false},
        {1, 0, "bool", false},
    }));
    INFO("code " << code);
    const DataType* t = find_datatype(code);
    REQUIRE(t);
    CHECK(t->bytes == bytes);
    CHECK(t->name == name);
    CHECK(t->can_hold_labels() == labels);
    CHECK(find_datatype(3) == nullptr);
    CHECK(find_datatype(0) == nullptr);
}
