// medimg-fcgi: the FastCGI worker, in three steps: parse_arguments(),
// set_up() (configuration, the shared Context, the listening socket,
// libfcgi, the routes) and serve_requests() (the threads and the accept
// loop). One acceptor thread takes connections (FCGX_Accept_r) into a
// bounded queue; request threads answer them; a signal thread turns
// SIGTERM/SIGINT/SIGHUP into an orderly stop. libfcgi's own SIGTERM flag is
// never seen by threads blocked in accept, so signals are blocked everywhere
// and taken with sigwait().
//
// The listening socket may be shared: spawn-fcgi -F, multiwatch and systemd
// socket activation hand the same socket to every worker process, side by
// side or one after the other (lighttpd's bin-path gives each process a
// socket of its own). A stop must
// never shutdown() or close() it, or every other process on it fails
// accept() with EINVAL (docs/DEPLOYMENT.md, "Stopping one worker"). The
// acceptor therefore waits in poll() on the socket and an eventfd; a stop
// writes the eventfd, and should the acceptor have lost a connection to a
// sibling and be blocked inside accept(), a SIGUSR2 aimed at that thread
// ends the accept with EINTR (FCGI_FAIL_ACCEPT_ON_INTR).
#include <arpa/inet.h>
#include <fcgiapp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "config.hpp"
#include "context.hpp"
#include "error.hpp"
#include "router.hpp"
#include "routes/routes.hpp"
#include "transport.hpp"

namespace {

using medimg::Error;
using medimg::ErrorCode;
namespace fcgi = medimg::fcgi;

constexpr const char* kUsage =
    "usage: medimg-fcgi [--config FILE] [--threads N] [--listen ADDR]\n"
    "\n"
    "FastCGI worker answering /filtered-scans/..., /output/.../labels,\n"
    "/output/.../info, /health and /metrics.\n"
    "\n"
    "  --config FILE   ini file (default: $MEDIMG_CONFIG, else built-in defaults;\n"
    "                  environment and ./.env override it)\n"
    "  --threads N     request threads (default: [server] threads)\n"
    "  --listen ADDR   bind ADDR instead of using the socket on fd 0 (as given by\n"
    "                  lighttpd, spawn-fcgi or systemd): a unix socket path\n"
    "                  (/run/medimg.sock or unix:/run/medimg.sock) or HOST:PORT\n"
    "                  with an explicit host (127.0.0.1:9000, [::1]:9000);\n"
    "                  all-interfaces addresses are refused\n"
    "  --routes        print the route patterns this worker answers, one a line\n"
    "                  (what /openapi.json describes), and exit\n"
    "  --help          this text\n";

// A command line the worker cannot take: the reason and the usage text on
// stderr; the error table's exit code (2, a usage error).
int usage_failure(const Error& e) {
    std::fprintf(stderr, "medimg-fcgi: %s\n%s", e.what(), kUsage);
    return e.exit_code();
}

// A worker that cannot start says why on stderr, which every supported
// deployment sends to a log (README.md, "Troubleshooting"): lighttpd's
// server.breakagelog, Apache's ErrorLog, the journal. The exit code is the
// error table's (lib/error.hpp): 2 for a bad setting, 1 for anything else.
int startup_failure(const std::string& reason, int exit_code) {
    std::fprintf(stderr, "medimg-fcgi[%ld]: cannot start: %s\n", static_cast<long>(::getpid()),
                 reason.c_str());
    std::fflush(stderr);
    return exit_code;
}

void wake_handler(int) {}   // only interrupts accept() (SIGUSR2)

bool fd0_is_listening_socket() {
    int accepting = 0;
    socklen_t len = sizeof accepting;
    return ::getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting;
}

// Binds ADDR (see --listen) and listens; throws Error(BadParameter / Io).
int open_listen_socket(std::string addr) {
    if (addr.rfind("unix:", 0) == 0) addr = addr.substr(5);
    if (!addr.empty() && (addr.front() == '/' || addr.front() == '.')) {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        if (addr.size() >= sizeof sa.sun_path)
            throw Error(ErrorCode::BadParameter, "--listen: socket path too long: " + addr);
        std::memcpy(sa.sun_path, addr.c_str(), addr.size() + 1);
        struct stat st{};
        if (::lstat(addr.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(addr.c_str());
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
            ::listen(fd, 128) != 0)
            throw Error(ErrorCode::Io, "--listen " + addr + ": " + std::strerror(errno));
        return fd;
    }
    std::string host, port;
    if (!addr.empty() && addr.front() == '[') {
        auto close = addr.find("]:");
        if (close == std::string::npos) throw Error(ErrorCode::BadParameter, "--listen: bad address " + addr);
        host = addr.substr(1, close - 1);
        port = addr.substr(close + 2);
    } else {
        auto colon = addr.rfind(':');
        if (colon == std::string::npos)
            throw Error(ErrorCode::BadParameter,
                        "--listen: expected a unix socket path or HOST:PORT, got " + addr);
        host = addr.substr(0, colon);
        port = addr.substr(colon + 1);
    }
    if (host.empty())
        throw Error(ErrorCode::BadParameter,
                    "--listen " + addr + ": give a host (127.0.0.1:PORT); binding every interface is refused");
    if (host == "0.0.0.0" || host == "::" || host == "*")
        throw Error(ErrorCode::BadParameter, "--listen " + addr + ": binding every interface is refused");
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
        throw Error(ErrorCode::BadParameter, "--listen " + addr + ": " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
    int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 128) != 0)
        throw Error(ErrorCode::Io, "--listen " + addr + ": " + std::strerror(errno));
    return fd;
}

// Answers one accepted request on the calling thread; a client that stopped
// reading for `send_timeout` is logged and dropped (docs/SECURITY.md).
void answer(const fcgi::Router& router, const fcgi::Context& context, FCGX_Request& request) {
    bool stalled = false;
    {
        fcgi::FcgiTransport transport(request, context.config.send_timeout);
        router.handle(transport);
        stalled = transport.stalled();
    }
    if (stalled) {
        const char* uri = FCGX_GetParam("REQUEST_URI", request.envp);
        char seconds[32];
        std::snprintf(seconds, sizeof seconds, "%g",
                      static_cast<double>(context.config.send_timeout.count()) / 1000);
        context.log(std::string(uri ? uri : "?") + ": the client took no data for " + seconds +
                    " s ([limits] send_timeout); answer aborted");
    }
    FCGX_Finish_r(&request);
}

// Accepted requests waiting for a thread, bounded: past the bound the
// acceptor answers 503 itself (README.md). The kernel's backlog of
// connections not yet accepted is invisible to us; what we bound is what
// this process has taken on.
class Pool {
public:
    Pool(const fcgi::Router& router, const fcgi::Context& context, int threads, int max_queue)
        : router_(router), context_(context), max_queue_(static_cast<std::size_t>(max_queue)) {
        for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
    }

