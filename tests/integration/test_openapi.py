"""/openapi.json: a valid OpenAPI 3 document (checked by
@apidevtools/swagger-parser from www/node_modules), describing every route
the worker's router registers (`medimg-fcgi --routes`), served as it is by
both web servers, and every documented route answers on them with a status
and content type the document lists; error answers use its error codes."""

import json
import re
import shutil
import subprocess

import pytest

from conftest import PATIENT, SCAN, SOURCE, WORKER

DOC_PATH = SOURCE / "www" / "openapi.json"
NODE = shutil.which("node")
PARSER = SOURCE / "www" / "node_modules" / "@apidevtools" / "swagger-parser"


def document():
    return json.loads(DOC_PATH.read_text())


def shape(pattern):
    """A path with every parameter, one segment or several, as "{}"."""
    return re.sub(r"\{[^}]*\}", "{}", pattern)


@pytest.mark.skipif(not (NODE and PARSER.exists()),
                    reason="node and www/node_modules (npm ci in www/) are needed")
def test_document_is_valid_openapi():
    script = ("const p = require(process.argv[1]);"
              "p.validate(process.argv[2]).then(a => console.log(a.openapi),"
              " e => { console.error(e.message); process.exit(1); });")
    r = subprocess.run([NODE, "-e", script, str(PARSER), str(DOC_PATH)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("3.")


def test_every_router_route_is_documented():
    routes = subprocess.run([str(WORKER), "--routes"], capture_output=True, text=True,
                            check=True, timeout=30).stdout.split()
    assert "/metrics" in routes and "/health" in routes, routes
    paths = document()["paths"]
    shapes = {shape(p): p for p in paths}
    for route in routes:
        assert shape(route) in shapes, f"{route} is not in www/openapi.json"
        item = paths[shapes[shape(route)]]
        # Every dynamic route answers GET, HEAD and OPTIONS (README.md).
        assert {"get", "head", "options"} <= set(item), (route, sorted(item))
    # Query parameters the filter route reads, including map=.
    filt = paths[shapes[shape("/filtered-scans/{pid}/{rest...}")]]["get"]
    names = {resolve(p)["name"] for p in filt["parameters"]}
    assert {"label_ids", "labels", "mode", "map", "crop", "margin"} <= names, names
    labels = paths[shapes[shape("/output/{pid}/{rest...}/labels")]]["get"]
    assert "image" in {resolve(p)["name"] for p in labels["parameters"]}


def resolve(obj, doc=None):
    doc = doc or document()
    while "$ref" in obj:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part]
        obj = node
    return obj


def example_url(path, op):
    """`path` with each path parameter's example, and the required or
    example query parameters of the filter route."""
    query = []
    for p in map(resolve, op.get("parameters", [])):
        example = p.get("schema", {}).get("example", p.get("example"))
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", str(example))
        elif p["in"] == "query" and p["name"] == "label_ids":
            query.append("label_ids=1,5")
    return path + ("?" + "&".join(query) if query else "")


def test_every_documented_route_answers(server, get):
    doc = document()
    served = get("/openapi.json")
    assert served.status == 200
    assert served.header("Content-Type").startswith("application/json")
    assert served.body == DOC_PATH.read_bytes()
    for path, item in doc["paths"].items():
        op = item["get"]
        url = example_url(path, op)
        a = get(url)
        documented = {str(code): resolve(r) for code, r in op["responses"].items()}
        assert str(a.status) in documented, (url, a.status, a.body[:200])
        assert a.status == 200, (url, a.status, a.body[:300])
        types = list(documented["200"].get("content", {}))
        ctype = (a.header("Content-Type") or "").split(";")[0].strip()
        assert any(t.split(";")[0].strip() == ctype for t in types), (url, ctype, types)
        if "head" in item:
            h = get(url, method="HEAD")
            assert h.status == 200 and h.body == b"", (url, h.status)


def test_error_answers_use_documented_codes(server, get):
    doc = document()
    codes = set(doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"])
    base = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz"
    cases = [
        (base + "?label_ids=abc", 400),
        (base + "?label_ids=1&mode=nope", 400),
        (f"/filtered-scans/{PATIENT}/missing.nii.gz?label_ids=1", 404),
        (f"/output/{PATIENT}/notnifti.nii/labels", 415),
        (f"/output/{PATIENT}/badheader.nii/info", 422),
    ]
    item = doc["paths"]["/filtered-scans/{pid}/{path}"]["get"]
    for url, status in cases:
        a = get(url)
        assert a.status == status, (url, a.status, a.body[:200])
        assert a.json()["error"] in codes, (url, a.body)
        assert str(status) in item["responses"] or status in (415, 422)
    a = get("/metrics", method="DELETE")
    assert a.status == 405 and a.json()["error"] in codes
