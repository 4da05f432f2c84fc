// gzip (RFC 1952) inflater and deflater. Member headers are parsed here (so
// FEXTRA, FNAME, FCOMMENT and FHCRC are all checked the same way whichever
// codec runs); the deflate body goes through ISA-L when built with it, else
// zlib. CRC-32 and ISIZE of every member are verified.
#include "nifti/gzip.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#ifdef MEDIMG_WITH_ISAL
#include <isa-l.h>
#endif

#include "error.hpp"

namespace medimg::nifti {
namespace {

constexpr std::size_t kInBuf = 256 * 1024;
constexpr std::size_t kOutBuf = 256 * 1024;

[[noreturn]] void bad(const std::string& msg) { throw Error(ErrorCode::BadGzip, msg); }
[[noreturn]] void truncated(const std::string& msg) { throw Error(ErrorCode::TruncatedData, msg); }

}  // namespace

bool is_gzip(std::span<const std::uint8_t> prefix) noexcept {
    return prefix.size() >= 2 && prefix[0] == 0x1f && prefix[1] == 0x8b;
}

// ---------------------------------------------------------------- inflater

struct GzipInflater::Impl {
    ByteSource& in;
    std::uint64_t max_output;
    std::uint64_t total_out = 0;
    std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(kInBuf);
    std::size_t pos = 0, len = 0;   // unread input is buf[pos, len)
    bool in_eof = false;
    enum class State { MemberStart, Body, Trailer, Done } state = State::MemberStart;
    bool first_member = true;
    std::uint64_t member_out = 0;
    std::uint32_t member_crc = 0;
    bool trailer_done = false;
#ifdef MEDIMG_WITH_ISAL
    inflate_state isal{};
#else
    z_stream zs{};
    bool zs_init = false;
#endif

    Impl(ByteSource& s, std::uint64_t cap) : in(s), max_output(cap) {
#ifndef MEDIMG_WITH_ISAL
        if (inflateInit2(&zs, -15) != Z_OK) throw Error(ErrorCode::Internal, "zlib inflateInit2 failed");
        zs_init = true;
#endif
    }
    ~Impl() {
#ifndef MEDIMG_WITH_ISAL
        if (zs_init) inflateEnd(&zs);
#endif
    }

    // Makes input available; false at the end of the source.
    bool fill() {
        if (pos < len) return true;
        if (in_eof) return false;
        pos = 0;
        len = in.read(buf.data(), buf.size());
        if (len == 0) in_eof = true;
        return len > 0;
    }

    // One header byte (adds it to the header CRC); TruncatedData at the end.
    std::uint8_t header_byte(std::uint32_t& hcrc) {
        if (!fill()) truncated("gzip stream ends inside a member header");
        const std::uint8_t b = buf[pos++];
        hcrc = static_cast<std::uint32_t>(crc32(hcrc, &b, 1));
        return b;
    }

    // At a member boundary: parses the next member's header. Returns false
    // when there is no further member (end, or trailing bytes to ignore).
    bool start_member() {
        std::uint32_t hcrc = static_cast<std::uint32_t>(crc32(0, nullptr, 0));
        if (!fill()) {
            if (first_member) truncated("gzip stream is empty");
            return false;
        }
        if (buf[pos] != 0x1f) {
            if (first_member) bad("not a gzip stream (no 1f 8b magic)");
            return false;   // trailing NULs or garbage: ignored, as gzip(1) does
        }
        // Second magic byte may lie in the next read.
        std::uint8_t id1 = buf[pos++];
        hcrc = static_cast<std::uint32_t>(crc32(hcrc, &id1, 1));
        if (!fill()) {
            if (first_member) truncated("gzip stream ends inside a member header");
            return false;
        }
        if (buf[pos] != 0x8b) {
            if (first_member) bad("not a gzip stream (no 1f 8b magic)");
            return false;
        }
        header_byte(hcrc);
        const std::uint8_t cm = header_byte(hcrc);
        if (cm != 8) bad("gzip member uses compression method " + std::to_string(cm) + ", not deflate (8)");
        const std::uint8_t flg = header_byte(hcrc);
        if (flg & 0xe0) bad("gzip member header has reserved flag bits set");
        for (int i = 0; i < 6; ++i) header_byte(hcrc);   // MTIME, XFL, OS
        if (flg & 0x04) {                                  // FEXTRA
            std::size_t xlen = header_byte(hcrc);
            xlen |= static_cast<std::size_t>(header_byte(hcrc)) << 8;
            while (xlen > 0) {
                if (!fill()) truncated("gzip stream ends inside a member header (FEXTRA)");
                const std::size_t k = std::min(xlen, len - pos);
                hcrc = static_cast<std::uint32_t>(crc32(hcrc, buf.data() + pos, static_cast<uInt>(k)));
                pos += k;
                xlen -= k;
            }
        }
        for (std::uint8_t f : {std::uint8_t{0x08}, std::uint8_t{0x10}}) {   // FNAME, FCOMMENT
            if (!(flg & f)) continue;
            for (;;) {
                if (!fill()) truncated("gzip stream ends inside a member header (file name or comment)");
                const std::uint8_t* start = buf.data() + pos;
                const void* nul = std::memchr(start, 0, len - pos);
                const std::size_t k = nul ? static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - start) + 1
                                          : len - pos;
                hcrc = static_cast<std::uint32_t>(crc32(hcrc, start, static_cast<uInt>(k)));
                pos += k;
                if (nul) break;
            }
        }
        if (flg & 0x02) {   // FHCRC: low 16 bits of the CRC-32 of the header so far
            const std::uint32_t want = hcrc & 0xffff;
            std::uint32_t dummy = 0;
            std::uint32_t got = header_byte(dummy);
            got |= static_cast<std::uint32_t>(header_byte(dummy)) << 8;
            if (got != want) bad("gzip member header CRC does not match");
        }
        first_member = false;
        member_out = 0;
        member_crc = static_cast<std::uint32_t>(crc32(0, nullptr, 0));
#ifdef MEDIMG_WITH_ISAL
        isal_inflate_init(&isal);
        // Raw deflate body; ISA-L then reads and verifies the 8-byte trailer
        // itself (it may already hold those bytes in its bit buffer).
        isal.crc_flag = ISAL_GZIP_NO_HDR_VER;
#else
        inflateReset(&zs);
#endif
        return true;
    }

