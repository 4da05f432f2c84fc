"""`medimg serve` as a process: binds only the address asked for, runs side
by side with another instance, restarts a killed worker, and leaves no
process or runtime directory behind on SIGTERM."""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (BUILD, MEDIMG, PATIENT, SCAN, SOURCE, WORKER, LighttpdServer, free_port,
                      identify, kill_exactly, request, tree_of, wait_gone)

pytestmark = pytest.mark.skipif(not (MEDIMG.exists() and WORKER.exists()),
                                reason="medimg and medimg-fcgi must be built")


@pytest.fixture
def own_server(tree):
    servers = []

    def start(**options):
        s = LighttpdServer(BUILD, SOURCE, tree["root"], **options)
        s.start()
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def non_loopback_ipv4():
    """An address of this host other than 127.x, if any."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))   # no packet is sent
            addr = s.getsockname()[0]
            return None if addr.startswith("127.") else addr
    except OSError:
        return None


def test_binds_only_the_given_address(own_server):
    s = own_server()
    assert request(s.base_url, "/health").status == 200
    # 127.0.0.2 is loopback too, but not the address asked for.
    with socket.socket() as c:
        c.settimeout(2)
        assert c.connect_ex(("127.0.0.2", s.port)) != 0
    other = non_loopback_ipv4()
    if other:
        with socket.socket() as c:
            c.settimeout(2)
            assert c.connect_ex((other, s.port)) != 0


def test_two_instances_side_by_side(own_server):
    a = own_server(workers=1, threads=2)
    b = own_server(workers=1, threads=2, listing=False)
    assert a.port != b.port
    assert a.runtime_dir() != b.runtime_dir()
    url = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=3"
    ra, rb = request(a.base_url, url), request(b.base_url, url)
    assert ra.status == 200 and rb.status == 200 and ra.body == rb.body
    assert request(a.base_url, f"/output/{PATIENT}/").status == 200
    assert request(b.base_url, f"/output/{PATIENT}/").status in (403, 404)


def test_sigterm_leaves_nothing_behind(own_server):
    s = own_server(workers=2, threads=2)
    rt = s.runtime_dir()
    workers = s.worker_pids()
    assert len(workers) == 2
    everything = tree_of(s.proc)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(20) == 0
    assert wait_gone(everything, timeout=5) == []
    assert not rt.exists()
    # the port is free again
    with socket.socket() as c:
        c.settimeout(1)
        assert c.connect_ex(("127.0.0.1", s.port)) != 0
    s.proc = None


def test_sigkill_of_serve_stops_what_it_started(own_server):
    """`medimg serve` killed outright (SIGKILL, the OOM killer) has no chance
    to stop anything: lighttpd, told by the kernel that its parent died,
    stops itself and its workers, so the data root is not left served on the
    port by processes nobody sees any more."""
    import shutil
    s = own_server(workers=2, threads=2)
    rt = s.runtime_dir()
    assert len(s.worker_pids()) == 2
    everything = tree_of(s.proc)
    assert len(everything) >= 4, everything       # serve, lighttpd, two workers
    os.killpg(s.proc.pid, signal.SIGKILL)          # serve's group: not lighttpd's
    s.proc.wait(10)
    assert wait_gone(everything, timeout=15) == []
    with socket.socket() as c:
        c.settimeout(1)
        assert c.connect_ex(("127.0.0.1", s.port)) != 0
    shutil.rmtree(rt, ignore_errors=True)          # left behind: nobody could remove it
    s.proc = None


def test_sigint_stops_too(own_server):
    s = own_server(workers=1, threads=1)
    everything = tree_of(s.proc)
    s.proc.send_signal(signal.SIGINT)
    assert s.proc.wait(20) == 0
    assert wait_gone(everything, timeout=5) == []
    s.proc = None


def test_killed_worker_is_restarted_under_load(own_server):
    s = own_server(workers=2, threads=2)
    before = set(s.worker_pids())
    assert len(before) == 2
    url = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1-3"
    failures, successes = [], []
    stop = threading.Event()

    def load():
        while not stop.is_set() and len(successes) < 400:
            try:
                a = request(s.base_url, url, timeout=30)
                (successes if a.status == 200 else failures).append(a.status)
            except OSError as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    victim = identify([sorted(before)[0]])[0]
    assert kill_exactly(victim, signal.SIGKILL)
    # lighttpd notices the dead worker and starts a new one (bounded wait).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        now = set(identify(s.worker_pids()))
        if victim not in now and len(now) == 2:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(60)
    now = set(identify(s.worker_pids()))
    assert victim not in now
    assert len(now) == 2, now
    # Requests in flight on the killed worker may fail; afterwards all succeed.
    assert len(failures) <= 6, failures
    for _ in range(10):
        assert request(s.base_url, url).status == 200
    assert successes


def test_empty_data_root_gets_a_demo(tmp_path):
    # Default size is 512x512x400; a small size keeps the suite fast, so the
    # demo is checked through the same code path with a tiny tree made by
    # `medimg demo` itself: an empty root must be filled before serving.
    root = tmp_path / "empty-root"
    root.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
    env["MEDIMG_DEMO_SIZE"] = "32x32x8"
    proc = subprocess.Popen([str(MEDIMG), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--data-root", str(root), "--workers", "1", "--threads", "1",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        ok = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if request(f"http://127.0.0.1:{port}", "/health", timeout=2).status == 200:
                    ok = True
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert ok, proc.stdout.read1(10000) if proc.poll() is not None else "timeout"
        assert (root / PATIENT / "scans").is_dir()
        assert request(f"http://127.0.0.1:{port}", f"/output/{PATIENT}/").status == 200
    finally:
        tree = tree_of(proc)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert wait_gone(tree, timeout=5) == []
    out = proc.stdout.read().decode(errors="replace")
    assert "demo" in out
    assert f"Serving {root}" in out and f"http://127.0.0.1:{port}/" in out


class HostServer(LighttpdServer):
    """`medimg serve --host HOST`, optionally started through `wrapper`."""

    def __init__(self, *a, host, wrapper=(), **kw):
        super().__init__(*a, **kw)
        self.host, self.wrapper = host, list(wrapper)

    def command(self):
        cmd = super().command()
        cmd[cmd.index("--host") + 1] = self.host
        return self.wrapper + cmd


def assert_loopback_only(s):
    assert request(s.base_url, "/health").status == 200
    with socket.socket() as c:
        c.settimeout(2)
        assert c.connect_ex(("127.0.0.2", s.port)) != 0


@pytest.mark.parametrize("host", ["medimg-test.localhost", "LocalHost."])
def test_localhost_names_bind_loopback(tree, host):
    # RFC 6761: localhost names are loopback without asking the resolver
    # (nothing resolves medimg-test.localhost on a machine without DNS).
    s = HostServer(BUILD, SOURCE, tree["root"], host=host, workers=1, threads=1)
    s.start()
    try:
        assert_loopback_only(s)
    finally:
        s.stop()


def test_localhost_without_hosts_file(tree, tmp_path):
    """A minimal root with no /etc/hosts: `--host localhost` (the default)
    still binds 127.0.0.1 (it used to exit with "cannot resolve localhost")."""
    private_ns = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0 or not Path("/usr/bin/unshare").exists():
        pytest.skip("needs root and unshare for a private mount namespace")
    if subprocess.run(private_ns + ["true"], capture_output=True).returncode != 0:
        # In a chroot "/" is no mount point and cannot be made private; bind
        # mounts there could reach the host's namespace, so none are made.
        pytest.skip("no private mount namespace here (a chroot?)")
    hosts, nss = tmp_path / "hosts", tmp_path / "nsswitch.conf"
    hosts.write_text("")
    nss.write_text("hosts: files\n")
    # This process sees neither file of the host: the resolver knows no name.
    hide = (f'mount --bind "{hosts}" /etc/hosts && mount --bind "{nss}" /etc/nsswitch.conf'
            ' && getent hosts localhost; [ $? = 2 ] || { echo resolver still answers; exit 3; }'
            ' && exec "$@"')
    s = HostServer(BUILD, SOURCE, tree["root"], host="localhost", workers=1, threads=1,
                   wrapper=private_ns + ["sh", "-c", hide, "sh"])
    s.start()
    try:
        assert_loopback_only(s)
    finally:
        s.stop()


# --- start-up failures: one message, the error table's exit code, nothing left

def serve_once(data_root, *args, port=None, timeout=60):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEDIMG_") and k not in ("IMAGE_SERVER", "OUTPUT_FOLDER")}
    port = port or free_port()
    cmd = [str(MEDIMG), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-root", str(data_root), "--workers", "1", "--threads", "1", "--quiet", *args]
    return port, subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                env=env, timeout=timeout, start_new_session=True)


def runtime_dirs(port):
    """`medimg serve`'s runtime directories for `port` (docs/SECURITY.md)."""
    found = list(Path("/tmp").glob(f"medimg-{os.getuid()}-{port}-*"))
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        found += list(Path(xdg).glob(f"medimg-{port}-*"))
    return found


