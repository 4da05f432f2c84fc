// A header as JSON: what /info and `medimg info --json` answer (README.md).
#pragma once

#include <nlohmann/json.hpp>

#include "nifti/header.hpp"

namespace medimg::nifti {

// Keys in this order (ordered_json):
// {"version":"nifti1"|"nifti2"|"analyze","byte_order","dims":[..dim0],
//  "pixdim","datatype","bitpix","vox_offset","scl_slope","scl_inter",
//  "qform_code","sform_code","affine":[[4]x4],"xyzt_units","description","magic"}
// Non-finite values become null; descrip bytes other than printable ASCII
// become '?'.
nlohmann::ordered_json info_json(const Header& header);

// The double a float32 header field was meant to say: 0.8f reads as
// 0.800000011920929 in double; its shortest float spelling "0.8" parsed as
// double gives 0.8. A value that is not exactly a float is returned as is.
double float_field_value(double v);

}  // namespace medimg::nifti
