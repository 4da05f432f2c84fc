// Shared pieces of the `medimg` subcommands: option parsing, --help, the one
// positional argument, --max-voxels, number parsing, the label dictionary
// lookup, and the one place errors become messages and exit codes.
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "commands.hpp"
#include "config.hpp"
#include "labels/dictionary.hpp"
#include "nifti/reader.hpp"

namespace medimg::cli {

// Prints `j` (nlohmann::json or ordered_json) as one line on standard output
// and flushes it. A file name may hold any bytes: those that are not UTF-8
// are shown as U+FFFD, so that a name never costs its line (or the batch).
template <class Json>
void print_json_line(const Json& j) {
    const std::string text = j.dump(-1, ' ', false, Json::error_handler_t::replace);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

struct OptionSpec {
    std::string name;        // "--labels"
    bool takes_value;        // "--labels V" / "--labels=V"; else a flag
};

// Options and positional arguments of one command line.
class ParsedArgs {
public:
    std::vector<std::string> positional;

    bool has(const std::string& name) const { return flags_.count(name) || values_.count(name); }
    std::optional<std::string> value(const std::string& name) const;

    void set_flag(const std::string& name) { flags_.insert(name); }
    void set_value(const std::string& name, std::string v) { values_[name] = std::move(v); }

private:
    std::set<std::string> flags_;
    std::map<std::string, std::string> values_;
};

// Splits `args` by `specs`. "--name=value" and "--name value" both work; "-"
// is a positional (stdout/stdin); "--" ends the options. "--help"/"-h" is
// always recognised as a flag named "--help". Throws Error(BadParameter)
// on an unknown option, a missing value, or a value given to a flag.
ParsedArgs parse_args(const Args& args, const std::vector<OptionSpec>& specs);

// True when the command line asks for help ("--help"/"-h"), after printing
// `usage` on stdout; the command then returns 0.
bool print_help(const ParsedArgs& parsed, const char* usage);

// The one positional argument; else throws Error(BadParameter)
// "expected one {what}, got N".
const std::string& single_positional(const ParsedArgs& parsed, std::string_view what);

// The options every reading command takes for the configuration
// (conf/medimg.ini): --config FILE, --max-voxels N, --max-label-ids N, --label-dict FILE,
// --label-colors FILE. Appended to a command's own specs.
std::vector<OptionSpec> with_config_options(std::vector<OptionSpec> specs);
// Their --help lines (after the --max-voxels line of each command).
#define MEDIMG_CLI_CONFIG_HELP                                                        \
    "  --config FILE       medimg.ini (default $MEDIMG_CONFIG, else none); then\n"   \
    "                      MEDIMG_* variables and ./.env, as the worker reads them\n" \
    "  -h, --help          this text\n"

// The configuration the worker would read, for the CLI: flags (the options
// above) over the environment (MEDIMG_*) over `.env` in the working
// directory over the ini file (--config, else $MEDIMG_CONFIG; none by
// default) over built-in defaults. Throws Error(BadParameter) naming the key.
Config load_cli_config(const ParsedArgs& parsed);

// Read limits from the configuration ([limits] max_voxels).
nifti::ReadLimits read_limits(const Config& config);

// A whole decimal number in [min, max]; throws Error(BadParameter) naming
// the option and the value.
std::int64_t parse_int(std::string_view text, std::string_view option, std::int64_t min,
                       std::int64_t max);

// Where the label tables live: MEDIMG_CONF_DIR_INSTALL when the binary runs
// from the install prefix, else the source tree's conf/.
std::filesystem::path conf_dir();

// The label dictionary of the configuration ([paths] label_dict and
// label_colors: --label-dict / --label-colors, MEDIMG_LABEL_DICT, ...), else
// conf_dir()'s VISTA3D tables. Missing default tables give an empty dictionary (ids as names);
// a missing or malformed file named explicitly throws. A dictionary named
// explicitly without a colour table gets no default colours (the VISTA3D
// colour table carries names too, which would override it).
labels::Dictionary load_dictionary(const Config& config);

// Prints "medimg {command}: {detail}" on stderr and returns the exit code:
// Error::exit_code() for medimg::Error, 1 for anything else.
int report_error(std::string_view command, const std::exception& e);
int report_error(std::string_view command, std::string_view detail, int exit_code);

// Runs `body`, turning every exception into a message and an exit code.
int run_guarded(std::string_view command, const std::function<int()>& body);

// Runs `body` on every input in order; an error is reported naming its
// input ("medimg {command}: {input}: {detail}") and the next input goes on.
// Returns the exit code of the first failure, 0 when none failed.
int for_each_input(const std::vector<std::string>& inputs, std::string_view command,
                   const std::function<void(const std::string&)>& body);

bool stderr_is_tty();

}  // namespace medimg::cli
