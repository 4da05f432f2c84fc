"""Static answers of the web server: /output/ files, Range, ETag, listings,
refusals of hidden files, traversal and symlink escapes, CORS, nosniff."""

import re

import pytest

from conftest import ALLOWED_ORIGIN, OUTSIDE_SECRET, PATIENT, SCAN, request

SEG = f"/output/{PATIENT}/scans/{SCAN}.nii.gz"


def file_bytes(server, url_path):
    return (server.data_root / url_path[len("/output/"):]).read_bytes()


def test_nii_gz_bytes_and_type(server, get):
    a = get(SEG)
    assert a.status == 200
    assert a.body == file_bytes(server, SEG)
    assert a.header("Content-Type") == "application/gzip"
    assert int(a.header("Content-Length")) == len(a.body)
    assert a.header("Accept-Ranges") == "bytes"
    assert a.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("path, ctype", [
    (f"/output/{PATIENT}/scans/plain.nii", "application/octet-stream"),
    (f"/output/{PATIENT}/scans/pair.hdr", "application/octet-stream"),
    (f"/output/{PATIENT}/scans/pair.img", "application/octet-stream"),
    (f"/output/{PATIENT}/notes/data.json", "application/json"),
])
def test_content_types(server, get, path, ctype):
    a = get(path)
    assert a.status == 200
    assert a.header("Content-Type").split(";")[0].strip() == ctype
    assert a.body == file_bytes(server, path)


def test_head_has_headers_without_body(server, get):
    a = get(SEG, method="HEAD")
    assert a.status == 200
    assert a.body == b""
    assert int(a.header("Content-Length")) == len(file_bytes(server, SEG))
    assert a.header("ETag")


def test_etag_and_304(server, get):
    a = get(SEG)
    etag = a.header("ETag")
    assert etag and a.header("Last-Modified")
    b = get(SEG, headers={"If-None-Match": etag})
    assert b.status == 304
    assert b.body == b""
    c = get(SEG, headers={"If-None-Match": '"something-else"'})
    assert c.status == 200


def test_range_single(server, get):
    data = file_bytes(server, SEG)
    a = get(SEG, headers={"Range": "bytes=10-99"})
    assert a.status == 206
    assert a.body == data[10:100]
    assert a.header("Content-Range") == f"bytes 10-99/{len(data)}"


def test_range_suffix(server, get):
    data = file_bytes(server, SEG)
    a = get(SEG, headers={"Range": "bytes=-100"})
    assert a.status == 206
    assert a.body == data[-100:]
    assert a.header("Content-Range") == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"


def test_range_multi(server, get):
    # Ranges far apart: a server may merge close ones into one (RFC 9110 14.3).
    data = file_bytes(server, SEG)
    assert len(data) > 3000
    a = get(SEG, headers={"Range": "bytes=0-9,2000-2009"})
    assert a.status == 206
    ctype = a.header("Content-Type")
    assert ctype.startswith("multipart/byteranges")
    boundary = re.search(r"boundary=\"?([^\";]+)", ctype).group(1).encode()
    parts = [p for p in a.body.split(b"--" + boundary) if p.strip() not in (b"", b"--")]
    assert len(parts) == 2
    got = []
    for p in parts:
        head, _, body = p.partition(b"\r\n\r\n")
        assert b"content-range: bytes" in head.lower()
        got.append(body[:-2] if body.endswith(b"\r\n") else body)
    assert got == [data[0:10], data[2000:2010]]


def test_range_unsatisfiable(server, get):
    size = len(file_bytes(server, SEG))
    a = get(SEG, headers={"Range": f"bytes={size + 10}-{size + 20}"})
    assert a.status == 416


def test_listing_is_styled_and_hides_dotfiles(server, get):
    a = get(f"/output/{PATIENT}/")
    assert a.status == 200
    text = a.body.decode()
    assert "/assets/listing.css" in text
    assert "/assets/listing.js" in text
    assert "scans/" in text
    assert ".env" not in text
    assert a.header("X-Content-Type-Options") == "nosniff"


def test_listing_escapes_names(server, get):
    a = get(f"/output/{PATIENT}/notes/")
    assert a.status == 200
    assert b"odd <name>" not in a.body
    lowered = a.body.lower()
    assert b"&lt;name&gt;" in lowered or b"&#x3c;name&#x3e;" in lowered or b"&#60;name&#62;" in lowered


