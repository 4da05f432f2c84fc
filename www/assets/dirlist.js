// The one reader of web-server directory listings (lighttpd mod_dirlisting,
// Apache mod_autoindex in table, FancyIndexing <pre> or plain <ul> form):
// the viewer and the home page read fetched listings with it
// (fetch_listing), the styled listing page (listing.js) reads its own
// document. Only links that point one level below the listed directory
// count, so sort links (?C=N;O=D), the parent link and absolute links
// elsewhere are ignored whatever the markup. Names beginning with "." are
// never entries: both servers hide them from listings and refuse them
// (docs/SECURITY.md).

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

function text(node) {
  return node ? (node.textContent || "").replace(/\u00a0/g, " ").trim() : "";
}

function directory_url(base_url) {
  const base = new URL(base_url, window.location.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return base;
}

// The entry a link names when it points exactly one level below `base` (a
// URL whose path ends in "/"), else null.
function child_entry(href, base) {
  if (!href || href.startsWith("?") || href.startsWith("#")) return null;
  let target;
  try {
    target = new URL(href, base);
  } catch (_) {
    return null;
  }
  if (target.origin !== base.origin || target.search) return null;
  if (!target.pathname.startsWith(base.pathname)) return null;
  const rest = target.pathname.slice(base.pathname.length);
  const is_dir = rest.endsWith("/");
  const segment = is_dir ? rest.slice(0, -1) : rest;
  if (!segment || segment.includes("/")) return null;
  let name;
  try {
    name = decodeURIComponent(segment);
  } catch (_) {
    return null;
  }
  if (name.startsWith(".")) return null; // ".", ".." and hidden names
  return { name, is_dir, href: target.pathname, modified: "", size_text: "", type: "" };
}

// The links below `root` that name an entry, with that entry.
function* linked_entries(root, base) {
  for (const a of root.querySelectorAll("a[href]")) {
    const entry = child_entry(a.getAttribute("href"), base);
    if (entry) yield [a, entry];
  }
}

// Column indices from the header row: lighttpd's classes (n, m, s, t) or
// Apache's header texts.
function column_map(table) {
  const map = {};
  const head = table.querySelector("thead tr") || table.querySelector("tr");
  if (!head) return map;
  head.querySelectorAll("th, td").forEach((c, i) => {
    const t = text(c).toLowerCase();
    if (c.classList.contains("n") || t === "name") map.name = i;
    else if (c.classList.contains("m") || t.includes("modified")) map.modified = i;
    else if (c.classList.contains("s") || t === "size") map.size = i;
    else if (c.classList.contains("t") || t === "type" || t === "description") map.type = i;
  });
  return map;
}

function from_table(table, base) {
  const entries = [];
  const map = column_map(table);
  for (const row of table.querySelectorAll("tr")) {
    const [first] = linked_entries(row, base);
    if (!first) continue;
    const entry = first[1];
    const cells = row.querySelectorAll("td");
    const cell = (key, cls) => {
      const by_class = row.querySelector(`td.${cls}`);
      if (by_class) return text(by_class);
      return map[key] !== undefined && cells[map[key]] ? text(cells[map[key]]) : "";
    };
    entry.modified = cell("modified", "m");
    entry.size_text = cell("size", "s");
    entry.type = cell("type", "t");
    entries.push(entry);
  }
  return entries;
}

// Apache FancyIndexing without HTMLTable: one line per entry, columns
// separated by runs of spaces after the link.
function from_pre(pre, base) {
  const entries = [];
  for (const [a, entry] of linked_entries(pre, base)) {
    let tail = "";
    for (let n = a.nextSibling; n; n = n.nextSibling) {
      if (n.nodeType === 1 && n.tagName !== "A") {
        if (/^(IMG|HR)$/.test(n.tagName)) break;
        tail += n.textContent;
        continue;
      }
      if (n.nodeType === 1) break;
      const t = n.textContent;
      const nl = t.indexOf("\n");
      tail += nl >= 0 ? t.slice(0, nl) : t;
      if (nl >= 0) break;
    }
    const parts = tail.trim().split(/\s{2,}/);
    entry.modified = parts[0] || "";
    entry.size_text = parts[1] || "";
    entry.type = parts.slice(2).join(" ");
    entries.push(entry);
  }
  return entries;
}

function from_links(root, base) {
  return [...linked_entries(root, base)].map(([, entry]) => entry);
}

// The first occurrence of a name counts (icon and name links of one entry).
function unique(entries) {
  const seen = new Map();
  for (const e of entries) if (!seen.has(e.name)) seen.set(e.name, e);
  return [...seen.values()];
}

// The entries of a listing document, in the server's order:
// [{name, is_dir, href, modified, size_text, type}] (the last three as the
// server wrote them, "" when it did not), and the element they came from.
// A table's rows, else a <pre>'s lines, else a <ul>'s links, else any link
// of the page.
export function read_listing(doc, base_url) {
  const base = directory_url(base_url);
  for (const table of doc.querySelectorAll("table")) {
    const found = from_table(table, base);
    if (found.length) return { entries: unique(found), source: table };
  }
  for (const pre of doc.querySelectorAll("pre")) {
    const found = from_pre(pre, base);
    if (found.length) return { entries: unique(found), source: pre };
  }
  const list = doc.querySelector("ul");
  const from_list = list ? from_links(list, base) : [];
  if (from_list.length) return { entries: unique(from_list), source: list };
  const root = doc.body || doc.documentElement || doc;
  return { entries: unique(from_links(root, base)), source: null };
}

// A fetched listing's entries, sorted by name (numbers in names by value).
export function parse_listing(html, base_url) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  return read_listing(doc, base_url).entries
    .sort((x, y) => x.name.localeCompare(y.name, undefined, { numeric: true }));
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
