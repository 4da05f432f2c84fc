// Dictionary: the shipped VISTA3D tables, sidecars and malformed files.
#include <functional>
#include <string>

#include "catch.hpp"
#include "error.hpp"
#include "labels/dictionary.hpp"
#include "nifti_builder.hpp"

using medimg::Error;
using medimg::ErrorCode;
using medimg::labels::Dictionary;
using medimg::labels::Rgb;
using medimg::test::TempDir;

namespace fs = std::filesystem;

namespace {

const fs::path kConf = fs::path(MEDIMG_SOURCE_DIR) / "conf";

void write_text(const fs::path& p, const std::string& text) {
    medimg::test::write_file(p, std::vector<std::uint8_t>(text.begin(), text.end()));
}

ErrorCode code_of(const std::function<void()>& f, std::string* what = nullptr) {
    try {
        f();
    } catch (const Error& e) {
        if (what) *what = e.what();
        return e.code();
    }
    FAIL("no medimg::Error was thrown");
    return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("dictionary: loads the shipped VISTA3D tables", "[labels][dictionary]") {
    const Dictionary d = Dictionary::load(kConf / "vista3d_label_dict.json",
                                          kConf / "vista3d_label_colors.json");
    CHECK(d.size() >= 132);
    CHECK(d.name_of(6) == "aorta");
    CHECK(d.find("AORTA") == 6);
    CHECK(d.find("left kidney") == 14);
    CHECK(d.name_of(100000) == "100000");
    CHECK(d.name_of(-1) == "-1");
    REQUIRE(d.color_of(1).has_value());
    CHECK(*d.color_of(1) == Rgb{34, 139, 34});
    CHECK_FALSE(d.color_of(100000).has_value());
    CHECK_FALSE(d.find("no such organ").has_value());
}

TEST_CASE("dictionary: ids above INT64_MAX have no name", "[labels][dictionary]") {
    Dictionary d;
    d.set(-1, "minus one", Rgb{1, 2, 3});   // UINT64_MAX truncated to int64 would be -1
    d.set(INT64_MAX, "top", Rgb{4, 5, 6});
    const medimg::labels::LabelId top = UINT64_MAX;
    CHECK(d.name_of(top) == "18446744073709551615");
    CHECK_FALSE(d.color_of(top).has_value());
    CHECK(d.name_of(top / 2 + 1) == "9223372036854775808");
    CHECK(d.name_of(INT64_MAX) == "top");
    CHECK(d.name_of(-1) == "minus one");
    CHECK(d.color_of(-1) == Rgb{1, 2, 3});
}

TEST_CASE("dictionary: either table may be left out", "[labels][dictionary]") {
    const Dictionary names = Dictionary::load(kConf / "vista3d_label_dict.json", {});
    CHECK(names.name_of(6) == "aorta");
    CHECK_FALSE(names.color_of(6).has_value());
    const Dictionary none = Dictionary::load({}, {});
    CHECK(none.size() == 0);
    CHECK(none.name_of(6) == "6");
}

TEST_CASE("dictionary: malformed tables are bad_parameter naming the file", "[labels][dictionary]") {
    TempDir dir;
    auto [content, is_colors] = GENERATE(table<std::string, bool>({
        {"{", false},                              // not JSON
        {"[1,2]", false},                          // not an object
        {"{\"aorta\": \"six\"}", false},           // id not an integer
        {"{\"aorta\": 6.5}", false},               // id not an integer
        {"{}", true},                              // colours: not an array
        {"[{\"name\":\"x\"}]", true},              // no id
        {"[{\"id\":1,\"color\":[1,2]}]", true},    // two components
        {"[{\"id\":1,\"color\":[1,2,256]}]", true},// out of range
        {"[{\"id\":1,\"name\":5}]", true},         // name not a string
        {"[5]", true},                             // entry not an object
    }));
    INFO(content);
    const fs::path file = dir / "table.json";
    write_text(file, content);
    std::string what;
    const auto code = code_of([&] {
        if (is_colors) Dictionary::load({}, file);
        else Dictionary::load(file, {});
    }, &what);
    CHECK(code == ErrorCode::BadParameter);
    CHECK(what.find(file.string()) != std::string::npos);
}

TEST_CASE("dictionary: a missing table is not_found", "[labels][dictionary]") {
    TempDir dir;
    CHECK(code_of([&] { Dictionary::load(dir / "nope.json", {}); }) == ErrorCode::NotFound);
}

TEST_CASE("dictionary: JSON sidecar overrides names and colours", "[labels][dictionary]") {
    TempDir dir;
    const Dictionary base = Dictionary::load(kConf / "vista3d_label_dict.json",
                                             kConf / "vista3d_label_colors.json");
    const fs::path image = dir / "seg.nii.gz";
    SECTION("names only") {
        write_text(dir / "seg.nii.gz.labels.json", R"({"6":"my aorta","500":"tumour"})");
        const Dictionary d = base.with_sidecar_for(image);
        CHECK(d.name_of(6) == "my aorta");
        CHECK(d.color_of(6) == base.color_of(6));   // colour kept
        CHECK(d.name_of(500) == "tumour");
        CHECK_FALSE(d.color_of(500).has_value());
        CHECK(d.name_of(1) == "liver");
        CHECK(d.find("My Aorta") == 6);
    }
    SECTION("objects with colours") {
        write_text(dir / "seg.nii.gz.labels.json",
                   R"({"6":{"name":"aorta2","color":[1,2,3]},"7":{"color":[4,5,6]}})");
        const Dictionary d = base.with_sidecar_for(image);
        CHECK(d.name_of(6) == "aorta2");
        CHECK(d.color_of(6) == Rgb{1, 2, 3});
        CHECK(d.name_of(7) == base.name_of(7));
        CHECK(d.color_of(7) == Rgb{4, 5, 6});
    }
    SECTION("no sidecar: unchanged") {
        const Dictionary d = base.with_sidecar_for(image);
        CHECK(d.name_of(6) == "aorta");
        CHECK(d.size() == base.size());
    }
    SECTION("malformed sidecars") {
        auto content = GENERATE(as<std::string>{}, "{", "[]", R"({"six":"aorta"})",
                                R"({"6":5})", R"({"6":{}})", R"({"6":{"color":[1,2,3,4]}})",
                                R"({"6":{"name":7}})");
        INFO(content);
        write_text(dir / "seg.nii.gz.labels.json", content);
        std::string what;
        CHECK(code_of([&] { base.with_sidecar_for(image); }, &what) == ErrorCode::BadParameter);
        CHECK(what.find("seg.nii.gz.labels.json") != std::string::npos);
    }
}

TEST_CASE("dictionary: a sidecar is bounded in size, keys and depth", "[labels][dictionary]") {
    TempDir dir;
    const Dictionary base;
    const fs::path image = dir / "seg.nii.gz";
    const fs::path sidecar = dir / "seg.nii.gz.labels.json";
    auto refusal = [&](const std::string& text) {
        write_text(sidecar, text);
        std::string what;
        CHECK(code_of([&] { base.with_sidecar_for(image); }, &what) == ErrorCode::BadParameter);
        CHECK(what.find("seg.nii.gz.labels.json") != std::string::npos);
        return what;
    };
    // The short form at the key limit: two tokens per label, plus the object.
    auto labels = [](std::size_t n) {
        std::string t = "{";
        for (std::size_t i = 0; i < n; ++i) t += (i ? ",\"" : "\"") + std::to_string(i) + "\":\"a\"";
        return t + "}";
    };
    SECTION("as many labels as the limit allows are read") {
        const std::size_t n = (Dictionary::kMaxSidecarTokens - 2) / 2;
        const std::string text = labels(n);
        REQUIRE(text.size() <= Dictionary::kMaxSidecarBytes);
        write_text(sidecar, text);
        const Dictionary d = base.with_sidecar_for(image);
        CHECK(d.size() == n);
        CHECK(d.name_of(static_cast<std::int64_t>(n - 1)) == "a");
    }
    SECTION("one more is refused") {
        const std::string why = refusal(labels(Dictionary::kMaxSidecarTokens / 2));
        CHECK(why.find("keys and values") != std::string::npos);
    }
    SECTION("nesting past the object form is refused") {
        CHECK(refusal(R"({"6":{"color":[[1],2,3]}})").find("nested deeper") != std::string::npos);
        CHECK(refusal(std::string(100000, '[') + std::string(100000, ']')).find("nested deeper") !=
              std::string::npos);
    }
    SECTION("larger than 256 KiB is refused before it is read") {
        write_text(sidecar, "{\"6\":\"" + std::string(Dictionary::kMaxSidecarBytes, 'a') + "\"}");
        std::string what;
        CHECK(code_of([&] { base.with_sidecar_for(image); }, &what) == ErrorCode::BadParameter);
        CHECK(what.find("larger than 256 KiB") != std::string::npos);
    }
}

TEST_CASE("dictionary: ITK-SNAP label description sidecar", "[labels][dictionary]") {
    TempDir dir;
    const Dictionary base = Dictionary::load(kConf / "vista3d_label_dict.json",
                                             kConf / "vista3d_label_colors.json");
    const std::string itk =
        "################################################\n"
        "# ITK-SnAP Label Description File\n"
        "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n"
        "################################################\n"
        "    0     0    0    0        0  0  0    \"Clear Label\"\n"
        "    6   255    0    0        1  1  1    \"Aorta (contrast)\"\n"
        "\n"
        "  300    10   20   30      0.5  1  0    \"left \\\"x\\\" kidney\"\r\n";
    for (const char* name : {"seg.nii.gz", "seg.nii", "seg.hdr", "seg.img.gz"}) {
        INFO(name);
        write_text(dir / "seg.txt", itk);
        const Dictionary d = base.with_sidecar_for(dir / name);
        CHECK(d.name_of(6) == "Aorta (contrast)");
        CHECK(d.color_of(6) == Rgb{255, 0, 0});
        CHECK(d.color_of(300) == Rgb{10, 20, 30});
        CHECK(d.name_of(1) == "liver");
    }
    SECTION("malformed lines") {
        auto line = GENERATE(as<std::string>{},
            "6 255 0 0 1 1 1 aorta",            // label not quoted
            "6 255 0 1 1 1 \"aorta\"",          // a field missing
            "x 255 0 0 1 1 1 \"aorta\"",        // index not an integer
            "6 256 0 0 1 1 1 \"aorta\"",        // colour out of range
            "6 255 0 0 z 1 1 \"aorta\"",        // alpha not a number
            "6 255 0 0 1 1 1 1 \"aorta\"",      // an extra field
            "6 255 0 0 1 1 1 \"aorta\" junk");  // text after the label
        INFO(line);
        write_text(dir / "seg.txt", "# header\n" + line + "\n");
        std::string what;
        CHECK(code_of([&] { base.with_sidecar_for(dir / "seg.nii.gz"); }, &what) ==
              ErrorCode::BadParameter);
        CHECK(what.find("seg.txt") != std::string::npos);
    }
}

TEST_CASE("dictionary: the JSON sidecar wins over the ITK-SNAP file", "[labels][dictionary]") {
    TempDir dir;
    write_text(dir / "seg.txt", "6 1 2 3 1 1 1 \"from txt\"\n");
    write_text(dir / "seg.nii.gz.labels.json", R"({"6":"from json"})");
    const Dictionary d = Dictionary().with_sidecar_for(dir / "seg.nii.gz");
    CHECK(d.name_of(6) == "from json");
}
