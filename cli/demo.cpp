// `medimg demo`: writes a synthetic but plausible patient tree (a CT-like
// volume and a VISTA3D-labelled segmentation of it), slice by slice, so any
// size costs the same small memory.
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"
#include "error.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/header.hpp"
#include "nifti/header_fields.hpp"
#include "nifti/byte_io.hpp"
#include "nifti/writer.hpp"

namespace medimg::cli {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kUsage =
    "usage: medimg demo DIR [--patient ID] [--size NXxNYxNZ] [--seed N] [--quiet]\n"
    "\n"
    "Writes a synthetic CT and its VISTA3D-labelled segmentation:\n"
    "  DIR/{patient}/nifti/{patient}_CT.nii.gz                  int16 CT (HU)\n"
    "  DIR/{patient}/scans/{patient}_CT.nii.gz                  int16 segmentation\n"
    "  DIR/{patient}/voxels/{patient}_CT/original/all.nii.gz    the same, all labels\n"
    "  DIR/{patient}/voxels/{patient}_CT/original/{structure}.nii.gz  one per structure\n"
    "The body spans 409.6 x 409.6 x 1000 mm whatever the size (0.8 x 0.8 x 2.5 mm\n"
    "voxels at the default 512x512x400). Files are listed on stdout as written.\n"
    "\n"
    "options:\n"
    "  --patient ID        patient directory name (default PA00000002)\n"
    "  --size NXxNYxNZ     volume size in voxels (default 512x512x400)\n"
    "  --seed N            noise and anatomy jitter seed (default 1)\n"
    "  --quiet             do not list the files written\n";

const std::vector<OptionSpec> kOptions = {
    {"--patient", true}, {"--size", true}, {"--seed", true}, {"--quiet", false}};

// Physical extent of the synthetic body's field of view, in mm.
constexpr double kFovX = 409.6, kFovY = 409.6, kFovZ = 1000.0;

// Internal ids used only while painting a slice; never written to a segmentation.
constexpr int kSpineBone = 1000;   // vertebrae outside the labelled ones
constexpr int kMaxInternal = 1024;

std::uint64_t splitmix64(std::uint64_t x) noexcept {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Uniform in [-1, 1) from a seed and a stream index.
double jitter(std::uint64_t seed, std::uint64_t index) {
    return static_cast<double>(splitmix64(seed * 0x100000001b3ull + index) >> 11) * 0x1p-52 - 1.0;
}

enum class Kind { Ellipsoid, Tube, Vertebra, LungLobe };

struct Structure {
    int id;
    const char* name;   // as in conf/vista3d_label_dict.json
    int hu;             // CT value inside
    Kind kind;
    double cx, cy, cz;  // centre in mm (x: patient left +, y: posterior +, z: superior +)
    double rx, ry, rz;  // radii (tube: rz is half its length)
    int lobe = 0;       // LungLobe: 28..32
};

// Lowest priority first: later structures paint over earlier ones.
std::vector<Structure> anatomy(std::uint64_t seed) {
    std::vector<Structure> s = {
        {28, "left lung upper lobe", -850, Kind::LungLobe, 88, 5, 740, 58, 78, 140, 28},
        {29, "left lung lower lobe", -850, Kind::LungLobe, 88, 5, 740, 58, 78, 140, 29},
        {30, "right lung upper lobe", -850, Kind::LungLobe, -88, 5, 740, 58, 78, 140, 30},
        {31, "right lung middle lobe", -850, Kind::LungLobe, -88, 5, 740, 58, 78, 140, 31},
        {32, "right lung lower lobe", -850, Kind::LungLobe, -88, 5, 740, 58, 78, 140, 32},
        {1, "liver", 110, Kind::Ellipsoid, -62, -5, 530, 80, 78, 85},
        {12, "stomach", 30, Kind::Ellipsoid, 55, -35, 545, 45, 35, 50},
        {3, "spleen", 120, Kind::Ellipsoid, 95, 35, 540, 32, 28, 50},
        {5, "right kidney", 180, Kind::Ellipsoid, -65, 55, 440, 28, 25, 55},
        {14, "left kidney", 180, Kind::Ellipsoid, 65, 55, 450, 28, 25, 55},
        {4, "pancreas", 90, Kind::Ellipsoid, 15, -15, 465, 55, 13, 14},
        {10, "gallbladder", 10, Kind::Ellipsoid, -40, -55, 480, 14, 14, 32},
        {15, "bladder", 8, Kind::Ellipsoid, 0, -40, 170, 45, 35, 35},
        {7, "inferior vena cava", 140, Kind::Tube, -25, 8, 460, 11, 11, 160},
        {6, "aorta", 180, Kind::Tube, 18, 12, 550, 12, 12, 250},
        {33, "vertebrae L5", 700, Kind::Vertebra, 0, 0, 260, 0, 0, 15},
        {34, "vertebrae L4", 700, Kind::Vertebra, 0, 0, 296, 0, 0, 15},
        {35, "vertebrae L3", 700, Kind::Vertebra, 0, 0, 332, 0, 0, 15},
        {36, "vertebrae L2", 700, Kind::Vertebra, 0, 0, 368, 0, 0, 15},
        {37, "vertebrae L1", 700, Kind::Vertebra, 0, 0, 404, 0, 0, 15},
    };
    // Soft organs move a little with the seed; bones and lung halves do not
    // (lobes must share one lung, vertebrae one spine).
    for (auto& st : s) {
        if (st.kind != Kind::Ellipsoid) continue;
        st.cx += 4 * jitter(seed, static_cast<std::uint64_t>(st.id) * 3);
        st.cy += 4 * jitter(seed, static_cast<std::uint64_t>(st.id) * 3 + 1);
        st.cz += 4 * jitter(seed, static_cast<std::uint64_t>(st.id) * 3 + 2);
    }
    return s;
}

// Vertebra cross-section at (x, y) relative to the spine axis: body, arch
// around the canal, spinous process.
bool in_vertebra(double x, double y) {
    const double bx = x / 22, by = (y - 45) / 17;
    if (bx * bx + by * by <= 1) return true;
    const double ox = x / 18, oy = (y - 75) / 14, ix = x / 8, iy = (y - 75) / 7;
    if (ox * ox + oy * oy <= 1 && ix * ix + iy * iy > 1) return true;
    return std::abs(x) <= 4 && y >= 85 && y <= 105;
}

// The lobe of a point of a lung: oblique fissure (anterior-superior part is
// the upper lobe), plus the horizontal fissure on the right.
int lobe_of(bool left, double y, double z) {
    const bool upper_side = (z - 720) - 0.8 * y > 0;
    if (left) return upper_side ? 28 : 29;
    if (!upper_side) return 32;
    return z > 770 ? 30 : 31;
}

// The body section a height z falls in; the outline changes only between
// sections, so a slice's outline is computed once per section.
int body_section(double z) { return z < 120 ? 0 : z < 300 ? 1 : z < 560 ? 2 : z < 880 ? 3 : 4; }

// The body outline at height z: 0 outside, 1 fat rim, 2 soft tissue.
int body_class(double x, double y, double z) {
    double r2;
    if (z < 120) {   // thighs
        const double dl = ((x - 85) * (x - 85) + y * y) / (75.0 * 75);
        const double dr = ((x + 85) * (x + 85) + y * y) / (75.0 * 75);
        r2 = std::min(dl, dr);
    } else if (z >= 880) {   // neck
        r2 = (x * x + (y - 15) * (y - 15)) / (60.0 * 60);
    } else {
        const double ax = z < 300 ? 165 : z < 560 ? 155 : 165;
        const double ay = z < 300 ? 110 : 115;
        r2 = (x / ax) * (x / ax) + (y / ay) * (y / ay);
    }
    if (r2 > 1) return 0;
    return r2 > 0.82 ? 1 : 2;
}

struct Geometry {
    std::int64_t nx, ny, nz;
    double px, py, pz;
    double x_of(std::int64_t i) const { return (static_cast<double>(i) - (nx - 1) / 2.0) * px; }
    double y_of(std::int64_t j) const { return (static_cast<double>(j) - (ny - 1) / 2.0) * py; }
    double z_of(std::int64_t k) const { return static_cast<double>(k) * pz; }
};

// z extent of a structure, in mm.
std::pair<double, double> z_range(const Structure& s) { return {s.cz - s.rz, s.cz + s.rz}; }

// Paints structure `s` into the label slice at height z, only inside the body.
void paint(const Structure& s, const Geometry& g, double z, const std::vector<std::uint8_t>& body,
           std::vector<std::int16_t>& label) {
    const double dz = z - s.cz;
    if (std::abs(dz) > s.rz) return;
    double ax = s.rx, ay = s.ry, cx = s.cx, cy = s.cy;
    if (s.kind == Kind::Ellipsoid || s.kind == Kind::LungLobe) {
        const double t = std::sqrt(std::max(0.0, 1 - (dz / s.rz) * (dz / s.rz)));
        ax *= t;
        ay *= t;
    } else if (s.kind == Kind::Vertebra) {
        ax = 22;
        cy = 65;
        ay = 41;   // bounding box of the vertebra outline: y 24..106
    }
    if (ax <= 0 || ay <= 0) return;
    auto clamp_i = [](double v, std::int64_t n) {
        return std::clamp<std::int64_t>(static_cast<std::int64_t>(std::floor(v)), 0, n - 1);
    };
    const std::int64_t i0 = clamp_i((cx - ax) / g.px + (g.nx - 1) / 2.0, g.nx);
    const std::int64_t i1 = clamp_i((cx + ax) / g.px + (g.nx - 1) / 2.0 + 1, g.nx);
    const std::int64_t j0 = clamp_i((cy - ay) / g.py + (g.ny - 1) / 2.0, g.ny);
    const std::int64_t j1 = clamp_i((cy + ay) / g.py + (g.ny - 1) / 2.0 + 1, g.ny);
    const bool left = s.cx > 0;
    for (std::int64_t j = j0; j <= j1; ++j) {
        const double y = g.y_of(j);
        for (std::int64_t i = i0; i <= i1; ++i) {
            const std::size_t at = static_cast<std::size_t>(j * g.nx + i);
            if (!body[at]) continue;
            const double x = g.x_of(i);
            bool inside;
            if (s.kind == Kind::Vertebra) {
                inside = in_vertebra(x, y);
            } else {
                const double ux = (x - cx) / ax, uy = (y - cy) / ay;
                inside = ux * ux + uy * uy <= 1;
                if (inside && s.kind == Kind::LungLobe) inside = lobe_of(left, y, z) == s.lobe;
            }
            if (inside) label[at] = static_cast<std::int16_t>(s.id);
        }
    }
}

// A 348-byte little-endian NIfTI-1 single-file header for an int16 volume
// with the demo's geometry: LPS-style axes (i → patient left, j → posterior,
// k → superior), centred on the origin, qform and sform both "scanner".
nifti::Header make_header(const Geometry& g, const std::string& descrip, bool segmentation) {
    using nifti::Field;
    std::vector<std::uint8_t> b(nifti::kNifti1Size, 0);
    nifti::FieldEditor f(b.data(), nifti::Version::Nifti1, nifti::ByteOrder::Little);
    f.set_integer(Field::sizeof_hdr, nifti::kNifti1Size);
    const std::array<std::int64_t, 8> dim = {3, g.nx, g.ny, g.nz, 1, 1, 1, 1};
    for (int i = 0; i < 8; ++i) f.set_integer(Field::dim, i, dim[i]);
    if (segmentation) f.set_integer(Field::intent_code, 1002);   // NIFTI_INTENT_LABEL
    f.set_integer(Field::datatype, 4);                            // int16
    f.set_integer(Field::bitpix, 16);
    const std::array<double, 8> pixdim = {1.0, g.px, g.py, g.pz, 1, 1, 1, 1};
    for (int i = 0; i < 8; ++i) f.set_real(Field::pixdim, i, pixdim[i]);
    f.set_real(Field::vox_offset, nifti::kNifti1Size + 4);
    f.set_real(Field::scl_slope, segmentation ? 0.0 : 1.0);
    f.set_real(Field::scl_inter, 0.0);
    f.set_integer(Field::xyzt_units, 2);   // mm
    if (!segmentation) {
        f.set_real(Field::cal_max, 1500.0);   // a soft-tissue-and-bone window
        f.set_real(Field::cal_min, -1000.0);
    }
    f.set_text(Field::descrip, std::string_view(descrip).substr(0, 79));
    f.set_integer(Field::qform_code, 1);   // scanner
    f.set_integer(Field::sform_code, 1);   // scanner
    // Rotation of 180 degrees about z: (b, c, d) = (0, 0, 1), i.e. x and y flipped.
    f.set_real(Field::quatern_b, 0.0);
    f.set_real(Field::quatern_c, 0.0);
    f.set_real(Field::quatern_d, 1.0);
    const float qx = static_cast<float>(g.px * (g.nx - 1) / 2.0);
    const float qy = static_cast<float>(g.py * (g.ny - 1) / 2.0);
    const float qz = static_cast<float>(-g.pz * (g.nz - 1) / 2.0);
    f.set_real(Field::qoffset_x, qx);
    f.set_real(Field::qoffset_y, qy);
    f.set_real(Field::qoffset_z, qz);
    const std::array<std::array<float, 4>, 3> srow = {{{-static_cast<float>(g.px), 0, 0, qx},
                                                        {0, -static_cast<float>(g.py), 0, qy},
                                                        {0, 0, static_cast<float>(g.pz), qz}}};
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 4; ++c) f.set_real(Field::srow_x + r, c, srow[r][c]);
    f.set_text(Field::magic, std::string_view("n+1", 4));
    nifti::HeaderLimits limits;
    limits.max_voxels = UINT64_MAX;
    return nifti::Header::parse(b, nifti::Layout::Single, limits);
}

// One output file: written to a temporary name, renamed in commit().
class Output {
public:
    Output(stdfs::path path, const nifti::Header& header)
        : path_(std::move(path)), sink_(path_),
          writer_(sink_, header, kExtender, nifti::Container::Gzip, 1) {}
    void write(const std::vector<std::int16_t>& slice) {
        if constexpr (std::endian::native == std::endian::little) {
            writer_.write(reinterpret_cast<const std::uint8_t*>(slice.data()), slice.size() * 2);
        } else {
            le_.resize(slice.size() * 2);
            for (std::size_t i = 0; i < slice.size(); ++i)
                nifti::byteorder::store<std::int16_t>(&le_[2 * i], slice[i], true);
            writer_.write(le_.data(), le_.size());
        }
    }
    void finish() { writer_.finish(); }
    void commit() { sink_.commit(); }
    const stdfs::path& path() const { return path_; }

private:
    // The 4-byte NIfTI-1 extender after the header: no extensions.
    static constexpr std::array<std::uint8_t, 4> kExtender = {0, 0, 0, 0};
    stdfs::path path_;
    nifti::AtomicFileSink sink_;
    nifti::Writer writer_;
    std::vector<std::uint8_t> le_;
};

std::string file_stem_for(const char* name) {
    std::string s = name;
    for (char& c : s)
        if (c == ' ') c = '_';
    return s;
}

Geometry parse_size(const std::string& text) {
    Geometry g{};
    std::array<std::int64_t, 3> n{};
    std::size_t start = 0;
    for (int a = 0; a < 3; ++a) {
        const std::size_t x = a < 2 ? text.find('x', start) : text.size();
        if (x == std::string::npos)
            throw Error(ErrorCode::BadParameter,
                        "--size is '" + text + "'; expected NXxNYxNZ, e.g. 512x512x400");
        n[a] = parse_int(std::string_view(text).substr(start, x - start), "--size", 1, 32767);
        start = x + 1;
    }
    g.nx = n[0];
    g.ny = n[1];
    g.nz = n[2];
    g.px = kFovX / static_cast<double>(g.nx);
    g.py = kFovY / static_cast<double>(g.ny);
    g.pz = kFovZ / static_cast<double>(g.nz);
    return g;
}

void check_patient(const std::string& id) {
    bool ok = !id.empty() && id[0] != '.' && id.size() <= 128;
    for (char c : id)
        ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
    if (!ok)
        throw Error(ErrorCode::BadParameter, "--patient is '" + id +
                                                 "'; use letters, digits, '_', '-' or '.', not starting with '.'");
}

// What the command line asks for.
struct DemoOptions {
    stdfs::path root;
    std::string patient;
    Geometry g;
    std::uint64_t seed;
    bool quiet;
};

DemoOptions demo_options(const ParsedArgs& parsed) {
    DemoOptions o;
    o.root = single_positional(parsed, "output directory");
    o.patient = parsed.value("--patient").value_or("PA00000002");
    check_patient(o.patient);
    o.g = parse_size(parsed.value("--size").value_or("512x512x400"));
    o.seed = static_cast<std::uint64_t>(
        parse_int(parsed.value("--seed").value_or("1"), "--seed", 0, INT64_MAX));
    o.quiet = parsed.has("--quiet");
    return o;
}

constexpr std::array<std::int16_t, 3> kBodyHu = {-1000, -100, 45};   // air, fat, soft tissue
constexpr std::array<int, 3> kNoise = {12, 25, 30};                  // half-width of the noise

// One axial slice at a time: the body outline (computed again only when the
// body section changes), the labels painted in priority order, then the CT
// values with noise and the segmentation.
class SliceMaker {
public:
    SliceMaker(const Geometry& g, const std::vector<Structure>& structures, std::uint64_t seed)
        : g_(g), structures_(structures), seed_(seed), n_(static_cast<std::size_t>(g.nx * g.ny)),
          body_(n_), label_(n_), ct_(n_), seg_(n_) {
        for (const auto& s : structures) hu_[static_cast<std::size_t>(s.id)] = static_cast<std::int16_t>(s.hu);
        hu_[kSpineBone] = 700;
        const Structure* lowest = nullptr;
        const Structure* highest = nullptr;
        for (const auto& s : structures)
            if (s.kind == Kind::Vertebra) {
                if (!lowest || s.cz < lowest->cz) lowest = &s;
                if (!highest || s.cz > highest->cz) highest = &s;
            }
        labelled_spine_ = {lowest->cz, highest->cz};
    }

