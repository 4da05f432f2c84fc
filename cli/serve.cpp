// `medimg serve`: the embedded default server, in three steps.
// resolve_settings() turns the command line and the configuration into what
// the server needs, refusing bad values before anything is started;
// render_lighttpd_conf() (lighttpd_conf.hpp) fills
// lighttpd/medimg-serve.conf.in with it in a private runtime directory, and
// `lighttpd -tt` checks the result; supervise() (supervisor.hpp) runs
// `lighttpd -D` in the foreground with a medimg-fcgi worker pool (lighttpd's
// bin-path spawning) and on SIGINT/SIGTERM stops lighttpd and its workers.
// Every failure is a medimg::Error, reported once by run_serve()
// (report_error, the error table's exit code) after the runtime directory is
// removed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"
#include "config.hpp"
#include "error.hpp"
#include "lighttpd_conf.hpp"
#include "supervisor.hpp"

namespace medimg::cli {
namespace {

namespace stdfs = std::filesystem;

constexpr const char* kUsage =
    "usage: medimg serve [--host HOST] [--port PORT] [--disable-dir-listing]\n"
    "                    [--data-root DIR] [--workers N] [--threads N]\n"
    "                    [--config FILE] [--cache-dir DIR] [--cors-origins LIST] [--quiet]\n"
    "\n"
    "Serves DATA_ROOT with lighttpd and a medimg-fcgi worker pool:\n"
    "  /output/...                 the data root (static: Range, ETag, listings)\n"
    "  /filtered-scans/...         filtered label maps\n"
    "  /output/.../labels, /info   label and header JSON\n"
    "  /viewer.html?patient=ID     the NiiVue viewer\n"
    "A data root without patient folders gets a generated demo patient\n"
    "(medimg demo; MEDIMG_DEMO_SIZE=NXxNYxNZ overrides its 512x512x400).\n"
    "\n"
    "options (defaults from the environment, .env, the ini file, then built-in):\n"
    "  --host HOST             bind exactly this address (default localhost,\n"
    "                          which is 127.0.0.1 whatever the resolver says)\n"
    "  --port PORT             TCP port (default 8888; or IMAGE_SERVER=http://HOST:PORT)\n"
    "  --disable-dir-listing   no directory listings under /output/\n"
    "  --data-root DIR         per-patient tree (default ./output; or OUTPUT_FOLDER)\n"
    "  --workers N             worker processes (default 2)\n"
    "  --threads N             request threads per worker (default 4)\n"
    "  --config FILE           medimg.ini (default: $MEDIMG_CONFIG, else none)\n"
    "  --cache-dir DIR         filtered results (default: inside the runtime directory)\n"
    "  --cors-origins LIST     origins other pages may read from (space or comma\n"
    "                          separated), or \"*\" (any, without credentials);\n"
    "                          default none: no CORS headers\n"
    "  --quiet                 no access log on stderr\n";

const std::vector<OptionSpec> kOptions = {
    {"--host", true},      {"--port", true},      {"--disable-dir-listing", false},
    {"--data-root", true}, {"--workers", true},   {"--threads", true},
    {"--config", true},    {"--cache-dir", true}, {"--cors-origins", true},
    {"--quiet", false}};

// ---------------------------------------------------------------------------
// Configuration resolution

// What serve runs with: the effective configuration, and where everything it
// starts is.
struct ServeSettings {
    Config config;
    std::optional<stdfs::path> ini_file;   // passed on to the workers (--config)
    stdfs::path exe;                       // this program, for `medimg demo`
    stdfs::path worker_binary;             // medimg-fcgi
    stdfs::path lighttpd;
    stdfs::path lighttpd_dir;              // medimg-routes.conf, the .lua files
    stdfs::path template_file;             // medimg-serve.conf.in
    std::string bind;                   // the numeric address lighttpd binds
    bool quiet = false;
};

// "localhost" and names under ".localhost" (any case, optional final dot):
// RFC 6761 §6.3 reserves them for loopback, to be answered without asking the
// resolver (a minimal root may have no /etc/hosts; DNS may say anything).
bool is_localhost_name(std::string host) {
    if (!host.empty() && host.back() == '.') host.pop_back();
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    constexpr std::string_view name = "localhost";
    return host == name || (host.size() > name.size() + 1 && host.ends_with(".localhost"));
}

// The numeric address lighttpd binds: `host` resolved (localhost names →
// 127.0.0.1), IPv4 preferred. Only that address, never every interface.
std::string resolve_host(const std::string& host) {
    if (is_localhost_name(host)) return "127.0.0.1";
    for (int family : {AF_INET, AF_INET6}) {
        addrinfo hints{};
        hints.ai_family = family;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) continue;
        char text[INET6_ADDRSTRLEN] = {};
        const void* addr =
            family == AF_INET
                ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr)
                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr);
        ::inet_ntop(family, addr, text, sizeof text);
        ::freeaddrinfo(res);
        return text;
    }
    throw Error(ErrorCode::BadParameter, "server.host: cannot resolve " + host);
}

