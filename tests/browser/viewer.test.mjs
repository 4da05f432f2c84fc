// The browser side in real headless Chromium: the NiiVue viewer, the home
// page and the styled /output/ listings, against `medimg demo` data served
// by `medimg serve` (lighttpd + medimg-fcgi workers).
//
//   MEDIMG_BUILD_DIR=build MEDIMG_SOURCE_DIR=. NODE_PATH=www/node_modules \
//     node --test tests/browser/viewer.test.mjs
//
// MEDIMG_TEST_BASE_URL + MEDIMG_TEST_DATA_ROOT point the suite at a server
// that is already running instead.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

// playwright-core is CommonJS and lives in www/node_modules (NODE_PATH).
const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.MEDIMG_SOURCE_DIR || path.resolve(here, "../..");
const BUILD_DIR = process.env.MEDIMG_BUILD_DIR || path.join(SOURCE_DIR, "build");
const ARTIFACTS = path.join(SOURCE_DIR, "tests/browser/artifacts");
const PATIENT = "PA00000002";

// The machine may be busy (several builds on two cores): generous, bounded.
const WAIT_MS = 150_000;
const TEST_MS = 300_000;

const run = promisify(execFile);

let base = "";
let data_root = "";
let tmp = "";
let server = null;
let server_log = "";
let browser = null;
let context = null;

const console_errors = [];   // {url, text}
const foreign_requests = []; // URLs not on our server
let expected_http_errors = false;

function free_port() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function wait_for_health(url, deadline_ms) {
  const deadline = Date.now() + deadline_ms;
  let last = "";
  while (Date.now() < deadline) {
    if (server && server.exitCode !== null) {
      throw new Error(`medimg serve exited with ${server.exitCode}:\n${read_log()}`);
    }
    try {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(300);
  }
  throw new Error(`server at ${url} not healthy within ${deadline_ms} ms (${last}):\n${read_log()}`);
}

function read_log() {
  try {
    return fs.readFileSync(server_log, "utf8").slice(-4000);
  } catch (_) {
    return "(no log)";
  }
}

function find_files(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(path.join(data_root, PATIENT), p));
    }
  };
  walk(dir);
  return out.sort();
}

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  if (process.env.MEDIMG_TEST_BASE_URL) {
    base = process.env.MEDIMG_TEST_BASE_URL.replace(/\/$/, "");
    data_root = process.env.MEDIMG_TEST_DATA_ROOT;
    assert.ok(data_root, "MEDIMG_TEST_DATA_ROOT must name the served data root");
  } else {
    const medimg = path.join(BUILD_DIR, "cli", "medimg");
    assert.ok(fs.existsSync(medimg), `${medimg} not built (cmake --build ${BUILD_DIR} --target medimg_cli medimg-fcgi)`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "medimg-browser-"));
    data_root = path.join(tmp, "data");
    await run(medimg, ["demo", data_root, "--size", "64x64x40", "--patient", PATIENT], { timeout: 120_000 });
    const port = await free_port();
    base = `http://127.0.0.1:${port}`;
    server_log = path.join(tmp, "serve.log");
    const log_fd = fs.openSync(server_log, "a");
    server = spawn(medimg, ["serve", "--host", "127.0.0.1", "--port", String(port), "--data-root", data_root], {
      cwd: tmp,
      env: { ...process.env, MEDIMG_WWW_ROOT: path.join(SOURCE_DIR, "www") },
      detached: true, // its own process group: lighttpd and workers end with it
      stdio: ["ignore", log_fd, log_fd],
    });
    fs.closeSync(log_fd);
    await wait_for_health(base, 90_000);
  }

  browser = await chromium.launch({
    executablePath: process.env.MEDIMG_CHROMIUM || "/usr/bin/chromium",
    timeout: 120_000,
    args: [
      "--headless=new", "--no-sandbox", "--disable-gpu",
      "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
      "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
  context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  context.setDefaultTimeout(WAIT_MS);
  context.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(`${base}/`) && !/^(data|blob):/.test(url)) foreign_requests.push(url);
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) {
    try {
      process.kill(-server.pid, "SIGTERM");
    } catch (_) {
      // already gone
    }
    const deadline = Date.now() + 15_000;
    while (server.exitCode === null && server.signalCode === null && Date.now() < deadline) await sleep(100);
    if (server.exitCode === null && server.signalCode === null) {
      try {
        process.kill(-server.pid, "SIGKILL");
      } catch (_) {
        // already gone
      }
    }
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function new_page() {
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    if (expected_http_errors && /Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    console_errors.push({ url: page.url(), text });
  });
  page.on("pageerror", (err) => console_errors.push({ url: page.url(), text: `uncaught: ${err.message}` }));
  return page;
}

async function wait_settled(page) {
  await page.waitForFunction(() => document.body.dataset.state !== "loading", null, { timeout: WAIT_MS });
  // two frames: NiiVue draws on the next animation frame
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

async function wait_ready(page) {
  await wait_settled(page);
  const state = await page.evaluate(() => document.body.dataset.state);
  if (state !== "ready") {
    const alert = await page.locator("#alert").textContent();
    assert.fail(`viewer state is ${state}: ${alert}`);
  }
}

async function open_viewer(page, query) {
  await page.goto(`${base}/viewer.html?${query}`, { timeout: WAIT_MS });
  await wait_ready(page);
}

// Pixels of the canvas, as a PNG; compared inside the page (no PNG decoder here).
async function canvas_png(page, name) {
  const png = await page.locator("#gl").screenshot({ timeout: WAIT_MS });
  if (name) fs.writeFileSync(path.join(ARTIFACTS, `${name}.png`), png);
  return png.toString("base64");
}

async function pixel_diff(page, a, b) {
  return page.evaluate(async ([pa, pb]) => {
    const decode = async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
      const c = new OffscreenCanvas(bmp.width, bmp.height);
      const g = c.getContext("2d");
      g.drawImage(bmp, 0, 0);
      return g.getImageData(0, 0, bmp.width, bmp.height);
    };
    const [x, y] = await Promise.all([decode(pa), decode(pb)]);
    if (x.width !== y.width || x.height !== y.height) return { differ: -1, total: 0 };
    let differ = 0;
    for (let i = 0; i < x.data.length; i += 4) {
      const d = Math.max(Math.abs(x.data[i] - y.data[i]), Math.abs(x.data[i + 1] - y.data[i + 1]),
        Math.abs(x.data[i + 2] - y.data[i + 2]));
      if (d > 24) differ++;
    }
    return { differ, total: x.width * x.height };
  }, [a, b]);
}

// Pixels whose colour is close to the label colour blended over grey.
async function colour_pixels(page, png, rgb) {
  return page.evaluate(async ([b64, target]) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext("2d");
    g.drawImage(bmp, 0, 0);
    const d = g.getImageData(0, 0, bmp.width, bmp.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - target[0]) < 12 && Math.abs(d[i + 1] - target[1]) < 12 && Math.abs(d[i + 2] - target[2]) < 12) n++;
    }
    return n;
  }, [png, rgb]);
}

