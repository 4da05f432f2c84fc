// Case-insensitive file-name suffixes (".nii.gz", ".HDR", ...), ASCII only.
#pragma once

#include <cstddef>
#include <string_view>

namespace medimg {

// True when `s` ends with `suffix`, ASCII letters compared case-insensitively.
inline bool ends_with_ci(std::string_view s, std::string_view suffix) {
    if (s.size() < suffix.size()) return false;
    s.remove_prefix(s.size() - suffix.size());
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    for (std::size_t i = 0; i < s.size(); ++i)
        if (lower(s[i]) != lower(suffix[i])) return false;
    return true;
}

}  // namespace medimg
