// Configuration: precedence of flags, environment, .env, ini and defaults;
// every bad value stops with an error naming the key.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "catch.hpp"
#include "config.hpp"
#include "labels/intensity.hpp"
#include "error.hpp"

namespace stdfs = std::filesystem;
using medimg::Config;
using medimg::ConfigSources;
using medimg::Error;
using medimg::ErrorCode;

namespace {

struct ConfigDir {
    stdfs::path dir;
    ConfigDir() {
        std::string templ = (stdfs::temp_directory_path() / "medimg-config-test-XXXXXX").string();
        dir = ::mkdtemp(templ.data());
    }
    ~ConfigDir() {
        std::error_code ec;
        stdfs::remove_all(dir, ec);
    }
    stdfs::path write(const std::string& name, const std::string& text) const {
        std::ofstream(dir / name) << text;
        return dir / name;
    }
};

ErrorCode code_of(const ConfigSources& src) {
    try {
        medimg::load_config(src);
    } catch (const Error& e) {
        INFO(e.what());
        return e.code();
    }
    return ErrorCode::Internal;   // nothing thrown: the test fails on this
}

}  // namespace

TEST_CASE("config: defaults without any source", "[config]") {
    ConfigSources src;
    Config c = medimg::load_config(src);
    CHECK(c.host == "localhost");
    CHECK(c.port == 8888);
    CHECK(c.gzip_level == 1);
    CHECK(c.cache_enabled);
    CHECK(c.sendfile_header == medimg::SendfileHeader::None);
    CHECK(c.cors_origins.empty());   // no CORS unless origins are named
    CHECK(!c.cache_dir.empty());
    CHECK(c.origin.at("server.port") == "default");
    CHECK(c.send_timeout == std::chrono::seconds(30));
}

TEST_CASE("config: [limits] send_timeout in seconds, decimals allowed", "[config]") {
    ConfigDir d;
    ConfigSources src;
    src.ini_file = d.write("t.ini", "[limits]\nsend_timeout = 2.5\n");
    CHECK(medimg::load_config(src).send_timeout == std::chrono::milliseconds(2500));
    src.environment = {{"MEDIMG_SEND_TIMEOUT", "0"}};
    Config c = medimg::load_config(src);
    CHECK(c.send_timeout == std::chrono::milliseconds(0));
    CHECK(c.origin.at("limits.send_timeout") == "environment MEDIMG_SEND_TIMEOUT");
}

TEST_CASE("config: precedence flags > environment > .env > ini > defaults", "[config]") {
    ConfigDir d;
    auto ini = d.write("medimg.ini",
                       "[paths]\ndata_root = data\n[server]\nport = 1001\nthreads = 3\n"
                       "workers = 5\n[filter]\ngzip_level = 4\n");
    d.write(".env", "MEDIMG_PORT=1002\nMEDIMG_THREADS=6\n# comment\nOUTPUT_FOLDER=\"dotenv-data\"\n");
    ConfigSources src;
    src.ini_file = ini;
    src.dotenv_dir = d.dir;
    src.working_dir = d.dir;

    SECTION("ini alone; relative paths against the ini's directory") {
        src.dotenv_dir.reset();
        Config c = medimg::load_config(src);
        CHECK(c.port == 1001);
        CHECK(c.threads == 3);
        CHECK(c.gzip_level == 4);
        CHECK(c.data_root == (d.dir / "data").lexically_normal());
    }
    SECTION(".env over ini") {
        Config c = medimg::load_config(src);
        CHECK(c.port == 1002);
        CHECK(c.threads == 6);
        CHECK(c.workers == 5);
        CHECK(c.data_root == (d.dir / "dotenv-data").lexically_normal());
    }
    SECTION("environment over .env; MEDIMG_ names over the old ones") {
        src.environment = {{"MEDIMG_PORT", "1003"},
                           {"OUTPUT_FOLDER", "/srv/old"},
                           {"IMAGE_SERVER", "http://127.0.0.1:1004"}};
        Config c = medimg::load_config(src);
        CHECK(c.port == 1003);   // MEDIMG_PORT beats IMAGE_SERVER
        CHECK(c.host == "127.0.0.1");
        CHECK(c.data_root == "/srv/old");
        src.environment["MEDIMG_DATA_ROOT"] = "/srv/new";
        CHECK(medimg::load_config(src).data_root == "/srv/new");
    }
    SECTION("flags over everything") {
        src.environment = {{"MEDIMG_THREADS", "7"}};
        src.flags = {{"server.threads", "8"}};
        Config c = medimg::load_config(src);
        CHECK(c.threads == 8);
        CHECK(c.origin.at("server.threads") == "flag");
    }
    SECTION("MEDIMG_CONFIG names the ini when none is given") {
        src.ini_file.reset();
        src.dotenv_dir.reset();
        src.environment = {{"MEDIMG_CONFIG", ini.string()}};
        CHECK(medimg::load_config(src).port == 1001);
    }
}

