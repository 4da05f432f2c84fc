// The one UTF-8 rule (utf8.hpp): a table of byte strings on both sides of
// each clause of RFC 3629, and its two users (request paths, label names).
#include <string>

#include "catch.hpp"
#include "error.hpp"
#include "fs/data_root.hpp"
#include "labels/dictionary.hpp"
#include "nifti_builder.hpp"
#include "utf8.hpp"

TEST_CASE("utf8: strict RFC 3629 validation", "[utf8]") {
    struct Row {
        std::string bytes;
        bool valid;
        const char* why;
    };
    const Row row = GENERATE(values<Row>({
        {"", true, "empty"},
        {"plain ASCII", true, "ASCII"},
        {std::string("a\0b", 3), true, "NUL is a character"},
        {"\x7f", true, "DEL, the last one-byte form"},
        {"\xc2\x80", true, "U+0080, the first two-byte form"},
        {"caf\xc3\xa9", true, "U+00E9"},
        {"\xdf\xbf", true, "U+07FF, the last two-byte form"},
        {"\xe0\xa0\x80", true, "U+0800, the first three-byte form"},
        {"\xed\x9f\xbf", true, "U+D7FF, just below the surrogates"},
        {"\xee\x80\x80", true, "U+E000, just above the surrogates"},
        {"\xef\xbf\xbf", true, "U+FFFF"},
        {"\xf0\x90\x80\x80", true, "U+10000, the first four-byte form"},
        {"\xf4\x8f\xbf\xbf", true, "U+10FFFF, the last code point"},
        {"\xe8\x82\x9d\xe8\x87\x93", true, "two CJK characters"},
        {"\x80", false, "a lone continuation byte"},
        {"\xbf", false, "a lone continuation byte"},
        {"\xc0\x80", false, "overlong NUL"},
        {"\xc1\xbf", false, "overlong U+007F"},
        {"\xc0\xaf", false, "overlong '/'"},
        {"\xe0\x80\xaf", false, "three-byte overlong '/'"},
        {"\xe0\x9f\xbf", false, "overlong U+07FF"},
        {"\xf0\x80\x80\xaf", false, "four-byte overlong '/'"},
        {"\xf0\x8f\xbf\xbf", false, "overlong U+FFFF"},
        {"\xed\xa0\x80", false, "U+D800, a high surrogate"},
        {"\xed\xbf\xbf", false, "U+DFFF, a low surrogate"},
        {"\xed\xa0\xbd\xed\xb8\x80", false, "a surrogate pair spelt in UTF-8 (CESU-8)"},
        {"\xf4\x90\x80\x80", false, "U+110000, past the last code point"},
        {"\xf5\x80\x80\x80", false, "F5, never a lead byte"},
        {"\xff", false, "FF, never a lead byte"},
        {"\xc3", false, "a two-byte form cut short"},
        {"\xe2\x82", false, "a three-byte form cut short"},
        {"\xf0\x9f\x98", false, "a four-byte form cut short"},
        {"\xc3\x28", false, "a continuation byte that is not one"},
        {"\xe2\x28\xa1", false, "a continuation byte that is not one"},
        {"ok\xc3\xa9\x80", false, "a stray continuation after a valid character"},
    }));
    INFO(row.why);
    CHECK(medimg::valid_utf8(row.bytes) == row.valid);
}

TEST_CASE("utf8: request paths follow the same rule", "[utf8][data_root]") {
    CHECK(medimg::fs::percent_decode("PA1/caf%C3%A9.nii") == "PA1/caf\xc3\xa9.nii");
    for (const char* bad : {"PA1/%C0%AF.nii", "PA1/%ED%A0%80.nii", "PA1/%F4%90%80%80.nii", "PA1/%C3"}) {
        INFO(bad);
        try {
            (void)medimg::fs::percent_decode(bad);
            FAIL("accepted");
        } catch (const medimg::Error& e) {
            CHECK(e.code() == medimg::ErrorCode::BadPath);
        }
    }
}

TEST_CASE("utf8: label names follow the same rule, without control characters", "[utf8][labels][dictionary]") {
    medimg::test::TempDir dir;
    auto load = [&](const std::string& label) {
        const std::string line = "6 255 0 0 1 1 1 \"" + label + "\"\n";
        medimg::test::write_file(dir / "seg.txt", std::vector<std::uint8_t>(line.begin(), line.end()));
        return medimg::labels::Dictionary{}.with_sidecar_for(dir / "seg.nii.gz");
    };
    CHECK(load("caf\xc3\xa9\tcr\xc3\xa8me").name_of(6) == "caf\xc3\xa9\tcr\xc3\xa8me");
    for (const char* bad : {"over\xc0\xaflong", "sur\xed\xa0\x80rogate", "big\xf4\x90\x80\x80", "bell\x07"}) {
        INFO(bad);
        try {
            (void)load(bad);
            FAIL("accepted");
        } catch (const medimg::Error& e) {
            CHECK(e.code() == medimg::ErrorCode::BadParameter);
            CHECK(std::string(e.what()).find("not UTF-8 text") != std::string::npos);
        }
    }
}
