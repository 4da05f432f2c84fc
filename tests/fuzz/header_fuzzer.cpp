// libFuzzer entry of the header target (targets.hpp; scripts/fuzz.sh).
#include "targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return medimg::fuzz::libfuzzer_entry<medimg::fuzz::header_target>(data, size);
}
