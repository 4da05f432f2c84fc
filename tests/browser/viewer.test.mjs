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
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SOURCE_DIR, PYTHON, run, sleep, make_demo, start_medimg_serve, launch_chromium } from "./harness.mjs";

const ARTIFACTS = path.join(SOURCE_DIR, "tests/browser/artifacts");
const PATIENT = "PA00000002";
const FIXTURES = "PA00000009"; // broken, float and signed-id files; no voxels/ folder
const NO_CT = "PA00000010";    // an MR-like image (no values near -1000) and the demo map

// The machine may be busy (several builds on two cores): generous, bounded.
const WAIT_MS = 150_000;
const TEST_MS = 300_000;

// nibabel reads every file the tests compare against (real files, real reader).
async function python(code, ...args) {
  const { stdout } = await run(PYTHON, ["-c", code, ...args], { timeout: 120_000, maxBuffer: 64 << 20 });
  return stdout.trim() ? JSON.parse(stdout) : null;
}

// A second patient: the demo CT, a truncated copy of it, a float image that
// is no label map (/labels answers 415), a map with a negative id, a NIfTI
// label map with an id above 255 and an int64 map with an id above 2^53.
// No voxels/ folder.
const FIXTURE_PY = `
import os, shutil, sys
import numpy as np, nibabel as nib
root, pid, fix = sys.argv[1:4]
src = os.path.join(root, pid)
dst = os.path.join(root, fix)
os.makedirs(os.path.join(dst, "nifti"))
os.makedirs(os.path.join(dst, "scans"))
ct_path = os.path.join(src, "nifti", pid + "_CT.nii.gz")
shutil.copy(ct_path, os.path.join(dst, "nifti", "CT.nii.gz"))
raw = open(ct_path, "rb").read()
open(os.path.join(dst, "nifti", "broken.nii.gz"), "wb").write(raw[: len(raw) // 3])
ct = nib.load(ct_path)
rng = np.random.default_rng(7)
nib.save(nib.Nifti1Image(np.where(rng.random(ct.shape) < 0.5, 1.5, 2.5).astype(np.float32), ct.affine),
         os.path.join(dst, "scans", "float.nii.gz"))
seg = nib.load(os.path.join(src, "voxels", pid + "_CT", "original", "all.nii.gz"))
d = np.asanyarray(seg.dataobj).astype(np.int16)
d[d == 1] = -3
img = nib.Nifti1Image(d, seg.affine)
img.header.set_data_dtype(np.int16)
nib.save(img, os.path.join(dst, "scans", "signed.nii.gz"))
big = np.zeros(ct.shape, np.int64)
big[d == 6] = 2**60 + 1
big[d == 3] = 3
w = d.copy()
w[d == -3] = 300
img = nib.Nifti1Image(w, seg.affine)
img.header.set_data_dtype(np.int16)
img.header.set_intent("label")
nib.save(img, os.path.join(dst, "scans", "wide.nii.gz"))
img = nib.Nifti1Image(big, seg.affine, dtype=np.int64)
nib.save(img, os.path.join(dst, "scans", "big.nii.gz"))
`;

// A patient without a CT: an image with the CT's grid and no value near
// -1000 (as an MR has), named MR, and the demo label map under scans/.
const NO_CT_PY = `
import os, shutil, sys
import numpy as np, nibabel as nib
root, pid, dst = sys.argv[1], sys.argv[2], os.path.join(sys.argv[1], sys.argv[3])
os.makedirs(os.path.join(dst, "nifti"))
os.makedirs(os.path.join(dst, "scans"))
ct = nib.load(os.path.join(root, pid, "nifti", pid + "_CT.nii.gz"))
mr = np.clip(np.asanyarray(ct.dataobj).astype(np.int32) + 1024, 0, 4000).astype(np.int16)
img = nib.Nifti1Image(mr, ct.affine)
img.header.set_data_dtype(np.int16)
nib.save(img, os.path.join(dst, "nifti", "MR.nii.gz"))
shutil.copy(os.path.join(root, pid, "voxels", pid + "_CT", "original", "all.nii.gz"), os.path.join(dst, "scans", "seg.nii.gz"))
`;

let base = "";
let data_root = "";
let tmp = "";
let server = null;
let browser = null;
let context = null;

const console_errors = [];   // {url, text}
const foreign_requests = []; // URLs not on our server
let expected_http_errors = false;
let expected_decoder_errors = false; // NiiVue's own log lines for a file it cannot read

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
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "medimg-browser-"));
    data_root = path.join(tmp, "data");
    await make_demo(data_root, { size: "64x64x40", patient: PATIENT });
    server = await start_medimg_serve({ data_root, log: path.join(tmp, "serve.log") });
    base = server.base;
  }

  if (!fs.existsSync(path.join(data_root, FIXTURES))) await python(FIXTURE_PY, data_root, PATIENT, FIXTURES);
  if (!fs.existsSync(path.join(data_root, NO_CT))) await python(NO_CT_PY, data_root, PATIENT, NO_CT);

  browser = await launch_chromium();
  context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  context.setDefaultTimeout(WAIT_MS);
  context.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(`${base}/`) && !/^(data|blob):/.test(url)) foreign_requests.push(url);
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function new_page() {
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    if (expected_http_errors && /Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    if (expected_decoder_errors && /niivue-error|Compressed input was truncated/.test(text)) return;
    console_errors.push({ url: page.url(), text });
  });
  page.on("pageerror", (err) => console_errors.push({ url: page.url(), text: `uncaught: ${err.message}` }));
  return page;
}