    // Makes slice k: ct() and seg() hold it until the next call.
    void make(std::int64_t k) {
        const double z = g_.z_of(k);
        outline(z);
        paint_labels(z);
        values(k);
    }
    const std::vector<std::int16_t>& ct() const { return ct_; }
    const std::vector<std::int16_t>& seg() const { return seg_; }

private:
    void outline(double z) {
        if (body_section(z) == section_) return;
        section_ = body_section(z);
        for (std::int64_t j = 0; j < g_.ny; ++j) {
            const double y = g_.y_of(j);
            for (std::int64_t i = 0; i < g_.nx; ++i)
                body_[static_cast<std::size_t>(j * g_.nx + i)] =
                    static_cast<std::uint8_t>(body_class(g_.x_of(i), y, z));
        }
    }

    void paint_labels(double z) {
        std::fill(label_.begin(), label_.end(), std::int16_t{0});
        // The rest of the spine, sacrum to C7, in the CT only (not labelled).
        if (z >= 120 && z < 880) {
            const double v = std::round((z - 260) / 36);
            const double zc = 260 + 36 * v;
            if (std::abs(z - zc) <= 15 && (zc < labelled_spine_.first || zc > labelled_spine_.second)) {
                Structure spine{kSpineBone, "", 700, Kind::Vertebra, 0, 0, zc, 0, 0, 15};
                paint(spine, g_, z, body_, label_);
            }
        }
        for (const auto& s : structures_) paint(s, g_, z, body_, label_);
    }

