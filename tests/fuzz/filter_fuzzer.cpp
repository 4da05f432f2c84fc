// Fuzzes the whole path a request takes on an in-memory file: open (gzip or
// plain), filter in keep/mask mode with or without crop, and label metadata.
// The first 4 bytes choose the options; the rest is the file.
#include "fuzz_support.hpp"
#include "labels/filter.hpp"
#include "labels/metadata.hpp"
#include "nifti/header_json.hpp"
#include "nifti/reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace medimg;
    if (size < 4) return 0;
    labels::FilterOptions options;
    options.labels = labels::LabelSet::from_ids({data[0], std::int64_t(data[1]) - 128, 1});
    options.mode = (data[2] & 1) ? labels::Mode::Mask : labels::Mode::Keep;
    options.crop = (data[2] & 2) != 0;
    options.margin = data[3] & 7;
    const auto container = (data[2] & 4) ? nifti::Container::Gzip : nifti::Container::Plain;
    const std::vector<std::uint8_t> file(data + 4, data + size);

    nifti::ReadLimits limits;
    limits.header.max_voxels = 1u << 20;   // keeps each run fast; the cap itself is tested
    fuzz::expect_only_medimg_errors([&] {
        auto reader = nifti::Reader::open_memory(file, limits);
        fuzz::NullSink sink;
        labels::filter(reader, sink, container, options);
    });
    fuzz::expect_only_medimg_errors([&] {
        auto reader = nifti::Reader::open_memory(file, limits);
        const auto meta = labels::compute_metadata(reader);
        (void)labels::labels_json(meta, labels::Dictionary{}, "fuzz.nii").dump();
        (void)nifti::info_json(reader.header()).dump();
    });
    return 0;
}
