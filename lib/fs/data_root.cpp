// Request paths resolved and opened beneath the data root by descriptor
// (docs/SECURITY.md, "File access").
#include "fs/data_root.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__linux__) && __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define MEDIMG_HAVE_OPENAT2 1
#endif

#include <cerrno>
#include <cstring>
#include <deque>
#include <utility>

#include "error.hpp"
#include "utf8.hpp"

namespace medimg::fs {
namespace {

namespace stdfs = std::filesystem;

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
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

namespace {

constexpr int kMaxLinks = 40;
constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
// O_NONBLOCK: opening a FIFO never waits for a writer; the fstat that
// follows refuses it. O_NOCTTY: a terminal never becomes ours.
constexpr int kFileFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

std::shared_ptr<const UniqueFd> share(int fd) { return std::make_shared<const UniqueFd>(fd); }

// The Error for a failed open/openat of `shown` with errno `e`.
[[noreturn]] void throw_open_error(int e, const std::string& shown) {
    switch (e) {
        case EACCES:
        case EPERM:
            throw Error(ErrorCode::Forbidden, "permission denied: " + shown);
        case ELOOP:
            throw Error(ErrorCode::Forbidden, "too many symbolic links (a loop?): " + shown);
        case EMFILE:
        case ENFILE:
        case ENOMEM:
            throw Error(ErrorCode::Busy, "out of file descriptors opening " + shown);
        case ENXIO:   // a socket, or a device without its driver
            throw Error(ErrorCode::NotFound, "not a regular file: " + shown);
        default:      // ENOENT, ENOTDIR, ENAMETOOLONG, ...
            throw Error(ErrorCode::NotFound, "no such file: " + shown);
    }
}

std::vector<std::string> split(std::string_view path) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= path.size()) {
        const auto slash = path.find('/', pos);
        const auto end = slash == std::string_view::npos ? path.size() : slash;
        out.emplace_back(path.substr(pos, end - pos));
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    return out;
}

// The target of the link `name` in `dirfd`; nullopt when it is not a link.
std::optional<std::string> read_link(int dirfd, const std::string& name) {
    std::string buf(256, '\0');
    for (;;) {
        const ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
        if (n < 0) return std::nullopt;
        if (static_cast<std::size_t>(n) < buf.size()) {
            buf.resize(static_cast<std::size_t>(n));
            return buf;
        }
        if (buf.size() >= 1u << 16) return std::nullopt;
        buf.resize(buf.size() * 2);
    }
}

#ifdef MEDIMG_HAVE_OPENAT2
// openat2 with RESOLVE_BENEATH: the kernel refuses any step out of dirfd,
// and RESOLVE_NO_SYMLINKS sends every path with a link in it to the walk,
// which checks each component a link leads through (hidden entries too).
int open_beneath(int dirfd, const std::string& path, int flags) {
    struct open_how how{};
    how.flags = static_cast<std::uint64_t>(flags);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS;
    return static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how));
}
#endif

// One name in `dirfd`, never following a link: opened (fd), or the link it
// is (link), or errno (error). A name that is a link when opened but not when
// read (swapped in between) is tried again, a few times.
struct Step {
    int fd = -1;
    std::optional<std::string> link;
    int error = 0;
};

Step open_step(int dirfd, const std::string& name, bool dir) {
    int e = 0;
    for (int attempt = 0; attempt < 4; ++attempt) {
        const int fd = ::openat(dirfd, name.c_str(), dir ? kDirFlags : kFileFlags);
        if (fd >= 0) return {fd, std::nullopt, 0};
        e = errno;
        // O_NOFOLLOW on a link: ELOOP (with O_DIRECTORY, ENOTDIR on some kernels).
        if (e != ELOOP && !(dir && e == ENOTDIR)) break;
        if (auto target = read_link(dirfd, name)) return {-1, std::move(target), 0};
        if (e == ENOTDIR && errno == EINVAL) break;   // a file where a folder is expected
    }
    return {-1, std::nullopt, e};
}

}  // namespace

