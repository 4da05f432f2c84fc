// The voxel data of an image in whole chunks, for every streaming pass of
// labels/: the filter's two passes, the metadata pass and the intensity
// image that rides along it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "nifti/reader.hpp"

namespace medimg::labels {

class ChunkReader {
public:
    static constexpr std::size_t kChunkVoxels = 1u << 15;   // voxels per read

    // `in`'s voxel_count() voxels of `voxel_bytes` bytes each, from where the
    // reader is; `what` names the data in the TruncatedData message.
    ChunkReader(nifti::Reader& in, std::size_t voxel_bytes, std::string what = "the voxel data");

    // Reads the next min(max_voxels, remaining) voxels (max_voxels up to
    // kChunkVoxels) into data() and returns how many: 0 once every voxel was
    // read. Throws Error(TruncatedData) when the data ends before.
    std::size_t next(std::size_t max_voxels = kChunkVoxels);
    const std::uint8_t* data() const noexcept { return buf_.data(); }

    // Back to the first voxel (the reader's rewind()).
    void rewind();

private:
    nifti::Reader& in_;
    std::size_t voxel_bytes_;
    std::string what_;
    std::uint64_t total_, done_ = 0;
    std::vector<std::uint8_t> buf_;
};

}  // namespace medimg::labels
