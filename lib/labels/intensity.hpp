// Per-label intensity statistics of an image on the same grid as a label
// map: mean, sd, min, max and the 5th/50th/95th percentiles of the image's
// scaled values (HU for CT) inside every label, computed while the label
// metadata pass streams the label map (README.md, README.md "/labels").
//
// Memory is bounded by histograms, never volumes:
// - integer images: one exact histogram of stored values per label, dense
//   over the stored range that label has seen (grown as values arrive);
//   all labels' histograms together hold at most `max_bins` bins
//   ([limits] max_intensity_bins, kMaxHistogramBins by default), beyond
//   which the request is refused (Error(TooLarge), 413). Mean, sd,
//   min, max and percentiles are then exact (the percentile is a stored
//   value, scaled).
// - float images: two passes; the first finds per label the count, the sum
//   and the finite min and max, the second sums squared deviations from the
//   mean and fills kFloatBins equal bins between that label's min and max.
//   A percentile is the midpoint of the bin holding it, clamped to
//   [min, max]: within (max - min) / (2 * kFloatBins) of the exact value.
//   NaN and ±inf voxels are left out of every statistic.
// Percentiles follow numpy's method="lower": the value of rank
// floor(q * (n - 1)) among the label's n values in ascending order.
// sd is the population standard deviation (numpy's default ddof=0).
#pragma once

#include <cstdint>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "labels/label_id.hpp"
#include "labels/metadata.hpp"
#include "nifti/reader.hpp"

namespace medimg::labels {

// The default of [limits] max_intensity_bins: 16 MiB of counts.
inline constexpr std::size_t kMaxHistogramBins = std::size_t{1} << 21;
inline constexpr std::size_t kFloatBins = 4096;
// Largest difference between the two grids' world coordinates of any corner
// voxel that still counts as the same grid.
inline constexpr double kGridToleranceMm = 1e-3;

struct Intensity {
    std::uint64_t count = 0;   // voxels that entered the statistics (finite values)
    double mean = 0, sd = 0, min = 0, max = 0, p05 = 0, p50 = 0, p95 = 0;
};

struct MetadataWithIntensity {
    Metadata meta;
    // By label id; a label whose voxels hold no finite value has none.
    std::map<LabelId, Intensity> intensity;
};

// Error(GeometryMismatch) unless `image` lies on the grid of `labels`: the
// same dims (dim[1..7], so 4-D pairs are pooled over their volumes) and
// affines (the ones nibabel reports) placing every corner voxel within
// kGridToleranceMm of each other (in mm, from each header's spatial unit).
// The message names the dims or the corner and distance that differ.
void check_same_grid(const nifti::Header& labels, const nifti::Header& image);

// The label metadata of `labels` (compute_metadata) and the intensity
// statistics of `image` under each label. Throws as compute_metadata,
// check_same_grid, Error(UnsupportedDatatype) for an image that is not real
// (complex, RGB, float128, binary), Error(TooLarge) past the histogram cap,
// and the readers' errors. Float images rewind both readers once.
// `max_bins`: the histograms' bound above (at least 1).
MetadataWithIntensity compute_intensity(nifti::Reader& labels, nifti::Reader& image,
                                        std::size_t max_bins = kMaxHistogramBins);

// Adds "intensity":{"mean","sd","min","max","p05","p50","p95"} (or null when
// the label has no finite value) to every entry of a labels_json() answer.
void add_intensity_json(nlohmann::ordered_json& labels_answer,
                        const std::map<LabelId, Intensity>& intensity);

}  // namespace medimg::labels
