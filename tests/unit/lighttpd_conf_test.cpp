// `medimg serve`'s lighttpd configuration, rendered from the template it
// fills (lighttpd/medimg-serve.conf.in): every placeholder filled, each
// value where the template puts it, and a value that could change what
// lighttpd reads refused naming the setting.
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "error_checks.hpp"
#include "lighttpd_conf.hpp"

using medimg::ErrorCode;
using medimg::cli::LighttpdSettings;
using medimg::cli::render_lighttpd_conf;
using medimg::test::expect_error;

namespace {

std::string serve_template() {
    std::ifstream in(std::string(MEDIMG_SOURCE_DIR) + "/lighttpd/medimg-serve.conf.in");
    REQUIRE(in);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

LighttpdSettings example() {
    LighttpdSettings s;
    s.bind = "127.0.0.1";
    s.port = 18080;
    s.runtime_dir = "/run/user/1000/medimg-18080-abcdef";
    s.data_root = "/srv/scans";
    s.www_root = "/usr/share/medimg/www";
    s.lighttpd_dir = "/usr/share/medimg/lighttpd";
    s.cache_dir = "/var/cache/medimg";
    s.socket = "/run/user/1000/medimg-18080-abcdef/fcgi.sock";
    s.cors_origins = {"https://a.example", "https://b.example:8443"};
    s.worker_binary = "/usr/bin/medimg-fcgi";
    s.worker_threads = 3;
    s.workers = 2;
    s.worker_environment = {{"MEDIMG_DATA_ROOT", "/srv/scans"}, {"MEDIMG_THREADS", "3"}};
    return s;
}

// The text between the double quotes after `key` on the line that starts
// with it ("" and a failed check when there is no such line).
std::string quoted(const std::string& text, const std::string& key) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        const auto start = line.find_first_not_of(' ');
        if (start == std::string::npos || line.compare(start, key.size(), key) != 0) continue;
        const auto open = line.find('"', start + key.size());
        const auto close = line.rfind('"');
        if (open == std::string::npos || close == open) break;
        return line.substr(open + 1, close - open - 1);
    }
    FAIL_CHECK("no line starts with " << key);
    return "";
}

// The lines between `"bin-environment" => (` and the `),` that closes it.
std::string environment_block(const std::string& text) {
    const auto open = text.find("\"bin-environment\"");
    REQUIRE(open != std::string::npos);
    const auto from = text.find('\n', open) + 1;
    const auto to = text.find("\n  ),", from);
    REQUIRE(to != std::string::npos);
    return text.substr(from, to - from);
}

}  // namespace

TEST_CASE("serve conf: every placeholder of the template is filled", "[serve]") {
    const std::string templ = serve_template();
    const std::regex placeholder("@[A-Z_]+@");
    REQUIRE(std::regex_search(templ, placeholder));   // the template has some
    const std::string conf = render_lighttpd_conf(templ, example());
    std::smatch left;
    const bool any_left = std::regex_search(conf, left, placeholder);
    INFO("left over: " << (any_left ? left.str() : ""));
    CHECK_FALSE(any_left);
}

TEST_CASE("serve conf: each value where the template puts it", "[serve]") {
    const std::string conf = render_lighttpd_conf(serve_template(), example());
    CHECK(quoted(conf, "server.bind") == "127.0.0.1");
    CHECK(conf.find("\nserver.port = 18080\n") != std::string::npos);
    CHECK(quoted(conf, "server.document-root") == "/run/user/1000/medimg-18080-abcdef/empty");
    CHECK(quoted(conf, "accesslog.filename") == "/dev/stderr");
    CHECK(quoted(conf, "var.medimg_data_root") == "/srv/scans");
    CHECK(quoted(conf, "var.medimg_www_root") == "/usr/share/medimg/www");
    CHECK(quoted(conf, "var.medimg_lighttpd_dir") == "/usr/share/medimg/lighttpd");
    CHECK(quoted(conf, "var.medimg_cache_dir") == "/var/cache/medimg");
    CHECK(quoted(conf, "var.medimg_dir_listing") == "enable");
    CHECK(quoted(conf, "var.medimg_cors_origins") == "https://a.example https://b.example:8443");
    CHECK(quoted(conf, "\"socket\"") == "/run/user/1000/medimg-18080-abcdef/fcgi.sock");
    CHECK(quoted(conf, "\"bin-path\"") == "/usr/bin/medimg-fcgi --threads 3");
    CHECK(conf.find("\"max-procs\"          => 2,") != std::string::npos);
    CHECK(environment_block(conf) ==
          "    \"MEDIMG_DATA_ROOT\" => \"/srv/scans\",\n    \"MEDIMG_THREADS\" => \"3\",");
    CHECK(conf.find("include \"/usr/share/medimg/lighttpd/medimg-routes.conf\"") != std::string::npos);
}

