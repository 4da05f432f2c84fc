// `medimg serve`'s lighttpd configuration: the settings it holds, and the
// renderer that fills lighttpd/medimg-serve.conf.in with them. Pure: no
// files, no processes, no environment; the text comes in, the text goes out.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace medimg::cli {

// Everything `medimg serve` has resolved that lighttpd must know.
struct LighttpdSettings {
    std::string bind;                        // numeric address; IPv6 without brackets
    int port = 0;
    std::filesystem::path runtime_dir;       // private: upload dir, the empty document root
    std::filesystem::path data_root;         // served under /output/
    std::filesystem::path www_root;          // the viewer, served at /
    std::filesystem::path lighttpd_dir;      // medimg-routes.conf and the .lua files
    std::filesystem::path cache_dir;         // x-sendfile-docroot
    std::filesystem::path socket;            // lighttpd appends "-0" … "-N"
    bool access_log = true;                  // on stderr; else /dev/null
    bool dir_listing = true;
    std::vector<std::string> cors_origins;   // lighttpd/cors.lua's allow-list; empty: no CORS
    std::filesystem::path worker_binary;     // medimg-fcgi
    int worker_threads = 0;                  // its --threads
    std::optional<std::filesystem::path> worker_config;   // its --config
    int workers = 0;                         // lighttpd's max-procs
    std::vector<std::pair<std::string, std::string>> worker_environment;   // bin-environment
};

// The template's text with every @NAME@ filled from `settings`. Values are
// placed between double quotes; a value lighttpd could read as something
// else (a double quote, a backslash, a control character) is refused with
// Error(BadParameter) naming the setting, and so is a space in the worker's
// command line (lighttpd splits bin-path at spaces). Other characters,
// spaces in the data root included, are kept verbatim. A placeholder the
// settings do not fill is a template bug: Error(Internal).
std::string render_lighttpd_conf(std::string_view template_text, const LighttpdSettings& settings);

// `value` as it goes between double quotes in lighttpd's configuration;
// throws Error(BadParameter) "{what}: characters lighttpd's configuration
// cannot hold: {value}" for a double quote, a backslash or a control
// character.
std::string lighttpd_string(const std::string& value, std::string_view what);

// Replaces each @NAME@ of `text` (NAME: upper-case letters and '_') by
// values[NAME] in one pass: the values themselves are never searched, so a
// value holding "@PORT@" stays as it is. Throws Error(Internal) naming a
// placeholder `values` lacks.
std::string fill_placeholders(std::string_view text, const std::map<std::string, std::string>& values);

}  // namespace medimg::cli