// Runs fn with 4xx "Failed to load resource" console lines expected.
async function with_http_errors(fn) {
  expected_http_errors = true;
  try {
    return await fn();
  } finally {
    expected_http_errors = false;
  }
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

async function labels_json(seg) {
  const r = await fetch(`${base}/output/${PATIENT}/${seg}/labels`, { signal: AbortSignal.timeout(60_000) });
  assert.equal(r.status, 200, `GET /labels for ${seg}`);
  return r.json();
}

let page = null;   // the main viewer page, shared by the viewer tests in order
let seg = "";
let labels = null;
let image_rel = "";
const network = []; // every request of the main page after its first load

function static_url(rel) {
  return `${base}/output/${PATIENT}/${rel.split("/").map(encodeURIComponent).join("/")}`;
}

// Counts NiiVue's GPU uploads per layer from here on (the page's own Niivue).
async function spy_uploads(p) {
  await p.evaluate(() => {
    const nv = window.medimg_viewer.nv;
    window.__uploads = { layer0: 0, layer1: 0, full: 0 };
    if (!nv.__spied) {
      const refresh = nv.refreshLayers.bind(nv);
      nv.refreshLayers = (v, layer) => {
        window.__uploads[`layer${layer}`] = (window.__uploads[`layer${layer}`] || 0) + 1;
        return refresh(v, layer);
      };
      const update = nv.updateGLVolume.bind(nv);
      nv.updateGLVolume = () => {
        window.__uploads.full++;
        return update();
      };
      nv.__spied = true;
    }
  });
}

const uploads = (p) => p.evaluate(() => ({ ...window.__uploads }));

test("viewer loads the demo patient, reads the segmentation once and lists exactly its labels", { timeout: TEST_MS }, async () => {
  page = await new_page();
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  await open_viewer(page, `patient=${PATIENT}`);

  const state = await page.evaluate(() => ({ image: window.medimg_viewer.state.image, seg: window.medimg_viewer.state.seg }));
  const files = find_files(path.join(data_root, PATIENT));
  assert.ok(files.includes(state.image), `image ${state.image} is a file of the patient: ${files.join(", ")}`);
  assert.match(state.image, /^nifti\//);
  image_rel = state.image;
  const expected_seg = files.find((f) => /^voxels\/[^/]+\/original\/all\.nii(\.gz)?$/.test(f)) ||
    files.find((f) => /^scans\//.test(f));
  assert.equal(state.seg, expected_seg);
  seg = state.seg;

  labels = (await labels_json(seg)).labels;
  assert.ok(labels.length >= 2, "the demo segmentation has several labels");
  const rows = await page.$$eval("#label-rows tr", (trs) => trs.map((tr) => ({
    id: tr.dataset.labelId,
    name: tr.querySelector(".label-name").textContent,
    voxels: tr.querySelector(".voxels").textContent,
    checked: tr.querySelector("input[type=checkbox]").checked,
    swatch: getComputedStyle(tr.querySelector(".swatch")).backgroundColor,
  })));
  assert.deepEqual(rows.map((r) => r.id), labels.map((l) => String(l.id)));
  assert.deepEqual(rows.map((r) => r.name), labels.map((l) => l.name));
  assert.deepEqual(rows.map((r) => r.voxels), labels.map((l) => l.voxels.toLocaleString("en-US")));
  assert.ok(rows.every((r) => r.checked), "every label is shown at first");
  // A colour used by one label is its swatch; labels sharing one get distinct shades.
  const uses = new Map();
  for (const l of labels) if (l.color) uses.set(String(l.color), (uses.get(String(l.color)) || 0) + 1);
  for (const [i, l] of labels.entries()) {
    if (l.color && uses.get(String(l.color)) === 1) {
      assert.equal(rows[i].swatch, `rgb(${l.color[0]}, ${l.color[1]}, ${l.color[2]})`, `swatch of ${l.name}`);
    }
  }
  const shared = [...uses].filter(([, n]) => n > 1);
  assert.ok(shared.length >= 1, "the demo table has labels that share a colour (lung lobes, vertebrae)");
  for (const [colour] of shared) {
    const swatches = labels.map((l, i) => [l, rows[i].swatch]).filter(([l]) => String(l.color) === colour).map(([, s]) => s);
    assert.equal(new Set(swatches).size, swatches.length, `labels sharing ${colour} have distinct shades: ${swatches}`);
  }

  // The segmentation is read once, as stored; nothing from /filtered-scans.
  assert.deepEqual(requests.filter((u) => u.includes("/filtered-scans/")), []);
  assert.equal(requests.filter((u) => u === static_url(seg)).length, 1);
  assert.equal(await page.evaluate(() => document.body.dataset.overlay), `/output/${PATIENT}/${seg}`);
  assert.equal(await page.locator("#alert").isVisible(), false);
  assert.equal(await page.locator("#progress").isVisible(), false, "progress gone once drawn");
  page.on("request", (r) => network.push(r.url()));
  await page.screenshot({ path: path.join(ARTIFACTS, "viewer-laptop.png") });
});

test("progress stays visible until the first picture is drawn", { timeout: TEST_MS }, async () => {
  const p = await new_page();
  // Samples, inside the page, whether the progress box is shown on every frame
  // until the state becomes ready.
  await p.addInitScript(() => {
    window.__progress = [];
    const sample = () => {
      const el = document.getElementById("progress");
      const state = document.body ? document.body.dataset.state : "";
      if (el) window.__progress.push({ shown: !el.hidden, state, text: el.textContent });
      if (state !== "ready" && state !== "error") requestAnimationFrame(sample);
    };
    requestAnimationFrame(sample);
  });
  await open_viewer(p, `patient=${PATIENT}`);
  const samples = await p.evaluate(() => window.__progress);
  const loading = samples.filter((s) => s.state === "loading");
  assert.ok(loading.length >= 2, `sampled ${loading.length} frames while loading`);
  const first_shown = loading.findIndex((s) => s.shown);
  assert.ok(first_shown >= 0, "progress is shown");
  const gaps = loading.slice(first_shown).filter((s) => !s.shown);
  assert.deepEqual(gaps, [], "no frame without progress between the first request and the first picture");
  assert.ok(loading.some((s) => /segmentation/.test(s.text)), "the segmentation's stage is named");
  await p.close();
});

// Mean of the image under each label id of the map, as nibabel and numpy read them.
const MEANS_PY = `
import sys, json
import numpy as np, nibabel as nib
root, image, seg = sys.argv[1:4]
ct = nib.load(root + "/" + image).get_fdata(dtype=np.float64)
lab = np.asanyarray(nib.load(root + "/" + seg).dataobj)
assert ct.shape[:3] == lab.shape[:3]
print(json.dumps({str(int(i)): float(ct[lab == i].mean()) for i in np.unique(lab) if i != 0}))
`;

test("label list: the HU column is each label's mean CT value under it, as numpy computes it from the same files", { timeout: TEST_MS }, async () => {
  assert.ok(page, "viewer page from the first test");
  await page.waitForFunction(() => document.body.classList.contains("has-intensity"), null, { timeout: WAIT_MS });
  const asked = await page.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name)
    .filter((u) => u.includes("/labels?image=")));
  assert.deepEqual(asked.map((u) => decodeURIComponent(new URL(u).search)), [`?image=${image_rel}`], "one statistics request for the image shown");
  assert.equal(await page.locator("#label-table thead th.hu").isVisible(), true, "the HU column is shown");
  assert.equal(await page.locator("#label-table thead th.hu").textContent(), "HU");
  const cells = await page.$$eval("#label-rows tr", (trs) => trs.map((tr) => ({
    id: tr.dataset.labelId,
    text: tr.querySelector("td.hu").textContent,
    title: tr.querySelector("td.hu").title,
    shown: getComputedStyle(tr.querySelector("td.hu")).display !== "none",
  })));
  const want = await python(MEANS_PY, path.join(data_root, PATIENT), image_rel, seg);
  assert.deepEqual(cells.map((c) => c.id).sort(), Object.keys(want).sort(), "a row for every label in the map");
  assert.ok(cells.length >= 3, `several labels (${cells.length})`);
  for (const c of cells) {
    const mean = want[c.id];
    assert.ok(c.shown, `label ${c.id}: cell shown`);
    assert.match(c.text, /^-?\d+(\.\d)?$/, `label ${c.id}: "${c.text}" to 0.1 HU`);
    assert.ok(Math.abs(Number(c.text) - mean) <= 0.05 + 1e-9, `label ${c.id}: shown ${c.text} HU, numpy's mean ${mean}`);
    const full = Number(/^mean (-?[\d.e+-]+),/.exec(c.title)[1]);
    assert.ok(Math.abs(full - mean) <= 1e-9 * Math.max(1, Math.abs(mean)), `label ${c.id}: title's mean ${full} = ${mean}`);
  }
  assert.ok(new Set(cells.map((c) => c.text)).size > 1, "the labels' means differ");
});

test("a patient without a CT: no HU column, no statistics request, no error", { timeout: TEST_MS }, async () => {
  // the server would answer: leaving the column out is the viewer's choice
  const r = await fetch(`${base}/output/${NO_CT}/scans/seg.nii.gz/labels?image=nifti/MR.nii.gz`);
  assert.equal(r.status, 200);
  assert.ok((await r.json()).labels.some((l) => l.intensity && Number.isFinite(l.intensity.mean)));
  const before = console_errors.length;
  const p = await new_page();
  const requests = [];
  p.on("request", (q) => requests.push(q.url()));
  await open_viewer(p, `patient=${NO_CT}`);
  assert.deepEqual(await p.evaluate(() => [window.medimg_viewer.state.image, window.medimg_viewer.state.seg]),
    ["nifti/MR.nii.gz", "scans/seg.nii.gz"]);
  assert.ok(await p.locator("#label-rows tr").count() >= 3, "the labels are listed");
  await sleep(1500); // the statistics would be asked for right after the first picture
  assert.deepEqual(requests.filter((u) => u.includes("labels?image=")), []);
  assert.equal(await p.evaluate(() => document.body.classList.contains("has-intensity")), false);
  assert.equal(await p.locator("#label-table thead th.hu").isVisible(), false, "no HU header");
  assert.equal(await p.locator("#label-rows td.hu").first().isVisible(), false, "no HU cells");
  assert.equal(await p.locator("#wl-unit").textContent(), "");
  assert.doesNotMatch(await p.locator("#readout").textContent(), /HU/);
  assert.equal(await p.locator("#alert").isVisible(), false);
  assert.deepEqual(console_errors.slice(before), []);
  await p.close();
});

test("the overlay is drawn in the label colours; opacity 0 and 'none' remove it without a request", { timeout: TEST_MS }, async () => {
  assert.ok(page, "viewer page from the first test");
  const largest = labels.reduce((a, b) => (b.voxels > a.voxels ? b : a));
  await page.locator(`#label-rows tr[data-label-id="${largest.id}"] button.locate`).click();
  await wait_settled(page);
  const with_overlay = await canvas_png(page, "overlay-all");

  await page.locator("#opacity").fill("1");
  await wait_settled(page);
  const opaque = await canvas_png(page, "overlay-opaque");
  if (largest.color) {
    const shade = await page.locator(`#label-rows tr[data-label-id="${largest.id}"] .swatch`)
      .evaluate((s) => getComputedStyle(s).backgroundColor.match(/\d+/g).map(Number));
    const n = await colour_pixels(page, opaque, shade);
    assert.ok(n > 20, `at opacity 1 the canvas shows ${largest.name} in its swatch colour ${shade} (${n} pixels)`);
  }

  await page.locator("#opacity").fill("0");
  await wait_settled(page);
  const transparent = await canvas_png(page, "overlay-opacity0");
  const d1 = await pixel_diff(page, with_overlay, transparent);
  assert.ok(d1.differ > 50, `opacity 0 changes the canvas (${d1.differ} of ${d1.total} pixels)`);

  await page.locator("#opacity").fill("0.6");
  await wait_settled(page);
  await spy_uploads(page);
  network.length = 0;
  await page.locator("#select-none").click();
  await wait_ready(page);
  const none = await canvas_png(page, "overlay-none");
  const d2 = await pixel_diff(page, transparent, none);
  assert.ok(d2.differ < 20, `'none' looks like opacity 0 (${d2.differ} pixels differ)`);
  const d3 = await pixel_diff(page, with_overlay, none);
  assert.ok(d3.differ > 50, `'none' removes the overlay (${d3.differ} pixels differ)`);

  await page.locator("#select-all").click();
  await wait_ready(page);
  const again = await canvas_png(page, "overlay-all-again");
  const d4 = await pixel_diff(page, with_overlay, again);
  assert.ok(d4.differ < 20, `'all' restores the first picture (${d4.differ} pixels differ)`);
  assert.deepEqual(network, [], "'none' and 'all' download nothing");
  const u = await uploads(page);
  assert.equal(u.layer0, 0, "the image layer is not uploaded again");
  assert.equal(u.full, 0, "no full re-upload of every volume");
  assert.equal(await page.evaluate(() => window.medimg_viewer.state.mode), "drawing", "the demo map is NiiVue's drawing layer");
  assert.equal(u.layer1, 0, "no layer is re-rendered: the drawing's colour table is applied while drawing");
});

test("unticking a label and 'only' change the colour table: canvas changes, nothing is downloaded", { timeout: TEST_MS }, async () => {
  const largest = labels.reduce((a, b) => (b.voxels > a.voxels ? b : a));
  const before_png = await canvas_png(page);
  await page.evaluate(() => { window.__bitmap = window.medimg_viewer.nv.drawBitmap; });
  await spy_uploads(page);
  network.length = 0;
  await page.locator(`#label-${largest.id}`).uncheck();
  await wait_ready(page);
  const after_png = await canvas_png(page, "overlay-without-largest");
  const d = await pixel_diff(page, before_png, after_png);
  assert.ok(d.differ > 20, `the canvas changes when ${largest.name} is hidden (${d.differ} pixels)`);
  const lut = await page.evaluate((id) => ({
    alpha: window.medimg_viewer.label_alpha(id),
    shown: window.medimg_viewer.label_alpha(document.querySelector("#label-rows input:checked").dataset.labelId),
    volumes: window.medimg_viewer.nv.volumes.length,
    same: window.__bitmap === window.medimg_viewer.nv.drawBitmap,
  }), String(largest.id));
  assert.equal(lut.alpha, 0, "the hidden label's alpha is 0 in NiiVue's colour table");
  assert.equal(lut.shown, 255, "a shown label's is 255");
  assert.equal(lut.volumes, 1, "the image is the only volume: the map is the drawing layer");
  assert.equal(lut.same, true, "the same segmentation voxels stay loaded");

  const other = labels.find((l) => l.id !== largest.id);
  await page.locator(`#label-rows tr[data-label-id="${other.id}"] button.only`).click();
  await wait_ready(page);
  const checked = await page.$$eval("#label-rows input[type=checkbox]:checked", (xs) => xs.map((x) => x.dataset.labelId));
  assert.deepEqual(checked, [String(other.id)]);
  assert.deepEqual(network, [], "no request for a toggle");
  const u = await uploads(page);
  assert.equal(u.layer0, 0, "the image layer is not uploaded again");
  assert.equal(u.full, 0);
  const timings = await page.evaluate(() => window.medimg_viewer.state.toggles.slice(-2));
  assert.equal(timings.length, 2);
});

test("a map NiiVue cannot take as its drawing (id above 255) is an overlay layer: toggles and outlines re-render that layer only, nothing downloaded", { timeout: TEST_MS }, async () => {
  const p = await new_page();
  const requests = [];
  await open_viewer(p, `patient=${FIXTURES}&image=nifti/CT.nii.gz&seg=scans/wide.nii.gz`);
  p.on("request", (r) => requests.push(r.url()));
  const info = await p.evaluate(() => {
    const v = window.medimg_viewer.nv.volumes[1];
    return { mode: window.medimg_viewer.state.mode, volumes: window.medimg_viewer.nv.volumes.length, intent: v.hdr.intent_code };
  });
  assert.deepEqual(info, { mode: "layer", volumes: 2, intent: 1002 });
  await p.locator("#label-rows tr[data-label-id='300'] button.locate").click();
  await wait_settled(p);
  assert.equal(await p.locator("#readout").evaluate((el) => el.dataset.label), "300");
  const filled = await canvas_png(p);
  await spy_uploads(p);
  await p.locator("#label-300").uncheck();
  await wait_ready(p);
  const hidden = await canvas_png(p);
  assert.ok((await pixel_diff(p, filled, hidden)).differ > 20, "hiding id 300 changes the picture");
  assert.equal(await p.evaluate(() => window.medimg_viewer.label_alpha("300")), 0);
  assert.deepEqual(await uploads(p), { layer0: 0, layer1: 1, full: 0 }, "one re-render of the overlay layer, the image untouched");
  await p.locator("#label-300").check();
  await wait_ready(p);
  assert.equal(await p.locator("#outline-option").isVisible(), true);
  await p.locator("#outline").check();
  await wait_settled(p);
  const outlined = await canvas_png(p, "overlay-outline");
  assert.ok((await pixel_diff(p, filled, outlined)).differ > 20, "outlines change the picture");
  await p.locator("#outline").uncheck();
  await wait_settled(p);
  assert.ok((await pixel_diff(p, filled, await canvas_png(p))).differ < 20, "and back");
  // a label's own opacity in this mode too: one re-render of the layer
  const before_alpha = await uploads(p);
  await p.locator("#label-rows tr[data-label-id='300'] input.alpha").fill("0");
  await wait_ready(p);
  assert.equal(await p.evaluate(() => window.medimg_viewer.label_alpha("300")), 0);
  assert.ok((await pixel_diff(p, filled, await canvas_png(p))).differ > 20, "id 300 at 0% changes the picture");
  assert.deepEqual(await uploads(p), { ...before_alpha, layer1: before_alpha.layer1 + 1 }, "one re-render of the overlay layer");
  await p.locator("#label-rows tr[data-label-id='300'] input.alpha").fill("100");
  await wait_ready(p);
  assert.ok((await pixel_diff(p, filled, await canvas_png(p))).differ < 20, "and back at 100%");
  assert.deepEqual(requests, []);
  assert.equal((await uploads(p)).layer0, 0);
  await p.close();
});

test("readout: a click shows the crosshair's mm, voxel, CT value in HU and the label there, as nibabel reads them", { timeout: TEST_MS }, async () => {
  await page.locator("#select-all").click();
  await wait_ready(page);
  await page.locator("input[name=view][value=axial]").check();
  await wait_settled(page);
  const box = await page.locator("#gl").boundingBox();
  const check = async (what) => {
    const r = await page.locator("#readout").evaluate((el) => ({ ...el.dataset, text: el.textContent }));
    const mm = r.mm.split(",").map(Number);
    const want = await python(`
import sys, json
import numpy as np, nibabel as nib
root, image, seg = sys.argv[1:4]
mm = np.array([float(x) for x in sys.argv[4].split(",")] + [1.0])
ct = nib.load(root + "/" + image)
lab = nib.load(root + "/" + seg)
v = np.linalg.inv(ct.affine) @ mm
ijk = [int(x) for x in np.floor(v[:3] + 0.5)]
w = np.linalg.inv(lab.affine) @ mm
lijk = tuple(int(x) for x in np.floor(w[:3] + 0.5))
print(json.dumps({"vox": ijk, "frac": [float(x - np.floor(x)) for x in v[:3]],
  "value": float(ct.get_fdata()[tuple(ijk)]), "label": str(int(np.asanyarray(lab.dataobj)[lijk]))}))
`, path.join(data_root, PATIENT), image_rel, seg, r.mm);
    const near_half = want.frac.some((f) => Math.abs(f - 0.5) < 1e-3);
    if (!near_half) assert.equal(r.vox, want.vox.join(","), `${what}: voxel of ${r.mm} mm`);
    assert.equal(Number(r.value), want.value, `${what}: CT value at ${want.vox}`);
    assert.equal(r.label, want.label, `${what}: label at ${want.vox}`);
    assert.match(r.text, new RegExp(`${want.value} HU`), `${what}: value in HU in "${r.text}"`);
    const label = labels.find((l) => String(l.id) === want.label);
    if (label) assert.ok(r.text.includes(`${label.name} (${label.id})`), `${what}: "${r.text}" names ${label.name}`);
    assert.match(r.text, /-?\d+\.\d, -?\d+\.\d, -?\d+\.\d mm/);
    return { ...r, want };
  };
  // a point inside the largest label, then a point of the body without one
  const largest = labels.reduce((a, b) => (b.voxels > a.voxels ? b : a));
  await page.locator(`#label-rows tr[data-label-id="${largest.id}"] button.locate`).click();
  await wait_settled(page);
  const at_label = await check("label centre");
  assert.equal(at_label.label, String(largest.id));
  await page.mouse.click(box.x + box.width * 0.45, box.y + box.height * 0.42);
  await wait_settled(page);
  const clicked = await check("click");
  assert.notEqual(clicked.mm, at_label.mm, "the click moved the crosshair");
  // drag: the readout follows the mouse
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.55, box.y + box.height * 0.55, { steps: 4 });
  const mid_drag = await page.locator("#readout").evaluate((el) => el.dataset.mm);
  await page.mouse.up();
  await wait_settled(page);
  const dragged = await check("drag");
  assert.notEqual(mid_drag, clicked.mm, "the readout changes during the drag");
  assert.notEqual(dragged.mm, clicked.mm);
  await page.screenshot({ path: path.join(ARTIFACTS, "viewer-readout-axial.png") });
});