TEST_CASE("config: bad values stop with BadParameter naming the key", "[config]") {
    auto [section, key, value] = GENERATE(table<std::string, std::string, std::string>({
        {"server", "port", "0"},
        {"server", "port", "65536"},
        {"server", "port", "80x"},
        {"server", "port", ""},
        {"server", "threads", "-1"},
        {"server", "dir_listing", "maybe"},
        {"server", "cors_origins", "http://a.example, *"},
        {"server", "cors_origins", "a.example"},
        {"server", "cors_origins", "http://a.example/path"},
        {"filter", "gzip_level", "0"},
        {"filter", "gzip_level", "10"},
        {"cache", "max_bytes", "2X"},
        {"cache", "max_bytes", "99999999999999999999"},
        {"cache", "max_bytes", "-5"},
        {"cache", "sendfile_header", "X-Sendfiles"},
        {"cache", "enabled", "2"},
        {"limits", "max_voxels", "0"},
        {"limits", "max_label_ids", "0"},
        {"limits", "max_intensity_bins", "1023"},
        {"limits", "max_intensity_bins", "134217729"},
        {"limits", "max_intensity_bins", "2M"},
        {"limits", "max_queue", "-3"},
        {"limits", "request_timeout", "-1"},
        {"limits", "request_timeout", "1s"},
        {"limits", "request_timeout", "nan"},
        {"limits", "send_timeout", "-0.5"},
        {"limits", "send_timeout", "30s"},
        {"limits", "send_timeout", "86401"},
        {"limits", "send_timeout", ""},
        {"server", "colour", "blue"},     // unknown key in a known section
        {"extras", "thing", "1"},         // unknown section
    }));
    INFO("[" << section << "] " << key << " = " << value);
    ConfigDir d;
    ConfigSources src;
    src.ini_file = d.write("bad.ini", "[" + section + "]\n" + key + " = " + value + "\n");
    try {
        medimg::load_config(src);
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::BadParameter);
        CHECK(std::string(e.what()).find(key) != std::string::npos);
    }
}

TEST_CASE("config: bad environment values are errors too", "[config]") {
    ConfigSources src;
    src.environment = {{"MEDIMG_THREADS", "many"}};
    CHECK(code_of(src) == ErrorCode::BadParameter);
    src.environment = {{"IMAGE_SERVER", "http://:99"}};
    CHECK(code_of(src) == ErrorCode::BadParameter);
    src.environment = {{"MEDIMG_CONFIG", "/nonexistent/medimg.ini"}};
    CHECK(code_of(src) == ErrorCode::NotFound);
}

TEST_CASE("config: sizes with suffixes", "[config]") {
    auto [text, expected] = GENERATE(table<std::string, std::uint64_t>({
        {"0", 0},
        {"1048576", 1048576},
        {"512K", 512ull << 10},
        {"64M", 64ull << 20},
        {"2G", 2ull << 30},
        {"2GiB", 2ull << 30},
        {"1 T", 1ull << 40},
        {"3gb", 3ull << 30},
    }));
    INFO(text);
    auto v = medimg::parse_size(text);
    REQUIRE(v);
    CHECK(*v == expected);
}

TEST_CASE("config: malformed sizes", "[config]") {
    auto text = GENERATE(as<std::string>{}, "", "G", "1.5G", "12Q", "1GG", "-1", "16777216T");
    INFO(text);
    CHECK_FALSE(medimg::parse_size(text));
}

TEST_CASE("config: sample conf/medimg.ini loads", "[config]") {
    ConfigSources src;
    src.ini_file = stdfs::path(MEDIMG_SOURCE_DIR) / "conf" / "medimg.ini";
    Config c = medimg::load_config(src);
    CHECK(c.gzip_level == 1);
    CHECK(c.send_timeout == std::chrono::seconds(30));
}

