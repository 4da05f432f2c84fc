// The worker's routes through the in-memory transport, on real files in a
// temporary data root: answers, every error class of README.md with its
// JSON body, conditional GET, HEAD, the results cache and CORS.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "context.hpp"
#include "error.hpp"
#include "nifti_builder.hpp"
#include "router.hpp"
#include "routes/routes.hpp"
#include "transport.hpp"

namespace stdfs = std::filesystem;
using medimg::Config;
using medimg::fcgi::Context;
using medimg::fcgi::MemoryTransport;
using medimg::fcgi::Router;
using namespace medimg::test;

namespace {

struct Answer {
    int status = 0;
    std::map<std::string, std::string> headers;   // lower-case names
    std::string body;
    std::string raw_head;

    bool has(const std::string& name) const { return headers.count(name) > 0; }
    std::string operator[](const std::string& name) const {
        auto it = headers.find(name);
        return it == headers.end() ? std::string() : it->second;
    }
    nlohmann::json json() const { return nlohmann::json::parse(body); }
};

Answer parse_answer(const std::string& out) {
    Answer a;
    auto end = out.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    a.raw_head = out.substr(0, end);
    a.body = out.substr(end + 4);
    std::size_t pos = 0;
    while (pos < end) {
        auto eol = out.find("\r\n", pos);
        std::string line = out.substr(pos, eol - pos);
        pos = eol + 2;
        auto colon = line.find(": ");
        REQUIRE(colon != std::string::npos);
        std::string name = line.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name == "status") a.status = std::stoi(line.substr(colon + 2, 3));
        else if (a.headers.count(name)) a.headers[name] += ", " + line.substr(colon + 2);
        else a.headers[name] = line.substr(colon + 2);
    }
    return a;
}

// int16 4x3x2 label map: ids 0, 1, 5, 6 and 12 in known places.
const std::vector<std::int16_t> kLabels = {0, 1, 1, 5, 0, 6, 6, 0, 12, 0, 0, 0,
                                           0, 0, 5, 5, 0, 0, 1, 0, 0, 12, 0, 6};

struct Fixture {
    TempDir dir;
    stdfs::path root = dir / "output";
    std::unique_ptr<Context> context;
    std::unique_ptr<Router> router;

    explicit Fixture(std::function<void(Config&)> tweak = {}) {
        NiftiSpec spec;
        spec.dims = {4, 3, 2};
        spec.datatype = 4;   // int16
        spec.pixdim = {1, 2, 2, 2, 1, 1, 1, 1};
        spec.data = encode(kLabels, ByteOrder::Little);
        stdfs::create_directories(root / "PA01" / "scans");
        stdfs::create_directories(root / "PA01" / "voxels" / "ct" / "original");
        stdfs::create_directories(dir / "outside");
        write_nifti(root / "PA01" / "scans" / "all.nii.gz", spec, true);
        write_nifti(root / "PA01" / "scans" / "plain.nii", spec, false);
        write_nifti(root / "PA01" / "voxels" / "ct" / "original" / "all.nii.gz", spec, true);
        write_nifti(dir / "outside" / "secret.nii.gz", spec, true);
        write_file(root / "PA01" / "scans" / ".env", {'S', '=', '1'});
        write_file(root / "PA01" / "scans" / "notes.nii.gz", {'h', 'e', 'l', 'l', 'o'});
        auto bytes = build_nifti(spec);
        auto truncated = std::vector<std::uint8_t>(bytes.begin(), bytes.end() - 10);
        write_file(root / "PA01" / "scans" / "truncated.nii", truncated);
        NiftiSpec floats = spec;
        floats.datatype = 16;   // float32
        floats.data = encode(std::vector<float>(24, 1.5f), ByteOrder::Little);
        write_nifti(root / "PA01" / "scans" / "float.nii.gz", floats, true);
        NiftiSpec big = spec;
        big.dims = {100, 100, 100};
        big.data.reset();
        write_nifti(root / "PA01" / "scans" / "big.nii.gz", big, true);
        stdfs::create_symlink(dir / "outside" / "secret.nii.gz", root / "PA01" / "scans" / "escape.nii.gz");

        Config c;
        c.data_root = root;
        c.cache_dir = dir / "cache";
        c.label_dict = stdfs::path(MEDIMG_SOURCE_DIR) / "conf" / "vista3d_label_dict.json";
        c.label_colors = stdfs::path(MEDIMG_SOURCE_DIR) / "conf" / "vista3d_label_colors.json";
        c.max_voxels = 100000;
        c.max_label_ids = 50;
        if (tweak) tweak(c);
        config = c;
        restart();
    }