test("window/level: each preset by button and by key 1-5 sets its W/L; W and L are editable", { timeout: TEST_MS }, async () => {
  const presets = await page.evaluate(() => window.medimg_viewer.PRESETS);
  assert.deepEqual(presets.map((p) => [p.width, p.level]), [[400, 40], [1500, -600], [1800, 400], [150, 30], [80, 40]]);
  const wl = () => page.evaluate(() => {
    const v = window.medimg_viewer.state.image_volume;
    return { min: v.cal_min, max: v.cal_max, shown: [document.getElementById("win-width").value, document.getElementById("win-level").value] };
  });
  for (const p of [...presets].reverse()) {
    await page.locator("#presets button", { hasText: p.name }).click();
    const got = await wl();
    assert.deepEqual([got.min, got.max], [p.level - p.width / 2, p.level + p.width / 2], `button ${p.name}`);
    assert.deepEqual(got.shown, [String(p.width), String(p.level)]);
    assert.equal(await page.locator("#presets button", { hasText: p.name }).getAttribute("aria-pressed"), "true");
  }
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  for (const p of presets) {
    await page.keyboard.press(p.key);
    const got = await wl();
    assert.deepEqual([got.min, got.max], [p.level - p.width / 2, p.level + p.width / 2], `key ${p.key}`);
  }
  const before_png = await canvas_png(page);
  await page.locator("#win-width").fill("700");
  await page.locator("#win-level").fill("-50");
  await page.locator("#win-level").press("Enter");
  await page.locator("#win-level").blur();
  const got = await wl();
  assert.deepEqual([got.min, got.max], [-400, 300]);
  await wait_settled(page);
  const after_png = await canvas_png(page);
  assert.ok((await pixel_diff(page, before_png, after_png)).differ > 50, "the new window changes the picture");
  await page.keyboard.press("1");
});

