/* Directory listings of /output/ served by lighttpd (mod_dirlisting,
   dir-listing.external-js) or Apache (mod_autoindex, IndexHeadInsert /
   HeaderName). The server's markup (lighttpd's table, Apache's FancyIndexing
   table or <pre>, or a plain <ul>) is read by dirlist.js, the listing reader
   the viewer uses too; this script renders one table from it: breadcrumbs,
   icons, human-readable sizes, sortable columns and a "view" link that opens
   NIfTI files in the medimg viewer.
   A classic script (the server's listing injects it); it imports the
   dirlist.js module that lies beside it. */
(function () {
  "use strict";

  var VIEWER = "/viewer.html";
  var DATA_PREFIX = "/output/";
  var NIFTI = /\.(nii|nii\.gz|hdr|hdr\.gz|img|img\.gz)$/i;
  var VIEWABLE = /\.(nii|nii\.gz|hdr|hdr\.gz)$/i;
  var MONTHS = { jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11 };
  var UNITS = { "": 1, B: 1, K: 1024, M: 1048576, G: 1073741824, T: 1099511627776 };

  function base_path() {
    var p = window.location.pathname;
    return p.endsWith("/") ? p : p + "/";
  }

  // "2.8K", "120M", "1.2G", "2889", "- ": bytes (approximate when the
  // server abbreviated them) and the text to show.
  function parse_size(s) {
    var m = /^(\d+(?:\.\d+)?)\s*([BKMGT]?)(?:i?B)?$/i.exec((s || "").trim());
    if (!m) return { bytes: null, text: "" };
    var unit = m[2].toUpperCase();
    var bytes = Math.round(parseFloat(m[1]) * UNITS[unit]);
    if (unit === "" || unit === "B") return { bytes: bytes, text: human_size(bytes) };
    // lighttpd and Apache round abbreviated sizes down: keep their precision.
    return { bytes: bytes, text: m[1] + " " + unit + "iB" };
  }

  function human_size(bytes) {
    if (bytes < 1024) return bytes + " B";
    var units = ["KiB", "MiB", "GiB", "TiB"];
    var v = bytes;
    var i = -1;
    do {
      v /= 1024;
      i += 1;
    } while (v >= 1024 && i < units.length - 1);
    return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
  }

  // "2026-Nov-25 16:46:12" (lighttpd), "2026-11-25 16:46" (Apache), "25-Nov-2026 16:46".
  function parse_date(s) {
    var m = /(\d{4})-(\w{2,3})-(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?/.exec(s || "");
    var y, mo, d;
    if (m) {
      y = +m[1];
      mo = /^\d+$/.test(m[2]) ? +m[2] - 1 : MONTHS[m[2].toLowerCase()];
      d = +m[3];
    } else {
      m = /(\d{1,2})-(\w{3})-(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?/.exec(s || "");
      if (!m) return null;
      d = +m[1];
      mo = MONTHS[m[2].toLowerCase()];
      y = +m[3];
    }
    if (mo === undefined) return null;
    return new Date(y, mo, d, +m[4], +m[5], +(m[6] || 0)).getTime();
  }

  // --- icons (inline SVG, no fonts) -------------------------------------------
  var SVG_NS = "http://www.w3.org/2000/svg";
  var ICONS = {
    folder: "M1.5 3.5h4l1.5 1.5h7.5v8.5h-13z",
    nifti: "M3 2.5h7l3 3v8h-10z M5 8h6 M5 10.5h6 M8 6v7",
    json: "M3 2.5h7l3 3v8h-10z M6.5 7c-1 0-1 .5-1 1.25s-.5 1-.75 1c.25 0 .75.25.75 1s0 1.25 1 1.25 M9.5 7c1 0 1 .5 1 1.25s.5 1 .75 1c-.25 0-.75.25-.75 1s0 1.25-1 1.25",
    file: "M3 2.5h7l3 3v8h-10z M10 2.5v3h3",
    up: "M8 13V3 M4 7l4-4 4 4"
  };

  function icon(kind) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("class", "icon icon-" + kind);
    svg.setAttribute("aria-hidden", "true");
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[kind]);
    svg.appendChild(path);
    return svg;
  }

  function kind_of(entry) {
    if (entry.is_dir) return "folder";
    if (NIFTI.test(entry.name)) return "nifti";
    if (/\.json$/i.test(entry.name)) return "json";
    return "file";
  }

  // --- viewer links ---------------------------------------------------------------
  function data_path() {
    var p = base_path();
    var at = p.indexOf(DATA_PREFIX);
    if (at < 0) return null;
    var parts = p.slice(at + DATA_PREFIX.length).split("/").filter(Boolean);
    try {
      return parts.map(decodeURIComponent);
    } catch (e) {
      return null;
    }
  }

  function viewer_link(entry) {
    var parts = data_path();
    if (!parts) return null;
    if (parts.length === 0) {
      return entry.is_dir ? VIEWER + "?patient=" + encodeURIComponent(entry.name) : null;
    }
    if (entry.is_dir || !VIEWABLE.test(entry.name)) return null;
    var rel = parts.slice(1).concat([entry.name]).join("/");
    var key = parts[1] === "nifti" ? "image" : "seg";
    return VIEWER + "?patient=" + encodeURIComponent(parts[0]) + "&" + key + "=" + encodeURIComponent(rel).replace(/%2F/g, "/");
  }

  // --- rendering --------------------------------------------------------------------
  function breadcrumbs() {
    var nav = document.createElement("nav");
    nav.className = "breadcrumbs";
    nav.setAttribute("aria-label", "Breadcrumbs");
    var home = document.createElement("a");
    home.href = "/";
    home.textContent = "medimg";
    nav.appendChild(home);
    var parts = base_path().split("/").filter(Boolean);
    var href = "/";
    for (var i = 0; i < parts.length; i++) {
      href += parts[i] + "/";
      var sep = document.createElement("span");
      sep.className = "sep";
      sep.textContent = "/";
      nav.appendChild(sep);
      var name;
      try {
        name = decodeURIComponent(parts[i]);
      } catch (e) {
        name = parts[i];
      }
      var node;
      if (i === parts.length - 1) {
        node = document.createElement("span");
        node.setAttribute("aria-current", "page");
      } else {
        node = document.createElement("a");
        node.href = href;
      }
      node.textContent = name;
      nav.appendChild(node);
    }
    return nav;
  }

  var sort_state = { key: "name", dir: 1 };

  function compare(a, b) {
    if (a.is_dir !== b.is_dir) return a.is_dir ? -1 : 1;
    var k = sort_state.key;
    var d = 0;
    if (k === "size") d = (a.size === null ? -1 : a.size) - (b.size === null ? -1 : b.size);
    else if (k === "modified") d = (a.time === null ? 0 : a.time) - (b.time === null ? 0 : b.time);
    if (d === 0) d = a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" });
    return d * sort_state.dir;
  }

  function render_rows(tbody, entries) {
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    var sorted = entries.slice().sort(compare);
    var parent = document.createElement("tr");
    parent.className = "parent";
    var pc = document.createElement("td");
    pc.colSpan = 4;
    var pa = document.createElement("a");
    pa.href = "../";
    pa.appendChild(icon("up"));
    pa.appendChild(document.createTextNode(" Parent directory"));
    pc.appendChild(pa);
    parent.appendChild(pc);
    if (base_path() !== "/") tbody.appendChild(parent);
    for (var i = 0; i < sorted.length; i++) {
      var e = sorted[i];
      var tr = document.createElement("tr");
      tr.className = e.is_dir ? "dir" : "file";
      tr.setAttribute("data-name", e.name);
      var tn = document.createElement("td");
      tn.className = "name";
      var a = document.createElement("a");
      a.href = e.href;
      a.appendChild(icon(kind_of(e)));
      var label = document.createElement("span");
      label.textContent = e.name + (e.is_dir ? "/" : "");
      a.appendChild(label);
      tn.appendChild(a);
      var view = viewer_link(e);
      if (view) {
        var v = document.createElement("a");
        v.className = "view";
        v.href = view;
        v.textContent = "view";
        v.title = "Open in the viewer";
        tn.appendChild(v);
      }
      var tm = document.createElement("td");
      tm.className = "modified";
      tm.textContent = e.modified;
      var ts = document.createElement("td");
      ts.className = "size";
      ts.textContent = e.is_dir ? "" : e.size_display;
      if (e.size !== null && !e.is_dir) ts.title = e.size_text;
      var tt = document.createElement("td");
      tt.className = "type";
      tt.textContent = e.is_dir ? "folder" : e.type;
      tr.appendChild(tn);
      tr.appendChild(tm);
      tr.appendChild(ts);
      tr.appendChild(tt);
      tbody.appendChild(tr);
    }
  }

  function build(entries) {
    var table = document.createElement("table");
    table.className = "medimg-listing";
    var thead = document.createElement("thead");
    var hr = document.createElement("tr");
    var cols = [["name", "Name"], ["modified", "Modified"], ["size", "Size"], ["type", "Type"]];
    var tbody = document.createElement("tbody");
    var buttons = [];
    cols.forEach(function (col) {
      var th = document.createElement("th");
      th.scope = "col";
      th.className = col[0];
      if (col[0] === "type") {
        th.textContent = col[1];
      } else {
        var b = document.createElement("button");
        b.type = "button";
        b.textContent = col[1];
        b.setAttribute("data-sort", col[0]);
        b.addEventListener("click", function () {
          sort_state.dir = sort_state.key === col[0] ? -sort_state.dir : 1;
          sort_state.key = col[0];
          update_headers();
          render_rows(tbody, entries);
        });
        th.appendChild(b);
        buttons.push(th);
      }
      hr.appendChild(th);
    });
    function update_headers() {
      buttons.forEach(function (th) {
        var key = th.firstChild.getAttribute("data-sort");
        if (key === sort_state.key) th.setAttribute("aria-sort", sort_state.dir > 0 ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      });
    }
    thead.appendChild(hr);
    table.appendChild(thead);
    table.appendChild(tbody);
    update_headers();
    render_rows(tbody, entries);
    return table;
  }

  function enhance(reader) {
    var entries = reader.read_listing(document, window.location.href).entries;
    for (var i = 0; i < entries.length; i++) {
      var size = entries[i].is_dir ? { bytes: null, text: "" } : parse_size(entries[i].size_text);
      entries[i].size = size.bytes;
      entries[i].size_display = size.text;
      entries[i].time = parse_date(entries[i].modified);
    }
    var wrap = document.createElement("main");
    wrap.className = "medimg-wrap";
    wrap.appendChild(breadcrumbs());
    wrap.appendChild(build(entries));
    if (entries.length === 0) {
      var empty = document.createElement("p");
      empty.className = "empty";
      empty.textContent = "This folder is empty.";
      wrap.appendChild(empty);
    }
    document.body.insertBefore(wrap, document.body.firstChild);
    document.body.classList.add("medimg-enhanced");
    if (!document.querySelector('meta[name="viewport"]')) {
      var meta = document.createElement("meta");
      meta.name = "viewport";
      meta.content = "width=device-width, initial-scale=1";
      document.head.appendChild(meta);
    }
  }

  // Listings have no favicon of their own; an empty one avoids a 404.
  if (!document.querySelector('link[rel~="icon"]')) {
    var fav = document.createElement("link");
    fav.rel = "icon";
    fav.href = "data:,";
    document.head.appendChild(fav);
  }

  var here = document.currentScript && document.currentScript.src;
  import(new URL("dirlist.js", here || new URL("/assets/", window.location.href)).href).then(function (reader) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () {
        enhance(reader);
      });
    } else {
      enhance(reader);
    }
  }, function (e) {
    console.error("medimg listing: cannot load dirlist.js: " + e);
  });
})();
