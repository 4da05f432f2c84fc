// What the browser suites (tests/browser/*.test.mjs) and the viewer benchmark
// (bench/viewer_bench.mjs) share: a `medimg demo` tree, `medimg serve`
// (lighttpd + medimg-fcgi workers) on a free loopback port, Apache with
// apache/medimg.conf (tests/integration/apache_server.py, the one place that
// knows how to start it), and Debian's Chromium through playwright-core.
// Node 18 and later.
import { createRequire } from "node:module";
import { spawn, execFile } from "node:child_process";
import { promisify } from "node:util";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.MEDIMG_SOURCE_DIR || path.resolve(here, "../..");
export const BUILD_DIR = process.env.MEDIMG_BUILD_DIR || path.join(SOURCE_DIR, "build");
export const PYTHON = "/usr/bin/python3";

export const run = promisify(execFile);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// playwright-core is CommonJS in www/node_modules (found from www/, or
// through NODE_PATH as tests/CMakeLists.txt sets it).
export function playwright() {
  return createRequire(path.join(SOURCE_DIR, "www", "package.json"))("playwright-core");
}

// A free loopback port from 15000-19999: below the kernel's ephemeral range
// (so no outgoing connection of a load test running beside us can take it
// before the server binds it) and apart from the ports the Python tests hand
// out (tests/integration/server_process.py, 20000 and up).
function bindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", () => resolve(false));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

export async function free_port() {
  const low = 15000, span = 5000;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = low + ((start + i) % span);
    if (await bindable(port)) return port;
  }
  throw new Error(`no free loopback port in ${low}-${low + span - 1}`);
}

export function medimg_binary(build_dir = BUILD_DIR) {
  const medimg = path.resolve(build_dir, "cli", "medimg");
  if (!fs.existsSync(medimg)) {
    throw new Error(`${medimg} not built (cmake --build ${build_dir} --target medimg_cli medimg-fcgi)`);
  }
  return medimg;
}

// `medimg demo ROOT --size S [--patient P]`: a CT, its VISTA3D-style
// segmentation and the per-label files.
export async function make_demo(data_root, { size, patient, build_dir = BUILD_DIR, timeout = 120_000 } = {}) {
  const args = ["demo", data_root, "--size", size];
  if (patient) args.push("--patient", patient);
  await run(medimg_binary(build_dir), args, { timeout, maxBuffer: 16 << 20 });
}

// Polls GET /health until it answers 200; `alive()` returns an error text
// when the server process has already ended.
export async function wait_for_health(base, { deadline_ms = 90_000, alive = () => "", log = () => "" } = {}) {
  const deadline = Date.now() + deadline_ms;
  let last = "";
  while (Date.now() < deadline) {
    const dead = alive();
    if (dead) throw new Error(`${dead}:\n${log()}`);
    try {
      const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(300);
  }
  throw new Error(`server at ${base} not healthy within ${deadline_ms} ms (${last}):\n${log()}`);
}

function tail(file) {
  try {
    return fs.readFileSync(file, "utf8").slice(-4000);
  } catch (_) {
    return "(no log)";
  }
}

// Ends a process group started with `detached: true`: SIGTERM, then SIGKILL
// after `grace_ms`.
async function end_group(child, grace_ms = 15_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const signal_group = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch (_) {
      // already gone
    }
  };
  signal_group("SIGTERM");
  const deadline = Date.now() + grace_ms;
  while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(100);
  if (child.exitCode === null && child.signalCode === null) signal_group("SIGKILL");
}

// `medimg serve` on a free port, serving `www` (default: this tree's www/)
// and `data_root`; its output goes to `log`. Its own process group, so
// lighttpd and the workers end with it.
export async function start_medimg_serve({ data_root, log, www = path.join(SOURCE_DIR, "www"), cwd,
  build_dir = BUILD_DIR, deadline_ms = 90_000 }) {
  const medimg = medimg_binary(build_dir);
  const port = await free_port();
  const base = `http://127.0.0.1:${port}`;
  const fd = fs.openSync(log, "a");
  const child = spawn(medimg, ["serve", "--host", "127.0.0.1", "--port", String(port), "--data-root", data_root], {
    cwd: cwd || path.dirname(log),
    env: { ...process.env, MEDIMG_WWW_ROOT: path.resolve(www) },
    detached: true,
    stdio: ["ignore", fd, fd],
  });
  fs.closeSync(fd);
  const server = {
    kind: "lighttpd",
    base,
    data_root,
    child,
    log: () => tail(log),
    // synchronous, for process.on("exit")
    kill() {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch (_) {
        // already gone
      }
    },
    stop: () => end_group(child),
  };
  try {
    await wait_for_health(base, {
      deadline_ms,
      alive: () => (child.exitCode !== null ? `medimg serve exited with ${child.exitCode}` : ""),
      log: server.log,
    });
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

// Apache with apache/medimg.conf in front of a medimg-fcgi pool, started by
// tests/integration/apache_server.py and kept until stop(). Resolves to
// null when Apache or its modules are not installed. `data_root` is the
// tree as it is at start (Apache may serve a hard-linked mirror of it).
const APACHE_PY = `
import json, os, signal, sys
build, source, data_root = sys.argv[1:4]
sys.path.insert(0, os.path.join(source, "tests", "integration"))
from apache_server import ApacheServer, apache_available
if not apache_available():
    print(json.dumps({"unavailable": True}), flush=True)
    sys.exit(0)
server = ApacheServer(build, source, data_root)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
try:
    server.start(timeout=90)
    print(json.dumps({"base": server.base_url, "served_data_root": str(server.served_data_root)}), flush=True)
    sys.stdin.read()
finally:
    server.stop()
`;

export async function start_apache({ data_root, log, build_dir = BUILD_DIR, source_dir = SOURCE_DIR, deadline_ms = 120_000 }) {
  const fd = fs.openSync(log, "a");
  const child = spawn(PYTHON, ["-c", APACHE_PY, build_dir, source_dir, data_root], {
    detached: true,
    stdio: ["pipe", "pipe", fd],
  });
  fs.closeSync(fd);
  let out = "";
  const info = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Apache not started within ${deadline_ms} ms:\n${tail(log)}`)), deadline_ms);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const line = out.split("\n")[0];
      if (out.includes("\n")) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(line));
        } catch (e) {
          reject(new Error(`unexpected output from the Apache starter: ${line}`));
        }
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the Apache starter exited with ${code}:\n${tail(log)}`));
    });
  }).catch(async (e) => {
    await end_group(child, 30_000);
    throw e;
  });
  if (info.unavailable) return null;
  return {
    kind: "apache",
    base: info.base,
    data_root: info.served_data_root,
    child,
    log: () => tail(log),
    // closing stdin lets the starter stop Apache and its workers itself
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end();
      const deadline = Date.now() + 30_000;
      while (child.exitCode === null && child.signalCode === null && Date.now() < deadline) await sleep(100);
      await end_group(child);
    },
  };
}

// Chromium flags of every browser suite: headless, no background traffic;
// `webgl` adds SwiftShader (software WebGL 2, what NiiVue needs without a GPU).
export const CHROMIUM_ARGS = [
  "--headless=new", "--no-sandbox", "--disable-gpu",
  "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];
const WEBGL_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader"];

export async function launch_chromium({ webgl = true, timeout = 120_000 } = {}) {
  const { chromium } = playwright();
  return chromium.launch({
    executablePath: process.env.MEDIMG_CHROMIUM || "/usr/bin/chromium",
    timeout,
    args: webgl ? [...CHROMIUM_ARGS, ...WEBGL_ARGS] : CHROMIUM_ARGS,
  });
}
