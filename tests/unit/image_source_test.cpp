// open_image: the partner and sidecars of an image resolved from its folder
// beneath the root, and an identity that changes with any of them.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "catch.hpp"
#include "error.hpp"
#include "fs/data_root.hpp"
#include "source/image_source.hpp"

namespace stdfs = std::filesystem;
using medimg::Error;
using medimg::ErrorCode;
using medimg::fs::DataRoot;
using medimg::source::open_image;

namespace {

struct Tree {
    stdfs::path base, root, scans;
    Tree() {
        std::string templ = (stdfs::temp_directory_path() / "medimg-source-XXXXXX").string();
        base = ::mkdtemp(templ.data());
        root = base / "root";
        scans = root / "P" / "scans";
        stdfs::create_directories(scans);
        write(base / "outside.img", "OUTSIDE");
    }
    ~Tree() {
        std::error_code ec;
        stdfs::remove_all(base, ec);
    }
    static void write(const stdfs::path& p, const std::string& text) { std::ofstream(p) << text; }
};

ErrorCode code_of_open(const DataRoot& root, const std::string& rel, bool sidecars) {
    try {
        open_image(root, rel, sidecars);
    } catch (const Error& e) {
        INFO(e.what());
        return e.code();
    }
    return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("image source: a pair's partner is found in the image's folder, case kept", "[source]") {
    Tree t;
    DataRoot root(t.root);
    Tree::write(t.scans / "X.HDR", "h");
    Tree::write(t.scans / "X.IMG", "i");
    Tree::write(t.scans / "y.img.gz", "i");
    Tree::write(t.scans / "y.hdr", "h");
    const auto x = open_image(root, "P/scans/X.HDR", false);
    REQUIRE(x.partner);
    CHECK(x.partner->rel == "P/scans/X.IMG");
    CHECK(x.files().partner_name == "X.IMG");
    CHECK(open_image(root, "P/scans/y.hdr", false).partner->rel == "P/scans/y.img.gz");
    CHECK(open_image(root, "P/scans/X.IMG", false).partner->rel == "P/scans/X.HDR");
    Tree::write(t.scans / "lonely.hdr", "h");
    CHECK(code_of_open(root, "P/scans/lonely.hdr", false) == ErrorCode::NotFound);
}

TEST_CASE("image source: a partner or sidecar out of the root is refused", "[source]") {
    Tree t;
    DataRoot root(t.root);
    Tree::write(t.scans / "pair.hdr", "h");
    stdfs::create_symlink(t.base / "outside.img", t.scans / "pair.img");
    CHECK(code_of_open(root, "P/scans/pair.hdr", false) == ErrorCode::Forbidden);
    Tree::write(t.scans / "UP.HDR", "h");
    stdfs::create_symlink(t.base / "outside.img", t.scans / "UP.IMG");
    CHECK(code_of_open(root, "P/scans/UP.HDR", false) == ErrorCode::Forbidden);
    Tree::write(t.root / "P" / ".hidden.img", "secret");
    Tree::write(t.scans / "h.hdr", "h");
    stdfs::create_symlink("../.hidden.img", t.scans / "h.img");
    CHECK(code_of_open(root, "P/scans/h.hdr", false) == ErrorCode::Forbidden);
    Tree::write(t.scans / "ct.nii.gz", "n");
    stdfs::create_symlink(t.base / "outside.img", t.scans / "ct.nii.gz.labels.json");
    CHECK(code_of_open(root, "P/scans/ct.nii.gz", false) == ErrorCode::Internal);   // not opened
    CHECK(code_of_open(root, "P/scans/ct.nii.gz", true) == ErrorCode::Forbidden);
    Tree::write(t.scans / "mr.nii", "n");
    stdfs::create_symlink(t.base / "outside.img", t.scans / "mr.txt");
    CHECK(code_of_open(root, "P/scans/mr.nii", true) == ErrorCode::Forbidden);
}

TEST_CASE("image source: a FIFO partner is refused at once", "[source]") {
    Tree t;
    DataRoot root(t.root);
    Tree::write(t.scans / "f.hdr", "h");
    REQUIRE(::mkfifo((t.scans / "f.img").c_str(), 0600) == 0);
    const auto start = std::chrono::steady_clock::now();
    CHECK(code_of_open(root, "P/scans/f.hdr", false) == ErrorCode::NotFound);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("image source: identity covers path, partner and sidecars", "[source]") {
    Tree t;
    DataRoot root(t.root);
    Tree::write(t.scans / "Y.HDR", "h");
    Tree::write(t.scans / "Y.IMG", "i");
    const std::string pair = open_image(root, "P/scans/Y.HDR", false).identity;
    Tree::write(t.scans / "Y.IMG", "j");   // the partner rewritten, same size
    CHECK(open_image(root, "P/scans/Y.HDR", false).identity != pair);

    Tree::write(t.scans / "CT.NII.GZ", "n");
    const auto plain = open_image(root, "P/scans/CT.NII.GZ", true);
    CHECK_FALSE(plain.txt_sidecar);
    Tree::write(t.scans / "CT.txt", "0 0 0 0 0 0 0 \"Clear Label\"\n");
    const auto with_txt = open_image(root, "P/scans/CT.NII.GZ", true);
    REQUIRE(with_txt.txt_sidecar);
    CHECK(with_txt.txt_sidecar->rel == "P/scans/CT.txt");
    CHECK(with_txt.identity != plain.identity);
    Tree::write(t.scans / "CT.txt", "1 255 0 0 1 1 1 \"Liver Label\"\n");
    const auto changed = open_image(root, "P/scans/CT.NII.GZ", true);
    CHECK(changed.identity != with_txt.identity);
    CHECK(changed.dictionary({}).name_of(1) == "Liver Label");
    // Without sidecars asked for, they are not part of it.
    CHECK(open_image(root, "P/scans/CT.NII.GZ", false).identity == "image=" + changed.image.file.identity());
}

TEST_CASE("image source: a malformed sidecar is named relative to the root", "[source]") {
    Tree t;
    DataRoot root(t.root);
    Tree::write(t.scans / "s.nii", "n");
    Tree::write(t.scans / "s.nii.labels.json", "{not json");
    const auto s = open_image(root, "P/scans/s.nii", true);
    try {
        s.dictionary({});
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::BadParameter);
        CHECK(std::string(e.what()).find("P/scans/s.nii.labels.json") != std::string::npos);
        CHECK(std::string(e.what()).find(t.root.string()) == std::string::npos);
    }
}
