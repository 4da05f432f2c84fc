"""Dynamic routes through the web server to real medimg-fcgi workers:
filters read back by nibabel, /labels and /info against nibabel, every error
class of README.md, cached results with Range and 304, CORS."""

import gzip
import io
import threading

import nibabel as nib
import numpy as np
import pytest

from conftest import ALLOWED_ORIGIN, PATIENT, SCAN, request

VOXELS = f"voxels/{SCAN}/original/all.nii.gz"


def load_nifti(body):
    """nibabel image from an answer's bytes (gzip or plain)."""
    raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    fh = nib.FileHolder(fileobj=io.BytesIO(raw))
    return nib.Nifti1Image.from_file_map({"header": fh, "image": fh})


def source(server, rel):
    return nib.load(str(server.data_root / PATIENT / rel))


def expected_keep(img, ids):
    d = np.asarray(img.dataobj)
    return np.where(np.isin(d, ids), d, 0)


def check_json_error(a, status):
    assert a.status == status, a
    assert a.header("Content-Type").startswith("application/json"), a
    body = a.json()
    assert isinstance(body.get("detail"), str) and body["detail"]
    assert isinstance(body.get("error"), str) and body["error"]
    assert a.header("X-Content-Type-Options") == "nosniff"
    return body


def test_health(server, get):
    a = get("/health")
    assert a.status == 200
    body = a.json()
    assert body["status"] == "healthy"
    assert body["service"] == "image-server"
    assert "version" in body
    assert a.header("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize("url, rel", [
    (f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1,3-5", f"scans/{SCAN}.nii.gz"),
    (f"/filtered-scans/{PATIENT}/{VOXELS}?label_ids=1,3-5", VOXELS),
])
def test_filter_both_url_forms(server, get, url, rel):
    a = get(url)
    assert a.status == 200, a
    assert a.header("Content-Type") == "application/gzip"
    assert int(a.header("Content-Length")) == len(a.body)
    name = rel.rsplit("/", 1)[1]
    assert a.header("Content-Disposition") == f'attachment; filename="filtered_{name}"'
    assert a.header("X-Content-Type-Options") == "nosniff"
    assert a.body[:2] == b"\x1f\x8b"
    out = load_nifti(a.body)
    src = source(server, rel)
    ids = [1, 3, 4, 5]
    got = np.asarray(out.dataobj)
    assert got.dtype == np.asarray(src.dataobj).dtype
    assert np.array_equal(got, expected_keep(src, ids))
    assert np.allclose(out.affine, src.affine)


