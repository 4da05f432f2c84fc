// Fuzzes the strict multi-member gzip inflater with an output cap.
#include <algorithm>

#include "fuzz_support.hpp"
#include "nifti/gzip.hpp"

namespace {

class MemorySource final : public medimg::nifti::ByteSource {
public:
    MemorySource(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    std::size_t read(std::uint8_t* buf, std::size_t n) override {
        const std::size_t k = std::min(n, size_ - pos_);
        if (k > 0) std::memcpy(buf, data_ + pos_, k);
        pos_ += k;
        return k;
    }

private:
    const std::uint8_t* data_;
    std::size_t size_, pos_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace medimg;
    MemorySource source(data, size);
    fuzz::expect_only_medimg_errors([&] {
        nifti::GzipInflater inflater(source, 4u << 20);
        std::vector<std::uint8_t> buf(64 * 1024);
        std::uint64_t total = 0;
        while (std::size_t n = inflater.read(buf.data(), buf.size())) {
            total += n;
            if (total > (4u << 20)) __builtin_trap();   // the cap must hold
        }
    });
    return 0;
}