test("orientation: radiological by default (patient right on screen left), switch to neurological mirrors the slice", { timeout: TEST_MS }, async () => {
  assert.equal(await page.locator("#radiological").isChecked(), true);
  assert.equal(await page.evaluate(() => window.medimg_viewer.nv.opts.isRadiologicalConvention), true);
  await wait_settled(page);
  const radio = await canvas_png(page, "orient-radiological");
  await page.locator("#radiological").uncheck();
  await wait_settled(page);
  assert.equal(await page.evaluate(() => window.medimg_viewer.nv.opts.isRadiologicalConvention), false);
  const neuro = await canvas_png(page, "orient-neurological");
  assert.ok((await pixel_diff(page, radio, neuro)).differ > 50, "the axial slice is mirrored");
  await page.locator("#radiological").check();
  await wait_settled(page);
  const back = await canvas_png(page);
  assert.ok((await pixel_diff(page, radio, back)).differ < 20, "and back");
});

test("label list: search by name or id narrows it, sort by volume, keyboard moves and 'Enter' shows only one", { timeout: TEST_MS }, async () => {
  const visible = () => page.$$eval("#label-rows tr:not([hidden])", (trs) => trs.map((t) => t.dataset.labelId));
  await page.locator("#label-search").fill("lung");
  const lungs = labels.filter((l) => l.name.toLowerCase().includes("lung")).map((l) => String(l.id));
  assert.ok(lungs.length >= 2);
  assert.deepEqual(await visible(), lungs);
  assert.match(await page.locator("#labels-count").textContent(), new RegExp(`${lungs.length} of ${labels.length}`));
  const some = labels[Math.floor(labels.length / 2)];
  await page.locator("#label-search").fill(String(some.id));
  assert.ok((await visible()).includes(String(some.id)));
  assert.ok((await visible()).every((id) => id.startsWith(String(some.id))));
  await page.locator("#label-search").fill("LUNG upper");
  assert.deepEqual(await visible(), labels.filter((l) => /lung.upper/i.test(l.name)).map((l) => String(l.id)), "case and _/space insensitive");
  await page.locator("#label-search").fill("");
  await page.locator("#label-sort").selectOption("volume");
  const by_volume = [...labels].sort((a, b) => b.voxels - a.voxels || a.id - b.id).map((l) => String(l.id));
  assert.deepEqual(await visible(), by_volume);
  await page.locator("#label-sort").selectOption("name");
  assert.deepEqual(await visible(), [...labels].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true })).map((l) => String(l.id)));
  await page.locator("#label-sort").selectOption("id");

  await page.locator("#label-search").focus();
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.labelId), String(labels[0].id));
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("ArrowDown");
  assert.equal(await page.evaluate(() => document.activeElement.dataset.labelId), String(labels[2].id));
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("Enter");
  await wait_ready(page);
  const checked = await page.$$eval("#label-rows input[type=checkbox]:checked", (xs) => xs.map((x) => x.dataset.labelId));
  assert.deepEqual(checked, [String(labels[1].id)]);
  await page.keyboard.press("Space");
  await wait_ready(page);
  assert.equal(await page.locator(`#label-${labels[1].id}`).isChecked(), false, "Space hides it");
  await page.locator("#select-all").click();
  await wait_ready(page);
});

