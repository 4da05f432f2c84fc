// A label remapping from a request or command: "6:1,28-32:2" gives id 6 the
// new id 1 and ids 28..32 the new id 2 (README.md, `map=`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "labels/label_id.hpp"
#include "labels/label_set.hpp"

namespace medimg::labels {

// Ids first..last (inclusive) become `to`.
struct MapRule {
    LabelId first;
    LabelId last;
    std::int64_t to;
};

class LabelMap {
public:
    LabelMap() = default;   // no rules: every id keeps its value

    // Comma-separated rules SOURCE:NEW_ID; SOURCE is an id or an inclusive
    // range a-b with the syntax of label_ids (LabelSet::parse), NEW_ID an
    // integer in int64; spaces ignored. An empty string has no rules.
    // Sources may overlap only where they give the same new id (such rules,
    // and adjacent ones with the same new id, are merged): an id claimed by
    // two different new ids is refused, so no order of rules matters.
    // Throws Error(BadParameter) naming the bad rule, Error(TooManyLabels)
    // when the sources hold more than max_ids ids together.
    static LabelMap parse(std::string_view text, std::uint64_t max_ids);

    bool empty() const noexcept { return rules_.empty(); }
    // Sorted by source, disjoint.
    const std::vector<MapRule>& rules() const noexcept { return rules_; }
    // The union of the sources: the selection when a request names no ids.
    LabelSet sources() const;
    // The new id of `id`, or nullopt when no rule matches it.
    std::optional<std::int64_t> find(LabelId id) const noexcept;
    // Normalised text, e.g. "6:1,28-32:2": equal maps give equal strings
    // (used in cache keys and ETags).
    std::string canonical() const;

private:
    std::vector<MapRule> rules_;
};

}  // namespace medimg::labels
