// Checks on the medimg::Error a piece of code throws, for the unit tests.
#pragma once

#include <functional>
#include <string>

#include "catch.hpp"
#include "error.hpp"

namespace medimg::test {

// The code of the medimg::Error that `f` throws; fails the test when it
// throws none.
inline ErrorCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    FAIL("no medimg::Error was thrown");
    return ErrorCode::Internal;
}

// Runs `f`, expecting an Error with `code` whose message contains `needle`.
template <typename F>
void expect_error(F&& f, ErrorCode code, const std::string& needle = "") {
    try {
        f();
        FAIL("no error thrown" << (needle.empty() ? "" : "; expected one naming " + needle));
    } catch (const Error& e) {
        INFO("message: " << e.what());
        CHECK(e.code() == code);
        CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
}

}  // namespace medimg::test
