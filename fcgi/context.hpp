// What every route shares: the effective configuration, the data root, the
// label dictionary, the results cache and the log. Built once per process.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string_view>

#include "cache/result_cache.hpp"
#include "config.hpp"
#include "fs/data_root.hpp"
#include "labels/dictionary.hpp"
#include "nifti/reader.hpp"

namespace medimg::fcgi {

struct Context {
    Config config;
    std::unique_ptr<fs::DataRoot> data_root;
    labels::Dictionary dictionary;
    std::unique_ptr<cache::ResultCache> cache;       // null when [cache] enabled = false
    std::unique_ptr<cache::MemoryLru> json_cache;    // rendered /labels and /info answers
    std::filesystem::path temp_dir;                  // unlinked temporaries for streamed results
    std::function<void(std::string_view)> log;       // one line, no newline
    std::string dictionary_identity;                 // of the label tables, for cache keys

    // Limits for one request: call when the request starts (the deadline
    // counts from then).
    nifti::ReadLimits read_limits() const;

    // Opens the data root, loads the label tables, creates the cache
    // directory. Throws Error naming what is wrong (the worker exits 2).
    // `log` defaults to one line on stderr.
    static std::unique_ptr<Context> create(const Config& config,
                                           std::function<void(std::string_view)> log = {});
};

}  // namespace medimg::fcgi