TEST_CASE("serve conf: options that change the rendered text", "[serve]") {
    LighttpdSettings s = example();
    s.bind = "::1";
    s.access_log = false;
    s.dir_listing = false;
    s.cors_origins.clear();
    s.worker_config = "/etc/medimg/medimg.ini";
    s.worker_environment.clear();
    const std::string conf = render_lighttpd_conf(serve_template(), s);
    CHECK(quoted(conf, "server.bind") == "[::1]");   // lighttpd's IPv6 form
    CHECK(quoted(conf, "accesslog.filename") == "/dev/null");
    CHECK(quoted(conf, "var.medimg_dir_listing") == "disable");
    CHECK(quoted(conf, "var.medimg_cors_origins") == "");
    CHECK(quoted(conf, "\"bin-path\"") == "/usr/bin/medimg-fcgi --threads 3 --config /etc/medimg/medimg.ini");
    CHECK(environment_block(conf) == "");
}

TEST_CASE("serve conf: spaces and at signs in paths are kept verbatim", "[serve]") {
    // Inside double quotes a space is only a space; a value is never searched
    // for placeholders, so "@PORT@" in a folder name stays as it is.
    LighttpdSettings s = example();
    s.data_root = "/srv/my scans/@PORT@ and @x@";
    s.cache_dir = "/var/cache/a b";
    s.worker_environment = {{"MEDIMG_DATA_ROOT", "/srv/my scans/@PORT@ and @x@"}};
    const std::string conf = render_lighttpd_conf(serve_template(), s);
    CHECK(quoted(conf, "var.medimg_data_root") == "/srv/my scans/@PORT@ and @x@");
    CHECK(quoted(conf, "var.medimg_cache_dir") == "/var/cache/a b");
    CHECK(environment_block(conf) == "    \"MEDIMG_DATA_ROOT\" => \"/srv/my scans/@PORT@ and @x@\",");
    CHECK(conf.find("\nserver.port = 18080\n") != std::string::npos);
}

TEST_CASE("serve conf: a value lighttpd would read otherwise is refused naming the setting", "[serve]") {
    const std::string templ = serve_template();
    const auto refused = [&](LighttpdSettings s, const std::string& setting) {
        expect_error([&] { render_lighttpd_conf(templ, s); }, ErrorCode::BadParameter, setting);
    };
    const std::vector<std::string> bad_roots = {"/srv/a\"b", "/srv/a\\", "/srv/a\nserver.port = 1", "/srv/\x7f",
                                                "/srv/\"; include \"/etc/passwd"};
    for (const auto& bad : bad_roots) {
        INFO("data root " << bad);
        LighttpdSettings s = example();
        s.data_root = bad;
        refused(s, "data root: characters lighttpd's configuration cannot hold");
    }
    LighttpdSettings s = example();
    s.cache_dir = "/var/cache/\"x";
    refused(s, "paths.cache_dir");
    s = example();
    s.www_root = "/www\\";
    refused(s, "paths.www_root");
    s = example();
    s.cors_origins = {"https://a.example\""};
    refused(s, "server.cors_origins");
    s = example();
    s.worker_environment = {{"MEDIMG_LABEL_DICT", "/etc/\"dict.json"}};
    refused(s, "MEDIMG_LABEL_DICT");
    // bin-path is split at spaces: a space there would start another program.
    s = example();
    s.worker_binary = "/opt/my medimg/medimg-fcgi";
    refused(s, "medimg-fcgi: a path with spaces cannot start the workers");
    s = example();
    s.worker_config = "/etc/my medimg.ini";
    refused(s, "--config: a path with spaces cannot start the workers");
}

TEST_CASE("serve conf: placeholders are filled in one pass", "[serve]") {
    using medimg::cli::fill_placeholders;
    CHECK(fill_placeholders("a @X@ b @Y_Z@ @X@", {{"X", "1"}, {"Y_Z", "@X@"}}) == "a 1 b @X@ 1");
    // Not placeholders: lower case, empty, a lone at sign.
    CHECK(fill_placeholders("mail root@example.com @@ @lower@ x@", {}) == "mail root@example.com @@ @lower@ x@");
    expect_error([] { fill_placeholders("server.port = @PROT@", {{"PORT", "1"}}); }, ErrorCode::Internal,
                 "unknown placeholder @PROT@");
}