bool is_any_address(const std::string& numeric) { return numeric == "0.0.0.0" || numeric == "::"; }

// Flags over the environment (MEDIMG_*, IMAGE_SERVER, OUTPUT_FOLDER) over
// .env over the ini over built-in defaults; `ini_file` is set to the ini
// read (--config, else $MEDIMG_CONFIG), which the workers read too.
Config load_serve_config(const ParsedArgs& parsed, const DataDirs& dirs,
                         std::optional<stdfs::path>& ini_file) {
    ConfigSources sources;
    if (auto v = parsed.value("--config")) sources.ini_file = stdfs::absolute(*v);
    sources.environment = environment_map();
    std::error_code ec;
    sources.working_dir = stdfs::current_path(ec);
    sources.dotenv_dir = sources.working_dir;
    const std::map<std::string, std::string> flag_keys = {
        {"--host", "server.host"},          {"--port", "server.port"},
        {"--data-root", "paths.data_root"}, {"--workers", "server.workers"},
        {"--threads", "server.threads"},    {"--cache-dir", "paths.cache_dir"},
        {"--cors-origins", "server.cors_origins"}};
    for (const auto& [flag, key] : flag_keys)
        if (auto v = parsed.value(flag)) sources.flags[key] = *v;
    if (parsed.has("--disable-dir-listing")) sources.flags["server.dir_listing"] = "false";
    sources.conf_dir = dirs.conf_dir;
    sources.share_dir = dirs.share_dir;
    Config config = load_config(sources);
    if (!sources.ini_file) {
        const auto named = sources.environment.find("MEDIMG_CONFIG");
        if (named != sources.environment.end() && !named->second.empty())
            sources.ini_file = stdfs::absolute(named->second);
    }
    ini_file = sources.ini_file;
    if (config.port < 1 || config.port > 65535)
        throw Error(ErrorCode::BadParameter, "server.port: out of range: " + std::to_string(config.port));
    if (config.workers < 1 || config.workers > 256)
        throw Error(ErrorCode::BadParameter,
                    "server.workers: must be 1..256, got " + std::to_string(config.workers));
    return config;
}

// The files and programs serve runs; throws Error(NotFound) naming the one
// missing.
void find_installation(ServeSettings& s, const DataDirs& dirs) {
    std::error_code ec;
    s.lighttpd_dir = dirs.share_dir / "lighttpd";
    s.template_file = s.lighttpd_dir / "medimg-serve.conf.in";
    if (!stdfs::exists(s.template_file, ec))
        throw Error(ErrorCode::NotFound, "lighttpd template not found: " + s.template_file.string());
    // lighttpd/cors.lua reads the CORS header values from this one list
    // (docs/SECURITY.md, "CORS"): refuse to start rather than fail each answer.
    const stdfs::path cors_headers = dirs.share_dir / "apache" / "cors-headers.conf";
    if (!s.config.cors_origins.empty() && !stdfs::exists(cors_headers, ec))
        throw Error(ErrorCode::NotFound, "CORS header list not found: " + cors_headers.string());
    // Build tree: {build}/cli/medimg and {build}/fcgi/medimg-fcgi; installed:
    // both in {prefix}/bin.
    s.worker_binary = s.exe.parent_path().parent_path() / "fcgi" / "medimg-fcgi";
    if (::access(s.worker_binary.c_str(), X_OK) != 0) s.worker_binary = s.exe.parent_path() / "medimg-fcgi";
    if (::access(s.worker_binary.c_str(), X_OK) != 0)
        throw Error(ErrorCode::NotFound, "medimg-fcgi not found next to " + s.exe.string());
    s.lighttpd = find_program("lighttpd", {"/usr/sbin/lighttpd", "/usr/local/sbin/lighttpd"});
    if (s.lighttpd.empty())
        throw Error(ErrorCode::NotFound, "lighttpd not found in PATH or /usr/sbin (apt-get install lighttpd)");
}

// The data root, absolute and canonical: created if missing.
stdfs::path prepare_data_root(const stdfs::path& configured) {
    std::error_code ec;
    stdfs::path data_root = stdfs::absolute(configured).lexically_normal();
    if (data_root.has_parent_path() && data_root.filename().empty()) data_root = data_root.parent_path();
    stdfs::create_directories(data_root, ec);
    if (!stdfs::is_directory(data_root, ec))
        throw Error(ErrorCode::NotFound, "data root is not a directory: " + data_root.string());
    return stdfs::canonical(data_root);
}

