// Opening an image with its partner and sidecars beneath the data root.
#include "source/image_source.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "error.hpp"

namespace medimg::source {
namespace {

// The whole content of an open sidecar, through its descriptor.
std::string read_all(const fs::OpenFile& file) {
    labels::Dictionary::check_sidecar_size(file.rel, static_cast<std::uintmax_t>(file.st.st_size));
    std::string text(static_cast<std::size_t>(file.st.st_size), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        const ssize_t r = ::pread(file.fd->get(), text.data() + got, text.size() - got, static_cast<off_t>(got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) throw Error(ErrorCode::Io, "cannot read label file " + file.rel + ": " + std::strerror(errno));
        if (r == 0) break;   // shrunk since fstat: what is there
        got += static_cast<std::size_t>(r);
    }
    text.resize(got);
    return text;
}

}  // namespace

nifti::ImageFiles ImageSource::files() const {
    nifti::ImageFiles f;
    f.file = image.file.fd;
    f.name = name.name;
    if (partner) {
        f.partner = partner->fd;
        f.partner_name = partner->rel.substr(partner->rel.rfind('/') + 1);
    }
    return f;
}

labels::Dictionary ImageSource::dictionary(const labels::Dictionary& base) const {
    auto read = [](const std::optional<fs::OpenFile>& f) -> std::optional<labels::Sidecar> {
        if (!f) return std::nullopt;
        return labels::Sidecar{f->rel, read_all(*f)};
    };
    if (json_sidecar) return base.with_sidecars(read(json_sidecar), std::nullopt);
    return base.with_sidecars(std::nullopt, read(txt_sidecar));
}

std::int64_t ImageSource::last_changed() const {
    std::int64_t t = 0;
    for (const fs::OpenFile* f : {&image.file, partner ? &*partner : nullptr,
                                  json_sidecar ? &*json_sidecar : nullptr,
                                  txt_sidecar ? &*txt_sidecar : nullptr})
        if (f) t = std::max<std::int64_t>({t, f->st.st_mtim.tv_sec, f->st.st_ctim.tv_sec});
    return t;
}

ImageSource open_image(const fs::DataRoot& root, std::string_view relative, bool sidecars) {
    ImageSource s{root.open_file(relative), {}, {}, {}, {}, {}};
    const std::string& found = s.image.file.rel;
    s.name = nifti::parse_image_name(found);
    s.identity = "image=" + s.image.file.identity();
    const auto partners = nifti::partner_names(s.name);
    for (const std::string& candidate : partners) {
        if (auto p = root.open_in(s.image.folder, candidate)) {
            s.partner = std::move(p->file);
            break;
        }
    }
    if (!partners.empty()) {
        if (!s.partner)
            throw Error(ErrorCode::NotFound,
                        "no " + std::string(s.name.kind == nifti::NameKind::Header ? ".img" : ".hdr") +
                            " file found for " + found);
        s.identity += "|partner=" + s.partner->identity();
    }
    if (sidecars) {
        auto open = [&](const std::string& file_name, std::optional<fs::OpenFile>& into) {
            auto f = root.open_in(s.image.folder, file_name);
            s.identity += "|" + file_name + "=" + (f ? f->file.identity() : "-");
            if (f) into = std::move(f->file);
        };
        open(nifti::json_sidecar_name(s.name), s.json_sidecar);
        open(nifti::txt_sidecar_name(s.name), s.txt_sidecar);
    }
    return s;
}

}  // namespace medimg::source
