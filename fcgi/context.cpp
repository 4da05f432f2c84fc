// Building the shared Context.
#include "context.hpp"

#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

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
        ctx->cache = std::make_unique<cache::ResultCache>(config.cache_dir, config.cache_max_bytes,
                                                          cache::CacheAccess{config.cache_group});
        // Evictions count toward /metrics once the counters are open.
        ctx->cache->on_evict = [c = ctx.get()](std::uint64_t entries, std::uint64_t bytes) {
            if (c->metrics) c->metrics->count_evictions(entries, bytes);
        };
    }
    // Streamed results go to the system's temporary directory, also when the
    // cache is on (it is the way around a cache that cannot store).
    std::error_code ec;
    ctx->temp_dir = std::filesystem::temp_directory_path(ec);
    if (ec) ctx->temp_dir = "/tmp";
    return ctx;
}

void Context::note_store_failure(const std::string& why) const {
    if (!cache_store_failing.exchange(true))
        log("results cache cannot store (" + why + "); answering without it until it can");
}

void Context::note_store_success() const {
    if (cache_store_failing.load(std::memory_order_relaxed) && cache_store_failing.exchange(false))
        log("results cache stores again");
}

Context::Result Context::compute_result(std::string_view key, std::string_view suffix,
                                        const std::function<void(nifti::ByteSink&)>& produce) const {
    if (cache) {
        try {
            Result r;
            bool produced = false;
            r.entry = cache->get_or_create(key, suffix, [&](nifti::ByteSink& sink) {
                produced = true;
                produce(sink);
            });
            if (metrics) metrics->count_cache(!produced);
            note_store_success();
            return r;
        } catch (const cache::StoreError& e) {
            note_store_failure(e.what());
        }
    }
    try {
        auto sink = cache::make_anonymous_file(temp_dir);
        produce(sink);
        const auto size = sink.bytes_written();
        Result r;
        r.file = std::make_shared<FileBody>(sink.release(), size);
        return r;
    } catch (const cache::StoreError& e) {
        log(std::string("cannot write a streamed result: ") + e.what());
        throw Error(ErrorCode::Busy, "no room to compute the result now; retry later");
    }
}

namespace {

std::optional<std::string> read_whole(const std::filesystem::path& file) {
    std::FILE* f = std::fopen(file.c_str(), "rbe");
    if (!f) return std::nullopt;
    std::string text;
    std::vector<char> buf(65536);
    std::size_t got = 0;
    while ((got = std::fread(buf.data(), 1, buf.size(), f)) > 0) text.append(buf.data(), got);
    const bool ok = !std::ferror(f);
    std::fclose(f);
    if (!ok) return std::nullopt;
    return text;
}

}  // namespace

std::string Context::cached_text(std::string_view key, std::string_view suffix,
                                 const std::function<std::string()>& compute) const {
    if (!cache) return compute();
    std::optional<std::string> computed;
    try {
        auto entry = cache->get_or_create(key, suffix, [&](nifti::ByteSink& sink) {
            computed = compute();
            sink.write(reinterpret_cast<const std::uint8_t*>(computed->data()), computed->size());
        });
        note_store_success();
        if (metrics) metrics->count_cache(!computed);
        if (computed) return std::move(*computed);
        if (auto text = read_whole(entry)) return std::move(*text);
    } catch (const cache::StoreError& e) {
        note_store_failure(e.what());
        if (computed) return std::move(*computed);
    }
    return compute();   // not stored, or the entry went away before it was read
}

}  // namespace medimg::fcgi
