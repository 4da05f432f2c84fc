// medimg::Error: the one exception type of the library, and the table that
// gives every error code its HTTP status, stable machine id and CLI exit code.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace medimg {

// X(name, http_status, machine_id, cli_exit_code)
// Exit codes (man/medimg.1): 2 usage error, 3 invalid or corrupt input file,
// 1 any other failure.
#define MEDIMG_ERROR_CODES(X)                                               \
    X(BadLabelIds, 400, "bad_label_ids", 2)                                 \
    X(UnknownLabel, 400, "unknown_label", 2)                                \
    X(BadParameter, 400, "bad_parameter", 2)                                \
    X(BadPath, 400, "bad_path", 2)                                          \
    X(Forbidden, 403, "forbidden", 1)                                       \
    X(NotFound, 404, "not_found", 1)                                        \
    X(MethodNotAllowed, 405, "method_not_allowed", 2)                       \
    X(TooLarge, 413, "image_too_large", 3)                                  \
    X(TooManyLabels, 413, "too_many_label_ids", 2)                          \
    X(NotNifti, 415, "not_nifti", 3)                                        \
    X(UnsupportedDatatype, 415, "unsupported_datatype", 3)                  \
    X(NonIntegralLabels, 415, "non_integral_labels", 3)                     \
    X(CorruptHeader, 422, "corrupt_header", 3)                              \
    X(TruncatedData, 422, "truncated_data", 3)                              \
    X(BadGzip, 422, "bad_gzip", 3)                                          \
    X(GeometryMismatch, 422, "geometry_mismatch", 3)                        \
    X(Busy, 503, "busy", 1)                                                 \
    X(Timeout, 503, "timeout", 1)                                           \
    X(Io, 500, "io_error", 1)                                               \
    X(Internal, 500, "internal_error", 1)

enum class ErrorCode {
#define MEDIMG_X(name, status, id, exit) name,
    MEDIMG_ERROR_CODES(MEDIMG_X)
#undef MEDIMG_X
};

struct ErrorInfo {
    ErrorCode code;
    int http_status;
    std::string_view id;
    int exit_code;
};

// The table row for a code. Never throws.
const ErrorInfo& error_info(ErrorCode code) noexcept;

// The code whose machine id is `id`; ErrorCode::Internal if there is none.
ErrorCode error_code_from_id(std::string_view id) noexcept;

// Thrown by the library for every failure it can name. what() is a human
// sentence naming what was wrong (the "detail" of the JSON error body).
class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& detail)
        : std::runtime_error(detail), code_(code) {}

    ErrorCode code() const noexcept { return code_; }
    int http_status() const noexcept { return error_info(code_).http_status; }
    std::string_view id() const noexcept { return error_info(code_).id; }
    int exit_code() const noexcept { return error_info(code_).exit_code; }

private:
    ErrorCode code_;
};

}  // namespace medimg
