// The streaming label filter's driver: the plan (labels/plan.hpp), a first
// pass when values must be verified or the crop needs the bounding box, the
// derived header, and the write pass. Voxels pass through fixed-size buffers
// (labels/chunk_reader.hpp), so memory does not grow with the volume.
#include "labels/filter.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "error.hpp"
#include "labels/chunk_reader.hpp"
#include "labels/detail.hpp"
#include "labels/plan.hpp"
#include "nifti/file_name.hpp"
#include "nifti/geometry.hpp"

namespace medimg::labels {
namespace {

using nifti::Header;

// The voxel box written by a crop, inclusive.
struct Box {
    std::array<std::int64_t, 3> lo{0, 0, 0}, hi{0, 0, 0};
};

class CountingSink final : public nifti::ByteSink {
public:
    explicit CountingSink(nifti::ByteSink& inner) : inner_(inner) {}
    void write(const std::uint8_t* data, std::size_t n) override {
        inner_.write(data, n);
        count += n;
    }
    std::uint64_t count = 0;

private:
    nifti::ByteSink& inner_;
};

// The box of the voxels a mask kernel selects, over every volume.
class BoxFinder {
public:
    explicit BoxFinder(const Header& h)
        : dims_{h.dim(1), h.dim(2), h.dim(3)}, lo_(dims_), walker_(dims_[0], dims_[1], dims_[2]) {}

    // The next n voxels' mask (one byte each, 1 where selected).
    void add(const std::uint8_t* mask, std::size_t n) {
        walker_.walk(n, [&](std::size_t off, std::size_t len, std::int64_t x, std::int64_t y,
                            std::int64_t z) {
            const std::uint8_t* row = mask + off;
            const std::uint8_t* first = std::find(row, row + len, std::uint8_t{1});
            if (first == row + len) return;
            std::size_t last = len - 1;
            while (row[last] == 0) --last;
            lo_[0] = std::min(lo_[0], x + (first - row));
            hi_[0] = std::max(hi_[0], x + static_cast<std::int64_t>(last));
            lo_[1] = std::min(lo_[1], y);
            hi_[1] = std::max(hi_[1], y);
            lo_[2] = std::min(lo_[2], z);
            hi_[2] = std::max(hi_[2], z);
            any_ = true;
        });
    }