std::string OpenFile::identity() const {
    return rel + "@" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
           std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
           std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ctim.tv_sec) + "." +
           std::to_string(st.st_ctim.tv_nsec);
}

// One resolution: a stack of open folders from the root down, and the
// components still to walk. Every step is one openat() of one name in the
// folder on top of the stack, never following a link by itself: a link is
// read (readlinkat) and its target's components take its place; ".." pops
// the stack, so nothing climbs above the root. Every component walked
// through, whether requested or reached through a link, must not be hidden.
struct Walk {
    const DataRoot& root;
    std::string shown;   // the path as requested, for messages
    std::vector<Folder::Level> levels;
    std::deque<std::string> todo;
    int links = 0;

    std::string rel_of_levels() const {
        std::string r;
        for (std::size_t i = 1; i < levels.size(); ++i) r += (i > 1 ? "/" : "") + levels[i].name;
        return r;
    }

    Folder folder() const {
        Folder f;
        f.levels_ = levels;
        f.rel_ = rel_of_levels();
        return f;
    }

    // Opens the levels passed through by openat2 (null fds), from the root
    // down, by name, each without following links from the level above it:
    // the folder reached is beneath the root and not hidden whatever is
    // renamed meanwhile (it is not checked to be the one openat2 passed
    // through, which holds no descriptor to compare with).
    void open_skipped_levels() {
        for (std::size_t i = 1; i < levels.size(); ++i) {
            if (levels[i].fd) continue;
            const int fd = ::openat(levels[i - 1].fd->get(), levels[i].name.c_str(), kDirFlags);
            if (fd < 0) throw Error(ErrorCode::NotFound, "folder changed while opening " + shown);
            levels[i].fd = share(fd);
        }
    }

    void follow(const std::string& target) {
        if (++links > kMaxLinks) throw_open_error(ELOOP, shown);   // one wording for both methods
        std::string_view t = target;
        if (t.empty()) throw Error(ErrorCode::NotFound, "empty symbolic link: " + shown);
        if (t.front() == '/') {
            // An absolute link is followed only into the root, by its path.
            const std::string& r = root.root_.native();
            if (t == r) t = {};
            else if (t.size() > r.size() && t.compare(0, r.size(), r) == 0 && t[r.size()] == '/')
                t.remove_prefix(r.size() + 1);
            else throw Error(ErrorCode::Forbidden, "path leaves the data root: " + shown);
            levels.resize(1);
        }
        const auto parts = split(t);
        todo.insert(todo.begin(), parts.begin(), parts.end());
    }

    // Walks `todo`. Returns the open file (want_dir: the folder, file unset),
    // or nullopt when `optional` and the very first name does not exist.
    std::optional<Found> run(bool want_dir, bool optional) {
        bool first = true;
        while (!todo.empty()) {
            const std::string comp = std::move(todo.front());
            todo.pop_front();
            const bool was_first = std::exchange(first, false);
            if (comp.empty() || comp == ".") continue;   // only inside link targets
            if (comp == "..") {
                if (levels.size() <= 1) throw Error(ErrorCode::Forbidden, "path leaves the data root: " + shown);
                levels.pop_back();
                if (!levels.back().fd) open_skipped_levels();
                continue;
            }
            if (comp.front() == '.')
                throw Error(ErrorCode::Forbidden, "path resolves to a hidden entry: " + shown);
            const bool last = todo.empty();
            const bool dir = !last || want_dir;
            Step step = open_step(levels.back().fd->get(), comp, dir);
            if (step.link) {
                follow(*step.link);
                continue;
            }
            if (step.fd < 0) {
                if (step.error == ENOENT && optional && was_first) return std::nullopt;
                if (step.error == ENOTDIR || (dir && step.error == ELOOP))
                    throw Error(ErrorCode::NotFound, (last ? "not a directory: " : "no such file: ") + shown);
                throw_open_error(step.error, shown);
            }
            if (dir) {
                levels.push_back({share(step.fd), comp});
                continue;
            }
            const int fd = step.fd;
            OpenFile file;
            file.fd = share(fd);
            if (::fstat(fd, &file.st) != 0) throw_open_error(errno, shown);
            if (!S_ISREG(file.st.st_mode)) throw Error(ErrorCode::NotFound, "not a regular file: " + shown);
            file.rel = rel_of_levels();
            file.rel += (file.rel.empty() ? "" : "/") + comp;
            return Found{std::move(file), folder()};
        }
        if (!want_dir) throw Error(ErrorCode::NotFound, "not a regular file: " + shown);
        return Found{OpenFile{}, folder()};
    }
};