@pytest.mark.parametrize("name", ['scans"x', "scans\\x"])
def test_data_root_lighttpd_cannot_hold_is_refused(tmp_path, name):
    """A double quote or a backslash would end or escape lighttpd's string:
    refused naming the data root, before the demo is generated."""
    root = tmp_path / name
    port, r = serve_once(root)
    assert r.returncode == 2, r.stderr
    assert f"medimg serve: data root: characters lighttpd's configuration cannot hold: {root}" in r.stderr
    assert "(see 'medimg serve --help')" in r.stderr
    assert list(root.iterdir()) == []          # no demo patient
    assert runtime_dirs(port) == []


def test_data_root_with_spaces_is_served(tmp_path, tree):
    root = tmp_path / "my scans"
    (root / "PA 1").mkdir(parents=True)
    (root / "PA 1" / "notes.txt").write_text("kept")
    s = LighttpdServer(BUILD, SOURCE, root, workers=1, threads=1)
    s.start()
    try:
        assert request(s.base_url, "/health").status == 200
        assert request(s.base_url, "/output/PA%201/notes.txt").body == b"kept"
    finally:
        s.stop()


@pytest.mark.parametrize("args, message, code", [
    (["--workers", "0"], "workers", 2),                                   # bad_parameter
    (["--config", "/nonexistent/medimg.ini"], "/nonexistent/medimg.ini not found", 1),   # not_found
    (["--unknown-flag"], "unknown option '--unknown-flag'", 2),
])
def test_bad_settings_exit_with_the_table_code(tmp_path, tree, args, message, code):
    port, r = serve_once(tree["root"], *args)
    assert r.returncode == code, r.stderr
    assert r.stderr.startswith("medimg serve: ") and message in r.stderr, r.stderr
    assert runtime_dirs(port) == []


def test_port_in_use_is_a_start_up_failure(tree):
    """lighttpd cannot bind: it exits, serve stops everything it started and
    exits 1 (io_error) with one sentence, not a traceback of lighttpd's."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _, r = serve_once(tree["root"], port=port)
    assert r.returncode == 1, r.stderr
    assert "medimg serve: lighttpd exited unexpectedly (exit code " in r.stderr, r.stderr
    assert r.stderr.count("medimg serve: ") == 1, r.stderr
    assert runtime_dirs(port) == []
