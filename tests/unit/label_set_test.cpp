// LabelSet: the label_ids grammar, names, normalisation and limits.
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>

#include "catch.hpp"
#include "error.hpp"
#include "error_checks.hpp"
#include "labels/dictionary.hpp"
#include "labels/label_set.hpp"

using medimg::Error;
using medimg::ErrorCode;
using medimg::labels::Dictionary;
using medimg::labels::LabelSet;
using medimg::test::code_of;

TEST_CASE("label set: parses ids and ranges into canonical ranges", "[labels][label_set]") {
    auto [text, canonical, count] = GENERATE(table<std::string, std::string, std::uint64_t>({
        {"", "", 0},
        {"   ", "", 0},
        {"6", "6", 1},
        {"1,5,10-12", "1,5,10-12", 5},
        {" 1 , 5 , 10 - 12 ", "1,5,10-12", 5},
        {"12,10-11,5,1,5,5", "1,5,10-12", 5},
        {"1-3,2-6,7", "1-7", 7},
        {"3,4", "3-4", 2},
        {"-3", "-3", 1},
        {"-5--3", "-5--3", 3},
        {"-2-2", "-2-2", 5},
        {"0", "0", 1},
        {"9223372036854775807", "9223372036854775807", 1},
        {"-9223372036854775808", "-9223372036854775808", 1},
        {"9223372036854775806-9223372036854775807,1", "1,9223372036854775806-9223372036854775807", 3},
        // uint64 values above INT64_MAX are ids too; the range spans the boundary exactly.
        {"18446744073709551615", "18446744073709551615", 1},
        {"9223372036854775808,9223372036854775807", "9223372036854775807-9223372036854775808", 2},
        {"18446744073709551610-18446744073709551615,5", "5,18446744073709551610-18446744073709551615", 7},
        {"5-5", "5", 1},
    }));
    INFO("label_ids=\"" << text << "\"");
    const LabelSet set = LabelSet::parse(text, 1000);
    CHECK(set.canonical() == canonical);
    CHECK(set.count() == count);
    CHECK(set.empty() == (count == 0));
}

TEST_CASE("label set: rejects malformed label_ids with bad_label_ids", "[labels][label_set]") {
    auto text = GENERATE(as<std::string>{},
        "1,,2",       // empty item between commas
        ",1",         // empty first item
        "1,",         // empty last item
        ",",          // nothing but a separator
        "a",          // not a number
        "1,a",        // second item not a number
        "5-3",        // reversed range
        "1-",         // range without end
        "-",          // sign alone
        "--3",        // two signs
        "+3",         // explicit plus is not in the grammar
        "1.5",        // not an integer
        "1e3",        // exponent
        "3x",         // trailing garbage
        "0x10",       // hex
        "18446744073709551616",   // uint64 overflow
        "-9223372036854775809",   // int64 underflow
        "1-99999999999999999999", // overflow in a range end
        "-0-18446744073709551616", // overflow in a range end above INT64_MAX
        "1;2",        // wrong separator
        "1-2-3");     // two dashes
    INFO("label_ids=\"" << text << "\"");
    CHECK(code_of([&] { LabelSet::parse(text, 1000); }) == ErrorCode::BadLabelIds);
}

TEST_CASE("label set: error names the bad item", "[labels][label_set]") {
    try {
        LabelSet::parse("1,,2", 10);
        FAIL("accepted 1,,2");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("item 2") != std::string::npos);
    }
    try {
        LabelSet::parse("1,abc", 10);
        FAIL("accepted 1,abc");
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("\"abc\"") != std::string::npos);
    }
}

