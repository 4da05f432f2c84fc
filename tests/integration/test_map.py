"""`map=` on the filter routes through lighttpd and Apache to real workers:
every integer datatype read back by nibabel against np.select over the same
rules, the output datatype of README.md, mask, crop, the cache key and
ETag, and the 4xx answers for bad maps."""
import gzip
import io
import shutil
import sys
from urllib.parse import quote

import nibabel as nib
import numpy as np
import pytest

from conftest import PATIENT, SOURCE

sys.path.insert(0, str(SOURCE / "tests" / "data"))
import label_maps  # noqa: E402
from label_maps import CASES, INT_DTYPES  # noqa: E402

FOLDER = "map-tests"


def load_nifti(body):
    raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    fh = nib.FileHolder(fileobj=io.BytesIO(raw))
    return nib.Nifti1Image.from_file_map({"header": fh, "image": fh})


@pytest.fixture(scope="module")
def maps(tree):
    """seg_{dtype}.nii.gz for every integer datatype, below the patient."""
    folder = tree["root"] / PATIENT / FOLDER
    folder.mkdir()
    volumes = {}
    for dtype in INT_DTYPES:
        d = label_maps.volume(dtype)
        nib.save(nib.Nifti1Image(d, np.diag([0.8, 0.8, 2.5, 1.0]), dtype=d.dtype),
                 str(folder / f"seg_{dtype}.nii.gz"))
        volumes[dtype] = d
    yield volumes
    shutil.rmtree(folder)


def url(dtype, query):
    return f"/filtered-scans/{PATIENT}/{FOLDER}/seg_{dtype}.nii.gz?{query}"


def query(label_ids, map_text, extra=""):
    q = f"map={quote(map_text)}"
    if label_ids is not None:
        q = f"label_ids={quote(label_ids)}&" + q
    return q + extra


@pytest.mark.parametrize("label_ids,map_text,what", CASES)
def test_map_matches_np_select(server, get, maps, label_ids, map_text, what):
    for dtype, d in maps.items():
        a = get(url(dtype, query(label_ids, map_text)))
        assert a.status == 200, (dtype, a)
        img = load_nifti(a.body)
        got = np.asanyarray(img.dataobj)
        assert got.dtype == label_maps.expected_dtype(dtype, label_ids, map_text), (dtype, what)
        np.testing.assert_array_equal(got.astype(np.int64),
                                      label_maps.expected(d, label_ids, map_text), err_msg=dtype)
        # (nibabel moves a file's scaling from the image's header to its dataobj.)
        assert (img.dataobj.slope, img.dataobj.inter) == (1.0, 0.0), dtype


def test_widening_uint8_to_int16(server, get, maps):
    a = get(url("uint8", "map=6:300,7:-7"))
    assert a.status == 200, a
    got = np.asanyarray(load_nifti(a.body).dataobj)
    assert got.dtype == np.dtype("int16")
    d = maps["uint8"]
    assert np.array_equal(got == 300, d == 6) and np.array_equal(got == -7, d == 7)
    assert set(np.unique(got)) == {0, 300, -7}


def test_mask_and_crop(server, get, maps):
    d = maps["int16"]
    a = get(url("int16", "map=28-32:2,6:300&mode=mask"))
    assert a.status == 200, a
    got = np.asanyarray(load_nifti(a.body).dataobj)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.isin(d, [6, 28, 30, 32]).astype(np.uint8))
    c = get(url("int16", "map=100:-5&crop=1"))
    assert c.status == 200, c
    img = load_nifti(c.body)
    box = label_maps.crop_box(d == 100)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), label_maps.expected(d, None, "100:-5")[box])
    assert img.shape == tuple(s.stop - s.start for s in box)


def test_map_is_part_of_the_cache_key_and_etag(server, get, maps):
    base = url("int16", "label_ids=1-7")
    plain = get(base)
    one = get(base + "&map=6:1")
    two = get(base + "&map=6:2")
    spaced = get(base + "&map=" + quote(" 6 : 2 "))
    for a in (plain, one, two, spaced):
        assert a.status == 200, a
    etags = [a.header("ETag") for a in (plain, one, two)]
    assert len(set(etags)) == 3, etags
    assert spaced.header("ETag") == two.header("ETag")   # the same map, normalised
    assert spaced.body == two.body
    d = maps["int16"]
    assert np.array_equal(np.asanyarray(load_nifti(one.body).dataobj),
                          label_maps.expected(d, "1-7", "6:1"))
    assert np.array_equal(np.asanyarray(load_nifti(two.body).dataobj),
                          label_maps.expected(d, "1-7", "6:2"))
    # Asked again (now from the cache): the same bytes, and 304 on its ETag.
    again = get(base + "&map=6:1")
    assert again.body == one.body
    assert get(base + "&map=6:1", headers={"If-None-Match": one.header("ETag")}).status == 304


@pytest.mark.parametrize("q,status,code,words", [
    ("map=6", 400, "bad_parameter", ["map rule 1", "':'"]),
    ("map=6:1,,7:2", 400, "bad_parameter", ["map rule 2", "empty"]),
    ("map=x:1", 400, "bad_parameter", ["source"]),
    ("map=6:9223372036854775808", 400, "bad_parameter", ["new id"]),
    ("map=1-10:1,5:2", 400, "bad_parameter", ["both match id 5"]),
    ("label_ids=1&map=6:", 400, "bad_parameter", ["new id"]),
    ("mode=keep", 400, "bad_label_ids", ["label_ids is required", "map"]),
    ("map=0-200000:1", 413, "too_many_label_ids", ["limit"]),
])
def test_bad_maps(server, get, maps, q, status, code, words):
    a = get(url("int16", q))
    assert a.status == status, a
    assert a.header("Content-Type").startswith("application/json"), a
    body = a.json()
    assert body["error"] == code, body
    for w in words:
        assert w in body["detail"], body
