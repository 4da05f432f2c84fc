// UTF-8 validation, one rule for every text the library accepts (request
// paths and queries, label names): RFC 3629 UTF-8, strictly.
#pragma once

#include <string_view>

namespace medimg {

// True when `s` is well-formed UTF-8: no stray or missing continuation
// bytes, no overlong forms, no surrogates (U+D800..U+DFFF), nothing past
// U+10FFFF. The empty string and NUL bytes are valid.
bool valid_utf8(std::string_view s) noexcept;

}  // namespace medimg