TEST_CASE("label set: more ids than the limit is too_many_label_ids", "[labels][label_set]") {
    CHECK(LabelSet::parse("1-10", 10).count() == 10);
    CHECK(code_of([] { LabelSet::parse("1-11", 10); }) == ErrorCode::TooManyLabels);
    CHECK(code_of([] { LabelSet::parse("1,2,3", 2); }) == ErrorCode::TooManyLabels);
    // Duplicates count once.
    CHECK(LabelSet::parse("1,1,1,1", 1).count() == 1);
    // The whole int64 range does not overflow count().
    CHECK(code_of([] { LabelSet::parse("-9223372036854775808-9223372036854775807", 1000); }) ==
          ErrorCode::TooManyLabels);
    CHECK(LabelSet::parse("-9223372036854775808-9223372036854775807", UINT64_MAX).count() ==
          UINT64_MAX);
    CHECK(LabelSet::parse("0-9223372036854775807", UINT64_MAX).count() == 9223372036854775808ull);
    // Every id, INT64_MIN to UINT64_MAX (2^65 - 1 of them), saturates.
    CHECK(LabelSet::parse("-9223372036854775808-18446744073709551615", UINT64_MAX).count() ==
          UINT64_MAX);
    CHECK(LabelSet::parse("0-18446744073709551614", UINT64_MAX).count() == UINT64_MAX);
    CHECK(code_of([] { LabelSet::parse("0-18446744073709551615", UINT64_MAX - 1); }) ==
          ErrorCode::TooManyLabels);
}

TEST_CASE("label set: an id out of range names the limits", "[labels][label_set]") {
    medimg::test::expect_error([] { LabelSet::parse("1,18446744073709551616", 10); },
                               ErrorCode::BadLabelIds,
                               "item 2 \"18446744073709551616\" is not an integer from "
                               "-9223372036854775808 to 18446744073709551615");
}

TEST_CASE("label set: contains, from_ids and merge", "[labels][label_set]") {
    const LabelSet set = LabelSet::parse("1,5,10-12,-3", 100);
    for (std::int64_t id : std::initializer_list<std::int64_t>{-3, 1, 5, 10, 11, 12}) {
        INFO(id);
        CHECK(set.contains(id));
    }
    for (std::int64_t id : std::initializer_list<std::int64_t>{-4, -2, 0, 2, 4, 6, 9, 13, INT64_MAX, INT64_MIN}) {
        INFO(id);
        CHECK_FALSE(set.contains(id));
    }
    // Above INT64_MAX: exact, no wrap to negative ids.
    const medimg::labels::LabelId top = UINT64_MAX;
    const LabelSet high =
        LabelSet::parse("-1,9223372036854775808-18446744073709551614", UINT64_MAX);
    CHECK(high.contains(-1));
    CHECK(high.contains(top - 1));
    CHECK(high.contains(top / 2 + 1));
    CHECK_FALSE(high.contains(top));
    CHECK_FALSE(high.contains(INT64_MAX));
    CHECK_FALSE(LabelSet::parse("-1", 1).contains(top));
    CHECK(LabelSet::from_ids({top, top - 1, 5}).canonical() ==
          "5,18446744073709551614-18446744073709551615");
    LabelSet a = LabelSet::from_ids({3, 1, 2, 7});
    CHECK(a.canonical() == "1-3,7");
    a.merge(LabelSet::from_ids({4, 8}));
    CHECK(a.canonical() == "1-4,7-8");
    CHECK(LabelSet().empty());
    CHECK(LabelSet().canonical().empty());
}

TEST_CASE("label set: names are matched case-insensitively", "[labels][label_set]") {
    Dictionary dict;
    dict.set(6, "aorta", std::nullopt);
    dict.set(1, "liver", std::nullopt);
    dict.set(14, "left kidney", std::nullopt);
    CHECK(LabelSet::parse_names("aorta,liver", dict, 10).canonical() == "1,6");
    CHECK(LabelSet::parse_names(" Aorta , LIVER ", dict, 10).canonical() == "1,6");
    CHECK(LabelSet::parse_names("left kidney", dict, 10).canonical() == "14");
    CHECK(LabelSet::parse_names("", dict, 10).empty());
    CHECK(code_of([&] { LabelSet::parse_names("leftkidney", dict, 10); }) == ErrorCode::UnknownLabel);
    CHECK(code_of([&] { LabelSet::parse_names("aorta,spleen", dict, 10); }) == ErrorCode::UnknownLabel);
    CHECK(code_of([&] { LabelSet::parse_names("aorta,,liver", dict, 10); }) == ErrorCode::BadLabelIds);
    CHECK(code_of([&] { LabelSet::parse_names("aorta,liver", dict, 1); }) == ErrorCode::TooManyLabels);
    try {
        LabelSet::parse_names("aorta,spleen", dict, 10);
    } catch (const Error& e) {
        CHECK(std::string(e.what()).find("spleen") != std::string::npos);
    }
}
