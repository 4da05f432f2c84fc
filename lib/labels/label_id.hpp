// A label id: any value a signed or unsigned integer voxel up to 64 bits can
// hold, so every id in [INT64_MIN, UINT64_MAX] (docs/ARCHITECTURE.md), held exactly
// in a 128-bit integer so that ids order and compare as plain numbers.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

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

// The text without spaces and tabs (the query grammars ignore them).
inline std::string without_blanks(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text)
        if (c != ' ' && c != '\t') out.push_back(c);
    return out;
}

// An item quoted for an error message, shortened so that a huge query cannot
// produce a huge message.
inline std::string quoted_item(std::string_view item) {
    constexpr std::size_t kMax = 40;
    if (item.size() > kMax) return "\"" + std::string(item.substr(0, kMax)) + "...\"";
    return "\"" + std::string(item) + "\"";
}

// An id or an inclusive range "a-b" of ids ("-5--3": a range separator is a
// '-' that follows a digit; a leading '-' or one after the separator is a
// sign); nullopt unless both ends parse. a > b is returned as is.
inline std::optional<std::pair<LabelId, LabelId>> parse_label_range(std::string_view item) noexcept {
    std::size_t sep = std::string_view::npos;
    for (std::size_t i = 1; i < item.size(); ++i)
        if (item[i] == '-' && item[i - 1] >= '0' && item[i - 1] <= '9') {
            sep = i;
            break;
        }
    const auto a = parse_label_id(item.substr(0, sep));
    const auto b = sep == std::string_view::npos ? a : parse_label_id(item.substr(sep + 1));
    if (!a || !b) return std::nullopt;
    return std::pair{*a, *b};
}

}  // namespace medimg::labels
