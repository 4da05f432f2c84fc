// `medimg serve`'s processes (see supervisor.hpp).
#include "supervisor.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "error.hpp"

extern char** environ;

namespace medimg::cli {
namespace {

namespace stdfs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Runs argv with default signal handling and nothing blocked; stdin from
// /dev/null; stdout and stderr to `output_fd` when given, else ours. The
// child gets SIGTERM when this process dies, however it dies (SIGKILL, the
// OOM killer): a lighttpd left behind would go on serving the data root on
// its port after `medimg serve` is gone. fork + exec rather than
// posix_spawn, which cannot ask for that; between the two only
// async-signal-safe calls, and an exec failure comes back through a pipe.
pid_t spawn(const std::vector<std::string>& argv, bool new_group, int output_fd = -1) {
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0)
        throw Error(ErrorCode::Io, "cannot run " + argv[0] + ": " + std::strerror(errno));
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(report[0]);
        if (new_group) ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127);   // died before the line above
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE}) ::sigaction(sig, &dfl, nullptr);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        const int null = ::open("/dev/null", O_RDONLY);
        if (null > 0) {
            ::dup2(null, 0);
            ::close(null);
        }
        if (output_fd >= 0) {
            ::dup2(output_fd, 1);
            ::dup2(output_fd, 2);
        }
        ::execve(cargv[0], cargv.data(), environ);
        const int err = errno;
        (void)!::write(report[1], &err, sizeof err);
        ::_exit(127);
    }
    const int fork_errno = errno;
    ::close(report[1]);
    if (pid < 0) {
        ::close(report[0]);
        throw Error(ErrorCode::Io, "cannot run " + argv[0] + ": " + std::strerror(fork_errno));
    }
    int err = 0;
    ssize_t got;
    while ((got = ::read(report[0], &err, sizeof err)) < 0 && errno == EINTR) {
    }
    ::close(report[0]);
    if (got == static_cast<ssize_t>(sizeof err)) {   // exec failed: reap the child
        while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
        }
        throw Error(ErrorCode::Io, "cannot run " + argv[0] + ": " + std::strerror(err));
    }
    return pid;
}

int wait_exit_code(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// Children of this process (lighttpd, and its workers when lighttpd died
// first: we are their subreaper), zombies included.
std::vector<pid_t> own_children() {
    std::vector<pid_t> out;
    const long self = ::getpid();
    std::error_code ec;
    for (const auto& entry : stdfs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        const auto close = line.rfind(')');
        if (close == std::string::npos || close + 2 >= line.size()) continue;
        std::istringstream rest(line.substr(close + 2));
        char state = 0;
        long ppid = 0;
        rest >> state >> ppid;
        if (ppid == self) out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

void reap(const std::vector<pid_t>& pids) {
    for (pid_t p : pids) ::waitpid(p, nullptr, WNOHANG);
}

// Stops every remaining child: SIGTERM, then SIGKILL after `grace`.
void stop_children(milliseconds grace) {
    auto children = own_children();
    for (pid_t p : children) ::kill(p, SIGTERM);
    const auto deadline = steady_clock::now() + grace;
    while (!children.empty() && steady_clock::now() < deadline) {
        reap(children);
        std::this_thread::sleep_for(milliseconds(50));
        children = own_children();
    }
    for (pid_t p : children) ::kill(p, SIGKILL);
    for (pid_t p : children) ::waitpid(p, nullptr, 0);
}

// SIGTERM: lighttpd stops at once and terminates its bin-path workers;
// SIGKILL if it has not after `grace`.
void stop_server(pid_t server, milliseconds grace) {
    ::kill(server, SIGTERM);
    const auto deadline = steady_clock::now() + grace;
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(server, &status, WNOHANG)) == 0 && steady_clock::now() < deadline)
        std::this_thread::sleep_for(milliseconds(20));
    if (done == 0) {
        ::kill(server, SIGKILL);
        ::waitpid(server, &status, 0);
    }
}

bool port_answers(const std::string& numeric_host, int port) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(numeric_host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0)
        return false;
    const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
    if (fd >= 0) ::close(fd);
    ::freeaddrinfo(res);
    return ok;
}