    // A fresh context and router over the same configuration: what a second
    // worker process (empty memory) would see.
    void restart() {
        router.reset();
        context = Context::create(config, [](std::string_view) {});
        router = std::make_unique<Router>(*context);
        medimg::fcgi::register_all(*router, *context);
    }
    Config config;

    Answer request(const std::string& method, const std::string& uri,
                   std::map<std::string, std::string> extra = {}) {
        MemoryTransport t;
        t.params = std::move(extra);
        t.params["REQUEST_METHOD"] = method;
        t.params["REQUEST_URI"] = uri;
        t.params["SCRIPT_NAME"] = "/ignored";
        router->handle(t);
        return parse_answer(t.output);
    }
    Answer get(const std::string& uri, std::map<std::string, std::string> extra = {}) {
        return request("GET", uri, std::move(extra));
    }

    // Files under the cache directory (lock files excluded).
    std::vector<stdfs::path> cache_files() const {
        std::vector<stdfs::path> out;
        if (!stdfs::exists(dir / "cache")) return out;
        for (auto& e : stdfs::recursive_directory_iterator(dir / "cache"))
            if (e.is_regular_file() && e.path().parent_path().filename() != ".locks")
                out.push_back(e.path());
        return out;
    }
};

// The int16 voxels of a filtered answer (gzip or plain).
std::vector<std::int16_t> voxels_of(const std::string& body, const TempDir& dir) {
    auto file = dir / "answer.bin";
    write_file(file, std::vector<std::uint8_t>(body.begin(), body.end()));
    std::vector<std::uint8_t> bytes =
        (body.size() > 2 && static_cast<unsigned char>(body[0]) == 0x1f) ? gunzip_file(file)
                                                                          : read_file(file);
    REQUIRE(bytes.size() >= 352);
    std::vector<std::int16_t> out((bytes.size() - 352) / 2);
    std::memcpy(out.data(), bytes.data() + 352, out.size() * 2);
    return out;
}

std::vector<std::int16_t> expected_keep(std::initializer_list<int> ids) {
    std::vector<std::int16_t> out;
    for (auto v : kLabels)
        out.push_back(std::find(ids.begin(), ids.end(), v) != ids.end() ? v : 0);
    return out;
}

}  // namespace

TEST_CASE("fcgi routes: /health", "[fcgi][health]") {
    Fixture f;
    auto a = f.get("/health");
    CHECK(a.status == 200);
    CHECK(a["content-type"] == "application/json");
    CHECK(a["x-content-type-options"] == "nosniff");
    auto j = a.json();
    CHECK(j["status"] == "healthy");
    CHECK(j["service"] == "image-server");
    CHECK(j["version"] == MEDIMG_VERSION);
}

