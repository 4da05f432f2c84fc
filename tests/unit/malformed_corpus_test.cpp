// Replays tests/data/malformed/ (manifest.json) through the library the way
// the worker reads a file: opened beneath a data root by descriptor, then
// filtered and counted. So the sanitizer run (scripts/test.sh --sanitize)
// sees every corpus file. Accepted files give a readable output holding only
// the requested ids (the exact voxels are compared with numpy by the CLI and
// integration suites); rejected files raise one of the errors the manifest
// names, never anything else.
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "error.hpp"
#include "fs/data_root.hpp"
#include "labels/filter.hpp"
#include "labels/metadata.hpp"
#include "nifti/byte_io.hpp"
#include "nifti_builder.hpp"
#include "source/image_source.hpp"

namespace stdfs = std::filesystem;
using namespace medimg;

namespace {

const stdfs::path kCorpus = stdfs::path(MEDIMG_SOURCE_DIR) / "tests" / "data" / "malformed";

nlohmann::json manifest() {
    std::ifstream in(kCorpus / "manifest.json");
    REQUIRE(in);
    return nlohmann::json::parse(in);
}

// Filters and counts the case's file, as the worker would. Returns the
// machine id of the error raised, or "" when accepted.
std::string replay(const fs::DataRoot& root, const nlohmann::json& c, labels::Mode mode) {
    try {
        const auto source = source::open_image(root, "P/scans/" + c["name"].get<std::string>(), false);
        labels::FilterOptions options;
        options.labels = labels::LabelSet::parse(c["ids"].get<std::string>(), 100000);
        options.mode = mode;
        nifti::MemorySink sink;
        {
            auto reader = nifti::Reader::open(source.files(), {});
            const auto container = nifti::output_container(source.name);
            labels::filter(reader, sink, container, options);
        }
        // The output is a readable single file whose ids are all selected.
        auto back = nifti::Reader::open_memory(sink.bytes, {});
        const auto meta = labels::compute_metadata(back);
        for (const auto& label : meta.labels) {
            if (mode == labels::Mode::Mask) CHECK(label.id == labels::LabelId(1));
            else CHECK(options.labels.contains(label.id));
        }
        auto again = nifti::Reader::open(source.files(), {});
        labels::compute_metadata(again);
        return "";
    } catch (const Error& e) {
        UNSCOPED_INFO(e.what());
        return std::string(e.id());
    }
}

}  // namespace

TEST_CASE("malformed corpus: every file answers as the manifest says", "[corpus]") {
    const auto cases = manifest();
    REQUIRE(cases.size() > 100);
    test::TempDir dir;
    stdfs::create_directories(dir / "root" / "P" / "scans");
    for (const auto& entry : stdfs::directory_iterator(kCorpus))
        if (entry.path().filename() != "manifest.json" && entry.path().filename() != "README.md")
            stdfs::copy_file(entry.path(), dir / "root" / "P" / "scans" / entry.path().filename());
    const fs::DataRoot root(dir / "root");
    std::size_t accepted = 0, rejected = 0;
    for (const auto& c : cases) {
        const std::string name = c["name"];
        INFO("corpus file: " << name << " (" << c.value("note", "") << ")");
        for (auto mode : {labels::Mode::Keep, labels::Mode::Mask}) {
            const std::string got = replay(root, c, mode);
            if (c["expect"] == "accept") {
                CHECK(got.empty());
            } else {
                const auto& allowed = c["errors"];
                CHECK(std::find(allowed.begin(), allowed.end(), got) != allowed.end());
            }
        }
        (c["expect"] == "accept" ? accepted : rejected)++;
    }
    CHECK(accepted > 40);
    CHECK(rejected > 40);
}