ServeSettings resolve_settings(const ParsedArgs& parsed) {
    ServeSettings s;
    s.exe = current_executable();
    const DataDirs dirs = find_data_dirs(s.exe);
    s.config = load_serve_config(parsed, dirs, s.ini_file);
    find_installation(s, dirs);
    s.config.data_root = prepare_data_root(s.config.data_root);
    s.bind = resolve_host(s.config.host);
    if (is_any_address(s.bind))
        std::fprintf(stderr, "medimg serve: warning: %s binds every interface\n", s.config.host.c_str());
    s.quiet = parsed.has("--quiet");
    return s;
}

// Every key of the schema as MEDIMG_* variables (config_environment()), so
// the workers run with exactly the configuration resolved here (lighttpd
// starts them in the binary's directory, where the caller's `.env` is not),
// except the cache directory and the sendfile header, which serve decides.
// The worker sends no CORS headers whatever MEDIMG_CORS_ORIGINS says:
// lighttpd owns CORS (CORS_ORIGINS in the template; docs/SECURITY.md, "CORS").
std::vector<std::pair<std::string, std::string>> worker_environment(const Config& c,
                                                                    const stdfs::path& cache_dir) {
    Config worker = c;
    worker.cache_dir = cache_dir;
    // lighttpd sends cached results itself (Range, conditional GET).
    worker.sendfile_header = c.cache_enabled ? SendfileHeader::XSendfile : SendfileHeader::None;
    return config_environment(worker);
}

// ---------------------------------------------------------------------------
// The runtime directory

// The private runtime directory, mode 0700: $XDG_RUNTIME_DIR/medimg-{port}-XXXXXX,
// else /tmp/medimg-{uid}-{port}-XXXXXX. Several instances never share one.
stdfs::path make_runtime_dir(int port) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    std::error_code ec;
    std::string pattern;
    if (xdg && *xdg && stdfs::is_directory(xdg, ec) && ::access(xdg, W_OK) == 0)
        pattern = std::string(xdg) + "/medimg-" + std::to_string(port) + "-XXXXXX";
    else
        pattern = "/tmp/medimg-" + std::to_string(::getuid()) + "-" + std::to_string(port) + "-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
        throw Error(ErrorCode::Io,
                    "cannot create a runtime directory " + pattern + ": " + std::strerror(errno));
    ::chmod(buf.data(), 0700);
    return stdfs::path(buf.data());
}

// Removed, with all it holds, when serve returns or fails.
struct RuntimeDir {
    stdfs::path path;
    ~RuntimeDir() {
        if (path.empty()) return;
        std::error_code ec;
        stdfs::remove_all(path, ec);
    }
};

// The results cache: inside the runtime directory unless configured.
stdfs::path prepare_cache_dir(const Config& config, const stdfs::path& runtime) {
    std::error_code ec;
    const auto origin = config.origin.find("paths.cache_dir");
    const bool default_cache = origin == config.origin.end() || origin->second == "default";
    stdfs::path cache_dir = default_cache ? runtime / "cache" : stdfs::absolute(config.cache_dir);
    // Private whatever the umask (docs/SECURITY.md): the worker refuses a
    // cache directory others may write and sets 0700 on the rest.
    if (!stdfs::is_directory(cache_dir, ec)) {
        stdfs::create_directories(cache_dir.parent_path(), ec);
        ::mkdir(cache_dir.c_str(), 0700);
    }
    if (!stdfs::is_directory(cache_dir, ec))
        throw Error(ErrorCode::Io, "cannot create cache directory " + cache_dir.string());
    return stdfs::canonical(cache_dir);
}

// What the lighttpd configuration holds, with the runtime directory's
// contents (the empty document root, the cache) in place.
LighttpdSettings prepare_runtime(const ServeSettings& s, const stdfs::path& runtime) {
    stdfs::create_directory(runtime / "empty");
    LighttpdSettings conf;
    conf.bind = s.bind;
    conf.port = s.config.port;
    conf.runtime_dir = runtime;
    conf.data_root = s.config.data_root;
    conf.www_root = stdfs::absolute(s.config.www_root).lexically_normal();
    conf.lighttpd_dir = s.lighttpd_dir;
    conf.cache_dir = prepare_cache_dir(s.config, runtime);
    // lighttpd appends "-0" … "-N" to the socket name.
    conf.socket = runtime / "fcgi.sock";
    if (conf.socket.string().size() + 5 > sizeof(sockaddr_un{}.sun_path))
        throw Error(ErrorCode::BadParameter,
                    "runtime directory path too long for a socket: " + runtime.string());
    conf.access_log = !s.quiet;
    conf.dir_listing = s.config.dir_listing;
    conf.cors_origins = s.config.cors_origins;
    conf.worker_binary = s.worker_binary;
    conf.worker_threads = s.config.threads;
    conf.worker_config = s.ini_file;
    conf.workers = s.config.workers;
    conf.worker_environment = worker_environment(s.config, conf.cache_dir);
    return conf;
}