test("state in the URL: a copied link restores labels, view, W/L, crosshair and orientation", { timeout: TEST_MS }, async () => {
  const hidden = labels.slice(0, 2).map((l) => l.id);
  for (const id of hidden) await page.locator(`#label-${id}`).uncheck();
  await page.locator("input[name=view][value=coronal]").check();
  await page.locator("#presets button", { hasText: "lung" }).click();
  await page.locator("#radiological").uncheck();
  const target = labels[labels.length - 1];
  await page.locator(`#label-rows tr[data-label-id="${target.id}"] button.locate`).click();
  await wait_ready(page);
  await page.waitForFunction(() => new URLSearchParams(location.search).get("orient") === "neuro" &&
    new URLSearchParams(location.search).get("view") === "coronal", null, { timeout: WAIT_MS });
  await sleep(400);
  const url = page.url();
  const q = new URL(url).searchParams;
  const shown = labels.filter((l) => !hidden.includes(l.id)).map((l) => l.id);
  const expect_show = await page.evaluate((ids) => window.medimg_viewer.compact_ids(ids.map(String)), shown);
  assert.equal(q.get("show"), expect_show);
  assert.equal(q.get("wl"), "1500,-600");
  assert.equal(q.get("view"), "coronal");
  assert.equal(q.get("patient"), PATIENT);
  const mm = await page.locator("#readout").evaluate((el) => el.dataset.vox);

  const p = await new_page();
  await p.goto(url);
  await wait_ready(p);
  const restored = await p.evaluate(() => ({
    checked: [...document.querySelectorAll("#label-rows input:checked")].map((x) => x.dataset.labelId),
    view: document.querySelector("input[name=view]:checked").value,
    slice: window.medimg_viewer.nv.opts.sliceType,
    wl: [window.medimg_viewer.state.image_volume.cal_min, window.medimg_viewer.state.image_volume.cal_max],
    radiological: window.medimg_viewer.nv.opts.isRadiologicalConvention,
    vox: document.getElementById("readout").dataset.vox,
    alpha: window.medimg_viewer.label_alpha(document.querySelector("#label-rows tr").dataset.labelId),
  }));
  assert.deepEqual(restored.checked, shown.map(String));
  assert.equal(restored.view, "coronal");
  assert.equal(restored.slice, 1);
  assert.deepEqual(restored.wl, [-1350, 150]);
  assert.equal(restored.radiological, false);
  assert.equal(restored.vox, mm, "crosshair restored");
  assert.equal(restored.alpha, 0, "a hidden label is hidden on the canvas too");
  const a = await canvas_png(page);
  const b = await canvas_png(p, "url-restored");
  assert.ok((await pixel_diff(p, a, b)).differ < 50, "the restored view draws the same picture");
  assert.equal(new URL(p.url()).searchParams.get("show"), expect_show, "the reopened URL keeps its state");
  await p.close();

  await page.locator("#radiological").check();
  await page.locator("#select-all").click();
  await page.locator("input[name=view][value=multiplanar]").check();
  await page.keyboard.press("1");
  await wait_ready(page);
});

// Two labels with a voxel each deep inside them (a 5x5 square of the label
// around it) on one axial slice of the map: the largest label, and the
// other label with the most such voxels on that slice. Needs a map whose
// third axis is the world's z (the demo's).
const SPOTS_PY = `
import sys, json
import numpy as np, nibabel as nib
path, largest = sys.argv[1], int(sys.argv[2])
img = nib.load(path)
lab = np.asanyarray(img.dataobj)
a = img.affine
assert abs(a[0, 2]) < 1e-6 and abs(a[1, 2]) < 1e-6 and abs(a[2, 0]) < 1e-6 and abs(a[2, 1]) < 1e-6, a
def interior(sl, i):
    m = sl == i
    out = np.zeros_like(m)
    out[2:-2, 2:-2] = True
    for di in range(-2, 3):
        for dj in range(-2, 3):
            out[2:-2, 2:-2] &= m[2 + di:m.shape[0] - 2 + di, 2 + dj:m.shape[1] - 2 + dj]
    return out
best = None
for k in range(lab.shape[2]):
    sl = lab[:, :, k]
    ia = interior(sl, largest)
    if not ia.any():
        continue
    for i in np.unique(sl):
        if i == 0 or i == largest:
            continue
        ib = interior(sl, i)
        score = min(int(ia.sum()), int(ib.sum()))
        if score > 0 and (best is None or score > best[0]):
            best = (score, k, int(i), ia, ib)
assert best, "no slice with both labels deep inside"
score, k, other, ia, ib = best
def spot(mask, i):
    pts = np.argwhere(mask)
    c = pts.mean(0)
    p = pts[np.argmin(((pts - c) ** 2).sum(1))]
    mm = a @ np.array([p[0], p[1], k, 1.0])
    return {"id": str(i), "vox": [int(p[0]), int(p[1]), k], "mm": [float(x) for x in mm[:3]]}
print(json.dumps({"a": spot(ia, largest), "b": spot(ib, other)}))
`;

// The colour of the canvas at CSS pixel (x, y): the mean of the 3x3 patch
// around it.
async function canvas_colour_at(p, b64, [x, y], dx = 0) {
  return p.evaluate(async ([data, cx, cy, d]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext("2d");
    g.drawImage(bmp, 0, 0);
    const px = g.getImageData(Math.round(cx) + d - 1, Math.round(cy) + d - 1, 3, 3).data;
    const sum = [0, 0, 0];
    for (let i = 0; i < px.length; i += 4) for (let ch = 0; ch < 3; ch++) sum[ch] += px[i + ch];
    return sum.map((v) => v / 9);
  }, [b64, x, y, dx]);
}

const colour_change = (u, v) => Math.max(...u.map((x, i) => Math.abs(x - v[i])));

