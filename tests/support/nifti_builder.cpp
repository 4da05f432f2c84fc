// Test-side NIfTI builder: fields written at the offsets of nifti1.h/nifti2.h.
#include "nifti_builder.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <unistd.h>

namespace medimg::test {

int datatype_bytes(int code) {
    switch (code) {
    case 2: case 256: return 1;
    case 4: case 512: return 2;
    case 8: case 16: case 768: case 2304: return 4;
    case 32: case 64: case 1024: case 1280: return 8;
    case 128: return 3;
    case 1536: case 1792: return 16;
    case 2048: return 32;
    default: return 0;
    }
}

Offsets offsets_for(Version v) {
    if (v == Version::Nifti2)
        return {16, 12, 14, 104, 168, 176, 184, 344, 348, 352, 376, 400, 240, 4, 500, 8, 8, 4};
    return {40, 70, 72, 76, 108, 112, 116, 252, 254, 256, 268, 280, 148, 344, 123, 2, 4, 2};
}

namespace {

std::uint64_t voxel_count(const NiftiSpec& s) {
    std::uint64_t n = 1;
    for (auto d : s.dims) n *= static_cast<std::uint64_t>(d);
    return n;
}

std::size_t header_size(const NiftiSpec& s) { return s.version == Version::Nifti2 ? 540 : 348; }

std::vector<std::uint8_t> default_extension(const NiftiSpec& s) {
    if (s.extension) return *s.extension;
    if (s.pair) return {};
    return {0, 0, 0, 0};
}

std::vector<std::uint8_t> data_of(const NiftiSpec& s) {
    if (s.data) return *s.data;
    return std::vector<std::uint8_t>(voxel_count(s) * static_cast<std::uint64_t>(datatype_bytes(s.datatype)), 0);
}

double vox_offset_of(const NiftiSpec& s) {
    if (s.vox_offset) return *s.vox_offset;
    if (s.pair) return 0;
    return static_cast<double>(header_size(s) + default_extension(s).size());
}

}  // namespace

std::vector<std::uint8_t> build_header(const NiftiSpec& s) {
    const bool v2 = s.version == Version::Nifti2;
    const ByteOrder o = s.byte_order;
    std::vector<std::uint8_t> h(header_size(s), 0);
    put<std::int32_t>(h, 0, s.sizeof_hdr.value_or(static_cast<std::int32_t>(h.size())), o);
    const std::int64_t dim0 = s.dim0.value_or(static_cast<std::int64_t>(s.dims.size()));
    const int bitpix = s.bitpix.value_or(s.datatype == 1 ? 1 : 8 * datatype_bytes(s.datatype));
    const double vox = vox_offset_of(s);
    if (v2) {
        put<std::int16_t>(h, 12, static_cast<std::int16_t>(s.datatype), o);
        put<std::int16_t>(h, 14, static_cast<std::int16_t>(bitpix), o);
        put<std::int64_t>(h, 16, dim0, o);
        for (std::size_t i = 0; i < 7; ++i)
            put<std::int64_t>(h, 24 + 8 * i, i < s.dims.size() ? s.dims[i] : 1, o);
        for (int i = 0; i < 8; ++i) put<double>(h, 104 + 8 * i, s.pixdim[i], o);
        put<std::int64_t>(h, 168, static_cast<std::int64_t>(vox), o);
        put<double>(h, 176, s.scl_slope, o);
        put<double>(h, 184, s.scl_inter, o);
        std::memcpy(h.data() + 240, s.descrip.data(), std::min<std::size_t>(80, s.descrip.size()));
        put<std::int32_t>(h, 344, s.qform_code, o);
        put<std::int32_t>(h, 348, s.sform_code, o);
        for (int i = 0; i < 3; ++i) {
            put<double>(h, 352 + 8 * i, s.quatern[i], o);
            put<double>(h, 376 + 8 * i, s.qoffset[i], o);
        }
        for (int r = 0; r < 3; ++r)
            for (int c = 0; c < 4; ++c) put<double>(h, 400 + 32 * r + 8 * c, s.srow[r][c], o);
        put<std::int32_t>(h, 500, s.xyzt_units, o);
        put<std::int32_t>(h, 504, s.intent_code, o);
        const std::string magic = s.magic.value_or(s.pair ? std::string("ni2\0\r\n\032\n", 8)
                                                          : std::string("n+2\0\r\n\032\n", 8));
        std::memcpy(h.data() + 4, magic.data(), std::min<std::size_t>(8, magic.size()));
        return h;
    }
    put<std::int16_t>(h, 40, static_cast<std::int16_t>(dim0), o);
    for (std::size_t i = 0; i < 7; ++i)
        put<std::int16_t>(h, 42 + 2 * i, static_cast<std::int16_t>(i < s.dims.size() ? s.dims[i] : 1), o);
    put<std::int16_t>(h, 70, static_cast<std::int16_t>(s.datatype), o);
    put<std::int16_t>(h, 72, static_cast<std::int16_t>(bitpix), o);
    for (int i = 0; i < 8; ++i) put<float>(h, 76 + 4 * i, static_cast<float>(s.pixdim[i]), o);
    put<float>(h, 108, static_cast<float>(vox), o);
    std::memcpy(h.data() + 148, s.descrip.data(), std::min<std::size_t>(80, s.descrip.size()));
    if (s.version == Version::Analyze75) {
        if (s.magic) std::memcpy(h.data() + 344, s.magic->data(), std::min<std::size_t>(4, s.magic->size()));
        return h;
    }
    put<std::int16_t>(h, 68, static_cast<std::int16_t>(s.intent_code), o);
    put<float>(h, 112, static_cast<float>(s.scl_slope), o);
    put<float>(h, 116, static_cast<float>(s.scl_inter), o);
    h[123] = static_cast<std::uint8_t>(s.xyzt_units);
    put<std::int16_t>(h, 252, static_cast<std::int16_t>(s.qform_code), o);
    put<std::int16_t>(h, 254, static_cast<std::int16_t>(s.sform_code), o);
    for (int i = 0; i < 3; ++i) {
        put<float>(h, 256 + 4 * i, static_cast<float>(s.quatern[i]), o);
        put<float>(h, 268 + 4 * i, static_cast<float>(s.qoffset[i]), o);
    }
    for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 4; ++c) put<float>(h, 280 + 16 * r + 4 * c, static_cast<float>(s.srow[r][c]), o);
    const std::string magic = s.magic.value_or(s.pair ? std::string("ni1\0", 4) : std::string("n+1\0", 4));
    std::memcpy(h.data() + 344, magic.data(), std::min<std::size_t>(4, magic.size()));
    return h;
}

