// GET /filtered-scans/{pid}/{file}?label_ids=…: a segmentation filtered to
// the chosen labels, computed once into the results cache and handed to the
// web server (X-Sendfile), or streamed by the worker.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <ctime>

#include "cache/result_cache.hpp"
#include "error.hpp"
#include "labels/filter.hpp"
#include "labels/filter_options.hpp"
#include "labels/label_set.hpp"
#include "nifti/reader.hpp"
#include "nifti/writer.hpp"
#include "routes/routes.hpp"
#include "source/image_source.hpp"

namespace medimg::fcgi {
namespace detail {

namespace stdfs = std::filesystem;

std::string http_date(std::int64_t unix_seconds) {
    std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    static const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                  tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    return buf;
}

std::string attachment_disposition(const std::string& name) {
    std::string ascii, encoded;
    bool plain = true;
    static const char* hex = "0123456789ABCDEF";
    for (unsigned char c : name) {
        if (c >= 0x80) plain = false;
        ascii += (c >= 0x80) ? '_' : (c == '"' || c == '\\') ? '_' : static_cast<char>(c);
        if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
            encoded += static_cast<char>(c);
        } else {
            encoded += '%';
            encoded += hex[c >> 4];
            encoded += hex[c & 15];
        }
    }
    std::string v = "attachment; filename=\"" + ascii + "\"";
    if (!plain) v += "; filename*=UTF-8''" + encoded;
    return v;
}

const fs::DataRoot& data_root(const Context& context, const Request& request) {
    if (request.server_data_root.empty()) {
        // A web server configured by hand (not from our snippets) may not
        // pass it: the answer comes from this worker's root, unchecked. Said
        // once per process, so the log shows it without repeating it.
        static std::atomic<bool> said{false};
        if (!said.exchange(true) && context.log)
            context.log("the web server passes no MEDIMG_DATA_ROOT: whether it serves /output/ from "
                        "this worker's data root " + context.data_root->path().string() +
                        " cannot be checked (docs/DEPLOYMENT.md, \"Changing the data root\")");
    } else if (!context.data_root->is_same_folder(request.server_data_root)) {
        throw Error(ErrorCode::Internal,
                    "the web server's data root (MEDIMG_DATA_ROOT) " + request.server_data_root +
                        " is not, or cannot be seen by this worker as, its data root " +
                        context.data_root->path().string() +
                        ": set one folder for both (docs/DEPLOYMENT.md, \"Changing the data root\")");
    }
    return *context.data_root;
}

}  // namespace detail

namespace {

namespace stdfs = std::filesystem;

struct FilterQuery {
    labels::FilterOptions options;
    std::string canonical;   // for keys and ETags
};

FilterQuery parse_filter_query(const std::vector<std::pair<std::string, std::string>>& params,
                               const Context& ctx, const source::ImageSource& image) {
    using labels::FilterOption;
    labels::FilterOptionSources src;
    src.value = [&](FilterOption option) -> std::optional<std::string> {
        switch (option) {
            case FilterOption::LabelIds: return query_value(params, "label_ids");
            case FilterOption::Names: return query_value(params, "labels");
            case FilterOption::Map: return query_value(params, "map");
            case FilterOption::Mode: return query_value(params, "mode");
            case FilterOption::Crop: return query_value(params, "crop");
            case FilterOption::Margin: return query_value(params, "margin");
            case FilterOption::Level: return std::nullopt;   // [filter] gzip_level only
        }
        return std::nullopt;
    };
    src.dictionary = [&] { return image.dictionary(ctx.dictionary); };
    src.max_label_ids = ctx.config.max_label_ids;
    src.default_level = ctx.config.gzip_level;
    FilterQuery q;
    q.options = labels::parse_filter_options(src, labels::kQuerySyntax);
    q.canonical = labels::canonical_filter_options(q.options);
    return q;
}

std::shared_ptr<FileBody> open_body(const stdfs::path& file) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    struct stat st{};
    if (::fstat(fd, &st) != 0) {
        ::close(fd);
        return nullptr;
    }
    return std::make_shared<FileBody>(fd, static_cast<std::uint64_t>(st.st_size));
}

Response filtered(const Context& ctx, const Request& request, const std::string& relative,
                  const std::string& file_name) {
    const auto params = parse_query(request.query);
    // Sidecars matter only for label names; everything read comes from the
    // descriptors opened here (docs/SECURITY.md, "File access").
    const source::ImageSource image =
        source::open_image(detail::data_root(ctx, request), relative, query_value(params, "labels").has_value());
    const FilterQuery q = parse_filter_query(params, ctx, image);
    const nifti::ImageName requested = nifti::parse_image_name(file_name);
    const auto container = nifti::output_container(requested);
    const std::string suffix = container == nifti::Container::Gzip ? ".nii.gz" : ".nii";
    const std::string key = cache::hash_hex("filter|" MEDIMG_VERSION "|" + image.identity + "|" +
                                            q.canonical + "|" + suffix);

    Response r;
    r.set_header("ETag", "\"" + key + "\"");
    // A date is a validator too (If-Modified-Since, If-Range; with X-Sendfile
    // the web server answers them from it): the latest change of any file of
    // the answer, inode changes included, so that a rewrite with its mtime
    // put back moves it on (docs/SECURITY.md, "File access").
    r.set_header("Last-Modified", detail::http_date(image.last_changed()));
    r.set_header("Cache-Control", "no-cache");
    if (!request.if_none_match.empty() && etag_matches(request.if_none_match, "\"" + key + "\"")) {
        r.status = 304;
        return r;
    }
    r.set_header("Content-Type",
                 container == nifti::Container::Gzip ? "application/gzip" : "application/octet-stream");
    r.set_header("Content-Disposition", detail::attachment_disposition(nifti::filtered_name(requested)));

    auto produce = [&](nifti::ByteSink& sink) {
        auto reader = nifti::Reader::open(image.files(), ctx.read_limits());
        labels::filter(reader, sink, container, q.options);
    };
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto result = ctx.compute_result(key, suffix, produce);
        if (!result.entry) {   // no cache, or one that cannot store: streamed
            r.file = std::move(result.file);
            return r;
        }
        const stdfs::path& entry = *result.entry;
        switch (ctx.config.sendfile_header) {
            case SendfileHeader::XSendfile:
                r.set_header("X-Sendfile", entry.string());
                return r;
            case SendfileHeader::XAccelRedirect:
                r.set_header("X-Accel-Redirect",
                             "/medimg-cache/" + entry.lexically_relative(ctx.cache->dir()).string());
                return r;
            case SendfileHeader::None:
                if ((r.file = open_body(entry))) return r;
                break;   // evicted between creation and open: make it again
        }
    }
    throw Error(ErrorCode::Io, "cache entry vanished twice");
}

}  // namespace

void register_filtered_scans(Router& router, const Context& context) {
    router.add("/filtered-scans/{pid}/{rest...}",
               [&context](const Request& request, const PathParams& p) {
                   const std::string& pid = p.at("pid");
                   const std::string& rest = p.at("rest");
                   // One segment: a whole segmentation in scans/; more: a
                   // path below the patient (voxels/{scan}/original/{file}).
                   const bool single = rest.find('/') == std::string::npos;
                   const std::string relative = pid + (single ? "/scans/" : "/") + rest;
                   const std::string file_name =
                       single ? rest : rest.substr(rest.rfind('/') + 1);
                   return filtered(context, request, relative, file_name);
               });
}

}  // namespace medimg::fcgi
