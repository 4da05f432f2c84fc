// Byte sources and sinks: where the bytes of a file come from (a
// descriptor, memory, a decompressor's input) and where encoded NIfTI bytes
// go (a file written atomically, an open descriptor such as stdout, a memory
// buffer, or a FastCGI stream).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace medimg::nifti {

// Where bytes come from, in order.
class ByteSource {
public:
    virtual ~ByteSource() = default;
    // Up to n bytes into buf; 0 only at the end. Throws Error(Io).
    virtual std::size_t read(std::uint8_t* buf, std::size_t n) = 0;
};

// Where bytes go, in order.
class ByteSink {
public:
    virtual ~ByteSink() = default;
    // Writes all n bytes or throws Error (Io).
    virtual void write(const std::uint8_t* data, std::size_t n) = 0;
};

// Writes to a temporary file beside `target` (same directory, hidden name
// ".{name}.tmp-XXXXXX") and renames it onto `target` in commit(). Destroyed
// without commit(), it removes the temporary: a failure leaves no file.
class AtomicFileSink final : public ByteSink {
public:
    explicit AtomicFileSink(const std::filesystem::path& target);  // throws Error(Io / NotFound)
    ~AtomicFileSink() override;
    AtomicFileSink(const AtomicFileSink&) = delete;
    AtomicFileSink& operator=(const AtomicFileSink&) = delete;
    void write(const std::uint8_t* data, std::size_t n) override;
    void commit();   // fsync-free flush, close, rename; throws Error(Io)
    std::uint64_t bytes_written() const noexcept { return written_; }

private:
    std::filesystem::path target_, temp_;
    int fd_ = -1;
    std::uint64_t written_ = 0;
    bool committed_ = false;
};

// Writes to a descriptor it does not own (e.g. 1 for stdout).
class FdSink final : public ByteSink {
public:
    explicit FdSink(int fd) : fd_(fd) {}
    void write(const std::uint8_t* data, std::size_t n) override;

private:
    int fd_;
};

class MemorySink final : public ByteSink {
public:
    void write(const std::uint8_t* data, std::size_t n) override {
        bytes.insert(bytes.end(), data, data + n);
    }
    std::vector<std::uint8_t> bytes;
};

}  // namespace medimg::nifti