def test_listing_disabled(strict_server):
    a = request(strict_server.base_url, f"/output/{PATIENT}/")
    assert a.status in (403, 404)
    assert b"scans" not in a.body
    # files stay reachable by name
    b = request(strict_server.base_url, SEG)
    assert b.status == 200


@pytest.mark.parametrize("path", [
    f"/output/{PATIENT}/.env",
    "/output/.env",
    f"/output/{PATIENT}/%2eenv",
    f"/output/{PATIENT}/scans/../.env",
    f"/output/{PATIENT}/scans/%2e%2e/.env",
    f"/output/{PATIENT}/scans/%2E%2E/%2eenv",
    f"/output/{PATIENT}/scans/%252e%252e/.env",
    "/output/../.env",
    "/output/%2e%2e/%2e%2e/etc/passwd",
    "/output/%252e%252e/%252e%252e/etc/passwd",
    "/output/..%2f..%2fetc/passwd",
    "/output/..%252f..%252fetc/passwd",
    "/../../etc/passwd",
    "/.env",
    "/conf/medimg.ini",
    "/output/../conf/medimg.ini",
    "/conf/vista3d_label_dict.json",
    "/www/package.json",
    "/package.json",
    "/node_modules/playwright-core/package.json",
    "/lib/config.cpp",
    "/cli/serve.cpp",
    "/CMakeLists.txt",
])
def test_refused_paths_never_leak(server, path):
    a = request(server.base_url, path)
    assert a.status in (400, 403, 404), a
    assert server.secret.strip() not in a.body
    assert b"root:x:0:0" not in a.body
    assert b"[paths]" not in a.body
    assert b"medimg-www" not in a.body
    assert a.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("path", [
    f"/output/{PATIENT}/escape.txt",
    f"/output/{PATIENT}/escape-dir/secret.txt",
    f"/output/{PATIENT}/escape-dir/",
])
def test_symlink_escape_refused(server, path):
    a = request(server.base_url, path)
    assert a.status in (403, 404), a
    assert OUTSIDE_SECRET.strip() not in a.body


def test_www_pages(server, get):
    for path in ("/", "/viewer.html", "/assets/listing.css"):
        a = get(path)
        assert a.status == 200, path
        assert a.header("X-Content-Type-Options") == "nosniff"
    assert get("/").header("Content-Type").startswith("text/html")
    assert get("/assets/listing.css").header("Content-Type").startswith("text/css")


def test_unknown_url_404(server, get):
    assert get("/no/such/thing").status == 404


# --- CORS ------------------------------------------------------------------

def test_cors_any_without_credentials(server, get):
    a = get(SEG, headers={"Origin": "http://elsewhere.example"})
    assert a.header("Access-Control-Allow-Origin") == "*"
    assert a.header("Access-Control-Allow-Credentials") is None
    exposed = a.header("Access-Control-Expose-Headers") or ""
    for h in ("Content-Length", "Content-Range", "Accept-Ranges", "ETag"):
        assert h.lower() in exposed.lower()


def test_cors_preflight_static_any(server):
    a = request(server.base_url, SEG, method="OPTIONS", headers={
        "Origin": "http://elsewhere.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    assert a.status in (200, 204)
    assert a.header("Access-Control-Allow-Origin") == "*"
    assert "GET" in (a.header("Access-Control-Allow-Methods") or "")
    assert "range" in (a.header("Access-Control-Allow-Headers") or "").lower()


def test_cors_allow_list_static(strict_server):
    url = strict_server.base_url
    a = request(url, SEG, headers={"Origin": ALLOWED_ORIGIN})
    assert a.status == 200
    assert a.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert a.header("Access-Control-Allow-Credentials") == "true"
    assert "origin" in (a.header("Vary") or "").lower()
    b = request(url, SEG, headers={"Origin": "http://evil.example"})
    assert b.status == 200
    assert b.header("Access-Control-Allow-Origin") is None
    assert b.header("Access-Control-Allow-Credentials") is None


def test_cors_allow_list_preflight_static(strict_server):
    url = strict_server.base_url
    a = request(url, SEG, method="OPTIONS", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert a.status in (200, 204)
    assert a.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert a.header("Access-Control-Allow-Credentials") == "true"
    b = request(url, SEG, method="OPTIONS", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "GET"})
    assert b.header("Access-Control-Allow-Origin") is None
