"""Hostile requests sent byte-exact over a raw socket to both web servers:
traversal in every encoding, NUL bytes, backslashes, symlinks out of the
root, FIFOs, hidden files, malformed and huge `label_ids`, long URLs, odd
methods, absolute-form URIs, bad HTTP versions and header floods.

Every answer must have a status in the allowed set (never a 5xx from the
worker; the web server's own 4xx/501/505 for malformed HTTP are fine), must
not contain a byte of any secret, and the worker must still answer
afterwards."""
import os
import socket
import time

import pytest

from conftest import OUTSIDE_SECRET, PATIENT, SECRET, SCAN, make_tree, request, selected_kinds, \
    start_server

GIT_SECRET = b"[remote] url = secret-git-remote-7d3e\n"
PASSWD_MARK = b"root:x:0:0"
SECRETS = (SECRET.strip(), OUTSIDE_SECRET.strip(), GIT_SECRET.strip(), PASSWD_MARK,
           b"do-not-serve-4f1c", b"9b27", b"secret-git-remote")


@pytest.fixture(scope="module")
def hostile_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile-requests")
    root = base / "output"
    make_tree(root)
    pdir = root / PATIENT
    (pdir / ".git").mkdir()
    (pdir / ".git" / "config").write_bytes(GIT_SECRET)
    (pdir / "scans" / ".hidden.nii.gz").write_bytes((pdir / "scans" / "plain.nii").read_bytes())
    os.mkfifo(pdir / "scans" / "fifo.nii.gz")
    os.mkfifo(pdir / "fifo.nii")
    (pdir / "scans" / "root-link.nii").symlink_to("/etc/passwd")
    (pdir / "scans" / "loop.nii").symlink_to(pdir / "scans" / "loop.nii")
    (pdir / "loop-a").symlink_to("loop-b")      # a two-link loop, also used as a directory
    (pdir / "loop-b").symlink_to("loop-a")
    (pdir / "unreadable.nii").write_bytes((pdir / "scans" / "plain.nii").read_bytes())
    (pdir / "unreadable.nii").chmod(0)
    return root


@pytest.fixture(scope="module", params=selected_kinds())
def server(request, hostile_tree):
    s = start_server(request.param, hostile_tree, cors_origins="*")
    yield s
    s.stop()


def raw(server, data, timeout=20, limit=4 << 20):
    """Sends `data` as is; returns (status or None, whole answer bytes)."""
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass   # the server may close while we are still sending a flood
        chunks, total = [], 0
        deadline = time.monotonic() + timeout
        while total < limit and time.monotonic() < deadline:
            try:
                c = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                pytest.fail(f"no end of answer within {timeout}s for {data[:120]!r}")
            if not c:
                break
            chunks.append(c)
            total += len(c)
    body = b"".join(chunks)
    status = None
    if body.startswith(b"HTTP/"):
        try:
            status = int(body.split(b" ", 2)[1])
        except (IndexError, ValueError):
            status = None
    return status, body


def get_line(target, method=b"GET", version=b"HTTP/1.1", headers=b""):
    if isinstance(target, str):
        target = target.encode("latin-1")
    return (method + b" " + target + b" " + version + b"\r\nHost: 127.0.0.1\r\n" + headers
            + b"Connection: close\r\n\r\n")


NO = (400, 403, 404)            # refused: malformed, forbidden or absent
HTTP_BAD = (400, 404, 405, 413, 414, 431, 501, 505, None)   # web server's own refusals

