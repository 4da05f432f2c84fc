// Fuzzes Header::parse (NIfTI-1/2, Analyze, both byte orders) and the
// derived accessors a route or the CLI calls on an accepted header.
#include "fuzz_support.hpp"
#include "nifti/header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace medimg;
    if (size == 0) return 0;
    const auto layout = (data[0] & 1) ? nifti::Layout::Pair : nifti::Layout::Single;
    nifti::HeaderLimits limits;
    limits.max_voxels = 1u << 24;
    fuzz::expect_only_medimg_errors([&] {
        auto h = nifti::Header::parse({data + 1, size - 1}, layout, limits, size);
        (void)h.affine();
        (void)h.description();
        (void)h.magic();
        (void)h.volume_count();
        (void)h.spatial_unit_mm();
        if (h.layout() == nifti::Layout::Pair) h.make_single_file();
        h.set_scaling(1, 0);
        h.set_dim(1, 1);
    });
    return 0;
}
