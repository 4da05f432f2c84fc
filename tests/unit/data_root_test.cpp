// DataRoot: hostile request paths are refused with the right error; files
// inside the root resolve to their canonical path.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "catch.hpp"
#include "error.hpp"
#include "fs/data_root.hpp"

namespace stdfs = std::filesystem;
using medimg::Error;
using medimg::ErrorCode;
using medimg::fs::DataRoot;

namespace {

// outside/secret.nii, root/PA01/scans/all.nii.gz, hidden files and symlinks.
struct Tree {
    stdfs::path base, root;
    Tree() {
        std::string templ = (stdfs::temp_directory_path() / "medimg-dataroot-XXXXXX").string();
        base = ::mkdtemp(templ.data());
        root = base / "root";
        stdfs::create_directories(root / "PA01" / "scans");
        stdfs::create_directories(root / "PA01" / "voxels" / "ct" / "original");
        stdfs::create_directories(root / ".hidden");
        stdfs::create_directories(base / "outside");
        touch(root / "PA01" / "scans" / "all.nii.gz");
        touch(root / "PA01" / "voxels" / "ct" / "original" / "liver.nii.gz");
        touch(root / "PA01" / "scans" / ".env");
        touch(root / ".hidden" / "x.nii");
        touch(base / "outside" / "secret.nii");
        touch(root / "PA01" / "scans" / "nine%2Fx.nii");
        stdfs::create_symlink(base / "outside" / "secret.nii", root / "PA01" / "scans" / "escape.nii");
        stdfs::create_symlink(base / "outside", root / "PA02");
        stdfs::create_symlink("all.nii.gz", root / "PA01" / "scans" / "alias.nii.gz");
        stdfs::create_symlink(".env", root / "PA01" / "scans" / "dotlink.nii");
        stdfs::create_symlink("loop.nii", root / "PA01" / "scans" / "loop.nii");
        ::mkfifo((root / "PA01" / "scans" / "fifo.nii").c_str(), 0600);
    }
    ~Tree() {
        std::error_code ec;
        stdfs::remove_all(base, ec);
    }
    static void touch(const stdfs::path& p) { std::ofstream(p) << "x"; }
};

ErrorCode resolve_code(const DataRoot& root, const std::string& rel) {
    try {
        root.resolve_file(rel);
    } catch (const Error& e) {
        INFO(e.what());
        return e.code();
    }
    return ErrorCode::Internal;   // accepted: never the expected value below
}

}  // namespace

TEST_CASE("data root: hostile paths are refused", "[fs][data_root]") {
    Tree tree;
    DataRoot root(tree.root);
    auto [rel, expected] = GENERATE(table<std::string, ErrorCode>({
        {"", ErrorCode::BadPath},
        {"/etc/passwd", ErrorCode::BadPath},
        {"PA01//scans/all.nii.gz", ErrorCode::BadPath},
        {"PA01/scans/", ErrorCode::BadPath},
        {"PA01\\scans\\all.nii.gz", ErrorCode::BadPath},
        {std::string("PA01/scans/all.nii.gz\0x", 23), ErrorCode::BadPath},
        {"..", ErrorCode::Forbidden},
        {"../outside/secret.nii", ErrorCode::Forbidden},
        {"PA01/../../outside/secret.nii", ErrorCode::Forbidden},
        {"PA01/./scans/all.nii.gz", ErrorCode::Forbidden},
        {"PA01/scans/.env", ErrorCode::Forbidden},
        {".hidden/x.nii", ErrorCode::Forbidden},
        {"PA01/scans/escape.nii", ErrorCode::Forbidden},     // symlink to outside
        {"PA02/secret.nii", ErrorCode::Forbidden},           // symlinked directory
        {"PA01/scans/dotlink.nii", ErrorCode::Forbidden},    // symlink to a hidden file
        {"PA01/scans/loop.nii", ErrorCode::Forbidden},       // symlink loop
        {"PA01/scans/missing.nii.gz", ErrorCode::NotFound},
        {"PA09/scans/all.nii.gz", ErrorCode::NotFound},
        {"PA01/scans", ErrorCode::NotFound},                 // a directory
        {"PA01/scans/fifo.nii", ErrorCode::NotFound},        // not a regular file
        {"PA01/scans/all.nii.gz/x", ErrorCode::NotFound},
    }));
    INFO("path: " << rel);
    CHECK(resolve_code(root, rel) == expected);
}

TEST_CASE("data root: files inside resolve to canonical paths", "[fs][data_root]") {
    Tree tree;
    DataRoot root(tree.root);
    auto canon_root = stdfs::canonical(tree.root);
    CHECK(root.path() == canon_root);
    CHECK(root.resolve_file("PA01/scans/all.nii.gz") == canon_root / "PA01/scans/all.nii.gz");
    CHECK(root.resolve_file("PA01/voxels/ct/original/liver.nii.gz") ==
          canon_root / "PA01/voxels/ct/original/liver.nii.gz");
    CHECK(root.resolve_file("PA01/scans/alias.nii.gz") == canon_root / "PA01/scans/all.nii.gz");
    CHECK(root.resolve_file("PA01/scans/nine%2Fx.nii") == canon_root / "PA01/scans/nine%2Fx.nii");
    CHECK(root.resolve_dir("PA01") == canon_root / "PA01");
    CHECK_THROWS_AS(root.resolve_dir("PA01/scans/all.nii.gz"), Error);
}

TEST_CASE("data root: a missing root is NotFound", "[fs][data_root]") {
    try {
        DataRoot root("/nonexistent/medimg/root");
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::NotFound);
    }
}

TEST_CASE("data root: percent_decode decodes once and refuses bad bytes", "[fs][percent]") {
    using medimg::fs::percent_decode;
    CHECK(percent_decode("a%20b") == "a b");
    CHECK(percent_decode("%252F") == "%2F");   // once only
    CHECK(percent_decode("caf%C3%A9") == "caf\xC3\xA9");
    CHECK(percent_decode("a+b") == "a+b");     // "+" is not a space in paths
    auto bad = GENERATE(as<std::string>{}, "%", "%2", "%G0", "a%00b", "%C0%AF" /* overlong / */,
                        "%ED%A0%80" /* surrogate */, "%F4%90%80%80" /* past U+10FFFF */, "%FF",
                        "%C3");
    INFO("input: " << bad);
    try {
        percent_decode(bad);
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::BadPath);
    }
}
