// An image opened beneath the data root together with every file that
// decides an answer about it (docs/SECURITY.md, "File access"): the pair
// partner and the label sidecars, each resolved from the folder the image
// was found in and opened by descriptor, and the identity of them all, from
// which cache keys and ETags derive.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fs/data_root.hpp"
#include "labels/dictionary.hpp"
#include "nifti/file_name.hpp"
#include "nifti/reader.hpp"

namespace medimg::source {

struct ImageSource {
    fs::Found image;
    nifti::ImageName name;                 // of the file found (links resolved)
    std::optional<fs::OpenFile> partner;   // the other file of a pair
    // Opened only when asked for (open_image's `sidecars`); each may be absent.
    std::optional<fs::OpenFile> json_sidecar, txt_sidecar;
    // Path relative to the root plus fstat of the image, its partner and
    // (when read) each sidecar or its absence: a changed, replaced or
    // recycled-inode file, or one moved to another patient, changes it.
    std::string identity;

    // The latest second in which a file of this answer changed: its data
    // (mtime) or its inode (ctime, which a rewrite that puts the mtime back,
    // or a rename into place, moves on and no writer can set back). The
    // image, its partner and the sidecars found.
    std::int64_t last_changed() const;

    // The descriptors for nifti::Reader::open.
    nifti::ImageFiles files() const;
    // `base` overridden by the sidecars, read through their descriptors
    // (larger than labels::Dictionary::kMaxSidecarBytes: Error(BadParameter)).
    labels::Dictionary dictionary(const labels::Dictionary& base) const;
};

// Opens `relative` (decoded, "/"-separated) beneath `root` by
// fs::DataRoot::open_file's rules; a pair's partner (nifti::partner_names)
// by the same rules from the image's folder, Error(NotFound) when there is
// none; with `sidecars`, "{file}.labels.json" and "{stem}.txt" likewise.
// Messages name paths relative to the root.
ImageSource open_image(const fs::DataRoot& root, std::string_view relative, bool sidecars);

}  // namespace medimg::source
