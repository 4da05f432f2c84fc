"""SIGTERM to one worker of a pool that shares one listening socket ends
that process only (docs/SECURITY.md, docs/ARCHITECTURE.md; docs/DEPLOYMENT.md, "Stopping one
worker"). Each supervisor hands the socket differently, so each is run for
real: spawn-fcgi + multiwatch behind lighttpd and behind Apache, lighttpd's
own bin-path pool (`medimg serve`), and a socket passed on fd 0 the way
systemd socket activation passes it, to a worker that is then replaced."""

import gzip
import os
import signal
import socket
import threading
import time

import nibabel as nib
import numpy as np
import pytest

from conftest import BUILD, PATIENT, SCAN, SOURCE, WORKER, LighttpdServer, _available, request
from pool_servers import (LIGHTTPD, MULTIWATCH, SPAWN_FCGI, SnippetLighttpd, external_backend,
                          listening_unix_socket, single_scan_root, spawn_multiwatch_pool,
                          stop_tree, worker_environment, worker_on_fd0, workers_under)
from server_process import identify, kill_exactly, wait_gone

pytestmark = pytest.mark.skipif(
    not (os.path.exists(LIGHTTPD) and WORKER.exists() and os.path.exists(SPAWN_FCGI)
         and os.path.exists(MULTIWATCH)),
    reason="lighttpd, spawn-fcgi, multiwatch and medimg-fcgi needed")

SLOW = "slow.nii.gz"


@pytest.fixture(scope="module")
def slow_root(tmp_path_factory):
    """A label map that takes a while to filter (an answer in flight)."""
    data = np.random.default_rng(11).integers(0, 40, size=(256, 256, 160), dtype=np.int16)
    return {"root": single_scan_root(tmp_path_factory, "pool", PATIENT, SLOW, data), "data": data}