TEST_CASE("fcgi router: only /health is answered on the acceptor", "[fcgi][health][router]") {
    Fixture f;
    const Router& r = *f.router;
    CHECK(r.answers_on_acceptor("GET", "/health"));
    CHECK(r.answers_on_acceptor("HEAD", "/health"));
    CHECK(r.answers_on_acceptor("GET", "/health?probe=1"));
    // Other methods get their 405 (and OPTIONS its 204) from a request thread.
    CHECK_FALSE(r.answers_on_acceptor("OPTIONS", "/health"));
    CHECK_FALSE(r.answers_on_acceptor("POST", "/health"));
    // Only the literal path: nothing is decoded or normalised on the acceptor.
    CHECK_FALSE(r.answers_on_acceptor("GET", "/health/"));
    CHECK_FALSE(r.answers_on_acceptor("GET", "/heal%74h"));
    CHECK_FALSE(r.answers_on_acceptor("GET", "/healthz"));
    CHECK_FALSE(r.answers_on_acceptor("GET", ""));
    for (const auto& pattern : r.patterns())
        if (pattern != "/health") CHECK_FALSE(r.answers_on_acceptor("GET", pattern));
    CHECK_FALSE(r.answers_on_acceptor("GET", "/metrics"));
    CHECK_FALSE(r.answers_on_acceptor("GET", "/filtered-scans/PA01/all.nii.gz"));
}

TEST_CASE("fcgi router: a route answered on the acceptor must be literal", "[fcgi][router]") {
    Context none;
    Router r(none);
    auto handler = [](const medimg::fcgi::Request&, const medimg::fcgi::PathParams&) {
        return medimg::fcgi::Response::json(200, "{}");
    };
    CHECK_THROWS_AS(r.add("/probe/{pid}", handler, medimg::fcgi::AnswerOn::Acceptor), medimg::Error);
    r.add("/probe/ready", handler, medimg::fcgi::AnswerOn::Acceptor);
    CHECK(r.answers_on_acceptor("GET", "/probe/ready"));
    CHECK_FALSE(r.answers_on_acceptor("GET", "/probe/x"));
}