    void check_trailer() {
        if (trailer_done) {   // already verified by the codec
            trailer_done = false;
            return;
        }
        std::uint8_t t[8];
        for (int i = 0; i < 8; ++i) {
            if (!fill()) truncated("gzip stream ends inside a member trailer");
            t[i] = buf[pos++];
        }
        const std::uint32_t crc = t[0] | t[1] << 8 | t[2] << 16 | static_cast<std::uint32_t>(t[3]) << 24;
        const std::uint32_t isize = t[4] | t[5] << 8 | t[6] << 16 | static_cast<std::uint32_t>(t[7]) << 24;
        if (crc != member_crc) bad("gzip member CRC-32 does not match its data");
        if (isize != static_cast<std::uint32_t>(member_out)) bad("gzip member ISIZE does not match its data length");
    }

    // Inflates into out[0, n); returns bytes produced (0 only at the end).
    std::size_t read(std::uint8_t* out, std::size_t n) {
        std::size_t produced = 0;
        while (produced == 0 && n > 0) {
            switch (state) {
            case State::Done: return 0;
            case State::MemberStart:
                state = start_member() ? State::Body : State::Done;
                break;
            case State::Trailer:
                check_trailer();
                state = State::MemberStart;
                break;
            case State::Body: {
                if (total_out > max_output) bomb();
                // One byte past the cap lets a bomb show itself.
                std::uint64_t room = max_output - total_out;
                if (room < UINT64_MAX) ++room;
                const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(std::min<std::size_t>(n, UINT32_MAX), room));
                bool finished = false;
                const bool at_end = pos == len && !fill();
#ifdef MEDIMG_WITH_ISAL
                isal.next_in = buf.data() + pos;
                isal.avail_in = static_cast<std::uint32_t>(len - pos);
                isal.next_out = out;
                isal.avail_out = static_cast<std::uint32_t>(want);
                const int rc = isal_inflate(&isal);
                if (rc == ISAL_INCORRECT_CHECKSUM) bad("gzip member CRC-32 or ISIZE does not match its data");
                if (rc < 0) bad("gzip member holds invalid deflate data (ISA-L error " + std::to_string(rc) + ")");
                pos = len - isal.avail_in;
                produced = want - isal.avail_out;
                finished = isal.block_state == ISAL_BLOCK_FINISH;
                if (finished) trailer_done = true;
#else
                zs.next_in = buf.data() + pos;
                zs.avail_in = static_cast<uInt>(len - pos);
                zs.next_out = out;
                zs.avail_out = static_cast<uInt>(want);
                const int rc = inflate(&zs, Z_NO_FLUSH);
                if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT || rc == Z_MEM_ERROR || rc == Z_STREAM_ERROR)
                    bad(std::string("gzip member holds invalid deflate data (") + (zs.msg ? zs.msg : "zlib error") + ")");
                pos = len - zs.avail_in;
                produced = want - zs.avail_out;
                finished = rc == Z_STREAM_END;
                member_crc = static_cast<std::uint32_t>(crc32(member_crc, out, static_cast<uInt>(produced)));
#endif
                if (!finished && produced == 0 && at_end)
                    truncated("gzip stream ends inside compressed data");
                member_out += produced;
                total_out += produced;
                if (total_out > max_output) bomb();
                if (finished) {
                    state = State::Trailer;
                    if (produced == 0) continue;
                    // Verify the trailer now when its bytes are at hand, so the
                    // last data is never returned before its CRC was checked
                    // by a caller that stops at the declared size.
                    check_trailer();
                    state = State::MemberStart;
                }
                break;
            }
            }
        }
        return produced;
    }

    [[noreturn]] void bomb() {
        bad("gzip stream inflates past " + std::to_string(max_output) +
            " bytes, more than the image declares (gzip bomb?)");
    }
};

