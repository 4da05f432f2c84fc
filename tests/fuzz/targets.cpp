// The library's fuzz targets (targets.hpp): header, gzip, filter, label
// sets and maps, paths beneath the data root.
#include "targets.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <vector>

#include "fs/data_root.hpp"
#include "labels/dictionary.hpp"
#include "labels/filter.hpp"
#include "labels/label_map.hpp"
#include "labels/label_set.hpp"
#include "labels/metadata.hpp"
#include "nifti/gzip.hpp"
#include "nifti/header.hpp"
#include "nifti/header_json.hpp"
#include "nifti/reader.hpp"

namespace medimg::fuzz {
namespace {

namespace stdfs = std::filesystem;

class MemorySource final : public nifti::ByteSource {
public:
    explicit MemorySource(Input in) : in_(in) {}
    std::size_t read(std::uint8_t* buf, std::size_t n) override {
        const std::size_t k = std::min(n, in_.size() - pos_);
        if (k > 0) std::memcpy(buf, in_.data() + pos_, k);
        pos_ += k;
        return k;
    }

private:
    Input in_;
    std::size_t pos_ = 0;
};

// A data root with a file, hidden files, links out of and within the root,
// and a FIFO; the secret lies beside the root.
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
    ~Tree() {
        std::error_code ec;
        stdfs::remove_all(base, ec);
    }
};

const Tree& tree() {
    static const Tree t;
    return t;
}

bool hidden_segment(const stdfs::path& p) {
    for (const auto& part : p) {
        const auto s = part.string();
        if (!s.empty() && s[0] == '.') return true;
    }
    return false;
}

// What is opened is a regular file under the root, never hidden, never the
// secret, and its reported path names the inode that was opened.
void check_opened(const fs::OpenFile& f) {
    const auto& t = tree();
    const stdfs::path rel(f.rel);
    check(!rel.empty() && !rel.is_absolute() && *rel.begin() != "..", "opened inside the root");
    check(!hidden_segment(rel), "no hidden segment opened");
    check(S_ISREG(f.st.st_mode), "only regular files opened");
    struct stat named{}, secret{};
    check(::stat((t.root / rel).c_str(), &named) == 0 && named.st_ino == f.st.st_ino,
          "the reported path names the opened inode");
    check(!(::stat((t.base / "secret").c_str(), &secret) == 0 && secret.st_ino == f.st.st_ino),
          "the secret is never opened");
}

}  // namespace

std::string header_target(Input in) {
    if (in.empty()) return "empty";
    const auto layout = (in[0] & 1) ? nifti::Layout::Pair : nifti::Layout::Single;
    nifti::HeaderLimits limits;
    limits.max_voxels = 1u << 24;
    return "parse:" + step([&] {
        auto h = nifti::Header::parse(in.subspan(1), layout, limits, in.size());
        (void)h.affine();
        (void)h.description();
        (void)h.magic();
        (void)h.volume_count();
        (void)h.spatial_unit_mm();
        if (h.layout() == nifti::Layout::Pair) h.make_single_file();
        h.set_scaling(1, 0);
        h.set_dim(1, 1);
    });
}

std::string gzip_target(Input in) {
    constexpr std::uint64_t kCap = 4u << 20;
    MemorySource source(in);
    std::uint64_t total = 0;
    const std::string outcome = step([&] {
        nifti::GzipInflater inflater(source, kCap);
        std::vector<std::uint8_t> buf(64 * 1024);
        while (std::size_t n = inflater.read(buf.data(), buf.size())) {
            total += n;
            check(total <= kCap, "the output cap holds");
        }
    });
    return "inflate:" + outcome + (outcome == "ok" ? " bytes:" + std::to_string(total) : "");
}

