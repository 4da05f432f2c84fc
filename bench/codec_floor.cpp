// medimg_codec_floor: the in-process codec floor for `medimg filter`.
//
// Inflates a gzip file and deflates the result again at the same level, with
// no filtering, and reports how long that took. A filter that streams a
// .nii.gz through the same codec cannot be faster than this; docs/PERFORMANCE.md
// asks the filter to stay within 1.3x of it.
//
// Variants (one per process, so peak RSS is attributable):
//   lib         medimg::nifti::GzipInflater -> whole file in memory ->
//               medimg::nifti::GzipDeflater -> counting sink.  The floor the
//               filter is judged against: exactly the library's code path.
//   lib-stream  the same codec, but chunk by chunk (256 KiB) without holding
//               the volume: bounded memory, the shape of the real filter.
//   isal        raw ISA-L (isal_inflate / isal_deflate level 1), whole file
//               in memory (only with ISA-L).
//   zlib        raw zlib (inflate / deflate at the level), whole file in memory.
//
// Output: one tab-separated line per run:
//   variant  inflate_s  deflate_s  total_s  in_bytes  raw_bytes  out_bytes  maxrss_kib
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <zlib.h>

#ifdef MEDIMG_WITH_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "error.hpp"
#include "nifti/gzip.hpp"
#include "nifti/byte_io.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Compressed bytes straight from a file descriptor, as the Reader reads them.
class FileSource final : public medimg::nifti::ByteSource {
public:
    explicit FileSource(const char* path) {
        fd_ = ::open(path, O_RDONLY | O_CLOEXEC);
        if (fd_ < 0) throw std::runtime_error(std::string("cannot open ") + path + ": " + std::strerror(errno));
    }
    ~FileSource() override { ::close(fd_); }
    FileSource(const FileSource&) = delete;
    FileSource& operator=(const FileSource&) = delete;
    std::size_t read(std::uint8_t* buf, std::size_t n) override {
        for (;;) {
            const ssize_t r = ::read(fd_, buf, n);
            if (r >= 0) {
                bytes_ += static_cast<std::uint64_t>(r);
                return static_cast<std::size_t>(r);
            }
            if (errno != EINTR) throw std::runtime_error(std::string("read: ") + std::strerror(errno));
        }
    }
    std::uint64_t bytes() const { return bytes_; }

private:
    int fd_ = -1;
    std::uint64_t bytes_ = 0;
};

// Counts what it is given and keeps nothing (the floor excludes output I/O;
// the filter's own output goes to a file, which only makes it slower).
class CountingSink final : public medimg::nifti::ByteSink {
public:
    void write(const std::uint8_t* data, std::size_t n) override {
        // Touch the bytes so the writes cannot be optimised away.
        if (n) checksum_ ^= data[n - 1];
        bytes_ += n;
    }
    std::uint64_t bytes() const { return bytes_; }
    unsigned checksum() const { return checksum_; }

private:
    std::uint64_t bytes_ = 0;
    unsigned checksum_ = 0;
};

std::vector<std::uint8_t> read_whole_file(const char* path) {
    FileSource src(path);
    std::vector<std::uint8_t> bytes;
    std::size_t used = 0;
    bytes.resize(1 << 20);
    for (;;) {
        if (used == bytes.size()) bytes.resize(bytes.size() * 2);
        const std::size_t r = src.read(bytes.data() + used, bytes.size() - used);
        if (r == 0) break;
        used += r;
    }
    bytes.resize(used);
    return bytes;
}

struct Result {
    double inflate_s = 0, deflate_s = 0, total_s = 0;
    std::uint64_t in_bytes = 0, raw_bytes = 0, out_bytes = 0;
};

constexpr std::size_t kChunk = 256 * 1024;
constexpr std::uint64_t kNoCap = UINT64_MAX;

// ISIZE of the last gzip member (the uncompressed size mod 2^32 of a
// single-member file), to size the in-memory buffer once.
std::size_t gzip_isize(const char* path) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    std::uint8_t b[4] = {};
    const off_t end = ::lseek(fd, 0, SEEK_END);
    const bool ok = end >= 4 && ::pread(fd, b, 4, end - 4) == 4;
    ::close(fd);
    return ok ? (std::size_t(b[0]) | std::size_t(b[1]) << 8 | std::size_t(b[2]) << 16 | std::size_t(b[3]) << 24) : 0;
}

// A buffer that is not zero-filled (the inflater writes every byte it hands
// back), growing by doubling only if ISIZE was wrong.
struct RawBuffer {
    std::unique_ptr<std::uint8_t[]> data;
    std::size_t size = 0;
    void reserve_exact(std::size_t n) {
        std::unique_ptr<std::uint8_t[]> d(new std::uint8_t[n]);
        if (size) std::memcpy(d.get(), data.get(), size);
        data = std::move(d);
        size = n;
    }
};

