// The medimg viewer: a CT (or MR) from /output/{pid}/nifti/ with its
// segmentation overlaid, label panel from /labels; see www/README.md.
//   viewer.html?patient=PID[&image=nifti/FILE][&seg=REL/PATH]
//     [&show=IDS][&view=V][&wl=W,L][&xyz=X,Y,Z][&orient=neuro][&opacity=A][&alpha=ID:PCT,...]
// The segmentation is downloaded and uploaded to the GPU once. Showing and
// hiding labels, and each label's own opacity, change the alpha of its label
// colour table and redraw (README.md, docs/PERFORMANCE.md): nothing is
// downloaded and no volume is uploaded again.
// A map on the image's grid with ids 1..255 is NiiVue's drawing layer, whose
// colour table is applied while drawing (a toggle uploads 256 colours); any
// other map is an overlay layer, whose colours NiiVue bakes into a texture
// (a toggle re-renders that layer from the voxels it holds). /filtered-scans is the source of the
// "Download NIfTI" link (the shown labels, crop and mask as options).
import { Niivue, NVImage, SLICE_TYPE, DRAG_MODE, cmapper } from "@niivue/niivue";
import { fetch_listing, http_error, is_nifti, nifti_stem, encode_path } from "./dirlist.js";

const VIEWS = {
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
  multiplanar: SLICE_TYPE.MULTIPLANAR,
  render: SLICE_TYPE.RENDER,
};

// README.md: window/level presets, on buttons and on keys 1-5.
export const PRESETS = [
  { key: "1", name: "soft tissue", width: 400, level: 40 },
  { key: "2", name: "lung", width: 1500, level: -600 },
  { key: "3", name: "bone", width: 1800, level: 400 },
  { key: "4", name: "liver", width: 150, level: 30 },
  { key: "5", name: "brain", width: 80, level: 40 },
];

const URL_DELAY_MS = 250;
const OPACITY_STEP = 10; // percent, per key press and slider step

const $ = (id) => document.getElementById(id);

const state = {
  patient: "",
  image: "",
  seg: "",
  labels: [],          // {key, big, num, name, color, shade, voxels, volume_ml, bbox}
  by_key: new Map(),
  selected: new Set(), // label keys (exact decimal strings)
  alpha: new Map(),    // label key -> its own opacity in percent (absent: 100)
  drawable: new Set(), // keys that fit the GPU colour table
  image_volume: null,
  overlay: null,       // the segmentation's NVImage (its voxels dropped in drawing mode)
  mode: "",            // "drawing" or "layer": how NiiVue shows the segmentation
  overlay_url: "",
  is_ct: false,
  radiological: true,
  location: null,      // {mm, vox, value, label_key}
  url_timer: 0,
  restoring: true,
  first_draw_ms: 0,
  toggles: [],         // [{ms}] click (or key) to settled canvas
  lut_updates: 0,
  params: new URLSearchParams(),
};

let nv = null;
let failed = false;                 // after a failure nothing is drawn or shown as loading
const loads = new AbortController(); // the first load's downloads, aborted on failure

function set_state(value) {
  document.body.dataset.state = value;
}

function show_alert(message) {
  const el = $("alert");
  el.textContent = message;
  el.hidden = false;
}

function clear_alert() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

function show_notice(message) {
  const el = $("notice");
  el.textContent = el.textContent && message ? `${el.textContent} ${message}` : message;
  el.hidden = !el.textContent;
}

// A failure leaves no half-drawn picture behind: the volumes are dropped and
// the canvas is cleared, the message names the request that failed.
function fail(error) {
  if (error && error.name === "AbortError") return;
  failed = true;
  loads.abort();
  show_alert(error && error.message ? error.message : String(error));
  progress_reset();
  clear_canvas();
  set_state("error");
}

function clear_canvas() {
  if (!nv) return;
  try {
    nv.volumes = [];
    nv.overlays = [];
    nv.drawBitmap = null;
    nv.opts.loadingText = "";
    nv.drawScene();
  } catch (_) {
    // a context that failed to start has nothing on it
  }
  state.overlay = null;
  state.image_volume = null;
  document.body.dataset.overlay = "";
}

const next_frame = () => new Promise((r) => requestAnimationFrame(() => r()));

// --- progress ---------------------------------------------------------------
// Shown from the first request until the first picture with its overlay has
// been drawn: download, decode and GPU upload are all part of it.

function progress_show(text, fraction) {
  if (failed) return;
  $("progress").hidden = false;
  $("progress-text").textContent = text;
  if (fraction === undefined) $("progress-bar").removeAttribute("value");
  else $("progress-bar").value = Math.min(Math.max(fraction, 0), 1);
  document.body.classList.add("busy");
}

function progress_reset() {
  $("progress").hidden = true;
  document.body.classList.remove("busy");
}

const downloads = new Map(); // what -> {received, total}

function progress_downloads() {
  const mib = (n) => (n / 1048576).toFixed(1);
  let received = 0;
  let total = 0;
  let known = true;
  for (const d of downloads.values()) {
    received += d.received;
    total += d.total;
    if (!d.total) known = false;
  }
  const what = [...downloads.keys()].join(" and ");
  if (known && total > 0) progress_show(`Loading ${what}… ${mib(received)} / ${mib(total)} MiB`, received / total);
  else progress_show(`Loading ${what}… ${mib(received)} MiB`);
}

// Fetches a binary resource with a progress display; a 4xx/5xx becomes an
// HttpError carrying the server's JSON detail.
async function fetch_bytes(url, what) {
  const response = await fetch(url, { signal: loads.signal });
  if (!response.ok) throw await http_error(response, url);
  const total = Number(response.headers.get("content-length")) || 0;
  downloads.set(what, { received: 0, total });
  progress_downloads();
  if (!response.body || !response.body.getReader) return await response.arrayBuffer();
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.byteLength;
    downloads.get(what).received = received;
    progress_downloads();
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes.buffer;
}

// NiiVue chooses its reader from the name's extension, so every buffer is
// given a name that matches its bytes (gzip magic or not): docs/ARCHITECTURE.md.
function volume_name(prefix, rel, buffer) {
  const bytes = new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength));
  const gz = bytes.length === 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  const base = nifti_stem(rel.split("/").pop() || "volume");
  return `${prefix}${base}${gz ? ".nii.gz" : ".nii"}`;
}

async function decode(url, buffer, name, options, what) {
  try {
    return await NVImage.loadFromUrl({ url, buffer, name, ...options });
  } catch (e) {
    throw new Error(`Cannot read the ${what} ${url}: ${e && e.message ? e.message : e}`);
  }
}

// --- locating files -----------------------------------------------------------

