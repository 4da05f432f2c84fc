// The one parser of filter options for every front end: the HTTP query of
// /filtered-scans (label_ids, labels, map, mode, crop, margin) and the options
// of `medimg filter` (--labels, --names, --map, --mode, --crop, --margin,
// --level).
// Same rules and limits for both (README.md, man/medimg.1); only the names in
// the messages differ. The canonical text of the result keys the results
// cache and the ETag.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "error.hpp"
#include "labels/filter.hpp"

namespace medimg::labels {

class Dictionary;

// The options by their query names: "label_ids", "labels", "map", "mode",
// "crop", "margin", "level". A front end answers each with its own spelling.
enum class FilterOption { LabelIds, Names, Map, Mode, Crop, Margin, Level };

// How one front end spells the options in its messages, and its own rules.
struct FilterOptionSyntax {
    std::string_view label_ids, names, map, mode, crop, margin, level;
    std::string_view missing_labels;   // the message when no ids, names or map are given
    ErrorCode missing_code;
    bool margin_needs_crop;            // margin without crop: refused (else ignored)
};

// /filtered-scans?label_ids=…&labels=…&mode=…&crop=…&margin=…
extern const FilterOptionSyntax kQuerySyntax;
// medimg filter --labels … --names … --mode … --crop --margin … --level …
extern const FilterOptionSyntax kCommandLineSyntax;

inline constexpr std::int64_t kMaxMargin = 1000;

struct FilterOptionSources {
    // The value of one option, nullopt when absent ("1" for a given flag
    // such as --crop).
    std::function<std::optional<std::string>(FilterOption)> value;
    // The dictionary names resolve against; called only when names are given.
    std::function<Dictionary()> dictionary;
    std::uint64_t max_label_ids = 100000;   // [limits] max_label_ids
    int default_level = 1;                  // [filter] gzip_level
};

// Throws Error(BadLabelIds / UnknownLabel / TooManyLabels / BadParameter)
// naming the option as `syntax` spells it.
FilterOptions parse_filter_options(const FilterOptionSources& sources,
                                   const FilterOptionSyntax& syntax);

// "ids=1,5;mode=keep;crop=0;margin=0;level=1", then ";map=6:1,28-32:2" when
// a map is given: equal options, equal text.
std::string canonical_filter_options(const FilterOptions& options);

}  // namespace medimg::labels
