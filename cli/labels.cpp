// `medimg labels`: the label ids present in a file, with names, voxel
// counts and volumes (with --image, the image's intensity statistics per
// label too), as a table or as the /labels JSON.
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"
#include "error.hpp"
#include "labels/intensity.hpp"
#include "labels/metadata.hpp"
#include "nifti/reader.hpp"

namespace medimg::cli {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kUsage =
    "usage: medimg labels IN... [--json] [--image IMG] [options]\n"
    "\n"
    "Lists the label ids present in a segmentation (0 excluded), with their\n"
    "names, voxel counts and volumes. Names and colours come from a sidecar\n"
    "next to IN ({file}.labels.json or an ITK-SNAP {stem}.txt), else from the\n"
    "VISTA3D tables. Several files: one table each, or one JSON line each\n"
    "with \"path\" as given; a file that fails is reported and the others go on.\n"
    "\n"
    "options:\n"
    "  --json              print the JSON the /labels route answers (plus \"path\")\n"
    "  --image IMG         add per-label intensity statistics of IMG (a CT or MR\n"
    "                      on the same grid): mean, sd, min, max, p05, p50, p95 in\n"
    "                      IMG's scaled units, as /labels?image= answers\n"
    "  --max-voxels N      refuse larger images ([limits] max_voxels)\n"
    "  --max-label-ids N   [limits] max_label_ids (accepted for symmetry)\n"
    "  --label-dict FILE   label names ([paths] label_dict; default the VISTA3D table)\n"
    "  --label-colors FILE label colours ([paths] label_colors)\n"
    MEDIMG_CLI_CONFIG_HELP
    "\n"
    "exit status: 0 success, 2 usage error, 3 invalid or corrupt input, 1 other;\n"
    "with several files, the status of the first that failed.\n";

const std::vector<OptionSpec> kOptions = with_config_options({{"--json", false}, {"--image", true}});

// One file: its table, or its JSON line.
void label_one(const std::string& path, const ParsedArgs& parsed, const Config& config,
               const labels::Dictionary& base) {
    const stdfs::path in = path;
    const nifti::ReadLimits limits = read_limits(config);
    const labels::Dictionary dict = base.with_sidecar_for(in);
    nifti::Reader reader = nifti::Reader::open(in, limits);
    labels::MetadataWithIntensity both;
    const bool with_image = parsed.has("--image");
    if (with_image) {
        const stdfs::path image_path = *parsed.value("--image");
        nifti::Reader image = nifti::Reader::open(image_path, limits);
        try {
            both = labels::compute_intensity(reader, image, config.max_intensity_bins);
        } catch (const medimg::Error& e) {
            // Name both files: the error may be about either, or their grids.
            throw medimg::Error(e.code(), in.string() + " with image " + image_path.string() + ": " + e.what());
        }
    } else {
        both.meta = labels::compute_metadata(reader);
    }
    const labels::Metadata& meta = both.meta;
    const std::string filename = in.filename().string();

    if (parsed.has("--json")) {
        auto answer = labels::labels_json(meta, dict, filename);
        if (with_image) labels::add_intensity_json(answer, both.intensity);
        answer["path"] = path;
        print_json_line(answer);
        return;
    }

    std::printf("%s: %lld x %lld x %lld %s, voxel %.4g x %.4g x %.4g (%.6g mL)\n", filename.c_str(),
                static_cast<long long>(meta.dims[0]), static_cast<long long>(meta.dims[1]),
                static_cast<long long>(meta.dims[2]), meta.datatype.c_str(), meta.pixdim[0],
                meta.pixdim[1], meta.pixdim[2], meta.voxel_volume_ml);
    if (meta.labels.empty()) {
        std::printf("no labels (every voxel is 0)\n");
        return;
    }
    std::size_t id_width = 8, name_width = 4;
    for (const auto& l : meta.labels) {
        id_width = std::max(id_width, labels::to_string(l.id).size());
        name_width = std::max(name_width, dict.name_of(l.id).size());
    }
    std::printf("%*s  %-*s  %12s  %12s%s\n", static_cast<int>(id_width), "id",
                static_cast<int>(name_width), "name", "voxels", "volume mL",
                with_image ? "          mean            sd        median" : "");
    std::uint64_t total = 0;
    for (const auto& l : meta.labels) {
        std::printf("%*s  %-*s  %12llu  %12.3f", static_cast<int>(id_width),
                    labels::to_string(l.id).c_str(), static_cast<int>(name_width),
                    dict.name_of(l.id).c_str(),
                    static_cast<unsigned long long>(l.voxels),
                    static_cast<double>(l.voxels) * meta.voxel_volume_ml);
        if (with_image) {
            auto it = both.intensity.find(l.id);
            if (it == both.intensity.end())
                std::printf("  %12s  %12s  %12s", "-", "-", "-");
            else
                std::printf("  %12.6g  %12.6g  %12.6g", it->second.mean, it->second.sd,
                            it->second.p50);
        }
        std::fputc('\n', stdout);
        total += l.voxels;
    }
    std::printf("%zu label(s), %llu labelled voxels, %.3f mL\n", meta.labels.size(),
                static_cast<unsigned long long>(total),
                static_cast<double>(total) * meta.voxel_volume_ml);
}

int run(const Args& args) {
    const ParsedArgs parsed = parse_args(args, kOptions);
    if (print_help(parsed, kUsage)) return 0;
    if (parsed.positional.empty()) throw Error(ErrorCode::BadParameter, "expected an input file");
    const Config config = load_cli_config(parsed);
    const labels::Dictionary dict = load_dictionary(config);
    return for_each_input(parsed.positional, "labels", [&](const std::string& in) {
        if (&in != &parsed.positional.front() && !parsed.has("--json")) std::printf("\n");
        label_one(in, parsed, config, dict);
    });
}

}  // namespace

int run_labels(const Args& args) {
    return run_guarded("labels", [&] { return run(args); });
}

}  // namespace medimg::cli