function patient_url(rel = "") {
  return `/output/${encodeURIComponent(state.patient)}/${rel ? encode_path(rel) : ""}`;
}

function listing_error(error, what) {
  if (error.status === 404) {
    return new Error(`Patient "${state.patient}" or its ${what} folder was not found (HTTP 404 for ${error.url}).`);
  }
  if (error.status === 403) {
    return new Error(`Cannot list ${error.url} (HTTP 403: directory listings are disabled). ` +
      "Open the viewer with &image=nifti/FILE&seg=PATH.");
  }
  return error;
}

// The patient's folder, listed once: sub-folders that are not there are not
// requested (no 404 in the console for a patient without voxels/).
let patient_entries = null;

async function patient_folders() {
  if (patient_entries === null) {
    try {
      patient_entries = await fetch_listing(patient_url());
    } catch (e) {
      if (e.status === 403) patient_entries = undefined; // listings off: try the documented folders
      else throw listing_error(e, "patient");
    }
  }
  return patient_entries;
}

async function has_folder(name) {
  const entries = await patient_folders();
  return entries === undefined || entries.some((e) => e.is_dir && e.name === name);
}

async function find_image() {
  await patient_folders();
  let entries;
  try {
    entries = await fetch_listing(patient_url("nifti/"));
  } catch (e) {
    throw listing_error(e, "nifti/");
  }
  const files = entries.filter((e) => !e.is_dir && is_nifti(e.name));
  if (files.length === 0) throw new Error(`No NIfTI image in ${patient_url("nifti/")}.`);
  const ct = files.find((f) => /(^|[_.-])ct([_.-]|$)/i.test(nifti_stem(f.name)));
  return `nifti/${(ct || files[0]).name}`;
}

async function try_listing(rel) {
  try {
    return await fetch_listing(patient_url(rel));
  } catch (e) {
    if (e.status === 404 || e.status === 403) return [];
    throw e;
  }
}

// voxels/{scan}/original/all.nii.gz for the scan that matches the image's
// name (or the only/first scan), else a whole segmentation under scans/.
async function find_segmentation(image_rel) {
  const stem = nifti_stem(image_rel.split("/").pop()).toLowerCase();
  const rank = (name) => {
    const n = nifti_stem(name).toLowerCase();
    if (n === stem) return 0;
    if (stem.endsWith(n) || n.endsWith(stem) || stem.includes(n) || n.includes(stem)) return 1;
    return 2;
  };
  const by_rank = (a, b) => rank(a.name) - rank(b.name);
  if (await has_folder("voxels")) {
    const scans = (await try_listing("voxels/")).filter((e) => e.is_dir).sort(by_rank);
    for (const scan of scans) {
      const files = await try_listing(`voxels/${scan.name}/original/`);
      if (files.some((f) => f.name === "all.nii.gz")) return `voxels/${scan.name}/original/all.nii.gz`;
      const all = files.find((f) => !f.is_dir && /^all\.(nii|nii\.gz|hdr)$/i.test(f.name));
      if (all) return `voxels/${scan.name}/original/${all.name}`;
    }
  }
  if (await has_folder("scans")) {
    const whole = (await try_listing("scans/")).filter((e) => !e.is_dir && is_nifti(e.name)).sort(by_rank);
    if (whole.length > 0) return `scans/${whole[0].name}`;
  }
  return "";
}

// --- label ids: exact decimal strings and BigInt ----------------------------------
// /labels may list ids beyond 2^53 and negative ids (docs/SECURITY.md: ids span
// INT64_MIN..UINT64_MAX); JSON.parse would round them. The reviver reads the
// number's own source text.

export function parse_labels_json(text) {
  let exact = true;
  const body = JSON.parse(text, function (key, value, context) {
    if (key === "id" && typeof value === "number") {
      if (context && typeof context.source === "string") return context.source;
      exact = false;
    }
    return value;
  });
  if (!exact) {
    // an engine without source text access: quote the ids before parsing
    return JSON.parse(text.replace(/("id"\s*:\s*)(-?\d+)/g, '$1"$2"'));
  }
  return body;
}

function id_key(value) {
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string" && /^-?\d+$/.test(value)) return BigInt(value).toString();
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value).toString();
  return null;
}

const cmp_big = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

// Sorted ids as "1-5,7,-3--1": the filter's own syntax (README.md).
export function compact_ids(keys) {
  const ids = [...new Set([...keys].map((k) => BigInt(k)))].sort(cmp_big);
  const parts = [];
  for (let i = 0; i < ids.length; i++) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1n) j++;
    parts.push(j > i ? `${ids[i]}-${ids[j]}` : `${ids[i]}`);
    i = j;
  }
  return parts.join(",");
}

// Inverse of compact_ids; null for a malformed list.
export function parse_id_list(text) {
  const ranges = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (!item) continue;
    const m = /^(-?\d+)(?:-(-?\d+))?$/.exec(item);
    if (!m) return null;
    const lo = BigInt(m[1]);
    const hi = m[2] === undefined ? lo : BigInt(m[2]);
    ranges.push(lo <= hi ? [lo, hi] : [hi, lo]);
  }
  return ranges;
}

// --- colours -------------------------------------------------------------------

function fallback_color(big) {
  const hue = Number(((big % 360n) + 360n) % 360n) * 137.508 % 360;
  return hsl_to_rgb(hue, 0.65, 0.55);
}

