"""Apache-only deployments: the commented examples at the end of
apache/medimg.conf (Basic auth, LDAP syntax, TLS), the mod_fcgid variant,
mod_xsendfile on cached filter results, and two worker pools behind
mod_proxy_balancer surviving the loss of one."""

import base64
import gzip
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from apache_server import ApacheServer, apache_available, free_port, server_readable_dir  # noqa: E402
from server_process import identify, kill_exactly  # noqa: E402

BUILD = Path(os.environ.get("MEDIMG_BUILD_DIR", "build"))
SOURCE = Path(os.environ.get("MEDIMG_SOURCE_DIR", Path(__file__).resolve().parents[2]))
SNIPPET = SOURCE / "apache" / "medimg.conf"

pytestmark = pytest.mark.skipif(not apache_available(), reason="apache2 with mod_proxy_fcgi needed")


def example(title):
    """The commented example under `# {title}` in medimg.conf, uncommented."""
    lines = SNIPPET.read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("# " + title))
    out = []
    for line in lines[start + 1:]:
        if not line.startswith("#"):
            break
        if line.startswith("#   "):
            out.append(line[4:])
        elif out and line.strip() == "#":
            break
    assert out, f"no example under {title!r}"
    return "\n".join(out)


def get(url, headers=None, context=None, method="GET"):
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("apache-data") / "output"
    medimg = BUILD / "cli" / "medimg"
    assert medimg.exists(), f"{medimg} is not built"
    subprocess.run([str(medimg), "demo", str(root), "--size", "64x64x40", "--quiet"],
                   check=True, timeout=120, capture_output=True)
    return root


@pytest.fixture(scope="module")
def scan(data_root):
    """(url path of the patient's segmentation, label ids present)."""
    patient = next(p.name for p in data_root.iterdir() if p.is_dir())
    seg = next((data_root / patient / "scans").glob("*.nii.gz"))
    return f"{patient}/scans/{seg.name}", seg


def label_ids(server, rel):
    status, headers, body = get(f"{server.base_url}/output/{rel}/labels")
    assert status == 200, body
    ids = [l["id"] for l in json.loads(body)["labels"]]
    assert len(ids) >= 2
    return ids


def check_filtered(body, keep):
    nib = pytest.importorskip("nibabel")
    import io
    import numpy as np
    img = nib.Nifti1Image.from_stream(io.BytesIO(gzip.decompress(body)))
    values = set(np.unique(np.asarray(img.dataobj)).tolist())
    assert values <= set(keep) | {0}
    assert values & set(keep)


@pytest.fixture
def files_dir():
    """A directory Apache's children can read (pytest's tmp_path is 0700)."""
    d = server_readable_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("variant", ["proxy", "fcgid"])
@pytest.mark.parametrize("placement", ["after", "first"])
def test_basic_auth_example(data_root, scan, files_dir, variant, placement):
    """The example protects the worker's URLs and the files alike, under
    both ways of running the workers, whether the site's file with it is read
    after medimg's snippets or before them (a conf-enabled name that sorts
    first, such as medimg-auth.conf): no section of ours may replace it."""
    if not shutil.which("htpasswd"):
        pytest.skip("htpasswd (apache2-utils) missing")
    if variant == "fcgid" and not Path("/usr/lib/apache2/modules/mod_fcgid.so").exists():
        pytest.skip("mod_fcgid missing")
    passwd = files_dir / "htpasswd"
    subprocess.run(["htpasswd", "-cbB", str(passwd), "alice", "s3cret"], check=True,
                   capture_output=True)
    passwd.chmod(0o644)
    conf = example("Basic authentication").replace("/etc/medimg/htpasswd", str(passwd))
    rel, _ = scan
    where = {"extra_conf": conf} if placement == "after" else {"extra_conf_first": conf}
    with ApacheServer(BUILD, SOURCE, data_root, variant=variant, **where,
                      extra_modules=["auth_basic", "authn_file"]) as server:
        good = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}
        for path in (f"/output/{rel}", f"/filtered-scans/{rel}?label_ids=1",
                     f"/output/{rel}/labels", f"/output/{rel}/info"):
            status, headers, _ = get(server.base_url + path)
            assert status == 401
            assert headers.get("WWW-Authenticate", "").startswith("Basic")
            assert get(server.base_url + path, bad)[0] == 401
            assert get(server.base_url + path, good)[0] == 200
        # The health probe stays open, and so do CORS preflights (browsers
        # send them without credentials).
        assert get(server.base_url + "/health")[0] == 200
        for path in (f"/output/{rel}", f"/filtered-scans/{rel}?label_ids=1"):
            assert get(server.base_url + path, method="OPTIONS")[0] == 204
            assert get(server.base_url + path, method="POST")[0] in (401, 405)


