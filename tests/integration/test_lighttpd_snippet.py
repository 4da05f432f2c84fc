"""The drop-in snippet lighttpd/medimg.conf, as installed into a Debian-style
lighttpd (main config with create-mime, access rules and conf-enabled
include): its paths are pointed at the test tree, the worker is spawned by
lighttpd (bin-path), and the routes answer."""

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (PATIENT, SCAN, SOURCE, WORKER, check_serves, free_port, kill_exactly,
                      listening_sockets, request, tree_of, wait_gone)

LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"

pytestmark = pytest.mark.skipif(not (Path(LIGHTTPD).exists() and WORKER.exists()),
                                reason="lighttpd and medimg-fcgi needed")


def install_snippet(tmp, data_root, port):
    text = (SOURCE / "lighttpd" / "medimg.conf").read_text()
    subst = {
        "var.medimg_data_root": str(data_root),
        "var.medimg_www_root": str(SOURCE / "www"),
        "var.medimg_lighttpd_dir": str(SOURCE / "lighttpd"),
        "var.medimg_cache_dir": str(tmp / "cache"),
    }
    for var, value in subst.items():
        text, n = re.subn(rf'^{re.escape(var)}\s*=\s*"[^"]*"', f'{var} = "{value}"', text,
                          flags=re.M)
        assert n == 1, var
    text = text.replace('"/run/lighttpd/medimg-fcgi.sock"', f'"{tmp}/fcgi.sock"')
    text = text.replace('"/var/log/lighttpd/breakage.log"', f'"{tmp}/breakage.log"')
    text = text.replace('"/usr/bin/medimg-fcgi --config /etc/medimg/medimg.ini"',
                        f'"{WORKER} --threads 2"')
    (tmp / "cache").mkdir()
    enabled = tmp / "conf-enabled"
    enabled.mkdir()
    (enabled / "50-medimg.conf").write_text(text)
    main = tmp / "lighttpd.conf"
    main.write_text(f"""
server.modules = ( "mod_indexfile", "mod_access", "mod_alias", "mod_redirect" )
server.document-root = "{tmp}/html"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{tmp}/error.log"
index-file.names = ( "index.html" )
url.access-deny = ( "~", ".inc" )
include_shell "/usr/share/lighttpd/create-mime.conf.pl"
include "{enabled}/*.conf"
server.modules += ( "mod_dirlisting", "mod_staticfile" )
""")
    (tmp / "html").mkdir()
    return main


