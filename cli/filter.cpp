// `medimg filter`: keep (or mask) chosen label ids of one segmentation, or of
// many into an output directory (man/medimg.1).
#include <cstdlib>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_util.hpp"
#include "commands.hpp"
#include "error.hpp"
#include "labels/filter.hpp"
#include "labels/filter_options.hpp"
#include "nifti/datatype.hpp"
#include "nifti/file_name.hpp"
#include "nifti/reader.hpp"
#include "nifti/byte_io.hpp"

namespace medimg::cli {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kUsage =
    "usage: medimg filter IN OUT --labels IDS [options]\n"
    "       medimg filter --labels IDS --outdir DIR [options] IN...\n"
    "\n"
    "Keeps the chosen label ids of a segmentation (all other voxels become 0),\n"
    "or writes a 0/1 mask of them. IN may be '-' for stdin and OUT '-' for\n"
    "stdout. The output container follows OUT's name (.nii.gz gzip, .nii plain;\n"
    "stdout: IN's, gzip for stdin); .hdr/.img inputs become .nii.gz. A failed\n"
    "filter leaves no output file. IN OUT overwrites OUT unless --no-clobber.\n"
    "\n"
    "Stdin (a .nii or .nii.gz) from a pipe is read once as it arrives, in\n"
    "memory that does not grow with the image; nothing is copied, except that\n"
    "--crop and float or scaled label maps, which read the voxels twice, keep\n"
    "one copy of them in an unlinked file in $TMPDIR (default /tmp). A stream\n"
    "that ends early is status 3; a .hdr/.img pair on stdin is refused.\n"
    "\n"
    "Batch (--outdir): every IN is written to DIR/filtered_{name} (with\n"
    "--keep-tree: DIR/{IN's folder}/filtered_{name}). Every output name is\n"
    "checked before anything is written: two inputs with one output, or an\n"
    "output that exists (without --force or --no-clobber), stop the batch\n"
    "with status 2 and nothing written. Inputs named filtered_* that sit in\n"
    "the folder their output would go to are outputs of an earlier run: they\n"
    "are skipped, never filtered again.\n"
    "\n"
    "options:\n"
    "  --labels IDS        ids and inclusive ranges, e.g. 1,5,10-12 ('' = none)\n"
    "  --names NAMES       label names from the dictionary, e.g. aorta,right_kidney\n"
    "                      (case-insensitive, '_' = space; combined with --labels)\n"
    "  --map RULES         new ids for selected ids, e.g. 6:1,28-32:2 (keep mode;\n"
    "                      without --labels/--names the sources are the selection)\n"
    "  --mode keep|mask    keep ids (default) or write uint8 0/1\n"
    "  --crop              crop to the bounding box of the selected voxels\n"
    "  --margin N          voxels kept around that box (with --crop; 0-1000)\n"
    "  --level 0-9         gzip level (default [filter] gzip_level, 1;\n"
    "                      0 stores uncompressed blocks)\n"
    "  --outdir DIR        batch mode, see above\n"
    "  --files-from FILE   more inputs, one per line ('-': stdin)\n"
    "  -j, --jobs N        filter N files at a time (default 1); output order\n"
    "                      and exit status do not depend on N\n"
    "  --keep-tree         mirror the inputs' folders under DIR\n"
    "  --force             overwrite existing outputs\n"
    "  --no-clobber        skip inputs whose output exists\n"
    "  --json              one JSON line per input on stdout: input, output,\n"
    "                      status (ok, error, skipped), error, error_code,\n"
    "                      exit_status, voxels_selected, seconds\n"
    "  --quiet             no progress bar and no summary line\n"
    "  --max-voxels N      refuse larger images ([limits] max_voxels)\n"
    "  --max-label-ids N   most ids selected ([limits] max_label_ids)\n"
    "  --label-dict FILE   label names ([paths] label_dict; default the VISTA3D table)\n"
    "  --label-colors FILE label colours ([paths] label_colors)\n"
    MEDIMG_CLI_CONFIG_HELP
    "\n"
    "exit status: 0 success, 2 usage error (also an unknown label name and a\n"
    "refused overwrite), 3 invalid or corrupt input, 1 other; in batch mode\n"
    "the status of the first input that failed, in input order.\n";

const std::vector<OptionSpec> kOptions = with_config_options({
    {"--labels", true},     {"--names", true},      {"--map", true},        {"--mode", true},
    {"--crop", false},      {"--margin", true},     {"--level", true},
    {"--outdir", true},     {"--quiet", false},     {"--files-from", true},
    {"-j", true},           {"--jobs", true},       {"--keep-tree", false},
    {"--force", false},     {"--no-clobber", false}, {"--json", false},
});

struct Job {
    labels::FilterOptions options;
    nifti::ReadLimits limits;
};

Job parse_job(const ParsedArgs& parsed, const Config& config) {
    using labels::FilterOption;
    labels::FilterOptionSources src;
    src.value = [&](FilterOption option) -> std::optional<std::string> {
        switch (option) {
            case FilterOption::LabelIds: return parsed.value("--labels");
            case FilterOption::Names: return parsed.value("--names");
            case FilterOption::Map: return parsed.value("--map");
            case FilterOption::Mode: return parsed.value("--mode");
            case FilterOption::Crop: return parsed.has("--crop") ? std::optional<std::string>("1")
                                                                  : std::nullopt;
            case FilterOption::Margin: return parsed.value("--margin");
            case FilterOption::Level: return parsed.value("--level");
        }
        return std::nullopt;
    };
    src.dictionary = [&] { return load_dictionary(config); };
    src.max_label_ids = config.max_label_ids;
    src.default_level = config.gzip_level;
    Job job;
    job.options = labels::parse_filter_options(src, labels::kCommandLineSyntax);
    job.limits = read_limits(config);
    return job;
}

// "\r[#####.....] k/n name" on stderr, rewritten in place.
class Progress {
public:
    Progress(std::size_t total, bool enabled) : total_(total), enabled_(enabled) {}
    void show(std::size_t done, const std::string& name) {
        if (!enabled_) return;
        constexpr int kWidth = 30;
        const int filled = total_ ? static_cast<int>(kWidth * done / total_) : kWidth;
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.append(static_cast<std::size_t>(kWidth - filled), '.');
        std::string shown = name.size() > 40 ? "..." + name.substr(name.size() - 37) : name;
        std::fprintf(stderr, "\r\033[K[%s] %zu/%zu %s", bar.c_str(), done, total_, shown.c_str());
        std::fflush(stderr);
        visible_ = true;
    }
    // Clears the bar so a message can be printed on a clean line.
    void clear() {
        if (!enabled_ || !visible_) return;
        std::fputs("\r\033[K", stderr);
        visible_ = false;
    }

private:
    std::size_t total_;
    bool enabled_;
    bool visible_ = false;
};

enum class Status { Pending, Ok, Error, Skipped };

struct Item {
    std::string input;   // as given
    stdfs::path output;
    Status status = Status::Pending;
    std::string skip_reason;
    std::string error;   // detail
    std::string error_code;
    int exit_status = 0;
    std::uint64_t voxels_selected = 0;
    double seconds = 0;
};

// Inputs: the arguments, then --files-from (one name a line; empty lines
// skipped; a trailing '\r' removed).
std::vector<std::string> batch_inputs(const ParsedArgs& parsed) {
    std::vector<std::string> inputs = parsed.positional;
    if (auto list = parsed.value("--files-from")) {
        std::ifstream file;
        std::istream* in = &std::cin;
        if (*list != "-") {
            file.open(*list);
            if (!file)
                throw Error(ErrorCode::NotFound, "--files-from " + *list + ": cannot be read");
            in = &file;
        }
        std::string line;
        while (std::getline(*in, line)) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (!line.empty()) inputs.push_back(line);
        }
    }
    for (const auto& in : inputs)
        if (in == "-")
            throw Error(ErrorCode::BadParameter,
                        "'-' (stdin) is an input only in the form 'medimg filter - OUT'");
    if (inputs.empty())
        throw Error(ErrorCode::BadParameter, "--outdir needs at least one input file");
    return inputs;
}