function filtered_url(seg, ids) {
  const rel = seg.split("/").map(encodeURIComponent).join("/");
  return `${base}/filtered-scans/${PATIENT}/${rel}?label_ids=${[...ids].sort((a, b) => a - b).join(",")}`;
}

async function labels_json(seg) {
  const r = await fetch(`${base}/output/${PATIENT}/${seg}/labels`, { signal: AbortSignal.timeout(60_000) });
  assert.equal(r.status, 200, `GET /labels for ${seg}`);
  return r.json();
}

let page = null;   // the main viewer page, shared by the viewer tests in order
let seg = "";
let labels = null;

test("viewer loads the demo patient and lists exactly the labels of its segmentation", { timeout: TEST_MS }, async () => {
  page = await new_page();
  const overlay_requests = [];
  page.on("request", (r) => {
    if (r.url().includes("/filtered-scans/")) overlay_requests.push(r.url());
  });
  await open_viewer(page, `patient=${PATIENT}`);

  const state = await page.evaluate(() => ({ image: window.medimg_viewer.state.image, seg: window.medimg_viewer.state.seg }));
  const files = find_files(path.join(data_root, PATIENT));
  assert.ok(files.includes(state.image), `image ${state.image} is a file of the patient: ${files.join(", ")}`);
  assert.match(state.image, /^nifti\//);
  const expected_seg = files.find((f) => /^voxels\/[^/]+\/original\/all\.nii(\.gz)?$/.test(f)) ||
    files.find((f) => /^scans\//.test(f));
  assert.equal(state.seg, expected_seg);
  seg = state.seg;

  labels = (await labels_json(seg)).labels;
  assert.ok(labels.length >= 2, "the demo segmentation has several labels");
  const rows = await page.$$eval("#label-rows tr", (trs) => trs.map((tr) => ({
    id: Number(tr.dataset.labelId),
    name: tr.querySelector(".label-name").textContent,
    voxels: tr.querySelector(".voxels").textContent,
    checked: tr.querySelector("input[type=checkbox]").checked,
    swatch: getComputedStyle(tr.querySelector(".swatch")).backgroundColor,
  })));
  assert.deepEqual(rows.map((r) => r.id), labels.map((l) => l.id));
  assert.deepEqual(rows.map((r) => r.name), labels.map((l) => l.name));
  assert.deepEqual(rows.map((r) => r.voxels), labels.map((l) => l.voxels.toLocaleString("en-US")));
  assert.ok(rows.every((r) => r.checked), "every label is shown at first");
  for (const [i, l] of labels.entries()) {
    if (l.color) assert.equal(rows[i].swatch, `rgb(${l.color[0]}, ${l.color[1]}, ${l.color[2]})`, `swatch of ${l.name}`);
  }
  assert.deepEqual(overlay_requests, [filtered_url(seg, labels.map((l) => l.id))]);
  assert.equal(await page.locator("#alert").isVisible(), false);
  await page.screenshot({ path: path.join(ARTIFACTS, "viewer-laptop.png") });
});

test("the overlay is drawn in the label colours; opacity 0 and 'none' remove it", { timeout: TEST_MS }, async () => {
  assert.ok(page, "viewer page from the first test");
  // Centre the crosshair on the largest label so every view cuts it.
  const largest = labels.reduce((a, b) => (b.voxels > a.voxels ? b : a));
  if (largest.bbox) {
    await page.locator(`#label-rows tr[data-label-id="${largest.id}"] button.locate`).click();
    await wait_settled(page);
  }
  const with_overlay = await canvas_png(page, "overlay-all");

  await page.locator("#opacity").fill("1");
  await wait_settled(page);
  const opaque = await canvas_png(page, "overlay-opaque");
  if (largest.color) {
    const n = await colour_pixels(page, opaque, largest.color);
    assert.ok(n > 20, `at opacity 1 the canvas shows ${largest.name} in its colour ${largest.color} (${n} pixels)`);
  }

  await page.locator("#opacity").fill("0");
  await wait_settled(page);
  const transparent = await canvas_png(page, "overlay-opacity0");
  const d1 = await pixel_diff(page, with_overlay, transparent);
  assert.ok(d1.differ > 50, `opacity 0 changes the canvas (${d1.differ} of ${d1.total} pixels)`);

  await page.locator("#opacity").fill("0.6");
  await page.locator("#select-none").click();
  await page.waitForFunction(() => document.body.dataset.overlay === "", null, { timeout: WAIT_MS });
  await wait_ready(page);
  const none = await canvas_png(page, "overlay-none");
  const d2 = await pixel_diff(page, transparent, none);
  assert.ok(d2.differ < 20, `'none' looks like opacity 0 (${d2.differ} pixels differ)`);
  const d3 = await pixel_diff(page, with_overlay, none);
  assert.ok(d3.differ > 50, `'none' removes the overlay (${d3.differ} pixels differ)`);

  const request = page.waitForRequest((r) => r.url() === filtered_url(seg, labels.map((l) => l.id)), { timeout: WAIT_MS });
  await page.locator("#select-all").click();
  await request;
  await page.waitForFunction((u) => document.body.dataset.overlay && u.endsWith(document.body.dataset.overlay),
    filtered_url(seg, labels.map((l) => l.id)), { timeout: WAIT_MS });
  await wait_ready(page);
  const again = await canvas_png(page, "overlay-all-again");
  const d4 = await pixel_diff(page, with_overlay, again);
  assert.ok(d4.differ < 20, `'all' restores the first picture (${d4.differ} pixels differ)`);
});

test("unticking a label requests the filtered file without it and changes the canvas", { timeout: TEST_MS }, async () => {
  const largest = labels.reduce((a, b) => (b.voxels > a.voxels ? b : a));
  const before_png = await canvas_png(page);
  const rest = labels.filter((l) => l.id !== largest.id).map((l) => l.id);
  const want = filtered_url(seg, rest);
  const seen = [];
  const listener = (r) => {
    if (r.url().includes("/filtered-scans/")) seen.push(r.url());
  };
  page.on("request", listener);
  const request = page.waitForRequest((r) => r.url() === want, { timeout: WAIT_MS });
  await page.locator(`#label-${largest.id}`).uncheck();
  const response = await (await request).response();
  assert.equal(response.status(), 200);
  await page.waitForFunction((u) => u.endsWith(document.body.dataset.overlay || "#"), want, { timeout: WAIT_MS });
  await wait_ready(page);
  page.off("request", listener);
  assert.deepEqual(seen, [want], "one request, for the remaining labels");
  const after_png = await canvas_png(page, "overlay-without-largest");
  const d = await pixel_diff(page, before_png, after_png);
  assert.ok(d.differ > 20, `the canvas changes when ${largest.name} is hidden (${d.differ} pixels)`);

  // "only" shows one label
  const other = labels.find((l) => l.id !== largest.id);
  const only_url = filtered_url(seg, [other.id]);
  const only_request = page.waitForRequest((r) => r.url() === only_url, { timeout: WAIT_MS });
  await page.locator(`#label-rows tr[data-label-id="${other.id}"] button.only`).click();
  await only_request;
  await page.waitForFunction((u) => u.endsWith(document.body.dataset.overlay || "#"), only_url, { timeout: WAIT_MS });
  await wait_ready(page);
  const checked = await page.$$eval("#label-rows input[type=checkbox]:checked", (xs) => xs.map((x) => Number(x.dataset.labelId)));
  assert.deepEqual(checked, [other.id]);
});

test("view switch: each view draws something different", { timeout: TEST_MS }, async () => {
  const pictures = {};
  for (const view of ["axial", "coronal", "sagittal", "render", "multiplanar"]) {
    await page.locator(`input[name=view][value=${view}]`).check();
    await wait_settled(page);
    pictures[view] = await canvas_png(page, `view-${view}`);
  }
  const d = await pixel_diff(page, pictures.axial, pictures.sagittal);
  assert.ok(d.differ > 100, `axial and sagittal differ (${d.differ})`);
  const r = await pixel_diff(page, pictures.render, pictures.multiplanar);
  assert.ok(r.differ > 100, `3-D render and multiplanar differ (${r.differ})`);
});

test("tablet portrait: canvas and panel both visible, nothing overflows sideways", { timeout: TEST_MS }, async () => {
  assert.ok(page, "viewer page from the first test");
  await page.setViewportSize({ width: 768, height: 1024 });
  try {
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const box = await page.locator("#gl").boundingBox();
    const panel = await page.locator(".panel").boundingBox();
    assert.ok(box.width >= 700 && box.height >= 300, `canvas ${box.width}x${box.height}`);
    assert.ok(panel.y >= box.y + box.height - 1, "panel below the canvas");
    assert.ok(await page.locator("#label-rows tr").first().isVisible());
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal overflow (${overflow}px)`);
    await page.screenshot({ path: path.join(ARTIFACTS, "viewer-tablet.png") });
  } finally {
    await page.setViewportSize({ width: 1366, height: 768 });
  }
});

test("an unknown patient shows an alert naming it", { timeout: TEST_MS }, async () => {
  expected_http_errors = true;
  try {
    const p = await new_page();
    await p.goto(`${base}/viewer.html?patient=NOPE`);
    await wait_settled(p);
    const alert = p.getByRole("alert");
    await alert.waitFor({ state: "visible", timeout: WAIT_MS });
    const text = await alert.textContent();
    assert.match(text, /NOPE/);
    assert.match(text, /404/);
    assert.equal(await p.evaluate(() => document.body.dataset.state), "error");
    await p.screenshot({ path: path.join(ARTIFACTS, "viewer-unknown-patient.png") });
    await p.close();
  } finally {
    expected_http_errors = false;
  }
});

test("a 4xx answer's JSON detail is shown", { timeout: TEST_MS }, async () => {
  expected_http_errors = true;
  try {
    const missing = "scans/missing.nii.gz";
    const r = await fetch(`${base}/output/${PATIENT}/${missing}/labels`);
    assert.ok(r.status >= 400 && r.status < 500, `server answers ${r.status}`);
    const body = await r.json();
    assert.ok(body.detail, "JSON error with a detail");
    const image = find_files(path.join(data_root, PATIENT)).find((f) => f.startsWith("nifti/"));
    const p = await new_page();
    await p.goto(`${base}/viewer.html?patient=${PATIENT}&image=${image}&seg=${missing}`);
    await wait_settled(p);
    const alert = p.getByRole("alert");
    await alert.waitFor({ state: "visible", timeout: WAIT_MS });
    const text = await alert.textContent();
    assert.ok(text.includes(body.detail), `alert "${text}" contains "${body.detail}"`);
    assert.match(text, new RegExp(String(r.status)));
    await p.close();
  } finally {
    expected_http_errors = false;
  }
});

test("listing: breadcrumbs, human sizes, sorting, and a view link that opens the viewer", { timeout: TEST_MS }, async () => {
  const p = await new_page();
  await p.goto(`${base}/output/${PATIENT}/`);
  const crumbs = p.locator("nav.breadcrumbs");
  await crumbs.waitFor({ timeout: WAIT_MS });
  assert.deepEqual(
    (await crumbs.locator("a, [aria-current]").allTextContents()).map((s) => s.trim()),
    ["medimg", "output", PATIENT],
  );
  assert.equal(await crumbs.locator("a", { hasText: "output" }).getAttribute("href"), "/output/");
  const names = await p.locator("table.medimg-listing tbody tr[data-name]").evaluateAll((trs) => trs.map((t) => t.dataset.name));
  const on_disk = fs.readdirSync(path.join(data_root, PATIENT)).filter((n) => !n.startsWith(".")).sort();
  assert.deepEqual([...names].sort(), on_disk);

  const folder = find_files(path.join(data_root, PATIENT)).find((f) => /\/all\.nii(\.gz)?$/.test(f)) || seg;
  const dir = folder.split("/").slice(0, -1).join("/");
  await p.goto(`${base}/output/${PATIENT}/${dir}/`);
  await p.locator("table.medimg-listing").waitFor({ timeout: WAIT_MS });
  await p.screenshot({ path: path.join(ARTIFACTS, "listing.png") });
  const rows = await p.locator("table.medimg-listing tbody tr.file").evaluateAll((trs) => trs.map((t) => ({
    name: t.dataset.name,
    size: t.querySelector("td.size").textContent,
    view: t.querySelector("a.view") ? t.querySelector("a.view").getAttribute("href") : null,
  })));
  assert.ok(rows.length >= 2);
  for (const row of rows) {
    assert.match(row.size, /^\d+(\.\d)? (B|KiB|MiB|GiB)$/, `human size for ${row.name}`);
    const bytes = fs.statSync(path.join(data_root, PATIENT, dir, row.name)).size;
    const [num, unit] = row.size.split(" ");
    const scale = { B: 1, KiB: 1024, MiB: 1048576, GiB: 1073741824 }[unit];
    // servers abbreviate sizes rounding down to the shown precision
    const step = unit === "B" ? 1 : (num.includes(".") ? 0.1 : 1) * scale;
    const shown = Number(num) * scale;
    assert.ok(bytes >= shown * 0.95 - 1 && bytes <= shown * 1.05 + step, `${row.name}: ${row.size} ~ ${bytes} bytes`);
  }

  // sort by size, descending on the second click
  await p.locator("th.size button").click();
  await p.locator("th.size button").click();
  assert.equal(await p.locator("th.size").getAttribute("aria-sort"), "descending");
  const sizes = await p.locator("table.medimg-listing tbody tr.file").evaluateAll((trs) => trs.map((t) => t.dataset.name));
  const by_size = [...rows].sort((a, b) => fs.statSync(path.join(data_root, PATIENT, dir, b.name)).size -
    fs.statSync(path.join(data_root, PATIENT, dir, a.name)).size);
  assert.equal(sizes[0], by_size[0].name, "largest first");

  const all_row = p.locator(`table.medimg-listing tr[data-name="${path.basename(folder)}"]`);
  assert.equal(await all_row.locator("a.view").getAttribute("href"),
    `/viewer.html?patient=${PATIENT}&seg=${folder}`);
  await all_row.locator("a.view").click();
  await p.waitForURL(/\/viewer\.html\?/, { timeout: WAIT_MS });
  await wait_ready(p);
  assert.equal(await p.evaluate(() => window.medimg_viewer.state.seg), folder);
  assert.ok(await p.locator("#label-rows tr").count() >= 1);
  await p.close();
});

test("home page lists the patient with viewer and file links", { timeout: TEST_MS }, async () => {
  const p = await new_page();
  await p.goto(`${base}/`);
  const item = p.locator(`li[data-patient="${PATIENT}"]`);
  await item.waitFor({ timeout: WAIT_MS });
  assert.equal(await item.locator("a.viewer").getAttribute("href"), `/viewer.html?patient=${PATIENT}`);
  assert.equal(await item.locator("a.files").getAttribute("href"), `/output/${PATIENT}/`);
  await p.screenshot({ path: path.join(ARTIFACTS, "home.png") });
  await p.close();
});

test("no console errors on any page", () => {
  assert.deepEqual(console_errors, []);
});

test("no request left the server", () => {
  assert.deepEqual(foreign_requests, []);
});
