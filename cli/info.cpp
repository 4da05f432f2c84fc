// `medimg info`: the header of a NIfTI/Analyze file, readable or as JSON.
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli_util.hpp"
#include "commands.hpp"
#include "error.hpp"
#include "nifti/header_json.hpp"
#include "nifti/reader.hpp"

namespace medimg::cli {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kUsage =
    "usage: medimg info IN... [--json] [options]\n"
    "\n"
    "Prints the header of a NIfTI-1/NIfTI-2/Analyze file (.nii, .nii.gz,\n"
    ".hdr/.img pairs): dimensions, voxel size, datatype, scaling, orientation.\n"
    "With --json, the JSON the /info route answers, plus \"path\" as given: one\n"
    "line per file. A file that fails is reported and the others go on.\n"
    "\n"
    "options:\n"
    "  --json              JSON lines instead of text\n"
    "  --max-voxels N      refuse larger images ([limits] max_voxels)\n"
    "  --max-label-ids N   [limits] max_label_ids (accepted for symmetry)\n"
    "  --label-dict FILE   [paths] label_dict (accepted for symmetry)\n"
    "  --label-colors FILE [paths] label_colors (accepted for symmetry)\n"
    MEDIMG_CLI_CONFIG_HELP
    "\n"
    "exit status: 0 success, 2 usage error, 3 invalid or corrupt input, 1 other;\n"
    "with several files, the status of the first that failed.\n";

const std::vector<OptionSpec> kOptions = with_config_options({{"--json", false}});

const char* version_name(nifti::Version v) {
    switch (v) {
        case nifti::Version::Nifti1: return "NIfTI-1";
        case nifti::Version::Nifti2: return "NIfTI-2";
        case nifti::Version::Analyze75: return "Analyze 7.5";
    }
    return "?";
}

const char* unit_name(int xyzt_units) {
    switch (xyzt_units & 7) {
        case 1: return "m";
        case 2: return "mm";
        case 3: return "um";
        default: return "(unknown unit)";
    }
}

const char* xform_name(int code) {
    switch (code) {
        case 0: return "unknown";
        case 1: return "scanner";
        case 2: return "aligned";
        case 3: return "talairach";
        case 4: return "mni";
        case 5: return "template";
        default: return "invalid";
    }
}

void info_one(const std::string& path, const ParsedArgs& parsed, const Config& config) {
    const stdfs::path in = path;
    nifti::Reader reader = nifti::Reader::open(in, read_limits(config));
    const nifti::Header& h = reader.header();

    if (parsed.has("--json")) {
        auto json = nifti::info_json(h);
        json["path"] = path;
        print_json_line(json);
        return;
    }

    std::printf("file         %s\n", in.string().c_str());
    std::printf("format       %s, %s, %s%s\n", version_name(h.version()),
                h.layout() == nifti::Layout::Single ? "single file" : ".hdr/.img pair",
                h.byte_order() == nifti::ByteOrder::Little ? "little-endian" : "big-endian",
                reader.gzip() ? ", gzip" : "");
    std::printf("magic        \"%s\"\n", h.magic().c_str());
    std::printf("dims        ");
    for (int i = 1; i <= h.dim0(); ++i)
        std::printf(" %lld", static_cast<long long>(h.dim(i)));
    std::printf("  (dim[0] %d, %llu voxels)\n", h.dim0(),
                static_cast<unsigned long long>(h.voxel_count()));
    std::printf("pixdim      ");
    for (int i = 1; i <= h.dim0(); ++i) std::printf(" %g", h.pixdim(i));
    std::printf("  (%s)\n", unit_name(h.xyzt_units()));
    std::printf("datatype     %s (code %d, %d bits)\n", std::string(h.datatype().name).c_str(),
                h.datatype().code, h.datatype().code == 1 ? 1 : 8 * h.datatype().bytes);
    std::printf("vox_offset   %lld\n", static_cast<long long>(h.vox_offset()));
    if (h.scaled())
        std::printf("scaling      value = %g * stored + %g\n", h.slope(), h.inter());
    else
        std::printf("scaling      none (scl_slope %g, scl_inter %g)\n", h.scl_slope_raw(),
                    h.scl_inter_raw());
    std::printf("qform_code   %d (%s)\n", h.qform_code(), xform_name(h.qform_code()));
    std::printf("sform_code   %d (%s)\n", h.sform_code(), xform_name(h.sform_code()));
    const auto a = h.affine();
    std::printf("affine\n");
    for (const auto& row : a)
        std::printf("  %12.6g %12.6g %12.6g %12.6g\n", row[0], row[1], row[2], row[3]);
    std::printf("description  \"%s\"\n", h.description().c_str());
    const auto ext = reader.extension_bytes().size();
    if (ext) std::printf("extension    %zu bytes between header and data\n", ext);
}

int run(const Args& args) {
    const ParsedArgs parsed = parse_args(args, kOptions);
    if (print_help(parsed, kUsage)) return 0;
    if (parsed.positional.empty()) throw Error(ErrorCode::BadParameter, "expected an input file");
    const Config config = load_cli_config(parsed);
    return for_each_input(parsed.positional, "info", [&](const std::string& in) {
        if (&in != &parsed.positional.front() && !parsed.has("--json")) std::printf("\n");
        info_one(in, parsed, config);
    });
}

}  // namespace

int run_info(const Args& args) {
    return run_guarded("info", [&] { return run(args); });
}

}  // namespace medimg::cli