def test_ldap_example_is_valid_syntax(data_root, tmp_path):
    conf = example("LDAP")
    # Syntax only: no directory server here.
    (tmp_path / "run").mkdir()
    mods = Path("/usr/lib/apache2/modules")
    lines = [f'ServerRoot "{tmp_path}"', "ServerName 127.0.0.1",
             f'DefaultRuntimeDir "{tmp_path}/run"', f'PidFile "{tmp_path}/run/pid"',
             "Listen 127.0.0.1:65500", f'ErrorLog "{tmp_path}/error.log"']
    lines += [f"LoadModule {m}_module {mods}/mod_{m}.so" for m in
              ("mpm_event", "authz_core", "authn_core", "auth_basic", "ldap", "authnz_ldap",
               "alias", "mime", "headers", "setenvif", "env", "proxy", "proxy_fcgi", "xsendfile")]
    lines += [f'Define MEDIMG_DATA_ROOT "{data_root}"',
              f'Define MEDIMG_SHARE_DIR "{SNIPPET.parent.parent}"', f'Include "{SNIPPET}"', conf]
    (tmp_path / "ldap.conf").write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["apache2", "-t", "-f", str(tmp_path / "ldap.conf")],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_tls_example(data_root, scan, tmp_path):
    cert, key = tmp_path / "medimg.pem", tmp_path / "medimg.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    tls_port = free_port()
    conf = (example("TLS")
            .replace("Listen 443\n", "")
            .replace("*:443", f"127.0.0.1:{tls_port}")
            .replace("/etc/ssl/certs/medimg.pem", str(cert))
            .replace("/etc/ssl/private/medimg.key", str(key)))
    rel, seg = scan
    with ApacheServer(BUILD, SOURCE, data_root, extra_conf=conf,
                      extra_modules=["ssl", "socache_shmcb"],
                      listen=[f"127.0.0.1:{tls_port}"]) as server:
        ctx = ssl.create_default_context(cafile=str(cert))
        base = f"https://127.0.0.1:{tls_port}"
        status, headers, body = get(base + "/health", context=ctx)
        assert status == 200 and json.loads(body)["status"] == "healthy"
        assert headers.get("Strict-Transport-Security")
        status, headers, body = get(base + f"/output/{rel}", {"Range": "bytes=0-1"}, ctx)
        assert status == 206 and body == b"\x1f\x8b"
        # Plain HTTP on the other port is unaffected, and the certificate is
        # really checked (a context without it refuses the server).
        assert get(server.base_url + "/health")[0] == 200
        with pytest.raises(urllib.error.URLError):
            get(base + "/health", context=ssl.create_default_context())


def test_fcgid_variant(data_root, scan):
    if not Path("/usr/lib/apache2/modules/mod_fcgid.so").exists():
        pytest.skip("libapache2-mod-fcgid missing")
    rel, _ = scan
    with ApacheServer(BUILD, SOURCE, data_root, variant="fcgid") as server:
        status, headers, body = get(server.base_url + "/health")
        assert status == 200 and json.loads(body)["status"] == "healthy"
        ids = label_ids(server, rel)
        keep = ids[:2]
        url = f"{server.base_url}/filtered-scans/{rel}?label_ids={','.join(map(str, keep))}"
        status, headers, body = get(url)
        assert status == 200, body
        assert headers["Content-Type"] == "application/gzip"
        assert "Content-Encoding" not in headers
        check_filtered(body, keep)
        # Several requests at once: mod_fcgid starts more one-thread workers.
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: get(server.base_url + f"/output/{rel}/labels"),
                                    range(12)))
        assert [a[0] for a in answers] == [200] * 12, [a for a in answers if a[0] != 200]


def test_xsendfile_serves_cached_results_with_range_and_etag(data_root, scan):
    rel, _ = scan
    with ApacheServer(BUILD, SOURCE, data_root) as server:
        ids = label_ids(server, rel)
        url = f"{server.base_url}/filtered-scans/{rel}?label_ids={ids[0]}"
        status, first, body = get(url)
        assert status == 200, body
        check_filtered(body, [ids[0]])
        status, headers, again = get(url)
        assert status == 200 and again == body
        etag = headers.get("ETag")
        assert etag and etag != '"0"', headers
        assert headers.get("Content-Disposition", "").startswith("attachment")
        assert headers.get("Content-Type") == "application/gzip"
        assert "Content-Encoding" not in headers
        assert "X-Sendfile" not in headers
        status, headers, part = get(url, {"Range": "bytes=10-19"})
        assert status == 206 and part == body[10:20]
        assert headers["Content-Range"] == f"bytes 10-19/{len(body)}"
        status, headers, part = get(url, {"Range": "bytes=-5"})
        assert status == 206 and part == body[-5:]
        assert get(url, {"If-None-Match": etag})[0] == 304
        status, _, head = get(url, method="HEAD")
        assert status == 200 and head == b""