std::string filter_target(Input in) {
    if (in.size() < 4) return "short";
    labels::FilterOptions options;
    options.labels = labels::LabelSet::from_ids({in[0], std::int64_t(in[1]) - 128, 1});
    options.mode = (in[2] & 1) ? labels::Mode::Mask : labels::Mode::Keep;
    options.crop = (in[2] & 2) != 0;
    options.margin = in[3] & 7;
    const auto container = (in[2] & 4) ? nifti::Container::Gzip : nifti::Container::Plain;
    const std::vector<std::uint8_t> file(in.begin() + 4, in.end());

    nifti::ReadLimits limits;
    limits.header.max_voxels = 1u << 20;   // keeps each run fast; the cap itself is tested
    const std::string filtered = step([&] {
        auto reader = nifti::Reader::open_memory(file, limits);
        NullSink sink;
        labels::filter(reader, sink, container, options);
    });
    const std::string metadata = step([&] {
        auto reader = nifti::Reader::open_memory(file, limits);
        const auto meta = labels::compute_metadata(reader);
        (void)labels::labels_json(meta, labels::Dictionary{}, "fuzz.nii").dump();
        (void)nifti::info_json(reader.header()).dump();
    });
    return "filter:" + filtered + " metadata:" + metadata;
}

std::string label_set_target(Input in) {
    const std::string_view text(reinterpret_cast<const char*>(in.data()), in.size());
    const std::string set = step([&] {
        const auto s = labels::LabelSet::parse(text, 1000);
        check(s.count() <= 1000, "the label_ids limit holds");
        const auto again = labels::LabelSet::parse(s.canonical(), 1000);
        check(again.canonical() == s.canonical(), "a set's canonical form parses back to it");
    });
    const std::string map = step([&] {
        const auto m = labels::LabelMap::parse(text, 1000);
        check(m.sources().count() <= 1000, "the map limit holds");
        const auto& r = m.rules();
        for (std::size_t i = 0; i < r.size(); ++i) {
            check(r[i].first <= r[i].last, "map rules are ranges");
            check(i == 0 || r[i].first > r[i - 1].last, "map rules are sorted and disjoint");
            check(m.find(r[i].first) == r[i].to && m.find(r[i].last) == r[i].to,
                  "find agrees with the rules");
        }
        check(labels::LabelMap::parse(m.canonical(), 1000).canonical() == m.canonical(),
              "a map's canonical form parses back to it");
    });
    const std::string names = step([&] {
        labels::Dictionary dict;
        dict.set(6, "aorta", labels::Rgb{255, 0, 0});
        dict.set(1, "liver", std::nullopt);
        dict.set(14, "left kidney", std::nullopt);
        (void)labels::LabelSet::parse_names(text, dict, 1000);
    });
    return "set:" + set + " map:" + map + " names:" + names;
}

// Whatever the input, what is opened obeys check_opened; a second name
// resolved from its folder (a partner or sidecar) obeys the same.
std::string path_target(Input in) {
    const auto& t = tree();
    const std::string_view raw(reinterpret_cast<const char*>(in.data()), in.size());
    std::string decoded;
    if (const std::string d = step([&] { decoded = fs::percent_decode(raw); }); d != "ok")
        return "decode:" + d;
    std::string out = "decode:ok";
    for (auto how : {fs::DataRoot::Resolution::Auto, fs::DataRoot::Resolution::Walk}) {
        const std::string name = how == fs::DataRoot::Resolution::Auto ? "auto" : "walk";
        const fs::DataRoot root(t.root, how);
        const std::string opened = step([&] { check_opened(root.open_file(decoded).file); });
        std::string sibling = "none";
        const std::string s = step([&] {
            const auto folder = root.open_file("PA1/scans/all.nii").folder;
            if (auto next = root.open_in(folder, decoded.substr(decoded.rfind('/') + 1))) {
                check_opened(next->file);
                sibling = "ok";
            }
        });
        out += " " + name + "-open:" + opened + " " + name + "-sibling:" + (s == "ok" ? sibling : s);
    }
    return out;
}

}  // namespace medimg::fuzz
