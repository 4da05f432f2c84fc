// Building the shared Context.
#include "context.hpp"

#include <cstdio>
#include <mutex>
#include <string>

#include "error.hpp"

namespace medimg::fcgi {

nifti::ReadLimits Context::read_limits() const {
    nifti::ReadLimits limits;
    limits.header.max_voxels = config.max_voxels;
    if (config.request_timeout.count() > 0)
        limits.deadline = std::chrono::steady_clock::now() + config.request_timeout;
    return limits;
}

std::unique_ptr<Context> Context::create(const Config& config,
                                         std::function<void(std::string_view)> log) {
    auto ctx = std::make_unique<Context>();
    ctx->config = config;
    if (!log) {
        log = [](std::string_view line) {
            static std::mutex m;   // one whole line at a time from many threads
            std::lock_guard guard(m);
            std::fprintf(stderr, "medimg-fcgi: %.*s\n", static_cast<int>(line.size()), line.data());
            std::fflush(stderr);
        };
    }
    ctx->log = std::move(log);
    ctx->data_root = std::make_unique<fs::DataRoot>(config.data_root);
    ctx->dictionary = labels::Dictionary::load(config.label_dict, config.label_colors);
    ctx->dictionary_identity =
        cache::SourceIdentity::of_optional(config.label_dict).text() + "|" +
        cache::SourceIdentity::of_optional(config.label_colors).text();
    ctx->json_cache = std::make_unique<cache::MemoryLru>(4096);
    if (config.cache_enabled) {
        ctx->cache = std::make_unique<cache::ResultCache>(config.cache_dir, config.cache_max_bytes);
        ctx->temp_dir = ctx->cache->dir();
    } else {
        std::error_code ec;
        ctx->temp_dir = std::filesystem::temp_directory_path(ec);
        if (ec) ctx->temp_dir = "/tmp";
    }
    return ctx;
}

}  // namespace medimg::fcgi
