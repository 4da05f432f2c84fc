// GET /output/{pid}/{rel/path}/labels and …/info: label metadata and header
// JSON, cached in memory and in the results cache so a repeated request
// costs a stat and a lookup, never an inflate.
#include "cache/result_cache.hpp"
#include "error.hpp"
#include "labels/metadata.hpp"
#include "nifti/reader.hpp"
#include "routes/routes.hpp"
#include "source/image_source.hpp"

namespace medimg::fcgi {
namespace {

namespace stdfs = std::filesystem;

enum class Kind { Labels, Info };

Response metadata(const Context& ctx, const Request& request, const PathParams& p, Kind kind) {
    const std::string relative = p.at("pid") + "/" + p.at("rest");
    const std::string file_name = relative.substr(relative.rfind('/') + 1);
    // Everything read comes from the descriptors opened here, and the key
    // from their identity (docs/SECURITY.md, "File access").
    const source::ImageSource image = source::open_image(*ctx.data_root, relative, kind == Kind::Labels);
    std::string key_text = std::string(kind == Kind::Labels ? "labels" : "info") +
                           "|" MEDIMG_VERSION "|" + image.identity;
    if (kind == Kind::Labels) key_text += "|" + ctx.dictionary_identity + "|" + file_name;
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
            auto reader = nifti::Reader::open(image.files(), ctx.read_limits());
            if (kind == Kind::Info) return labels::info_json(reader.header()).dump();
            auto meta = labels::compute_metadata(reader);
            auto dict = image.dictionary(ctx.dictionary);
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