    // The box grown by `margin` voxels inside the volume; the first voxel
    // alone when nothing was selected.
    Box box(std::int64_t margin) const {
        Box b;
        if (!any_) return b;
        for (int a = 0; a < 3; ++a) {
            b.lo[a] = lo_[a] > margin ? lo_[a] - margin : 0;
            b.hi[a] = dims_[a] - 1 - hi_[a] > margin ? hi_[a] + margin : dims_[a] - 1;
        }
        return b;
    }

private:
    std::array<std::int64_t, 3> dims_, lo_, hi_{-1, -1, -1};
    detail::Walker walker_;
    bool any_ = false;
};

// Pass 1, when the plan verifies values or the options crop: throws at the
// first value that is not an id, returns the crop box, rewinds.
Box first_pass(ChunkReader& chunks, const Header& h, const Plan& plan,
               const FilterOptions& options, std::vector<std::uint8_t>& maskbuf) {
    BoxFinder finder(h);
    while (const std::size_t n = chunks.next()) {
        if (plan.verify) plan.verify(chunks.data(), n);
        if (options.crop) {
            plan.mask_kernel->run(chunks.data(), maskbuf.data(), n);
            finder.add(maskbuf.data(), n);
        }
    }
    chunks.rewind();
    return finder.box(options.margin);
}

// The output's header: single-file, the plan's datatype and scaling, and for
// a crop the box's dims with the origin moved to its first voxel.
Header derived_header(const Header& h, const Plan& plan, const Box* crop) {
    Header out = h;
    if (out.layout() == nifti::Layout::Pair) out.make_single_file();
    if (plan.out_type.code != h.datatype().code) out.set_datatype(plan.out_type);
    if (plan.unscale) {
        out.set_scaling(1.0, 0.0);
    } else if (h.version() != nifti::Version::Analyze75 && std::isfinite(h.scl_slope_raw()) &&
               h.scl_slope_raw() != 0 &&
               !std::isfinite(h.scl_inter_raw())) {
        // A non-finite inter with a valid slope counts as 0 (docs/ARCHITECTURE.md);
        // written as 0 so every reader sees the same values we matched on.
        out.set_scaling(h.scl_slope_raw(), 0.0);
    }
    if (crop) {
        for (int a = 0; a < 3; ++a) out.set_dim(a + 1, crop->hi[a] - crop->lo[a] + 1);
        nifti::move_origin(out, {static_cast<double>(crop->lo[0]), static_cast<double>(crop->lo[1]),
                                 static_cast<double>(crop->lo[2])});
    }
    return out;
}

// Pass 2 without crop: every output voxel is written.
std::uint64_t write_all(ChunkReader& chunks, const Plan& plan, nifti::Writer& writer,
                        std::vector<std::uint8_t>& outbuf) {
    std::uint64_t selected = 0;
    while (const std::size_t n = chunks.next()) {
        selected += plan.out_kernel->run(chunks.data(), outbuf.data(), n);
        writer.write(outbuf.data(), n * plan.out_type.bytes);
    }
    return selected;
}

// Pass 2 with crop: the rows inside the box, gathered into whole buffers.
std::uint64_t write_box(ChunkReader& chunks, const Header& h, const Plan& plan, const Box& box,
                        nifti::Writer& writer, std::vector<std::uint8_t>& outbuf) {
    const std::size_t out_bytes = plan.out_type.bytes;
    std::vector<std::uint8_t> stage(outbuf.size());
    std::size_t staged = 0;
    detail::Walker walker(h.dim(1), h.dim(2), h.dim(3));
    std::uint64_t selected = 0;
    while (const std::size_t n = chunks.next()) {
        selected += plan.out_kernel->run(chunks.data(), outbuf.data(), n);
        walker.walk(n, [&](std::size_t off, std::size_t len, std::int64_t x, std::int64_t y,
                           std::int64_t z) {
            if (y < box.lo[1] || y > box.hi[1] || z < box.lo[2] || z > box.hi[2]) return;
            const std::int64_t x0 = std::max(x, box.lo[0]);
            const std::int64_t x1 = std::min(x + static_cast<std::int64_t>(len) - 1, box.hi[0]);
            if (x0 > x1) return;
            const std::uint8_t* src = outbuf.data() + (off + (x0 - x)) * out_bytes;
            std::size_t bytes = static_cast<std::size_t>(x1 - x0 + 1) * out_bytes;
            while (bytes > 0) {
                const std::size_t take = std::min(bytes, stage.size() - staged);
                std::memcpy(stage.data() + staged, src, take);
                staged += take;
                src += take;
                bytes -= take;
                if (staged == stage.size()) {
                    writer.write(stage.data(), staged);
                    staged = 0;
                }
            }
        });
    }
    if (staged > 0) writer.write(stage.data(), staged);
    return selected;
}

}  // namespace

FilterResult filter(nifti::Reader& in, nifti::ByteSink& sink, nifti::Container container,
                    const FilterOptions& options) {
    const Header& h = in.header();
    if (options.margin < 0)
        throw Error(ErrorCode::BadParameter, "margin must be 0 or more voxels");
    const Plan plan = options.mode == Mode::Keep && !options.map.empty()
                          ? make_map_plan(h, options.labels, options.map)
                          : make_plan(h, options.labels, options.mode);

    ChunkReader chunks(in, h.datatype().bytes);
    std::vector<std::uint8_t> outbuf(ChunkReader::kChunkVoxels *
                                     std::max<std::size_t>(plan.out_type.bytes, 1));
    Box box;
    if (plan.verify || options.crop) box = first_pass(chunks, h, plan, options, outbuf);

    Header out = derived_header(h, plan, options.crop ? &box : nullptr);
    std::vector<std::uint8_t> ext;
    if (h.layout() == nifti::Layout::Single) ext = in.extension_bytes();
    else ext.assign(4, 0);   // the NIfTI-1 "no extensions" extender
    out.set_vox_offset(static_cast<std::int64_t>(out.size() + ext.size()));

    CountingSink counter(sink);
    nifti::Writer writer(counter, out, ext, container, options.gzip_level);
    FilterResult result;
    result.voxels_selected = options.crop ? write_box(chunks, h, plan, box, writer, outbuf)
                                          : write_all(chunks, plan, writer, outbuf);
    writer.finish();
    result.bytes_written = counter.count;
    return result;
}

FilterResult filter_file(const std::filesystem::path& input, const std::filesystem::path& output,
                         const FilterOptions& options, const nifti::ReadLimits& limits) {
    nifti::Reader reader = nifti::Reader::open(input, limits);
    // The container follows the output's name, or the input's on stdout.
    const auto& named = output == "-" ? input : output;
    const nifti::Container container =
        nifti::output_container(nifti::parse_image_name(named.filename().string()));
    if (output == "-") {
        nifti::FdSink sink(1);
        return filter(reader, sink, container, options);
    }
    nifti::AtomicFileSink sink(output);
    FilterResult r = filter(reader, sink, container, options);
    sink.commit();
    return r;
}

}  // namespace medimg::labels