TEST_CASE("fcgi routes: filtered scan answers", "[fcgi][filter]") {
    Fixture f([](Config& c) { c.sendfile_header = medimg::SendfileHeader::None; });

    SECTION("one segment reads scans/, gzip in, gzip out") {
        auto a = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1,6");
        REQUIRE(a.status == 200);
        CHECK(a["content-type"] == "application/gzip");
        CHECK(a["content-disposition"] == "attachment; filename=\"filtered_all.nii.gz\"");
        CHECK(a["content-length"] == std::to_string(a.body.size()));
        CHECK(a.has("etag"));
        CHECK(a.has("last-modified"));
        CHECK(a["x-content-type-options"] == "nosniff");
        CHECK(voxels_of(a.body, f.dir) == expected_keep({1, 6}));
    }
    SECTION("two or more segments read below the patient") {
        auto a = f.get("/filtered-scans/PA01/voxels/ct/original/all.nii.gz?label_ids=5-12");
        REQUIRE(a.status == 200);
        CHECK(voxels_of(a.body, f.dir) == expected_keep({5, 6, 12}));
    }
    SECTION("plain in, plain out") {
        auto a = f.get("/filtered-scans/PA01/plain.nii?label_ids=12");
        REQUIRE(a.status == 200);
        CHECK(a["content-type"] == "application/octet-stream");
        CHECK(voxels_of(a.body, f.dir) == expected_keep({12}));
    }
    SECTION("label_ids= (empty) is the empty set") {
        auto a = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=");
        REQUIRE(a.status == 200);
        CHECK(voxels_of(a.body, f.dir) == std::vector<std::int16_t>(24, 0));
    }
    SECTION("names from the dictionary, case-insensitive; unknown params ignored") {
        // id 6 is "aorta" in the VISTA3D table shipped in conf/
        auto a = f.get("/filtered-scans/PA01/all.nii.gz?labels=Aorta&utm_source=x");
        REQUIRE(a.status == 200);
        CHECK(voxels_of(a.body, f.dir) == expected_keep({6}));
    }
    SECTION("percent-encoded query") {
        auto a = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1%2C%205");
        REQUIRE(a.status == 200);
        CHECK(voxels_of(a.body, f.dir) == expected_keep({1, 5}));
    }
    SECTION("HEAD: same headers, no body") {
        auto g = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1");
        auto h = f.request("HEAD", "/filtered-scans/PA01/all.nii.gz?label_ids=1");
        CHECK(h.status == 200);
        CHECK(h.body.empty());
        CHECK(h["content-length"] == g["content-length"]);
        CHECK(h["etag"] == g["etag"]);
    }
    SECTION("If-None-Match with the ETag: 304 without body") {
        auto g = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1,5");
        auto n = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=5,1",   // same set
                       {{"HTTP_IF_NONE_MATCH", "\"other\", " + g["etag"]}});
        CHECK(n.status == 304);
        CHECK(n.body.empty());
        CHECK(n["etag"] == g["etag"]);
        auto m = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1,6",
                       {{"HTTP_IF_NONE_MATCH", g["etag"]}});
        CHECK(m.status == 200);
        CHECK(m["etag"] != g["etag"]);
    }
    SECTION("map: its sources select without label_ids; part of the ETag in normal form") {
        auto a = f.get("/filtered-scans/PA01/all.nii.gz?map=5-6:2,12:-1");
        REQUIRE(a.status == 200);
        std::vector<std::int16_t> want;
        for (auto v : kLabels) want.push_back(v == 5 || v == 6 ? 2 : v == 12 ? -1 : 0);
        CHECK(voxels_of(a.body, f.dir) == want);
        auto b = f.get("/filtered-scans/PA01/all.nii.gz?map=12%3A-1%2C%206%3A2%2C5%3A2");
        CHECK(b["etag"] == a["etag"]);   // the same rules, reordered and spaced
        auto k = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1-12&map=5-6:2");
        REQUIRE(k.status == 200);
        want.clear();
        for (auto v : kLabels) want.push_back(v == 5 || v == 6 ? 2 : v);
        CHECK(voxels_of(k.body, f.dir) == want);
        auto plain = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1-12");
        auto other = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1-12&map=5-6:3");
        CHECK(plain["etag"] != k["etag"]);
        CHECK(other["etag"] != k["etag"]);
        CHECK(plain.body != k.body);
        CHECK(other.body != k.body);
        // Streamed by the worker without a cache: the same bytes.
        Fixture uncached([](Config& c) {
            c.cache_enabled = false;
            c.sendfile_header = medimg::SendfileHeader::None;
        });
        auto s = uncached.get("/filtered-scans/PA01/all.nii.gz?label_ids=1-12&map=5-6:2");
        REQUIRE(s.status == 200);
        CHECK(s.body == k.body);   // (another fixture's file: another ETag)
    }
}

TEST_CASE("fcgi routes: the results cache", "[fcgi][cache]") {
    SECTION("X-Sendfile names the cached file; the second request reuses it") {
        Fixture f([](Config& c) { c.sendfile_header = medimg::SendfileHeader::XSendfile; });
        auto a = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1");
        REQUIRE(a.status == 200);
        REQUIRE(a.has("x-sendfile"));
        CHECK(a.body.empty());
        CHECK_FALSE(a.has("content-length"));   // the web server sets it
        stdfs::path cached = a["x-sendfile"];
        CHECK(cached.is_absolute());
        REQUIRE(stdfs::exists(cached));
        auto bytes = read_file(cached);
        CHECK(voxels_of(std::string(bytes.begin(), bytes.end()), f.dir) == expected_keep({1}));
        auto mtime = stdfs::last_write_time(cached);
        auto b = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=1");
        CHECK(b["x-sendfile"] == a["x-sendfile"]);
        CHECK(stdfs::last_write_time(cached) == mtime);
        CHECK(f.cache_files().size() == 1);   // no temporaries left
    }
    SECTION("a failed filter leaves no file in the cache") {
        Fixture f;
        auto a = f.get("/filtered-scans/PA01/float.nii.gz?label_ids=1");
        CHECK(a.status == 415);
        CHECK(f.cache_files().empty());
    }
    SECTION("cache disabled: streamed from an unlinked temporary") {
        Fixture f([](Config& c) { c.cache_enabled = false; });
        auto a = f.get("/filtered-scans/PA01/all.nii.gz?label_ids=6");
        REQUIRE(a.status == 200);
        CHECK(voxels_of(a.body, f.dir) == expected_keep({6}));
        CHECK_FALSE(stdfs::exists(f.dir / "cache"));
    }
    SECTION("/labels is computed once and then served from the cache") {
        Fixture f;
        auto a = f.get("/output/PA01/scans/all.nii.gz/labels");
        REQUIRE(a.status == 200);
        CHECK(f.cache_files().size() == 1);
        // Replace the cached JSON behind the worker's back: a second worker
        // process (fresh memory) must read it instead of recomputing.
        auto again = f.get("/output/PA01/scans/all.nii.gz/labels");
        CHECK(again.body == a.body);   // memory hit in this process
        auto cached = f.cache_files().front();
        write_file(cached, {'{', '"', 'm', '"', ':', '1', '}'});
        f.restart();
        CHECK(f.get("/output/PA01/scans/all.nii.gz/labels").body == "{\"m\":1}");
    }
}

