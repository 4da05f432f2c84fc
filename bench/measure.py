#!/usr/bin/python3
"""Runs a command several times; appends one JSON line of results.

usage: measure.py --out RESULTS.jsonl --name NAME [--runs N] [--warmup N]
                  [--meta KEY=VALUE ...] [--size-of FILE] -- COMMAND ARGS...

Each run is timed here (wall clock) and its peak RSS is read from GNU time
(`/usr/bin/time -f %M`: ru_maxrss of the command and the children it waited
for, so a shell pipeline reports its largest member), with the user + system
CPU time (`%U %S`, 10 ms resolution; a pipeline's members summed), which
says more than wall time when the machine is shared. A run that exits non-zero
stops the measurement (exit 1): a failed command is never reported as fast.
The last line the command printed on stdout is kept (`stdout_last`), so
programs that report their own phase timings can be read back.
`--size-of FILE` records FILE's size after the last run (the output size).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run_once(cmd):
    # Peak RSS comes from GNU time: a child forked from this Python process
    # would carry Python's own RSS high-water mark across exec into its
    # ru_maxrss (Linux keeps the pre-exec mm's peak), hiding anything below
    # ~12 MiB; GNU time's own footprint is ~2 MiB.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rus:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", rus.name] + cmd, stdout=out, stderr=err)
        elapsed = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        # the last line is ours; a killed command adds a "Command ..." line before it
        fields = (rus.read().strip().splitlines() or [""])[-1].split()
        maxrss = int(fields[0]) if len(fields) == 3 and fields[0].isdigit() else -1
        cpu = float(fields[1]) + float(fields[2]) if len(fields) == 3 else -1.0
        return (elapsed, maxrss, cpu, proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--size-of")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        ap.error("no command")

    times, rss, cpus, lines = [], [], [], []
    for i in range(args.warmup + args.runs):
        elapsed, maxrss, cpu, rc, out, err = run_once(cmd)
        if rc != 0:
            sys.stderr.write(f"measure: {args.name}: exit {rc}\n{err}")
            return 1
        if i < args.warmup:
            continue
        times.append(elapsed)
        rss.append(maxrss)
        cpus.append(cpu)
        stripped = out.strip().splitlines()
        lines.append(stripped[-1] if stripped else "")

    rec = {
        "name": args.name,
        "cmd": " ".join(cmd),
        "runs": len(times),
        "times_s": [round(t, 4) for t in times],
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "maxrss_kib": max(rss),
        "cpu_s": [round(c, 2) for c in cpus],
        "cpu_median_s": round(statistics.median(cpus), 3),
        "stdout_last": lines,
        "loadavg": os.getloadavg()[0],
    }
    for kv in args.meta:
        k, _, v = kv.partition("=")
        rec[k] = v
    if args.size_of:
        rec["out_bytes"] = os.path.getsize(args.size_of)
    with open(args.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{args.name}: median {rec['median_s']:.3f} s (min {rec['min_s']:.3f}, max {rec['max_s']:.3f}), "
          f"CPU {rec['cpu_median_s']:.2f} s, peak RSS {rec['maxrss_kib'] / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