std::vector<std::uint8_t> build_nifti(const NiftiSpec& s) {
    std::vector<std::uint8_t> out = build_header(s);
    const auto ext = default_extension(s);
    out.insert(out.end(), ext.begin(), ext.end());
    const double vox = vox_offset_of(s);
    // Pad (or not) so the data starts at vox_offset when that is sensible.
    if (std::isfinite(vox) && vox > static_cast<double>(out.size()) && vox < 1e7)
        out.resize(static_cast<std::size_t>(vox), 0);
    const auto data = data_of(s);
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::vector<std::uint8_t> build_img(const NiftiSpec& s) {
    const double vox = vox_offset_of(s);
    std::vector<std::uint8_t> out(vox > 0 && vox < 1e7 ? static_cast<std::size_t>(vox) : 0, 0);
    const auto data = data_of(s);
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::vector<std::uint8_t> gzip_bytes(const std::vector<std::uint8_t>& plain, int level) {
    z_stream zs{};
    if (deflateInit2(&zs, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::vector<std::uint8_t> out(deflateBound(&zs, plain.size()) + 64);
    zs.next_in = const_cast<Bytef*>(plain.data());
    zs.avail_in = static_cast<uInt>(plain.size());
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&zs, Z_FINISH);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) throw std::runtime_error("deflate failed");
    out.resize(zs.total_out);
    return out;
}

std::vector<std::uint8_t> gunzip_file(const std::filesystem::path& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("gzopen failed: " + path.string());
    std::vector<std::uint8_t> out;
    std::vector<std::uint8_t> buf(1 << 16);
    for (;;) {
        const int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
        if (n < 0) {
            int err = 0;
            std::string msg = gzerror(f, &err);
            gzclose(f);
            throw std::runtime_error("gzread failed: " + msg);
        }
        if (n == 0) break;
        out.insert(out.end(), buf.begin(), buf.begin() + n);
    }
    if (gzclose(f) != Z_OK) throw std::runtime_error("gzclose reported an error: " + path.string());
    return out;
}

void write_file(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!f) throw std::runtime_error("cannot write " + path.string());
}

std::vector<std::uint8_t> read_file(const std::filesystem::path& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read " + path.string());
    return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

namespace {

void write_maybe_gzip(const std::filesystem::path& path, const std::vector<std::uint8_t>& bytes, bool gzip) {
    if (!gzip) {
        write_file(path, bytes);
        return;
    }
    gzFile f = gzopen(path.c_str(), "wb6");
    if (!f) throw std::runtime_error("gzopen failed: " + path.string());
    if (!bytes.empty() && gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) == 0) {
        gzclose(f);
        throw std::runtime_error("gzwrite failed: " + path.string());
    }
    if (gzclose(f) != Z_OK) throw std::runtime_error("gzclose failed: " + path.string());
}

}  // namespace

void write_nifti(const std::filesystem::path& path, const NiftiSpec& spec, bool gzip) {
    write_maybe_gzip(path, build_nifti(spec), gzip);
}

void write_pair(const std::filesystem::path& hdr_path, const std::filesystem::path& img_path,
                const NiftiSpec& spec, bool gzip_hdr, bool gzip_img) {
    NiftiSpec s = spec;
    s.pair = true;
    write_maybe_gzip(hdr_path, build_header(s), gzip_hdr);
    write_maybe_gzip(img_path, build_img(s), gzip_img);
}

TempDir::TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "medimg-test-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> TempDir::entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace medimg::test