// The two spots in CSS pixels of the canvas element. The crosshair is put on
// their axial slice, near a corner of it: its lines (several pixels wide)
// stay clear of both spots.
async function spot_pixels(p, spots) {
  return p.evaluate(([a, b]) => {
    const nv = window.medimg_viewer.nv;
    const frac = nv.mm2frac(a.mm);
    frac[0] = 0.02;
    frac[1] = 0.02;
    nv.scene.crosshairPos = frac;
    nv.createOnLocationChange();
    nv.drawScene();
    const canvas = document.getElementById("gl");
    const scale = canvas.width / canvas.getBoundingClientRect().width;
    return [a, b].map((s) => {
      const pos = nv.frac2canvasPos(nv.mm2frac([s.mm[0], s.mm[1], a.mm[2]]));
      return pos ? [pos[0] / scale, pos[1] / scale] : null;
    });
  }, [spots.a, spots.b]);
}

test("per-label opacity: a label's slider and - / + change its pixels only, through the colour table; the URL keeps it", { timeout: TEST_MS }, async () => {
  const largest = labels.reduce((a, b) => (b.voxels > a.voxels ? b : a));
  const spots = await python(SPOTS_PY, path.join(data_root, PATIENT, seg), String(largest.id));
  const A = spots.a.id;
  const B = spots.b.id;
  await page.locator("#select-all").click();
  await wait_ready(page);
  await page.locator("input[name=view][value=axial]").check();
  await wait_settled(page);
  assert.equal(await page.locator("#opacity").inputValue(), "0.6");
  const at = await spot_pixels(page, spots);
  assert.ok(at[0] && at[1], `both spots are on the axial slice: ${JSON.stringify(at)}`);
  await wait_settled(page);
  const slider = page.locator(`#label-rows tr[data-label-id="${A}"] input.alpha`);
  assert.equal(await slider.inputValue(), "100");
  assert.equal(await page.evaluate((id) => window.medimg_viewer.label_alpha(id), A), 255);

  const full = await canvas_png(page, "label-opacity-100");
  const a100 = await canvas_colour_at(page, full, at[0]);
  const b100 = await canvas_colour_at(page, full, at[1]);
  await spy_uploads(page);
  network.length = 0;

  await slider.fill("0");
  await wait_ready(page);
  const none = await canvas_png(page, "label-opacity-0");
  const a0 = await canvas_colour_at(page, none, at[0]);
  const b0 = await canvas_colour_at(page, none, at[1]);
  assert.ok(colour_change(a100, a0) > 20, `label ${A} at 0%: its pixels change (${a100} -> ${a0})`);
  assert.ok(colour_change(b100, b0) <= 3, `label ${B} is untouched (${b100} -> ${b0})`);
  assert.equal(await page.evaluate((id) => window.medimg_viewer.label_alpha(id), A), 0);
  assert.equal(await page.evaluate((id) => window.medimg_viewer.label_alpha(id), B), 255);
  assert.equal(await page.locator(`#label-${A}`).isChecked(), true, "the label stays ticked");

  // hidden looks like 0%
  await page.locator(`#label-${A}`).uncheck();
  await wait_ready(page);
  const hidden = await canvas_colour_at(page, await canvas_png(page), at[0]);
  assert.ok(colour_change(hidden, a0) <= 3, `0% looks like hidden (${a0} vs ${hidden})`);
  await page.locator(`#label-${A}`).check();
  await wait_ready(page);

  await slider.fill("50");
  await wait_ready(page);
  assert.equal(await page.evaluate((id) => window.medimg_viewer.label_alpha(id), A), 128);
  const half = await canvas_png(page, "label-opacity-50");
  const a50 = await canvas_colour_at(page, half, at[0]);
  for (let ch = 0; ch < 3; ch++) {
    const lo = Math.min(a0[ch], a100[ch]) - 3;
    const hi = Math.max(a0[ch], a100[ch]) + 3;
    assert.ok(a50[ch] >= lo && a50[ch] <= hi, `50% lies between 0% and 100% (${a0} / ${a50} / ${a100})`);
  }
  assert.ok(colour_change(a50, a0) > 5 && colour_change(a50, a100) > 5, `50% is neither (${a0} / ${a50} / ${a100})`);
  assert.ok(colour_change(b100, await canvas_colour_at(page, half, at[1])) <= 3, `label ${B} still untouched`);

  // keyboard: + and - on the label's row step by 10%
  await page.locator(`#label-${A}`).focus();
  await page.keyboard.press("+");
  await wait_ready(page);
  assert.equal(await slider.inputValue(), "60");
  assert.equal(await page.evaluate((id) => window.medimg_viewer.label_alpha(id), A), 153);
  await page.keyboard.press("-");
  await page.keyboard.press("-");
  await wait_ready(page);
  assert.equal(await slider.inputValue(), "40");
  await page.keyboard.press("+");
  await wait_ready(page);
  assert.equal(await slider.inputValue(), "50");

  assert.deepEqual(network, [], "no request for an opacity change");
  const u = await uploads(page);
  assert.equal(u.layer0, 0, "the image layer is not uploaded again");
  assert.equal(u.full, 0, "no full re-upload");

  // the URL keeps it; a reload of that URL restores it, pixels included
  await page.waitForFunction((want) => new URLSearchParams(location.search).get("alpha") === want, `${A}:50`, { timeout: WAIT_MS });
  const url = page.url();
  assert.match(url, new RegExp(`[?&]alpha=${A}:50(&|$)`), "readable in the URL");
  const p = await new_page();
  await p.setViewportSize(page.viewportSize());
  await p.goto(url);
  await wait_ready(p);
  assert.equal(await p.locator(`#label-rows tr[data-label-id="${A}"] input.alpha`).inputValue(), "50");
  assert.equal(await p.locator(`#label-rows tr[data-label-id="${B}"] input.alpha`).inputValue(), "100");
  assert.equal(await p.evaluate((id) => window.medimg_viewer.label_alpha(id), A), 128);
  await p.reload();
  await wait_ready(p);
  assert.equal(await p.evaluate((id) => window.medimg_viewer.label_alpha(id), A), 128, "and after a reload");
  const at2 = await spot_pixels(p, spots);
  await wait_settled(p);
  const again = await canvas_png(p, "label-opacity-50-restored");
  assert.ok(colour_change(await canvas_colour_at(p, again, at2[0]), a50) <= 3, "the restored page draws label A as before");
  assert.ok(colour_change(await canvas_colour_at(p, again, at2[1]), b100) <= 3, "and label B");
  assert.equal(new URL(p.url()).searchParams.get("alpha"), `${A}:50`);
  await p.close();

  await slider.fill("100");
  await wait_ready(page);
  await page.waitForFunction(() => !new URLSearchParams(location.search).has("alpha"), null, { timeout: WAIT_MS });
  await page.locator("input[name=view][value=multiplanar]").check();
  await wait_settled(page);
});

