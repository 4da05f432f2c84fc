"""CORS: one owner (the web server), one list of header values, the same
answers on lighttpd (`medimg serve`) and Apache, none from the worker, and
none at all by default (docs/SECURITY.md, "CORS").

For every server and mode, preflight (OPTIONS) and simple (GET) requests on
a static URL, dynamic URLs and an error are sent with an allowed Origin, a
not-allowed Origin and no Origin; the Access-Control-* and Vary headers must
be exactly what the contract gives, computed from apache/cors-headers.conf.
"""

import os
import re
import subprocess

import pytest

from server_process import fcgi_request, wait_listening
from conftest import (ALLOWED_ORIGIN, BUILD, PATIENT, SCAN, SOURCE, WORKER, free_port, request,
                      selected_kinds, start_server, terminate)

OTHER_ORIGIN = "http://elsewhere.example"
STATIC = f"/output/{PATIENT}/scans/{SCAN}.nii.gz"
DYNAMIC = [f"/output/{PATIENT}/scans/{SCAN}.nii.gz/labels",
           f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1",
           "/health"]
MISSING = [f"/output/{PATIENT}/scans/missing.nii.gz",            # static 404
           f"/filtered-scans/{PATIENT}/missing.nii.gz?label_ids=1"]   # worker's JSON 404
CORS_NAMES = ("access-control-allow-origin", "access-control-allow-credentials",
              "access-control-expose-headers", "access-control-allow-methods",
              "access-control-allow-headers", "access-control-max-age")


def header_list():
    """The one list: apache/cors-headers.conf's Define lines."""
    text = (SOURCE / "apache" / "cors-headers.conf").read_text()
    values = dict(re.findall(r'^Define MEDIMG_CORS_([A-Z_]+) "([^"]*)"$', text, re.M))
    assert set(values) == {"ALLOW_METHODS", "ALLOW_HEADERS", "EXPOSE_HEADERS", "MAX_AGE"}
    return values


def test_header_list_has_what_viewers_need():
    v = header_list()
    exposed = [h.strip() for h in v["EXPOSE_HEADERS"].split(",")]
    # docs/ARCHITECTURE.md and the list: what a range-reading viewer reads.
    for h in ("Content-Length", "Content-Range", "Accept-Ranges", "ETag", "Last-Modified"):
        assert h in exposed
    assert [m.strip() for m in v["ALLOW_METHODS"].split(",")] == ["GET", "HEAD", "OPTIONS"]
    allowed = [h.strip().lower() for h in v["ALLOW_HEADERS"].split(",")]
    for h in ("range", "if-none-match", "if-range", "authorization"):
        assert h in allowed
    assert v["MAX_AGE"].isdigit() and 0 < int(v["MAX_AGE"]) <= 86400


def test_values_are_written_once():
    """Every configuration that sends CORS takes its values from the list;
    the C++ sources (worker, `medimg serve`) send none."""
    v = header_list()
    offenders = []
    configs = [p for p in (SOURCE / "lighttpd").iterdir() if p.suffix in (".conf", ".lua", ".in")]
    configs.append(SOURCE / "apache" / "medimg.conf")
    for path in configs:
        text = path.read_text()
        for value in (v["ALLOW_HEADERS"], v["EXPOSE_HEADERS"]):
            if f'"{value}"' in text:
                offenders.append(f"{path.relative_to(SOURCE)}: {value}")
        if re.search(r"Access-Control-Max-Age[^\n]*\b\d+\b", text):
            offenders.append(f"{path.relative_to(SOURCE)}: a literal Max-Age")
    for path in [*(SOURCE / "fcgi").rglob("*.[ch]pp"), *(SOURCE / "cli").glob("*.[ch]pp")]:
        if "Access-Control-" in path.read_text():
            offenders.append(f"{path.relative_to(SOURCE)}: Access-Control-")
    assert offenders == []


def expected(mode, origin, method):
    """The contract's CORS headers (lower-case names) for one request."""
    v = header_list()
    out = {}
    granted = None
    if mode == "any":
        granted = "*"
    elif mode == "list":
        out["vary"] = "Origin"
        if origin == ALLOWED_ORIGIN:
            granted = origin
    if granted:
        out["access-control-allow-origin"] = granted
        if granted != "*":
            out["access-control-allow-credentials"] = "true"
        out["access-control-expose-headers"] = v["EXPOSE_HEADERS"]
        if method == "OPTIONS":
            out["access-control-allow-methods"] = v["ALLOW_METHODS"]
            out["access-control-allow-headers"] = v["ALLOW_HEADERS"]
            out["access-control-max-age"] = v["MAX_AGE"]
    return out


def cors_of(answer):
    got = {}
    for name in CORS_NAMES + ("vary",):
        values = answer.headers.get_all(name) or []
        if name == "vary":
            values = [x.strip() for v in values for x in v.split(",") if x.strip().lower() == "origin"]
        if values:
            assert len(values) == 1, f"{name} sent {len(values)} times: {values}"
            got[name] = values[0]
    return got


def ask(base_url, path, method, origin):
    headers = {}
    if origin:
        headers["Origin"] = origin
    if method == "OPTIONS":
        headers["Access-Control-Request-Method"] = "GET"
        headers["Access-Control-Request-Headers"] = "range"
    return request(base_url, path, method=method, headers=headers)


MODES = {"list": [ALLOWED_ORIGIN], "any": "*", "none": None}


