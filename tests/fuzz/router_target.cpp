// The worker's fuzz target (targets.hpp): the router with every route
// registered, over a small data tree, driven through MemoryTransport. The
// input is "METHOD\nREQUEST_URI\nHEADER-VALUE" (missing parts are empty).
// Properties: an answer is always written and starts with a Status line;
// never a 500; never a byte of the secrets beside or inside the data root.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <unistd.h>

#include "config.hpp"
#include "context.hpp"
#include "nifti/byteorder.hpp"
#include "nifti/header_fields.hpp"
#include "router.hpp"
#include "routes/routes.hpp"
#include "targets.hpp"
#include "transport.hpp"

namespace medimg::fuzz {

namespace {

namespace stdfs = std::filesystem;
constexpr std::string_view kSecret = "FUZZ-SECRET-7c1d";

// A 4x3x2 int16 NIfTI-1 file with labels 0..5.
std::string tiny_nifti() {
    using nifti::Field;
    std::vector<std::uint8_t> h(nifti::kNifti1Size + 4, 0);
    nifti::FieldEditor f(h.data(), nifti::Version::Nifti1, nifti::ByteOrder::Little);
    f.set_integer(Field::sizeof_hdr, nifti::kNifti1Size);
    const std::int16_t dim[8] = {3, 4, 3, 2, 1, 1, 1, 1};
    for (int i = 0; i < 8; ++i) f.set_integer(Field::dim, i, dim[i]);
    f.set_integer(Field::datatype, 4);   // int16
    f.set_integer(Field::bitpix, 16);
    for (int i = 0; i < 8; ++i) f.set_real(Field::pixdim, i, 1.0);
    f.set_real(Field::vox_offset, nifti::kNifti1Size + 4);
    f.set_text(Field::magic, std::string_view("n+1", 4));
    const std::size_t data = h.size();
    h.resize(data + 24 * 2);
    for (int v = 0; v < 24; ++v)
        nifti::byteorder::store<std::int16_t>(&h[data + 2 * v], static_cast<std::int16_t>(v % 6), true);
    return std::string(h.begin(), h.end());
}

struct World {
    stdfs::path base;
    ~World() {
        std::error_code ec;
        stdfs::remove_all(base, ec);
    }
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

std::string router_target(Input data) {
    World& w = world();
    const std::string_view in(reinterpret_cast<const char*>(data.data()), data.size());
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
    check(out.rfind("Status: ", 0) == 0, "always an answer with a Status line");
    check(out.rfind("Status: 500", 0) != 0, "never a 500 (a 500 is a bug)");
    // Never a secret's bytes, unless the request itself carried them (a
    // refused method or path may be echoed, JSON-escaped, in "detail").
    check(out.find(kSecret) == std::string::npos || in.find(kSecret) != std::string_view::npos,
          "no secret bytes the request did not carry");
    return "status:" + out.substr(8, out.find_first_of(" \r\n", 8) - 8);
}

}  // namespace medimg::fuzz