TEST_CASE("config: data directories found from a build-tree executable", "[config]") {
    auto dirs = medimg::find_data_dirs(stdfs::path(MEDIMG_BINARY_DIR) / "fcgi" / "medimg-fcgi");
    CHECK(stdfs::exists(dirs.conf_dir / "vista3d_label_dict.json"));
    auto installed = medimg::find_data_dirs("/usr/bin/medimg-fcgi");
    CHECK(installed.conf_dir == "/etc/medimg");
    CHECK(installed.share_dir == "/usr/share/medimg");
}

TEST_CASE("config: data directories of a source tree and of an install prefix", "[config]") {
    ConfigDir d;
    stdfs::create_directories(d.dir / "tree" / "conf");
    stdfs::create_directories(d.dir / "tree" / "out" / "bin");
    d.write("tree/conf/vista3d_label_dict.json", "{}");
    // An ancestor holding the label tables is a source tree.
    auto tree = medimg::find_data_dirs(d.dir / "tree" / "out" / "bin" / "medimg");
    CHECK(tree.conf_dir == d.dir / "tree" / "conf");
    CHECK(tree.share_dir == d.dir / "tree");
    // Without one, the executable's folder is {prefix}/bin.
    auto prefix = medimg::find_data_dirs(d.dir / "opt" / "bin" / "medimg");
    CHECK(prefix.conf_dir == d.dir / "opt" / "etc" / "medimg");
    CHECK(prefix.share_dir == d.dir / "opt" / "share" / "medimg");
}

// --- the schema ----------------------------------------------------------------

TEST_CASE("config: every key is declared once, with an env name after it", "[config][schema]") {
    std::set<std::string> keys, envs;
    for (const auto& k : medimg::config_schema()) {
        INFO(k.section << "." << k.name);
        CHECK(keys.insert(std::string(k.section) + "." + std::string(k.name)).second);
        CHECK(envs.insert(std::string(k.env)).second);
        CHECK(k.env.starts_with("MEDIMG_"));
        CHECK_FALSE(k.help.empty());
        if (k.type == medimg::KeyType::Integer || k.type == medimg::KeyType::Size ||
            k.type == medimg::KeyType::Seconds)
            CHECK(k.min <= k.max);
    }
    CHECK(keys.size() == medimg::config_keys().size());
}

TEST_CASE("config: defaults come from the schema, and every value reads back", "[config][schema]") {
    const Config defaults;
    for (const auto& k : medimg::config_schema()) {
        INFO(k.section << "." << k.name);
        // The default text gives the default value ...
        Config c;
        medimg::set_config_value(c, k.section, k.name, k.default_value, {});
        CHECK(medimg::config_value_text(c, k) == medimg::config_value_text(defaults, k));
        // ... and the rendered text of any value reads back to it.
        Config d;
        medimg::set_config_value(d, k.section, k.name, medimg::config_value_text(defaults, k), {});
        CHECK(medimg::config_value_text(d, k) == medimg::config_value_text(defaults, k));
        // Limits are enforced, one past each end.
        if (k.type == medimg::KeyType::Integer) {
            for (auto v : {k.min - 1, k.max + 1}) {
                Config e;
                CHECK_THROWS_AS(
                    medimg::set_config_value(e, k.section, k.name, std::to_string(v), {}), Error);
            }
        }
    }
    CHECK(defaults.max_voxels == 536870912u);
    CHECK(defaults.max_label_ids == 100000u);
    CHECK(defaults.max_intensity_bins == medimg::labels::kMaxHistogramBins);
    CHECK(defaults.gzip_level == 1);
}

