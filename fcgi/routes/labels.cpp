// GET /output/{pid}/{rel/path}/labels (with ?image={rel path under the
// patient}: per-label intensity statistics too) and …/info: label metadata
// and header JSON, cached in memory and in the results cache so a repeated request
// costs a stat and a lookup, never an inflate.
#include "cache/result_cache.hpp"
#include "error.hpp"
#include "labels/intensity.hpp"
#include "labels/metadata.hpp"
#include "nifti/header_json.hpp"
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
    const source::ImageSource image = source::open_image(detail::data_root(ctx, request), relative, kind == Kind::Labels);
    // ?image= names the intensity image relative to the patient's folder; it
    // is opened beneath the root by the same rules (docs/SECURITY.md, "File
    // access"), and its identity joins the key.
    std::optional<source::ImageSource> intensity_image;
    if (kind == Kind::Labels) {
        const auto params = parse_query(request.query);
        if (auto rel = query_value(params, "image")) {
            if (rel->empty())
                throw Error(ErrorCode::BadParameter,
                            "image= names no file: give a path under the patient's folder");
            intensity_image = source::open_image(detail::data_root(ctx, request), p.at("pid") + "/" + *rel, false);
        }
    }
    std::string key_text = std::string(kind == Kind::Labels ? "labels" : "info") +
                           "|" MEDIMG_VERSION "|" + image.identity;
    if (kind == Kind::Labels) key_text += "|" + ctx.dictionary_identity + "|" + file_name;
    if (intensity_image) key_text += "|image|" + intensity_image->identity;
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
            if (kind == Kind::Info) return nifti::info_json(reader.header()).dump();
            auto dict = image.dictionary(ctx.dictionary);
            if (intensity_image) {
                auto values = nifti::Reader::open(intensity_image->files(), ctx.read_limits());
                auto both = labels::compute_intensity(reader, values, ctx.config.max_intensity_bins);
                auto answer = labels::labels_json(both.meta, dict, file_name);
                labels::add_intensity_json(answer, both.intensity);
                return answer.dump();
            }
            auto meta = labels::compute_metadata(reader);
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