DataRoot::DataRoot(const stdfs::path& root, Resolution how) : how_(how) {
    std::error_code ec;
    auto canon = stdfs::canonical(root, ec);
    if (ec || !stdfs::is_directory(canon, ec))
        throw Error(ErrorCode::NotFound, "data root " + root.string() + " is not a directory");
    root_ = canon;
}

bool DataRoot::is_same_folder(const std::string& path) const noexcept {
    struct stat theirs{}, ours{};
    return !path.empty() && ::stat(path.c_str(), &theirs) == 0 && S_ISDIR(theirs.st_mode) &&
           ::stat(root_.c_str(), &ours) == 0 && theirs.st_dev == ours.st_dev &&
           theirs.st_ino == ours.st_ino;
}

UniqueFd DataRoot::open_root() const {
    // By path on every request, so a root folder that is replaced is seen
    // as the web server sees it. The path is the one resolved at start
    // (links in it followed then): repointing a link that names the root
    // takes a worker restart (docs/DEPLOYMENT.md, "Changing the data root").
    const int fd = ::open(root_.c_str(), kDirFlags & ~O_NOFOLLOW);
    if (fd < 0) {
        const int e = errno;
        if (e == EMFILE || e == ENFILE || e == ENOMEM) throw_open_error(e, "the data root");
        throw Error(ErrorCode::NotFound, "the data root is not available");
    }
    return UniqueFd(fd);
}

Found DataRoot::open_file(std::string_view relative) const {
    check_relative(relative);
    const std::string shown(relative);
    Walk walk{*this, shown, {{share(open_root().release()), ""}}, {}, 0};
    auto parts = split(relative);
#ifdef MEDIMG_HAVE_OPENAT2
    if (how_ == Resolution::Auto && parts.size() > 1 && !openat2_unavailable_.load(std::memory_order_relaxed)) {
        const auto slash = relative.rfind('/');
        const int fd = open_beneath(walk.levels[0].fd->get(), std::string(relative.substr(0, slash)), kDirFlags);
        if (fd >= 0) {
            // The folder is held; the levels above it are opened only if a
            // link in the last name climbs through them.
            for (std::size_t i = 0; i + 1 < parts.size(); ++i) walk.levels.push_back({nullptr, parts[i]});
            walk.levels.back().fd = share(fd);
            parts.erase(parts.begin(), parts.end() - 1);
        } else if (errno == ENOSYS || errno == EPERM || errno == E2BIG || errno == EINVAL) {
            openat2_unavailable_.store(true, std::memory_order_relaxed);   // an old kernel or a filter
        }
        // Any other failure (a link on the way: ELOOP or ENOTDIR; a missing
        // folder) is decided, and named, by the walk.
    }
#endif
    walk.todo.assign(parts.begin(), parts.end());
    return *walk.run(false, false);
}

std::optional<Found> DataRoot::open_in(const Folder& folder, std::string_view name) const {
    const std::string shown = folder.rel().empty() ? std::string(name) : folder.rel() + "/" + std::string(name);
    check_relative(name);
    if (name.find('/') != std::string_view::npos) throw Error(ErrorCode::BadPath, "not a file name: " + shown);
    Walk walk{*this, shown, folder.levels_, {std::string(name)}, 0};
    return walk.run(false, true);
}

Folder DataRoot::open_dir(std::string_view relative) const {
    check_relative(relative);
    const std::string shown(relative);
    Walk walk{*this, shown, {{share(open_root().release()), ""}}, {}, 0};
    const auto parts = split(relative);
    walk.todo.assign(parts.begin(), parts.end());
    return walk.run(true, false)->folder;
}

}  // namespace medimg::fs
