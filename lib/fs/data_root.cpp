// Request paths resolved inside the data root (DESIGN.md §7).
#include "fs/data_root.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "error.hpp"

namespace medimg::fs {
namespace {

namespace stdfs = std::filesystem;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        int n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) n = 3, cp = c & 0x07;
        else return false;
        if (s.size() - i - 1 < static_cast<std::size_t>(n)) return false;
        for (int k = 1; k <= n; ++k) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

// Pure checks on the decoded relative path; throws BadPath / Forbidden.
void check_relative(std::string_view rel) {
    if (rel.empty()) throw Error(ErrorCode::BadPath, "empty path");
    if (rel.front() == '/') throw Error(ErrorCode::BadPath, "absolute path");
    if (rel.find('\\') != std::string_view::npos)
        throw Error(ErrorCode::BadPath, "backslash in path");
    if (rel.find('\0') != std::string_view::npos) throw Error(ErrorCode::BadPath, "NUL in path");
    std::size_t pos = 0;
    while (true) {
        auto slash = rel.find('/', pos);
        std::string_view seg = rel.substr(pos, slash == std::string_view::npos ? rel.npos : slash - pos);
        if (seg.empty()) throw Error(ErrorCode::BadPath, "empty path segment");
        if (seg == "." || seg == "..")
            throw Error(ErrorCode::Forbidden, "path segment \"" + std::string(seg) + "\" is not allowed");
        if (seg.front() == '.')
            throw Error(ErrorCode::Forbidden, "hidden entry \"" + std::string(seg) + "\" is not served");
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
}

}  // namespace

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            if (text.size() - i < 3)
                throw Error(ErrorCode::BadPath, "malformed percent escape");
            int hi = hex_value(text[i + 1]), lo = hex_value(text[i + 2]);
            if (hi < 0 || lo < 0) throw Error(ErrorCode::BadPath, "malformed percent escape");
            c = static_cast<char>(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') throw Error(ErrorCode::BadPath, "NUL byte in path or query");
        out.push_back(c);
    }
    if (!valid_utf8(out)) throw Error(ErrorCode::BadPath, "path or query is not valid UTF-8");
    return out;
}

DataRoot::DataRoot(const stdfs::path& root) {
    std::error_code ec;
    auto canon = stdfs::canonical(root, ec);
    if (ec || !stdfs::is_directory(canon, ec))
        throw Error(ErrorCode::NotFound, "data root " + root.string() + " is not a directory");
    root_ = canon;
}

namespace {

// Resolves `rel` (checked) below `root`; returns the canonical path and
// its stat. Throws Forbidden / NotFound.
stdfs::path resolve_inside(const stdfs::path& root, std::string_view rel, struct stat& st) {
    check_relative(rel);
    std::error_code ec;
    stdfs::path full = root / stdfs::path(std::string(rel));
    stdfs::path canon = stdfs::canonical(full, ec);
    if (ec) {
        if (ec == std::errc::permission_denied)
            throw Error(ErrorCode::Forbidden, "permission denied: " + std::string(rel));
        if (ec == std::errc::too_many_symbolic_link_levels)
            throw Error(ErrorCode::Forbidden, "symlink loop: " + std::string(rel));
        throw Error(ErrorCode::NotFound, "no such file: " + std::string(rel));
    }
    // Containment, component-wise, and no hidden component after resolution.
    auto r = root.begin();
    auto c = canon.begin();
    for (; r != root.end(); ++r, ++c)
        if (c == canon.end() || *c != *r)
            throw Error(ErrorCode::Forbidden, "path leaves the data root: " + std::string(rel));
    for (; c != canon.end(); ++c) {
        std::string seg = c->string();
        if (!seg.empty() && seg.front() == '.')
            throw Error(ErrorCode::Forbidden, "path resolves to a hidden entry: " + std::string(rel));
    }
    if (::stat(canon.c_str(), &st) != 0) {
        if (errno == EACCES) throw Error(ErrorCode::Forbidden, "permission denied: " + std::string(rel));
        throw Error(ErrorCode::NotFound, "no such file: " + std::string(rel));
    }
    return canon;
}

}  // namespace

stdfs::path DataRoot::resolve_file(std::string_view relative) const {
    struct stat st{};
    auto canon = resolve_inside(root_, relative, st);
    if (!S_ISREG(st.st_mode))
        throw Error(ErrorCode::NotFound, "not a regular file: " + std::string(relative));
    if (::access(canon.c_str(), R_OK) != 0)
        throw Error(ErrorCode::Forbidden, "file not readable: " + std::string(relative));
    return canon;
}

stdfs::path DataRoot::resolve_dir(std::string_view relative) const {
    struct stat st{};
    auto canon = resolve_inside(root_, relative, st);
    if (!S_ISDIR(st.st_mode))
        throw Error(ErrorCode::NotFound, "not a directory: " + std::string(relative));
    return canon;
}

}  // namespace medimg::fs