const char* signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP";
}

// How the watch over a running lighttpd ended.
struct Outcome {
    bool server_alive = true;
    std::optional<Error> failure;
};

// Waits for a stop signal, lighttpd's exit or the end of its time to answer;
// announces readiness once; reaps workers lighttpd has orphaned.
Outcome watch(pid_t server, const Supervised& what, const sigset_t& stop_signals) {
    bool announced = false;
    const auto started = steady_clock::now();
    for (;;) {
        if (!announced && port_answers(what.bind, what.port)) {
            announced = true;
            if (what.on_ready) what.on_ready();
        }
        if (!announced && steady_clock::now() - started > what.ready_within) {
            const std::string host = what.bind.find(':') != std::string::npos ? "[" + what.bind + "]" : what.bind;
            return {true, Error(ErrorCode::Timeout, "lighttpd does not answer on http://" + host + ":" +
                                                        std::to_string(what.port) + "/")};
        }
        timespec timeout{0, announced ? 500'000'000L : 50'000'000L};
        const int sig = ::sigtimedwait(&stop_signals, nullptr, &timeout);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            std::printf("Stopping (%s)\n", signal_name(sig));
            std::fflush(stdout);
            return {};
        }
        int status = 0;
        if (::waitpid(server, &status, WNOHANG) == server) {
            const bool exited = WIFEXITED(status);
            return {false, Error(ErrorCode::Io, std::string("lighttpd exited unexpectedly (") +
                                                    (exited ? "exit code " : "signal ") +
                                                    std::to_string(exited ? WEXITSTATUS(status) : WTERMSIG(status)) +
                                                    ")")};
        }
        // Orphaned workers (lighttpd restarted one) end up here: reap them.
        std::vector<pid_t> others;
        for (pid_t p : own_children())
            if (p != server) others.push_back(p);
        reap(others);
    }
}

}  // namespace

StopSignals::StopSignals() {
    sigemptyset(&stop_);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&stop_, s);
    pthread_sigmask(SIG_BLOCK, &stop_, &old_);
}

// A stop signal still pending (serve failed before supervise() took it) is
// taken here, so that restoring the mask does not end the process before
// the failure is reported.
StopSignals::~StopSignals() {
    const timespec now{0, 0};
    while (::sigtimedwait(&stop_, nullptr, &now) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

stdfs::path find_program(const std::string& name, const std::vector<stdfs::path>& fallbacks) {
    if (const char* path = std::getenv("PATH")) {
        std::stringstream dirs(path);
        std::string dir;
        while (std::getline(dirs, dir, ':')) {
            if (dir.empty()) continue;
            const stdfs::path p = stdfs::path(dir) / name;
            if (::access(p.c_str(), X_OK) == 0) return p;
        }
    }
    for (const auto& p : fallbacks)
        if (::access(p.c_str(), X_OK) == 0) return p;
    return {};
}

int run_to_end(const std::vector<std::string>& argv, int output_fd) {
    return wait_exit_code(spawn(argv, false, output_fd));
}

void supervise(const Supervised& what, const StopSignals& signals) {
    // Workers are reparented to us if lighttpd dies first, so none outlives
    // `medimg serve`. lighttpd gets its own process group: a Ctrl-C reaches
    // us, and we stop it in order.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    const pid_t server = spawn({what.lighttpd.string(), "-D", "-f", what.conf_file.string()}, true);
    Outcome outcome;
    try {
        outcome = watch(server, what, signals.set());
    } catch (...) {
        stop_server(server, milliseconds(5000));
        stop_children(milliseconds(3000));
        throw;
    }
    if (outcome.server_alive) stop_server(server, milliseconds(5000));
    stop_children(milliseconds(3000));
    if (outcome.failure) throw *outcome.failure;
}

}  // namespace medimg::cli
