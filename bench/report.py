#!/usr/bin/python3
"""Renders a bench/run.sh results file (JSON lines) as Markdown tables with a
verdict per docs/PERFORMANCE.md target.

usage: report.py RESULTS.jsonl
"""
import json
import statistics
import sys

MIB = 1024.0


def load(path):
    recs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))
    return recs


def fmt_t(rec):
    return f"{rec['median_s']:.3f} ({rec['min_s']:.3f}–{rec['max_s']:.3f})"


def fmt_cpu(rec):
    return f"{rec['cpu_median_s']:.2f}" if "cpu_median_s" in rec else "–"


def cpu_ratio(a, b):
    if a and b and a.get("cpu_median_s") and b.get("cpu_median_s"):
        return a["cpu_median_s"] / b["cpu_median_s"]
    return None


def fmt_mib(kib):
    return f"{kib / MIB:.1f}"


def phase_medians(rec, first, last):
    """Median of tab-separated columns first..last of a record's stdout lines."""
    cols = []
    for line in rec.get("stdout_last", []):
        parts = line.split("\t")
        if len(parts) > last:
            cols.append([float(p) for p in parts[first:last + 1]])
    if not cols:
        return None
    return [statistics.median(c[i] for c in cols) for i in range(last - first + 1)]


def find(recs, **kw):
    for r in recs:
        if all(str(r.get(k)) == str(v) for k, v in kw.items()):
            return r
    return None


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    recs = load(sys.argv[1])
    machine = find(recs, kind="machine") or {}
    end = find(recs, kind="end") or {}
    verdicts = []   # (target, measured, verdict)
    out = []

    out.append("### Machine and inputs\n")
    out.append(f"- {machine.get('nproc')} cores, {machine.get('cpu')}; load average "
               f"{machine.get('loadavg_start')} at start, {end.get('loadavg_end', '?')} at end")
    out.append(f"- {machine.get('date')}, commit {machine.get('commit')}, {machine.get('runs')} runs per timing")
    out.append(f"- int16 map `{machine.get('int16')}` ({machine.get('size')}, {machine.get('int16_bytes')} bytes); "
               f"uint8 copy ({machine.get('uint8_bytes')} bytes)\n")

    dtypes = [d for d in ("int16", "uint8") if find(recs, kind="cli", dtype=d) or find(recs, kind="floor", dtype=d)]

    # ---- codec floors and pipelines
    rows = []
    for d in dtypes:
        for r in recs:
            if r.get("dtype") != d or r.get("kind") not in ("floor", "shell"):
                continue
            phases = phase_medians(r, 1, 2) if r["kind"] == "floor" else None
            outb = None
            if r["kind"] == "floor" and r.get("stdout_last"):
                outb = r["stdout_last"][-1].split("\t")[6]
            what = {"igzip": "`igzip -d -c | igzip -1 -c`", "zcat": "`zcat | gzip -1`"}.get(
                r.get("variant"), f"floor `{r.get('variant')}`")
            rows.append([d, what, fmt_t(r), fmt_cpu(r),
                         f"{phases[0]:.3f} / {phases[1]:.3f}" if phases else "–",
                         fmt_mib(r["maxrss_kib"]), outb or "–"])
    if rows:
        out.append("### Codec floor and shell round trips (gzip level 1, output discarded)\n")
        out.append(table(["input", "what", "wall s median (min–max)", "CPU s", "inflate / deflate s (wall)", "peak RSS MiB",
                          "deflated bytes"], rows))
        out.append("")

    # ---- nibabel
    rows = []
    for r in recs:
        if r.get("kind") != "nibabel":
            continue
        ph = phase_medians(r, 1, 4)
        rows.append([r["dtype"], r["variant"], r["labels"], fmt_t(r), fmt_cpu(r),
                     f"{ph[3]:.2f} ({ph[0]:.2f} / {ph[1]:.2f} / {ph[2]:.2f})" if ph else "–",
                     fmt_mib(r["maxrss_kib"]), r.get("out_bytes", "–")])
    if rows:
        out.append("### nibabel + numpy reference (`bench/reference_nibabel.py`)\n")
        out.append(table(["input", "variant", "labels", "process wall s median (min–max)", "process CPU s",
                          "in-process s (load / isin+where / save)", "peak RSS MiB", "output bytes"], rows))
        out.append("")

    # ---- CLI
    rows = []
    worst_floor, worst_rss, worst_speed = None, None, None
    worst_floor_cpu, worst_stream_cpu = None, None
    for d in dtypes:
        floor = find(recs, kind="floor", dtype=d, variant="lib")
        floor_s = find(recs, kind="floor", dtype=d, variant="lib-stream")
        nib_old = find(recs, kind="nibabel", dtype=d, variant="old")
        nib_int = find(recs, kind="nibabel", dtype=d, variant="int")
        for r in recs:
            if r.get("kind") != "cli" or r.get("dtype") != d:
                continue
            t = r["median_s"]
            ratio = t / floor["median_s"] if floor else None
            ratio_s = t / floor_s["median_s"] if floor_s else None
            old_in = phase_medians(nib_old, 4, 4)[0] if nib_old and phase_medians(nib_old, 4, 4) else None
            speed = old_in / t if old_in else None
            speed_int = (phase_medians(nib_int, 4, 4)[0] / t) if nib_int and phase_medians(nib_int, 4, 4) else None
            cr, crs = cpu_ratio(r, floor), cpu_ratio(r, floor_s)
            rows.append([d, f"{r['k']} ({r['labels']})", fmt_t(r), fmt_cpu(r), fmt_mib(r["maxrss_kib"]),
                         r.get("out_bytes", "–"),
                         f"{ratio:.2f} / {cr:.2f}" if ratio and cr else "–",
                         f"{ratio_s:.2f} / {crs:.2f}" if ratio_s and crs else "–",
                         f"{speed:.0f}×" if speed else "–", f"{speed_int:.0f}×" if speed_int else "–"])
            if ratio and (worst_floor is None or ratio > worst_floor[0]):
                worst_floor = (ratio, f"{d} k={r['k']}")
            if cr and (worst_floor_cpu is None or cr > worst_floor_cpu[0]):
                worst_floor_cpu = (cr, f"{d} k={r['k']}")
            if crs and (worst_stream_cpu is None or crs > worst_stream_cpu[0]):
                worst_stream_cpu = (crs, f"{d} k={r['k']}")
            if worst_rss is None or r["maxrss_kib"] > worst_rss[0]:
                worst_rss = (r["maxrss_kib"], f"{d} k={r['k']}")
            if speed and str(r["k"]) == "3" and (worst_speed is None or speed < worst_speed[0]):
                worst_speed = (speed, f"{d} k=3")
        nib_cmp = find(recs, kind="cli", dtype=d, k=3)
        if nib_cmp and "out_bytes" in nib_cmp:
            for ref in (nib_int, nib_old):
                if ref and "out_bytes" in ref:
                    ok = nib_cmp["out_bytes"] <= ref["out_bytes"]
                    verdicts.append((f"output no larger than nibabel's ({d}, k=3, nibabel `{ref['variant']}`)",
                                     f"{nib_cmp['out_bytes']} vs {ref['out_bytes']} bytes "
                                     f"({nib_cmp['out_bytes'] / ref['out_bytes']:.3f}×)", ok))
    if rows:
        out.append("### `medimg filter` (keep mode, gzip level 1, output to a file)\n")
        out.append(table(["input", "labels kept", "wall s median (min–max)", "CPU s", "peak RSS MiB", "output bytes",
                          "× floor `lib` (wall / CPU)", "× floor `lib-stream` (wall / CPU)", "faster than nibabel old",
                          "faster than nibabel int"], rows))
        out.append("\nnibabel speed-ups use nibabel's in-process time (load + filter + save, Python start-up "
                   "and `import` excluded) for 3 labels against our whole process wall time.\n")
    if worst_speed:
        verdicts.append(("≥ 40× faster than nibabel+numpy (slowest case)",
                         f"{worst_speed[0]:.0f}× ({worst_speed[1]})", worst_speed[0] >= 40))
    if worst_floor:
        verdicts.append(("≤ 1.1× the sequential codec floor `lib`, wall time (worst case)",
                         f"{worst_floor[0]:.2f}× ({worst_floor[1]})", worst_floor[0] <= 1.1))
    if worst_floor_cpu:
        verdicts.append(("≤ 1.1× the sequential codec floor, CPU time (worst case)",
                         f"{worst_floor_cpu[0]:.2f}× ({worst_floor_cpu[1]})", worst_floor_cpu[0] <= 1.1))
    if worst_stream_cpu:
        verdicts.append(("(stricter) ≤ 1.3× the streaming codec floor `lib-stream`, CPU time (worst case)",
                         f"{worst_stream_cpu[0]:.2f}× ({worst_stream_cpu[1]})", worst_stream_cpu[0] <= 1.3))
    if worst_rss:
        verdicts.append(("CLI peak RSS ≤ 32 MiB (largest)", f"{fmt_mib(worst_rss[0])} MiB ({worst_rss[1]})",
                         worst_rss[0] <= 32 * 1024))

    # ---- server
    srv = [r for r in recs if r.get("kind") == "server"]
    err = find(recs, kind="server-error")
    setup = find(recs, kind="server-setup")
    if srv or err:
        out.append("### Server (`medimg serve` on 127.0.0.1, wrk)\n")
        if setup:
            out.append(f"`{setup['cmd']}` — {setup['workers']} medimg-fcgi worker processes\n")
        rows = []
        by = {}
        for r in srv:
            by.setdefault(r["name"], []).append(r)
        for name in ("labels", "cached", "static", "uncached-load"):
            rs = by.get(name, [])
            if not rs:
                continue
            rps = [r["req_per_s"] for r in rs]
            p50 = statistics.median(r["p50_us"] for r in rs) / 1000
            p99 = statistics.median(r["p99_us"] for r in rs) / 1000
            bad = sum(r["errors_status"] + r["errors_connect"] + r["errors_read"] + r["errors_timeout"] for r in rs)
            rows.append([name, rs[0]["wrk"], len(rs), f"{statistics.median(rps):.1f} ({min(rps):.1f}–{max(rps):.1f})",
                         f"{p50:.2f}", f"{p99:.2f}", bad, rs[0].get("body_bytes", "")])
        if rows:
            out.append(table(["scenario", "wrk", "runs", "req/s median (min–max)", "p50 ms", "p99 ms",
                              "errors/non-2xx", "body bytes"], rows))
            out.append("")
        labels = by.get("labels")
        if labels:
            v = statistics.median(r["req_per_s"] for r in labels)
            verdicts.append(("`/labels` cached ≥ 2,000 req/s on 2 cores", f"{v:.0f} req/s", v >= 2000))
        if by.get("cached") and by.get("static"):
            c = statistics.median(r["req_per_s"] for r in by["cached"])
            s = statistics.median(r["req_per_s"] for r in by["static"])
            verdicts.append(("cached filtered result ≥ 50 % of static throughput",
                             f"{c:.0f} vs {s:.0f} req/s ({100 * c / s:.0f} %)", c >= 0.5 * s))
        unc = by.get("uncached")
        same = by.get("uncached-cli")
        cli = same[0] if same else find(recs, kind="cli", dtype="int16", k=3)
        if unc:
            u = unc[0]
            line = f"uncached filter, one request at a time: median {fmt_t(u)} s over {len(u['times_s'])} requests"
            if cli:
                what = "the same filters with the CLI" if same else "CLI (int16, 3 labels)"
                line += f"; {what} {fmt_t(cli)} s" if same else f"; {what} {cli['median_s']:.3f} s"
                verdicts.append(("uncached filter ≤ 1.3× CLI time", f"{u['median_s']:.3f} vs {cli['median_s']:.3f} s "
                                 f"({u['median_s'] / cli['median_s']:.2f}×)", u["median_s"] <= 1.3 * cli["median_s"]))
            out.append(line + "\n")
        under_load = by.get("uncached-load")
        if under_load:
            hwm = [v for r in under_load for v in r["worker_vmhwm_kib"].values() if v]
            if hwm:
                out.append("Worker peak RSS (VmHWM) after the load runs: " +
                           ", ".join(f"{fmt_mib(v)} MiB" for v in hwm) + "\n")
                verdicts.append(("worker peak RSS ≤ 64 MiB", f"{fmt_mib(max(hwm))} MiB", max(hwm) <= 64 * 1024))
        if err:
            out.append(f"**Server bench failed:** {err['error']}\n")
        for note in (r for r in recs if r.get("kind") == "server-note"):
            out.append(f"Note: {note['note']}\n")

    if verdicts:
        out.append("### Verdicts (docs/PERFORMANCE.md)\n")
        out.append(table(["target", "measured", "verdict"],
                         [[t, m, "met" if ok else "**not met**"] for t, m, ok in verdicts]))
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
