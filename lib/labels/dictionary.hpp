// Label names and colours: the VISTA3D tables shipped in conf/, overridden by
// a sidecar next to an image ({file}.labels.json or an ITK-SNAP label file).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "labels/label_id.hpp"

namespace medimg::labels {

using Rgb = std::array<std::uint8_t, 3>;

// A label sidecar already read: `name` shows it in messages (in the worker,
// its path relative to the data root), `text` is its content.
struct Sidecar {
    std::string name;
    std::string text;
};

class Dictionary {
public:
    Dictionary() = default;   // empty: every name is the id as a string

    // dict_json: {"name": id, ...}; colors_json: [{"id":..,"name":..,"color":[r,g,b]}, ...].
    // Either path may be empty (not loaded). Throws Error(BadParameter) naming
    // the file and what is wrong with it; Error(NotFound) for a missing file.
    static Dictionary load(const std::filesystem::path& dict_json,
                           const std::filesystem::path& colors_json);

    // The tables in conf/: larger files are refused (Error(BadParameter)).
    static constexpr std::uintmax_t kMaxFileBytes = 16u << 20;
    // A sidecar is read again by every request that names labels, and whoever
    // writes the data root writes it, so it is held to far less: 256 KiB,
    // and at most this many JSON keys and values (12,500 labels of the short
    // form; some 2,200 of the object form with a colour, more than the
    // largest atlases name), which bounds the memory and time parsing it
    // takes (docs/SECURITY.md). Error(BadParameter) past either.
    static constexpr std::uintmax_t kMaxSidecarBytes = 256u << 10;
    static constexpr std::size_t kMaxSidecarTokens = 25'000;
    // Error(BadParameter) naming sidecar `shown` when `size` is past
    // kMaxSidecarBytes.
    static void check_sidecar_size(const std::string& shown, std::uintmax_t size);

    // This dictionary overridden by an image's sidecar: the JSON one
    // ({"6":"aorta",...} or {"6":{"name":..,"color":[..]}}) when given, else
    // the ITK-SNAP label description. Either may be absent. A malformed
    // sidecar throws Error(BadParameter) naming it.
    Dictionary with_sidecars(const std::optional<Sidecar>& json, const std::optional<Sidecar>& itksnap) const;
    // As with_sidecars, reading the sidecars of `image` by name from its
    // folder: "{file}.labels.json" and "{stem}.txt" (nifti/file_name.hpp).
    Dictionary with_sidecar_for(const std::filesystem::path& image) const;

    void set(std::int64_t id, std::string name, std::optional<Rgb> color);

    // Case-insensitive (ASCII) name match, '_' and space equivalent
    // ("right_kidney" finds "right kidney").
    std::optional<std::int64_t> find(std::string_view name) const;
    // Up to n known names closest to `name` (edit distance on the folded
    // spelling; names containing it count as close), closest first.
    std::vector<std::string> closest(std::string_view name, std::size_t n) const;
    // The name, or the id as a string ("133") when unknown (always for ids
    // outside int64, which no dictionary names).
    std::string name_of(LabelId id) const;
    std::optional<Rgb> color_of(LabelId id) const;
    std::size_t size() const noexcept { return entries_.size(); }

private:
    struct Entry {
        std::string name;
        std::optional<Rgb> color;
    };
    const Entry* entry(LabelId id) const;
    std::map<std::int64_t, Entry> entries_;
};

}  // namespace medimg::labels