function hsl_to_rgb(h, s, l) {
  const f = (n) => {
    const k = (n + h / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

function rgb_to_hsl([r, g, b]) {
  r /= 255; g /= 255; b /= 255;
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const l = (max + min) / 2;
  if (max === min) return [0, 0, l];
  const d = max - min;
  const s = l > 0.5 ? d / (2 - max - min) : d / (max + min);
  let h;
  if (max === r) h = (g - b) / d + (g < b ? 6 : 0);
  else if (max === g) h = (b - r) / d + 2;
  else h = (r - g) / d + 4;
  return [h * 60, s, l];
}

function table_color(label) {
  const c = label.color;
  if (Array.isArray(c) && c.length >= 3 && c.slice(0, 3).every((v) => Number.isFinite(v))) {
    return c.slice(0, 3).map((v) => Math.max(0, Math.min(255, Math.round(v))));
  }
  return fallback_color(label.big);
}

// Labels that share a colour in the table (lung lobes, vertebrae) get one
// shade each: same hue and saturation, lightness spread over a band.
export function assign_shades(labels) {
  const groups = new Map();
  for (const label of labels) {
    const rgb = table_color(label);
    const key = rgb.join(",");
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(label);
    label.shade = rgb;
  }
  for (const [key, members] of groups) {
    if (members.length < 2) continue;
    const [h, s, l] = rgb_to_hsl(key.split(",").map(Number));
    const n = members.length;
    const width = Math.min(0.5, 0.09 * (n - 1));
    const centre = Math.min(Math.max(l, 0.3 + width / 2), 0.88 - width / 2);
    members.sort((a, b) => cmp_big(a.big, b.big));
    members.forEach((label, i) => {
      label.shade = hsl_to_rgb(h, s, centre - width / 2 + (width * i) / (n - 1));
    });
  }
}

// The loaded segmentation's colour table: every drawable label, alpha 0
// when hidden, else its own opacity (255 at 100 %). Only this table changes
// on a toggle or an opacity step; the overlay opacity scales it as a whole.
function build_colormap() {
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (const label of state.labels) {
    if (!state.drawable.has(label.key)) continue;
    const [r, g, b] = label.shade;
    cm.R.push(r);
    cm.G.push(g);
    cm.B.push(b);
    cm.A.push(state.selected.has(label.key) ? Math.round((255 * label_opacity(label.key)) / 100) : 0);
    cm.I.push(label.num);
    cm.labels.push(label.name);
  }
  return cm;
}

// The colour table is a texture one texel per id between the smallest and the
// largest: ids far apart (64-bit ids) cannot all be drawn.
function choose_drawable(labels, max_span) {
  const out = new Set();
  const small = labels.filter((l) => l.big >= -(2n ** 31n) && l.big < 2n ** 31n);
  if (small.length === 0) return out;
  let lo = small[0].big < 0n ? small[0].big : 0n;
  for (const l of small) if (l.big < lo) lo = l.big;
  for (const l of small) if (l.big - lo < BigInt(max_span)) out.add(l.key);
  return out;
}

// --- label panel ------------------------------------------------------------

function format_count(n) {
  return Number(n).toLocaleString("en-US");
}

function format_ml(x) {
  if (!Number.isFinite(x)) return "–";
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function valid_bbox(bbox) {
  return Array.isArray(bbox) && bbox.length === 2 &&
    bbox.every((c) => Array.isArray(c) && c.length >= 3 && c.every(Number.isFinite));
}

function render_labels() {
  const body = $("label-rows");
  body.textContent = "";
  for (const label of state.labels) {
    const tr = document.createElement("tr");
    tr.dataset.labelId = label.key;
    const [r, g, b] = label.shade;

    const td_check = document.createElement("td");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.selected.has(label.key);
    box.id = `label-${label.key}`;
    box.dataset.labelId = label.key;
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(label.key);
      else state.selected.delete(label.key);
      selection_changed();
    });
    td_check.append(box);

    const td_name = document.createElement("td");
    td_name.className = "name-cell";
    td_name.title = `${label.name} (id ${label.key})`;
    const name = document.createElement("label");
    name.htmlFor = box.id;
    name.className = "name";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = `rgb(${r}, ${g}, ${b})`;
    swatch.title = `rgb(${r}, ${g}, ${b})`;
    const text = document.createElement("span");
    text.className = "label-name";
    text.textContent = label.name;
    const id = document.createElement("span");
    id.className = "label-id";
    id.textContent = label.key;
    if (label.name === label.key) name.append(swatch, text);
    else name.append(swatch, text, id);
    td_name.append(name);

    const td_vox = document.createElement("td");
    td_vox.className = "num voxels";
    td_vox.textContent = format_count(label.voxels);
    const td_ml = document.createElement("td");
    td_ml.className = "num ml";
    td_ml.textContent = format_ml(label.volume_ml);

    const td_only = document.createElement("td");
    const only = document.createElement("button");
    only.type = "button";
    only.className = "only";
    only.textContent = "only";
    only.title = `Show only ${label.name} (Enter)`;
    only.addEventListener("click", () => show_only(label.key));
    td_only.className = "actions";
    td_only.append(only);
    if (valid_bbox(label.bbox)) {
      const go = document.createElement("button");
      go.type = "button";
      go.className = "locate";
      go.title = `Go to ${label.name}`;
      go.setAttribute("aria-label", `Go to ${label.name}`);
      go.append(crosshair_icon());
      go.addEventListener("click", () => locate(label.key));
      td_only.append(go);
    }

    const td_hu = document.createElement("td");
    td_hu.className = "num hu";
    const td_alpha = document.createElement("td");
    td_alpha.className = "alpha";
    const alpha = document.createElement("input");
    alpha.type = "range";
    alpha.min = "0";
    alpha.max = "100";
    alpha.step = String(OPACITY_STEP);
    alpha.className = "alpha";
    alpha.dataset.labelId = label.key;
    alpha.addEventListener("input", () => set_label_opacity(label.key, Number(alpha.value)));
    td_alpha.append(alpha);
    show_label_opacity(label, alpha);
    tr.append(td_check, td_name, td_vox, td_ml, td_hu, td_alpha, td_only);
    body.append(tr);
  }
  apply_sort_and_search();
}

// A label's own opacity, in percent of the overlay opacity.
function label_opacity(key) {
  const pct = state.alpha.get(key);
  return pct === undefined ? 100 : pct;
}

function show_label_opacity(label, input) {
  const pct = label_opacity(label.key);
  input.value = String(pct);
  input.title = `Opacity of ${label.name}: ${pct}% (- / + in the list)`;
  input.setAttribute("aria-label", `Opacity of ${label.name}`);
  input.setAttribute("aria-valuetext", `${pct}%`);
}

// Sets one label's opacity (0-100 %, kept in the URL as alpha=ID:PCT) by its
// colour table alpha, like a toggle: nothing is downloaded or re-uploaded.
function set_label_opacity(key, pct) {
  const label = state.by_key.get(key);
  if (!label || !Number.isFinite(pct)) return;
  pct = Math.max(0, Math.min(100, Math.round(pct)));
  if (pct === 100) state.alpha.delete(key);
  else state.alpha.set(key, pct);
  const input = document.querySelector(`#label-rows input.alpha[data-label-id="${CSS.escape(key)}"]`);
  if (input) show_label_opacity(label, input);
  schedule_url();
  colour_table_changed(performance.now());
}

function show_only(key) {
  state.selected = new Set([key]);
  sync_checkboxes();
  selection_changed();
}

const normalise = (s) => s.toLowerCase().replace(/[_\s]+/g, " ").trim();

// Search matches a name (case-insensitive, "_" = space) or an id; the list
// is sorted by id, name or volume (largest first).
function apply_sort_and_search() {
  const query = normalise($("label-search").value || "");
  const sort = $("label-sort").value;
  const body = $("label-rows");
  const rows = [...body.children];
  const keyed = rows.map((tr) => ({ tr, label: state.by_key.get(tr.dataset.labelId) }));
  keyed.sort((a, b) => {
    if (sort === "name") return a.label.name.localeCompare(b.label.name, undefined, { numeric: true }) || cmp_big(a.label.big, b.label.big);
    if (sort === "volume") return (Number(b.label.voxels) || 0) - (Number(a.label.voxels) || 0) || cmp_big(a.label.big, b.label.big);
    return cmp_big(a.label.big, b.label.big);
  });
  let shown = 0;
  for (const { tr, label } of keyed) {
    const match = !query || normalise(label.name).includes(query) || label.key === query ||
      (/^-?\d+$/.test(query) && label.key.startsWith(query));
    tr.hidden = !match;
    if (match) shown++;
    body.append(tr);
  }
  $("labels-count").textContent = shown === state.labels.length
    ? `(${state.labels.length})` : `(${shown} of ${state.labels.length})`;
}

// Up/Down/Home/End move between the visible rows' check boxes, Space toggles
// (the box's own behaviour), Enter shows only that label, - and + step its
// opacity.
function label_list_keys(event) {
  const box = event.target.closest && event.target.closest("#label-rows input[type=checkbox]");
  if (!box) return;
  const boxes = [...document.querySelectorAll("#label-rows tr:not([hidden]) input[type=checkbox]")];
  const at = boxes.indexOf(box);
  let next = -1;
  if (event.key === "ArrowDown") next = Math.min(at + 1, boxes.length - 1);
  else if (event.key === "ArrowUp") next = at - 1;
  else if (event.key === "Home") next = 0;
  else if (event.key === "End") next = boxes.length - 1;
  else if (event.key === "Enter") {
    event.preventDefault();
    show_only(box.dataset.labelId);
    return;
  } else if (event.key === "-" || event.key === "+" || event.key === "=") {
    event.preventDefault();
    const key = box.dataset.labelId;
    set_label_opacity(key, label_opacity(key) + (event.key === "-" ? -OPACITY_STEP : OPACITY_STEP));
    return;
  } else return;
  event.preventDefault();
  if (next < 0) $("label-search").focus();
  else boxes[next].focus();
}

function crosshair_icon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M8 1v4M8 11v4M1 8h4M11 8h4M8 4.5a3.5 3.5 0 1 0 0 7a3.5 3.5 0 1 0 0-7");
  svg.append(path);
  return svg;
}

function sync_checkboxes() {
  for (const box of document.querySelectorAll("#label-rows input[type=checkbox]")) {
    box.checked = state.selected.has(box.dataset.labelId);
  }
}

// Moves the crosshair to the centre of a label's bounding box (voxel indices
// of the segmentation, mapped to millimetres through its affine).
function locate(key) {
  const label = state.by_key.get(String(key));
  const volume = state.overlay || (nv && nv.volumes[0]);
  if (!label || !valid_bbox(label.bbox) || !volume || !volume.hdr || !volume.hdr.affine) return false;
  const v = [0, 1, 2].map((i) => (label.bbox[0][i] + label.bbox[1][i]) / 2);
  const a = volume.hdr.affine;
  const mm = [0, 1, 2].map((r) => a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2] + a[r][3]);
  move_crosshair_mm(mm);
  return true;
}

