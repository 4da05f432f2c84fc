// libFuzzer entry of the filter target (targets.hpp; scripts/fuzz.sh).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return medimg::fuzz::libfuzzer_entry<medimg::fuzz::filter_target>(data, size);
}
