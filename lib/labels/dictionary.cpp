// Dictionary: the VISTA3D name and colour tables, and per-image sidecars
// ({file}.labels.json, ITK-SNAP label description {stem}.txt).
#include "labels/dictionary.hpp"

#include <algorithm>

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "nifti/file_name.hpp"
#include "utf8.hpp"

namespace medimg::labels {
namespace {

namespace stdfs = std::filesystem;
using nlohmann::json;

constexpr std::uintmax_t kMaxFileBytes = Dictionary::kMaxFileBytes;

std::string read_text(const stdfs::path& path, bool sidecar = false) {
    std::error_code ec;
    const auto size = stdfs::file_size(path, ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory)
            throw Error(ErrorCode::NotFound, "label file " + path.string() + " does not exist");
        throw Error(ErrorCode::Io, "cannot read label file " + path.string() + ": " + ec.message());
    }
    if (sidecar) Dictionary::check_sidecar_size(path.string(), size);
    if (size > kMaxFileBytes)
        throw Error(ErrorCode::BadParameter,
                    "label file " + path.string() + " is larger than 16 MiB");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(ErrorCode::Io, "cannot open label file " + path.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// `shown` names the file in messages: its path for the tables in conf/, its
// path relative to the data root for a sidecar read by the worker.
[[noreturn]] void malformed(const std::string& shown, const std::string& what) {
    throw Error(ErrorCode::BadParameter, "label file " + shown + " is malformed: " + what);
}

json parse_json(const std::string& shown, const std::string& text) {
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) malformed(shown, "not valid JSON");
    return j;
}

// A sidecar's JSON, parsed while counting: past kMaxSidecarTokens keys and
// values, or deeper than its form ({"id": {"color": [r, g, b]}}) needs, the
// parse stops there, before the rest is built.
json parse_sidecar_json(const std::string& shown, const std::string& text) {
    struct Refused {
        std::string why;
    };
    std::size_t tokens = 0;
    auto count = [&](int depth, json::parse_event_t, json&) {
        if (++tokens > Dictionary::kMaxSidecarTokens)
            throw Refused{"more than " + std::to_string(Dictionary::kMaxSidecarTokens) + " keys and values"};
        if (depth > 3) throw Refused{"nested deeper than {\"id\": {\"color\": [r, g, b]}}"};
        return true;
    };
    try {
        json j = json::parse(text, count, /*allow_exceptions=*/false);
        if (j.is_discarded()) malformed(shown, "not valid JSON");
        return j;
    } catch (const Refused& r) {
        malformed(shown, r.why);
    }
}

std::int64_t json_id(const json& v, const std::string& path, const std::string& where) {
    if (v.is_number_integer()) {
        if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
            malformed(path, where + " is out of range");
        return v.get<std::int64_t>();
    }
    malformed(path, where + " is not an integer");
}

Rgb json_color(const json& v, const std::string& path, const std::string& where) {
    if (!v.is_array() || v.size() != 3) malformed(path, where + " is not [r,g,b]");
    Rgb rgb{};
    for (std::size_t i = 0; i < 3; ++i) {
        if (!v[i].is_number_integer() || v[i].get<std::int64_t>() < 0 ||
            v[i].get<std::int64_t>() > 255)
            malformed(path, where + " has a component that is not an integer 0..255");
        rgb[i] = static_cast<std::uint8_t>(v[i].get<std::int64_t>());
    }
    return rgb;
}

bool parse_int(std::string_view s, std::int64_t& value) {
    if (s.empty()) return false;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    return ec == std::errc() && ptr == s.data() + s.size();
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

// {"6":"aorta", ...} or {"6":{"name":"aorta","color":[r,g,b]}, ...}
void apply_json_sidecar(Dictionary& dict, const Dictionary& base, const Sidecar& sidecar) {
    const std::string& path = sidecar.name;
    const json j = parse_sidecar_json(path, sidecar.text);
    if (!j.is_object()) malformed(path, "the top level is not an object of id: name");
    for (const auto& [key, value] : j.items()) {
        std::int64_t id = 0;
        if (!parse_int(key, id)) malformed(path, "key \"" + key + "\" is not an integer id");
        const std::string where = "entry \"" + key + "\"";
        if (value.is_string()) {
            dict.set(id, value.get<std::string>(), base.color_of(id));
        } else if (value.is_object()) {
            std::string name = base.name_of(id);
            std::optional<Rgb> color = base.color_of(id);
            bool any = false;
            if (auto it = value.find("name"); it != value.end()) {
                if (!it->is_string()) malformed(path, where + " has a name that is not a string");
                name = it->get<std::string>();
                any = true;
            }
            if (auto it = value.find("color"); it != value.end()) {
                color = json_color(*it, path, where + " color");
                any = true;
            }
            if (!any) malformed(path, where + " has neither a name nor a color");
            dict.set(id, std::move(name), color);
        } else {
            malformed(path, where + " is neither a name nor an object");
        }
    }
}

// A label name: UTF-8 (valid_utf8) without control characters but tab.
bool label_text(std::string_view s) {
    return valid_utf8(s) && std::none_of(s.begin(), s.end(), [](char c) {
               return static_cast<unsigned char>(c) < 0x20 && c != '\t';
           });
}

// ITK-SNAP label description: "IDX -R- -G- -B- -A-- VIS MSH \"LABEL\"", '#' comments.
void apply_itksnap(Dictionary& dict, const Sidecar& sidecar) {
    const std::string& path = sidecar.name;
    const std::string& text = sidecar.text;
    std::istringstream lines(text);
    std::string line;
    int number = 0;
    while (std::getline(lines, line)) {
        ++number;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const auto first = line.find_first_not_of(" \t");
        if (first == std::string::npos || line[first] == '#') continue;
        const std::string where = "line " + std::to_string(number);
        const auto q1 = line.find('"');
        const auto q2 = line.rfind('"');
        if (q1 == std::string::npos || q2 == q1)
            malformed(path, where + " has no quoted label");
        std::istringstream fields(line.substr(0, q1));
        std::string tok[7];
        int n = 0;
        while (n < 8 && fields >> (n < 7 ? tok[n] : tok[6])) ++n;
        if (n != 7) malformed(path, where + " does not have IDX R G B A VIS MSH before the label");
        std::int64_t id = 0;
        if (!parse_int(tok[0], id)) malformed(path, where + " has an index that is not an integer");
        Rgb rgb{};
        for (int c = 0; c < 3; ++c) {
            std::int64_t v = 0;
            if (!parse_int(tok[1 + c], v) || v < 0 || v > 255)
                malformed(path, where + " has a colour component that is not an integer 0..255");
            rgb[c] = static_cast<std::uint8_t>(v);
        }
        double alpha = 0;
        try {
            std::size_t used = 0;
            alpha = std::stod(tok[4], &used);
            if (used != tok[4].size() || !std::isfinite(alpha)) throw std::invalid_argument("");
        } catch (const std::exception&) {
            malformed(path, where + " has an alpha that is not a number");
        }
        for (int f = 5; f < 7; ++f) {
            std::int64_t v = 0;
            if (!parse_int(tok[f], v)) malformed(path, where + " has a VIS/MSH flag that is not an integer");
        }
        if (line.find_first_not_of(" \t", q2 + 1) != std::string::npos)
            malformed(path, where + " has text after the quoted label");
        std::string name = line.substr(q1 + 1, q2 - q1 - 1);
        if (!label_text(name)) malformed(path, where + " has a label that is not UTF-8 text");
        dict.set(id, std::move(name), rgb);
    }
}

}  // namespace

Dictionary Dictionary::load(const stdfs::path& dict_json, const stdfs::path& colors_json) {
    Dictionary dict;
    if (!dict_json.empty()) {
        const std::string dict_name = dict_json.string();
        const json j = parse_json(dict_name, read_text(dict_json));
        if (!j.is_object()) malformed(dict_name, "the top level is not an object of name: id");
        for (const auto& [name, value] : j.items())
            dict.set(json_id(value, dict_name, "the id of \"" + name + "\""), name, std::nullopt);
    }
    if (!colors_json.empty()) {
        const std::string colors_name = colors_json.string();
        const json j = parse_json(colors_name, read_text(colors_name));
        if (!j.is_array()) malformed(colors_name, "the top level is not an array");
        std::size_t index = 0;
        for (const auto& entry : j) {
            const std::string where = "entry " + std::to_string(index++);
            if (!entry.is_object()) malformed(colors_name, where + " is not an object");
            auto id_it = entry.find("id");
            if (id_it == entry.end()) malformed(colors_name, where + " has no id");
            const std::int64_t id = json_id(*id_it, colors_name, where + " id");
            std::string name = dict.name_of(id);
            if (auto it = entry.find("name"); it != entry.end()) {
                if (!it->is_string()) malformed(colors_name, where + " has a name that is not a string");
                name = it->get<std::string>();
            }
            std::optional<Rgb> color;
            if (auto it = entry.find("color"); it != entry.end())
                color = json_color(*it, colors_name, where + " color");
            dict.set(id, std::move(name), color);
        }
    }
    return dict;
}

Dictionary Dictionary::with_sidecars(const std::optional<Sidecar>& json_sidecar,
                                     const std::optional<Sidecar>& itksnap) const {
    Dictionary out = *this;
    if (json_sidecar) apply_json_sidecar(out, *this, *json_sidecar);
    else if (itksnap) apply_itksnap(out, *itksnap);
    return out;
}

Dictionary Dictionary::with_sidecar_for(const stdfs::path& image) const {
    const nifti::ImageName name = nifti::parse_image_name(image.filename().string());
    auto read_if_file = [&](const std::string& file_name) -> std::optional<Sidecar> {
        const stdfs::path p = image.parent_path() / file_name;
        std::error_code ec;
        if (!stdfs::is_regular_file(p, ec)) return std::nullopt;
        return Sidecar{p.string(), read_text(p, /*sidecar=*/true)};
    };
    return with_sidecars(read_if_file(nifti::json_sidecar_name(name)),
                         read_if_file(nifti::txt_sidecar_name(name)));
}

void Dictionary::check_sidecar_size(const std::string& shown, std::uintmax_t size) {
    if (size > kMaxSidecarBytes)
        throw Error(ErrorCode::BadParameter, "label file " + shown + " is larger than " +
                                                 std::to_string(kMaxSidecarBytes >> 10) + " KiB");
}

void Dictionary::set(std::int64_t id, std::string name, std::optional<Rgb> color) {
    entries_[id] = Entry{std::move(name), color};
}

namespace {

// A name as users type it (man/medimg.1): lower case, '_' and space alike,
// runs of them one, none at the ends ("Right_Kidney " = "right kidney").
std::string folded(std::string_view name) {
    std::string out;
    for (char c : name) {
        if (c == '_' || c == ' ' || c == '\t') {
            if (!out.empty() && out.back() != ' ') out += ' ';
        } else {
            out += lower(c);
        }
    }
    if (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

std::size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = up;
        }
    }
    return row[b.size()];
}

}  // namespace

std::optional<std::int64_t> Dictionary::find(std::string_view name) const {
    for (const auto& [id, entry] : entries_)
        if (iequal(entry.name, name)) return id;
    const std::string want = folded(name);
    for (const auto& [id, entry] : entries_)
        if (folded(entry.name) == want) return id;
    return std::nullopt;
}

std::vector<std::string> Dictionary::closest(std::string_view name, std::size_t n) const {
    const std::string want = folded(name);
    if (want.size() > 256) return {};   // bounded work for absurd input
    std::vector<std::pair<std::size_t, std::string>> scored;
    for (const auto& [id, entry] : entries_) {
        const std::string have = folded(entry.name);
        std::size_t d = edit_distance(want, have);
        // A name that contains what was typed ("kidney") is close too.
        if (!want.empty() && have.find(want) != std::string::npos) d = std::min<std::size_t>(d, 1);
        if (d <= std::max<std::size_t>(2, want.size() / 3)) scored.emplace_back(d, entry.name);
    }
    std::stable_sort(scored.begin(), scored.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (const auto& [d, n_] : scored) {
        if (out.size() == n) break;
        out.push_back(n_);
    }
    return out;
}

const Dictionary::Entry* Dictionary::entry(LabelId id) const {
    if (!fits_int64(id)) return nullptr;   // entries are int64 ids
    auto it = entries_.find(static_cast<std::int64_t>(id));
    return it == entries_.end() ? nullptr : &it->second;
}

std::string Dictionary::name_of(LabelId id) const {
    const Entry* e = entry(id);
    return e ? e->name : to_string(id);
}

std::optional<Rgb> Dictionary::color_of(LabelId id) const {
    const Entry* e = entry(id);
    return e ? e->color : std::nullopt;
}

}  // namespace medimg::labels
