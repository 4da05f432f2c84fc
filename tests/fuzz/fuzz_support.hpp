// Shared by the fuzz targets: a medimg::Error is the expected answer to bad
// input; anything else escaping (another exception, a crash, a sanitizer
// report) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "error.hpp"
#include "nifti/byte_io.hpp"

namespace medimg::fuzz {

// Counts bytes and keeps none: output size must not cost memory.
class NullSink final : public nifti::ByteSink {
public:
    void write(const std::uint8_t*, std::size_t n) override { bytes += n; }
    std::uint64_t bytes = 0;
};

template <typename F>
void expect_only_medimg_errors(F&& body) {
    try {
        body();
    } catch (const medimg::Error&) {
        // A clear 4xx-style refusal: what bad input must produce.
    }
}

}  // namespace medimg::fuzz