    // Takes ownership; false when the queue is full (the caller answers 503).
    bool offer(std::unique_ptr<FCGX_Request>& request) {
        std::lock_guard guard(mutex_);
        if (queue_.size() >= idle_ + max_queue_) return false;
        queue_.push_back(std::move(request));
        if (context_.metrics) context_.metrics->add_queued(1);
        cv_.notify_one();
        return true;
    }

    // Stops taking work; threads finish what is queued. Waits up to
    // `timeout`; false if threads are still busy then.
    bool stop(std::chrono::seconds timeout) {
        {
            std::lock_guard guard(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        std::unique_lock lock(mutex_);
        bool done = done_cv_.wait_for(lock, timeout, [this] { return finished_ == threads_.size(); });
        lock.unlock();
        if (done)
            for (auto& t : threads_) t.join();
        return done;
    }

private:
    void run() {
        std::unique_lock lock(mutex_);
        while (true) {
            ++idle_;
            cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            --idle_;
            if (queue_.empty()) break;   // stopping and drained
            auto request = std::move(queue_.front());
            queue_.pop_front();
            if (context_.metrics) context_.metrics->add_queued(-1);
            lock.unlock();
            answer(router_, context_, *request);
            request.reset();
            lock.lock();
        }
        ++finished_;
        done_cv_.notify_all();
    }

    const fcgi::Router& router_;
    const fcgi::Context& context_;
    std::size_t max_queue_;
    std::mutex mutex_;
    std::condition_variable cv_, done_cv_;
    std::deque<std::unique_ptr<FCGX_Request>> queue_;
    std::size_t idle_ = 0, finished_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

// ---------------------------------------------------------------------------
// Arguments

struct Arguments {
    enum class Action { Serve, Help, Routes } action = Action::Serve;
    std::optional<std::filesystem::path> config_file;
    std::optional<std::string> listen_addr;
    std::map<std::string, std::string> flags;   // configuration keys set on the command line
};

// The command line; throws Error(BadParameter) for an unknown argument or a
// missing value. --help and --routes end the parse.
Arguments parse_arguments(int argc, char** argv) {
    Arguments out;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (auto eq = arg.find('='); eq != std::string::npos) return arg.substr(eq + 1);
            if (i + 1 >= argc) throw Error(ErrorCode::BadParameter, arg + " needs a value");
            return argv[++i];
        };
        auto is = [&](const char* name) { return arg == name || arg.rfind(std::string(name) + "=", 0) == 0; };
        if (arg == "--help" || arg == "-h") {
            out.action = Arguments::Action::Help;
            return out;
        } else if (arg == "--routes") {
            out.action = Arguments::Action::Routes;
            return out;
        } else if (is("--config")) {
            out.config_file = value();
        } else if (is("--threads")) {
            out.flags["server.threads"] = value();
        } else if (is("--listen")) {
            out.listen_addr = value();
        } else {
            throw Error(ErrorCode::BadParameter, "unknown argument " + arg);
        }
    }
    return out;
}

// --routes: the patterns of the routes, registered and never called.
int print_routes() {
    fcgi::Context none;
    fcgi::Router router(none);
    fcgi::register_all(router, none);
    for (const auto& p : router.patterns()) std::printf("%s\n", p.c_str());
    return 0;
}

// ---------------------------------------------------------------------------
// Set-up

// What the accept loop runs with.
struct Worker {
    std::unique_ptr<fcgi::Context> context;
    std::unique_ptr<fcgi::Router> router;
    int listen_fd = 0;
    int wake_fd = -1;   // the stop: an eventfd the acceptor polls with the socket
};

// Flags over the environment (MEDIMG_*) over ./.env over the ini file
// (--config, else $MEDIMG_CONFIG) over built-in defaults.
medimg::Config load_worker_config(const Arguments& args) {
    medimg::ConfigSources sources;
    sources.ini_file = args.config_file;
    sources.environment = medimg::environment_map();
    std::error_code ec;
    sources.working_dir = std::filesystem::current_path(ec);
    sources.dotenv_dir = sources.working_dir;
    sources.flags = args.flags;
    const auto dirs = medimg::find_data_dirs(medimg::current_executable());
    sources.conf_dir = dirs.conf_dir;
    sources.share_dir = dirs.share_dir;
    return medimg::load_config(sources);
}

// The socket to accept on: --listen's, else the one on fd 0.
int listening_socket(const Arguments& args) {
    if (args.listen_addr) return open_listen_socket(*args.listen_addr);
    if (!fd0_is_listening_socket())
        throw Error(ErrorCode::BadParameter,
                    "no listening socket on fd 0 (start me from lighttpd, spawn-fcgi or systemd, or pass --listen)");
    return 0;
}

// Everything before the first accept. Throws Error naming what is wrong
// (a bad setting, a missing data root, an unusable cache directory or
// socket), with the error table's exit code.
Worker set_up(const Arguments& args) {
    Worker w;
    w.context = fcgi::Context::create(load_worker_config(args));
    w.listen_fd = listening_socket(args);
    if (FCGX_Init() != 0) throw Error(ErrorCode::Internal, "FCGX_Init failed");
    ::signal(SIGPIPE, SIG_IGN);   // a vanished client shows as a failed write
    w.router = std::make_unique<fcgi::Router>(*w.context);
    fcgi::register_all(*w.router, *w.context);
    w.router->open_metrics(*w.context);
    w.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w.wake_fd < 0) throw Error(ErrorCode::Io, std::string("eventfd: ") + std::strerror(errno));
    return w;
}

// ---------------------------------------------------------------------------
// The accept loop

// Signals: blocked in every thread (set before any thread starts), taken by
// one sigwait() thread. SIGUSR2 only wakes the acceptor.
sigset_t block_signals() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGHUP);
    sigaddset(&stop_signals, SIGUSR1);   // libfcgi's graceful-stop signal
    sigset_t blocked = stop_signals;
    sigaddset(&blocked, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
    return stop_signals;
}