P, S = PATIENT, SCAN
TRAVERSAL = [
    "/output/../.env", "/output/%2e%2e/.env", "/output/%2E%2e/.env", "/output/%252e%252e/.env",
    "/output/..%2f.env", "/output/..%2F..%2Foutside/secret.txt", f"/output/{P}/..%2f.env",
    "/output/..\\.env", "/output/..%5c.env", f"/output/{P}\\..\\.env",
    "/output/%c0%ae%c0%ae/.env", "/output/%c0%ae%c0%ae%c0%af.env", "/output/%e0%80%ae%e0%80%ae/.env",
    "/output/.env", f"/output/{P}/.env", f"/output/{P}/%2eenv", f"/output/{P}/%2Eenv",
    f"/output/{P}/.%65nv", f"/output/{P}/.env%00.txt", f"/output/{P}/.env/", f"/output/{P}//.env",
    f"/output/{P}/./.env", f"/output/{P}/scans/../.env", f"/output/{P}/.git/config",
    f"/output/{P}/%2egit/config", f"/output/{P}/escape.txt", f"/output/{P}/escape-dir/secret.txt",
    f"/output/{P}/scans/root-link.nii", f"/output/{P}/scans/loop.nii", f"/output/{P}/loop-a",
    f"/output/{P}/loop-b/", f"/output/{P}/loop-a/plain.nii", "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd", "/output/../../outside/secret.txt", "/assets/../../conf/medimg.ini",
    "/assets/%2e%2e/%2e%2e/.env", "/.env", "/%2eenv", "/output/%00", f"/output/{P}/%00/x",
    "/output/..;/.env", "/output/.%2e/.env", "/output/%2e./.env", "/output/%u002e%u002e/.env",
]
FILTER = [
    "/filtered-scans/../scans/plain.nii?label_ids=6", f"/filtered-scans/%2e%2e/{P}/scans/plain.nii?label_ids=6",
    f"/filtered-scans/{P}/..%2f..%2f.env?label_ids=1", f"/filtered-scans/{P}/..%2F.env?label_ids=1",
    f"/filtered-scans/{P}/%2e%2e/%2e%2e/outside/outside.nii.gz?label_ids=6",
    f"/filtered-scans/{P}/escape.nii.gz?label_ids=6", f"/filtered-scans/{P}/escape-dir/outside.nii.gz?label_ids=6",
    f"/filtered-scans/{P}/.env?label_ids=1", f"/filtered-scans/{P}/.hidden.nii.gz?label_ids=6",
    f"/filtered-scans/{P}/scans/.hidden.nii.gz?label_ids=6", f"/filtered-scans/{P}/%2ehidden.nii.gz?label_ids=6",
    f"/filtered-scans/{P}/plain.nii%00.txt?label_ids=6", f"/filtered-scans/{P}/%00?label_ids=6",
    f"/filtered-scans/{P}/fifo.nii.gz?label_ids=6", f"/filtered-scans/{P}/fifo.nii?label_ids=6",
    f"/filtered-scans/{P}/root-link.nii?label_ids=1", f"/filtered-scans/{P}/loop.nii?label_ids=1",
    f"/filtered-scans/{P}%5c..%5c..%5c.env?label_ids=1", f"/filtered-scans/{P}/scans%5c..%5c.env?label_ids=1",
    f"/filtered-scans/{P}/%c0%ae%c0%ae/.env?label_ids=1", f"/filtered-scans/{P}/%0d%0aX-Evil:%201?label_ids=1",
    f"/filtered-scans/{P}/.git/config?label_ids=1", f"/filtered-scans/{P}/scans?label_ids=1",
    f"/filtered-scans/{P}/?label_ids=1", "/filtered-scans//?label_ids=1", "/filtered-scans/?label_ids=1",
]
ROUTES = [
    f"/output/{P}/..%2f.env/labels", "/output/%2e%2e/x/labels", f"/output/{P}/escape.txt/labels",
    f"/output/{P}/fifo.nii/labels", f"/output/{P}/scans/fifo.nii.gz/info", f"/output/{P}/.env/labels",
    f"/output/{P}/.git/config/labels", f"/output/{P}/scans/../../.env/info",
    f"/output/{P}/escape-dir/outside.nii.gz/labels", f"/output/{P}/scans/root-link.nii/info",
    f"/output/{P}/scans/.hidden.nii.gz/labels", f"/output/{P}/scans/loop.nii/labels",
    f"/output/{P}/scans/%00/labels", f"/output/{P}/unreadable.nii/labels",
]


def check(status, body, allowed):
    assert status in allowed, (status, body[:300])
    for s in SECRETS:
        assert s not in body, f"secret {s!r} in the answer"
    if status is not None and status >= 500:
        # The web server's own (501, 505) carry no worker JSON; the worker never 5xx here.
        assert b'"error"' not in body, body[:300]


@pytest.fixture(autouse=True)
def still_healthy(server):
    yield
    a = request(server.base_url, "/health", timeout=20)
    assert a.status == 200, a


@pytest.mark.parametrize("target", TRAVERSAL)
def test_traversal_static(server, target):
    status, body = raw(server, get_line(target))
    check(status, body, NO + (301, 302, 308))


