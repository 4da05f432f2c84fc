// The one listing reader of www/ (assets/dirlist.js) in real headless
// Chromium against the listings of both web servers: lighttpd behind
// `medimg serve` and Apache with apache/medimg.conf (started by
// tests/integration/apache_server.py), on one data root with a folder of
// awkward names. The styled listing page (listing.js) and the viewer's
// reader (fetch_listing) must both give exactly the folder's entries, and
// no name beginning with ".": the servers hide those and refuse them, and
// the reader drops them from any markup.
//
//   MEDIMG_BUILD_DIR=build MEDIMG_SOURCE_DIR=. NODE_PATH=www/node_modules \
//     node --test tests/browser/listing.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { SOURCE_DIR, make_demo, start_medimg_serve, start_apache, launch_chromium } from "./harness.mjs";

const ARTIFACTS = path.join(SOURCE_DIR, "tests/browser/artifacts");
const PATIENT = "PA00000002";
const FOLDER = "names";
const WAIT_MS = 120_000;
const TEST_MS = 300_000;

// Entries of the folder: files, a sub-folder, and hidden names of both kinds.
const FILES = ["a b.nii.gz", "9.nii.gz", "10.nii.gz", "ü-ö.json", "x&y.txt", "odd <name>.txt", "100%.txt", "sub/inner.txt",
  ".hidden", ".env", ".dir/inside.txt"];

let tmp = "";
let browser = null;
const servers = {}; // kind -> server
const listings = {}; // kind -> listing HTML as served
const console_errors = [];

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "medimg-listing-"));
  const data_root = path.join(tmp, "data");
  await make_demo(data_root, { size: "16x16x8", patient: PATIENT });
  for (const [i, rel] of FILES.entries()) {
    const file = path.join(data_root, PATIENT, FOLDER, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, "x".repeat(100 * (i + 1) + 7)); // a distinct size each
  }
  servers.lighttpd = await start_medimg_serve({ data_root, log: path.join(tmp, "serve.log") });
  const apache = await start_apache({ data_root, log: path.join(tmp, "apache.log") });
  if (apache) servers.apache = apache;
  browser = await launch_chromium({ webgl: false });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  for (const s of Object.values(servers)) await s.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// What the folder holds on disk, hidden names left out: {name, is_dir}.
function on_disk(data_root) {
  return fs.readdirSync(path.join(data_root, PATIENT, FOLDER), { withFileTypes: true })
    .filter((e) => !e.name.startsWith("."))
    .map((e) => ({ name: e.name, is_dir: e.isDirectory() }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const by_name = (xs) => [...xs].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

async function new_page(kind) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error") console_errors.push({ kind, url: page.url(), text: msg.text() });
  });
  page.on("pageerror", (err) => console_errors.push({ kind, url: page.url(), text: `uncaught: ${err.message}` }));
  return page;
}

