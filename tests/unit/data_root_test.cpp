// DataRoot: hostile request paths are refused with the right error, by both
// resolutions (openat2 and the walk); files inside the root are opened by
// descriptor, also through links that stay inside; a swap race never
// reaches outside.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

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
        // Links that stay inside: relative up and over, absolute into the
        // root, a linked folder; and links through hidden entries.
        stdfs::create_directories(root / "PA03" / "scans");
        stdfs::create_symlink("../../PA01/scans/all.nii.gz", root / "PA03" / "scans" / "up.nii.gz");
        stdfs::create_symlink(stdfs::canonical(root) / "PA01" / "scans" / "all.nii.gz",
                              root / "PA03" / "scans" / "abs.nii.gz");
        stdfs::create_symlink("../PA01/voxels", root / "PA03" / "voxels");
        stdfs::create_symlink("../../.hidden/x.nii", root / "PA03" / "scans" / "via_hidden.nii");
        stdfs::create_symlink(stdfs::canonical(base) / "outside" / "secret.nii",
                              root / "PA03" / "scans" / "abs_out.nii");
        stdfs::create_symlink("../../../outside/secret.nii", root / "PA03" / "scans" / "rel_out.nii");
        stdfs::create_symlink("nowhere.nii", root / "PA03" / "scans" / "dangling.nii");
    }
    ~Tree() {
        std::error_code ec;
        stdfs::remove_all(base, ec);
    }
    static void touch(const stdfs::path& p) { std::ofstream(p) << "x"; }
};

ErrorCode resolve_code(const DataRoot& root, const std::string& rel) {
    try {
        root.open_file(rel);
    } catch (const Error& e) {
        INFO(e.what());
        return e.code();
    }
    return ErrorCode::Internal;   // accepted: never the expected value below
}

// The sentence a refusal of `rel` gives, or "accepted".
std::string resolve_message(const DataRoot& root, const std::string& rel) {
    try {
        root.open_file(rel);
    } catch (const Error& e) {
        return e.what();
    }
    return "accepted";
}

}  // namespace

TEST_CASE("data root: hostile paths are refused", "[fs][data_root]") {
    Tree tree;
    const auto how = GENERATE(DataRoot::Resolution::Auto, DataRoot::Resolution::Walk);
    DataRoot root(tree.root, how);
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
        {"PA03/scans/via_hidden.nii", ErrorCode::Forbidden},   // a link through a hidden folder
        {"PA03/scans/abs_out.nii", ErrorCode::Forbidden},      // absolute link out
        {"PA03/scans/rel_out.nii", ErrorCode::Forbidden},      // relative link out
        {"PA03/scans/dangling.nii", ErrorCode::NotFound},
        {"PA03/voxels/ct/original", ErrorCode::NotFound},      // a directory through a link
    }));
    INFO("path: " << rel);
    CHECK(resolve_code(root, rel) == expected);
}

TEST_CASE("data root: both resolutions word a refusal alike", "[fs][data_root]") {
    Tree tree;
    const DataRoot automatic(tree.root, DataRoot::Resolution::Auto);
    const DataRoot walk(tree.root, DataRoot::Resolution::Walk);
    for (const std::string rel : {"PA01/scans/loop.nii", "PA01/scans/escape.nii", "PA02/secret.nii",
                                  "PA01/scans/dotlink.nii", "PA01/scans/missing.nii.gz",
                                  "PA01/scans/fifo.nii", "PA01/scans", "PA03/scans/via_hidden.nii",
                                  "PA03/scans/abs_out.nii", "PA03/scans/rel_out.nii",
                                  "PA03/scans/dangling.nii", "PA01/scans/.env"}) {
        INFO("path: " << rel);
        CHECK(resolve_message(automatic, rel) == resolve_message(walk, rel));
    }
}

