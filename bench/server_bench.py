#!/usr/bin/python3
"""Server measurements for docs/PERFORMANCE.md (run with /usr/bin/python3).

Starts `medimg serve --host 127.0.0.1 --port P --data-root DIR` (lighttpd plus
the medimg-fcgi pool) with its own empty cache directory (--cache-dir) and no access log
(--quiet), then on loopback:

  labels        wrk on /output/{pid}/.../all.nii.gz/labels (cached after the
                first request)                  target >= 2,000 req/s
  cached        wrk on one filtered URL (the worker answers from its cache)
  static        wrk on a static copy of that filtered result, same size
                                                target cached >= 50 % static
  uncached      sequential single requests, each with a different absent
                label id so none is cached     target <= 1.3 x CLI time
  uncached-cli  the same filters with `medimg filter` (same input, ids,
                level), timed the same way: the CLI side of that ratio
  uncached-load wrk -c4 with unique URLs: throughput under load, and the
                workers' VmHWM (peak RSS) from /proc  target <= 64 MiB each

Appends JSON lines to --out (rendered by bench/report.py). Only processes it
started are stopped, by process id.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    sys.stderr.write(f"== {msg}\n")


def fetch(url, timeout=120):
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = resp.read()
        status = resp.status
        headers = dict(resp.headers)
    return status, body, headers, time.perf_counter() - t0


def descendants(root_pid):
    """Pids of every live descendant of root_pid, with their command names."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append((int(entry), comm))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        for child, comm in children.get(pid, []):
            found.append((child, comm))
            todo.append(child)
    return found