// Where IN's output goes: DIR/filtered_{name}, or with --keep-tree
// DIR/{IN's folder}/filtered_{name} (an absolute IN keeps its whole path
// below DIR; a folder with ".." cannot be mirrored and is refused).
stdfs::path output_of(const std::string& input, const stdfs::path& outdir, bool keep_tree) {
    const stdfs::path in(input);
    const std::string name = nifti::filtered_name(nifti::parse_image_name(in.filename().string()));
    if (!keep_tree) return outdir / name;
    stdfs::path folder = in.parent_path().lexically_normal().relative_path();
    for (const auto& part : folder)
        if (part == "..")
            throw Error(ErrorCode::BadParameter,
                        input + ": --keep-tree cannot mirror a folder with '..' under --outdir");
    if (folder == ".") folder.clear();
    return outdir / folder / name;
}

// The same file or folder, when both exist.
bool same_entry(const stdfs::path& a, const stdfs::path& b) {
    std::error_code ec;
    return stdfs::equivalent(a, b, ec);
}

nlohmann::json json_line(const Item& item) {
    static const char* names[] = {"pending", "ok", "error", "skipped"};
    nlohmann::json j = {
        {"input", item.input},
        {"output", item.output.string()},
        {"status", names[static_cast<int>(item.status)]},
        {"error", item.status == Status::Error ? nlohmann::json(item.error) : nlohmann::json()},
        {"error_code",
         item.status == Status::Error ? nlohmann::json(item.error_code) : nlohmann::json()},
        {"exit_status", item.exit_status},
        {"voxels_selected", item.voxels_selected},
        {"seconds", item.seconds},
    };
    if (item.status == Status::Skipped) j["reason"] = item.skip_reason;
    return j;
}

