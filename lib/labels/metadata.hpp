// Label metadata of an image: ids present, voxel counts, volumes, bounding
// boxes; rendered as the /labels JSON (README.md).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "labels/dictionary.hpp"
#include "labels/label_id.hpp"
#include "nifti/reader.hpp"

namespace medimg::labels {

struct LabelStats {
    LabelId id = 0;   // INT64_MIN..UINT64_MAX: every integer voxel value is an id
    std::uint64_t voxels = 0;
    std::array<std::int64_t, 3> bbox_min{}, bbox_max{};   // inclusive voxel indices i, j, k
};

struct Metadata {
    std::vector<LabelStats> labels;   // ascending id, 0 excluded
    std::array<std::int64_t, 3> dims{};
    std::array<double, 3> pixdim{};
    std::string datatype;             // "int16", ...
    double voxel_volume_ml = 0;       // |pixdim1*pixdim2*pixdim3| in mL, unit-aware
};

// Called once per chunk of the pass with the chunk's n voxels as stored
// (file byte order), before they are counted: lets another computation
// (labels/intensity.hpp) ride along the same pass.
using ChunkObserver = std::function<void(const std::uint8_t* raw, std::size_t n)>;

// One streaming pass over `in`. Unscaled integers are ids as stored, exactly
// (any width, up to UINT64_MAX); scaled and float values must be integral,
// finite and inside int64. More than 65536 distinct values in a 32/64-bit or
// float image is refused (TooManyLabels) to bound memory.
// Throws Error(UnsupportedDatatype / NonIntegralLabels) and Reader errors.
Metadata compute_metadata(nifti::Reader& in, const ChunkObserver& observe = {});

// Keys in this order (ordered_json): volume_ml rounded to 3 decimals (more
// digits only when that would round a non-empty label to 0).
// {"labels":[{"id","name","color"?,"voxels","volume_ml","bbox"}...],
//  ("id" an exact JSON integer, unsigned above INT64_MAX)
//  "voxel_filename","dims","pixdim","datatype"}
nlohmann::ordered_json labels_json(const Metadata& meta, const Dictionary& dict,
                           std::string_view voxel_filename);

}  // namespace medimg::labels
