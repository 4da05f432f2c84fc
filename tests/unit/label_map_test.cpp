// LabelMap: the map= grammar, normalisation, overlap refusal and limits.
#include <cstdint>
#include <string>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "labels/label_map.hpp"

using medimg::ErrorCode;
using medimg::labels::LabelId;
using medimg::labels::LabelMap;
using medimg::test::code_of;
using medimg::test::expect_error;

TEST_CASE("label map: parses rules into canonical sorted rules", "[labels][label_map]") {
    auto [text, canonical, sources] = GENERATE(table<std::string, std::string, std::string>({
        {"", "", ""},
        {"  ", "", ""},
        {"6:1", "6:1", "6"},
        {"6:1,28-32:2", "6:1,28-32:2", "6,28-32"},
        {" 28 - 32 : 2 , 6 : 1 ", "6:1,28-32:2", "6,28-32"},
        // Same new id: overlapping and adjacent sources merge.
        {"1-5:9,3-8:9,9:9", "1-9:9", "1-9"},
        {"6:1,6:1", "6:1", "6"},
        // Adjacent sources with different new ids stay apart.
        {"1-5:1,6-9:2", "1-5:1,6-9:2", "1-9"},
        // Negative sources and new ids; ranges of negatives.
        {"-5--3:-1,0:-9223372036854775808", "-5--3:-1,0:-9223372036854775808", "-5--3,0"},
        {"18446744073709551615:9223372036854775807", "18446744073709551615:9223372036854775807",
         "18446744073709551615"},
        {"1:300", "1:300", "1"},
        {"5:5", "5:5", "5"},
    }));
    INFO("map=\"" << text << "\"");
    const LabelMap map = LabelMap::parse(text, 1000);
    CHECK(map.canonical() == canonical);
    CHECK(map.sources().canonical() == sources);
    CHECK(map.empty() == canonical.empty());
    // Parsing the canonical text gives the same map.
    CHECK(LabelMap::parse(map.canonical(), 1000).canonical() == canonical);
}

TEST_CASE("label map: find gives the rule's new id or nothing", "[labels][label_map]") {
    const LabelMap map = LabelMap::parse("28-32:2,6:1,-3:-30,18446744073709551615:7", 1000);
    CHECK(map.find(6) == 1);
    CHECK(map.find(28) == 2);
    CHECK(map.find(30) == 2);
    CHECK(map.find(32) == 2);
    CHECK(map.find(-3) == -30);
    CHECK(map.find(LabelId{UINT64_MAX}) == 7);
    CHECK_FALSE(map.find(5));
    CHECK_FALSE(map.find(7));
    CHECK_FALSE(map.find(27));
    CHECK_FALSE(map.find(33));
    CHECK_FALSE(map.find(-2));
    CHECK_FALSE(LabelMap{}.find(0));
}

TEST_CASE("label map: malformed rules are bad_parameter naming the rule", "[labels][label_map]") {
    auto [text, needle] = GENERATE(table<std::string, std::string>({
        {"6", "rule 1 \"6\" has no ':'"},                     // no new id
        {"6:1,7", "rule 2 \"7\" has no ':'"},
        {"6:1,,7:2", "rule 2 is empty"},                       // empty rule
        {",6:1", "rule 1 is empty"},
        {"6:1,", "rule 2 is empty"},
        {":1", "the source is not an integer"},                // empty source
        {"a:1", "the source is not an integer"},
        {"1.5:1", "the source is not an integer"},
        {"5-3:1", "the source range ends before it starts"},   // reversed
        {"18446744073709551616:1", "the source is not an integer"},   // beyond uint64
        {"6:", "the new id is not an integer"},                // empty new id
        {"6:x", "the new id is not an integer"},
        {"6:1-2", "the new id is not an integer"},             // a range as the new id
        {"6:+1", "the new id is not an integer"},
        {"6:9223372036854775808", "the new id is not an integer"},   // beyond int64
        {"6:1:2", "the source is not an integer"},
    }));
    INFO("map=\"" << text << "\"");
    expect_error([&] { LabelMap::parse(text, 1000); }, ErrorCode::BadParameter, needle);
}

TEST_CASE("label map: sources claimed by two new ids are refused", "[labels][label_map]") {
    auto [text, needle] = GENERATE(table<std::string, std::string>({
        {"6:1,6:2", "map rules 1 and 2 (\"6:1\", \"6:2\") both match id 6"},
        {"1-10:1,5:2", "map rules 1 and 2 (\"1-10:1\", \"5:2\") both match id 5"},
        {"5:2,1-10:1", "map rules 1 and 2 (\"1-10:1\", \"5:2\") both match id 5"},
        // The overlap is with an earlier, longer rule, not the neighbour.
        {"1-100:1,20:1,50-60:3", "both match id 50"},
        {"-5--1:0,-1:1", "both match id -1"},
    }));
    INFO("map=\"" << text << "\"");
    expect_error([&] { LabelMap::parse(text, 1000); }, ErrorCode::BadParameter, needle);
}

TEST_CASE("label map: sources count against the label id limit", "[labels][label_map]") {
    CHECK(LabelMap::parse("1-100:1", 100).canonical() == "1-100:1");
    CHECK(code_of([] { LabelMap::parse("1-101:1", 100); }) == ErrorCode::TooManyLabels);
    CHECK(code_of([] { LabelMap::parse("1-60:1,61-101:2", 100); }) == ErrorCode::TooManyLabels);
    // Merged duplicates count once.
    CHECK_NOTHROW(LabelMap::parse("1-60:1,1-60:1,1-60:1", 100));
    expect_error([] { LabelMap::parse("-9223372036854775808-18446744073709551615:1", 100000); },
                 ErrorCode::TooManyLabels, "more than 18446744073709551615");
}