// Shared by the acceptor and the signal thread; static, since the detached
// signal thread may look at it until the process exits.
struct StopState {
    std::atomic<bool> stopping{false}, accepting_done{false};
};
StopState stop_state;

// The signal thread: the first stop signal sets `stopping` and writes the
// eventfd. The acceptor normally leaves poll() at once. Should it sit in
// accept() (a sibling took the connection poll() announced), a SIGUSR2
// every 100 ms ends that accept; a second stop signal while waiting or
// draining ends the process at once.
void start_signal_thread(sigset_t stop_signals, int wake_fd, pthread_t acceptor, StopState& state) {
    struct sigaction wake{};
    wake.sa_handler = wake_handler;
    sigemptyset(&wake.sa_mask);
    wake.sa_flags = 0;   // no SA_RESTART: accept() returns EINTR
    ::sigaction(SIGUSR2, &wake, nullptr);
    std::thread([stop_signals, wake_fd, acceptor, &state] {
        int sig = 0;
        sigwait(&stop_signals, &sig);
        state.stopping = true;
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
        const timespec tick{0, 100'000'000L};
        while (!state.accepting_done) {
            if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) std::_Exit(0);
            if (!state.accepting_done) ::pthread_kill(acceptor, SIGUSR2);
        }
        sigwait(&stop_signals, &sig);
        std::_Exit(0);
    }).detach();
}