def group_members(pgid):
    """Live pids whose process group is pgid (the session started here)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry))
    return found


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def worker_pids(serve_pid):
    return [pid for pid, comm in descendants(serve_pid) if comm.startswith("medimg-fcgi")]


def run_wrk(url, threads, conns, seconds, unique=None):
    env = dict(os.environ)
    if unique is not None:
        env["WRK_UNIQUE"] = str(unique)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "30s",
           "-s", os.path.join(HERE, "wrk_report.lua"), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stderr.strip()}")
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            rec = json.loads(line[len("WRK_JSON "):])
            rec["req_per_s"] = rec["requests"] / (rec["duration_us"] / 1e6)
            rec["wrk"] = f"-t{threads} -c{conns} -d{seconds}s" + (" (unique URLs)" if unique is not None else "")
            return rec
    raise RuntimeError("wrk printed no WRK_JSON line:\n" + proc.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--input", required=True, help="the label map under the data root")
    ap.add_argument("--labels", required=True, help="label_ids for the filtered requests")
    ap.add_argument("--port", type=int, default=18888)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0, help="medimg serve --workers (0: its default)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--scratch", required=True)
    args = ap.parse_args()

    data_root = os.path.realpath(args.data_root)
    rel = os.path.relpath(os.path.realpath(args.input), data_root)
    pid_dir, _, rest = rel.partition("/")
    base = f"http://127.0.0.1:{args.port}"
    labels_url = f"{base}/output/{rel}/labels"
    filter_url = f"{base}/filtered-scans/{pid_dir}/{rest}?label_ids={args.labels}"

    cache_dir = os.path.join(args.scratch, "server-cache")
    shutil.rmtree(cache_dir, ignore_errors=True)
    os.makedirs(cache_dir)
    env = dict(os.environ, MEDIMG_CACHE_DIR=cache_dir)
    # --quiet: no access log on stderr (it would cost lighttpd time under wrk).
    cmd = [os.path.join(args.build, "cli", "medimg"), "serve", "--host", "127.0.0.1",
           "--port", str(args.port), "--data-root", data_root, "--cache-dir", cache_dir, "--quiet"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    serve_log = open(os.path.join(args.scratch, "serve.log"), "w")
    log("starting " + " ".join(cmd))
    serve = subprocess.Popen(cmd, env=env, stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True)

    def emit(rec):
        rec.setdefault("kind", "server")
        rec["loadavg"] = os.getloadavg()[0]
        with open(args.out, "a") as f:
            f.write(json.dumps(rec) + "\n")

    try:
        deadline = time.time() + 60
        while True:
            if serve.poll() is not None:
                raise RuntimeError(f"medimg serve exited with {serve.returncode}; see {serve_log.name}")
            try:
                if fetch(base + "/health", timeout=2)[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.time() > deadline:
                raise RuntimeError("medimg serve did not answer /health within 60 s")
            time.sleep(0.25)
        workers = worker_pids(serve.pid)
        log(f"serving; workers {workers}")
        emit({"kind": "server-setup", "cmd": " ".join(cmd), "workers": len(workers),
              "labels_url": labels_url, "filter_url": filter_url})

        # /labels, cached after the first request.
        status, body, _, first = fetch(labels_url)
        if status != 200:
            raise RuntimeError(f"/labels answered {status}")
        json.loads(body)
        for i in range(args.runs):
            rec = run_wrk(labels_url, args.threads, args.connections, args.seconds)
            emit(dict(rec, name="labels", run=i, first_request_s=first))
            log(f"labels: {rec['req_per_s']:.0f} req/s")

        # One filtered result: first (uncached) request, then cached.
        status, body, headers, first = fetch(filter_url)
        if status != 200:
            raise RuntimeError(f"filter answered {status}")
        size = len(body)
        static_dir = os.path.join(data_root, pid_dir, "bench-static")
        os.makedirs(static_dir, exist_ok=True)
        static_path = os.path.join(static_dir, "filtered_copy.nii.gz")
        with open(static_path, "wb") as f:
            f.write(body)
        static_url = f"{base}/output/{pid_dir}/bench-static/filtered_copy.nii.gz"
        status, sbody, _, _ = fetch(static_url)
        if status != 200 or len(sbody) != size:
            raise RuntimeError(f"static copy answered {status} with {len(sbody)} bytes, expected {size}")
        for i in range(args.runs):
            rec = run_wrk(filter_url, args.threads, args.connections, args.seconds)
            emit(dict(rec, name="cached", run=i, body_bytes=size))
            log(f"cached filter: {rec['req_per_s']:.0f} req/s")
            rec = run_wrk(static_url, args.threads, args.connections, args.seconds)
            emit(dict(rec, name="static", run=i, body_bytes=size))
            log(f"static: {rec['req_per_s']:.0f} req/s")

        # Uncached filters, one at a time, each URL different.
        times = []
        for i in range(max(args.runs, 5)):
            url = f"{filter_url},{20000 + i}"
            status, ubody, _, elapsed = fetch(url)
            if status != 200:
                raise RuntimeError(f"uncached filter answered {status}")
            times.append(elapsed)
        emit({"name": "uncached", "times_s": [round(t, 4) for t in times],
              "median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
              "max_s": round(max(times), 4), "body_bytes": len(ubody), "first_request_s": round(first, 4)})
        log(f"uncached filter: median {statistics.median(times):.3f} s")

        # The same filters with the CLI (same input, ids and gzip level), so
        # the 1.3x ratio compares like with like on this machine and load.
        medimg = os.path.join(args.build, "cli", "medimg")
        labels = args.labels
        out_file = os.path.join(args.scratch, "server-cli-same.nii.gz")
        cli_times = []
        for i in range(max(args.runs, 5)):
            t0 = time.perf_counter()
            subprocess.run([medimg, "filter", os.path.realpath(args.input), out_file,
                            "--labels", f"{labels},{20000 + i}"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cli_times.append(time.perf_counter() - t0)
        if os.path.getsize(out_file) != len(ubody):
            raise RuntimeError(f"CLI wrote {os.path.getsize(out_file)} bytes, the server {len(ubody)}")
        emit({"name": "uncached-cli", "times_s": [round(t, 4) for t in cli_times],
              "median_s": round(statistics.median(cli_times), 4), "min_s": round(min(cli_times), 4),
              "max_s": round(max(cli_times), 4), "body_bytes": os.path.getsize(out_file)})
        log(f"same filters with the CLI: median {statistics.median(cli_times):.3f} s")

        # Uncached filters under load; workers' peak RSS afterwards.
        rec = run_wrk(filter_url, args.threads, 4, args.seconds, unique=24000)
        hwm = {pid: status_kib(pid, "VmHWM") for pid in worker_pids(serve.pid)}
        rss = {pid: status_kib(pid, "VmRSS") for pid in worker_pids(serve.pid)}
        emit(dict(rec, name="uncached-load", worker_vmhwm_kib=hwm, worker_vmrss_kib=rss))
        log(f"uncached under load: {rec['req_per_s']:.2f} req/s; worker VmHWM KiB {hwm}")
        return 0
    except Exception as e:  # report and stop the server either way
        log(f"server bench failed: {e}")
        emit({"kind": "server-error", "error": str(e)})
        return 1
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)   # the session started above, by its id
                serve.wait()
        leftovers = group_members(serve.pid)
        if leftovers:
            log(f"processes left behind by medimg serve: {leftovers}; stopping them")
            emit({"kind": "server-note", "note": f"medimg serve left {len(leftovers)} processes after SIGTERM"})
            try:
                os.killpg(serve.pid, signal.SIGKILL)   # the session started above, by its id
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    sys.exit(main())
