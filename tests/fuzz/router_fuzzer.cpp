// Fuzzes the worker's whole request handling without a socket: the router
// with every route registered, over a small data tree, driven through
// MemoryTransport. The input is "METHOD\nREQUEST_URI\nHEADER-VALUE" (missing
// parts are empty). Properties: an answer is always written and starts with
// a Status line; never a 500; never a byte of the secrets beside or inside
// the data root.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>

#include "config.hpp"
#include "context.hpp"
#include "router.hpp"
#include "routes/routes.hpp"
#include "transport.hpp"

namespace {

namespace stdfs = std::filesystem;
constexpr std::string_view kSecret = "FUZZ-SECRET-7c1d";

// A 4x3x2 int16 NIfTI-1 file with labels 0..5.
std::string tiny_nifti() {
    std::string h(352, '\0');
    auto put16 = [&](std::size_t off, std::int16_t v) { std::memcpy(&h[off], &v, 2); };
    auto put32 = [&](std::size_t off, std::int32_t v) { std::memcpy(&h[off], &v, 4); };
    auto putf = [&](std::size_t off, float v) { std::memcpy(&h[off], &v, 4); };
    put32(0, 348);
    const std::int16_t dim[8] = {3, 4, 3, 2, 1, 1, 1, 1};
    for (int i = 0; i < 8; ++i) put16(40 + 2 * i, dim[i]);
    put16(70, 4);     // int16
    put16(72, 16);    // bitpix
    for (int i = 0; i < 8; ++i) putf(76 + 4 * i, 1.0f);
    putf(108, 352.0f);
    std::memcpy(&h[344], "n+1\0", 4);
    for (std::int16_t v = 0; v < 24; ++v) {
        const std::int16_t label = v % 6;
        h.append(reinterpret_cast<const char*>(&label), 2);
    }
    return h;
}

struct World {
    stdfs::path base;
    std::unique_ptr<medimg::fcgi::Context> context;
    std::unique_ptr<medimg::fcgi::Router> router;
    World() {
        char tmpl[] = "/tmp/medimg-router-fuzz-XXXXXX";
        base = ::mkdtemp(tmpl);
        const stdfs::path root = base / "output";
        stdfs::create_directories(root / "PA1" / "scans");
        stdfs::create_directories(root / "PA1" / "voxels" / "ct" / "original");
        const std::string nii = tiny_nifti();
        std::ofstream(root / "PA1" / "scans" / "all.nii", std::ios::binary) << nii;
        std::ofstream(root / "PA1" / "voxels" / "ct" / "original" / "all.nii", std::ios::binary) << nii;
        std::ofstream(root / "PA1" / ".env") << kSecret;
        std::ofstream(root / "PA1" / "scans" / ".hidden.nii", std::ios::binary) << kSecret << nii;
        std::ofstream(base / "secret.nii", std::ios::binary) << kSecret << nii;
        stdfs::create_symlink(base / "secret.nii", root / "PA1" / "scans" / "escape.nii");
        stdfs::create_symlink(base, root / "PA1" / "up");
        medimg::Config c;
        c.data_root = root;
        c.cache_enabled = false;            // results streamed from unlinked temporaries
        c.max_voxels = 1 << 16;
        c.max_label_ids = 1000;
        c.cors_origins = {"https://viewer.example"};
        context = medimg::fcgi::Context::create(c, [](std::string_view) {});
        router = std::make_unique<medimg::fcgi::Router>(*context);
        medimg::fcgi::register_all(*router, *context);
    }
};

World& world() {
    static World w;
    return w;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    World& w = world();
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const auto nl1 = in.find('\n');
    const std::string_view method = in.substr(0, nl1);
    std::string_view rest = nl1 == std::string_view::npos ? std::string_view{} : in.substr(nl1 + 1);
    const auto nl2 = rest.find('\n');
    const std::string_view uri = rest.substr(0, nl2);
    const std::string_view header = nl2 == std::string_view::npos ? std::string_view{} : rest.substr(nl2 + 1);

    medimg::fcgi::MemoryTransport t;
    t.params["REQUEST_METHOD"] = std::string(method);
    t.params["REQUEST_URI"] = std::string(uri);
    t.params["SCRIPT_NAME"] = "/ignored";
    t.params["HTTP_ORIGIN"] = std::string(header);
    t.params["HTTP_IF_NONE_MATCH"] = std::string(header);
    w.router->handle(t);

    const std::string& out = t.output;
    if (out.rfind("Status: ", 0) != 0) std::abort();                 // always an answer
    if (out.rfind("Status: 500", 0) == 0) std::abort();              // a 500 is a bug
    // Never a secret's bytes, unless the request itself carried them (a
    // refused method or path may be echoed, JSON-escaped, in "detail").
    if (out.find(kSecret) != std::string::npos && in.find(kSecret) == std::string_view::npos)
        std::abort();
    return 0;
}
