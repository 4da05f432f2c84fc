// The error table, expanded from MEDIMG_ERROR_CODES.
#include "error.hpp"

#include <array>

namespace medimg {
namespace {

constexpr std::array kErrorTable = {
#define MEDIMG_X(name, status, id, exit) ErrorInfo{ErrorCode::name, status, id, exit},
    MEDIMG_ERROR_CODES(MEDIMG_X)
#undef MEDIMG_X
};

}  // namespace

const ErrorInfo& error_info(ErrorCode code) noexcept {
    return kErrorTable[static_cast<std::size_t>(code)];
}

ErrorCode error_code_from_id(std::string_view id) noexcept {
    for (const auto& row : kErrorTable)
        if (row.id == id) return row.code;
    return ErrorCode::Internal;
}

}  // namespace medimg