    // Triangular noise from two 8-bit uniforms: 16 random bits per voxel.
    void values(std::int64_t k) {
        const std::uint64_t slice_seed = splitmix64(seed_ ^ (static_cast<std::uint64_t>(k) << 32));
        for (std::size_t at = 0; at < n_; at += 4) {
            std::uint64_t r = splitmix64(slice_seed + at);
            const std::size_t end = std::min(n_, at + 4);
            for (std::size_t v = at; v < end; ++v, r >>= 16) {
                const int tri = static_cast<int>(r & 0xff) + static_cast<int>((r >> 8) & 0xff) - 255;
                const int l = label_[v];
                const int base = l ? hu_[static_cast<std::size_t>(l)] : kBodyHu[body_[v]];
                const int amp = l ? 30 : kNoise[body_[v]];
                ct_[v] = static_cast<std::int16_t>(base + ((tri * amp) >> 8));
                seg_[v] = l >= kSpineBone ? std::int16_t{0} : static_cast<std::int16_t>(l);
            }
        }
    }

    const Geometry& g_;
    const std::vector<Structure>& structures_;
    const std::uint64_t seed_;
    const std::size_t n_;
    std::array<std::int16_t, kMaxInternal> hu_{};
    std::pair<double, double> labelled_spine_;   // centres of the lowest and highest labelled vertebra
    int section_ = -1;
    std::vector<std::uint8_t> body_;
    std::vector<std::int16_t> label_, ct_, seg_;
};

// The patient's files, in the order each slice is written to them: the CT,
// the segmentation, all labels, then one file per structure (its label where
// the slice crosses it, zeros elsewhere).
class DemoFiles {
public:
    DemoFiles(const stdfs::path& root, const std::string& patient, const Geometry& g,
              const std::vector<Structure>& structures)
        : structures_(structures), one_(static_cast<std::size_t>(g.nx * g.ny)), zero_(one_.size(), 0) {
        const std::string scan = patient + "_CT";
        const stdfs::path base = root / patient;
        const stdfs::path voxels = base / "voxels" / scan / "original";
        for (const stdfs::path& d : {base / "nifti", base / "scans", voxels}) {
            std::error_code ec;
            stdfs::create_directories(d, ec);
            if (ec) throw Error(ErrorCode::Io, "cannot create " + d.string() + ": " + ec.message());
        }
        const nifti::Header ct_header = make_header(g, "medimg demo: synthetic CT (HU)", false);
        const nifti::Header seg_header = make_header(g, "medimg demo: VISTA3D-style segmentation", true);
        outputs_.push_back(std::make_unique<Output>(base / "nifti" / (scan + ".nii.gz"), ct_header));
        outputs_.push_back(std::make_unique<Output>(base / "scans" / (scan + ".nii.gz"), seg_header));
        outputs_.push_back(std::make_unique<Output>(voxels / "all.nii.gz", seg_header));
        for (const auto& s : structures)
            outputs_.push_back(std::make_unique<Output>(voxels / (file_stem_for(s.name) + ".nii.gz"), seg_header));
    }

