"""/metrics through the real web servers, scraped by a real Prometheus.

Each server runs two worker processes (lighttpd: `medimg serve --workers 2`,
bin-path; Apache: two workers on one socket, spawn-fcgi + multiwatch -f 2).
The test sends a known number of requests on fresh connections from several
threads, checks from /proc that both workers answered some of them, kills
one worker in the middle (its counts must survive it), and then asks
Prometheus's HTTP API for the totals: they must equal what was sent, not one
process's share (docs/DEPLOYMENT.md, "Metrics"). `promtool check metrics`
must accept a scrape.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import (PATIENT, SCAN, alive, descendants_of, free_port, identify, kill_exactly,
                      process_name, request, start_server)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

pytestmark = pytest.mark.skipif(
    not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()),
    reason="prometheus and promtool (Debian package prometheus) must be installed")


class Prometheus:
    """A Prometheus on loopback scraping `target` (host:port) every second,
    with its storage in a temporary folder; stopped (SIGTERM, then SIGKILL)
    by stop()."""

    def __init__(self, target):
        self.dir = Path(tempfile.mkdtemp(prefix="medimg-prometheus-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = self.dir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: medimg\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"prometheus not ready after 30 s:\n{self.logs()}")

    def logs(self):
        return (self.dir / "prometheus.log").read_text(errors="replace")[-4000:]

    def query(self, expr):
        """The instant vector of `expr`: [(labels, float value)]."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as r:
            answer = json.load(r)
        assert answer["status"] == "success", answer
        return [(s["metric"], float(s["value"][1])) for s in answer["data"]["result"]]

    def wait_value(self, expr, expected, timeout=30):
        """Polls until `expr` (one series) equals `expected`; returns the
        last value seen either way."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            result = self.query(expr)
            value = result[0][1] if len(result) == 1 else result
            if value == expected:
                return value
            time.sleep(0.5)
        return value

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def write_syscalls(pid):
    """Write system calls `pid` has made (/proc/PID/io): grows with every
    answer a worker sends."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError(f"no syscw in /proc/{pid}/io")


def burst(base_url, paths, threads=6):
    """Each path once, on its own connection, from `threads` threads; the
    statuses in order."""
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda p: request(base_url, p).status, paths))


def wait_workers(server, count, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in server.worker_pids() if alive(p)]
        if len(pids) == count:
            return pids
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers, have {server.worker_pids()}")


def start_pool_server(kind, root):
    if kind == "lighttpd":
        return start_server("lighttpd", root, workers=2, threads=2)
    return start_server("apache", root, processes=2, threads=2, cors_origins="*")


