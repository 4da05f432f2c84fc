// Fuzzes the label_ids / labels / map query parsers.
#include <string_view>

#include "fuzz_support.hpp"
#include "labels/dictionary.hpp"
#include "labels/label_map.hpp"
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
        const auto map = labels::LabelMap::parse(text, 1000);
        if (map.sources().count() > 1000) __builtin_trap();   // the limit must hold
        // Sorted, disjoint rules; the canonical form parses back to the same map.
        const auto& r = map.rules();
        for (std::size_t i = 0; i < r.size(); ++i) {
            if (r[i].first > r[i].last) __builtin_trap();
            if (i > 0 && r[i].first <= r[i - 1].last) __builtin_trap();
            if (map.find(r[i].first) != r[i].to || map.find(r[i].last) != r[i].to) __builtin_trap();
        }
        if (labels::LabelMap::parse(map.canonical(), 1000).canonical() != map.canonical())
            __builtin_trap();
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
