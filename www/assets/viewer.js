// The medimg viewer: a CT (or MR) from /output/{pid}/nifti/ with the
// segmentation overlaid through /filtered-scans/, label panel from /labels.
//   viewer.html?patient=PID[&image=nifti/FILE][&seg=REL/PATH]
import { Niivue, NVImage, SLICE_TYPE } from "@niivue/niivue";
import { fetch_listing, http_error, is_nifti, nifti_stem, encode_path } from "./dirlist.js";

const DEBOUNCE_MS = 250;
const VIEWS = {
  axial: SLICE_TYPE.AXIAL,
  coronal: SLICE_TYPE.CORONAL,
  sagittal: SLICE_TYPE.SAGITTAL,
  multiplanar: SLICE_TYPE.MULTIPLANAR,
  render: SLICE_TYPE.RENDER,
};

const $ = (id) => document.getElementById(id);

const state = {
  patient: "",
  image: "",
  seg: "",
  labels: [],
  selected: new Set(),
  overlay: null,
  overlay_url: "",
  generation: 0,
  controller: null,
  timer: 0,
  colormap: null,
};

let nv = null;

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
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

function fail(error) {
  if (error && error.name === "AbortError") return;
  show_alert(error && error.message ? error.message : String(error));
  set_state("error");
}

// --- progress ---------------------------------------------------------------

let active_loads = 0;

function progress_begin(what) {
  active_loads += 1;
  $("progress").hidden = false;
  $("progress-text").textContent = `Loading ${what}…`;
  $("progress-bar").removeAttribute("value");
  document.body.classList.add("busy");
}

function progress_update(what, received, total) {
  const mib = (n) => (n / 1048576).toFixed(1);
  if (total > 0) {
    $("progress-bar").value = Math.min(received / total, 1);
    $("progress-text").textContent = `Loading ${what}… ${mib(received)} / ${mib(total)} MiB`;
  } else {
    $("progress-text").textContent = `Loading ${what}… ${mib(received)} MiB`;
  }
}

function progress_end() {
  active_loads = Math.max(0, active_loads - 1);
  if (active_loads === 0) {
    $("progress").hidden = true;
    document.body.classList.remove("busy");
  }
}

// Fetches a binary resource with a progress display; a 4xx/5xx becomes an
// HttpError carrying the server's JSON detail.
async function fetch_bytes(url, what, signal) {
  progress_begin(what);
  try {
    const response = await fetch(url, { signal });
    if (!response.ok) throw await http_error(response, url);
    const total = Number(response.headers.get("content-length")) || 0;
    if (!response.body || !response.body.getReader) return await response.arrayBuffer();
    const reader = response.body.getReader();
    const chunks = [];
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.byteLength;
      progress_update(what, received, total);
    }
    const bytes = new Uint8Array(received);
    let at = 0;
    for (const chunk of chunks) {
      bytes.set(chunk, at);
      at += chunk.byteLength;
    }
    return bytes.buffer;
  } finally {
    progress_end();
  }
}