test("Download NIfTI: the link is the /filtered-scans query of the shown labels, its body the filtered file", { timeout: TEST_MS }, async () => {
  const keep = labels.filter((_, i) => i % 3 === 0).map((l) => l.id);
  await page.locator("#select-none").click();
  for (const id of keep) await page.locator(`#label-${id}`).check();
  await wait_ready(page);
  const ids = await page.evaluate((k) => window.medimg_viewer.compact_ids(k.map(String)), keep);
  const rel = seg.split("/").map(encodeURIComponent).join("/");
  assert.equal(await page.locator("#download").getAttribute("href"), `/filtered-scans/${PATIENT}/${rel}?label_ids=${ids}`);
  await page.locator("#dl-crop").check();
  await page.locator("#dl-mask").check();
  assert.equal(await page.locator("#download").getAttribute("href"), `/filtered-scans/${PATIENT}/${rel}?label_ids=${ids}&mode=mask&crop=1`);
  await page.locator("#dl-mask").uncheck();
  const href = await page.locator("#download").getAttribute("href");
  assert.equal(href, `/filtered-scans/${PATIENT}/${rel}?label_ids=${ids}&crop=1`);

  const download_p = page.waitForEvent("download", { timeout: WAIT_MS });
  await page.locator("#download").click();
  const download = await download_p;
  const saved = path.join(tmp || os.tmpdir(), `download-${process.pid}.nii.gz`);
  await download.saveAs(saved);
  assert.equal(download.url(), `${base}${href}`);
  const check = await python(`
import sys, json
import numpy as np, nibabel as nib
got = nib.load(sys.argv[1]); src = nib.load(sys.argv[2])
keep = [int(x) for x in sys.argv[3].split(",")]
g = np.asanyarray(got.dataobj); s = np.asanyarray(src.dataobj)
nz = np.argwhere(np.isin(s, keep))
lo = nz.min(0); hi = nz.max(0) + 1
crop = np.where(np.isin(s, keep), s, 0)[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
shift = np.linalg.inv(src.affine) @ got.affine[:, 3]
print(json.dumps({"equal": bool(g.shape == crop.shape and np.array_equal(g, crop)), "ids": sorted(int(x) for x in np.unique(g) if x),
  "shape": list(g.shape), "offset": [round(float(x), 3) for x in shift[:3]], "lo": [int(x) for x in lo], "dtype": str(g.dtype), "src_dtype": str(s.dtype)}))
`, saved, path.join(data_root, PATIENT, seg), keep.join(","));
  assert.equal(check.equal, true, `the download is the cropped selection: ${JSON.stringify(check)}`);
  assert.deepEqual(check.ids, [...keep].sort((a, b) => a - b));
  assert.deepEqual(check.offset, check.lo, "the crop keeps world coordinates");
  assert.equal(check.dtype, check.src_dtype);
  fs.rmSync(saved, { force: true });
  await page.locator("#dl-crop").uncheck();
  await page.locator("#select-none").click();
  await wait_ready(page);
  assert.equal(await page.locator("#download").getAttribute("href"), null, "no link for an empty selection");
  await page.locator("#select-all").click();
  await wait_ready(page);
});

test("Save PNG yields a PNG of the canvas", { timeout: TEST_MS }, async () => {
  const download_p = page.waitForEvent("download", { timeout: WAIT_MS });
  await page.locator("#save-png").click();
  const download = await download_p;
  const saved = path.join(tmp || os.tmpdir(), `scene-${process.pid}.png`);
  await download.saveAs(saved);
  const bytes = fs.readFileSync(saved);
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], "PNG signature");
  const canvas = await page.evaluate(() => [document.getElementById("gl").width, document.getElementById("gl").height]);
  assert.deepEqual([bytes.readUInt32BE(16), bytes.readUInt32BE(20)], canvas, "the canvas's size");
  assert.match(download.suggestedFilename(), new RegExp(`^${PATIENT}_multiplanar\\.png$`));
  const lit = await lit_pixels(page, bytes.toString("base64"));
  assert.ok(lit > 1000, `the PNG holds the picture, not a blank canvas (${lit} lit pixels)`);
  fs.rmSync(saved, { force: true });
});

test("view radios follow NiiVue's V key; '?' opens the shortcuts panel; the ruler is a button", { timeout: TEST_MS }, async () => {
  const box = await page.locator("#gl").boundingBox();
  await page.locator("input[name=view][value=axial]").check();
  // NiiVue takes keys when the canvas has focus and the pointer was last on it
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await wait_settled(page);
  // V steps NiiVue's view (axial, coronal, sagittal, ...); the radios follow.
  // A key NiiVue drops (it debounces keys, and a loaded machine delays
  // events) is pressed again after giving the canvas the focus back.
  for (const [expected, slice_type] of [["coronal", 1], ["sagittal", 2]]) {
    let followed = false;
    for (let attempt = 0; attempt < 3 && !followed; ++attempt) {
      if (attempt > 0) await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      await page.keyboard.press("v");
      followed = await page.waitForFunction(
        (want) => document.querySelector("input[name=view]:checked").value === want, expected,
        { timeout: 5_000 }).then(() => true, () => false);
    }
    assert.ok(followed, `the view radios did not follow V to ${expected}`);
    assert.equal(await page.evaluate(() => window.medimg_viewer.nv.opts.sliceType), slice_type);
  }

  await page.locator("body").click({ position: { x: 5, y: 5 } });
  assert.equal(await page.locator("#help").isVisible(), false);
  await page.keyboard.press("?");
  assert.equal(await page.locator("#help").isVisible(), true);
  assert.match(await page.locator("#help").textContent(), /window presets/);
  await page.screenshot({ path: path.join(ARTIFACTS, "viewer-help.png") });
  await page.keyboard.press("Escape");
  assert.equal(await page.locator("#help").isVisible(), false);
  await page.locator("#help-button").click();
  assert.equal(await page.locator("#help").isVisible(), true);
  await page.locator("#help-button").click();
  assert.equal(await page.locator("#help").isVisible(), false);

  await page.locator("#ruler").click();
  assert.equal(await page.locator("#ruler").getAttribute("aria-pressed"), "true");
  assert.equal(await page.evaluate(() => window.medimg_viewer.nv.opts.dragModePrimary), 2, "left drag measures");
  await page.locator("#ruler").click();
  assert.equal(await page.evaluate(() => window.medimg_viewer.nv.opts.dragModePrimary), 8, "left drag moves the crosshair again");
  await page.locator("input[name=view][value=multiplanar]").check();
  await wait_settled(page);
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
    assert.ok(await page.locator("#readout").isVisible());
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal overflow (${overflow}px)`);
    await page.screenshot({ path: path.join(ARTIFACTS, "viewer-tablet.png") });
  } finally {
    await page.setViewportSize({ width: 1366, height: 768 });
  }
});

test("laptop (1366x768) and tablet (820x1180): each label's opacity control fits beside its name", { timeout: TEST_MS }, async () => {
  assert.ok(page, "viewer page from the first test");
  const largest = labels.reduce((a, b) => (b.voxels > a.voxels ? b : a));
  const slider = page.locator(`#label-rows tr[data-label-id="${largest.id}"] input.alpha`);
  await slider.fill("40");
  await wait_ready(page);
  try {
    for (const [name, width, height] of [["laptop", 1366, 768], ["tablet", 820, 1180]]) {
      await page.setViewportSize({ width, height });
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      await wait_settled(page);
      const fit = await page.evaluate((id) => {
        const panel = document.querySelector(".panel").getBoundingClientRect();
        const table = document.getElementById("label-table");
        const row = document.querySelector(`#label-rows tr[data-label-id="${id}"]`);
        const box = (el) => {
          const r = el.getBoundingClientRect();
          return { left: r.left, right: r.right, width: r.width, height: r.height };
        };
        return {
          panel: { left: panel.left, right: panel.right },
          table_overflow: table.scrollWidth - table.parentElement.clientWidth,
          page_overflow: document.documentElement.scrollWidth - window.innerWidth,
          slider: box(row.querySelector("input.alpha")),
          name: box(row.querySelector("td.name-cell")),
          only: box(row.querySelector("button.only")),
          header: getComputedStyle(document.querySelector("#label-table th.alpha")).display,
        };
      }, String(largest.id));
      assert.ok(fit.page_overflow <= 0, `${name}: no horizontal overflow (${fit.page_overflow}px)`);
      assert.ok(fit.table_overflow <= 0, `${name}: the label table fits its panel (${fit.table_overflow}px)`);
      assert.ok(fit.slider.width >= 40 && fit.slider.height >= 10, `${name}: the slider is usable: ${JSON.stringify(fit.slider)}`);
      assert.ok(fit.slider.left >= fit.panel.left && fit.slider.right <= fit.panel.right, `${name}: the slider lies in the panel`);
      assert.ok(fit.name.width >= 110, `${name}: the label's name keeps room (${fit.name.width}px)`);
      assert.ok(fit.only.right <= fit.panel.right, `${name}: the row's buttons stay in the panel`);
      assert.notEqual(fit.header, "none", `${name}: the column has its header`);
      await page.screenshot({ path: path.join(ARTIFACTS, `viewer-${name}-opacity.png`) });
    }
  } finally {
    await page.setViewportSize({ width: 1366, height: 768 });
    await slider.fill("100");
    await wait_ready(page);
  }
});