std::string read_text(const stdfs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(ErrorCode::NotFound, "cannot read " + file.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_text(const stdfs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw Error(ErrorCode::Io, "cannot write " + file.string());
}

// ---------------------------------------------------------------------------
// Before serving

bool has_patient_folders(const stdfs::path& root) {
    std::error_code ec;
    for (const auto& entry : stdfs::directory_iterator(root, ec)) {
        const std::string name = entry.path().filename().string();
        if (!name.empty() && name[0] != '.' && entry.is_directory(ec)) return true;
    }
    return false;
}

// A data root without patient folders gets `medimg demo`'s patient.
void generate_demo(const ServeSettings& s) {
    const stdfs::path& data_root = s.config.data_root;
    std::vector<std::string> demo_args = {s.exe.string(), "demo", data_root.string()};
    if (const char* size = std::getenv("MEDIMG_DEMO_SIZE"); size && *size) {
        demo_args.push_back("--size");
        demo_args.push_back(size);
    }
    std::string shown;
    for (std::size_t i = 1; i < demo_args.size(); ++i) shown += " " + demo_args[i];
    std::printf("No patient folders in %s: generating a demo patient (medimg%s)...\n",
                data_root.c_str(), shown.c_str());
    std::fflush(stdout);
    if (const int rc = run_to_end(demo_args); rc != 0)
        throw Error(ErrorCode::Io, "medimg demo failed (exit code " + std::to_string(rc) + ")");
}

// `lighttpd -tt`: the rendered configuration is checked before serving. A
// refusal is a template or installation fault (the values were checked when
// rendered), so Error(Internal) with lighttpd's words.
void check_conf(const stdfs::path& lighttpd, const stdfs::path& conf_file, const stdfs::path& check_log) {
    const int fd = ::open(check_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int rc = run_to_end({lighttpd.string(), "-tt", "-f", conf_file.string()}, fd);
    if (fd >= 0) ::close(fd);
    if (rc == 0) return;
    std::string said = read_text(check_log);
    while (!said.empty() && said.back() == '\n') said.pop_back();
    throw Error(ErrorCode::Internal, "lighttpd rejects the configuration " + conf_file.string() + ":\n" + said);
}

void announce(const ServeSettings& s, const stdfs::path& cache_dir) {
    const std::string host = s.bind.find(':') != std::string::npos ? "[" + s.bind + "]" : s.bind;
    const std::string url = "http://" + host + ":" + std::to_string(s.config.port) + "/";
    std::printf("Serving %s on %s\n", s.config.data_root.c_str(), url.c_str());
    std::printf("  browse  %soutput/%s\n", url.c_str(),
                s.config.dir_listing ? "" : "  (directory listings disabled)");
    std::printf("  viewer  %sviewer.html\n", url.c_str());
    std::printf("  workers %d x %d threads, cache %s\n", s.config.workers, s.config.threads,
                cache_dir.c_str());
    std::printf("Press Ctrl-C to stop.\n");
    std::fflush(stdout);
}

// ---------------------------------------------------------------------------

int serve(const Args& args) {
    const ParsedArgs parsed = parse_args(args, kOptions);
    if (print_help(parsed, kUsage)) return 0;
    if (!parsed.positional.empty())
        throw Error(ErrorCode::BadParameter, "unexpected argument '" + parsed.positional[0] + "'");
    const ServeSettings settings = resolve_settings(parsed);

    // A closed stdout (`medimg serve | head`) must not end us before
    // lighttpd and the workers are stopped.
    std::signal(SIGPIPE, SIG_IGN);
    const StopSignals signals;
    const RuntimeDir runtime{make_runtime_dir(settings.config.port)};
    const LighttpdSettings conf = prepare_runtime(settings, runtime.path);
    const stdfs::path conf_file = runtime.path / "lighttpd.conf";
    write_text(conf_file, render_lighttpd_conf(read_text(settings.template_file), conf));

    check_conf(settings.lighttpd, conf_file, runtime.path / "check.log");
    if (!has_patient_folders(settings.config.data_root)) generate_demo(settings);

    Supervised server;
    server.lighttpd = settings.lighttpd;
    server.conf_file = conf_file;
    server.bind = settings.bind;
    server.port = settings.config.port;
    server.on_ready = [&] { announce(settings, conf.cache_dir); };
    supervise(server, signals);
    return 0;
}

}  // namespace

int run_serve(const Args& args) {
    return run_guarded("serve", [&] { return serve(args); });
}

}  // namespace medimg::cli
