"""Every file of tests/data/malformed/ served from a data root and requested
through both web servers: `/filtered-scans/…` and `/output/…/labels`.

Accepted files: 200, the body read by nibabel equals
np.where(np.isin(ref, ids), ref, 0) and the container follows the file's
name. Rejected files: the documented 4xx with a JSON `error` id; never a
5xx."""
import shutil
import sys

import numpy as np
import pytest

from conftest import SOURCE, request, selected_kinds, start_server

sys.path.insert(0, str(SOURCE / "tests" / "data"))
import make_malformed as mm  # noqa: E402

MALFORMED = SOURCE / "tests" / "data" / "malformed"
CASES = mm.load_manifest(MALFORMED)
ACCEPT = [c for c in CASES if c["expect"] == "accept"]
REJECT = [c for c in CASES if c["expect"] == "reject"]
PID = "PAHOSTILE"


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-files") / "output"
    scans = root / PID / "scans"
    scans.mkdir(parents=True)
    for c in CASES:
        for n in c["files"]:
            shutil.copyfile(MALFORMED / n, scans / n)
    return root


@pytest.fixture(scope="module", params=selected_kinds())
def server(request, hostile_root):
    s = start_server(request.param, hostile_root, cors_origins="*")
    yield s
    s.stop()


def get(server, path):
    return request(server.base_url, path, timeout=60)


def assert_json_error(a, case):
    assert a.status < 500, (case["name"], a)
    assert a.status == case["status"], (case["note"], a)
    assert a.header("Content-Type", ).startswith("application/json"), a
    doc = a.json()
    assert doc["error"] in case["errors"], (case["note"], doc)
    assert doc["detail"]


def params(cases, check):
    return [pytest.param(c, id=c["name"], marks=mm.marks_for(c["name"], check)) for c in cases]


@pytest.mark.parametrize("case", params(ACCEPT, "keep"))
def test_filter_accepts(server, case):
    a = get(server, f"/filtered-scans/{PID}/{case['name']}?label_ids={case['ids']}")
    assert a.status == 200, (case["note"], a)
    assert (a.body[:2] == b"\x1f\x8b") == case["out_gzip"], "container does not follow the name"
    assert int(a.header("Content-Length")) == len(a.body)
    img, got = mm.read_volume(a.body)
    want = mm.expected(case)
    assert mm.same_values(got, want), (case["note"], np.unique(got), np.unique(want))
    if case["name"] in mm.REGION_CASES:
        src = mm.single_bytes((MALFORMED / case["name"]).read_bytes())
        assert mm.extension_region(mm.single_bytes(a.body)) == mm.expected_extension_region(src), \
            "extension region not copied verbatim (flag 0 only over an invalid chain)"


@pytest.mark.parametrize("case", params([c for c in ACCEPT if c["name"] in mm.MASK_CASES], "mask"))
def test_filter_mask_accepts(server, case):
    a = get(server, f"/filtered-scans/{PID}/{case['name']}?label_ids={case['ids']}&mode=mask")
    assert a.status == 200, (case["note"], a)
    img, got = mm.read_volume(a.body)
    assert img.get_data_dtype() == np.uint8
    assert mm.same_values(got, mm.expected(case, "mask")), case["note"]


@pytest.mark.parametrize("case", params(ACCEPT, "labels"))
def test_labels_accepts(server, case):
    a = get(server, f"/output/{PID}/scans/{case['name']}/labels")
    assert a.status == 200, (case["note"], a)
    ref = mm.reference(case["ref"])
    want = sorted({int(v) for v in np.unique(ref) if v != 0})
    assert [e["id"] for e in a.json()["labels"]] == want


@pytest.mark.parametrize("case", REJECT, ids=[c["name"] for c in REJECT])
def test_filter_rejects(server, case):
    a = get(server, f"/filtered-scans/{PID}/{case['name']}?label_ids={case['ids']}")
    assert_json_error(a, case)


@pytest.mark.parametrize("case", REJECT, ids=[c["name"] for c in REJECT])
def test_labels_rejects(server, case):
    a = get(server, f"/output/{PID}/scans/{case['name']}/labels")
    assert_json_error(a, case)


def test_rejects_leave_no_cache_entry(server):
    """Refused inputs never leave a result (or a temporary) in the cache."""
    before = {p for d in server.cache_dirs() for p in d.rglob("*.nii*")}
    for case in REJECT[:20]:
        get(server, f"/filtered-scans/{PID}/{case['name']}?label_ids=1-3,6")
    after = {p for d in server.cache_dirs() for p in d.rglob("*.nii*")}
    assert after == before
    leftovers = [p for d in server.cache_dirs() for p in d.rglob("*") if p.is_file()
                 and (".tmp" in p.name or p.name.startswith("."))]
    assert leftovers == []