// Pixels brighter than the background in a PNG (base64), `margin` px in
// from each edge.
async function lit_pixels(p, b64, margin = 0) {
  return p.evaluate(async ([data, m]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext("2d");
    g.drawImage(bmp, 0, 0);
    const d = g.getImageData(m, m, bmp.width - 2 * m, bmp.height - 2 * m).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 30) n++;
    return n;
  }, [b64, margin]);
}

// Lit pixels of the canvas: 0 when it shows only the background (nothing
// half-drawn, no "loading" text). 2 px in from each edge: the element
// screenshot catches the neighbours' borders.
async function canvas_blank(p) {
  return lit_pixels(p, await canvas_png(p), 2);
}

test("an unknown patient shows an alert naming it and a clear canvas", { timeout: TEST_MS }, async () => {
  await with_http_errors(async () => {
  const p = await new_page();
  await p.goto(`${base}/viewer.html?patient=NOPE`);
  await wait_settled(p);
  const alert = p.getByRole("alert");
  await alert.waitFor({ state: "visible", timeout: WAIT_MS });
  const text = await alert.textContent();
  assert.match(text, /NOPE/);
  assert.match(text, /404/);
  assert.equal(await p.evaluate(() => document.body.dataset.state), "error");
  assert.equal(await p.locator("#progress").isVisible(), false);
  await p.screenshot({ path: path.join(ARTIFACTS, "viewer-unknown-patient.png") });
  await p.close();
  });
});

test("a broken image: the message names it, progress ends and the canvas is cleared", { timeout: TEST_MS }, async () => {
  expected_decoder_errors = true;
  const p = await new_page();
  await p.goto(`${base}/viewer.html?patient=${FIXTURES}&image=nifti/broken.nii.gz&seg=scans/signed.nii.gz`);
  await wait_settled(p);
  assert.equal(await p.evaluate(() => document.body.dataset.state), "error");
  const text = await p.locator("#alert").textContent();
  assert.match(text, /nifti\/broken\.nii\.gz/);
  assert.equal(await p.locator("#progress").isVisible(), false);
  assert.equal(await canvas_blank(p), 0, "nothing on the canvas (no 'loading' text)");
  await p.screenshot({ path: path.join(ARTIFACTS, "viewer-broken-image.png") });
  await p.close();
  expected_decoder_errors = false;
});

test("a failed overlay request clears what was drawn", { timeout: TEST_MS }, async () => {
  await with_http_errors(async () => {
  const p = await new_page();
  // the segmentation's bytes are refused after /labels answered
  await p.route(/\/output\/[^?]*signed\.nii\.gz$/, (route) => route.fulfill({
    status: 404, contentType: "application/json",
    body: JSON.stringify({ detail: "no such file: scans/signed.nii.gz", error: "not_found" }),
  }));
  await p.goto(`${base}/viewer.html?patient=${FIXTURES}&image=nifti/CT.nii.gz&seg=scans/signed.nii.gz`);
  await wait_settled(p);
  assert.equal(await p.evaluate(() => document.body.dataset.state), "error");
  assert.match(await p.locator("#alert").textContent(), /no such file: scans\/signed\.nii\.gz \(HTTP 404/);
  assert.equal(await canvas_blank(p), 0, "the image drawn before the failure is gone");
  await p.close();
  });
});

test("a segmentation that is no label map (/labels 415) is named in a warning; the image is shown", { timeout: TEST_MS }, async () => {
  await with_http_errors(async () => {
  const r = await fetch(`${base}/output/${FIXTURES}/scans/float.nii.gz/labels`);
  assert.equal(r.status, 415);
  const p = await new_page();
  await open_viewer(p, `patient=${FIXTURES}&image=nifti/CT.nii.gz&seg=scans/float.nii.gz`);
  const notice = await p.locator("#notice").textContent();
  assert.match(notice, /does not look like a label map/);
  assert.match(notice, /415/);
  assert.equal(await p.evaluate(() => window.medimg_viewer.nv.volumes.length), 1);
  assert.ok(await canvas_blank(p) > 1000, "the image is drawn");
  await p.close();
  });
});

test("a CT passed as the segmentation is named in a warning", { timeout: TEST_MS }, async () => {
  await with_http_errors(async () => {
  const p = await new_page();
  await open_viewer(p, `patient=${FIXTURES}&image=nifti/CT.nii.gz&seg=nifti/CT.nii.gz`);
  assert.match(await p.locator("#notice").textContent(), /(does not look like|may not be) a label map/);
  assert.ok(["not-labels", "unnamed-labels"].includes(await p.evaluate(() => document.body.dataset.warning)));
  await p.close();
  });
});

test("no console error for a patient without voxels/; negative and 64-bit ids are exact", { timeout: TEST_MS }, async () => {
  const before = console_errors.length;
  const p = await new_page();
  const requests = [];
  p.on("request", (r) => requests.push(r.url()));
  await open_viewer(p, `patient=${FIXTURES}&image=nifti/CT.nii.gz`);
  assert.equal(await p.evaluate(() => window.medimg_viewer.state.seg), "scans/big.nii.gz", "the first file of scans/");
  assert.ok(!requests.some((u) => u.includes("/voxels/")), "voxels/ is not asked for");
  assert.deepEqual(console_errors.slice(before), []);

  const big = (await (await fetch(`${base}/output/${FIXTURES}/scans/big.nii.gz/labels`)).text()).match(/"id":(\d+)/g);
  assert.ok(big.includes('"id":1152921504606846977'), `the server lists the exact id: ${big}`);
  const ids = await p.$$eval("#label-rows tr", (trs) => trs.map((t) => t.dataset.labelId));
  assert.deepEqual(ids, ["3", "1152921504606846977"]);
  assert.match(await p.locator("#download").getAttribute("href"), /label_ids=3,1152921504606846977$/);
  await p.close();

  const q = await new_page();
  await open_viewer(q, `patient=${FIXTURES}&image=nifti/CT.nii.gz&seg=scans/signed.nii.gz`);
  const rows = await q.$$eval("#label-rows tr", (trs) => trs.map((t) => t.dataset.labelId));
  assert.equal(rows[0], "-3", "the negative id is listed first");
  await q.locator("#label-rows tr[data-label-id='-3'] button.only").click();
  await wait_ready(q);
  assert.match(await q.locator("#download").getAttribute("href"), /label_ids=-3$/);
  await q.locator("#label-rows tr[data-label-id='-3'] button.locate").click();
  await wait_settled(q);
  assert.equal(await q.locator("#readout").evaluate((el) => el.dataset.label), "-3");
  assert.match(await q.locator("#readout").textContent(), /-3 \(-3\)/);
  const r = await fetch(`${base}${await q.locator("#download").getAttribute("href")}`);
  assert.equal(r.status, 200, "the server accepts the negative id");
  await q.close();
});

test("a 4xx answer's JSON detail is shown", { timeout: TEST_MS }, async () => {
  await with_http_errors(async () => {
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
  assert.equal(await canvas_blank(p), 0);
  await p.close();
  });
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
