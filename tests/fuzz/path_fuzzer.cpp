// Fuzzes URL path decoding and resolution inside the data root. Property:
// whatever the input, a resolved path is a regular file under the root,
// never the secret beside it, never through a hidden segment.
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace medimg;
    const auto& t = tree();
    const std::string_view raw(reinterpret_cast<const char*>(data), size);
    fuzz::expect_only_medimg_errors([&] {
        const fs::DataRoot root(t.root);
        const auto decoded = fs::percent_decode(raw);
        const auto resolved = root.resolve_file(decoded);
        const auto canonical_root = stdfs::canonical(t.root);
        const auto rel = resolved.lexically_relative(canonical_root);
        if (rel.empty() || *rel.begin() == "..") __builtin_trap();   // outside the root
        if (hidden_segment(rel)) __builtin_trap();
        if (stdfs::canonical(resolved) == stdfs::canonical(t.base / "secret")) __builtin_trap();
        if (!stdfs::is_regular_file(resolved)) __builtin_trap();
    });
    return 0;
}