@pytest.fixture(scope="module", params=[(k, m) for k in selected_kinds() for m in MODES],
                ids=lambda p: f"{p[0]}-{p[1]}")
def cors_server(request, tree):
    kind, mode = request.param
    s = start_server(kind, tree["root"], cors_origins=MODES[mode])
    s.mode = mode
    yield s
    s.stop()


@pytest.mark.parametrize("origin", [ALLOWED_ORIGIN, OTHER_ORIGIN, None],
                         ids=["allowed", "other", "no-origin"])
@pytest.mark.parametrize("method", ["OPTIONS", "GET"])
@pytest.mark.parametrize("path", [STATIC, *DYNAMIC, *MISSING])
def test_answers_follow_the_contract(cors_server, path, method, origin):
    a = ask(cors_server.base_url, path, method, origin)
    if method == "OPTIONS":
        assert a.status == 204, a.body[:200]
        assert a.header("Allow") == "GET, HEAD, OPTIONS"
    else:
        assert a.status == (404 if path in MISSING else 200), a.body[:200]
    assert cors_of(a) == expected(cors_server.mode, origin, method)
    assert a.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.skipif(len(selected_kinds()) < 2, reason="needs lighttpd and Apache")
def test_lighttpd_and_apache_answer_alike(tree):
    """The same requests, side by side: identical CORS headers."""
    servers = [start_server(k, tree["root"], cors_origins=[ALLOWED_ORIGIN])
               for k in ("lighttpd", "apache")]
    try:
        for path in (STATIC, DYNAMIC[0], DYNAMIC[1], MISSING[0]):
            for method in ("OPTIONS", "GET"):
                for origin in (ALLOWED_ORIGIN, OTHER_ORIGIN, None):
                    got = [cors_of(ask(s.base_url, path, method, origin)) for s in servers]
                    assert got[0] == got[1], (path, method, origin)
    finally:
        for s in servers:
            s.stop()


# --- defaults ---------------------------------------------------------------

@pytest.mark.parametrize("kind", selected_kinds())
def test_default_server_grants_nothing_across_origins(tree, kind):
    """`medimg serve` without --cors-origins (and Apache without the
    Defines): a page of another origin can read nothing."""
    s = start_server(kind, tree["root"], cors_origins=None)
    try:
        for path in (STATIC, *DYNAMIC, f"/output/{PATIENT}/", "/viewer.html"):
            for method in ("GET", "OPTIONS"):
                a = ask(s.base_url, path, method, "http://attacker.example")
                assert a.status in (200, 204), (path, method, a.status)
                assert a.header("Access-Control-Allow-Origin") is None, (path, method)
                assert cors_of(a) == {}, (path, method)
    finally:
        s.stop()


def ini_cors_value(path):
    section = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "server" and re.match(r"cors_origins\s*=", line):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"{path}: no [server] cors_origins")


def test_source_and_packaged_ini_default_to_no_cors():
    assert ini_cors_value(SOURCE / "conf" / "medimg.ini") == ""
    packaged = BUILD / "packaging" / "etc" / "medimg.ini"
    if packaged.exists():
        assert ini_cors_value(packaged) == ""
    lighttpd_snippet = (SOURCE / "lighttpd" / "medimg.conf").read_text()
    assert re.search(r'^var\.medimg_cors_origins = ""$', lighttpd_snippet, re.M)
    apache_snippet = (SOURCE / "apache" / "medimg.conf").read_text()
    assert not re.search(r"^\s*Define MEDIMG_CORS_(ORIGINS|ANY)", apache_snippet, re.M)


# --- the worker itself --------------------------------------------------------

@pytest.mark.parametrize("configured", ["http://viewer.example", "*"])
def test_worker_sends_no_cors_whatever_its_configuration(tree, configured):
    """Behind any web server the worker adds nothing to CORS, even with
    MEDIMG_CORS_ORIGINS set (as the old lighttpd snippet passed it)."""
    if not WORKER.exists():
        pytest.skip(f"{WORKER} is not built")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
    env.update(MEDIMG_DATA_ROOT=str(tree["root"]), MEDIMG_CORS_ORIGINS=configured,
               MEDIMG_CACHE_ENABLED="false", MEDIMG_SENDFILE_HEADER="none")
    proc = subprocess.Popen([str(WORKER), "--listen", f"127.0.0.1:{port}", "--threads", "2"],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_listening(proc, port)
        for path in (*DYNAMIC, MISSING[1]):
            for method in ("GET", "OPTIONS"):
                for origin in ("http://viewer.example", OTHER_ORIGIN, ""):
                    params = {"REQUEST_METHOD": method, "REQUEST_URI": path,
                              "SERVER_PROTOCOL": "HTTP/1.1"}
                    if origin:
                        params["HTTP_ORIGIN"] = origin
                    if method == "OPTIONS":
                        params["HTTP_ACCESS_CONTROL_REQUEST_METHOD"] = "GET"
                    status, headers, _ = fcgi_request(("127.0.0.1", port), params)
                    want = 204 if method == "OPTIONS" else 404 if path == MISSING[1] else 200
                    assert status == want, (path, method, status)
                    names = [k for k, _ in headers]
                    assert not [k for k in names if k.startswith("access-control-")], \
                        (path, method, origin, headers)
                    assert "vary" not in names, (path, method, origin, headers)
                    assert ("x-content-type-options", "nosniff") in headers
    finally:
        terminate(proc, 10)