class Checker:
    """Answers that must be right: /health, and filters of the demo scan,
    each with label ids not asked before (so the worker computes them)."""

    def __init__(self, tree):
        self.seg = tree["seg"]
        self.labels = [int(v) for v in np.unique(self.seg) if v != 0]
        self.asked = 0

    def next_ids(self):
        i = self.asked
        self.asked += 1
        a = self.labels[i % len(self.labels)]
        b = self.labels[(i // len(self.labels) + i + 1) % len(self.labels)]
        return sorted({a, b}) + [100000 + i]      # the last id makes every query new

    def round(self, base, n, failures_ok=0):
        bad = []
        for _ in range(n):
            try:
                h = request(base, "/health", timeout=15)
                if h.status != 200 or h.json().get("status") != "healthy":
                    bad.append(("health", h))
                ids = self.next_ids()
                path = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=" + ",".join(map(str, ids))
                f = request(base, path, timeout=30)
                if f.status != 200:
                    bad.append((path, f))
                    continue
                got = np.asanyarray(nib.Nifti1Image.from_bytes(gzip.decompress(f.body)).dataobj)
                want = np.where(np.isin(self.seg, ids), self.seg, 0)
                if not np.array_equal(got, want):
                    bad.append((path, "wrong voxels"))
            except OSError as e:
                bad.append(("connection", e))
        assert len(bad) <= failures_ok, bad[:5]


def wait_replaced(pids_of, gone, count, timeout=20, nudge=None):
    """Waits until `count` workers run and none of `gone` is among them."""
    deadline = time.monotonic() + timeout
    now = []
    while time.monotonic() < deadline:
        now = pids_of()
        if len(now) == count and not set(now) & set(gone):
            return now
        if nudge:
            nudge()
        time.sleep(0.2)
    raise AssertionError(f"workers {now} after {timeout} s; wanted {count} without {gone}")


def sigterm(pid):
    worker = identify([pid])
    assert worker and kill_exactly(worker[0], signal.SIGTERM), f"worker {pid} gone before SIGTERM"
    assert wait_gone(worker, timeout=10) == [], f"worker {pid} ignored SIGTERM"


def terminate_each(pids_of, checker, base, logs, count=2):
    """SIGTERM every original worker in turn; after each, the pool answers
    every request and the supervisor brings the count back."""
    original = pids_of()
    assert len(original) == count, original
    for victim in original:
        sigterm(victim)
        checker.round(base, 8)
        now = wait_replaced(pids_of, [victim], count, nudge=lambda: request(base, "/health"))
        checker.round(base, 4)
    assert not set(now) & set(original)
    text = logs()
    assert "accept failed" not in text, text[-3000:]


@pytest.fixture
def multiwatch_pool(tmp_path, tree):
    sock = tmp_path / "pool.sock"
    log = tmp_path / "pool.log"
    env = worker_environment(tree["root"], tmp_path / "pool-cache")
    proc = spawn_multiwatch_pool(WORKER, sock, log, env, forks=2, threads=2)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(workers_under(proc.pid)) < 2:
        time.sleep(0.05)
    yield {"proc": proc, "sock": sock, "log": log}
    stop_tree(proc)


def test_sigterm_one_worker_spawn_multiwatch_lighttpd(tmp_path, tree, multiwatch_pool):
    """spawn-fcgi -n -s SOCK -- multiwatch -f 2 -- medimg-fcgi behind
    lighttpd: each SIGTERM ends one process; its sibling keeps answering,
    multiwatch starts a replacement that accepts on the same socket."""
    pool = multiwatch_pool
    (tmp_path / "web").mkdir()
    web = SnippetLighttpd(tmp_path / "web", tree["root"], external_backend(pool["sock"]))
    try:
        web.start()
        checker = Checker(tree)
        checker.round(web.base_url, 4)
        terminate_each(lambda: workers_under(pool["proc"].pid), checker, web.base_url,
                       lambda: pool["log"].read_text(errors="replace") + web.logs())
        assert pool["proc"].poll() is None, "multiwatch gave up"
    finally:
        web.stop()


def test_sigterm_one_worker_spawn_multiwatch_apache(tree):
    """The same pool (apache_server: spawn-fcgi + multiwatch -f 2) behind
    Apache's mod_proxy_fcgi."""
    if not _available("apache"):
        pytest.skip("apache: not available")
    from apache_server import ApacheServer
    server = ApacheServer(BUILD, SOURCE, tree["root"], processes=2, threads=2, cors_origins="*")
    server.start()
    try:
        checker = Checker(tree)
        checker.round(server.base_url, 4)
        terminate_each(server.worker_pids, checker, server.base_url, server.logs)
        assert all(p.poll() is None for p in server.workers), "multiwatch gave up"
    finally:
        server.stop()


def test_sigterm_one_worker_lighttpd_bin_path(tree):
    """lighttpd's bin-path pool (`medimg serve --workers 2`): lighttpd
    keeps answering while one worker stops, and restarts it. (lighttpd
    gives each process and each restart a socket of its own, so here a
    stop could not break a sibling's socket; what is checked is that the
    stop is orderly and lighttpd's restart answers.)"""
    if not _available("lighttpd"):
        pytest.skip("lighttpd: not available")
    server = LighttpdServer(BUILD, SOURCE, tree["root"], workers=2, threads=2)
    server.start()
    try:
        checker = Checker(tree)
        checker.round(server.base_url, 4)
        terminate_each(server.worker_pids, checker, server.base_url, server.logs)
        assert server.proc.poll() is None
    finally:
        server.stop()


def test_sigterm_worker_on_fd0_then_a_new_worker_on_the_same_socket(tmp_path, slow_root):
    """The systemd model (systemd/medimg-fcgi.socket + .service): the
    listening socket outlives the worker. SIGTERM ends a worker after its
    answer in flight is complete (exit 0); a request that arrives while no
    worker runs waits in the socket's backlog; the next worker started on
    the very same socket answers it and everything after."""
    listener = listening_unix_socket(tmp_path / "sd.sock")
    env = worker_environment(slow_root["root"], tmp_path / "cache", cache_enabled="false")
    log = tmp_path / "workers.log"
    web_dir = tmp_path / "web"
    web_dir.mkdir()
    web = SnippetLighttpd(web_dir, slow_root["root"], external_backend(tmp_path / "sd.sock"))
    first = worker_on_fd0(WORKER, listener, log, env)
    second = None
    try:
        web.start()
        ids = [3, 17]
        path = f"/filtered-scans/{PATIENT}/{SLOW}?label_ids=3,17"
        results = {}

        def fetch(key):
            try:
                results[key] = request(web.base_url, path, timeout=60)
            except OSError as e:
                results[key] = e

        t0 = time.monotonic()
        request(web.base_url, path, timeout=60)     # how long one filter takes
        one = time.monotonic() - t0
        inflight = threading.Thread(target=fetch, args=("inflight",))
        inflight.start()
        time.sleep(min(0.3, one / 3))
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
        inflight.join(60)
        a = results["inflight"]
        assert not isinstance(a, Exception) and a.status == 200, (a, log.read_text())
        want = np.where(np.isin(slow_root["data"], ids), slow_root["data"], 0)
        got = np.asanyarray(nib.Nifti1Image.from_bytes(gzip.decompress(a.body)).dataobj)
        assert np.array_equal(got, want)

        waiting = threading.Thread(target=fetch, args=("queued",))
        waiting.start()
        time.sleep(0.5)
        assert "queued" not in results          # nobody accepts: it waits
        second = worker_on_fd0(WORKER, listener, log, env)
        waiting.join(60)
        q = results["queued"]
        assert not isinstance(q, Exception) and q.status == 200, (q, log.read_text())
        for _ in range(5):
            assert request(web.base_url, "/health", timeout=10).status == 200
        assert second.poll() is None
        assert "accept failed" not in log.read_text(errors="replace")
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(5)
        web.stop()
        listener.close()


def test_sigterm_reaches_a_worker_blocked_inside_accept(tmp_path, tree):
    """libfcgi drops a unix connection that sends nothing for 2 s and goes
    back to accept() on its own, outside the worker's poll(): the stop must
    still end that accept (SIGUSR2 to the acceptor), and promptly."""
    listener = listening_unix_socket(tmp_path / "sd.sock")
    env = worker_environment(tree["root"], tmp_path / "cache")
    worker = worker_on_fd0(WORKER, listener, tmp_path / "worker.log", env)
    mute = None
    try:
        time.sleep(0.5)
        mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mute.connect(str(tmp_path / "sd.sock"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:        # accept = syscall 43 (x86-64)
            syscall = f"/proc/{worker.pid}/syscall"
            if open(syscall).read().split()[0] in ("43", "288"):
                break
            time.sleep(0.1)
        else:
            pytest.skip("the acceptor never sat in accept() (not x86-64?)")
        t = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(5) == 0
        assert time.monotonic() - t < 1.5
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
        if mute:
            mute.close()
        listener.close()
