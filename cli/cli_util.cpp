// Shared pieces of the `medimg` subcommands (see cli_util.hpp).
#include "cli_util.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "error.hpp"

namespace medimg::cli {
namespace stdfs = std::filesystem;

std::optional<std::string> ParsedArgs::value(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

ParsedArgs parse_args(const Args& args, const std::vector<OptionSpec>& specs) {
    ParsedArgs out;
    bool options_done = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (options_done || a == "-" || a.empty() || a[0] != '-') {
            out.positional.push_back(a);
            continue;
        }
        if (a == "--") {
            options_done = true;
            continue;
        }
        if (a == "--help" || a == "-h") {
            out.set_flag("--help");
            continue;
        }
        std::string name = a;
        std::optional<std::string> inline_value;
        if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
            name = a.substr(0, eq);
            inline_value = a.substr(eq + 1);
        }
        const OptionSpec* spec = nullptr;
        for (const auto& s : specs)
            if (s.name == name) spec = &s;
        // A short option with its value attached: "-j2".
        if (!spec && a.size() > 2 && a[1] != '-')
            for (const auto& s : specs)
                if (s.takes_value && s.name == a.substr(0, 2)) {
                    spec = &s;
                    name = s.name;
                    inline_value = a.substr(2);
                }
        if (!spec) throw Error(ErrorCode::BadParameter, "unknown option '" + name + "'");
        if (!spec->takes_value) {
            if (inline_value) throw Error(ErrorCode::BadParameter, name + " takes no value");
            out.set_flag(name);
            continue;
        }
        if (inline_value) {
            out.set_value(name, *inline_value);
        } else {
            if (i + 1 >= args.size())
                throw Error(ErrorCode::BadParameter, name + " needs a value");
            out.set_value(name, args[++i]);
        }
    }
    return out;
}

bool print_help(const ParsedArgs& parsed, const char* usage) {
    if (!parsed.has("--help")) return false;
    std::fputs(usage, stdout);
    return true;
}

const std::string& single_positional(const ParsedArgs& parsed, std::string_view what) {
    if (parsed.positional.size() != 1)
        throw Error(ErrorCode::BadParameter, "expected one " + std::string(what) + ", got " +
                                                 std::to_string(parsed.positional.size()));
    return parsed.positional[0];
}

namespace {

// Configuration options of the reading commands and the keys they set.
const std::vector<std::pair<std::string, std::string>> kConfigFlags = {
    {"--max-voxels", "limits.max_voxels"},
    {"--max-label-ids", "limits.max_label_ids"},
    {"--label-dict", "paths.label_dict"},
    {"--label-colors", "paths.label_colors"},
};

}  // namespace

std::vector<OptionSpec> with_config_options(std::vector<OptionSpec> specs) {
    specs.push_back({"--config", true});
    for (const auto& [flag, key] : kConfigFlags) specs.push_back({flag, true});
    return specs;
}

Config load_cli_config(const ParsedArgs& parsed) {
    ConfigSources sources;
    if (auto v = parsed.value("--config")) sources.ini_file = *v;
    sources.environment = environment_map();
    std::error_code ec;
    sources.working_dir = stdfs::current_path(ec);
    sources.dotenv_dir = sources.working_dir;
    for (const auto& [flag, key] : kConfigFlags)
        if (auto v = parsed.value(flag)) sources.flags[key] = *v;
    sources.conf_dir = conf_dir();
    return load_config(sources);
}

nifti::ReadLimits read_limits(const Config& config) {
    nifti::ReadLimits limits;
    limits.header.max_voxels = config.max_voxels;
    return limits;
}

std::int64_t parse_int(std::string_view text, std::string_view option, std::int64_t min,
                       std::int64_t max) {
    std::int64_t v = 0;
    const char* first = text.data();
    const char* last = text.data() + text.size();
    if (!text.empty() && text[0] == '+') ++first;
    auto [ptr, ec] = std::from_chars(first, last, v);
    if (text.empty() || ec != std::errc() || ptr != last || v < min || v > max)
        throw Error(ErrorCode::BadParameter,
                    std::string(option) + " is '" + std::string(text) + "'; it must be a whole number from " +
                        std::to_string(min) + " to " + std::to_string(max));
    return v;
}

stdfs::path conf_dir() {
#if defined(MEDIMG_CONF_DIR_BUILD) && defined(MEDIMG_CONF_DIR_INSTALL) && defined(MEDIMG_INSTALL_BINDIR)
    std::error_code ec;
    const stdfs::path exe = stdfs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const stdfs::path bindir = stdfs::weakly_canonical(stdfs::path(MEDIMG_INSTALL_BINDIR), ec);
        if (!ec && exe.parent_path() == bindir &&
            stdfs::exists(stdfs::path(MEDIMG_CONF_DIR_INSTALL) / "vista3d_label_dict.json", ec))
            return MEDIMG_CONF_DIR_INSTALL;
    }
    return MEDIMG_CONF_DIR_BUILD;
#else
    return "conf";
#endif
}

labels::Dictionary load_dictionary(const Config& config) {
    auto is_explicit = [&](const char* key) {
        auto it = config.origin.find(key);
        return it != config.origin.end() && it->second != "default";
    };
    stdfs::path dict = config.label_dict, colors = config.label_colors;
    const bool dict_explicit = is_explicit("paths.label_dict");
    const bool colors_explicit = is_explicit("paths.label_colors");
    std::error_code ec;
    // The VISTA3D colour table also names its labels; a dictionary of one's
    // own must not be renamed by it, so it then comes without default colours.
    if (dict_explicit && !colors_explicit) colors.clear();
    if (!dict_explicit && !stdfs::exists(dict, ec)) dict.clear();
    if (!colors_explicit && !stdfs::exists(colors, ec)) colors.clear();
    return labels::Dictionary::load(dict, colors);
}

int report_error(std::string_view command, std::string_view detail, int exit_code) {
    std::fprintf(stderr, "medimg %.*s: %.*s\n", static_cast<int>(command.size()), command.data(),
                 static_cast<int>(detail.size()), detail.data());
    return exit_code;
}

int report_error(std::string_view command, const std::exception& e) {
    if (const auto* err = dynamic_cast<const Error*>(&e)) {
        std::string detail = err->what();
        if (err->exit_code() == 2)
            detail += " (see 'medimg " + std::string(command) + " --help')";
        return report_error(command, detail, err->exit_code());
    }
    if (dynamic_cast<const std::bad_alloc*>(&e))
        return report_error(command, "out of memory", 1);
    return report_error(command, std::string("internal error: ") + e.what(), 1);
}

int run_guarded(std::string_view command, const std::function<int()>& body) {
    try {
        return body();
    } catch (const std::exception& e) {
        return report_error(command, e);
    } catch (...) {
        return report_error(command, "internal error: unknown exception", 1);
    }
}

int for_each_input(const std::vector<std::string>& inputs, std::string_view command,
                   const std::function<void(const std::string&)>& body) {
    int first_failure = 0;
    for (const auto& in : inputs) {
        int code = 0;
        try {
            body(in);
        } catch (const Error& e) {
            code = report_error(command, in + ": " + e.what(), e.exit_code());
        } catch (const std::bad_alloc&) {
            code = report_error(command, in + ": out of memory", 1);
        } catch (const std::exception& e) {
            code = report_error(command, in + ": internal error: " + e.what(), 1);
        }
        std::fflush(stdout);
        if (!first_failure) first_failure = code;
    }
    return first_failure;
}

bool stderr_is_tty() { return ::isatty(2) == 1; }

}  // namespace medimg::cli
