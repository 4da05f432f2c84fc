// The writer's extension region (docs/ARCHITECTURE.md): copied verbatim, except
// that a set extension flag over an invalid chain is written as 0.
#include <cstdint>
#include <string>
#include <vector>

#include "catch.hpp"
#include "labels/filter.hpp"
#include "nifti/reader.hpp"
#include "nifti/writer.hpp"
#include "nifti_builder.hpp"

using medimg::nifti::ByteOrder;
using medimg::nifti::Container;
using medimg::nifti::extension_chain_valid;
using medimg::nifti::MemorySink;
using medimg::nifti::Reader;
using medimg::nifti::ReadLimits;
using medimg::nifti::Version;
using medimg::test::NiftiSpec;

namespace {

// Extender (flag 1) followed by extensions given as (esize, payload bytes);
// esize is written as given, payload padded with 'x' to `body` bytes.
std::vector<std::uint8_t> region(const std::vector<std::pair<std::int32_t, std::size_t>>& exts,
                                 ByteOrder order, std::uint8_t flag = 1) {
    std::vector<std::uint8_t> r = {flag, 0, 0, 0};
    for (const auto& [esize, body] : exts) {
        const std::size_t at = r.size();
        r.resize(at + 8 + body, 'x');
        medimg::test::put<std::int32_t>(r, at, esize, order);
        medimg::test::put<std::int32_t>(r, at + 4, 6, order);   // ecode 6: comment
    }
    return r;
}

}  // namespace

TEST_CASE("writer: extension_chain_valid follows the esize rules", "[nifti][writer]") {
    const auto order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    CHECK(extension_chain_valid({}, order));
    CHECK(extension_chain_valid(region({}, order), order));                        // extender only
    CHECK(extension_chain_valid(region({{16, 8}}, order), order));
    CHECK(extension_chain_valid(region({{32, 24}, {16, 8}}, order), order));
    CHECK_FALSE(extension_chain_valid(region({{0, 24}}, order), order));           // esize 0
    CHECK_FALSE(extension_chain_valid(region({{8, 24}}, order), order));           // below 16
    CHECK_FALSE(extension_chain_valid(region({{8, 0}}, order), order));            // below 16, region 8
    CHECK_FALSE(extension_chain_valid(region({{-16, 24}}, order), order));         // negative
    CHECK_FALSE(extension_chain_valid(region({{INT32_MIN, 24}}, order), order));
    CHECK_FALSE(extension_chain_valid(region({{0x7ffffff0, 24}}, order), order)); // huge
    CHECK_FALSE(extension_chain_valid(region({{24, 24}}, order), order));          // not a multiple of 16
    CHECK_FALSE(extension_chain_valid(region({{48, 24}}, order), order));          // past vox_offset
    CHECK_FALSE(extension_chain_valid(region({{16, 8}, {0, 8}}, order), order));   // second one broken
    // The other byte order's reading of a valid esize 32 is 0x20000000.
    const ByteOrder other = order == ByteOrder::Little ? ByteOrder::Big : ByteOrder::Little;
    CHECK_FALSE(extension_chain_valid(region({{32, 24}}, order), other));
    // Fewer than 8 bytes after the chain hold no esize: padding.
    auto padded = region({{16, 8}}, order);
    padded.insert(padded.end(), 4, 0);
    CHECK(extension_chain_valid(padded, order));
}

TEST_CASE("writer: a broken extension chain is written with flag 0, its bytes kept", "[nifti][writer]") {
    const auto version = GENERATE(Version::Nifti1, Version::Nifti2);
    const auto order = GENERATE(ByteOrder::Little, ByteOrder::Big);
    const auto container = GENERATE(Container::Plain, Container::Gzip);
    const auto [esize, valid] = GENERATE(table<std::int32_t, bool>(
        {{32, true}, {0, false}, {8, false}, {-16, false}, {0x7ffffff0, false}, {24, false}, {48, false}}));
    NiftiSpec spec;
    spec.version = version;
    spec.byte_order = order;
    spec.dims = {4, 3, 2};
    spec.datatype = 2;
    std::vector<std::uint8_t> data(24);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i % 4);
    spec.data = data;
    spec.extension = region({{esize, 24}}, order);
    const std::size_t hsize = version == Version::Nifti2 ? 540 : 348;
    INFO("esize " << esize << (order == ByteOrder::Big ? " big-endian" : " little-endian"));

    Reader in = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
    REQUIRE(in.extension_bytes() == *spec.extension);
    medimg::labels::FilterOptions opt;
    opt.labels = medimg::labels::LabelSet::parse("1-3", 10);
    MemorySink sink;
    medimg::labels::filter(in, sink, container, opt);
    std::vector<std::uint8_t> out = sink.bytes;
    if (container == Container::Gzip) {
        medimg::test::TempDir dir;
        medimg::test::write_file(dir / "out.nii.gz", out);
        out = medimg::test::gunzip_file(dir / "out.nii.gz");
    }
    REQUIRE(out.size() == hsize + spec.extension->size() + data.size());
    const std::vector<std::uint8_t> written(out.begin() + static_cast<std::ptrdiff_t>(hsize),
                                            out.begin() + static_cast<std::ptrdiff_t>(hsize + spec.extension->size()));
    CHECK(written[0] == (valid ? 1 : 0));
    CHECK(std::vector<std::uint8_t>(written.begin() + 1, written.end()) ==
          std::vector<std::uint8_t>(spec.extension->begin() + 1, spec.extension->end()));
    // The voxels follow at vox_offset, untouched by the flag.
    CHECK(std::vector<std::uint8_t>(out.end() - static_cast<std::ptrdiff_t>(data.size()), out.end()) == data);
}

TEST_CASE("writer: a clear flag stays clear whatever follows it", "[nifti][writer]") {
    NiftiSpec spec;
    spec.dims = {2, 2, 2};
    spec.datatype = 2;
    spec.extension = region({{0, 24}}, ByteOrder::Little, 0);
    Reader in = Reader::open_memory(medimg::test::build_nifti(spec), ReadLimits{});
    medimg::labels::FilterOptions opt;
    opt.labels = medimg::labels::LabelSet::parse("0", 10);
    MemorySink sink;
    medimg::labels::filter(in, sink, Container::Plain, opt);
    const auto& out = sink.bytes;
    CHECK(std::vector<std::uint8_t>(out.begin() + 348, out.begin() + 348 + 36) == *spec.extension);
}
