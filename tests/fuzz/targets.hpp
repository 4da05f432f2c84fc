// The fuzz targets' bodies, shared by the libFuzzer programs
// (tests/fuzz/*_fuzzer.cpp, run by scripts/fuzz.sh) and the regression cases
// that replay the kept reproducers of tests/data/fuzz/ (fuzz_regression_test
// in tests/unit/ and tests/fcgi/), so both go through the same entry point.
//
// A medimg::Error is the expected answer to bad input; anything else
// escaping (another exception, a crash, a sanitizer report) or a broken
// property (Violation) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include "error.hpp"
#include "nifti/byte_io.hpp"

namespace medimg::fuzz {

using Input = std::span<const std::uint8_t>;

// A property a target checks does not hold.
struct Violation : std::logic_error {
    using std::logic_error::logic_error;
};
inline void check(bool ok, const char* property) {
    if (!ok) throw Violation(property);
}

// "ok" when `body` returns, else the machine id of the medimg::Error it
// threw (error.hpp); other exceptions pass through.
template <typename F>
std::string step(F&& body) {
    try {
        body();
        return "ok";
    } catch (const Error& e) {
        return std::string(e.id());
    }
}

// Counts bytes and keeps none: output size must not cost memory.
class NullSink final : public nifti::ByteSink {
public:
    void write(const std::uint8_t*, std::size_t n) override { bytes += n; }
    std::uint64_t bytes = 0;
};

// Each target returns what the input did, step by step, as
// space-separated "step:outcome" words; README.md of tests/data/fuzz/
// lists them. They throw Violation when a property fails.
std::string header_target(Input in);      // first byte: layout; the rest: header bytes
std::string gzip_target(Input in);        // a gzip stream
std::string filter_target(Input in);      // 4 option bytes, then a file
std::string label_set_target(Input in);   // label_ids / map / names text
std::string path_target(Input in);        // a URL path beneath the data root
std::string router_target(Input in);      // "METHOD\nREQUEST_URI\nHEADER-VALUE" (tests/fuzz/router_target.cpp)

// libFuzzer's entry: runs `target`; a Violation is reported and aborts.
template <std::string (*Target)(Input)>
int libfuzzer_entry(const std::uint8_t* data, std::size_t size) {
    try {
        (void)Target(Input(data, size));
    } catch (const Violation& v) {
        __builtin_printf("property violated: %s\n", v.what());
        __builtin_trap();
    }
    return 0;
}

}  // namespace medimg::fuzz
