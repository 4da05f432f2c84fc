// LabelMap: parsing "6:1,28-32:2" into sorted, disjoint rules.
#include "labels/label_map.hpp"

#include <algorithm>
#include <limits>

#include "error.hpp"

namespace medimg::labels {
namespace {

struct Item {
    MapRule rule;
    std::size_t position;   // 1-based, in the text
    std::string text;       // for error messages, shortened
};

[[noreturn]] void bad(std::size_t position, const std::string& what) {
    throw Error(ErrorCode::BadParameter, "map rule " + std::to_string(position) + " " + what);
}

}  // namespace

LabelMap LabelMap::parse(std::string_view text, std::uint64_t max_ids) {
    const std::string compact = without_blanks(text);
    LabelMap map;
    if (compact.empty()) return map;

    std::vector<Item> items;
    std::string_view rest = compact;
    for (std::size_t position = 1;; ++position) {
        const std::size_t comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        if (item.empty()) bad(position, "is empty (rules are SOURCE:NEW_ID, e.g. 6:1,28-32:2)");
        const std::size_t colon = item.rfind(':');
        if (colon == std::string_view::npos)
            bad(position, quoted_item(item) + " has no ':' (rules are SOURCE:NEW_ID, e.g. 6:1 or 28-32:2)");
        const auto source = parse_label_range(item.substr(0, colon));
        if (!source)
            bad(position, quoted_item(item) + ": the source is not an integer from " +
                              to_string(kMinLabelId) + " to " + to_string(kMaxLabelId) +
                              " or a range a-b of such integers");
        if (source->first > source->second)
            bad(position, quoted_item(item) + ": the source range ends before it starts");
        const auto to = parse_label_id(item.substr(colon + 1));
        if (!to || !fits_int64(*to))
            bad(position, quoted_item(item) + ": the new id is not an integer from " +
                              to_string(INT64_MIN) + " to " + to_string(INT64_MAX));
        items.push_back(Item{MapRule{source->first, source->second, static_cast<std::int64_t>(*to)},
                             position, quoted_item(item)});
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
        if (rest.empty()) bad(position + 1, "is empty (rules are SOURCE:NEW_ID, e.g. 6:1,28-32:2)");
    }

    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
        return a.rule.first < b.rule.first;
    });
    // `reach`: the item seen so far that ends last. Any later item starting
    // at or before its end overlaps it at the later item's first id.
    const Item* reach = nullptr;
    for (const Item& it : items) {
        if (reach && it.rule.first <= reach->rule.last && it.rule.to != reach->rule.to)
            throw Error(ErrorCode::BadParameter,
                        "map rules " + std::to_string(std::min(reach->position, it.position)) +
                            " and " + std::to_string(std::max(reach->position, it.position)) +
                            " (" + reach->text + ", " + it.text + ") both match id " +
                            to_string(it.rule.first) +
                            " with different new ids; sources may overlap only with the same new id");
        if (!reach || it.rule.last > reach->rule.last) reach = &it;
    }
    LabelId total = 0;   // at most 2^65: exact in 128 bits
    for (const Item& it : items) {
        auto& out = map.rules_;
        // Merged when overlapping or adjacent with the same new id (exact in 128 bits).
        if (!out.empty() && out.back().to == it.rule.to && it.rule.first <= out.back().last + 1) {
            out.back().last = std::max(out.back().last, it.rule.last);
            continue;
        }
        out.push_back(it.rule);
    }
    for (const auto& r : map.rules_) total += r.last - r.first + 1;
    if (total > max_ids)
        throw Error(ErrorCode::TooManyLabels,
                    "the map's sources hold " +
                        (total > LabelId{std::numeric_limits<std::uint64_t>::max()}
                             ? std::string("more than 18446744073709551615")
                             : to_string(total)) +
                        " ids, more than the limit of " + std::to_string(max_ids));
    return map;
}

LabelSet LabelMap::sources() const {
    std::vector<std::pair<LabelId, LabelId>> ranges;
    ranges.reserve(rules_.size());
    for (const auto& r : rules_) ranges.emplace_back(r.first, r.last);
    return LabelSet::from_ranges(std::move(ranges));
}

std::optional<std::int64_t> LabelMap::find(LabelId id) const noexcept {
    auto it = std::upper_bound(rules_.begin(), rules_.end(), id,
                               [](LabelId v, const MapRule& r) { return v < r.first; });
    if (it == rules_.begin()) return std::nullopt;
    --it;
    if (id > it->last) return std::nullopt;
    return it->to;
}

std::string LabelMap::canonical() const {
    std::string out;
    for (const auto& r : rules_) {
        if (!out.empty()) out.push_back(',');
        out += to_string(r.first);
        if (r.last != r.first) {
            out.push_back('-');
            out += to_string(r.last);
        }
        out.push_back(':');
        out += std::to_string(r.to);
    }
    return out;
}

}  // namespace medimg::labels