// NiiVue chooses its reader from the name's extension, so every buffer is
// given a name that matches its bytes (gzip magic or not).
function volume_name(prefix, rel, buffer) {
  const bytes = new Uint8Array(buffer, 0, Math.min(2, buffer.byteLength));
  const gz = bytes.length === 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  const base = nifti_stem(rel.split("/").pop() || "volume");
  return `${prefix}${base}${gz ? ".nii.gz" : ".nii"}`;
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

async function find_image() {
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
  const scans = (await try_listing("voxels/")).filter((e) => e.is_dir).sort(by_rank);
  for (const scan of scans) {
    const files = await try_listing(`voxels/${scan.name}/original/`);
    if (files.some((f) => f.name === "all.nii.gz")) return `voxels/${scan.name}/original/all.nii.gz`;
    const all = files.find((f) => !f.is_dir && /^all\.(nii|nii\.gz|hdr)$/i.test(f.name));
    if (all) return `voxels/${scan.name}/original/${all.name}`;
  }
  const whole = (await try_listing("scans/")).filter((e) => !e.is_dir && is_nifti(e.name)).sort(by_rank);
  if (whole.length > 0) return `scans/${whole[0].name}`;
  return "";
}

// --- label panel ------------------------------------------------------------

// Labels without a colour get a stable one derived from the id.
function fallback_color(id) {
  const hue = (id * 137.508) % 360;
  const s = 0.65;
  const l = 0.55;
  const f = (n) => {
    const k = (n + hue / 30) % 12;
    const a = s * Math.min(l, 1 - l);
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [f(0), f(8), f(4)];
}

function label_color(label) {
  const c = label.color;
  if (Array.isArray(c) && c.length >= 3 && c.every((v) => Number.isFinite(v))) {
    return c.slice(0, 3).map((v) => Math.max(0, Math.min(255, Math.round(v))));
  }
  return fallback_color(label.id);
}

function format_count(n) {
  return Number(n).toLocaleString("en-US");
}

function format_ml(x) {
  if (!Number.isFinite(x)) return "–";
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

// One NiiVue label LUT for every label of the file: the overlay's colours
// are exactly the swatches' colours, whatever subset is shown.
function build_colormap(labels) {
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (const label of labels) {
    const [r, g, b] = label_color(label);
    cm.R.push(r);
    cm.G.push(g);
    cm.B.push(b);
    cm.A.push(255);
    cm.I.push(label.id);
    cm.labels.push(label.name);
  }
  return cm;
}

function render_labels() {
  const body = $("label-rows");
  body.textContent = "";
  for (const label of state.labels) {
    const tr = document.createElement("tr");
    tr.dataset.labelId = String(label.id);
    const [r, g, b] = label_color(label);

    const td_check = document.createElement("td");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.selected.has(label.id);
    box.id = `label-${label.id}`;
    box.dataset.labelId = String(label.id);
    box.addEventListener("change", () => {
      if (box.checked) state.selected.add(label.id);
      else state.selected.delete(label.id);
      selection_changed();
    });
    td_check.append(box);

    const td_name = document.createElement("td");
    td_name.className = "name-cell";
    td_name.title = `${label.name} (id ${label.id})`;
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
    id.textContent = `#${label.id}`;
    name.append(swatch, text, id);
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
    only.title = `Show only ${label.name}`;
    only.addEventListener("click", () => {
      state.selected = new Set([label.id]);
      sync_checkboxes();
      selection_changed();
    });
    td_only.className = "actions";
    td_only.append(only);
    if (valid_bbox(label.bbox)) {
      const go = document.createElement("button");
      go.type = "button";
      go.className = "locate";
      go.title = `Go to ${label.name}`;
      go.setAttribute("aria-label", `Go to ${label.name}`);
      go.append(crosshair_icon());
      go.addEventListener("click", () => locate(label.id));
      td_only.append(go);
    }

    tr.append(td_check, td_name, td_vox, td_ml, td_only);
    body.append(tr);
  }
  $("labels-count").textContent = `(${state.labels.length})`;
}

function valid_bbox(bbox) {
  return Array.isArray(bbox) && bbox.length === 2 &&
    bbox.every((c) => Array.isArray(c) && c.length >= 3 && c.every(Number.isFinite));
}

// Moves the crosshair to the centre of a label's bounding box (voxel indices
// of the segmentation, mapped to millimetres through its affine).
function locate(id) {
  const label = state.labels.find((l) => l.id === id);
  const volume = state.overlay || (nv && nv.volumes[0]);
  if (!label || !valid_bbox(label.bbox) || !volume || !volume.hdr || !volume.hdr.affine) return false;
  const v = [0, 1, 2].map((i) => (label.bbox[0][i] + label.bbox[1][i]) / 2);
  const a = volume.hdr.affine;
  const mm = [0, 1, 2].map((r) => a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2] + a[r][3]);
  nv.scene.crosshairPos = nv.mm2frac(mm);
  nv.createOnLocationChange();
  nv.drawScene();
  return true;
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
    box.checked = state.selected.has(Number(box.dataset.labelId));
  }
}

function selection_changed() {
  clearTimeout(state.timer);
  state.timer = setTimeout(() => {
    update_overlay().catch(fail);
  }, DEBOUNCE_MS);
}

// --- overlay ------------------------------------------------------------------

function overlay_url(ids) {
  // Commas are kept literal: the URL reads like the documented API.
  const list = [...ids].sort((a, b) => a - b).join(",");
  return `/filtered-scans/${encodeURIComponent(state.patient)}/${encode_path(state.seg)}?label_ids=${list}`;
}

function opacity_value() {
  return Number($("opacity").value);
}

async function update_overlay() {
  const generation = ++state.generation;
  if (state.controller) state.controller.abort();
  const ids = [...state.selected];
  if (ids.length === 0) {
    remove_overlay();
    state.overlay_url = "";
    document.body.dataset.overlay = "";
    set_state("ready");
    return;
  }
  const url = overlay_url(ids);
  const controller = new AbortController();
  state.controller = controller;
  set_state("loading");
  clear_alert();
  let buffer;
  try {
    buffer = await fetch_bytes(url, "segmentation", controller.signal);
  } catch (e) {
    if (generation !== state.generation || e.name === "AbortError") return;
    throw e;
  }
  if (generation !== state.generation) return;
  const volume = await NVImage.loadFromUrl({
    url,
    buffer,
    name: volume_name("filtered_", state.seg, buffer),
    opacity: opacity_value(),
  });
  if (generation !== state.generation) return;
  volume.setColormapLabel(state.colormap);
  remove_overlay();
  nv.addVolume(volume);
  state.overlay = volume;
  state.overlay_url = url;
  document.body.dataset.overlay = url;
  nv.updateGLVolume();
  set_state("ready");
}

function remove_overlay() {
  if (state.overlay) {
    nv.removeVolume(state.overlay);
    state.overlay = null;
  }
}

// --- controls -------------------------------------------------------------------

function wire_controls() {
  for (const radio of document.querySelectorAll("input[name=view]")) {
    radio.addEventListener("change", () => {
      if (radio.checked && nv) nv.setSliceType(VIEWS[radio.value]);
    });
  }
  const opacity = $("opacity");
  opacity.addEventListener("input", () => {
    $("opacity-value").textContent = `${Math.round(opacity_value() * 100)}%`;
    if (nv && state.overlay) {
      state.overlay.opacity = opacity_value();
      nv.updateGLVolume();
    }
  });
  $("select-all").addEventListener("click", () => {
    state.selected = new Set(state.labels.map((l) => l.id));
    sync_checkboxes();
    selection_changed();
  });
  $("select-none").addEventListener("click", () => {
    state.selected = new Set();
    sync_checkboxes();
    selection_changed();
  });
}

function current_view() {
  const checked = document.querySelector("input[name=view]:checked");
  return checked ? VIEWS[checked.value] : SLICE_TYPE.MULTIPLANAR;
}

// --- start ------------------------------------------------------------------------

function valid_rel(rel) {
  return rel.split("/").every((s) => s !== "" && s !== "." && s !== "..");
}

async function main() {
  wire_controls();
  const params = new URLSearchParams(window.location.search);
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

  const image_param = (params.get("image") || "").trim();
  const seg_param = (params.get("seg") || "").trim();
  for (const [key, value] of [["image", image_param], ["seg", seg_param]]) {
    if (value && !valid_rel(value)) throw new Error(`"${value}" is not a valid ${key} path.`);
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
  });
  await nv.attachToCanvas($("gl"));
  nv.setSliceType(current_view());

  const labels_promise = state.seg ? load_labels() : Promise.resolve();
  labels_promise.catch(() => {}); // reported when awaited below
  const image_url = patient_url(state.image);
  const image_buffer = await fetch_bytes(image_url, "image");
  const image = await NVImage.loadFromUrl({
    url: image_url,
    buffer: image_buffer,
    name: volume_name("", state.image, image_buffer),
    colormap: "gray",
  });
  apply_ct_window(image);
  nv.addVolume(image);
  await labels_promise;
  if (!state.seg) {
    show_notice("No segmentation found for this patient: showing the image only.");
    set_state("ready");
    return;
  }
  await update_overlay();
}