    // Appends the slice at height z to every file.
    void write(double z, const std::vector<std::int16_t>& ct, const std::vector<std::int16_t>& seg) {
        outputs_[0]->write(ct);
        outputs_[1]->write(seg);
        outputs_[2]->write(seg);
        for (std::size_t s = 0; s < structures_.size(); ++s) {
            const auto [z0, z1] = z_range(structures_[s]);
            if (z < z0 || z > z1) {
                outputs_[3 + s]->write(zero_);
                continue;
            }
            const auto id = static_cast<std::int16_t>(structures_[s].id);
            for (std::size_t at = 0; at < one_.size(); ++at) one_[at] = seg[at] == id ? id : std::int16_t{0};
            outputs_[3 + s]->write(one_);
        }
    }

    // Everything is complete before anything is renamed into place.
    void commit(bool list) {
        for (auto& o : outputs_) o->finish();
        for (auto& o : outputs_) {
            o->commit();
            if (list) std::printf("%s\n", o->path().string().c_str());
        }
    }

private:
    const std::vector<Structure>& structures_;
    std::vector<std::unique_ptr<Output>> outputs_;
    std::vector<std::int16_t> one_, zero_;
};

int run(const Args& args) {
    const ParsedArgs parsed = parse_args(args, kOptions);
    if (print_help(parsed, kUsage)) return 0;
    const DemoOptions o = demo_options(parsed);
    const std::vector<Structure> structures = anatomy(o.seed);
    DemoFiles files(o.root, o.patient, o.g, structures);
    SliceMaker slice(o.g, structures, o.seed);
    for (std::int64_t k = 0; k < o.g.nz; ++k) {
        slice.make(k);
        files.write(o.g.z_of(k), slice.ct(), slice.seg());
    }
    files.commit(!o.quiet);
    return 0;
}

}  // namespace

int run_demo(const Args& args) {
    return run_guarded("demo", [&] { return run(args); });
}

}  // namespace medimg::cli
