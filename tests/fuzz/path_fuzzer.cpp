// Fuzzes URL path decoding and descriptor-based resolution beneath the data
// root, by openat2 and by the walk. Property: whatever the input, what is
// opened is a regular file under the root (its reported path and its inode
// agree), never the secret beside it or a hidden file, never through a
// hidden segment; a second name resolved from its folder obeys the same.
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <unistd.h>

#include "fs/data_root.hpp"
#include "fuzz_support.hpp"

namespace {

namespace stdfs = std::filesystem;

struct Tree {
    stdfs::path base, root;
    Tree() {
        char tmpl[] = "/tmp/medimg-path-fuzz-XXXXXX";
        base = ::mkdtemp(tmpl);
        root = base / "root";
        stdfs::create_directories(root / "PA1" / "scans");
        std::ofstream(root / "PA1" / "scans" / "all.nii") << "x";
        std::ofstream(root / "PA1" / ".env") << "secret";
        std::ofstream(base / "secret") << "secret";
        stdfs::create_symlink(base / "secret", root / "PA1" / "escape.nii");
        stdfs::create_symlink(base, root / "PA1" / "up");
        stdfs::create_symlink("all.nii", root / "PA1" / "scans" / "inside.nii");
        stdfs::create_symlink("../scans/all.nii", root / "PA1" / "scans" / "up.nii");
        stdfs::create_symlink(stdfs::canonical(root) / "PA1" / "scans", root / "PA1" / "abs");
        stdfs::create_symlink("../.env", root / "PA1" / "scans" / "dot.nii");
        stdfs::create_symlink("../..", root / "PA1" / "scans" / "top");
        ::mkfifo((root / "PA1" / "scans" / "fifo.nii").c_str(), 0600);
    }
};

const Tree& tree() {
    static const Tree t;
    return t;
}

bool hidden_segment(const stdfs::path& p) {
    for (const auto& part : p) {
        const auto s = part.string();
        if (!s.empty() && s[0] == '.' ) return true;
    }
    return false;
}

void check_opened(const medimg::fs::OpenFile& f) {
    const auto& t = tree();
    const stdfs::path rel(f.rel);
    if (rel.empty() || rel.is_absolute() || *rel.begin() == "..") __builtin_trap();   // outside the root
    if (hidden_segment(rel)) __builtin_trap();
    if (!S_ISREG(f.st.st_mode)) __builtin_trap();
    struct stat named{}, secret{};
    if (::stat((t.root / rel).c_str(), &named) != 0 || named.st_ino != f.st.st_ino) __builtin_trap();
    if (::stat((t.base / "secret").c_str(), &secret) == 0 && secret.st_ino == f.st.st_ino) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace medimg;
    const auto& t = tree();
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    for (auto how : {fs::DataRoot::Resolution::Auto, fs::DataRoot::Resolution::Walk}) {
        fuzz::expect_only_medimg_errors([&] {
            const fs::DataRoot root(t.root, how);
            const auto decoded = fs::percent_decode(raw);
            // The input as a path from the root; its last segment also as a
            // name next to a file (a partner or sidecar).
            try {
                check_opened(root.open_file(decoded).file);
            } catch (const Error&) {
            }
            const auto folder = root.open_file("PA1/scans/all.nii").folder;
            if (auto next = root.open_in(folder, decoded.substr(decoded.rfind('/') + 1))) check_opened(next->file);
        });
    }
    return 0;
}
