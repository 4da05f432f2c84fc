// medimg: the offline command. Dispatches to a subcommand; every subcommand
// catches medimg::Error itself and returns the exit code of the error table.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "commands.hpp"

namespace {

constexpr const char* kUsage =
    "usage: medimg <command> [options]\n"
    "\n"
    "commands:\n"
    "  filter   keep (or mask) chosen label ids of a segmentation\n"
    "  labels   label ids present in a file, with names, voxel counts, volumes\n"
    "  info     header of a NIfTI/Analyze file\n"
    "  demo     write a synthetic CT + VISTA3D-labelled patient tree\n"
    "  serve    run lighttpd + medimg-fcgi workers on a data root\n"
    "\n"
    "`medimg <command> --help` describes each command; `medimg --version`\n"
    "prints the version. man medimg(1) has all of it.\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace medimg::cli;
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    const std::string_view command = argv[1];
    const Args args(argv + 2, argv + argc);
    if (command == "--help" || command == "-h" || command == "help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (command == "--version") {
        std::printf("medimg %s\n", MEDIMG_VERSION);
        return 0;
    }
    if (command == "filter") return run_filter(args);
    if (command == "labels") return run_labels(args);
    if (command == "info") return run_info(args);
    if (command == "demo") return run_demo(args);
    if (command == "serve") return run_serve(args);
    std::fprintf(stderr, "medimg: unknown command '%s'\n\n%s", argv[1], kUsage);
    return 2;
}