function move_crosshair_mm(mm) {
  nv.scene.crosshairPos = nv.mm2frac(mm);
  nv.createOnLocationChange();
  nv.drawScene();
}

// --- overlay: toggles change the colour table only ------------------------------

let lut_pending = null; // {started}

function selection_changed() {
  const started = performance.now();
  update_download_link();
  schedule_url();
  colour_table_changed(started);
}

// The colour table changed (a toggle or a label's opacity): applied on the
// next frame; state "loading" until the frame after it is drawn.
function colour_table_changed(started) {
  if (!state.overlay) return;
  if (lut_pending) return; // the next frame applies the latest selection
  lut_pending = { started };
  set_state("loading");
  // One colour-table update per frame, however fast the clicks come.
  requestAnimationFrame(() => {
    const { started: t0 } = lut_pending;
    lut_pending = null;
    apply_colormap();
    requestAnimationFrame(() => {
      state.toggles.push({ ms: performance.now() - t0 });
      if (!lut_pending) set_state("ready");
    });
  });
}

// Re-renders the overlay layer (layer 1) from the voxels NiiVue already
// holds, with the new colour table; the image layer is left alone.
function apply_colormap() {
  if (!state.overlay) return;
  state.lut_updates++;
  if (state.mode === "drawing") {
    nv.drawLut = cmapper.makeDrawLut(build_colormap());
    nv.refreshColormaps();
  } else {
    state.overlay.setColormapLabel(build_colormap());
    nv.refreshLayers(state.overlay, 1);
  }
  nv.drawScene();
}

// The alpha NiiVue's colour table gives a label now (tests, console).
function label_alpha(key) {
  const big = BigInt(key);
  if (state.mode === "drawing") return nv.drawLut.lut[Number(big) * 4 + 3];
  const lut = state.overlay.colormapLabel;
  return lut.lut[(Number(big) - lut.min) * 4 + 3];
}

function set_overlay_opacity(value) {
  if (state.mode === "drawing") {
    nv.setDrawOpacity(value);
  } else {
    state.overlay.opacity = value;
    nv.refreshLayers(state.overlay, 1);
    nv.drawScene();
  }
}

// NiiVue's drawing layer holds uint8 values on the background's voxel grid:
// the map must have the image's dims and affine (within 1e-3 mm, the
// server's own geometry rule in README.md).
function same_grid(a, b) {
  const da = a.hdr.dims;
  const db = b.hdr.dims;
  for (let i = 1; i <= 3; i++) if (da[i] !== db[i]) return false;
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) if (!(Math.abs(a.hdr.affine[r][c] - b.hdr.affine[r][c]) <= 1e-3)) return false;
  }
  return true;
}

function opacity_value() {
  return Number($("opacity").value);
}

// --- download link and PNG -------------------------------------------------------

export function filtered_url(patient, seg, keys, { crop = false, mask = false } = {}) {
  // Commas are kept literal: the URL reads like the documented API.
  let url = `/filtered-scans/${encodeURIComponent(patient)}/${encode_path(seg)}?label_ids=${compact_ids(keys)}`;
  if (mask) url += "&mode=mask";
  if (crop) url += "&crop=1";
  return url;
}

function update_download_link() {
  const link = $("download");
  if (!state.seg || state.selected.size === 0 || !state.labels.length) {
    link.removeAttribute("href");
    link.setAttribute("aria-disabled", "true");
    link.title = state.selected.size === 0 ? "No label shown" : "No segmentation";
    return;
  }
  link.href = filtered_url(state.patient, state.seg, state.selected, {
    crop: $("dl-crop").checked,
    mask: $("dl-mask").checked,
  });
  link.removeAttribute("aria-disabled");
  link.title = `The ${state.selected.size} shown label(s) as NIfTI, from /filtered-scans`;
}