// One accepted request: answered here when its route says so (/health,
// AnswerOn::Acceptor), else queued for a request thread, else (queue full)
// refused with 503 here.
void answer_or_queue(const Worker& w, Pool& pool, std::unique_ptr<FCGX_Request>& request) {
    const char* uri = FCGX_GetParam("REQUEST_URI", request->envp);
    const char* method = FCGX_GetParam("REQUEST_METHOD", request->envp);
    if (uri && method && w.router->answers_on_acceptor(method, uri)) {
        answer(*w.router, *w.context, *request);
        return;
    }
    if (pool.offer(request)) return;
    try {
        fcgi::FcgiTransport transport(*request, w.context->config.send_timeout);
        fcgi::write_response(transport, fcgi::busy_response(1), false);
        if (w.context->metrics) w.context->metrics->count_request(w.context->metrics->refused(), 503, 0, 0);
    } catch (...) {
    }
    FCGX_Finish_r(request.get());
}

// Accepts until a stop; 1 when poll() or accept() fails for good.
int accept_until_stopped(const Worker& w, Pool& pool, const StopState& state) {
    while (!state.stopping) {
        pollfd fds[2] = {{w.listen_fd, POLLIN, 0}, {w.wake_fd, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            w.context->log(std::string("poll failed: ") + std::strerror(errno));
            return 1;
        }
        if (state.stopping || fds[1].revents) break;
        if (!fds[0].revents) continue;
        auto request = std::make_unique<FCGX_Request>();
        FCGX_InitRequest(request.get(), w.listen_fd, FCGI_FAIL_ACCEPT_ON_INTR);
        if (const int rc = FCGX_Accept_r(request.get()); rc < 0) {
            if (state.stopping) break;
            if (rc == -EINTR || rc == -ECONNABORTED || rc == -EAGAIN) continue;
            w.context->log(std::string("accept failed: ") + std::strerror(-rc));
            return 1;
        }
        answer_or_queue(w, pool, request);
    }
    return 0;
}

// Starts the signal thread and the request threads, accepts until a stop,
// lets the threads finish what is queued (5 s at most). The exit code.
int serve_requests(const Worker& w, const sigset_t& stop_signals) {
    StopState& state = stop_state;
    start_signal_thread(stop_signals, w.wake_fd, ::pthread_self(), state);
    const medimg::Config& config = w.context->config;
    Pool pool(*w.router, *w.context, config.threads, config.max_queue);
    w.context->log("listening (" + std::to_string(config.threads) + " threads, data root " +
                   w.context->data_root->path().string() + ")");
    // Only this thread takes SIGUSR2 (every thread started above blocks it).
    sigset_t wake_signal;
    sigemptyset(&wake_signal);
    sigaddset(&wake_signal, SIGUSR2);
    pthread_sigmask(SIG_UNBLOCK, &wake_signal, nullptr);
    const int exit_code = accept_until_stopped(w, pool, state);
    state.accepting_done = true;
    pthread_sigmask(SIG_BLOCK, &wake_signal, nullptr);
    if (!pool.stop(std::chrono::seconds(5))) {
        w.context->log("requests still running 5 s after the stop signal; exiting anyway");
        std::fflush(stderr);
        std::_Exit(exit_code);
    }
    return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
    Arguments args;
    try {
        args = parse_arguments(argc, argv);
    } catch (const Error& e) {
        return usage_failure(e);
    }
    if (args.action == Arguments::Action::Help) {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (args.action == Arguments::Action::Routes) return print_routes();

    const sigset_t stop_signals = block_signals();
    Worker worker;
    try {
        worker = set_up(args);
    } catch (const Error& e) {
        return startup_failure(e.what(), e.exit_code());
    } catch (const std::exception& e) {
        return startup_failure(e.what(), medimg::error_info(ErrorCode::Internal).exit_code);
    }
    return serve_requests(worker, stop_signals);
}
