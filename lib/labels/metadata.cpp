// Label metadata in one streaming pass: per raw stored value a voxel count
// and bounding box (a table for 8/16-bit types, a hash map otherwise), turned
// into exact label ids at the end; and the /labels JSON.
#include "labels/metadata.hpp"

#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>

#include "error.hpp"
#include "labels/chunk_reader.hpp"
#include "labels/detail.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/header_json.hpp"

namespace medimg::labels {
namespace {

using nifti::Header;
using nifti::TypeKind;
using json = nlohmann::ordered_json;

struct Acc {
    std::uint64_t voxels = 0;
    std::int64_t lo[3] = {INT64_MAX, INT64_MAX, INT64_MAX};
    std::int64_t hi[3] = {-1, -1, -1};

    void add(std::int64_t x, std::int64_t y, std::int64_t z) noexcept {
        ++voxels;
        if (x < lo[0]) lo[0] = x;
        if (x > hi[0]) hi[0] = x;
        if (y < lo[1]) lo[1] = y;
        if (y > hi[1]) hi[1] = y;
        if (z < lo[2]) lo[2] = z;
        if (z > hi[2]) hi[2] = z;
    }
    void merge(const Acc& o) noexcept {
        voxels += o.voxels;
        for (int a = 0; a < 3; ++a) {
            lo[a] = std::min(lo[a], o.lo[a]);
            hi[a] = std::max(hi[a], o.hi[a]);
        }
    }
};

// Streams the voxels, calling visit(raw_ptr_of_chunk, offset, len, x, y, z)
// per row segment.
template <typename Visit>
void stream(nifti::Reader& in, std::size_t bytes, const ChunkObserver& observe, Visit&& visit) {
    const Header& h = in.header();
    detail::Walker walker(h.dim(1), h.dim(2), h.dim(3));
    ChunkReader chunks(in, bytes);
    while (const std::size_t n = chunks.next()) {
        const std::uint8_t* buf = chunks.data();
        if (observe) observe(buf, n);
        walker.walk(n, [&](std::size_t off, std::size_t len, std::int64_t x, std::int64_t y,
                           std::int64_t z) { visit(buf + off * bytes, len, x, y, z); });
    }
}

// 8/16-bit: accumulators indexed by the raw value read natively.
template <typename U>
std::vector<Acc> table_pass(nifti::Reader& in, std::optional<U> zero_raw,
                           const ChunkObserver& observe) {
    std::vector<Acc> acc(std::size_t{1} << (8 * sizeof(U)));
    const bool skip = zero_raw.has_value();
    const U zr = zero_raw.value_or(0);
    stream(in, sizeof(U), observe, [&](const std::uint8_t* p, std::size_t len, std::int64_t x,
                              std::int64_t y, std::int64_t z) {
        for (std::size_t i = 0; i < len; ++i) {
            U r;
            std::memcpy(&r, p + i * sizeof(U), sizeof(U));
            if (skip && r == zr) continue;
            acc[r].add(x + static_cast<std::int64_t>(i), y, z);
        }
    });
    return acc;
}

// Wider types: a hash map keyed by the raw bits, with a one-entry cache.
template <typename U>
std::unordered_map<U, Acc> map_pass(nifti::Reader& in, std::optional<U> zero_raw,
                                    const ChunkObserver& observe) {
    std::unordered_map<U, Acc> acc;
    const bool skip = zero_raw.has_value();
    const U zr = zero_raw.value_or(0);
    stream(in, sizeof(U), observe, [&](const std::uint8_t* p, std::size_t len, std::int64_t x,
                              std::int64_t y, std::int64_t z) {
        U last_key = 0;
        Acc* last = nullptr;
        for (std::size_t i = 0; i < len; ++i) {
            U r;
            std::memcpy(&r, p + i * sizeof(U), sizeof(U));
            if (skip && r == zr) continue;
            if (!last || r != last_key) {
                auto it = acc.find(r);
                if (it == acc.end()) {
                    if (acc.size() >= detail::kMaxDistinctValues) detail::too_many_distinct_values();
                    it = acc.emplace(r, Acc{}).first;
                }
                last = &it->second;
                last_key = r;
            }
            last->add(x + static_cast<std::int64_t>(i), y, z);
        }
    });
    return acc;
}

// Raw bits of the stored value meaning id 0 when unscaled (0 / +0.0); with
// scaling the end-of-pass conversion drops id 0 instead.
template <typename T>
std::map<LabelId, Acc> collect(nifti::Reader& in, const ChunkObserver& observe) {
    const Header& h = in.header();
    using U = nifti::raw_bits_t<T>;
    std::optional<U> zero;
    if (!h.scaled()) zero = U{0};
    std::map<LabelId, Acc> by_id;
    auto add = [&](U raw, const Acc& a) {
        if (a.voxels == 0) return;
        std::uint8_t b[sizeof(U)];
        std::memcpy(b, &raw, sizeof(U));
        const LabelId id = detail::id_of_raw<T>(b, h);
        if (id == 0) return;
        by_id[id].merge(a);
    };
    if constexpr (sizeof(T) <= 2) {
        const auto acc = table_pass<U>(in, zero, observe);
        for (std::size_t r = 0; r < acc.size(); ++r) add(static_cast<U>(r), acc[r]);
    } else {
        const auto acc = map_pass<U>(in, zero, observe);
        for (const auto& [r, a] : acc) add(r, a);
    }
    return by_id;
}

double round_ml(double ml, std::uint64_t voxels) {
    double r = std::round(ml * 1000.0) / 1000.0;
    if (r == 0.0 && voxels > 0 && ml > 0) {
        // Tiny voxels: keep six significant digits rather than say 0.
        const double scale = std::pow(10.0, 5 - std::floor(std::log10(ml)));
        r = std::round(ml * scale) / scale;
    }
    return r;
}

// Ids above INT64_MAX as unsigned JSON numbers, so every id is exact.
json id_json(LabelId id) {
    if (fits_int64(id)) return json(static_cast<std::int64_t>(id));
    return json(static_cast<std::uint64_t>(id));
}

}  // namespace

Metadata compute_metadata(nifti::Reader& in, const ChunkObserver& observe) {
    const Header& h = in.header();
    detail::require_label_type(h);
    const auto by_id = nifti::visit_element_type(
        h.datatype(), [&](auto tag) { return collect<decltype(tag)>(in, observe); });

    Metadata meta;
    for (const auto& [id, a] : by_id) {
        LabelStats s;
        s.id = id;
        s.voxels = a.voxels;
        for (int k = 0; k < 3; ++k) {
            s.bbox_min[k] = a.lo[k];
            s.bbox_max[k] = a.hi[k];
        }
        meta.labels.push_back(s);
    }
    for (int k = 0; k < 3; ++k) {
        meta.dims[k] = h.dim(k + 1);
        meta.pixdim[k] = nifti::float_field_value(h.pixdim(k + 1));
    }
    meta.datatype = std::string(h.datatype().name);
    const double unit = h.spatial_unit_mm();
    meta.voxel_volume_ml =
        std::fabs(h.pixdim(1) * h.pixdim(2) * h.pixdim(3)) * unit * unit * unit / 1000.0;
    return meta;
}

nlohmann::ordered_json labels_json(const Metadata& meta, const Dictionary& dict,
                                   std::string_view voxel_filename) {
    json labels = json::array();
    for (const auto& s : meta.labels) {
        json e;
        e["id"] = id_json(s.id);
        e["name"] = dict.name_of(s.id);
        if (auto c = dict.color_of(s.id)) e["color"] = {(*c)[0], (*c)[1], (*c)[2]};
        e["voxels"] = s.voxels;
        e["volume_ml"] = round_ml(static_cast<double>(s.voxels) * meta.voxel_volume_ml, s.voxels);
        e["bbox"] = {{s.bbox_min[0], s.bbox_min[1], s.bbox_min[2]},
                     {s.bbox_max[0], s.bbox_max[1], s.bbox_max[2]}};
        labels.push_back(std::move(e));
    }
    json out;
    out["labels"] = std::move(labels);
    out["voxel_filename"] = std::string(voxel_filename);
    out["dims"] = {meta.dims[0], meta.dims[1], meta.dims[2]};
    out["pixdim"] = {meta.pixdim[0], meta.pixdim[1], meta.pixdim[2]};
    out["datatype"] = meta.datatype;
    return out;
}

}  // namespace medimg::labels
