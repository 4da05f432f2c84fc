// Writes a single-file NIfTI: header bytes, extension bytes, voxel data,
// plain or through a GzipDeflater.
#include "nifti/writer.hpp"

#include <optional>
#include <string>

#include "error.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/gzip.hpp"

namespace medimg::nifti {

bool extension_chain_valid(std::span<const std::uint8_t> region, ByteOrder order) noexcept {
    if (region.size() < 4) return true;
    const bool little = order == ByteOrder::Little;
    std::size_t pos = 4;
    while (region.size() - pos >= 8) {   // room for an esize and an ecode
        const std::int32_t esize = byteorder::load<std::int32_t>(region.data() + pos, little);
        if (esize < 16 || esize % 16 != 0 || static_cast<std::size_t>(esize) > region.size() - pos)
            return false;
        pos += static_cast<std::size_t>(esize);
    }
    return true;
}

struct Writer::Impl {
    ByteSink* out = nullptr;
    std::optional<GzipDeflater> gz;
    std::uint64_t expected = 0;
    std::uint64_t written = 0;
    bool finished = false;
};

Writer::Writer(ByteSink& sink, const Header& header, std::span<const std::uint8_t> extension,
               Container container, int gzip_level)
    : impl_(std::make_unique<Impl>()) {
    if (header.layout() != Layout::Single)
        throw Error(ErrorCode::Internal, "Writer needs a single-file header (call make_single_file())");
    const std::uint64_t hsize = header.size();
    const std::uint64_t vox = static_cast<std::uint64_t>(header.vox_offset());
    // An empty extension with vox_offset = header + 4 gets a zero extender.
    const bool zero_extender = extension.empty() && vox == hsize + 4;
    if (!zero_extender && vox != hsize + extension.size())
        throw Error(ErrorCode::Internal, "vox_offset " + std::to_string(vox) + " is not header size " +
                                             std::to_string(hsize) + " + extension bytes " +
                                             std::to_string(extension.size()));
    impl_->expected = header.data_bytes();
    if (container == Container::Gzip) {
        impl_->gz.emplace(sink, gzip_level);
        impl_->out = &*impl_->gz;
    } else {
        impl_->out = &sink;
    }
    impl_->out->write(header.bytes().data(), header.bytes().size());
    if (zero_extender) {
        static const std::uint8_t zeros[4] = {0, 0, 0, 0};
        impl_->out->write(zeros, 4);
    } else if (!extension.empty()) {
        // A set flag over a broken chain makes readers fail (nibabel reads
        // an esize of 0 as "the rest of the file"): the flag becomes 0, the
        // bytes stay (docs/ARCHITECTURE.md).
        if (extension[0] != 0 && !extension_chain_valid(extension, header.byte_order())) {
            static const std::uint8_t no_extensions = 0;
            impl_->out->write(&no_extensions, 1);
            impl_->out->write(extension.data() + 1, extension.size() - 1);
        } else {
            impl_->out->write(extension.data(), extension.size());
        }
    }
}

Writer::~Writer() = default;

void Writer::write(const std::uint8_t* data, std::size_t n) {
    if (impl_->finished) throw Error(ErrorCode::Internal, "Writer::write after finish()");
    if (n > impl_->expected - impl_->written)
        throw Error(ErrorCode::Internal, "Writer: more voxel bytes than the header declares (" +
                                             std::to_string(impl_->expected) + ")");
    impl_->out->write(data, n);
    impl_->written += n;
}

void Writer::finish() {
    if (impl_->finished) throw Error(ErrorCode::Internal, "Writer::finish called twice");
    if (impl_->written != impl_->expected)
        throw Error(ErrorCode::Internal, "Writer: " + std::to_string(impl_->written) + " voxel bytes written, header declares " +
                                             std::to_string(impl_->expected));
    if (impl_->gz) impl_->gz->finish();
    impl_->finished = true;
}

}  // namespace medimg::nifti
