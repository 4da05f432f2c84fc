// Configuration: precedence of flags, environment, .env, ini and defaults;
// every bad value stops with an error naming the key.
#include <filesystem>
#include <fstream>
#include <string>

#include "catch.hpp"
#include "config.hpp"
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
