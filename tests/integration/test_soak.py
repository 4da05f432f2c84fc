"""Bounded soak with wrk on loopback against both web servers: a Lua script
mixes /labels, a cached filter, uncached filters with varying label_ids and
static files. Asserts zero unexpected statuses, worker RSS stable within
10 % between mid-run and end, worker fd counts stable; prints p50/p99.

CI form: 15 s, 16 connections. Long form:
  MEDIMG_SOAK_SECONDS=60 MEDIMG_SOAK_CONNECTIONS=32 pytest tests/integration/test_soak.py
"""
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import PATIENT, SCAN, request

SECONDS = int(os.environ.get("MEDIMG_SOAK_SECONDS", "15"))
CONNECTIONS = int(os.environ.get("MEDIMG_SOAK_CONNECTIONS", "16"))
WRK = shutil.which("wrk") or "/usr/bin/wrk"

def server_trouble(server):
    """The server log's lines about 5xx answers and worker messages (not the
    access log's 2xx/3xx lines), for a failure message."""
    path = getattr(server, "log_path", None)
    try:
        lines = Path(path).read_text(errors="replace").splitlines() if path else []
    except OSError:
        lines = []
    keep = [l for l in lines if '" 5' in l or not re.search(r'" [23]\d\d ', l)]
    return "\n".join(keep[-60:]) or server.logs()


def health_now(server):
    """Whether the server still answers, for a failure message: write errors
    in bulk are connections refused, a server that went away mid-run."""
    try:
        return f"/health now: {request(server.base_url, '/health', timeout=5).status}"
    except OSError as e:
        return f"/health now: {e!r}"


LUA = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  bad = 0
  counter = 0
  last_bad = ""
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
local P = "@PATIENT@"
local S = "@SCAN@"
local fixed = {
  "/output/" .. P .. "/scans/" .. S .. ".nii.gz/labels",
  "/output/" .. P .. "/scans/plain.nii/labels",
  "/filtered-scans/" .. P .. "/" .. S .. ".nii.gz?label_ids=6,10",
  "/filtered-scans/" .. P .. "/plain.nii?label_ids=6",
  "/output/" .. P .. "/scans/plain.nii",
  "/output/" .. P .. "/scans/" .. S .. ".nii.gz",
  "/health",
}
function request()
  counter = counter + 1
  local k = counter % 10
  if k < 7 then
    return wrk.format("GET", fixed[k + 1])
  end
  -- uncached: a random set of ids (some never present, some ranges)
  local a = math.random(1, 140)
  local b = a + math.random(0, 12)
  local ids = a .. "-" .. b .. "," .. math.random(1, 140)
  if k == 9 then
    return wrk.format("GET", "/filtered-scans/" .. P .. "/plain.nii?label_ids=" .. ids .. "&mode=mask")
  end
  return wrk.format("GET", "/filtered-scans/" .. P .. "/" .. S .. ".nii.gz?label_ids=" .. ids)
end
function response(status, headers, body)
  if status ~= 200 and status ~= 304 then
    bad = bad + 1
    last_bad = tostring(status)
  end
end
function done(summary, latency, requests)
  local b = 0
  local lb = ""
  for _, t in ipairs(threads) do
    b = b + t:get("bad")
    if t:get("last_bad") ~= "" then lb = t:get("last_bad") end
  end
  io.write(string.format("SOAK bad=%d last_bad=%s requests=%d errors=%d p50_us=%d p99_us=%d\n",
    b, lb, summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(server):
    out = {}
    for p in server.worker_pids():
        try:
            out[p] = (rss_kib(p), fds(p))
        except OSError:
            pass
    return out


def test_soak(server, tmp_path):
    if not Path(WRK).exists():
        pytest.skip("wrk not installed")
    script = tmp_path / "soak.lua"
    script.write_text(LUA.replace("@PATIENT@", PATIENT).replace("@SCAN@", SCAN))
    # Warm up the cached routes so mid-run and end compare steady states.
    for path in (f"/output/{PATIENT}/scans/{SCAN}.nii.gz/labels",
                 f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=6,10"):
        assert request(server.base_url, path).status == 200
    cmd = [WRK, "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS}s", "--timeout", "30s",
           "--latency", "-s", str(script), server.base_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(SECONDS / 2)
    mid = sample(server)
    out, _ = proc.communicate(timeout=SECONDS + 60)
    end = sample(server)
    print(out)
    m = re.search(r"SOAK bad=(\d+) last_bad=(\S*) requests=(\d+) errors=(\d+) p50_us=(\d+) p99_us=(\d+)", out)
    assert m, out
    bad, last_bad, total, errors, p50, p99 = m.groups()
    print(f"soak {server.kind}: {total} requests in {SECONDS}s with {CONNECTIONS} connections, "
          f"p50 {int(p50) / 1000:.1f} ms, p99 {int(p99) / 1000:.1f} ms; workers mid {mid} end {end}")
    assert int(bad) == 0, f"{bad} unexpected statuses (last {last_bad})\n{out}\n{server_trouble(server)}"
    # Socket errors: none may be a connect/write/timeout error. A read error
    # is a kept-alive connection closed by the server as wrk reuses it (seen
    # with Apache's event MPM: 2-3 per 1000 requests, every logged answer a
    # 200, nothing in its error log); tolerated up to 1 %, printed above.
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        connect, read, write, timeout = map(int, sock.groups())
        def why():
            return f"{out}\n{health_now(server)}\n{server_trouble(server)}"
        assert connect == write == timeout == 0, why()
        assert read * 100 <= int(total), why()
    assert int(total) > 0
    # Same worker processes (none crashed and was replaced), RSS and fds stable.
    common = set(mid) & set(end)
    assert common and set(mid) == set(end), (mid, end)
    rss_mid = sum(mid[p][0] for p in common)
    rss_end = sum(end[p][0] for p in common)
    assert rss_end <= rss_mid * 1.10 + 1024, (rss_mid, rss_end)
    for p in common:
        assert end[p][1] <= mid[p][1] + 2, ("fd growth", p, mid[p], end[p])
    assert request(server.base_url, "/health").status == 200
