// Image file-name rules (see file_name.hpp).
#include "nifti/file_name.hpp"

#include <array>

namespace medimg::nifti {
namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
char upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

struct SuffixRule {
    std::string_view suffix;
    NameKind kind;
    bool gzip;
};
// Longest first, so ".nii.gz" wins over ".gz"-less forms.
constexpr std::array<SuffixRule, 6> kSuffixes{{
    {".nii.gz", NameKind::Single, true},
    {".hdr.gz", NameKind::Header, true},
    {".img.gz", NameKind::Image, true},
    {".nii", NameKind::Single, false},
    {".hdr", NameKind::Header, false},
    {".img", NameKind::Image, false},
}};

// `lower_form` (".img", ".gz") spelt in the case of `like`'s first letter
// after the dot.
std::string in_case_of(std::string_view lower_form, std::string_view like) {
    std::string out(lower_form);
    const bool up = like.size() > 1 && like[1] >= 'A' && like[1] <= 'Z';
    if (up)
        for (char& c : out) c = upper(c);
    return out;
}

}  // namespace

bool ends_with_ci(std::string_view s, std::string_view suffix) {
    if (s.size() < suffix.size()) return false;
    s.remove_prefix(s.size() - suffix.size());
    for (std::size_t i = 0; i < s.size(); ++i)
        if (lower(s[i]) != lower(suffix[i])) return false;
    return true;
}

ImageName parse_image_name(std::string_view file_name) {
    if (const auto slash = file_name.rfind('/'); slash != std::string_view::npos)
        file_name.remove_prefix(slash + 1);
    ImageName n;
    n.name = std::string(file_name);
    n.stem = n.name;
    for (const auto& rule : kSuffixes) {
        if (file_name.size() > rule.suffix.size() && ends_with_ci(file_name, rule.suffix)) {
            n.stem = n.name.substr(0, n.name.size() - rule.suffix.size());
            n.suffix = n.name.substr(n.stem.size());
            n.kind = rule.kind;
            n.gzip_suffix = rule.gzip;
            break;
        }
    }
    if (n.kind == NameKind::Other) n.gzip_suffix = ends_with_ci(file_name, ".gz");
    return n;
}

std::vector<std::string> partner_names(const ImageName& name) {
    if (name.kind != NameKind::Header && name.kind != NameKind::Image) return {};
    const std::string ext = in_case_of(name.kind == NameKind::Header ? ".img" : ".hdr", name.suffix);
    const std::string gz = in_case_of(".gz", name.suffix);
    std::vector<std::string> out;
    for (bool with_gz : {name.gzip_suffix, !name.gzip_suffix})
        out.push_back(name.stem + ext + (with_gz ? gz : ""));
    return out;
}

std::string json_sidecar_name(const ImageName& name) { return name.name + ".labels.json"; }

std::string txt_sidecar_name(const ImageName& name) { return name.stem + ".txt"; }

Container output_container(const ImageName& name) {
    if (name.gzip_suffix) return Container::Gzip;
    if (name.kind == NameKind::Single) return Container::Plain;
    return Container::Gzip;
}

std::string filtered_name(const ImageName& name) {
    if (name.kind == NameKind::Header || name.kind == NameKind::Image)
        return "filtered_" + name.stem + ".nii.gz";
    return "filtered_" + name.name;
}

}  // namespace medimg::nifti
