// GET /output/{pid}/{rel/path}/labels and …/info: label metadata and header
// JSON, cached in memory and in the results cache so a repeated request
// costs a stat and a lookup, never an inflate.
#include <sys/stat.h>

#include "cache/result_cache.hpp"
#include "error.hpp"
#include "labels/metadata.hpp"
#include "nifti/reader.hpp"
#include "routes/routes.hpp"

namespace medimg::fcgi {
namespace {

namespace stdfs = std::filesystem;

enum class Kind { Labels, Info };

// Sidecars that change the /labels answer (DESIGN.md §4).
std::string sidecar_identity(const stdfs::path& image) {
    std::string name = image.filename().string();
    std::string stem = name;
    for (std::string_view ext : {".nii.gz", ".nii", ".hdr.gz", ".hdr", ".img.gz", ".img"})
        if (stem.size() > ext.size() && stem.compare(stem.size() - ext.size(), ext.size(), ext) == 0) {
            stem.resize(stem.size() - ext.size());
            break;
        }
    return cache::SourceIdentity::of_optional(image.parent_path() / (name + ".labels.json")).text() +
           "|" + cache::SourceIdentity::of_optional(image.parent_path() / (stem + ".txt")).text();
}

Response metadata(const Context& ctx, const Request& request, const PathParams& p, Kind kind) {
    const std::string relative = p.at("pid") + "/" + p.at("rest");
    const std::string file_name = relative.substr(relative.rfind('/') + 1);
    const stdfs::path image = ctx.data_root->resolve_file(relative);
    std::string key_text = std::string(kind == Kind::Labels ? "labels" : "info") +
                           "|" MEDIMG_VERSION "|" + detail::image_identity(image);
    if (kind == Kind::Labels)
        key_text += "|" + sidecar_identity(image) + "|" + ctx.dictionary_identity + "|" + file_name;
    const std::string key = cache::hash_hex(key_text);
    const std::string etag = "\"" + key + "\"";

    Response r;
    r.set_header("Content-Type", "application/json");
    r.set_header("ETag", etag);
    r.set_header("Cache-Control", "no-cache");
    if (!request.if_none_match.empty() && etag_matches(request.if_none_match, etag)) {
        r.status = 304;
        return r;
    }
    auto body = ctx.json_cache->get(key);
    if (!body) {
        auto compute = [&]() {
            auto reader = nifti::Reader::open(image, ctx.read_limits());
            if (kind == Kind::Info) return labels::info_json(reader.header()).dump();
            auto meta = labels::compute_metadata(reader);
            auto dict = ctx.dictionary.with_sidecar_for(image);
            return labels::labels_json(meta, dict, file_name).dump();
        };
        body = std::make_shared<const std::string>(ctx.cached_text(key, ".json", compute));
        ctx.json_cache->put(key, body);
    }
    r.body = *body;
    return r;
}

}  // namespace

void register_labels(Router& router, const Context& context) {
    router.add("/output/{pid}/{rest...}/labels", [&context](const Request& q, const PathParams& p) {
        return metadata(context, q, p, Kind::Labels);
    });
    router.add("/output/{pid}/{rest...}/info", [&context](const Request& q, const PathParams& p) {
        return metadata(context, q, p, Kind::Info);
    });
}

}  // namespace medimg::fcgi
