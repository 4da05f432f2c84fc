// The /info JSON of a header (nifti/header_json.hpp): keys, order, values.
#include <string>
#include <vector>

#include "catch.hpp"
#include "nifti/header_json.hpp"
#include "nifti/reader.hpp"
#include "nifti_builder.hpp"

using medimg::nifti::ByteOrder;
using medimg::nifti::Reader;
using medimg::nifti::ReadLimits;
using medimg::test::NiftiSpec;

TEST_CASE("header json: info_json describes the header", "[nifti][header_json]") {
    NiftiSpec spec;
    spec.version = medimg::nifti::Version::Nifti2;
    spec.byte_order = ByteOrder::Big;
    spec.dims = {3, 2, 1};
    spec.datatype = 512;
    spec.descrip = std::string("caf\xc3\xa9");
    spec.pixdim = {1, 0.5, 0.5, 2, 1, 1, 1, 1};
    const Reader r = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
    const auto j = medimg::nifti::info_json(r.header());
    CHECK(j["version"] == "nifti2");
    CHECK(j["byte_order"] == "big");
    CHECK(j["dims"] == nlohmann::ordered_json::parse("[3,2,1]"));
    CHECK(j["datatype"] == "uint16");
    CHECK(j["bitpix"] == 16);
    CHECK(j["vox_offset"] == 544);
    CHECK(j["magic"] == "n+2");
    CHECK(j["affine"].size() == 4);
    CHECK_NOTHROW(j.dump());   // descrip bytes never break the JSON
    std::vector<std::string> keys;
    for (const auto& [k, v] : j.items()) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"version", "byte_order", "dims", "pixdim", "datatype",
                                           "bitpix", "vox_offset", "scl_slope", "scl_inter",
                                           "qform_code", "sform_code", "affine", "xyzt_units",
                                           "description", "magic"});
}