function save_png() {
  if (!nv || !nv.volumes.length) return;
  const view = current_view_name();
  nv.saveScene(`${state.patient}_${view}.png`);
}

// --- window / level ----------------------------------------------------------------

function current_wl() {
  const v = state.image_volume;
  if (!v) return null;
  return { width: v.cal_max - v.cal_min, level: (v.cal_max + v.cal_min) / 2 };
}

function round_wl(x) {
  return Math.abs(x) >= 100 ? Math.round(x) : Math.round(x * 10) / 10;
}

function show_wl() {
  const wl = current_wl();
  if (!wl) return;
  const w = round_wl(wl.width);
  const l = round_wl(wl.level);
  if (document.activeElement !== $("win-width")) $("win-width").value = String(w);
  if (document.activeElement !== $("win-level")) $("win-level").value = String(l);
  for (const b of document.querySelectorAll("#presets button")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.width) === w && Number(b.dataset.level) === l));
  }
  document.body.dataset.wl = `${w},${l}`;
}

// The image layer is re-rendered with the new range (NiiVue's own contrast
// change does the same); the overlay layer is untouched.
function set_wl(width, level) {
  const v = state.image_volume;
  if (!v || !Number.isFinite(width) || !Number.isFinite(level) || width <= 0) return false;
  v.cal_min = level - width / 2;
  v.cal_max = level + width / 2;
  nv.refreshLayers(v, 0);
  nv.drawScene();
  show_wl();
  schedule_url();
  return true;
}

function apply_preset(preset) {
  set_wl(preset.width, preset.level);
}

// --- orientation and views -----------------------------------------------------------

// Radiological convention (patient right on screen left) is the default; the
// orientation letters on each slice follow it.
function set_radiological(on) {
  state.radiological = on;
  $("radiological").checked = on;
  if (nv) {
    nv.opts.isRadiologicalConvention = on;
    nv.drawScene();
  }
  document.body.dataset.orient = on ? "radiological" : "neurological";
  schedule_url();
}

function current_view_name() {
  const checked = document.querySelector("input[name=view]:checked");
  return checked ? checked.value : "multiplanar";
}

function view_name_of(slice_type) {
  return Object.keys(VIEWS).find((k) => VIEWS[k] === slice_type) || "multiplanar";
}

function set_ruler(on) {
  $("ruler").setAttribute("aria-pressed", String(on));
  if (nv) nv.opts.dragModePrimary = on ? DRAG_MODE.measurement : DRAG_MODE.crosshair;
}

function toggle_help(show) {
  const help = $("help");
  const open = show === undefined ? help.hidden : show;
  help.hidden = !open;
  $("help-button").setAttribute("aria-expanded", String(open));
}

// --- readout --------------------------------------------------------------------------

function format_mm(x) {
  return (Math.round(x * 10) / 10).toFixed(1);
}

function format_value(x) {
  if (!Number.isFinite(x)) return "–";
  if (Number.isInteger(x)) return String(x);
  return String(Math.round(x * 100) / 100);
}

// Voxel indices (i, j, k) in the file's own order, as nibabel or ITK-SNAP
// number them: the inverse of the header's affine (NiiVue's mm2vox counts in
// its reoriented RAS grid). null outside the volume.
function native_voxel(volume, mm) {
  const a = volume.hdr.affine;
  const m = [0, 1, 2].map((r) => [a[r][0], a[r][1], a[r][2]]);
  const det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
    m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  if (!det) return null;
  const inv = [
    [m[1][1] * m[2][2] - m[1][2] * m[2][1], m[0][2] * m[2][1] - m[0][1] * m[2][2], m[0][1] * m[1][2] - m[0][2] * m[1][1]],
    [m[1][2] * m[2][0] - m[1][0] * m[2][2], m[0][0] * m[2][2] - m[0][2] * m[2][0], m[0][2] * m[1][0] - m[0][0] * m[1][2]],
    [m[1][0] * m[2][1] - m[1][1] * m[2][0], m[0][1] * m[2][0] - m[0][0] * m[2][1], m[0][0] * m[1][1] - m[0][1] * m[1][0]],
  ];
  const d = [mm[0] - a[0][3], mm[1] - a[1][3], mm[2] - a[2][3]];
  const vox = inv.map((row) => Math.floor((row[0] * d[0] + row[1] * d[1] + row[2] * d[2]) / det + 0.5));
  const dims = volume.hdr.dims;
  return vox.every((v, i) => v >= 0 && v < dims[i + 1]) ? vox : null;
}

// The scaled value of one voxel, read from the decoded data in file order.
function voxel_value(volume, [i, j, k], frame) {
  const dims = volume.hdr.dims;
  const at = i + dims[1] * (j + dims[2] * (k + dims[3] * frame));
  const raw = volume.img[at];
  if (raw === undefined) return NaN;
  const slope = Number.isFinite(volume.hdr.scl_slope) && volume.hdr.scl_slope !== 0 ? volume.hdr.scl_slope : 1;
  const inter = Number.isFinite(volume.hdr.scl_inter) ? volume.hdr.scl_inter : 0;
  return Number(raw) * slope + inter;
}

// The crosshair's position in mm (world) and voxels of the image, the image
// value in its units (HU for a CT) and the label under it.
function update_readout() {
  if (!nv || !state.image_volume) return;
  const mm = nv.frac2mm(nv.scene.crosshairPos, 0, true);
  const image = state.image_volume;
  const vox = native_voxel(image, mm);
  const value = vox ? voxel_value(image, vox, image.frame4D || 0) : NaN;
  let label_key = "0";
  if (state.mode === "drawing" && nv.drawBitmap && vox) {
    // the drawing is stored in NiiVue's RAS order of the background grid
    const v = nv.frac2vox(nv.scene.crosshairPos);
    const d = nv.back.dimsRAS;
    label_key = String(nv.drawBitmap[v[0] + v[1] * d[1] + v[2] * d[1] * d[2]] || 0);
  } else if (state.overlay) {
    const ov = native_voxel(state.overlay, mm);
    const raw = ov ? voxel_value(state.overlay, ov, 0) : 0;
    label_key = Number.isFinite(raw) ? id_key(Math.round(raw)) || "0" : "0";
  }
  state.location = { mm: [mm[0], mm[1], mm[2]], vox, value, label_key };
  const unit = state.is_ct ? " HU" : "";
  let label_text = "no label";
  if (label_key !== "0") {
    const label = state.by_key.get(label_key);
    label_text = label ? `${label.name} (${label_key})` : `label ${label_key}`;
    if (label && !state.selected.has(label_key)) label_text += ", hidden";
  } else if (!state.overlay) {
    label_text = "";
  }
  const el = $("readout");
  el.textContent = "";
  const part = (cls, text, title) => {
    const s = document.createElement("span");
    s.className = cls;
    s.textContent = text;
    if (title) s.title = title;
    if (el.childNodes.length) el.append(" ");
    el.append(s);
  };
  part("mm", `${Array.from(mm).slice(0, 3).map(format_mm).join(", ")} mm`, "crosshair in world coordinates (mm)");
  part("vox", vox ? `voxel ${vox.join(", ")}` : "outside the image", "crosshair in voxels of the image (i, j, k)");
  part("value", `${format_value(value)}${unit}`, state.is_ct ? "image value in Hounsfield units" : "image value");
  if (label_text) part("label", label_text, "label under the crosshair (id)");
  el.dataset.mm = Array.from(mm).slice(0, 3).join(",");
  el.dataset.vox = vox ? vox.join(",") : "";
  el.dataset.value = String(value);
  el.dataset.label = label_key;
  schedule_url();
}

