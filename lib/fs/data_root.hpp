// Resolving request paths inside the data root: no "..", no hidden entries,
// no symlink escapes (DESIGN.md §7).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace medimg::fs {

// Decodes %XX escapes once. Throws Error(BadPath) on a malformed escape, an
// encoded or raw NUL, or bytes that are not valid UTF-8 (overlong forms too).
std::string percent_decode(std::string_view text);

class DataRoot {
public:
    // Throws Error(NotFound) when `root` does not exist or is not a directory.
    explicit DataRoot(const std::filesystem::path& root);

    const std::filesystem::path& path() const noexcept { return root_; }

    // `relative` is an already-decoded "/"-separated path such as
    // "PA01/scans/all.nii.gz". Pure checks first: empty, absolute, backslash,
    // NUL or empty segments → Error(BadPath); a "." / ".." segment or one
    // starting with "." (hidden) → Error(Forbidden). Then the path is
    // resolved with symlinks; outside the root → Error(Forbidden); missing →
    // Error(NotFound); not a regular file (directory, FIFO, device) →
    // Error(NotFound); unreadable → Error(Forbidden).
    std::filesystem::path resolve_file(std::string_view relative) const;
    // Same rules, for an existing directory (a patient folder).
    std::filesystem::path resolve_dir(std::string_view relative) const;

private:
    std::filesystem::path root_;   // canonical
};

}  // namespace medimg::fs
