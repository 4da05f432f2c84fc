// Reads a web-server directory listing (lighttpd mod_dirlisting, Apache
// mod_autoindex in table, FancyIndexing <pre> or plain <ul> form) and returns
// its direct children. Only links that point one level below the listed
// directory count, so sort links (?C=N;O=D), the parent link and absolute
// links elsewhere are ignored whatever the markup.

export class HttpError extends Error {
  constructor(status, url, detail, code) {
    super(detail || `HTTP ${status} for ${url}`);
    this.status = status;
    this.url = url;
    this.detail = detail || "";
    this.code = code || "";
  }
}

// Turns a failed response into an HttpError carrying the server's JSON
// {"detail": …, "error": …} when there is one.
export async function http_error(response, url) {
  let detail = "";
  let code = "";
  const type = response.headers.get("content-type") || "";
  try {
    if (type.includes("json")) {
      const body = await response.json();
      if (body && typeof body.detail === "string") detail = body.detail;
      if (body && typeof body.error === "string") code = body.error;
    }
  } catch (_) {
    // an unreadable body leaves the status line as the message
  }
  const text = detail
    ? `${detail} (HTTP ${response.status} for ${url})`
    : `HTTP ${response.status} ${response.statusText || ""} for ${url}`.replace("  ", " ");
  return new HttpError(response.status, url, text, code);
}

export function parse_listing(html, base_url) {
  const base = new URL(base_url, window.location.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const doc = new DOMParser().parseFromString(html, "text/html");
  const seen = new Map();
  for (const a of doc.querySelectorAll("a[href]")) {
    const raw = a.getAttribute("href");
    if (!raw || raw.startsWith("?") || raw.startsWith("#")) continue;
    let target;
    try {
      target = new URL(raw, base);
    } catch (_) {
      continue;
    }
    if (target.origin !== base.origin || target.search) continue;
    if (!target.pathname.startsWith(base.pathname)) continue;
    const rest = target.pathname.slice(base.pathname.length);
    const is_dir = rest.endsWith("/");
    const segment = is_dir ? rest.slice(0, -1) : rest;
    if (!segment || segment.includes("/")) continue;
    let name;
    try {
      name = decodeURIComponent(segment);
    } catch (_) {
      continue;
    }
    if (name === "." || name === ".." || name.startsWith(".")) continue;
    if (!seen.has(name)) seen.set(name, { name, is_dir, href: target.pathname });
  }
  return [...seen.values()].sort((x, y) => x.name.localeCompare(y.name, undefined, { numeric: true }));
}

export async function fetch_listing(url, options = {}) {
  const response = await fetch(url, { signal: options.signal, headers: { Accept: "text/html" } });
  if (!response.ok) throw await http_error(response, url);
  return parse_listing(await response.text(), url);
}

export const NIFTI_RE = /\.(nii|nii\.gz|hdr|hdr\.gz)$/i;

export function is_nifti(name) {
  return NIFTI_RE.test(name);
}

export function nifti_stem(name) {
  return name.replace(/\.(nii|hdr|img)(\.gz)?$/i, "");
}

// Percent-encodes each segment of a relative path, keeping the slashes.
export function encode_path(rel) {
  return rel.split("/").map(encodeURIComponent).join("/");
}
