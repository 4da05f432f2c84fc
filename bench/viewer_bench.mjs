// Browser benchmark of the viewer (docs/PERFORMANCE.md): headless Chromium with
// software WebGL (SwiftShader) against `medimg serve` on a `medimg demo` tree.
//
//   node bench/viewer_bench.mjs [--size 512x512x400] [--runs 2] [--toggles 4]
//        [--steps untick,tick,only,none,all] [--scratch DIR] [--build DIR]
//        [--www DIR] [--label NAME] [--out FILE]
//
// Measures, per run in a fresh browser context (empty cache):
//   first load   navigation start to the first picture with its overlay drawn
//                (the viewer's `medimg:first-draw` mark; progress is shown until then)
//   toggle       a label check box clicked to the canvas settled (state "ready"
//                and two animation frames), for untick / tick / "only" / "none" / "all"
//   bytes        bytes received over the network during each toggle (CDP Network)
//   heap         JS heap used including ArrayBuffer backing stores, sampled every
//                250 ms during the load and the toggles (CDP), and the
//                browser's resident memory (all its processes, /proc)
// `--www` serves another www/ tree (e.g. an older checkout) for a same-machine
// comparison; such a viewer is timed from outside only. Prints a Markdown table;
// raw numbers go to --out (JSON lines). Nothing here is a test: no assertion on time.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { medimg_binary, start_medimg_serve, launch_chromium, sleep } from "../tests/browser/harness.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const src = path.resolve(here, "..");

const args = { size: "512x512x400", runs: 2, toggles: 4, steps: "untick,tick,only,none,all", scratch: path.join(os.tmpdir(), "medimg-bench"),
  build: path.join(src, "build"), www: path.join(src, "www"), label: "", out: "" };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, "");
  if (!(key in args)) {
    console.error(`viewer_bench: unknown option ${process.argv[i]}`);
    process.exit(2);
  }
  args[key] = typeof args[key] === "number" ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
args.label ||= path.resolve(args.www) === path.join(src, "www") ? "this checkout" : args.www;
const log = (...xs) => console.error("==", ...xs);
const PATIENT = "PA00000002";
const LOAD_MS = 900_000;

function rss_kib(root_pid) {
  // the browser and every process below it
  const children = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch (_) {
      // gone
    }
  }
  let total = 0;
  const todo = [root_pid];
  while (todo.length) {
    const pid = todo.pop();
    try {
      const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]);
    } catch (_) {
      // gone
    }
    todo.push(...(children.get(pid) || []));
  }
  return total;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