def start_lighttpd(conf, port, path="/health", log=None, env=None):
    """`lighttpd -D -f conf` after `lighttpd -tt`, once `path` answers 200 on
    127.0.0.1:port. The caller terminates the returned process."""
    check = subprocess.run([LIGHTTPD, "-tt", "-f", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([LIGHTTPD, "-D", "-f", str(conf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    deadline = time.monotonic() + 20
    answer = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            answer = request(f"http://127.0.0.1:{port}", path, timeout=5)
            if answer.status == 200:
                check_serves(proc, port, "lighttpd")
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.terminate()
    proc.wait(15)
    raise AssertionError(Path(log).read_text() if log and Path(log).exists() else
                         f"lighttpd did not answer {path}")


def stop_lighttpd(proc):
    """SIGTERM to lighttpd; nothing it started may outlive it."""
    everything = tree_of(proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(15)
    left = wait_gone(everything, timeout=5)
    for p in left:
        kill_exactly(p, signal.SIGKILL)
    assert left == []


@contextlib.contextmanager
def running_snippet(tmp, data_root, env=None):
    """lighttpd with the installed snippet, spawning its workers; yields the
    base URL once /health answers, and checks that nothing outlives it."""
    port = free_port()
    conf = install_snippet(tmp, data_root, port)
    proc = start_lighttpd(conf, port, log=tmp / "error.log", env=env)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_lighttpd(proc)


def test_snippet_in_debian_layout(tree, tmp_path):
    with running_snippet(tmp_path, tree["root"]) as base:
        seg = f"/output/{PATIENT}/scans/{SCAN}.nii.gz"
        a = request(base, seg)
        assert a.status == 200
        assert a.header("Content-Type") == "application/gzip"
        assert a.header("ETag")
        assert a.header("X-Content-Type-Options") == "nosniff"
        assert request(base, f"/output/{PATIENT}/.env").status == 403
        f = request(base, f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1")
        assert f.status == 200 and f.body[:2] == b"\x1f\x8b"
        r = request(base, f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1",
                    headers={"Range": "bytes=0-9"})
        assert r.status == 206 and r.body == f.body[:10]
        assert request(base, "/").status == 200
        assert request(base, "/package.json").status == 404


def basic_auth_example(userfile):
    """The snippet's commented Basic-authentication example, uncommented as
    its comment says, with `userfile` for the password file."""
    text = (SOURCE / "lighttpd" / "medimg.conf").read_text()
    start = text.index("## Basic authentication (mod_auth + mod_authn_file)")
    end = text.index("## LDAP instead of a password file")
    lines = [l[1:] for l in text[start:end].splitlines() if l.startswith("#") and not l.startswith("##")]
    example = "\n".join(lines).replace("/etc/lighttpd/medimg.htpasswd", str(userfile))
    assert 'auth.require' in example and 'mod_auth' in example, example
    return example + "\n"


@pytest.mark.skipif(not shutil.which("htpasswd") or not Path("/usr/lib/lighttpd/mod_authn_file.so").exists(),
                    reason="htpasswd (apache2-utils) and lighttpd's mod_authn_file needed")
@pytest.mark.parametrize("placement", ["after", "first"])
def test_basic_auth_example(tree, tmp_path, placement):
    """The snippet's Basic example guards the files and every worker route
    alike, whether it is appended to the snippet or in a conf-enabled file
    read before it; /health stays open for probes."""
    import base64
    userfile = tmp_path / "medimg.htpasswd"
    subprocess.run(["htpasswd", "-cbB", str(userfile), "alice", "s3cret"], check=True,
                   capture_output=True)
    port = free_port()
    conf = install_snippet(tmp_path, tree["root"], port)
    example = basic_auth_example(userfile)
    if placement == "after":
        snippet = tmp_path / "conf-enabled" / "50-medimg.conf"
        snippet.write_text(snippet.read_text() + example)
    else:
        (tmp_path / "conf-enabled" / "10-auth.conf").write_text(example)
    proc = start_lighttpd(conf, port, log=tmp_path / "error.log")
    try:
        base = f"http://127.0.0.1:{port}"
        good = {"Authorization": "Basic " + base64.b64encode(b"alice:s3cret").decode()}
        bad = {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}
        seg = f"{PATIENT}/scans/{SCAN}.nii.gz"
        for path in (f"/output/{seg}", f"/output/{PATIENT}/", f"/filtered-scans/{seg}?label_ids=1",
                     f"/output/{seg}/labels", f"/output/{seg}/info", "/viewer.html"):
            a = request(base, path)
            assert a.status == 401, (placement, path, a.status)
            assert (a.header("WWW-Authenticate") or "").startswith("Basic"), (path, a.headers)
            assert request(base, path, headers=bad).status == 401, (placement, path)
            assert request(base, path, headers=good).status == 200, (placement, path)
        assert request(base, "/health").status == 200
    finally:
        stop_lighttpd(proc)


@pytest.mark.parametrize("group", [None, "own"])
def test_cache_files_private_under_umask_022(tree, tmp_path, group):
    """Cached results are patient data (docs/SECURITY.md): a real worker
    behind lighttpd, started under umask 022, creates its cache folders and
    files without any access for others, and for the group only when
    [cache] group names one; lighttpd still sends them (X-Sendfile)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
    if group:
        env["MEDIMG_CACHE_GROUP"] = str(os.getegid())
    old = os.umask(0o022)
    try:
        with running_snippet(tmp_path, tree["root"], env) as base:
            f = request(base, f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1")
            assert f.status == 200 and f.body[:2] == b"\x1f\x8b"
            again = request(base, f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1")
            assert again.status == 200 and again.body == f.body
            assert request(base, f"/output/{PATIENT}/voxels/{SCAN}/original/all.nii.gz/labels").status == 200
    finally:
        os.umask(old)
    cache = tmp_path / "cache"
    entries = [p for p in cache.rglob("*") if ".locks" not in p.parts]
    files = [p for p in entries if p.is_file()]
    assert any(p.name.endswith(".nii.gz") for p in files), entries
    assert any(p.name.endswith(".json") for p in files), entries
    want_dir, want_file = (0o2750, 0o640) if group else (0o700, 0o600)
    for p in [cache] + entries:
        st = p.lstat()
        mode = stat.S_IMODE(st.st_mode)
        assert mode == (want_dir if p.is_dir() else want_file), (p, oct(mode))
        if group:
            assert st.st_gid == os.getegid(), p
    for p in (cache / ".locks").iterdir():
        assert stat.S_IMODE(p.lstat().st_mode) & 0o077 == 0, p


def listening_addresses(port):
    """Local addresses of the TCP sockets listening on `port` (hex, as in /proc/net)."""
    return {address for address, _ in listening_sockets(port)}


def test_debian_lighttpd_on_loopback(tmp_path):
    """DEPLOYMENT.md's command that keeps Debian's lighttpd on loopback, run
    on a copy of Debian's lighttpd.conf: 127.0.0.1 and ::1, nothing else."""
    debian = Path("/etc/lighttpd/lighttpd.conf")
    if not debian.exists() or "use-ipv6.pl" not in debian.read_text():
        pytest.skip("Debian's /etc/lighttpd/lighttpd.conf needed")
    doc = (SOURCE / "docs" / "DEPLOYMENT.md").read_text()
    block = re.search(r"```sh\n(sed -i .*?/etc/lighttpd/lighttpd\.conf)\n", doc, re.S)
    assert block and "use-ipv6" in block.group(1), "the loopback command left DEPLOYMENT.md"
    conf = tmp_path / "lighttpd.conf"
    shutil.copy(debian, conf)
    cmd = block.group(1).replace("/etc/lighttpd/lighttpd.conf", str(conf))
    subprocess.run(["sh", "-c", cmd], check=True, timeout=30)
    text = conf.read_text()
    assert 'server.bind                 = "127.0.0.1"' in text and "use-ipv6.pl" not in text
    # Only what this test cannot use from the system: port, files, user.
    port = free_port()
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "index.html").write_text("ok\n")
    (tmp_path / "enabled").mkdir()
    text = re.sub(r"^server\.port\s*=.*$", f"server.port = {port}", text, flags=re.M)
    text = text.replace('"[::1]:80"', f'"[::1]:{port}"')
    for key, value in (("document-root", tmp_path / "html"), ("errorlog", tmp_path / "error.log"),
                       ("pid-file", tmp_path / "pid"), ("upload-dirs", None)):
        text = re.sub(rf"^server\.{key}\s*=.*$",
                      f'server.{key} = "{value}"' if value else "", text, flags=re.M)
    text = re.sub(r"^server\.(username|groupname)\s*=.*$", "", text, flags=re.M)
    text = text.replace('"/etc/lighttpd/conf-enabled/*.conf"', f'"{tmp_path}/enabled/*.conf"')
    conf.write_text(text)
    proc = start_lighttpd(conf, port, path="/", log=tmp_path / "error.log")
    try:
        import http.client
        v6 = http.client.HTTPConnection("::1", port, timeout=5)
        v6.request("GET", "/")
        assert v6.getresponse().status == 200
        v6.close()
        # 127.0.0.1 and ::1 only: no 0.0.0.0, no [::].
        assert listening_addresses(port) == {"0100007F", "00000000000000000000000001000000"}
    finally:
        proc.terminate()
        proc.wait(15)
