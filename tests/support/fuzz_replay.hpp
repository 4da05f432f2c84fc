// Replays the kept fuzz reproducers of one target (tests/data/fuzz/TARGET/)
// through the target's own entry point (tests/fuzz/targets.hpp) and checks
// each file's outcome against the folder's expected.txt.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "catch.hpp"
#include "nifti_builder.hpp"
#include "targets.hpp"

namespace medimg::test {

// expected.txt: one "FILE: OUTCOME" line per reproducer ('#' starts a
// comment line); OUTCOME is what the target returns for the file.
inline std::map<std::string, std::string> fuzz_expectations(const std::filesystem::path& file) {
    std::map<std::string, std::string> out;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto colon = line.find(": ");
        REQUIRE(colon != std::string::npos);
        INFO(line);
        CHECK(out.emplace(line.substr(0, colon), line.substr(colon + 2)).second);   // listed once
    }
    return out;
}

inline void replay_fuzz_reproducers(const std::string& target, std::string (*run)(fuzz::Input)) {
    namespace stdfs = std::filesystem;
    const stdfs::path dir = stdfs::path(MEDIMG_SOURCE_DIR) / "tests" / "data" / "fuzz" / target;
    REQUIRE(stdfs::is_directory(dir));
    const auto expected = fuzz_expectations(dir / "expected.txt");
    REQUIRE_FALSE(expected.empty());
    std::set<std::string> files, listed;
    for (const auto& e : stdfs::directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename() != "expected.txt")
            files.insert(e.path().filename().string());
    for (const auto& [name, outcome] : expected) listed.insert(name);
    // A new reproducer (scripts/fuzz.sh copies crashers here) needs its line.
    CHECK(files == listed);
    for (const auto& name : files) {
        const auto it = expected.find(name);
        if (it == expected.end()) continue;
        const auto bytes = read_file(dir / name);
        INFO(target << " reproducer " << name);
        std::string outcome;
        try {
            outcome = run(fuzz::Input(bytes.data(), bytes.size()));
        } catch (const fuzz::Violation& v) {
            FAIL("property violated: " << v.what());
        }
        CHECK(outcome == it->second);
    }
}

}  // namespace medimg::test