for (const kind of ["lighttpd", "apache"]) {
  test(`${kind}: the styled listing and the viewer's reader give the folder's entries, no hidden name`, { timeout: TEST_MS }, async (t) => {
    const server = servers[kind];
    if (!server) {
      t.skip(`${kind} is not installed`);
      return;
    }
    const want = on_disk(server.data_root);
    assert.equal(want.length, 8, `the folder as written: ${JSON.stringify(want)}`);
    const url = `/output/${PATIENT}/${FOLDER}/`;
    const r = await fetch(`${server.base}${url}`);
    assert.equal(r.status, 200);
    listings[kind] = await r.text();
    assert.ok(listings[kind].includes("/assets/listing.js"), `${kind} injects listing.js`);
    assert.ok(!/href="[^"]*\.(hidden|env|dir)/.test(listings[kind]), `${kind} does not list hidden names`);
    for (const hidden of [".hidden", ".env", ".dir/inside.txt"]) {
      const h = await fetch(`${server.base}${url}${hidden}`);
      assert.ok(h.status === 403 || h.status === 404, `${kind} refuses ${hidden}: ${h.status}`);
    }

    const page = await new_page(kind);
    await page.goto(`${server.base}${url}`);
    await page.locator("table.medimg-listing").waitFor({ timeout: WAIT_MS });
    await page.screenshot({ path: path.join(ARTIFACTS, `listing-${kind}.png`) });
    // listing.js: one row per entry, from the server's markup
    const rows = await page.locator("table.medimg-listing tbody tr[data-name]").evaluateAll((trs) => trs.map((tr) => ({
      name: tr.dataset.name,
      is_dir: tr.classList.contains("dir"),
      href: tr.querySelector("td.name a").getAttribute("href"),
      size: tr.querySelector("td.size").textContent,
    })));
    assert.deepEqual(by_name(rows).map(({ name, is_dir }) => ({ name, is_dir })), want, `${kind}: rows of the styled listing`);
    for (const row of rows) {
      assert.equal(decodeURIComponent(row.href), `${url}${row.name}${row.is_dir ? "/" : ""}`, `${kind}: link of ${row.name}`);
      if (!row.is_dir) assert.match(row.size, /^\d+(\.\d)? (B|KiB)$/, `${kind}: size of ${row.name}`);
    }
    // numbers in names sort by value
    const files = await page.locator("table.medimg-listing tbody tr.file").evaluateAll((trs) => trs.map((t) => t.dataset.name));
    assert.ok(files.indexOf("9.nii.gz") < files.indexOf("10.nii.gz"), `${kind}: 9 before 10 in ${files}`);

    // the viewer's reader, on the same answer
    const read = await page.evaluate(async (u) => {
      const m = await import("/assets/dirlist.js");
      return (await m.fetch_listing(u)).map((e) => ({ name: e.name, is_dir: e.is_dir, href: e.href, size_text: e.size_text }));
    }, url);
    assert.deepEqual(by_name(read).map(({ name, is_dir }) => ({ name, is_dir })), want, `${kind}: fetch_listing`);
    assert.deepEqual(by_name(read).map((e) => e.href), by_name(rows).map((e) => e.href), `${kind}: the same links`);
    for (const e of read) if (!e.is_dir) assert.ok(e.size_text, `${kind}: the server's size of ${e.name}`);

    // The reader's own rule, on this server's markup: an entry named ".hidden"
    // added beside a real one (as a server that listed it would) is dropped.
    const with_hidden = await page.evaluate(async (u) => {
      const m = await import("/assets/dirlist.js");
      const html = await (await fetch(u)).text();
      const doc = new DOMParser().parseFromString(html, "text/html");
      const link = [...doc.querySelectorAll("a[href]")].find((a) => decodeURIComponent(a.getAttribute("href")).endsWith("9.nii.gz") &&
        !decodeURIComponent(a.getAttribute("href")).endsWith("19.nii.gz"));
      const row = link.closest("tr, li") || link;
      const copy = row.cloneNode(true);
      for (const a of copy.querySelectorAll("a[href]")) {
        a.setAttribute("href", ".hidden");
        a.textContent = ".hidden";
      }
      if (copy.matches("a[href]")) copy.setAttribute("href", ".hidden");
      row.after(copy);
      const names = m.parse_listing(doc.documentElement.outerHTML, u).map((e) => e.name);
      return { added: doc.querySelectorAll('a[href=".hidden"]').length, names };
    }, url);
    assert.ok(with_hidden.added >= 1, `${kind}: the copied row carries the hidden name`);
    assert.deepEqual([...with_hidden.names].sort(), want.map((e) => e.name).sort(), `${kind}: ".hidden" is not an entry`);
    await page.context().close();
  });
}

test("the two servers write different markups, read alike", (t) => {
  if (!listings.lighttpd || !listings.apache) {
    t.skip("needs both servers");
    return;
  }
  // lighttpd: <td class="n">; Apache's HTMLTable: sort links ?C=N;O=D
  assert.match(listings.lighttpd, /<td class="n">/);
  assert.doesNotMatch(listings.lighttpd, /\?C=N;O=D/);
  assert.match(listings.apache, /\?C=N;O=[AD]/);
  assert.doesNotMatch(listings.apache, /<td class="n">/);
});

test("no console errors on the listing pages", () => {
  assert.deepEqual(console_errors, []);
});