TEST_CASE("config: config_environment() reproduces a configuration in another process",
          "[config][schema]") {
    ConfigDir d;
    ConfigSources src;
    src.ini_file = d.write("a.ini",
                           "[server]\nthreads = 7\ncors_origins = https://a.example https://b.example\n"
                           "[cache]\nmax_bytes = 3M\nsendfile_header = X-Accel-Redirect\n"
                           "[limits]\nrequest_timeout = 2.5\nmax_label_ids = 12\n"
                           "[paths]\nlabel_dict = /x/dict.json\n");
    const Config original = medimg::load_config(src);
    ConfigSources again;
    for (const auto& [name, value] : medimg::config_environment(original))
        again.environment[name] = value;
    const Config copy = medimg::load_config(again);
    for (const auto& k : medimg::config_schema()) {
        INFO(k.section << "." << k.name);
        CHECK(medimg::config_value_text(copy, k) == medimg::config_value_text(original, k));
    }
    CHECK(copy.threads == 7);
    CHECK(copy.cache_max_bytes == 3u << 20);
    CHECK(copy.request_timeout.count() == 2500);
    CHECK(copy.sendfile_header == medimg::SendfileHeader::XAccelRedirect);
}

// conf/medimg.ini documents every key of the schema, in its section, once,
// set to the default value or commented out as an example (paths excepted:
// they resolve against the file), and names nothing else.
TEST_CASE("config: conf/medimg.ini matches the schema", "[config][schema]") {
    std::ifstream in(stdfs::path(MEDIMG_SOURCE_DIR) / "conf" / "medimg.ini");
    REQUIRE(in);
    std::map<std::string, std::string> found;   // "section.key" -> value
    std::set<std::string> commented;            // ";key = example"
    std::string line, section;
    const std::regex section_re(R"(^\[(\w+)\]\s*$)");
    const std::regex key_re(R"(^;?([a-z_]+)\s*=\s*(.*?)\s*$)");   // ";key = x": an example
    std::smatch m;
    while (std::getline(in, line)) {
        if (std::regex_match(line, m, section_re)) {
            section = m[1];
        } else if (std::regex_match(line, m, key_re)) {
            const std::string key = section + "." + std::string(m[1]);
            INFO(line);
            CHECK(found.emplace(key, m[2]).second);
            if (line[0] == ';') commented.insert(key);
        }
    }
    for (const auto& k : medimg::config_schema()) {
        const std::string key = std::string(k.section) + "." + std::string(k.name);
        INFO(key);
        REQUIRE(found.count(key));
        if (k.type != medimg::KeyType::Path && !commented.count(key)) {
            Config from_file, from_schema;
            medimg::set_config_value(from_file, k.section, k.name, found[key], {});
            CHECK(medimg::config_value_text(from_file, k) ==
                  medimg::config_value_text(from_schema, k));
        }
        found.erase(key);
    }
    CHECK(found.empty());   // keys the schema does not know
}

TEST_CASE("config: the default cache directory is private to the user", "[config][cache]") {
    using medimg::default_cache_dir;
    ConfigDir d;
    const auto tmp_default = stdfs::temp_directory_path() / ("medimg-cache-" + std::to_string(::geteuid()));
    SECTION("systemd CacheDirectory= (first entry) comes first") {
        CHECK(default_cache_dir({{"CACHE_DIRECTORY", "/var/cache/medimg:/var/cache/other"},
                                 {"XDG_CACHE_HOME", "/x"}}) == "/var/cache/medimg");
    }
    SECTION("then $XDG_CACHE_HOME, when absolute") {
        CHECK(default_cache_dir({{"XDG_CACHE_HOME", "/x/cache"}}) == "/x/cache/medimg");
        CHECK(default_cache_dir({{"XDG_CACHE_HOME", "relative"}, {"HOME", "/"}}) == tmp_default);
    }
    SECTION("then ~/.cache when the home is ours") {
        CHECK(default_cache_dir({{"HOME", d.dir.string()}}) == d.dir / ".cache" / "medimg");
    }
    SECTION("a home of another user (a service's /var/www, root's /) is not used") {
        if (::geteuid() != 0) CHECK(default_cache_dir({{"HOME", "/usr"}}) == tmp_default);
        CHECK(default_cache_dir({{"HOME", "/"}}) == tmp_default);
        CHECK(default_cache_dir({}) == tmp_default);
    }
    SECTION("load_config uses it and [cache] group is read") {
        ConfigSources src;
        src.environment = {{"XDG_CACHE_HOME", "/x"}, {"MEDIMG_CACHE_GROUP", "www-data"}};
        Config c = medimg::load_config(src);
        CHECK(c.cache_dir == "/x/medimg");
        CHECK(c.cache_group == "www-data");
        src.environment = {{"MEDIMG_CACHE_GROUP", "www data"}};
        CHECK_THROWS_AS(medimg::load_config(src), Error);
    }
}