def test_listing_with_symlink_loops(server):
    """A directory holding symlink loops is still listed (or refused as
    listings are configured), never a 5xx; its regular files are served."""
    status, body = raw(server, get_line(f"/output/{P}/"))
    check(status, body, (200,) + NO)
    status, body = raw(server, get_line(f"/output/{P}/scans/plain.nii"))
    check(status, body, (200,))


@pytest.mark.parametrize("target", FILTER)
def test_traversal_filter(server, target):
    status, body = raw(server, get_line(target))
    check(status, body, NO + (301, 302, 308, 415, 422))


@pytest.mark.parametrize("target", ROUTES)
def test_traversal_metadata_routes(server, target):
    if target.endswith("unreadable.nii/labels") and os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file")
    status, body = raw(server, get_line(target))
    check(status, body, NO + (301, 302, 308, 415, 422))


def test_raw_nul_in_request_line(server):
    status, body = raw(server, b"GET /output/" + P.encode() + b"/.env\0.nii HTTP/1.1\r\nHost: x\r\n\r\n")
    check(status, body, HTTP_BAD)
    status, body = raw(server, get_line(b"/filtered-scans/" + P.encode() + b"/plain.nii\0?label_ids=6"))
    check(status, body, HTTP_BAD)


LABEL_IDS = [
    ("1-99999999999999999999", (400,)), ("--1", (400,)), ("1--2", (400,)), ("1,,2", (200, 400)),
    ("%d9%a1", (400,)), ("%ef%bc%91", (400,)), ("%c2%b2", (400,)), ("1-", (400,)), ("-", (400,)),
    ("5-1", (400,)), ("0x10", (400,)), ("1e3", (400,)), ("+1", (200, 400)), ("%206%20,%2010", (200,)),
    ("9223372036854775807", (200,)), ("9223372036854775808", (200,)),
    ("18446744073709551615", (200,)), ("18446744073709551616", (400,)), ("-9223372036854775809", (400,)),
    ("-9223372036854775808-9223372036854775807", (413,)), ("1-1000000", (413,)),
    ("1,1,1,1,1,1," * 2000 + "1", (200, 400, 413, 414, 431)), ("6;ls", (400,)), ("6%00", (400,)), ("6%0a", (400,)),
    ("%0d%0aSet-Cookie:%20x=1", (400,)), ("6,10&label_ids=abc", (400,)), ("NaN", (400,)),
]


@pytest.mark.parametrize("ids,allowed", LABEL_IDS, ids=[i[:40] for i, _ in LABEL_IDS])
def test_malformed_label_ids(server, ids, allowed):
    status, body = raw(server, get_line(f"/filtered-scans/{P}/plain.nii?label_ids={ids}"))
    check(status, body, allowed)
    head, _, payload = body.partition(b"\r\n\r\n")
    assert b"set-cookie" not in head.lower()
    # The worker's refusals are JSON; the web server may refuse control
    # characters itself first (lighttpd: 400 text/html).
    if status in (400, 413) and b"application/json" in head.lower():
        assert (b'"bad_label_ids"' in payload or b'"too_many_label_ids"' in payload
                or b'"bad_parameter"' in payload), payload


def test_a_million_ids_in_the_url(server):
    """10^6 ids spelled out (6.9 MB of URL): refused by the web server, fast."""
    ids = ",".join(str(i) for i in range(1, 1_000_001))
    t = time.monotonic()
    status, body = raw(server, get_line(f"/filtered-scans/{P}/plain.nii?label_ids={ids}"))
    check(status, body, (400, 413, 414, 431, None))
    assert time.monotonic() - t < 20


def test_many_ids_within_url_limits(server):
    """~1000 distinct ids (5 KB of URL) are fine; 100001 by ranges is 413."""
    ids = ",".join(str(i) for i in range(1, 1001))
    status, body = raw(server, get_line(f"/filtered-scans/{P}/plain.nii?label_ids={ids}"))
    check(status, body, (200,))
    status, body = raw(server, get_line(f"/filtered-scans/{P}/plain.nii?label_ids=1-100000,100002"))
    check(status, body, (413,))


