"""Active documents under the data root never run in the server's origin
(docs/SECURITY.md, "Active documents"): HTML, SVG, XML and scripts under
/output/ come with `Content-Security-Policy: sandbox` on lighttpd
(`medimg serve`) and Apache, on GET and HEAD, whatever the suffix's case;
listings and www/ keep working unsandboxed."""

import shutil
import subprocess

import pytest

from conftest import PATIENT, make_tree, request, selected_kinds, start_server

SCRIPT = b"<script>fetch('/output/').then(r => r.text()).then(t => parent.postMessage(t, '*'))</script>"
ACTIVE = {
    "report.html": b"<!doctype html><title>r</title>" + SCRIPT,
    "REPORT2.HTML": b"<html>" + SCRIPT + b"</html>",
    "old.htm": b"<html>" + SCRIPT + b"</html>",
    "figure.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>',
    "Figure2.SvG": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "page.xhtml": b'<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>',
    "data.xml": b'<?xml version="1.0"?><x xmlns:h="http://www.w3.org/1999/xhtml"><h:script>alert(1)</h:script></x>',
    "tool.js": b"alert(document.cookie)\n",
    "mod.mjs": b"export default 1\n",
}
# Scripts that leave a mark in the DOM when they run (read back by Chromium).
MARK = b'document.documentElement.setAttribute("data-ran", "yes")'
PROBES = {
    "probe.html": b"<!doctype html><html><body><script>" + MARK + b"</script></body></html>",
    "probe.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>' + MARK + b"</script></svg>",
}
CHROMIUM = shutil.which("chromium")

# Suffixes outside the list that /etc/mime.types (Apache's TypesConfig) maps
# to XML types, which a browser renders as documents (XHTML script runs).
OTHER_XML = {
    "feed.atom": b'<feed xmlns="http://www.w3.org/2005/Atom"><h:script xmlns:h="http://www.w3.org/1999/xhtml">alert(1)</h:script></feed>',
    "formula.mml": b'<math xmlns="http://www.w3.org/1998/Math/MathML"><h:script xmlns:h="http://www.w3.org/1999/xhtml">alert(1)</h:script></math>',
}
ACTIVE_TYPES = ("html", "xml", "svg", "javascript", "ecmascript")
INERT = {
    "notes.txt": (b"plain <b>text</b>\n", "text/plain"),
    "values.json": (b'{"a": 1}\n', "application/json"),
}


@pytest.fixture(scope="module")
def active_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("active") / "output"
    make_tree(root)
    folder = root / PATIENT / "documents"
    folder.mkdir()
    for name, body in ACTIVE.items():
        (folder / name).write_bytes(body)
    for name, (body, _) in INERT.items():
        (folder / name).write_bytes(body)
    for name, body in {**OTHER_XML, **PROBES}.items():
        (folder / name).write_bytes(body)
    # A directory whose name looks like a document: its listing is a listing.
    (root / PATIENT / "looks.html").mkdir()
    (root / PATIENT / "looks.html" / "inside.txt").write_bytes(b"x\n")
    return root


@pytest.fixture(scope="module", params=selected_kinds())
def server(request, active_root):
    s = start_server(request.param, active_root, cors_origins=None)
    yield s
    s.stop()


def csp(answer):
    values = answer.headers.get_all("Content-Security-Policy") or []
    return values


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("name", sorted(ACTIVE))
def test_active_documents_are_sandboxed(server, name, method):
    a = request(server.base_url, f"/output/{PATIENT}/documents/{name}", method=method)
    assert a.status == 200
    assert csp(a) == ["sandbox"], (name, a.headers.items())
    assert a.header("X-Content-Type-Options") == "nosniff"
    if method == "GET":
        assert a.body == ACTIVE[name]
    else:
        assert a.body == b""


@pytest.mark.parametrize("name", sorted(OTHER_XML))
def test_other_document_types_are_inert(server, name):
    """Sandboxed, or sent as a type no browser runs."""
    a = request(server.base_url, f"/output/{PATIENT}/documents/{name}")
    assert a.status == 200
    ctype = (a.header("Content-Type") or "").lower()
    assert csp(a) == ["sandbox"] or not any(t in ctype for t in ACTIVE_TYPES), \
        (name, ctype, csp(a))


@pytest.mark.parametrize("name", sorted(INERT))
def test_other_files_are_served_as_before(server, name):
    body, ctype = INERT[name]
    a = request(server.base_url, f"/output/{PATIENT}/documents/{name}")
    assert a.status == 200 and a.body == body
    assert (a.header("Content-Type") or "").startswith(ctype)
    assert csp(a) == []


def test_nifti_is_not_sandboxed(server):
    a = request(server.base_url, f"/output/{PATIENT}/scans/{PATIENT}_CT.nii.gz",
                headers={"Range": "bytes=0-1"})
    assert a.status == 206 and a.body == b"\x1f\x8b"
    assert csp(a) == []


@pytest.mark.parametrize("path", [f"/output/{PATIENT}/documents/", f"/output/{PATIENT}/",
                                  f"/output/{PATIENT}/looks.html/"])
def test_listings_keep_their_script(server, path):
    a = request(server.base_url, path)
    assert a.status == 200
    assert (a.header("Content-Type") or "").startswith("text/html")
    assert csp(a) == [], a.headers.items()
    text = a.body.decode("utf-8", "replace")
    assert "/assets/listing.js" in text and "/assets/listing.css" in text
    if path.endswith("documents/"):
        for name in ACTIVE:
            assert name in text


@pytest.mark.parametrize("path", ["/assets/listing.js", "/assets/listing.css", "/viewer.html", "/"])
def test_www_is_not_sandboxed(server, path):
    for method in ("GET", "HEAD"):
        a = request(server.base_url, path, method=method)
        assert a.status == 200, (path, method)
        assert csp(a) == [], (path, method)


def test_dynamic_route_on_a_document_name_is_the_workers(server):
    """…/report.html/info is the worker's JSON 415 (not NIfTI), not a page."""
    a = request(server.base_url, f"/output/{PATIENT}/documents/report.html/info")
    assert a.status in (415, 422), a.body[:200]
    assert a.header("Content-Type") == "application/json"


def dump_dom(url, profile):
    """The DOM after Chromium has loaded `url` and run what it may run."""
    proc = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, timeout=120)
    return proc.stdout.decode("utf-8", "replace")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
@pytest.mark.parametrize("name", sorted(PROBES))
def test_scripts_do_not_run_in_a_browser(server, name, active_root, tmp_path):
    """Real Chromium: the probe's script runs from a file:// URL (control),
    and does not run when the server sends it."""
    local = active_root / PATIENT / "documents" / name
    assert 'data-ran="yes"' in dump_dom(local.as_uri(), tmp_path / "a")
    served = dump_dom(f"{server.base_url}/output/{PATIENT}/documents/{name}", tmp_path / "b")
    assert "data-ran" not in served.replace(MARK.decode(), ""), served[:500]
    assert "<script>" in served          # the document itself was loaded
