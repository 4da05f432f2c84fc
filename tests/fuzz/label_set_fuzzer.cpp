// Fuzzes the label_ids / labels query parsers.
#include <string_view>

#include "fuzz_support.hpp"
#include "labels/dictionary.hpp"
#include "labels/label_set.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace medimg;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    fuzz::expect_only_medimg_errors([&] {
        const auto set = labels::LabelSet::parse(text, 1000);
        if (set.count() > 1000) __builtin_trap();   // the limit must hold
        // The canonical form must parse back to the same set.
        const auto again = labels::LabelSet::parse(set.canonical(), 1000);
        if (again.canonical() != set.canonical()) __builtin_trap();
    });
    fuzz::expect_only_medimg_errors([&] {
        labels::Dictionary dict;
        dict.set(6, "aorta", labels::Rgb{255, 0, 0});
        dict.set(1, "liver", std::nullopt);
        dict.set(14, "left kidney", std::nullopt);
        (void)labels::LabelSet::parse_names(text, dict, 1000);
    });
    return 0;
}