GzipInflater::GzipInflater(ByteSource& in, std::uint64_t max_output)
    : impl_(std::make_unique<Impl>(in, max_output)) {}
GzipInflater::~GzipInflater() = default;
std::size_t GzipInflater::read(std::uint8_t* buf, std::size_t n) { return impl_->read(buf, n); }
std::uint64_t GzipInflater::total_out() const noexcept { return impl_->total_out; }
void GzipInflater::set_max_output(std::uint64_t max_output) noexcept { impl_->max_output = max_output; }

// ---------------------------------------------------------------- deflater

struct GzipDeflater::Impl {
    ByteSink& out;
    std::vector<std::uint8_t> obuf = std::vector<std::uint8_t>(kOutBuf);
    bool use_isal = false;
    bool finished = false;
#ifdef MEDIMG_WITH_ISAL
    isal_zstream isal{};
    std::vector<std::uint8_t> level_buf;
#endif
    z_stream zs{};
    bool zs_init = false;

    Impl(ByteSink& sink, int level) : out(sink) {
        if (level < 0 || level > 9)
            throw Error(ErrorCode::BadParameter, "gzip level " + std::to_string(level) + " is not in 0..9");
#ifdef MEDIMG_WITH_ISAL
        if (level >= 1 && level <= 3) {
            use_isal = true;
            isal_deflate_init(&isal);
            isal.gzip_flag = IGZIP_GZIP;
            isal.end_of_stream = 0;
            isal.flush = NO_FLUSH;
            // ISA-L levels are 0..3; zlib-style 1 maps to ISA-L 1 (nibabel's default
            // speed/size trade-off), 2 and 3 to ISA-L 2 and 3.
            isal.level = static_cast<std::uint32_t>(level);
            const std::size_t lb = level == 1 ? ISAL_DEF_LVL1_DEFAULT
                                  : level == 2 ? ISAL_DEF_LVL2_DEFAULT : ISAL_DEF_LVL3_DEFAULT;
            level_buf.resize(lb);
            isal.level_buf = level_buf.data();
            isal.level_buf_size = static_cast<std::uint32_t>(lb);
            return;
        }
#endif
        if (deflateInit2(&zs, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            throw Error(ErrorCode::Internal, "zlib deflateInit2 failed");
        zs_init = true;
    }
    ~Impl() {
        if (zs_init) deflateEnd(&zs);
    }

    void run(const std::uint8_t* data, std::size_t n, bool last) {
        if (finished) throw Error(ErrorCode::Internal, "gzip deflater used after finish()");
#ifdef MEDIMG_WITH_ISAL
        if (use_isal) {
            // Feed in slices that fit the 32-bit avail_in.
            do {
                const std::size_t chunk = std::min<std::size_t>(n, 1u << 30);
                isal.next_in = const_cast<std::uint8_t*>(data);
                isal.avail_in = static_cast<std::uint32_t>(chunk);
                const bool end = last && chunk == n;
                isal.end_of_stream = end ? 1 : 0;
                do {
                    isal.next_out = obuf.data();
                    isal.avail_out = static_cast<std::uint32_t>(obuf.size());
                    const int rc = isal_deflate(&isal);
                    if (rc != COMP_OK) throw Error(ErrorCode::Internal, "ISA-L deflate failed (" + std::to_string(rc) + ")");
                    const std::size_t have = obuf.size() - isal.avail_out;
                    if (have) out.write(obuf.data(), have);
                } while (isal.avail_in > 0 || (end && isal.internal_state.state != ZSTATE_END));
                data += chunk;
                n -= chunk;
            } while (n > 0);
            if (last) finished = true;
            return;
        }
#endif
        do {
            const std::size_t chunk = std::min<std::size_t>(n, 1u << 30);
            zs.next_in = const_cast<std::uint8_t*>(data);
            zs.avail_in = static_cast<uInt>(chunk);
            const bool end = last && chunk == n;
            int rc;
            do {
                zs.next_out = obuf.data();
                zs.avail_out = static_cast<uInt>(obuf.size());
                rc = deflate(&zs, end ? Z_FINISH : Z_NO_FLUSH);
                if (rc == Z_STREAM_ERROR) throw Error(ErrorCode::Internal, "zlib deflate failed");
                const std::size_t have = obuf.size() - zs.avail_out;
                if (have) out.write(obuf.data(), have);
            } while (zs.avail_in > 0 || zs.avail_out == 0 || (end && rc != Z_STREAM_END));
            data += chunk;
            n -= chunk;
        } while (n > 0);
        if (last) finished = true;
    }
};

GzipDeflater::GzipDeflater(ByteSink& out, int level) : impl_(std::make_unique<Impl>(out, level)) {}
GzipDeflater::~GzipDeflater() = default;
void GzipDeflater::write(const std::uint8_t* data, std::size_t n) {
    if (n) impl_->run(data, n, false);
}
void GzipDeflater::finish() { impl_->run(nullptr, 0, true); }

}  // namespace medimg::nifti