Result run_lib(const char* path, int level) {
    Result r;
    const auto t0 = Clock::now();
    FileSource src(path);
    medimg::nifti::GzipInflater inflater(src, kNoCap);
    RawBuffer raw;
    raw.reserve_exact(std::max<std::size_t>(gzip_isize(path), 1 << 20) + 1);
    std::size_t used = 0;
    for (;;) {
        if (used == raw.size) raw.reserve_exact(raw.size * 2);
        const std::size_t n = inflater.read(raw.data.get() + used, raw.size - used);
        if (n == 0) break;
        used += n;
    }
    r.inflate_s = seconds_since(t0);
    const auto t1 = Clock::now();
    CountingSink sink;
    medimg::nifti::GzipDeflater deflater(sink, level);
    // Feed the deflater in the filter's chunk size, as the filter would.
    for (std::size_t off = 0; off < used; off += kChunk)
        deflater.write(raw.data.get() + off, std::min(kChunk, used - off));
    deflater.finish();
    r.deflate_s = seconds_since(t1);
    r.total_s = seconds_since(t0);
    r.in_bytes = src.bytes();
    r.raw_bytes = used;
    r.out_bytes = sink.bytes();
    return r;
}

Result run_lib_stream(const char* path, int level) {
    Result r;
    const auto t0 = Clock::now();
    FileSource src(path);
    medimg::nifti::GzipInflater inflater(src, kNoCap);
    CountingSink sink;
    medimg::nifti::GzipDeflater deflater(sink, level);
    std::vector<std::uint8_t> buf(kChunk);
    double inflate = 0;
    for (;;) {
        const auto ti = Clock::now();
        std::size_t got = 0;
        while (got < buf.size()) {
            const std::size_t n = inflater.read(buf.data() + got, buf.size() - got);
            if (n == 0) break;
            got += n;
        }
        inflate += seconds_since(ti);
        if (got == 0) break;
        deflater.write(buf.data(), got);
        r.raw_bytes += got;
    }
    deflater.finish();
    r.total_s = seconds_since(t0);
    r.inflate_s = inflate;
    r.deflate_s = r.total_s - inflate;
    r.in_bytes = src.bytes();
    r.out_bytes = sink.bytes();
    return r;
}

#ifdef MEDIMG_WITH_ISAL
Result run_isal(const char* path, int level) {
    Result r;
    const auto t0 = Clock::now();
    std::vector<std::uint8_t> in = read_whole_file(path);
    r.in_bytes = in.size();
    // ISIZE tells the size of a single-member file; grow if it was wrong.
    RawBuffer raw;
    raw.reserve_exact(std::max<std::size_t>(gzip_isize(path), 1 << 20) + 1);
    inflate_state st;
    isal_inflate_init(&st);
    st.crc_flag = ISAL_GZIP;
    st.next_in = in.data();
    st.avail_in = static_cast<std::uint32_t>(in.size());
    std::size_t used = 0;
    for (;;) {
        if (used == raw.size) raw.reserve_exact(raw.size * 2);
        st.next_out = raw.data.get() + used;
        st.avail_out = static_cast<std::uint32_t>(std::min<std::size_t>(raw.size - used, 1u << 30));
        const std::uint32_t before = st.avail_out;
        const int rc = isal_inflate(&st);
        if (rc != ISAL_DECOMP_OK) throw std::runtime_error("isal_inflate failed: " + std::to_string(rc));
        used += before - st.avail_out;
        if (st.block_state == ISAL_BLOCK_FINISH) break;
        if (st.avail_in == 0 && before == st.avail_out) throw std::runtime_error("isal_inflate: truncated input");
    }
    r.raw_bytes = used;
    r.inflate_s = seconds_since(t0);

    const auto t1 = Clock::now();
    isal_zstream zs;
    isal_deflate_init(&zs);
    zs.gzip_flag = IGZIP_GZIP;
    const int isal_level = level < 1 ? 0 : level > 3 ? 3 : level;
    zs.level = static_cast<std::uint32_t>(isal_level);
    std::vector<std::uint8_t> level_buf(isal_level == 0   ? 0
                                        : isal_level == 1 ? ISAL_DEF_LVL1_DEFAULT
                                        : isal_level == 2 ? ISAL_DEF_LVL2_DEFAULT
                                                          : ISAL_DEF_LVL3_DEFAULT);
    zs.level_buf = level_buf.empty() ? nullptr : level_buf.data();
    zs.level_buf_size = static_cast<std::uint32_t>(level_buf.size());
    std::vector<std::uint8_t> out(kChunk);
    CountingSink sink;
    zs.next_in = raw.data.get();
    zs.avail_in = static_cast<std::uint32_t>(used);   // < 4 GiB for any volume benched here
    zs.end_of_stream = 1;
    zs.flush = NO_FLUSH;
    do {
        zs.next_out = out.data();
        zs.avail_out = static_cast<std::uint32_t>(out.size());
        if (isal_deflate(&zs) != COMP_OK) throw std::runtime_error("isal_deflate failed");
        sink.write(out.data(), out.size() - zs.avail_out);
    } while (zs.internal_state.state != ZSTATE_END);
    r.deflate_s = seconds_since(t1);
    r.total_s = seconds_since(t0);
    r.out_bytes = sink.bytes();
    return r;
}
#endif