// A CT in Hounsfield units (air near -1000) opens in the abdominal soft-tissue
// window (W 400, L 40), where segmented organs are told apart best.
function apply_ct_window(volume) {
  const img = volume.img;
  if (!img || !img.length) return;
  const slope = Number.isFinite(volume.hdr.scl_slope) && volume.hdr.scl_slope !== 0 ? volume.hdr.scl_slope : 1;
  const inter = Number.isFinite(volume.hdr.scl_inter) ? volume.hdr.scl_inter : 0;
  let min = Infinity;
  for (let i = 0; i < img.length; i++) if (img[i] < min) min = img[i];
  if (min * slope + inter <= -900) {
    volume.cal_min = -160;
    volume.cal_max = 240;
  }
}

async function load_labels() {
  const url = `${patient_url(state.seg)}/labels`;
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw await http_error(response, url);
  const body = await response.json();
  if (!body || !Array.isArray(body.labels)) throw new Error(`Unexpected answer from ${url}: no "labels" list.`);
  state.labels = body.labels
    .filter((l) => l && Number.isInteger(l.id) && l.id > 0)
    .map((l) => ({ ...l, name: typeof l.name === "string" && l.name ? l.name : String(l.id) }))
    .sort((a, b) => a.id - b.id);
  state.selected = new Set(state.labels.map((l) => l.id));
  state.colormap = build_colormap(state.labels);
  render_labels();
  if (state.labels.length === 0) show_notice("This segmentation contains no labels (all voxels are 0).");
}

// Exposed for tests and for the browser console.
window.medimg_viewer = { state, locate, get nv() { return nv; } };

main().catch(fail);