// --- state in the URL ------------------------------------------------------------------

function schedule_url() {
  if (state.restoring) return;
  clearTimeout(state.url_timer);
  state.url_timer = setTimeout(write_url, URL_DELAY_MS);
}

function write_url() {
  const p = new URLSearchParams();
  p.set("patient", state.patient);
  if (state.image) p.set("image", state.image);
  if (state.seg) p.set("seg", state.seg);
  if (state.labels.length && state.selected.size !== state.labels.length) p.set("show", compact_ids(state.selected));
  const view = current_view_name();
  if (view !== "multiplanar") p.set("view", view);
  const wl = current_wl();
  if (wl) p.set("wl", `${round_wl(wl.width)},${round_wl(wl.level)}`);
  if (state.location) p.set("xyz", state.location.mm.map(format_mm).join(","));
  if (!state.radiological) p.set("orient", "neuro");
  if (opacity_value() !== 0.6) p.set("opacity", String(opacity_value()));
  const alpha = state.labels.filter((l) => state.alpha.has(l.key)).map((l) => `${l.key}:${state.alpha.get(l.key)}`);
  if (alpha.length) p.set("alpha", alpha.join(","));
  // commas, colons and slashes stay readable
  const query = p.toString().replace(/%2C/gi, ",").replace(/%2F/gi, "/").replace(/%3A/gi, ":");
  history.replaceState(null, "", `${location.pathname}?${query}`);
}

function restore_selection(params) {
  if (!params.has("show")) return;
  const ranges = parse_id_list(params.get("show"));
  if (ranges === null) {
    show_notice(`Ignored show=${params.get("show")}: not a list of ids.`);
    return;
  }
  state.selected = new Set(state.labels
    .filter((l) => ranges.some(([lo, hi]) => l.big >= lo && l.big <= hi))
    .map((l) => l.key));
}

// alpha=ID:PCT,ID:PCT: the labels whose own opacity is not 100 %.
function restore_alpha(params) {
  if (!params.has("alpha")) return;
  const text = params.get("alpha");
  const pairs = [];
  for (const item of text.split(",")) {
    const m = /^\s*(-?\d+):(\d{1,3})\s*$/.exec(item);
    const key = m ? id_key(m[1]) : null;
    if (!m || key === null || Number(m[2]) > 100) {
      show_notice(`Ignored alpha=${text}: not a list of ID:PERCENT.`);
      return;
    }
    pairs.push([key, Number(m[2])]);
  }
  for (const [key, pct] of pairs) {
    const label = state.by_key.get(key);
    if (!label) continue;
    if (pct === 100) state.alpha.delete(key);
    else state.alpha.set(key, pct);
    const input = document.querySelector(`#label-rows input.alpha[data-label-id="${CSS.escape(key)}"]`);
    if (input) show_label_opacity(label, input);
  }
}

function parse_numbers(text, n) {
  if (!text) return null;
  const xs = text.split(",").map((s) => Number(s.trim()));
  return xs.length === n && xs.every(Number.isFinite) ? xs : null;
}

// --- controls -------------------------------------------------------------------

function wire_controls() {
  for (const radio of document.querySelectorAll("input[name=view]")) {
    radio.addEventListener("change", () => {
      if (radio.checked && nv) nv.setSliceType(VIEWS[radio.value]);
      schedule_url();
    });
  }
  const opacity = $("opacity");
  opacity.addEventListener("input", () => {
    $("opacity-value").textContent = `${Math.round(opacity_value() * 100)}%`;
    if (nv && state.overlay) set_overlay_opacity(opacity_value());
    schedule_url();
  });
  $("outline").addEventListener("change", () => {
    if (!nv || state.mode !== "layer") return;
    nv.opts.atlasOutline = $("outline").checked ? 1 : 0;
    nv.refreshLayers(state.overlay, 1);
    nv.drawScene();
  });
  $("select-all").addEventListener("click", () => {
    state.selected = new Set(state.labels.map((l) => l.key));
    sync_checkboxes();
    selection_changed();
  });
  $("select-none").addEventListener("click", () => {
    state.selected = new Set();
    sync_checkboxes();
    selection_changed();
  });
  $("label-search").addEventListener("input", apply_sort_and_search);
  $("label-search").addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "Enter") {
      const first = document.querySelector("#label-rows tr:not([hidden]) input[type=checkbox]");
      if (first) {
        e.preventDefault();
        first.focus();
      }
    } else if (e.key === "Escape") {
      $("label-search").value = "";
      apply_sort_and_search();
    }
  });
  $("label-sort").addEventListener("change", apply_sort_and_search);
  $("label-rows").addEventListener("keydown", label_list_keys);
  $("dl-crop").addEventListener("change", update_download_link);
  $("dl-mask").addEventListener("change", update_download_link);
  $("download").addEventListener("click", (e) => {
    if (!$("download").getAttribute("href")) e.preventDefault();
  });
  $("save-png").addEventListener("click", save_png);
  $("ruler").addEventListener("click", () => set_ruler($("ruler").getAttribute("aria-pressed") !== "true"));
  $("help-button").addEventListener("click", () => toggle_help());
  $("radiological").addEventListener("change", () => set_radiological($("radiological").checked));

  const presets = $("presets");
  for (const p of PRESETS) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = p.name;
    b.title = `W ${p.width} / L ${p.level} (key ${p.key})`;
    b.dataset.width = String(p.width);
    b.dataset.level = String(p.level);
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => apply_preset(p));
    presets.append(b);
  }
  const wl_input = () => set_wl(Number($("win-width").value), Number($("win-level").value));
  $("win-width").addEventListener("change", wl_input);
  $("win-level").addEventListener("change", wl_input);

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target.closest && e.target.closest("input[type=search], input[type=number], input[type=text], select, textarea");
    if (e.key === "Escape") {
      toggle_help(false);
      return;
    }
    if (typing) return;
    const preset = PRESETS.find((p) => p.key === e.key);
    if (preset) {
      e.preventDefault();
      apply_preset(preset);
    } else if (e.key === "?") {
      e.preventDefault();
      toggle_help();
    } else if (e.key === "r" || e.key === "R") {
      set_ruler($("ruler").getAttribute("aria-pressed") !== "true");
    } else if (e.key === "o" || e.key === "O") {
      set_radiological(!state.radiological);
    } else if (e.key === "/") {
      e.preventDefault();
      $("label-search").focus();
    }
  });
}