TEST_CASE("fcgi routes: a cache that cannot store is bypassed and the result streamed",
          "[fcgi][cache]") {
    Fixture uncached([](Config& c) { c.cache_enabled = false; });
    const std::string uri = "/filtered-scans/PA01/all.nii.gz?label_ids=1,6";
    const auto reference = uncached.get(uri);
    REQUIRE(reference.status == 200);

    Fixture f;
    std::vector<std::string> logged;
    f.context->log = [&](std::string_view line) { logged.emplace_back(line); };
    // The cache directory replaced by a regular file: creating an entry's
    // directory fails (ENOTDIR), whoever runs the test.
    const stdfs::path cache_dir = f.context->cache->dir();
    stdfs::remove_all(cache_dir);
    write_file(cache_dir, {'x'});

    for (int round = 0; round < 2; ++round) {
        INFO("round " << round);
        auto a = f.get(uri);
        REQUIRE(a.status == 200);
        CHECK(a["content-length"] == std::to_string(a.body.size()));
        CHECK(a.body == reference.body);
        CHECK(voxels_of(a.body, f.dir) == expected_keep({1, 6}));
    }
    auto labels = f.get("/output/PA01/scans/all.nii.gz/labels");
    REQUIRE(labels.status == 200);
    CHECK(labels.body == uncached.get("/output/PA01/scans/all.nii.gz/labels").body);
    CHECK(stdfs::is_regular_file(cache_dir));   // nothing written below or beside it
    REQUIRE(logged.size() == 1);                // logged once, not per request
    CHECK(logged.front().find("cannot store") != std::string::npos);
}

