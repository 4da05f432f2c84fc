// The filter-option parser shared by /filtered-scans and `medimg filter`.
#include "labels/filter_options.hpp"

#include <charconv>

#include "error.hpp"
#include "labels/dictionary.hpp"
#include "labels/label_map.hpp"
#include "labels/label_set.hpp"

namespace medimg::labels {

const FilterOptionSyntax kQuerySyntax = {
    .label_ids = "label_ids", .names = "labels", .map = "map", .mode = "mode", .crop = "crop",
    .margin = "margin", .level = "level",
    .missing_labels = "label_ids is required (e.g. label_ids=1,5,10-12), or map (e.g. map=6:1,28-32:2)",
    .missing_code = ErrorCode::BadLabelIds, .margin_needs_crop = false};

const FilterOptionSyntax kCommandLineSyntax = {
    .label_ids = "--labels", .names = "--names", .map = "--map", .mode = "--mode", .crop = "--crop",
    .margin = "--margin", .level = "--level",
    .missing_labels = "--labels, --names or --map is required",
    .missing_code = ErrorCode::BadParameter, .margin_needs_crop = true};

namespace {

std::int64_t whole_number(const std::string& text, std::string_view name, std::int64_t lo,
                          std::int64_t hi) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi)
        throw Error(ErrorCode::BadParameter, std::string(name) + " must be an integer from " +
                                                 std::to_string(lo) + " to " + std::to_string(hi) +
                                                 ", got \"" + text + "\"");
    return v;
}

}  // namespace

FilterOptions parse_filter_options(const FilterOptionSources& src, const FilterOptionSyntax& syn) {
    FilterOptions o;
    o.gzip_level = src.default_level;
    if (auto mode = src.value(FilterOption::Mode)) {
        if (*mode == "keep") o.mode = Mode::Keep;
        else if (*mode == "mask") o.mode = Mode::Mask;
        else throw Error(ErrorCode::BadParameter,
                         std::string(syn.mode) + " must be keep or mask, got \"" + *mode + "\"");
    }
    if (auto crop = src.value(FilterOption::Crop)) {
        if (*crop == "1" || *crop == "true") o.crop = true;
        else if (*crop == "0" || *crop == "false") o.crop = false;
        else throw Error(ErrorCode::BadParameter, std::string(syn.crop) +
                                                      " must be 0, 1, true or false, got \"" +
                                                      *crop + "\"");
    }
    if (auto margin = src.value(FilterOption::Margin)) {
        o.margin = whole_number(*margin, syn.margin, 0, kMaxMargin);
        if (syn.margin_needs_crop && !o.crop)
            throw Error(ErrorCode::BadParameter,
                        std::string(syn.margin) + " needs " + std::string(syn.crop));
    }
    if (auto level = src.value(FilterOption::Level))
        o.gzip_level = static_cast<int>(whole_number(*level, syn.level, 0, 9));

    // The selection: ids, names, or both (their union); without either, the
    // sources of the map's rules.
    const auto ids = src.value(FilterOption::LabelIds);
    const auto names = src.value(FilterOption::Names);
    const auto map = src.value(FilterOption::Map);
    if (!ids && !names && !map) throw Error(syn.missing_code, std::string(syn.missing_labels));
    const std::uint64_t max_ids = src.max_label_ids;
    if (map) o.map = LabelMap::parse(*map, max_ids);
    if (!ids && !names) o.labels = o.map.sources();
    if (ids) o.labels = LabelSet::parse(*ids, max_ids);
    if (names) {
        o.labels.merge(LabelSet::parse_names(*names, src.dictionary(), max_ids));
        if (o.labels.count() > max_ids)
            throw Error(ErrorCode::TooManyLabels,
                        "more than " + std::to_string(max_ids) + " label ids requested");
    }
    return o;
}

std::string canonical_filter_options(const FilterOptions& o) {
    return "ids=" + o.labels.canonical() + ";mode=" + (o.mode == Mode::Mask ? "mask" : "keep") +
           ";crop=" + (o.crop ? "1" : "0") +
           ";margin=" + (o.crop ? std::to_string(o.margin) : "0") +
           ";level=" + std::to_string(o.gzip_level) + (o.map.empty() ? "" : ";map=" + o.map.canonical());
}

}  // namespace medimg::labels
