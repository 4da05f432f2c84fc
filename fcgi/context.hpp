// What every route shares: the effective configuration, the data root, the
// label dictionary, the results cache and the log. Built once per process.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cache/result_cache.hpp"
#include "config.hpp"
#include "fs/data_root.hpp"
#include "labels/dictionary.hpp"
#include "metrics.hpp"
#include "nifti/reader.hpp"
#include "response.hpp"

namespace medimg::fcgi {

struct Context {
    Config config;
    std::unique_ptr<fs::DataRoot> data_root;
    labels::Dictionary dictionary;
    std::unique_ptr<cache::ResultCache> cache;       // null when [cache] enabled = false
    std::unique_ptr<cache::MemoryLru> json_cache;    // rendered /labels and /info answers
    std::filesystem::path temp_dir;                  // unlinked temporaries for streamed results (system temp)
    std::function<void(std::string_view)> log;       // one line, no newline
    std::string dictionary_identity;                 // of the label tables, for cache keys
    // The pool's shared counters (/metrics); null until the worker opens
    // them (open_metrics()) or when they cannot be opened.
    std::unique_ptr<Metrics> metrics;

    // Limits for one request: call when the request starts (the deadline
    // counts from then).
    nifti::ReadLimits read_limits() const;

    // A computed result: a results cache entry, or an unlinked temporary
    // holding it, open, to be streamed with its exact length.
    struct Result {
        std::optional<std::filesystem::path> entry;
        std::shared_ptr<FileBody> file;
    };

    // The result for `key` + `suffix`, computed by `produce` (which writes it
    // whole to the sink) when missing. Stored in the results cache when that
    // is on and can take it; when the cache cannot store it (full or
    // read-only file system, lost permissions: cache::StoreError) the partial
    // file is gone, the failure is logged once, and the result is computed
    // into an unlinked temporary in temp_dir instead. When that cannot be
    // written either, throws Error(Busy) (503 with Retry-After). Errors of
    // `produce` itself propagate unchanged.
    Result compute_result(std::string_view key, std::string_view suffix,
                          const std::function<void(nifti::ByteSink&)>& produce) const;

    // As compute_result for a small text answer (JSON): the cached text, or
    // `compute()`'s, which is answered even when the cache cannot store it.
    std::string cached_text(std::string_view key, std::string_view suffix,
                            const std::function<std::string()>& compute) const;

    // Opens the data root, loads the label tables, creates the cache
    // directory. Throws Error naming what is wrong (the worker exits with
    // the error table's code: 2 for a bad setting, 1 for a missing data root
    // or an unusable cache directory).
    // `log` defaults to one line on stderr.
    static std::unique_ptr<Context> create(const Config& config,
                                           std::function<void(std::string_view)> log = {});

    // Whether the last attempt to store in the cache failed: failures are
    // logged when this turns true, recovery when it turns false again.
    mutable std::atomic<bool> cache_store_failing{false};

private:
    void note_store_failure(const std::string& why) const;
    void note_store_success() const;
};

}  // namespace medimg::fcgi
