// `medimg filter`: keep (or mask) chosen label ids of one segmentation, or of
// many into an output directory.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"
#include "error.hpp"
#include "labels/filter.hpp"
#include "labels/label_map.hpp"
#include "labels/label_set.hpp"
#include "nifti/reader.hpp"

namespace medimg::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: medimg filter IN OUT --labels IDS [options]\n"
    "       medimg filter --labels IDS --outdir DIR [options] IN...\n"
    "\n"
    "Keeps the chosen label ids of a segmentation (all other voxels become 0),\n"
    "or writes a 0/1 mask of them. OUT may be '-' for stdout. The output\n"
    "container follows the name: .nii.gz gzip, .nii plain; .hdr/.img inputs\n"
    "become .nii.gz. A failed filter leaves no output file.\n"
    "\n"
    "options:\n"
    "  --labels IDS        ids and inclusive ranges, e.g. 1,5,10-12 ('' = none)\n"
    "  --names NAMES       label names from the dictionary, e.g. aorta,liver\n"
    "                      (case-insensitive; combined with --labels)\n"
    "  --map RULES         new ids for selected ids, e.g. 6:1,28-32:2 (keep mode;\n"
    "                      without --labels/--names the sources are the selection)\n"
    "  --mode keep|mask    keep ids (default) or write uint8 0/1\n"
    "  --crop              crop to the bounding box of the selected voxels\n"
    "  --margin N          voxels kept around that box (with --crop)\n"
    "  --level 0-9         gzip level (default 1; 0 stores uncompressed blocks)\n"
    "  --max-voxels N      refuse larger images (default 536870912)\n"
    "  --outdir DIR        batch mode: write DIR/filtered_{name} for every IN\n"
    "  --quiet             no progress bar in batch mode\n"
    "  --label-dict FILE   label names ({\"name\": id}; default conf/vista3d_label_dict.json,\n"
    "                      or $MEDIMG_LABEL_DICT)\n"
    "  --label-colors FILE label colours (default conf/vista3d_label_colors.json,\n"
    "                      or $MEDIMG_LABEL_COLORS)\n"
    "\n"
    "exit status: 0 success, 2 usage error, 3 invalid or corrupt input, 1 other;\n"
    "in batch mode the highest status of all files.\n";

const std::vector<OptionSpec> kOptions = {
    {"--labels", true},     {"--names", true},      {"--map", true},        {"--mode", true},
    {"--crop", false},      {"--margin", true},     {"--level", true},
    {"--max-voxels", true}, {"--outdir", true},     {"--quiet", false},
    {"--label-dict", true}, {"--label-colors", true},
};

struct Job {
    labels::FilterOptions options;
    nifti::ReadLimits limits;
};

Job parse_job(const ParsedArgs& parsed) {
    Job job;
    const auto ids = parsed.value("--labels");
    const auto names = parsed.value("--names");
    const auto map = parsed.value("--map");
    if (!ids && !names && !map)
        throw Error(ErrorCode::BadParameter, "--labels, --names or --map is required");
    if (map) job.options.map = labels::LabelMap::parse(*map, kMaxLabelIds);
    // Without --labels/--names the map's sources are the selection.
    labels::LabelSet set = ids || names ? labels::LabelSet{} : job.options.map.sources();
    if (ids) set = labels::LabelSet::parse(*ids, kMaxLabelIds);
    if (names) {
        const labels::Dictionary dict = load_dictionary(parsed);
        set.merge(labels::LabelSet::parse_names(*names, dict, kMaxLabelIds));
        if (set.count() > kMaxLabelIds)
            throw Error(ErrorCode::TooManyLabels, "more than " + std::to_string(kMaxLabelIds) +
                                                      " label ids are selected");
    }
    job.options.labels = std::move(set);

    const std::string mode = parsed.value("--mode").value_or("keep");
    if (mode == "keep") {
        job.options.mode = labels::Mode::Keep;
    } else if (mode == "mask") {
        job.options.mode = labels::Mode::Mask;
    } else {
        throw Error(ErrorCode::BadParameter, "--mode is '" + mode + "'; it must be keep or mask");
    }
    job.options.crop = parsed.has("--crop");
    if (auto m = parsed.value("--margin")) {
        if (!job.options.crop) throw Error(ErrorCode::BadParameter, "--margin needs --crop");
        job.options.margin = parse_int(*m, "--margin", 0, 1 << 20);
    }
    if (auto l = parsed.value("--level"))
        job.options.gzip_level = static_cast<int>(parse_int(*l, "--level", 0, 9));
    job.limits = read_limits(parsed);
    return job;
}

// One line "\r[#####.....] k/n name" on stderr, rewritten in place.
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

int run_batch(const ParsedArgs& parsed, const Job& job) {
    const fs::path outdir = *parsed.value("--outdir");
    if (parsed.positional.empty())
        throw Error(ErrorCode::BadParameter, "--outdir needs at least one input file");
    for (const auto& in : parsed.positional)
        if (in == "-") throw Error(ErrorCode::BadParameter, "'-' is not an input in batch mode");
    std::error_code ec;
    fs::create_directories(outdir, ec);
    if (ec || !fs::is_directory(outdir))
        throw Error(ErrorCode::Io, "cannot create the output directory " + outdir.string() +
                                       (ec ? ": " + ec.message() : ""));

    Progress progress(parsed.positional.size(), stderr_is_tty() && !parsed.has("--quiet"));
    std::set<fs::path> written;
    int worst = 0;
    std::size_t done = 0;
    for (const auto& in : parsed.positional) {
        progress.show(done, in);
        const fs::path out = outdir / nifti::filtered_name(nifti::parse_image_name(in));
        int code = 0;
        if (!written.insert(out).second) {
            progress.clear();
            code = report_error("filter", in + ": its output " + out.string() +
                                              " would overwrite that of an earlier input", 2);
        } else {
            try {
                labels::filter_file(in, out, job.options, job.limits);
            } catch (const Error& e) {
                progress.clear();
                code = report_error("filter", in + ": " + e.what(), e.exit_code());
            } catch (const std::exception& e) {
                progress.clear();
                code = report_error("filter", in + ": " + e.what(), 1);
            }
        }
        worst = std::max(worst, code);
        ++done;
    }
    progress.show(done, "");
    progress.clear();
    return worst;
}

int run(const Args& args) {
    const ParsedArgs parsed = parse_args(args, kOptions);
    if (print_help(parsed, kUsage)) return 0;
    const Job job = parse_job(parsed);
    if (parsed.has("--outdir")) return run_batch(parsed, job);
    if (parsed.positional.size() != 2)
        throw Error(ErrorCode::BadParameter,
                    "expected IN and OUT (or --outdir DIR with inputs), got " +
                        std::to_string(parsed.positional.size()) + " file argument(s)");
    const std::string& in = parsed.positional[0];
    const std::string& out = parsed.positional[1];
    if (in == "-") throw Error(ErrorCode::BadParameter, "reading the input from stdin is not supported");
    if (out == "-") std::fflush(stdout);
    labels::filter_file(in, out, job.options, job.limits);
    return 0;
}

}  // namespace

int run_filter(const Args& args) {
    return run_guarded("filter", [&] { return run(args); });
}

}  // namespace medimg::cli
