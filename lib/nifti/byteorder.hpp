// Byte-order helpers: load and store fixed-size fields from raw header bytes
// in a given byte order, without alignment or aliasing assumptions.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace medimg::nifti::byteorder {

inline bool host_is_little() noexcept { return std::endian::native == std::endian::little; }

template <typename T>
T byteswap_value(T v) noexcept {
    static_assert(std::is_trivially_copyable_v<T>);
    unsigned char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    for (std::size_t i = 0; i < sizeof(T) / 2; ++i) {
        unsigned char t = b[i];
        b[i] = b[sizeof(T) - 1 - i];
        b[sizeof(T) - 1 - i] = t;
    }
    std::memcpy(&v, b, sizeof(T));
    return v;
}

// Reads a T at p, stored little-endian when `little`, else big-endian.
template <typename T>
T load(const std::uint8_t* p, bool little) noexcept {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return little == host_is_little() ? v : byteswap_value(v);
}

// Writes v at p in the given byte order.
template <typename T>
void store(std::uint8_t* p, T v, bool little) noexcept {
    if (little != host_is_little()) v = byteswap_value(v);
    std::memcpy(p, &v, sizeof(T));
}

}  // namespace medimg::nifti::byteorder
