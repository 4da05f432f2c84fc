// The /info JSON of a header.
#include "nifti/header_json.hpp"

#include <charconv>
#include <cmath>
#include <string>

namespace medimg::nifti {
namespace {

using json = nlohmann::ordered_json;

// descrip is free bytes: anything but printable ASCII becomes '?', so the
// JSON is always valid UTF-8.
std::string printable(std::string s) {
    for (char& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    return s;
}

std::string version_name(Version v) {
    switch (v) {
    case Version::Nifti1: return "nifti1";
    case Version::Nifti2: return "nifti2";
    default: return "analyze";
    }
}

}  // namespace

double float_field_value(double v) {
    if (!std::isfinite(v)) return v;
    const float f = static_cast<float>(v);
    if (static_cast<double>(f) != v) return v;
    char buf[64];
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, f);
    if (ec != std::errc()) return v;
    double d = v;
    std::from_chars(buf, ptr, d);
    return d;
}

nlohmann::ordered_json info_json(const Header& h) {
    json out;
    out["version"] = version_name(h.version());
    out["byte_order"] = h.byte_order() == ByteOrder::Little ? "little" : "big";
    json dims = json::array(), pixdim = json::array();
    for (int i = 1; i <= h.dim0(); ++i) {
        dims.push_back(h.dim(i));
        pixdim.push_back(float_field_value(h.pixdim(i)));
    }
    out["dims"] = std::move(dims);
    out["pixdim"] = std::move(pixdim);
    out["datatype"] = std::string(h.datatype().name);
    out["bitpix"] = h.datatype().bytes == 0 ? 1 : h.datatype().bytes * 8;
    out["vox_offset"] = h.vox_offset();
    // Non-finite values become null in JSON.
    out["scl_slope"] = float_field_value(h.scl_slope_raw());
    out["scl_inter"] = float_field_value(h.scl_inter_raw());
    out["qform_code"] = h.qform_code();
    out["sform_code"] = h.sform_code();
    json affine = json::array();
    for (const auto& row : h.affine()) {
        json r = json::array();
        for (double v : row) r.push_back(v);
        affine.push_back(std::move(r));
    }
    out["affine"] = std::move(affine);
    out["xyzt_units"] = h.xyzt_units();
    out["description"] = printable(h.description());
    out["magic"] = h.magic();
    return out;
}

}  // namespace medimg::nifti
