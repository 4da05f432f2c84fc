"""/labels?image=: per-label intensity statistics through the web server to
real medimg-fcgi workers, against numpy on the `medimg demo` CT and its
segmentation (nibabel's get_fdata: the scaled values), scaled images with
either slope sign, grid mismatches (dims, affine), bad image= values, and
the cache key that follows both files."""

import os
import shutil
import urllib.parse
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import PATIENT, SCAN

SEG = f"scans/{SCAN}.nii.gz"
CT = f"nifti/{SCAN}.nii.gz"
EXTRA = "intensity"   # folder of this module's own files under the patient


def served(server):
    """The tree the workers read (Apache may serve a readable mirror)."""
    return Path(getattr(server, "served_data_root", server.data_root))


def labels_url(seg, image):
    return (f"/output/{PATIENT}/{seg}/labels?image=" + urllib.parse.quote(image, safe="/"))


def expected(seg_path, image_path):
    """numpy's answer: population sd, method='lower' percentiles."""
    seg = np.asarray(nib.load(str(seg_path)).dataobj)
    img = nib.load(str(image_path)).get_fdata()
    out = {}
    for i in np.unique(seg[seg != 0]):
        v = img[seg == i]
        v = v[np.isfinite(v)]
        out[int(i)] = {"voxels": int((seg == i).sum()), "mean": v.mean(), "sd": v.std(),
                       "min": v.min(), "max": v.max(),
                       **{f"p{q:02d}": np.percentile(v, q, method="lower") for q in (5, 50, 95)}}
    return out


def check_against_numpy(body, want):
    assert [l["id"] for l in body["labels"]] == sorted(want)
    for l in body["labels"]:
        w, got = want[l["id"]], l["intensity"]
        assert l["voxels"] == w["voxels"]
        assert list(got) == ["mean", "sd", "min", "max", "p05", "p50", "p95"]
        assert got["mean"] == pytest.approx(w["mean"], rel=1e-6, abs=1e-9), l["id"]
        assert got["sd"] == pytest.approx(w["sd"], rel=1e-6, abs=1e-9), l["id"]
        for k in ("min", "max", "p05", "p50", "p95"):
            assert got[k] == w[k], (l["id"], k)


@pytest.fixture(scope="module")
def extra(server):
    """Scaled copies of the CT and grids that differ, beside the demo tree."""
    pdir = served(server) / PATIENT
    d = pdir / EXTRA
    d.mkdir(mode=0o755, exist_ok=True)
    ct = nib.load(str(pdir / CT))
    raw = np.asarray(ct.dataobj)
    for name, slope, inter in (("scaled.nii.gz", 0.5, -1000.0), ("negative.nii", -1.5, 20.0)):
        img = nib.Nifti1Image(raw, ct.affine, ct.header.copy())
        img.header.set_slope_inter(slope, inter)
        nib.save(img, str(d / name))
    f32 = nib.Nifti1Image(raw.astype(np.float32) + np.float32(0.25), ct.affine)
    nib.save(f32, str(d / "float.nii.gz"))
    nib.save(nib.Nifti1Image(raw[:, :, :-1], ct.affine), str(d / "short.nii.gz"))
    moved = ct.affine.copy()
    moved[0, 3] += 0.01
    nib.save(nib.Nifti1Image(raw, moved), str(d / "moved.nii.gz"))
    near = ct.affine.copy()
    near[1, 3] += 0.0004
    nib.save(nib.Nifti1Image(raw, near), str(d / "near.nii.gz"))
    (d / ".hidden.nii.gz").write_bytes((pdir / CT).read_bytes())
    (d / "text.nii").write_bytes(b"not an image at all\n" * 30)
    yield d
    shutil.rmtree(d)


def test_ct_statistics_match_numpy(server, get):
    a = get(labels_url(SEG, CT))
    assert a.status == 200, a
    assert a.header("Content-Type").startswith("application/json")
    body = a.json()
    pdir = served(server) / PATIENT
    want = expected(pdir / SEG, pdir / CT)
    assert len(want) >= 3
    check_against_numpy(body, want)
    # The rest of the answer is /labels' own.
    plain = get(f"/output/{PATIENT}/{SEG}/labels").json()
    for l in plain["labels"]:
        assert "intensity" not in l
    assert [{k: v for k, v in l.items() if k != "intensity"} for l in body["labels"]] == plain["labels"]
    assert {k: v for k, v in body.items() if k != "labels"} == \
        {k: v for k, v in plain.items() if k != "labels"}