@pytest.mark.parametrize("kind", ["lighttpd", "apache"])
def test_prometheus_sees_the_pools_totals(kind, tree):
    server = start_pool_server(kind, tree["root"])
    prometheus = None
    try:
        workers = wait_workers(server, 2)
        before = {p: write_syscalls(p) for p in workers}
        target = server.base_url.split("//", 1)[1]
        prometheus = Prometheus(target)
        assert prometheus.wait_value('up{job="medimg"}', 1.0) == 1.0, prometheus.logs()

        # What wait_healthy sent before counting starts.
        start = prometheus.query('sum(medimg_http_requests_total{route="/health"})')
        health0 = start[0][1] if start else 0.0

        first = 60
        assert burst(server.base_url, ["/health"] * first) == [200] * first
        missing = f"/output/{PATIENT}/no-such-file.nii.gz/labels"
        assert burst(server.base_url, [missing] * 7) == [404] * 7
        # The same filtered scan twice: computed once (a miss), then taken
        # from the shared results cache (a hit), whichever worker answers.
        filtered = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1,5"
        assert burst(server.base_url, [filtered], threads=1) == [200]
        assert burst(server.base_url, [filtered], threads=1) == [200]
        # Both processes answered part of the burst: so one process's counts
        # could not equal the total.
        grew = {p: write_syscalls(p) - before[p] for p in workers}
        assert all(g >= 5 for g in grew.values()), grew

        # One worker dies (SIGKILL: no chance to flush anything); the web
        # server or multiwatch starts another. Its counts stay in the total.
        victim = identify(workers[:1])[0]
        assert kill_exactly(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = [p for p in identify(server.worker_pids()) if alive(p)]
            if victim not in now and len(now) == 2:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the killed worker was not replaced: {server.worker_pids()}")
        second = 41
        statuses = burst(server.base_url, ["/health"] * second)
        assert statuses == [200] * second

        expected = health0 + first + second
        got = prometheus.wait_value('sum(medimg_http_requests_total{route="/health"})', expected)
        assert got == expected, (got, expected, prometheus.logs())
        assert prometheus.wait_value(
            'sum(medimg_http_requests_total{status="404"})', 7.0) == 7.0
        assert prometheus.wait_value(
            'sum(medimg_http_request_duration_seconds_count{route="/health"})', expected) == expected
        assert prometheus.wait_value("medimg_worker_processes", 2.0) == 2.0
        assert prometheus.wait_value("medimg_cache_misses_total", 1.0) == 1.0
        assert prometheus.wait_value("medimg_cache_hits_total", 1.0) == 1.0
        # The replacement took over the killed worker's slot, counts kept.
        restarts = prometheus.wait_value("medimg_worker_restarts_total", 1.0)
        assert isinstance(restarts, float) and restarts >= 1, (restarts, server.logs()[-3000:])
        body_bytes = prometheus.query('medimg_http_response_bytes_total{route="/health"}')
        health_len = len(request(server.base_url, "/health").body)
        assert body_bytes and body_bytes[0][1] >= expected * health_len, body_bytes

        # A scrape is valid exposition text (promtool's linter included).
        scrape = request(server.base_url, "/metrics")
        assert scrape.status == 200
        assert scrape.header("Content-Type").startswith("text/plain; version=0.0.4")
        check = subprocess.run([PROMTOOL, "check", "metrics"], input=scrape.body,
                               capture_output=True, timeout=30)
        assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check
    finally:
        if prometheus:
            prometheus.stop()
        server.stop()


def test_metrics_file_is_private_and_shared(tree):
    """One counters file per pool, in the cache's .locks/, mode 0600, and a HEAD
    or an unknown method on /metrics is answered like any route."""
    server = start_server("lighttpd", tree["root"], workers=2, threads=2)
    try:
        files = [f for d in server.cache_dirs() for f in d.glob(".locks/metrics-*")]
        assert len(files) == 1, files
        assert files[0].stat().st_mode & 0o777 == 0o600
        head = request(server.base_url, "/metrics", method="HEAD")
        assert head.status == 200 and head.body == b""
        post = request(server.base_url, "/metrics", method="DELETE")
        assert post.status == 405 and post.json()["error"] == "method_not_allowed"
    finally:
        server.stop()


def health_total(base_url):
    text = request(base_url, "/metrics").body.decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('medimg_http_requests_total{route="/health"'))


def test_mod_fcgid_processes_are_counted_together(tree):
    """Under mod_fcgid Apache spawns one-thread workers as it needs them:
    /metrics, answered by any one of them, still counts every request."""
    server = start_server("apache", tree["root"], variant="fcgid", cors_origins="*")
    try:
        before = health_total(server.base_url)
        # mod_fcgid starts a second process only while the first is busy: on
        # a quiet machine /health alone may never keep it busy, so each
        # round also sends uncached filters (distinct ids) beside the /health
        # burst, until two processes have answered (bounded rounds).
        sent = 0
        workers = []
        for round_ in range(8):
            slow = [f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids={round_ * 8 + k}"
                    for k in range(8)]
            paths = ["/health"] * 40 + slow
            statuses = burst(server.base_url, paths, threads=8)
            assert statuses == [200] * len(paths), statuses
            sent += 40
            workers = [p for p in descendants_of(server.httpd.pid) if process_name(p) == "medimg-fcgi"]
            if len(workers) >= 2:
                break
        assert len(workers) >= 2, workers
        assert health_total(server.base_url) == before + sent
    finally:
        server.stop()