TEST_CASE("data root: files inside open by descriptor, links inside included", "[fs][data_root]") {
    Tree tree;
    const auto how = GENERATE(DataRoot::Resolution::Auto, DataRoot::Resolution::Walk);
    DataRoot root(tree.root, how);
    CHECK(root.path() == stdfs::canonical(tree.root));
    auto rel_of = [&](const std::string& rel) { return root.open_file(rel).file.rel; };
    CHECK(rel_of("PA01/scans/all.nii.gz") == "PA01/scans/all.nii.gz");
    CHECK(rel_of("PA01/voxels/ct/original/liver.nii.gz") == "PA01/voxels/ct/original/liver.nii.gz");
    CHECK(rel_of("PA01/scans/alias.nii.gz") == "PA01/scans/all.nii.gz");
    CHECK(rel_of("PA01/scans/nine%2Fx.nii") == "PA01/scans/nine%2Fx.nii");
    CHECK(rel_of("PA03/scans/up.nii.gz") == "PA01/scans/all.nii.gz");
    CHECK(rel_of("PA03/scans/abs.nii.gz") == "PA01/scans/all.nii.gz");
    CHECK(rel_of("PA03/voxels/ct/original/liver.nii.gz") == "PA01/voxels/ct/original/liver.nii.gz");
    const auto found = root.open_file("PA03/scans/up.nii.gz");
    CHECK(found.folder.rel() == "PA01/scans");
    char c = 0;
    CHECK(::pread(found.file.fd->get(), &c, 1, 0) == 1);
    CHECK(c == 'x');
    CHECK(S_ISREG(found.file.st.st_mode));
    CHECK(root.open_dir("PA01").rel() == "PA01");
    CHECK_THROWS_AS(root.open_dir("PA01/scans/all.nii.gz"), Error);
}

TEST_CASE("data root: names next to a file resolve from its folder", "[fs][data_root]") {
    Tree tree;
    const auto how = GENERATE(DataRoot::Resolution::Auto, DataRoot::Resolution::Walk);
    DataRoot root(tree.root, how);
    Tree::touch(tree.root / "PA01" / "scans" / "all.txt");
    stdfs::create_symlink("../voxels/ct/original/liver.nii.gz", tree.root / "PA01" / "scans" / "up.txt");
    stdfs::create_symlink(tree.base / "outside" / "secret.nii", tree.root / "PA01" / "scans" / "out.txt");
    const auto folder = root.open_file("PA03/scans/up.nii.gz").folder;   // PA01/scans
    CHECK(root.open_in(folder, "all.txt")->file.rel == "PA01/scans/all.txt");
    CHECK(root.open_in(folder, "up.txt")->file.rel == "PA01/voxels/ct/original/liver.nii.gz");
    CHECK_FALSE(root.open_in(folder, "absent.txt").has_value());
    auto code = [&](const std::string& name) {
        try {
            root.open_in(folder, name);
        } catch (const Error& e) {
            return e.code();
        }
        return ErrorCode::Internal;
    };
    CHECK(code("out.txt") == ErrorCode::Forbidden);
    CHECK(code("escape.nii") == ErrorCode::Forbidden);
    CHECK(code(".env") == ErrorCode::Forbidden);
    CHECK(code("fifo.nii") == ErrorCode::NotFound);
    CHECK(code("a/b") == ErrorCode::BadPath);
}

TEST_CASE("data root: a FIFO is refused without blocking", "[fs][data_root]") {
    Tree tree;
    const auto how = GENERATE(DataRoot::Resolution::Auto, DataRoot::Resolution::Walk);
    DataRoot root(tree.root, how);
    stdfs::create_symlink("fifo.nii", tree.root / "PA01" / "scans" / "to_fifo.nii");
    const auto start = std::chrono::steady_clock::now();
    CHECK(resolve_code(root, "PA01/scans/fifo.nii") == ErrorCode::NotFound);
    CHECK(resolve_code(root, "PA01/scans/to_fifo.nii") == ErrorCode::NotFound);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
}

TEST_CASE("data root: identity changes with every new version of a file", "[fs][data_root]") {
    Tree tree;
    DataRoot root(tree.root);
    const auto file = tree.root / "PA01" / "scans" / "all.nii.gz";
    const std::string before = root.open_file("PA01/scans/all.nii.gz").file.identity();
    CHECK(root.open_file("PA01/scans/all.nii.gz").file.identity() == before);
    struct stat st{};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    std::ofstream(file, std::ios::in | std::ios::out | std::ios::binary) << "y";   // same size
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    REQUIRE(::utimensat(AT_FDCWD, file.c_str(), times, 0) == 0);                  // same mtime
    const std::string after = root.open_file("PA01/scans/all.nii.gz").file.identity();
    CHECK(after != before);   // ctime moved
    CHECK(after.rfind("PA01/scans/all.nii.gz@", 0) == 0);
    // The same inode under another name is another identity.
    CHECK(root.open_file("PA01/scans/alias.nii.gz").file.identity() == after);   // a link: the same file
    stdfs::create_hard_link(file, tree.root / "PA01" / "scans" / "hard.nii.gz");
    CHECK(root.open_file("PA01/scans/hard.nii.gz").file.identity() != after);
}