def test_balancer_survives_losing_a_pool(data_root, scan):
    if not Path("/usr/lib/apache2/modules/mod_proxy_balancer.so").exists():
        pytest.skip("mod_proxy_balancer missing")
    rel, _ = scan
    with ApacheServer(BUILD, SOURCE, data_root, pools=2, threads=2) as server:
        ids = label_ids(server, rel)
        urls = [f"{server.base_url}/output/{rel}/labels",
                f"{server.base_url}/filtered-scans/{rel}?label_ids={ids[0]}",
                f"{server.base_url}/health"]
        results = []
        for i in range(30):
            if i == 10:
                server.kill_pool(0)
            status, _, body = get(urls[i % len(urls)])
            results.append(status)
        assert results == [200] * 30, results
        # The remaining pool answers alone from now on.
        assert get(urls[0])[0] == 200
        server.kill_pool(1)
        assert get(urls[2])[0] in (502, 503)


def test_spawn_fcgi_multiwatch_pool_restarts_workers(data_root, scan):
    """The documented non-systemd pool: spawn-fcgi + multiwatch -f 2."""
    if not shutil.which("multiwatch"):
        pytest.skip("multiwatch missing")
    import signal
    import time
    rel, _ = scan
    with ApacheServer(BUILD, SOURCE, data_root, processes=2, threads=2) as server:
        deadline = time.monotonic() + 10
        while len(server.worker_pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        before = identify(server.worker_pids())
        assert len(before) == 2, before
        assert kill_exactly(before[0], signal.SIGKILL)
        # The other process answers meanwhile; multiwatch starts a new one.
        for _ in range(10):
            assert get(f"{server.base_url}/output/{rel}/labels")[0] == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = identify(server.worker_pids())
            if len(now) == 2 and before[0] not in now:
                break
            time.sleep(0.05)
        assert len(now) == 2 and before[0] not in now and before[1] in now, (before, now)


def test_without_xsendfile(data_root, scan):
    """mod_xsendfile missing: refused at start unless the worker streams."""
    rel, _ = scan
    server = ApacheServer(BUILD, SOURCE, data_root, cache=False)
    with server:
        ids = label_ids(server, rel)
        status, headers, body = get(f"{server.base_url}/filtered-scans/{rel}?label_ids={ids[0]}")
        assert status == 200 and "X-Sendfile" not in headers
        check_filtered(body, [ids[0]])
        # The same configuration without the opt-out does not start.
        broken = server.conf.with_name("broken.conf")
        conf = server.conf.read_text()
        assert "Define MEDIMG_NO_XSENDFILE\n" in conf
        broken.write_text(conf.replace("Define MEDIMG_NO_XSENDFILE\n", ""))
        proc = subprocess.run(["apache2", "-t", "-f", str(broken)], capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode != 0 and "mod_xsendfile is not loaded" in proc.stderr


def test_fcgid_workers_take_the_data_root_from_apache(data_root, scan, tmp_path):
    """Under mod_fcgid, Define MEDIMG_DATA_ROOT is the one place for the data
    root: the workers Apache starts use it even where their ini names
    another directory."""
    if not Path("/usr/lib/apache2/modules/mod_fcgid.so").exists():
        pytest.skip("libapache2-mod-fcgid missing")
    rel, _ = scan
    elsewhere = server_readable_dir("medimg-other-root-")

    class OtherIni(ApacheServer):
        def _write_ini(self):
            super()._write_ini()
            text = re.sub(r"^data_root = .*$", f"data_root = {elsewhere}",
                          self.ini.read_text(), flags=re.M)
            self.ini.write_text(text)

    try:
        with OtherIni(BUILD, SOURCE, data_root, variant="fcgid") as server:
            assert f"data_root = {elsewhere}" in server.ini.read_text()
            status, _, body = get(f"{server.base_url}/output/{rel}/labels")
            assert status == 200, body
            assert json.loads(body)["labels"]
            status, _, body = get(f"{server.base_url}/filtered-scans/{rel}?label_ids=1")
            assert status == 200 and body[:2] == b"\x1f\x8b"
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)