// --- start ------------------------------------------------------------------------

function valid_rel(rel) {
  return rel.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

async function main() {
  wire_controls();
  const params = new URLSearchParams(window.location.search);
  state.params = params;
  state.patient = (params.get("patient") || "").trim();
  if (!state.patient) {
    throw new Error("No patient given: open viewer.html?patient=PATIENT_ID (see the patient list on the home page).");
  }
  if (!valid_rel(state.patient) || state.patient.includes("/")) {
    throw new Error(`"${state.patient}" is not a valid patient id.`);
  }
  document.title = `${state.patient} – medimg viewer`;
  $("patient-link").textContent = state.patient;
  $("patient-link").href = patient_url();
  progress_show("Loading…");

  const image_param = (params.get("image") || "").trim();
  const seg_param = (params.get("seg") || "").trim();
  for (const [key, value] of [["image", image_param], ["seg", seg_param]]) {
    if (value && !valid_rel(value)) throw new Error(`"${value}" is not a valid ${key} path.`);
  }
  const view = params.get("view");
  if (view && VIEWS[view] !== undefined) {
    document.querySelector(`input[name=view][value=${view}]`).checked = true;
  }
  state.radiological = params.get("orient") !== "neuro";
  $("radiological").checked = state.radiological;
  document.body.dataset.orient = state.radiological ? "radiological" : "neurological";
  const opacity = Number(params.get("opacity"));
  if (params.has("opacity") && opacity >= 0 && opacity <= 1) {
    $("opacity").value = String(opacity);
    $("opacity-value").textContent = `${Math.round(opacity * 100)}%`;
  }

  state.image = image_param || (await find_image());
  state.seg = seg_param || (await find_segmentation(state.image));
  $("image-name").textContent = state.image;
  $("seg-name").textContent = state.seg || "no segmentation";

  nv = new Niivue({
    backColor: [0, 0, 0, 1],
    show3Dcrosshair: true,
    isResizeCanvas: true,
    logLevel: "error",
    dragAndDropEnabled: false,
    isRadiologicalConvention: state.radiological,
    isOrientationTextVisible: true,
    loadingText: "",
  });
  await nv.attachToCanvas($("gl"));
  nv.setSliceType(VIEWS[current_view_name()]);
  // NiiVue's own keys (V) and mouse change the view and the window: the
  // controls follow them.
  nv.onSliceTypeChange = (st) => {
    const radio = document.querySelector(`input[name=view][value=${view_name_of(st)}]`);
    if (radio && !radio.checked) radio.checked = true;
    schedule_url();
  };
  nv.onIntensityChange = (volume) => {
    if (volume === state.image_volume) {
      show_wl();
      schedule_url();
    }
  };
  nv.onLocationChange = () => update_readout();

  const labels_promise = state.seg ? load_labels() : Promise.resolve(false);
  labels_promise.catch(() => {}); // reported when awaited below
  const image_url = patient_url(state.image);
  const image_bytes = fetch_bytes(image_url, "image");
  image_bytes.catch(() => {});
  const usable = await labels_promise;
  const seg_url = usable ? overlay_source_url() : "";
  const seg_bytes = seg_url ? fetch_bytes(seg_url, "segmentation") : Promise.resolve(null);
  seg_bytes.catch(() => {});

  const image_buffer = await image_bytes;
  progress_show("Decoding image…");
  await next_frame();
  const image = await decode(image_url, image_buffer, volume_name("", state.image, image_buffer), { colormap: "gray" }, "image");
  state.image_volume = image;
  state.is_ct = looks_like_ct(image);
  $("wl-unit").textContent = state.is_ct ? "HU" : "";
  const wl = parse_numbers(params.get("wl"), 2);
  if (wl && wl[0] > 0) {
    image.cal_min = wl[1] - wl[0] / 2;
    image.cal_max = wl[1] + wl[0] / 2;
  } else if (state.is_ct) {
    image.cal_min = 40 - 200; // soft tissue, W 400 / L 40
    image.cal_max = 40 + 200;
  }
  progress_show("Uploading image to the GPU…");
  await next_frame();
  nv.addVolume(image);
  show_wl();

  if (seg_url) {
    const seg_buffer = await seg_bytes;
    progress_show("Decoding segmentation…");
    await next_frame();
    const overlay = await decode(seg_url, seg_buffer, volume_name("", state.seg, seg_buffer),
      { opacity: opacity_value() }, "segmentation");
    restore_selection(params);
    restore_alpha(params);
    sync_checkboxes();
    const max_span = nv.gl.getParameter(nv.gl.MAX_TEXTURE_SIZE);
    state.drawable = choose_drawable(state.labels, max_span);
    if (state.drawable.size < state.labels.length) {
      show_notice(`${state.labels.length - state.drawable.size} label(s) with ids too far apart are listed but not drawn.`);
    }
    narrow_to_uint8(overlay);
    overlay.setColormapLabel(build_colormap());
    progress_show("Uploading segmentation to the GPU…");
    await next_frame();
    const scaled = Number.isFinite(overlay.hdr.scl_slope) && overlay.hdr.scl_slope !== 0 &&
      (overlay.hdr.scl_slope !== 1 || (Number.isFinite(overlay.hdr.scl_inter) && overlay.hdr.scl_inter !== 0));
    const as_drawing = overlay.hdr.datatypeCode === 2 && !scaled && same_grid(image, overlay) &&
      state.labels.every((l) => state.drawable.has(l.key) && l.big <= 255n);
    if (as_drawing && nv.loadDrawing(overlay)) {
      state.mode = "drawing";
      nv.drawOpacity = opacity_value();
      nv.drawLut = cmapper.makeDrawLut(build_colormap());
      nv.refreshColormaps();
      nv.drawClearAllUndoBitmaps(); // no undo history: the map is not edited here
      overlay.img = null; // NiiVue holds its own copy; the readout reads that
    } else {
      // Added as layer 1 and rendered alone: the image layer is not uploaded again.
      state.mode = "layer";
      nv.volumes = [...nv.volumes, overlay];
      nv.overlays = nv.volumes.slice(1);
      nv.refreshLayers(overlay, 1);
      // NiiVue draws label outlines for NIfTI label maps (intent LABEL) of 8/16-bit types
      $("outline-option").hidden = !(overlay.hdr.intent_code === 1002 && [2, 4, 512].includes(overlay.hdr.datatypeCode));
    }
    document.body.dataset.mode = state.mode;
    state.overlay = overlay;
    state.overlay_url = seg_url;
    document.body.dataset.overlay = seg_url;
  } else if (!state.seg) {
    show_notice("No segmentation found for this patient: showing the image only.");
  }

  const xyz = parse_numbers(params.get("xyz"), 3);
  if (xyz) nv.scene.crosshairPos = nv.mm2frac(xyz);
  nv.drawScene();
  update_readout();
  update_download_link();
  progress_show("Drawing…", 1);
  await next_frame();
  await next_frame();
  state.first_draw_ms = performance.now();
  performance.mark("medimg:first-draw");
  progress_reset();
  state.restoring = false;
  // optional: a column more when the image is a CT and the server has the statistics
  if (state.overlay && state.is_ct) load_intensity().catch(() => {});
  if (params.toString() !== "") write_url();
  set_state("ready");
}

// A map whose ids all lie in 1..255 (and that is not scaled) is kept as
// uint8 in memory: half the texture NiiVue uploads for int16 on every
// redraw of the overlay layer, a quarter for int32. The values are the same
// (the ids present are exactly the /labels list), so the readout is too.
function narrow_to_uint8(volume) {
  const hdr = volume.hdr;
  const slope = Number.isFinite(hdr.scl_slope) && hdr.scl_slope !== 0 ? hdr.scl_slope : 1;
  const inter = Number.isFinite(hdr.scl_inter) ? hdr.scl_inter : 0;
  const narrowable = [4, 8, 256, 512, 768].includes(hdr.datatypeCode); // int16, int32, int8, uint16, uint32
  if (!narrowable || slope !== 1 || inter !== 0 || !state.labels.length) return;
  if (!state.labels.every((l) => l.big >= 1n && l.big <= 255n)) return;
  volume.img = new Uint8Array(volume.img);
  hdr.datatypeCode = 2; // DT_UINT8
  hdr.numBitsPerVoxel = 8;
}

// The segmentation as stored, read once; a .hdr/.img pair comes through the
// filter (which writes one .nii.gz) with every label listed.
function overlay_source_url() {
  if (/\.(hdr|img)(\.gz)?$/i.test(state.seg)) {
    return filtered_url(state.patient, state.seg, state.labels.map((l) => l.key));
  }
  return patient_url(state.seg);
}

// A CT in Hounsfield units has air near -1000; it opens in the soft-tissue
// window (W 400, L 40).
function looks_like_ct(volume) {
  const img = volume.img;
  if (!img || !img.length) return false;
  const slope = Number.isFinite(volume.hdr.scl_slope) && volume.hdr.scl_slope !== 0 ? volume.hdr.scl_slope : 1;
  const inter = Number.isFinite(volume.hdr.scl_inter) ? volume.hdr.scl_inter : 0;
  let min = Infinity;
  for (let i = 0; i < img.length; i++) if (img[i] < min) min = img[i];
  return min * slope + inter <= -900;
}

// Reads /labels; false when the file is not a label map (415: shown as the
// image alone, with a warning).
async function load_labels() {
  const url = `${patient_url(state.seg)}/labels`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (response.status === 415 || response.status === 413) {
    const error = await http_error(response, url);
    // 413 also means "too large": only too many distinct values is a verdict on the file
    if (response.status === 413 && error.code !== "too_many_label_ids") throw error;
    show_notice(`${state.seg} does not look like a label map: ${error.message}. Showing the image without an overlay.`);
    document.body.dataset.warning = "not-labels";
    return false;
  }
  if (!response.ok) throw await http_error(response, url);
  const body = parse_labels_json(await response.text());
  if (!body || !Array.isArray(body.labels)) throw new Error(`Unexpected answer from ${url}: no "labels" list.`);
  const labels = [];
  for (const l of body.labels) {
    const key = l ? id_key(l.id) : null;
    if (key === null || key === "0") continue;
    const big = BigInt(key);
    labels.push({
      ...l,
      key,
      big,
      num: Number(big),
      name: typeof l.name === "string" && l.name ? l.name : key,
    });
  }
  labels.sort((a, b) => cmp_big(a.big, b.big));
  assign_shades(labels);
  state.labels = labels;
  state.by_key = new Map(labels.map((l) => [l.key, l]));
  state.selected = new Set(labels.map((l) => l.key));
  render_labels();
  if (labels.length === 0) {
    show_notice("This segmentation contains no labels (all voxels are 0).");
    return false;
  }
  const unnamed = labels.filter((l) => l.name === l.key).length;
  if (labels.length > 20 && unnamed > labels.length / 2) {
    show_notice(`${state.seg} may not be a label map: ${unnamed} of its ${labels.length} values have no label name.`);
    document.body.dataset.warning = "unnamed-labels";
  }
  return true;
}

// Mean CT value per label in HU from `/labels?image=` (README.md), asked for
// once the picture is drawn; a server without the statistics answers without
// "intensity" and the column stays hidden, as it does for an image that is
// no CT (the column is headed HU).
async function load_intensity() {
  const url = `${patient_url(state.seg)}/labels?image=${encodeURIComponent(state.image)}`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  const body = parse_labels_json(await response.text());
  let any = false;
  for (const l of (body && body.labels) || []) {
    const label = state.by_key.get(id_key(l.id));
    if (label && l.intensity && Number.isFinite(l.intensity.mean)) {
      label.intensity = l.intensity;
      any = true;
    }
  }
  if (!any) return;
  document.body.classList.add("has-intensity");
  for (const tr of $("label-rows").children) {
    const label = state.by_key.get(tr.dataset.labelId);
    const td = tr.querySelector("td.hu");
    if (td && label && label.intensity) {
      td.textContent = format_value(Math.round(label.intensity.mean * 10) / 10);
      td.title = `mean ${label.intensity.mean}, sd ${label.intensity.sd}, p05–p95 ${label.intensity.p05}–${label.intensity.p95}`;
    }
  }
}

// Exposed for tests, the benchmark and the browser console.
window.medimg_viewer = {
  state, locate, set_wl, label_alpha, set_label_opacity, PRESETS, compact_ids, parse_id_list,
  get nv() { return nv; },
};

main().catch(fail);