TEST_CASE("fcgi routes: neither the cache nor the temporary directory can store: 503, then recovery",
          "[fcgi][cache]") {
    Fixture f;
    const std::string uri = "/filtered-scans/PA01/all.nii.gz?label_ids=1,6";
    // Both places replaced by regular files: creating anything below them
    // fails (ENOTDIR), whoever runs the test.
    const stdfs::path cache_dir = f.context->cache->dir();
    const stdfs::path temp_dir = f.dir / "tmp";
    stdfs::remove_all(cache_dir);
    write_file(cache_dir, {'x'});
    write_file(temp_dir, {'x'});
    f.context->temp_dir = temp_dir;
    auto listing = [&] {
        std::vector<stdfs::path> out;
        for (auto& e : stdfs::recursive_directory_iterator(f.dir.path())) out.push_back(e.path());
        std::sort(out.begin(), out.end());
        return out;
    };
    const auto before = listing();

    for (const std::string method : {"GET", "HEAD"}) {
        INFO(method);
        auto a = f.request(method, uri);
        CHECK(a.status == 503);
        CHECK(a["content-type"] == "application/json");
        CHECK(a["retry-after"] == "5");
        if (method == "GET") CHECK(a.json()["error"] == "busy");
        CHECK(listing() == before);   // no partial file anywhere
    }

    // Space comes back in the temporary directory: streamed, exact.
    stdfs::remove(temp_dir);
    stdfs::create_directory(temp_dir);
    auto streamed = f.get(uri);
    REQUIRE(streamed.status == 200);
    CHECK(streamed["content-length"] == std::to_string(streamed.body.size()));
    CHECK(voxels_of(streamed.body, f.dir) == expected_keep({1, 6}));
    stdfs::remove(f.dir / "answer.bin");
    CHECK(stdfs::is_empty(temp_dir));   // the temporary was unlinked

    // And in the cache: stored again.
    stdfs::remove(cache_dir);
    stdfs::create_directory(cache_dir);
    stdfs::create_directory(cache_dir / ".locks");
    auto cached = f.get(uri);
    REQUIRE(cached.status == 200);
    CHECK(cached.body == streamed.body);
    const auto stored = f.cache_files();
    REQUIRE(stored.size() == 1);
    CHECK(read_file(stored.front()) == std::vector<std::uint8_t>(streamed.body.begin(), streamed.body.end()));
}

TEST_CASE("fcgi routes: a request past [limits] request_timeout is 503 timeout", "[fcgi][limits]") {
    // 16 MiB of voxels take far longer than 1 ms to inflate on any machine.
    Fixture f([](Config& c) {
        c.request_timeout = std::chrono::milliseconds(1);
        c.max_voxels = 10'000'000;
    });
    NiftiSpec slow;
    slow.dims = {200, 200, 200};
    slow.datatype = 4;
    write_nifti(f.root / "PA01" / "scans" / "slow.nii.gz", slow, true);
    for (const std::string uri : {"/filtered-scans/PA01/slow.nii.gz?label_ids=1",
                                  "/output/PA01/scans/slow.nii.gz/labels"}) {
        INFO(uri);
        auto a = f.get(uri);
        CHECK(a.status == 503);
        CHECK(a.json()["error"] == "timeout");
        CHECK(f.cache_files().empty());   // nothing half-written is kept
    }
    // Small files still answer within the same limit's order of magnitude.
    Fixture relaxed([](Config& c) { c.request_timeout = std::chrono::seconds(60); });
    CHECK(relaxed.get("/filtered-scans/PA01/all.nii.gz?label_ids=1").status == 200);
}

TEST_CASE("fcgi routes: /labels and /info JSON", "[fcgi][labels]") {
    Fixture f;
    auto a = f.get("/output/PA01/scans/all.nii.gz/labels");
    REQUIRE(a.status == 200);
    CHECK(a["content-type"] == "application/json");
    auto j = a.json();
    std::vector<std::int64_t> ids;
    for (auto& l : j["labels"]) ids.push_back(l["id"].get<std::int64_t>());
    CHECK(ids == std::vector<std::int64_t>{1, 5, 6, 12});
    CHECK(j["voxel_filename"] == "all.nii.gz");
    CHECK(j["datatype"] == "int16");
    CHECK(j["labels"][0]["voxels"] == 3);

    auto v = f.get("/output/PA01/voxels/ct/original/all.nii.gz/labels");
    CHECK(v.status == 200);

    auto i = f.get("/output/PA01/scans/all.nii.gz/info");
    REQUIRE(i.status == 200);
    CHECK(i.json()["dims"] == nlohmann::json::array({4, 3, 2}));

    auto n = f.get("/output/PA01/scans/all.nii.gz/labels", {{"HTTP_IF_NONE_MATCH", a["etag"]}});
    CHECK(n.status == 304);
}