@pytest.mark.parametrize("name", ["scaled.nii.gz", "negative.nii"])
def test_scaled_images_in_scaled_units(server, get, extra, name):
    a = get(labels_url(SEG, f"{EXTRA}/{name}"))
    assert a.status == 200, a
    want = expected(served(server) / PATIENT / SEG, extra / name)
    check_against_numpy(a.json(), want)


def test_float_image_within_half_a_bin(server, get, extra):
    a = get(labels_url(SEG, f"{EXTRA}/float.nii.gz"))
    assert a.status == 200, a
    want = expected(served(server) / PATIENT / SEG, extra / "float.nii.gz")
    for l in a.json()["labels"]:
        w, got = want[l["id"]], l["intensity"]
        assert got["mean"] == pytest.approx(w["mean"], rel=1e-6)
        assert got["sd"] == pytest.approx(w["sd"], rel=1e-6)
        assert (got["min"], got["max"]) == (w["min"], w["max"])
        half_bin = (w["max"] - w["min"]) / (2 * 4096)
        for k in ("p05", "p50", "p95"):
            assert abs(got[k] - w[k]) <= half_bin, (l["id"], k)


@pytest.mark.parametrize("name, needle", [
    ("short.nii.gz", "dims"),
    ("moved.nii.gz", "mm"),
])
def test_other_grid_is_422_geometry_mismatch(server, get, extra, name, needle):
    a = get(labels_url(SEG, f"{EXTRA}/{name}"))
    assert a.status == 422, a
    body = a.json()
    assert body["error"] == "geometry_mismatch"
    assert needle in body["detail"]


def test_within_tolerance_is_the_same_grid(server, get, extra):
    a = get(labels_url(SEG, f"{EXTRA}/near.nii.gz"))
    assert a.status == 200, a
    check_against_numpy(a.json(), expected(served(server) / PATIENT / SEG, extra / "near.nii.gz"))


@pytest.mark.parametrize("image, status", [
    (f"{EXTRA}/.hidden.nii.gz", 403),
    (f"{EXTRA}/../../{PATIENT}/{CT}", 403),
    ("../PA99999999/nifti/x.nii.gz", 403),
    (f"{EXTRA}/missing.nii.gz", 404),
    (f"{EXTRA}/text.nii", 415),
    ("", 400),
    ("/etc/passwd", None),
])
def test_bad_image_values(server, get, extra, image, status):
    a = get(labels_url(SEG, image))
    if status is None:   # an absolute path: refused as a path, never read
        assert a.status in (400, 403, 404), a
        assert b"root:" not in a.body
    else:
        assert a.status == status, a
    assert a.header("Content-Type").startswith("application/json")
    body = a.json()
    assert body["error"] and body["detail"]


def test_cache_follows_the_image(server, get, extra):
    """Same query, changed image file: a new answer and a new ETag."""
    target = extra / "changing.nii.gz"
    shutil.copyfile(extra / "scaled.nii.gz", target)
    url = labels_url(SEG, f"{EXTRA}/changing.nii.gz")
    first = get(url)
    assert first.status == 200, first
    again = get(url, headers={"If-None-Match": first.header("ETag")})
    assert again.status == 304
    tmp = extra / "changing.tmp.nii.gz"
    nib.save(nib.load(str(extra / "negative.nii")), str(tmp))
    os.replace(tmp, target)
    second = get(url)
    assert second.status == 200
    assert second.header("ETag") != first.header("ETag")
    check_against_numpy(second.json(), expected(served(server) / PATIENT / SEG, target))
    # And the answer without image= is a different key again.
    plain = get(f"/output/{PATIENT}/{SEG}/labels")
    assert plain.header("ETag") not in (first.header("ETag"), second.header("ETag"))


def test_truncated_image_is_422(server, get):
    """Same grid, but the image's gzip stops halfway: a 4xx, never a 5xx."""
    a = get(labels_url("scans/plain.nii", "scans/broken.nii.gz"))
    assert a.status == 422, a
    assert a.json()["error"] in ("bad_gzip", "truncated_data")


def test_label_map_as_its_own_image(server, get):
    """Every label's values are its id: mean = min = max = every percentile."""
    a = get(labels_url("scans/plain.nii", "scans/plain.nii"))
    assert a.status == 200, a
    body = a.json()
    assert [l["id"] for l in body["labels"]] == [6, 10, 133]
    for l in body["labels"]:
        i = float(l["id"])
        assert l["intensity"] == {"mean": i, "sd": 0.0, "min": i, "max": i,
                                  "p05": i, "p50": i, "p95": i}