void filter_one(Item& item, const Job& job) {
    const auto start = std::chrono::steady_clock::now();
    try {
        const auto result = labels::filter_file(item.input, item.output, job.options, job.limits);
        item.voxels_selected = result.voxels_selected;
        item.status = Status::Ok;
    } catch (const Error& e) {
        item.status = Status::Error;
        item.error = e.what();
        item.error_code = std::string(e.id());
        item.exit_status = e.exit_code();
    } catch (const std::exception& e) {
        item.status = Status::Error;
        item.error = e.what();
        item.error_code = "internal_error";
        item.exit_status = 1;
    }
    item.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The batch options (man/medimg.1).
struct BatchSettings {
    stdfs::path outdir;
    bool keep_tree = false, force = false, no_clobber = false, json = false, quiet = false;
    int jobs = 1;
};

BatchSettings batch_settings(const ParsedArgs& parsed) {
    BatchSettings b;
    b.outdir = *parsed.value("--outdir");
    b.keep_tree = parsed.has("--keep-tree");
    b.force = parsed.has("--force");
    b.no_clobber = parsed.has("--no-clobber");
    b.json = parsed.has("--json");
    b.quiet = parsed.has("--quiet");
    if (b.force && b.no_clobber)
        throw Error(ErrorCode::BadParameter, "--force and --no-clobber exclude each other");
    if (auto j = parsed.value("-j").has_value() ? parsed.value("-j") : parsed.value("--jobs"))
        b.jobs = static_cast<int>(parse_int(*j, "-j", 1, 256));
    return b;
}

// Step 1: one item per input, with its output name.
std::vector<Item> plan_outputs(const ParsedArgs& parsed, const BatchSettings& b) {
    std::vector<Item> items;
    for (auto& in : batch_inputs(parsed)) {
        Item item;
        item.output = output_of(in, b.outdir, b.keep_tree);
        item.input = std::move(in);
        items.push_back(std::move(item));
    }
    return items;
}

// Still step 1: every output name is checked before anything is written.
// Marks the outputs of an earlier run and, with --no-clobber, inputs whose
// output exists as skipped; returns the refusals (two inputs with one
// output, an output that is its input, an output that exists).
std::vector<std::string> check_outputs(std::vector<Item>& items, const BatchSettings& b) {
    std::map<stdfs::path, std::size_t> first_with_output;
    std::vector<std::string> refusals;
    for (std::size_t i = 0; i < items.size(); ++i) {
        Item& item = items[i];
        const stdfs::path in(item.input);
        // An output of this naming in the folder its own output would go to:
        // a re-run over a folder that already holds results.
        if (in.filename().string().rfind("filtered_", 0) == 0 &&
            same_entry(in.parent_path().empty() ? "." : in.parent_path(),
                       item.output.parent_path())) {
            item.status = Status::Skipped;
            item.skip_reason = "an output of an earlier run (filtered_* in its output folder)";
            continue;
        }
        const stdfs::path key = item.output.lexically_normal();
        auto [it, fresh] = first_with_output.emplace(key, i);
        if (!fresh) {
            refusals.push_back(item.input + ": its output " + item.output.string() +
                               " is also that of " + items[it->second].input +
                               (b.keep_tree ? "" : " (--keep-tree keeps their folders apart)"));
            continue;
        }
        std::error_code ec;
        if (same_entry(in, item.output)) {
            refusals.push_back(item.input + ": its output is the input itself");
        } else if (stdfs::symlink_status(item.output, ec).type() != stdfs::file_type::not_found) {
            if (b.no_clobber) {
                item.status = Status::Skipped;
                item.skip_reason = "output exists (--no-clobber)";
            } else if (!b.force) {
                refusals.push_back(item.input + ": its output " + item.output.string() +
                                   " exists (--force overwrites it, --no-clobber skips it)");
            }
        }
    }
    return refusals;
}

// Step 3, as results arrive: each item's message, JSON line and progress,
// in input order; the counts, the first failure's status and the summary.
class BatchReport {
public:
    BatchReport(std::size_t total, const BatchSettings& b)
        : total_(total), json_(b.json), tty_(stderr_is_tty() && !b.quiet), progress_(total, tty_),
          started_(std::chrono::steady_clock::now()) {}

    void add(std::size_t index, const Item& item) {
        if (item.status == Status::Error) {
            progress_.clear();
            report_error("filter", item.input + ": " + item.error, item.exit_status);
            if (!first_failure_) first_failure_ = item.exit_status;
            ++failed_;
        } else if (item.status == Status::Skipped) {
            ++skipped_;
        } else {
            ++ok_;
        }
        if (json_) print_json_line(json_line(item));
        progress_.show(index + 1, item.input);
    }

    // The summary line (on a terminal); returns the batch's exit status.
    int finish() {
        progress_.clear();
        if (tty_) {
            const double secs =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
            std::fprintf(stderr, "medimg filter: %zu written, %zu skipped, %zu failed of %zu in %.2f s\n",
                         ok_, skipped_, failed_, total_, secs);
        }
        return first_failure_;
    }

private:
    std::size_t total_;
    bool json_, tty_;
    Progress progress_;
    std::chrono::steady_clock::time_point started_;
    int first_failure_ = 0;
    std::size_t ok_ = 0, failed_ = 0, skipped_ = 0;
};

// Step 2: `jobs` workers take the next pending item; `done(i, item)` is
// called on this thread in input order as soon as every earlier item is
// done, whatever the number of workers.
template <typename Done>
void run_jobs(std::vector<Item>& items, const Job& job, const BatchSettings& b, Done done) {
    std::mutex mutex;
    std::condition_variable done_cv;
    std::vector<bool> finished(items.size(), false);
    std::size_t next = 0;
    auto worker = [&] {
        for (;;) {
            std::size_t i;
            {
                std::lock_guard lock(mutex);
                if (next >= items.size()) return;
                i = next++;
            }
            Item& item = items[i];
            if (item.status == Status::Pending) {
                if (b.keep_tree) {
                    std::error_code mk;
                    stdfs::create_directories(item.output.parent_path(), mk);
                }
                filter_one(item, job);
            }
            {
                std::lock_guard lock(mutex);
                finished[i] = true;
            }
            done_cv.notify_all();
        }
    };
    std::vector<std::thread> threads;
    const int n_threads = static_cast<int>(std::min<std::size_t>(b.jobs, items.size()));
    for (int t = 0; t < n_threads; ++t) threads.emplace_back(worker);
    std::exception_ptr failure;
    try {
        for (std::size_t i = 0; i < items.size(); ++i) {
            {
                std::unique_lock lock(mutex);
                done_cv.wait(lock, [&] { return finished[i]; });
            }
            done(i, items[i]);
        }
    } catch (...) {
        // No new job starts; the running ones finish (each output whole or
        // not there), then the failure goes on to the one catch point.
        failure = std::current_exception();
        std::lock_guard lock(mutex);
        next = items.size();
    }
    for (auto& t : threads) t.join();
    if (failure) std::rethrow_exception(failure);
}

int run_batch(const ParsedArgs& parsed, const Job& job) {
    const BatchSettings b = batch_settings(parsed);
    std::vector<Item> items = plan_outputs(parsed, b);
    const std::vector<std::string> refusals = check_outputs(items, b);
    if (!refusals.empty()) {
        for (const auto& r : refusals) report_error("filter", r, 2);
        return report_error("filter",
                            "nothing written: " + std::to_string(refusals.size()) +
                                " output name(s) refused",
                            2);
    }

    std::error_code ec;
    stdfs::create_directories(b.outdir, ec);
    if (ec || !stdfs::is_directory(b.outdir))
        throw Error(ErrorCode::Io, "cannot create the output directory " + b.outdir.string() +
                                       (ec ? ": " + ec.message() : ""));

    BatchReport report(items.size(), b);
    run_jobs(items, job, b, [&](std::size_t i, const Item& item) { report.add(i, item); });
    return report.finish();
}

// Whether filtering `reader` reads its voxels twice (labels::filter: crop
// finds the bounding box first; float and scaled maps are verified to hold
// ids before anything is written). Scaled maps are all counted, a few more
// than the filter verifies: a copy too many costs disk, one too few would
// stop the filter at its rewind.
bool reads_twice(const nifti::Reader& reader, const labels::FilterOptions& options) {
    const nifti::Header& h = reader.header();
    return options.crop || h.datatype().kind == nifti::TypeKind::Float || h.scaled();
}

// Where the copy of a stream read twice goes: $TMPDIR, else /tmp.
stdfs::path temporary_dir() {
    const char* tmp = std::getenv("TMPDIR");
    return tmp && *tmp ? stdfs::path(tmp) : stdfs::path("/tmp");
}

// The image on stdin. A regular file (`< file`) is read in place; a pipe is
// read once as it arrives, header first, in bounded memory. Only a filter
// that reads the voxels twice keeps a copy of them, in an unlinked file in
// $TMPDIR (man/medimg.1). A .hdr/.img pair cannot come through one stream:
// the reader refuses it with a message that says so.
void filter_stdin(const std::string& out, const labels::FilterOptions& options,
                  const nifti::ReadLimits& limits) {
    nifti::Reader reader = nifti::Reader::open_stream(0, "stdin", limits);
    if (reader.sequential() && reads_twice(reader, options)) reader.keep_for_rewind(temporary_dir());
    if (out == "-") {
        nifti::FdSink sink(1);
        labels::filter(reader, sink, nifti::Container::Gzip, options);
        return;
    }
    nifti::AtomicFileSink sink(out);
    labels::filter(reader, sink, nifti::output_container(nifti::parse_image_name(stdfs::path(out).filename().string())), options);
    sink.commit();
}

int run(const Args& args) {
    const ParsedArgs parsed = parse_args(args, kOptions);
    if (print_help(parsed, kUsage)) return 0;
    const Config config = load_cli_config(parsed);
    const Job job = parse_job(parsed, config);
    if (parsed.has("--outdir")) return run_batch(parsed, job);
    for (const char* batch_only : {"--files-from", "-j", "--jobs", "--keep-tree", "--force", "--json"})
        if (parsed.has(batch_only))
            throw Error(ErrorCode::BadParameter, std::string(batch_only) + " needs --outdir");
    if (parsed.positional.size() != 2)
        throw Error(ErrorCode::BadParameter,
                    "expected IN and OUT (or --outdir DIR with inputs), got " +
                        std::to_string(parsed.positional.size()) + " file argument(s)");
    const std::string& in = parsed.positional[0];
    const std::string& out = parsed.positional[1];
    std::error_code ec;
    if (out != "-" && parsed.has("--no-clobber") &&
        stdfs::symlink_status(out, ec).type() != stdfs::file_type::not_found)
        throw Error(ErrorCode::BadParameter, out + ": exists (--no-clobber)");
    try {
        if (out == "-") std::fflush(stdout);
        if (in == "-") {
            filter_stdin(out, job.options, job.limits);
        } else {
            labels::filter_file(in, out, job.options, job.limits);
        }
    } catch (const Error& e) {
        throw Error(e.code(), (in == "-" ? std::string("stdin") : in) + ": " + e.what());
    }
    return 0;
}

}  // namespace

int run_filter(const Args& args) {
    return run_guarded("filter", [&] { return run(args); });
}

}  // namespace medimg::cli
