// Files opened beneath the data root by descriptor (docs/SECURITY.md, "File
// access"): a request path is resolved once, relative to a descriptor of the
// root, and every later read goes through the descriptor that resolution
// returned. No second lookup by name, so swapping a file or a folder for a
// link mid-request cannot reach outside the root or into a hidden entry.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/fd.hpp"

namespace medimg::fs {

// Decodes %XX escapes once. Throws Error(BadPath) on a malformed escape, an
// encoded or raw NUL, or bytes that are not valid UTF-8 (overlong forms too).
std::string percent_decode(std::string_view text);

// A regular file opened beneath the root.
struct OpenFile {
    std::shared_ptr<const UniqueFd> fd;   // shared: a request's readers use pread() on it
    struct stat st{};                     // fstat of fd
    std::string rel;                      // where it was found, links resolved, relative to the root

    // Identity of this version of the file: rel plus device, inode, size and
    // mtime and ctime in nanoseconds. A rewritten, replaced or recycled-inode
    // file gets another identity (ctime cannot be set back by its writer).
    std::string identity() const;
};

// A directory reached beneath the root, held open together with the way
// down to it, so names next to a file (a pair's partner, sidecars) are
// resolved from the same folder the file was found in.
class Folder {
public:
    const std::string& rel() const noexcept { return rel_; }   // "" for the root

private:
    friend class DataRoot;
    friend struct Walk;
    // levels_[0] is the root; a null fd is a level passed through by openat2
    // that is opened only if a link climbs back up through it.
    struct Level {
        std::shared_ptr<const UniqueFd> fd;
        std::string name;
    };
    std::vector<Level> levels_;
    std::string rel_;
};

struct Found {
    OpenFile file;
    Folder folder;   // the folder holding file (after links)
};

class DataRoot {
public:
    // Auto: openat2(RESOLVE_BENEATH) where the kernel has it, the
    // component-by-component walk otherwise and for paths through links.
    // Walk: always the walk (kernels without openat2; tests of the walk).
    enum class Resolution { Auto, Walk };

    // Throws Error(NotFound) when `root` does not exist or is not a directory.
    explicit DataRoot(const std::filesystem::path& root, Resolution how = Resolution::Auto);

    const std::filesystem::path& path() const noexcept { return root_; }   // canonical

    // `relative` is an already-decoded "/"-separated path such as
    // "PA01/scans/all.nii.gz". Pure checks first: empty, absolute, backslash,
    // NUL or empty segments → Error(BadPath); a "." / ".." segment or one
    // starting with "." (hidden) → Error(Forbidden). Then it is resolved
    // beneath the root: a link leaving the root, or any component (also one
    // reached through a link) that is hidden → Error(Forbidden); a link loop
    // → Error(Forbidden); missing → Error(NotFound); not a regular file
    // (directory, FIFO, socket, device) → Error(NotFound), found without
    // blocking; unreadable → Error(Forbidden). Messages name `relative`,
    // never an absolute path.
    Found open_file(std::string_view relative) const;

    // `name` (one path segment) in `folder`, by the same rules; links are
    // followed beneath the root. nullopt when no entry of that name exists.
    std::optional<Found> open_in(const Folder& folder, std::string_view name) const;

    // The directory at `relative` (a patient folder), by the same rules.
    Folder open_dir(std::string_view relative) const;

    // True when `path` (absolute, as a web server names the data root) is
    // this root's directory: the same device and inode, so another spelling
    // of it (a link to it) counts as the same folder. False for a missing,
    // unreadable or other folder. Costs two stat() calls.
    bool is_same_folder(const std::string& path) const noexcept;

private:
    friend struct Walk;
    std::filesystem::path root_;   // canonical
    Resolution how_;
    mutable std::atomic<bool> openat2_unavailable_{false};

    UniqueFd open_root() const;
};

}  // namespace medimg::fs
