// The set of label ids a request or command selects: "1,5,10-12", or names
// from the label dictionary ("aorta,liver").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "labels/label_id.hpp"

namespace medimg::labels {

class Dictionary;

class LabelSet {
public:
    LabelSet() = default;   // the empty set

    // Comma-separated integers (optionally negative) and inclusive ranges
    // "a-b" (a <= b), each in [INT64_MIN, UINT64_MAX]; spaces ignored;
    // duplicates and overlaps allowed.
    // An empty string is the empty set. Throws Error(BadLabelIds) naming the
    // bad item, Error(TooManyLabels) when the set holds more than max_ids ids.
    static LabelSet parse(std::string_view text, std::uint64_t max_ids);
    // Comma-separated names, matched case-insensitively against `dict`.
    // Throws Error(UnknownLabel) naming the name, Error(TooManyLabels).
    static LabelSet parse_names(std::string_view text, const Dictionary& dict,
                                std::uint64_t max_ids);
    static LabelSet from_ids(const std::vector<LabelId>& ids);
    // Inclusive ranges (a <= b each), in any order, overlaps allowed.
    static LabelSet from_ranges(std::vector<std::pair<LabelId, LabelId>> ranges);

    LabelSet& merge(const LabelSet& other);

    bool empty() const noexcept { return ranges_.empty(); }
    bool contains(LabelId id) const noexcept;
    std::uint64_t count() const noexcept;   // number of distinct ids, saturating
    // Sorted, disjoint, non-adjacent inclusive ranges.
    const std::vector<std::pair<LabelId, LabelId>>& ranges() const noexcept {
        return ranges_;
    }
    // Normalised text, e.g. "1,5,10-12": equal sets give equal strings
    // (used in cache keys and ETags).
    std::string canonical() const;

private:
    std::vector<std::pair<LabelId, LabelId>> ranges_;
};

}  // namespace medimg::labels
