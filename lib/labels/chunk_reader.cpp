#include "labels/chunk_reader.hpp"

#include <algorithm>
#include <utility>

#include "error.hpp"

namespace medimg::labels {

ChunkReader::ChunkReader(nifti::Reader& in, std::size_t voxel_bytes, std::string what)
    : in_(in), voxel_bytes_(voxel_bytes), what_(std::move(what)),
      total_(in.header().voxel_count()), buf_(kChunkVoxels * voxel_bytes) {}

std::size_t ChunkReader::next(std::size_t max_voxels) {
    const std::size_t n = static_cast<std::size_t>(
        std::min<std::uint64_t>(std::min(max_voxels, kChunkVoxels), total_ - done_));
    const std::size_t want = n * voxel_bytes_;
    std::size_t got = 0;
    while (got < want) {
        const std::size_t r = in_.read(buf_.data() + got, want - got);
        if (r == 0) throw Error(ErrorCode::TruncatedData, what_ + " ends early");
        got += r;
    }
    done_ += n;
    return n;
}

void ChunkReader::rewind() {
    in_.rewind();
    done_ = 0;
}

}  // namespace medimg::labels