TEST_CASE("data root: swapping a file for a link out never reaches outside", "[fs][data_root][race]") {
    Tree tree;
    const auto how = GENERATE(DataRoot::Resolution::Auto, DataRoot::Resolution::Walk);
    DataRoot root(tree.root, how);
    const auto scans = tree.root / "PA01" / "scans";
    std::ofstream(tree.base / "outside" / "secret.nii") << "S";
    std::ofstream(scans / "real.nii") << "R";
    stdfs::create_symlink(tree.base / "outside" / "secret.nii", scans / "link.nii");
    // The folder too: a patient folder exchanged with a link to an outside folder.
    stdfs::create_directories(tree.root / "PA05" / "scans");
    std::ofstream(tree.root / "PA05" / "scans" / "real.nii") << "R";
    stdfs::create_directories(tree.base / "outside" / "scans");
    std::ofstream(tree.base / "outside" / "scans" / "real.nii") << "S";
    stdfs::create_symlink(tree.base / "outside", tree.root / "PA05link");
    std::atomic<bool> stop{false};
    std::thread swapper([&] {
        const auto t_end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        while (!stop && std::chrono::steady_clock::now() < t_end) {
            stdfs::rename(scans / "real.nii", scans / "tmp.nii");
            stdfs::rename(scans / "link.nii", scans / "real.nii");
            stdfs::rename(scans / "real.nii", scans / "link.nii");
            stdfs::rename(scans / "tmp.nii", scans / "real.nii");
            stdfs::rename(tree.root / "PA05", tree.root / "PA05tmp");
            stdfs::rename(tree.root / "PA05link", tree.root / "PA05");
            stdfs::rename(tree.root / "PA05", tree.root / "PA05link");
            stdfs::rename(tree.root / "PA05tmp", tree.root / "PA05");
        }
        stop = true;
    });
    int opened = 0, refused = 0, outside = 0;
    for (int i = 0; i < 200000 && !stop; ++i) {
        for (const char* rel : {"PA01/scans/real.nii", "PA05/scans/real.nii"}) {
            try {
                const auto f = root.open_file(rel);
                char c = 0;
                if (::pread(f.file.fd->get(), &c, 1, 0) == 1 && c == 'S') ++outside;
                ++opened;
            } catch (const Error&) {
                ++refused;
            }
        }
    }
    stop = true;
    swapper.join();
    INFO("opened " << opened << ", refused " << refused);
    CHECK(outside == 0);
    CHECK(opened > 0);
}

TEST_CASE("data root: a missing root is NotFound", "[fs][data_root]") {
    try {
        DataRoot root("/nonexistent/medimg/root");
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::NotFound);
    }
}

TEST_CASE("data root: is_same_folder compares the folder, not its spelling", "[fs][data_root]") {
    Tree t;
    const DataRoot root(t.root);
    stdfs::create_directory_symlink(t.root, t.base / "link-to-root");
    CHECK(root.is_same_folder(t.root.string()));
    CHECK(root.is_same_folder(t.root.string() + "/"));
    CHECK(root.is_same_folder((t.base / "link-to-root").string()));
    CHECK(root.is_same_folder((t.root / "PA01" / "..").string()));
    CHECK_FALSE(root.is_same_folder((t.base / "outside").string()));
    CHECK_FALSE(root.is_same_folder((t.root / "PA01").string()));
    CHECK_FALSE(root.is_same_folder((t.root / "PA01" / "scans" / "all.nii.gz").string()));
    CHECK_FALSE(root.is_same_folder((t.base / "missing").string()));
    CHECK_FALSE(root.is_same_folder(""));
    // The root is opened by its path on every request, so a folder put in
    // its place is the root from then on, and the one moved away is not.
    stdfs::rename(t.root, t.base / "moved");
    stdfs::create_directory(t.root);
    CHECK(root.is_same_folder(t.root.string()));
    CHECK_FALSE(root.is_same_folder((t.base / "moved").string()));
    stdfs::remove(t.root);
    stdfs::rename(t.base / "moved", t.root);
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
