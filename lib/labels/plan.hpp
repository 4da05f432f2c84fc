// The filter's plan for one image: which kernels (labels/kernels.hpp) write
// the output and find the selection, what must be verified before anything
// is written, and the output's datatype and scaling (docs/ARCHITECTURE.md,
// "Input rules": scaling; README.md: the map's output datatype).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "labels/kernels.hpp"
#include "labels/label_map.hpp"
#include "labels/label_set.hpp"
#include "nifti/datatype.hpp"
#include "nifti/header.hpp"

namespace medimg::labels {

enum class Mode { Keep, Mask };

struct Plan {
    std::unique_ptr<kernels::Kernel> out_kernel;    // what is written (keep or mask)
    std::unique_ptr<kernels::Kernel> mask_kernel;   // selection only (crop's first pass), 1 byte a voxel
    // Throws NonIntegralLabels at the first value that is not a label id;
    // empty when every stored value is one.
    std::function<void(const std::uint8_t*, std::size_t)> verify;
    nifti::DataType out_type;   // of out_kernel's voxels
    bool unscale = false;       // output written with slope 1, inter 0
};

// Keep or mask the ids of `set` in an image with header `h`. Keep mode keeps
// the datatype, the scaling and the kept voxels' stored values, and writes
// removed voxels as the stored value that scales exactly to 0; where none
// does, the output is unscaled ids, in the input type if they fit, else
// int32/int64. Mask mode writes uint8 0/1, unscaled.
// Throws Error(UnsupportedDatatype) unless the datatype can hold labels.
Plan make_plan(const nifti::Header& h, const LabelSet& set, Mode mode);

// Keep mode with a map: make_plan's selection, verification and mask, with
// the output kernel and type replaced when a rule can apply. The output
// keeps the input's type and scaling when every new id has an exact stored
// value (and the stored zero exists); else it is unscaled, in the input's
// type when every id it can hold fits, else in the narrowest signed type
// (Error(BadParameter) when none holds them).
Plan make_map_plan(const nifti::Header& h, const LabelSet& set, const LabelMap& map);

}  // namespace medimg::labels