async function main() {
  const medimg = medimg_binary(args.build);
  const data = path.join(args.scratch, `data-${args.size}`);
  if (!fs.existsSync(path.join(data, ".complete"))) {
    log(`generating demo data (${args.size}) in ${data}`);
    fs.rmSync(data, { recursive: true, force: true });
    fs.mkdirSync(data, { recursive: true });
    execFileSync(medimg, ["demo", data, "--size", args.size], { stdio: ["ignore", 2, 2] });
    fs.writeFileSync(path.join(data, ".complete"), "");
  }
  fs.mkdirSync(args.scratch, { recursive: true });
  const server = await start_medimg_serve({
    data_root: data, www: args.www, build_dir: args.build, deadline_ms: 60_000,
    log: path.join(args.scratch, `viewer-bench-serve-${process.pid}.log`),
  });
  const base = server.base;
  const stop = () => server.kill();
  process.on("exit", stop);

  const machine = {
    kind: "machine", nproc: os.cpus().length, cpu: os.cpus()[0].model, size: args.size, www: args.label,
    loadavg_start: os.loadavg().map((x) => x.toFixed(2)).join(" "), date: new Date().toISOString(),
    chromium: execFileSync("/usr/bin/chromium", ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(),
  };
  const results = [machine];
  const browser = await launch_chromium();
  let browser_pid = null;
  try {
    browser_pid = Number(execFileSync("pgrep", ["-o", "-P", String(process.pid), "chromium"], { encoding: "utf8" }).trim()) || null;
  } catch (_) {
    log("browser process not found: no resident memory figures");
  }
  try {
    for (let run = 1; run <= args.runs; run++) {
      results.push(...await one_run(browser, browser_pid, base, run));
    }
  } finally {
    await browser.close();
    stop();
  }
  machine.loadavg_end = os.loadavg().map((x) => x.toFixed(2)).join(" ");
  if (args.out) fs.appendFileSync(args.out, results.map((r) => JSON.stringify(r)).join("\n") + "\n");
  report(results);
}

async function one_run(browser, browser_pid, base, run) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  let received = 0;
  const requests = [];
  cdp.on("Network.loadingFinished", (e) => { received += e.encodedDataLength; });
  cdp.on("Network.requestWillBeSent", (e) => requests.push(e.request.url));
  let heap_peak = 0;
  let rss_peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        // usedSize is the JS objects; the volumes live in ArrayBuffer backing stores
        const h = await cdp.send("Runtime.getHeapUsage");
        heap_peak = Math.max(heap_peak, h.usedSize + (h.backingStorageSize || 0));
      } catch (_) {
        // page busy or navigating
      }
      if (browser_pid) rss_peak = Math.max(rss_peak, rss_kib(browser_pid));
      await sleep(250);
    }
  })();

  log(`run ${run}: first load`);
  const t0 = Date.now();
  await page.goto(`${base}/viewer.html?patient=${PATIENT}`, { timeout: LOAD_MS });
  await page.waitForFunction(() => document.body.dataset.state !== "loading" && document.body.dataset.overlay,
    null, { timeout: LOAD_MS, polling: 250 });
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  const outside_ms = Date.now() - t0;
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== "ready") throw new Error(`viewer state ${state}: ${await page.locator("#alert").textContent()}`);
  const inside = await page.evaluate(() => (window.medimg_viewer.state && window.medimg_viewer.state.first_draw_ms) || 0);
  const load = {
    kind: "first_load", run, www: args.label, ms: inside ? Math.round(inside) : outside_ms, outside_ms,
    bytes: received, requests: requests.length, heap_peak_mib: +(heap_peak / 1048576).toFixed(1),
    rss_peak_mib: +(rss_peak / 1024).toFixed(0),
  };
  log(`run ${run}: first load ${load.ms} ms, ${(received / 1048576).toFixed(1)} MiB, heap peak ${load.heap_peak_mib} MiB`);
  const out = [load];

  const ids = await page.$$eval("#label-rows tr", (trs) => trs.map((t) => t.dataset.labelId));
  const by_voxels = await page.$$eval("#label-rows tr", (trs) => trs.map((t) => [t.dataset.labelId,
    Number(t.querySelector(".voxels").textContent.replace(/,/g, ""))]));
  by_voxels.sort((a, b) => b[1] - a[1]);
  const plan = [];
  for (let i = 0; i < args.toggles; i++) {
    const id = by_voxels[i % by_voxels.length][0];
    plan.push({ what: "untick", selector: `#label-${id}`, id });
    plan.push({ what: "tick", selector: `#label-${id}`, id });
  }
  plan.push({ what: "only", selector: `#label-rows tr[data-label-id="${by_voxels[0][0]}"] button.only` });
  plan.push({ what: "none", selector: "#select-none" });
  plan.push({ what: "all", selector: "#select-all" });
  const steps = new Set(args.steps.split(","));
  for (const step of plan.filter((p) => steps.has(p.what))) {
    received = 0;
    requests.length = 0;
    const t = Date.now();
    await page.locator(step.selector).click({ timeout: LOAD_MS });
    // settled: the viewer went through "loading" (or changed nothing) and is "ready"
    await page.waitForFunction(() => document.body.dataset.state === "loading", null, { timeout: 2000, polling: "raf" })
      .catch(() => {});
    await page.waitForFunction(() => document.body.dataset.state === "ready", null, { timeout: LOAD_MS, polling: 100 });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const outside = Date.now() - t;
    const inside_ms = await page.evaluate(() => {
      const s = window.medimg_viewer.state;
      return s && s.toggles && s.toggles.length ? s.toggles[s.toggles.length - 1].ms : 0;
    });
    await sleep(300); // late requests of the old viewer's debounce would show here
    const rec = { kind: "toggle", run, www: args.label, what: step.what, ms: inside_ms ? Math.round(inside_ms) : outside,
      outside_ms: outside, bytes: received, requests: requests.length };
    log(`run ${run}: ${step.what} ${rec.ms} ms (outside ${outside} ms), ${received} bytes, ${requests.length} requests`);
    out.push(rec);
  }
  sampling = false;
  await sampler;
  const metrics = await cdp.send("Performance.enable").then(() => cdp.send("Performance.getMetrics")).catch(() => ({ metrics: [] }));
  const m = Object.fromEntries(metrics.metrics.map((x) => [x.name, x.value]));
  out.push({ kind: "memory", run, www: args.label, heap_peak_mib: +(heap_peak / 1048576).toFixed(1),
    heap_end_mib: +((m.JSHeapUsedSize || 0) / 1048576).toFixed(1), rss_peak_mib: +(rss_peak / 1024).toFixed(0) });
  await context.close();
  return out;
}

function report(results) {
  const machine = results[0];
  const loads = results.filter((r) => r.kind === "first_load");
  const toggles = results.filter((r) => r.kind === "toggle");
  const mem = results.filter((r) => r.kind === "memory");
  const fmt = (ms) => `${(ms / 1000).toFixed(2)} s`;
  const range = (xs) => xs.length > 1 ? ` (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : "";
  const first = median(loads.map((r) => r.ms));
  console.log(`#### Viewer, ${machine.size}, ${machine.www} (${machine.chromium}, SwiftShader; ${machine.nproc} cores, load ${machine.loadavg_start} → ${machine.loadavg_end})\n`);
  console.log("| step | median | runs | bytes downloaded | × first load |");
  console.log("|---|---|---|---|---|");
  console.log(`| first load to first drawn overlay | ${fmt(first)}${range(loads.map((r) => r.ms))} | ${loads.length} | ${(median(loads.map((r) => r.bytes)) / 1048576).toFixed(1)} MiB | 1 |`);
  for (const what of ["untick", "tick", "only", "none", "all"]) {
    const xs = toggles.filter((r) => r.what === what);
    if (!xs.length) continue;
    const ms = median(xs.map((r) => r.ms));
    console.log(`| ${what} to settled canvas | ${fmt(ms)}${range(xs.map((r) => r.ms))} | ${xs.length} | ${Math.max(...xs.map((r) => r.bytes))} B max | ${(ms / first).toPrecision(2)} |`);
  }
  console.log(`\nJS heap peak (objects + ArrayBuffer backing stores): ${median(mem.map((r) => r.heap_peak_mib))} MiB; JS objects at the end: ${median(mem.map((r) => r.heap_end_mib))} MiB; browser resident peak (all processes): ${median(mem.map((r) => r.rss_peak_mib))} MiB.`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
