// A label id: any value a signed or unsigned integer voxel up to 64 bits can
// hold, so every id in [INT64_MIN, UINT64_MAX] (DESIGN.md §10), held exactly
// in a 128-bit integer so that ids order and compare as plain numbers.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace medimg::labels {

__extension__ typedef __int128 LabelId;

inline constexpr LabelId kMinLabelId = INT64_MIN;
inline constexpr LabelId kMaxLabelId = UINT64_MAX;

constexpr bool fits_int64(LabelId id) noexcept { return id >= INT64_MIN && id <= INT64_MAX; }

// Decimal text: "-5", "18446744073709551615".
inline std::string to_string(LabelId id) {
    return fits_int64(id) ? std::to_string(static_cast<std::int64_t>(id))
                          : std::to_string(static_cast<std::uint64_t>(id));
}

// One whole decimal integer in [kMinLabelId, kMaxLabelId], optionally with a
// leading '-' (no '+', no spaces); nullopt otherwise, including overflow.
inline std::optional<LabelId> parse_label_id(std::string_view s) noexcept {
    const char* first = s.data();
    const char* last = s.data() + s.size();
    if (!s.empty() && s.front() == '-') {
        std::int64_t v = 0;
        auto [ptr, ec] = std::from_chars(first, last, v);
        if (ec != std::errc() || ptr != last) return std::nullopt;
        return v;
    }
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(first, last, v);
    if (ec != std::errc() || ptr != last) return std::nullopt;
    return v;
}

}  // namespace medimg::labels
