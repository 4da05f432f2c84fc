// Shared pieces of the `medimg` subcommands (see cli_util.hpp).
#include "cli_util.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "error.hpp"

namespace medimg::cli {
namespace fs = std::filesystem;

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

nifti::ReadLimits read_limits(const ParsedArgs& parsed) {
    nifti::ReadLimits limits;
    if (auto v = parsed.value("--max-voxels"))
        limits.header.max_voxels =
            static_cast<std::uint64_t>(parse_int(*v, "--max-voxels", 1, INT64_MAX));
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

fs::path conf_dir() {
#if defined(MEDIMG_CONF_DIR_BUILD) && defined(MEDIMG_CONF_DIR_INSTALL) && defined(MEDIMG_INSTALL_BINDIR)
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        const fs::path bindir = fs::weakly_canonical(fs::path(MEDIMG_INSTALL_BINDIR), ec);
        if (!ec && exe.parent_path() == bindir &&
            fs::exists(fs::path(MEDIMG_CONF_DIR_INSTALL) / "vista3d_label_dict.json", ec))
            return MEDIMG_CONF_DIR_INSTALL;
    }
    return MEDIMG_CONF_DIR_BUILD;
#else
    return "conf";
#endif
}

namespace {

// Flag, else environment variable, else `fallback` (which may be missing).
std::pair<fs::path, bool> choose_table(const ParsedArgs& parsed, const std::string& flag,
                                       const char* env, const fs::path& fallback) {
    if (auto v = parsed.value(flag)) return {*v, true};
    if (const char* e = std::getenv(env); e && *e) return {e, true};
    return {fallback, false};
}

}  // namespace

labels::Dictionary load_dictionary(const ParsedArgs& parsed) {
    const fs::path conf = conf_dir();
    auto [dict, dict_explicit] = choose_table(parsed, "--label-dict", "MEDIMG_LABEL_DICT",
                                              conf / "vista3d_label_dict.json");
    auto [colors, colors_explicit] = choose_table(parsed, "--label-colors", "MEDIMG_LABEL_COLORS",
                                                  conf / "vista3d_label_colors.json");
    std::error_code ec;
    // The VISTA3D colour table also names its labels; a dictionary of one's
    // own must not be renamed by it, so it then comes without default colours.
    if (dict_explicit && !colors_explicit) colors.clear();
    if (!dict_explicit && !fs::exists(dict, ec)) dict.clear();
    if (!colors_explicit && !fs::exists(colors, ec)) colors.clear();
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

bool stderr_is_tty() { return ::isatty(2) == 1; }

}  // namespace medimg::cli