TEST_CASE("fcgi routes: every error class answers JSON with its status", "[fcgi][errors]") {
    Fixture f;
    auto [method, uri, status, id] = GENERATE(table<std::string, std::string, int, std::string>({
        {"GET", "/filtered-scans/PA01/all.nii.gz", 400, "bad_label_ids"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=1,x", 400, "bad_label_ids"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=5-1", 400, "bad_label_ids"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?labels=nosuchorgan", 400, "unknown_label"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=1&mode=cut", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=1&crop=yes", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=1&crop=1&margin=-1", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=1&margin=1001", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=%zz", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/voxels%2F..%2F..%2Fx/all.nii.gz?label_ids=1", 400, "bad_path"},
        {"GET", "/filtered-scans/PA01/a%00b.nii?label_ids=1", 400, "bad_path"},
        {"GET", "/filtered-scans/PA01/a%0d%0aX-Evil:%201.nii?label_ids=1", 400, "bad_path"},
        {"GET", "/filtered-scans/../outside/secret.nii.gz?label_ids=1", 403, "forbidden"},
        {"GET", "/filtered-scans/%2e%2e/x/y?label_ids=1", 403, "forbidden"},
        {"GET", "/filtered-scans/PA01/.env?label_ids=1", 403, "forbidden"},
        {"GET", "/filtered-scans/PA01/escape.nii.gz?label_ids=1", 403, "forbidden"},
        {"GET", "/output/../outside/secret.nii.gz/labels", 403, "forbidden"},
        {"GET", "/output/PA01/scans/.env/labels", 403, "forbidden"},
        {"GET", "/filtered-scans/PA01/missing.nii.gz?label_ids=1", 404, "not_found"},
        {"GET", "/filtered-scans/PA99/all.nii.gz?label_ids=1", 404, "not_found"},
        {"GET", "/output/PA01/scans/missing.nii.gz/labels", 404, "not_found"},
        {"GET", "/output/PA01/scans/labels", 404, "not_found"},   // a directory
        {"GET", "/nothing/here", 404, "not_found"},
        {"POST", "/filtered-scans/PA01/all.nii.gz?label_ids=1", 405, "method_not_allowed"},
        {"DELETE", "/health", 405, "method_not_allowed"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=1-51", 413, "too_many_label_ids"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?map=6", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?map=6:1,6:2", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?label_ids=1&map=6:x", 400, "bad_parameter"},
        {"GET", "/filtered-scans/PA01/all.nii.gz?map=1-51:1", 413, "too_many_label_ids"},
        {"GET", "/filtered-scans/PA01/big.nii.gz?label_ids=1", 413, "image_too_large"},
        {"GET", "/output/PA01/scans/big.nii.gz/labels", 413, "image_too_large"},
        {"GET", "/filtered-scans/PA01/notes.nii.gz?label_ids=1", 415, "not_nifti"},
        {"GET", "/output/PA01/scans/notes.nii.gz/info", 415, "not_nifti"},
        {"GET", "/filtered-scans/PA01/float.nii.gz?label_ids=1", 415, "non_integral_labels"},
        {"GET", "/filtered-scans/PA01/truncated.nii?label_ids=1", 422, "truncated_data"},
    }));
    INFO(method << " " << uri);
    auto a = f.request(method, uri);
    CHECK(a.status == status);
    CHECK(a["content-type"] == "application/json");
    CHECK(a["x-content-type-options"] == "nosniff");
    auto j = a.json();
    CHECK(j["error"] == id);
    CHECK(j["detail"].is_string());
    CHECK_FALSE(j["detail"].get<std::string>().empty());
    if (status == 405) CHECK(a["allow"] == "GET, HEAD, OPTIONS");
    CHECK(a.raw_head.find("X-Evil") == std::string::npos);
}

TEST_CASE("fcgi routes: the worker sends no CORS headers", "[fcgi][cors]") {
    // The web server owns CORS (docs/SECURITY.md, "CORS"): whatever
    // [server] cors_origins says, no answer of the worker carries
    // Access-Control-* or Vary: Origin; OPTIONS is still a 204 with Allow.
    const auto no_cors = [](const auto& a) {
        CHECK(a.raw_head.find("Access-Control-") == std::string::npos);
        CHECK_FALSE(a.has("vary"));
    };
    for (const std::vector<std::string>& origins :
         {std::vector<std::string>{"https://viewer.example"}, std::vector<std::string>{"*"},
          std::vector<std::string>{}}) {
        INFO("cors_origins: " << origins.size() << (origins.empty() ? "" : " " + origins[0]));
        Fixture f([&](Config& c) { c.cors_origins = origins; });
        for (const char* origin : {"https://viewer.example", "https://evil.example", ""}) {
            INFO("Origin: " << origin);
            auto a = f.get("/health", {{"HTTP_ORIGIN", origin}});
            CHECK(a.status == 200);
            no_cors(a);
            auto err = f.get("/filtered-scans/PA01/missing.nii?label_ids=1", {{"HTTP_ORIGIN", origin}});
            CHECK(err.status == 404);
            no_cors(err);
            auto pre = f.request("OPTIONS", "/filtered-scans/PA01/all.nii.gz?label_ids=1",
                                 {{"HTTP_ORIGIN", origin},
                                  {"HTTP_ACCESS_CONTROL_REQUEST_METHOD", "GET"}});
            CHECK(pre.status == 204);
            CHECK(pre.body.empty());
            CHECK(pre["allow"] == "GET, HEAD, OPTIONS");
            no_cors(pre);
        }
    }
}

TEST_CASE("fcgi routes: routing uses REQUEST_URI only", "[fcgi][router]") {
    Fixture f;
    MemoryTransport t;
    t.params = {{"REQUEST_METHOD", "GET"},
                {"REQUEST_URI", "/health"},
                {"SCRIPT_NAME", "/filtered-scans"},
                {"PATH_INFO", "/PA01/all.nii.gz"}};
    f.router->handle(t);
    CHECK(parse_answer(t.output).status == 200);
    MemoryTransport missing;
    missing.params = {{"REQUEST_METHOD", "GET"}};
    f.router->handle(missing);
    CHECK(parse_answer(missing.output).status == 400);
}

TEST_CASE("fcgi request: If-None-Match lists", "[fcgi][request]") {
    using medimg::fcgi::etag_matches;
    CHECK(etag_matches("\"a\"", "\"a\""));
    CHECK(etag_matches("W/\"a\"", "\"a\""));
    CHECK(etag_matches("\"x\" , \"a\"", "\"a\""));
    CHECK(etag_matches("*", "\"a\""));
    CHECK_FALSE(etag_matches("\"ab\"", "\"a\""));
    CHECK_FALSE(etag_matches("", "\"a\""));
}

TEST_CASE("routes: a server-side failure names no server path to the client", "[fcgi][routes]") {
    Fixture f;
    f.router->add("/boom/{what}", [](const medimg::fcgi::Request&, const medimg::fcgi::PathParams& p) -> medimg::fcgi::Response {
        const auto code = p.at("what") == "io" ? medimg::ErrorCode::Io : medimg::ErrorCode::Internal;
        throw medimg::Error(code, "cannot write /var/cache/medimg/ab/cdef.tmp: No space left on device");
    });
    for (const char* what : {"io", "internal"}) {
        const Answer a = f.get(std::string("/boom/") + what);
        INFO(a.body);
        CHECK(a.status == 500);
        CHECK(a.body.find("/var/cache") == std::string::npos);
        CHECK(a.body.find("its log says why") != std::string::npos);
    }
    // A client's own error keeps its whole sentence, with the path as requested.
    const Answer missing = f.get("/filtered-scans/PA01/nothing.nii.gz?label_ids=1");
    CHECK(missing.status == 404);
    CHECK(missing.body.find("PA01/scans/nothing.nii.gz") != std::string::npos);
    CHECK(missing.body.find(f.root.string()) == std::string::npos);
}