@pytest.mark.parametrize("size", [8 << 10, 64 << 10])
def test_long_urls(server, size):
    for target in ("/output/" + "a" * size, f"/filtered-scans/{P}/" + "b/" * (size // 2) + "x.nii?label_ids=1",
                   f"/filtered-scans/{P}/plain.nii?label_ids=6&pad=" + "c" * size):
        status, body = raw(server, get_line(target))
        check(status, body, (200, 400, 403, 404, 413, 414, 431))


METHODS = [b"PUT", b"DELETE", b"TRACE", b"PROPFIND", b"PATCH", b"POST", b"MKCOL", b"get", b"Get",
           b"FOO", b"G\x01T"]


@pytest.mark.parametrize("method", METHODS, ids=[m.decode("latin-1") for m in METHODS])
@pytest.mark.parametrize("target", ["/health", f"/filtered-scans/{P}/plain.nii?label_ids=6",
                                    f"/output/{P}/scans/plain.nii/labels", f"/output/{P}/.env"])
def test_odd_methods(server, method, target):
    extra = b"Content-Length: 5\r\n" if method in (b"PUT", b"POST", b"PATCH") else b""
    data = get_line(target, method=method, headers=extra) + (b"hello" if extra else b"")
    status, body = raw(server, data)
    check(status, body, (400, 403, 404, 405, 501))


def test_connect(server):
    status, body = raw(server, b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")
    check(status, body, (400, 403, 404, 405, 501, None))


@pytest.mark.parametrize("target,allowed", [
    (b"http://127.0.0.1/health", (200, 400)),
    (b"http://evil.example/output/" + P.encode() + b"/.env", (400, 403, 404)),
    (b"http://127.0.0.1/filtered-scans/" + P.encode() + b"/..%2f.env?label_ids=1", (400, 403, 404)),
    (b"//127.0.0.1/output/.env", (400, 403, 404)),
    (b"*", (400, 404, 405, 501)),
    (b"health", (400, 404)),
])
def test_absolute_and_odd_forms(server, target, allowed):
    status, body = raw(server, get_line(target))
    check(status, body, allowed)


@pytest.mark.parametrize("version", [b"HTTP/0.9", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/3", b"HTTP/x.y",
                                     b"FOO/1.1", b"HTTP/1.1 extra", b"", b"HTTP/11"])
def test_bad_http_versions(server, version):
    status, body = raw(server, get_line(f"/output/{P}/.env", version=version))
    check(status, body, HTTP_BAD + (403,))
    status, body = raw(server, get_line("/health", version=version))
    check(status, body, HTTP_BAD + (200,))


def test_http09_simple_request(server):
    status, body = raw(server, b"GET /output/" + P.encode() + b"/.env\r\n")
    check(status, body, HTTP_BAD + (403,))


def test_missing_host_and_bare_lf(server):
    status, body = raw(server, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(status, body, (200, 400))
    status, body = raw(server, b"GET /output/" + P.encode() + b"/.env HTTP/1.1\nHost: x\nConnection: close\n\n")
    check(status, body, (400, 403, 404))


@pytest.mark.parametrize("count,length", [(200, 100), (5000, 20), (1, 70000), (20, 8000)])
def test_header_floods(server, count, length):
    headers = b"".join(b"X-Flood-%d: " % i + b"v" * length + b"\r\n" for i in range(count))
    status, body = raw(server, get_line(f"/filtered-scans/{P}/plain.nii?label_ids=6", headers=headers))
    check(status, body, (200, 400, 413, 431, None))


def test_hostile_headers_on_a_filter(server):
    ranges = b"Range: bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(0, 4000, 2)) + b"\r\n"
    for h in (ranges, b"Range: bytes=99999999999999999999-\r\n", b"If-None-Match: " + b'"x",' * 2000 + b"\r\n",
              b"Content-Length: 10\r\nTransfer-Encoding: chunked\r\n",
              b"Origin: http://evil.example\r\nCookie: a=" + b"z" * 4000 + b"\r\n",
              b"Accept-Encoding: " + b"gzip;q=0.5, " * 500 + b"\r\n"):
        status, body = raw(server, get_line(f"/filtered-scans/{P}/plain.nii?label_ids=6,10", headers=h))
        check(status, body, (200, 206, 304, 400, 413, 416, 431))


def test_worker_still_correct_afterwards(server):
    import nibabel as nib
    import numpy as np
    a = request(server.base_url, f"/filtered-scans/{P}/plain.nii?label_ids=6")
    assert a.status == 200
    img = nib.Nifti1Image.from_bytes(a.body)
    d = np.asanyarray(img.dataobj)
    assert set(np.unique(d)) <= {0, 6} and (d == 6).sum() == 24
