// The streaming label filter: keep (or mask) the selected ids, zero the rest,
// optionally crop to their bounding box, in memory that does not grow with
// the volume.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "labels/label_map.hpp"
#include "labels/label_set.hpp"
#include "labels/plan.hpp"
#include "nifti/reader.hpp"
#include "nifti/byte_io.hpp"
#include "nifti/writer.hpp"

namespace medimg::labels {

struct FilterOptions {
    LabelSet labels;
    // Applied after selection in keep mode: a selected voxel whose id a rule
    // matches gets the rule's new id (README.md). Mask mode ignores it
    // (1 where selected); the selection itself is always `labels`.
    LabelMap map;
    Mode mode = Mode::Keep;
    bool crop = false;
    std::int64_t margin = 0;   // voxels around the bounding box when cropping (>= 0)
    int gzip_level = 1;        // 1..9
};

struct FilterResult {
    std::uint64_t voxels_selected = 0;
    std::uint64_t bytes_written = 0;   // as written to the sink
};

// Filters the image `in` into `sink` as a single-file NIfTI in `container`.
// Keep mode keeps datatype, scaling and stored values of kept voxels; removed
// voxels get the stored value that scales to exactly 0, or the output is
// written unscaled (docs/ARCHITECTURE.md). Mask mode writes uint8 0/1, unscaled.
// Crop moves qoffset and srow offsets so kept voxels keep their world
// coordinates; an empty selection with crop gives a 1x1x1 zero volume.
// With a map (keep mode), the output keeps the input's datatype (and its
// scaling when every new id has an exact stored value) when every output id
// fits; otherwise it is written unscaled in the narrowest signed integer type
// that holds every id it can contain (BadParameter when none does).
// Float inputs are checked to be integral and finite before anything is
// written. Throws Error: UnsupportedDatatype, NonIntegralLabels, plus the
// Reader's errors and the sink's Io.
FilterResult filter(nifti::Reader& in, nifti::ByteSink& sink, nifti::Container container,
                    const FilterOptions& options);

// File to file: `output` is written atomically (temporary name then rename,
// nothing left behind on failure); "-" writes to stdout.
FilterResult filter_file(const std::filesystem::path& input, const std::filesystem::path& output,
                         const FilterOptions& options, const nifti::ReadLimits& limits);

}  // namespace medimg::labels