Result run_zlib(const char* path, int level) {
    Result r;
    const auto t0 = Clock::now();
    std::vector<std::uint8_t> in = read_whole_file(path);
    r.in_bytes = in.size();
    RawBuffer raw;
    raw.reserve_exact(std::max<std::size_t>(gzip_isize(path), 1 << 20) + 1);
    z_stream is{};
    if (inflateInit2(&is, 16 + 15) != Z_OK) throw std::runtime_error("inflateInit2 failed");
    is.next_in = in.data();
    is.avail_in = static_cast<uInt>(in.size());
    std::size_t used = 0;
    for (;;) {
        if (used == raw.size) raw.reserve_exact(raw.size * 2);
        is.next_out = raw.data.get() + used;
        is.avail_out = static_cast<uInt>(std::min<std::size_t>(raw.size - used, 1u << 30));
        const uInt before = is.avail_out;
        const int rc = inflate(&is, Z_NO_FLUSH);
        used += before - is.avail_out;
        if (rc == Z_STREAM_END) break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) throw std::runtime_error("zlib inflate failed");
        if (rc == Z_BUF_ERROR && is.avail_in == 0) throw std::runtime_error("zlib inflate: truncated input");
    }
    inflateEnd(&is);
    r.raw_bytes = used;
    r.inflate_s = seconds_since(t0);

    const auto t1 = Clock::now();
    z_stream ds{};
    if (deflateInit2(&ds, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2 failed");
    std::vector<std::uint8_t> out(kChunk);
    CountingSink sink;
    ds.next_in = raw.data.get();
    ds.avail_in = static_cast<uInt>(used);
    int rc;
    do {
        ds.next_out = out.data();
        ds.avail_out = static_cast<uInt>(out.size());
        rc = deflate(&ds, Z_FINISH);
        if (rc == Z_STREAM_ERROR) throw std::runtime_error("zlib deflate failed");
        sink.write(out.data(), out.size() - ds.avail_out);
    } while (rc != Z_STREAM_END);
    deflateEnd(&ds);
    r.deflate_s = seconds_since(t1);
    r.total_s = seconds_since(t0);
    r.out_bytes = sink.bytes();
    return r;
}

long maxrss_kib() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

void usage() {
    std::fputs("usage: medimg_codec_floor FILE.gz [--variant lib|lib-stream|isal|zlib] [--level N]\n"
               "prints: variant inflate_s deflate_s total_s in_bytes raw_bytes out_bytes maxrss_kib\n",
               stderr);
}

}  // namespace

int main(int argc, char** argv) {
    const char* path = nullptr;
    std::string variant = "lib";
    int level = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--variant" && i + 1 < argc) {
            variant = argv[++i];
        } else if (a == "--level" && i + 1 < argc) {
            level = std::atoi(argv[++i]);
        } else if (a == "-h" || a == "--help") {
            usage();
            return 0;
        } else if (!a.empty() && a[0] != '-' && !path) {
            path = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (!path || level < 0 || level > 9) {
        usage();
        return 2;
    }
    try {
        Result r;
        if (variant == "lib") {
            r = run_lib(path, level);
        } else if (variant == "lib-stream") {
            r = run_lib_stream(path, level);
        } else if (variant == "zlib") {
            r = run_zlib(path, level);
        } else if (variant == "isal") {
#ifdef MEDIMG_WITH_ISAL
            r = run_isal(path, level);
#else
            std::fputs("medimg_codec_floor: built without ISA-L\n", stderr);
            return 2;
#endif
        } else {
            usage();
            return 2;
        }
        std::printf("%s\t%.4f\t%.4f\t%.4f\t%llu\t%llu\t%llu\t%ld\n", variant.c_str(), r.inflate_s, r.deflate_s,
                    r.total_s, static_cast<unsigned long long>(r.in_bytes),
                    static_cast<unsigned long long>(r.raw_bytes), static_cast<unsigned long long>(r.out_bytes),
                    maxrss_kib());
        return 0;
    } catch (const medimg::Error& e) {
        std::fprintf(stderr, "medimg_codec_floor: %s\n", e.what());
        return 3;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "medimg_codec_floor: %s\n", e.what());
        return 1;
    }
}
