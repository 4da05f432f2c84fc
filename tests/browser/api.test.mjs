// The API page (www/api.html) in real headless Chromium, served by
// `medimg serve` (lighttpd + medimg-fcgi): Swagger UI from the packaged
// swagger-ui-dist renders every path of /openapi.json, loads nothing from
// another origin, and "Try it out" on /health gets the worker's answer.
//
//   MEDIMG_BUILD_DIR=build MEDIMG_SOURCE_DIR=. NODE_PATH=www/node_modules \
//     node --test tests/browser/api.test.mjs
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { make_demo, start_medimg_serve, launch_chromium } from "./harness.mjs";

const WAIT_MS = 120_000;

let base = "";
let tmp = "";
let server = null;
let browser = null;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "medimg-api-page-"));
  const data_root = path.join(tmp, "data");
  await make_demo(data_root, { size: "32x32x20", patient: "PA00000002" });
  server = await start_medimg_serve({ data_root, log: path.join(tmp, "serve.log") });
  base = server.base;
  browser = await launch_chromium({ webgl: false });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
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