def test_filter_present_ids_kept_exactly(server, get):
    src = source(server, f"scans/{SCAN}.nii.gz")
    present = sorted(int(v) for v in np.unique(np.asarray(src.dataobj)) if v != 0)
    ids = present[:3]
    a = get(f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids={','.join(map(str, ids))}")
    assert a.status == 200
    got = np.asarray(load_nifti(a.body).dataobj)
    assert set(np.unique(got)) <= set(ids) | {0}
    assert np.array_equal(got, expected_keep(src, ids))


def test_filter_plain_nii_gives_plain(server, get):
    a = get(f"/filtered-scans/{PATIENT}/plain.nii?label_ids=6")
    assert a.status == 200, a
    assert a.header("Content-Type") == "application/octet-stream"
    assert a.body[:2] != b"\x1f\x8b"
    assert a.header("Content-Disposition") == 'attachment; filename="filtered_plain.nii"'
    out = load_nifti(a.body)
    assert np.array_equal(np.asarray(out.dataobj), expected_keep(source(server, "scans/plain.nii"), [6]))


def test_filter_pair_gives_gzip(server, get):
    a = get(f"/filtered-scans/{PATIENT}/pair.img?label_ids=10,133")
    if a.status == 404:
        a = get(f"/filtered-scans/{PATIENT}/pair.hdr?label_ids=10,133")
    assert a.status == 200, a
    assert a.header("Content-Type") == "application/gzip"
    assert a.body[:2] == b"\x1f\x8b"
    out = load_nifti(a.body)
    src = nib.load(str(server.data_root / PATIENT / "scans" / "pair.img"))
    assert np.array_equal(np.asarray(out.dataobj), expected_keep(src, [10, 133]))


def test_filter_empty_set_is_all_zero(server, get):
    a = get(f"/filtered-scans/{PATIENT}/plain.nii?label_ids=")
    assert a.status == 200, a
    assert not np.asarray(load_nifti(a.body).dataobj).any()


def test_filter_head(server, get):
    url = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=2"
    full = get(url)
    a = get(url, method="HEAD")
    assert a.status == 200
    assert a.body == b""
    assert int(a.header("Content-Length")) == len(full.body)


def test_filter_cached_range_and_304(server, get):
    url = f"/filtered-scans/{PATIENT}/{VOXELS}?label_ids=1-5"
    first = get(url)
    assert first.status == 200
    etag = first.header("ETag")
    assert etag
    second = get(url)
    assert second.status == 200 and second.body == first.body
    r = get(url, headers={"Range": "bytes=100-199"})
    assert r.status == 206, r
    assert r.body == first.body[100:200]
    s = get(url, headers={"Range": "bytes=-50"})
    assert s.status == 206 and s.body == first.body[-50:]
    n = get(url, headers={"If-None-Match": etag})
    assert n.status == 304
    assert n.body == b""


def test_concurrent_identical_requests_share_one_result(server):
    # A label set no other test asks for: a new cache entry.
    url = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=2,4,7-9"
    answers = [None, None]

    def go(i):
        answers[i] = request(server.base_url, url)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(a is not None and a.status == 200 for a in answers), answers
    assert answers[0].body == answers[1].body
    assert answers[0].header("ETag") == answers[1].header("ETag")
    cache_dirs = getattr(server, "cache_dirs", None)
    if cache_dirs:
        files = [p for d in cache_dirs() for p in d.rglob("*")
                 if p.is_file() and p.read_bytes() == answers[0].body]
        assert len(files) == 1, files


# --- /labels and /info -------------------------------------------------------

def test_labels_json_matches_nibabel(server, get):
    a = get(f"/output/{PATIENT}/{VOXELS}/labels")
    assert a.status == 200, a
    assert a.header("Content-Type").startswith("application/json")
    body = a.json()
    src = source(server, VOXELS)
    d = np.asarray(src.dataobj)
    ids, counts = np.unique(d[d != 0], return_counts=True)
    assert [l["id"] for l in body["labels"]] == [int(i) for i in ids]
    assert [l["voxels"] for l in body["labels"]] == [int(c) for c in counts]
    assert body["voxel_filename"] == "all.nii.gz"
    assert body["dims"] == list(d.shape)
    assert np.allclose(body["pixdim"], src.header.get_zooms()[:3], atol=1e-5)
    assert body["datatype"] == str(d.dtype)
    vox_ml = float(np.prod(src.header.get_zooms()[:3])) / 1000.0
    for l, c in zip(body["labels"], counts):
        assert l["volume_ml"] == pytest.approx(c * vox_ml, rel=1e-3, abs=1e-3)
        assert isinstance(l["name"], str)


def test_labels_head(server, get):
    a = get(f"/output/{PATIENT}/{VOXELS}/labels", method="HEAD")
    assert a.status == 200
    assert a.body == b""


def test_info_json_matches_nibabel(server, get):
    a = get(f"/output/{PATIENT}/scans/plain.nii/info")
    assert a.status == 200, a
    body = a.json()
    src = source(server, "scans/plain.nii")
    assert body["dims"][:3] == list(src.shape)
    assert np.allclose(body["pixdim"][:3], src.header.get_zooms()[:3])
    assert body["datatype"] == "int16"
    assert np.allclose(np.array(body["affine"]), src.affine)


# --- errors -------------------------------------------------------------------

@pytest.mark.parametrize("path, status", [
    (f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz", 400),                        # no label_ids
    (f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=abc", 400),
    (f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1&mode=bogus", 400),
    (f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?labels=no-such-organ", 400),
    (f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1-2000000", 413),
    (f"/filtered-scans/{PATIENT}/nothere.nii.gz?label_ids=1", 404),
    ("/filtered-scans/PA_NOBODY/x.nii.gz?label_ids=1", 404),
    (f"/filtered-scans/{PATIENT}/.env?label_ids=1", 403),
    (f"/filtered-scans/{PATIENT}/scans/escape.nii.gz?label_ids=1", 403),
    (f"/filtered-scans/{PATIENT}/%2e%2e/%2e%2e/etc/passwd?label_ids=1", None),
    (f"/filtered-scans/{PATIENT}/notes/readme.txt?label_ids=1", 415),
    (f"/output/{PATIENT}/notes/readme.txt/labels", 415),
    (f"/output/{PATIENT}/nothere.nii.gz/labels", 404),
    (f"/output/{PATIENT}/.env/info", 403),
    (f"/output/{PATIENT}/scans/broken.nii.gz/labels", 422),
    (f"/output/{PATIENT}/notnifti.nii/info", 415),
    (f"/filtered-scans/{PATIENT}/broken.nii.gz?label_ids=1", 422),
    (f"/output/{PATIENT}/badheader.nii/info", 422),
])
def test_error_classes(server, get, path, status):
    a = get(path)
    if status is None:
        # traversal: normalised away by the web server or refused by the worker
        assert a.status in (400, 403, 404), a
        assert b"root:x:0:0" not in a.body
        return
    body = check_json_error(a, status)
    assert server.secret.strip() not in a.body
    assert body["detail"]


def test_method_not_allowed(server):
    for method in ("POST", "PUT", "DELETE"):
        a = request(server.base_url, f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1",
                    method=method, headers={"Content-Length": "0"})
        check_json_error(a, 405)


# --- CORS on dynamic routes --------------------------------------------------

def test_cors_any_dynamic(server, get):
    a = get("/health", headers={"Origin": "http://elsewhere.example"})
    assert a.header("Access-Control-Allow-Origin") == "*"
    assert a.header("Access-Control-Allow-Credentials") is None


def test_cors_preflight_dynamic(server):
    a = request(server.base_url, f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1",
                method="OPTIONS", headers={"Origin": "http://elsewhere.example",
                                           "Access-Control-Request-Method": "GET"})
    assert a.status in (200, 204), a
    assert a.header("Access-Control-Allow-Origin") == "*"
    assert "GET" in (a.header("Access-Control-Allow-Methods") or "")


def test_cors_allow_list_dynamic(strict_server):
    url = strict_server.base_url
    a = request(url, f"/output/{PATIENT}/{VOXELS}/labels", headers={"Origin": ALLOWED_ORIGIN})
    assert a.status == 200
    assert a.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
    assert a.header("Access-Control-Allow-Credentials") == "true"
    assert "origin" in (a.header("Vary") or "").lower()
    assert len(a.headers.get_all("Access-Control-Allow-Origin")) == 1
    b = request(url, f"/output/{PATIENT}/{VOXELS}/labels", headers={"Origin": "http://evil.example"})
    assert b.header("Access-Control-Allow-Origin") is None
    p = request(url, "/health", method="OPTIONS", headers={
        "Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET"})
    assert p.status in (200, 204)
    assert p.header("Access-Control-Allow-Origin") == ALLOWED_ORIGIN
