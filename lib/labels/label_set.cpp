// LabelSet: parsing "1,5,10-12" and dictionary names into normalised ranges.
#include "labels/label_set.hpp"

#include <algorithm>
#include <limits>

#include "error.hpp"
#include "labels/dictionary.hpp"

namespace medimg::labels {
namespace {

using Range = std::pair<LabelId, LabelId>;

// Sorts and merges overlapping or adjacent ranges.
void normalise(std::vector<Range>& ranges) {
    std::sort(ranges.begin(), ranges.end());
    std::vector<Range> out;
    out.reserve(ranges.size());
    for (const auto& r : ranges) {
        if (!out.empty()) {
            auto& last = out.back();
            // Adjacent when r.first == last.second + 1 (exact in 128 bits).
            if (r.first <= last.second + 1) {
                last.second = std::max(last.second, r.second);
                continue;
            }
        }
        out.push_back(r);
    }
    ranges.swap(out);
}

void check_count(const LabelSet& set, std::uint64_t max_ids) {
    if (set.count() > max_ids)
        throw Error(ErrorCode::TooManyLabels,
                    "the label selection holds " +
                        (set.count() == std::numeric_limits<std::uint64_t>::max()
                             ? std::string("more than 18446744073709551614")
                             : std::to_string(set.count())) +
                        " ids, more than the limit of " + std::to_string(max_ids));
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

}  // namespace

LabelSet LabelSet::parse(std::string_view text, std::uint64_t max_ids) {
    const std::string compact = without_blanks(text);
    LabelSet set;
    if (compact.empty()) return set;

    std::size_t position = 0;
    std::string_view rest = compact;
    while (true) {
        ++position;
        const std::size_t comma = rest.find(',');
        const std::string_view item = rest.substr(0, comma);
        if (item.empty())
            throw Error(ErrorCode::BadLabelIds,
                        "label_ids item " + std::to_string(position) + " is empty");
        const auto range = parse_label_range(item);
        if (!range)
            throw Error(ErrorCode::BadLabelIds,
                        "label_ids item " + std::to_string(position) + " " + quoted_item(item) +
                            " is not an integer from " + to_string(kMinLabelId) + " to " +
                            to_string(kMaxLabelId) + " or a range a-b of such integers");
        const auto [a, b] = *range;
        if (a > b)
            throw Error(ErrorCode::BadLabelIds,
                        "label_ids range " + quoted_item(item) + " (item " + std::to_string(position) +
                            ") ends before it starts");
        set.ranges_.emplace_back(a, b);
        // Bound the work on hostile input: normalise as we go once large.
        if (set.ranges_.size() >= 4096 && (set.ranges_.size() & 4095) == 0) {
            normalise(set.ranges_);
            check_count(set, max_ids);
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
        if (rest.empty())
            throw Error(ErrorCode::BadLabelIds,
                        "label_ids item " + std::to_string(position + 1) + " is empty");
    }
    normalise(set.ranges_);
    check_count(set, max_ids);
    return set;
}

LabelSet LabelSet::parse_names(std::string_view text, const Dictionary& dict,
                               std::uint64_t max_ids) {
    LabelSet set;
    if (trim(text).empty()) return set;
    std::size_t position = 0;
    std::string_view rest = text;
    while (true) {
        ++position;
        const std::size_t comma = rest.find(',');
        const std::string_view name = trim(rest.substr(0, comma));
        if (name.empty())
            throw Error(ErrorCode::BadLabelIds,
                        "label name " + std::to_string(position) + " is empty");
        const auto id = dict.find(name);
        if (!id) {
            std::string known;
            for (const auto& n : dict.closest(name, 3))
                known += std::string(known.empty() ? "" : ", ") + "\"" + n + "\"";
            throw Error(ErrorCode::UnknownLabel,
                        "unknown label name " + quoted_item(name) +
                            (known.empty() ? "" : "; closest known: " + known));
        }
        set.ranges_.emplace_back(*id, *id);
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    normalise(set.ranges_);
    check_count(set, max_ids);
    return set;
}

LabelSet LabelSet::from_ids(const std::vector<LabelId>& ids) {
    LabelSet set;
    set.ranges_.reserve(ids.size());
    for (auto id : ids) set.ranges_.emplace_back(id, id);
    normalise(set.ranges_);
    return set;
}

LabelSet LabelSet::from_ranges(std::vector<std::pair<LabelId, LabelId>> ranges) {
    LabelSet set;
    set.ranges_ = std::move(ranges);
    normalise(set.ranges_);
    return set;
}

LabelSet& LabelSet::merge(const LabelSet& other) {
    ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
    normalise(ranges_);
    return *this;
}

bool LabelSet::contains(LabelId id) const noexcept {
    // First range whose start is > id; the one before it may contain id.
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), id,
                               [](LabelId v, const Range& r) { return v < r.first; });
    if (it == ranges_.begin()) return false;
    --it;
    return id <= it->second;
}

std::uint64_t LabelSet::count() const noexcept {
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    LabelId total = 0;   // at most 2^65: exact in 128 bits
    for (const auto& [a, b] : ranges_) total += b - a + 1;
    return total > kMax ? kMax : static_cast<std::uint64_t>(total);
}

std::string LabelSet::canonical() const {
    std::string out;
    for (const auto& [a, b] : ranges_) {
        if (!out.empty()) out.push_back(',');
        out += to_string(a);
        if (b != a) {
            out.push_back('-');
            out += to_string(b);
        }
    }
    return out;
}

}  // namespace medimg::labels
