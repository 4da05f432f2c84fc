// The API page (www/api.html) in real headless Chromium, served by
// `medimg serve` (lighttpd + medimg-fcgi): Swagger UI from the packaged
// swagger-ui-dist renders every path of /openapi.json, loads nothing from
// another origin, and "Try it out" on /health gets the worker's answer.
//
//   MEDIMG_BUILD_DIR=build MEDIMG_SOURCE_DIR=. NODE_PATH=www/node_modules \
//     node --test tests/browser/api.test.mjs
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

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const here = path.dirname(fileURLToPath(import.meta.url));
const SOURCE_DIR = process.env.MEDIMG_SOURCE_DIR || path.resolve(here, "../..");
const BUILD_DIR = process.env.MEDIMG_BUILD_DIR || path.join(SOURCE_DIR, "build");
const WAIT_MS = 120_000;
const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let base = "";
let tmp = "";
let server = null;
let browser = null;

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

before(async () => {
  const medimg = path.join(BUILD_DIR, "cli", "medimg");
  assert.ok(fs.existsSync(medimg), `${medimg} not built`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "medimg-api-page-"));
  const data_root = path.join(tmp, "data");
  await run(medimg, ["demo", data_root, "--size", "32x32x20", "--patient", "PA00000002"], { timeout: 120_000 });
  const port = await free_port();
  base = `http://127.0.0.1:${port}`;
  const log_fd = fs.openSync(path.join(tmp, "serve.log"), "a");
  server = spawn(medimg, ["serve", "--host", "127.0.0.1", "--port", String(port), "--data-root", data_root], {
    cwd: tmp,
    env: { ...process.env, MEDIMG_WWW_ROOT: path.join(SOURCE_DIR, "www") },
    detached: true,
    stdio: ["ignore", log_fd, log_fd],
  });
  fs.closeSync(log_fd);
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) })).ok) break;
    } catch (_) {
      // not up yet
    }
    await sleep(300);
  }
  browser = await chromium.launch({
    executablePath: process.env.MEDIMG_CHROMIUM || "/usr/bin/chromium",
    timeout: 120_000,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
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
    if (server.exitCode === null && server.signalCode === null) process.kill(-server.pid, "SIGKILL");
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test("api.html renders every documented path from the packaged Swagger UI", { timeout: 300_000 }, async () => {
  const doc = await (await fetch(`${base}/openapi.json`)).json();
  const documented = Object.keys(doc.paths).sort();
  assert.ok(documented.includes("/metrics") && documented.includes("/health"), documented.join(" "));

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(WAIT_MS);
  const foreign = [];
  const errors = [];
  context.on("request", (req) => {
    const url = req.url();
    if (!url.startsWith(`${base}/`) && !/^(data|blob):/.test(url)) foreign.push(url);
  });
  const page = await context.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
  page.on("pageerror", (err) => errors.push(`uncaught: ${err.message}`));

  await page.goto(`${base}/api.html`);
  await page.waitForSelector("body[data-api-ready='1']");
  await page.waitForSelector(".opblock");
  const rendered = await page.$$eval(".opblock-summary-path", (els) =>
    els.map((e) => e.getAttribute("data-path")));
  for (const p of documented) assert.ok(rendered.includes(p), `${p} not rendered (rendered: ${rendered.join(" ")})`);
  assert.equal(await page.locator("#api-error").isHidden(), true);
  // The title and the version come from the document, not the page.
  assert.match(await page.locator(".info .title").textContent(), /medimg/);

  // Try it out: GET /health from the page, answered by a worker.
  const health = page.locator("#operations-service-get_health");
  await health.locator(".opblock-summary").click();
  await health.locator("button.try-out__btn").click();
  await health.locator("button.execute").click();
  const code = health.locator(".live-responses-table tr.response td.response-col_status").first();
  await code.waitFor();
  assert.equal((await code.textContent()).trim(), "200");
  assert.match(await health.locator(".live-responses-table .microlight").first().textContent(), /"healthy"/);

  assert.deepEqual(foreign, [], "requests to other origins");
  assert.deepEqual(errors, [], "console errors");
  await context.close();
});
