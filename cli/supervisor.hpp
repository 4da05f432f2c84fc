// `medimg serve`'s processes: running a program to its end, and supervising
// lighttpd -D (which starts and restarts the medimg-fcgi workers) until a
// stop signal, then stopping it and every process left under us.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace medimg::cli {

// SIGINT, SIGTERM, SIGHUP and SIGCHLD blocked in this thread while it
// lives, so that they wait for supervise() instead of ending the process
// before lighttpd and the workers are stopped; the mask is restored after
// (a stop signal still pending then is dropped: serve is ending anyway).
class StopSignals {
public:
    StopSignals();
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;
    const sigset_t& set() const { return stop_; }

private:
    sigset_t stop_, old_;
};

// `name` in $PATH, else the first executable of `fallbacks`; empty if none.
std::filesystem::path find_program(const std::string& name,
                                   const std::vector<std::filesystem::path>& fallbacks);

// Runs argv (default signal handling, nothing blocked, stdin /dev/null;
// stdout and stderr to `output_fd` when given, else ours) and waits for it:
// its exit code, or 128 + the signal that ended it. Throws Error(Io) when it
// cannot be started.
int run_to_end(const std::vector<std::string>& argv, int output_fd = -1);

struct Supervised {
    std::filesystem::path lighttpd;
    std::filesystem::path conf_file;
    std::string bind;   // numeric address lighttpd listens on
    int port = 0;
    std::chrono::seconds ready_within{15};
    // Called once, when the port first answers.
    std::function<void()> on_ready;
};

// Runs `lighttpd -D -f conf_file` in a process group of its own, with this
// process as subreaper of the workers, until a stop signal of `signals`
// arrives (prints "Stopping (SIG…)" and returns). Stops lighttpd (SIGTERM,
// SIGKILL after 5 s) and then every child left (3 s) whatever the outcome;
// then throws Error(Timeout) when the port did not answer within
// ready_within, Error(Io) when lighttpd exited by itself.
void supervise(const Supervised& what, const StopSignals& signals);

}  // namespace medimg::cli
