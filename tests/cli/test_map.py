"""`medimg filter --map`: remapped outputs read back by nibabel against
np.select over the same rules, for every integer datatype, with the output
datatype of README.md; mask, crop and refusals."""
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import SOURCE_DIR, load, run, write_nifti

sys.path.insert(0, str(SOURCE_DIR / "tests" / "data"))
import label_maps  # noqa: E402
from label_maps import CASES, INT_DTYPES  # noqa: E402


def map_args(label_ids, map_text):
    return (["--labels", label_ids] if label_ids is not None else []) + ["--map", map_text]


def filtered(tmp_path, d, *args, suffix=".nii.gz"):
    """Writes d with nibabel, filters it with args; (input path, output image, its array)."""
    src = tmp_path / f"seg{suffix}"
    write_nifti(src, d)
    out = tmp_path / f"out{suffix}"
    run("filter", src, out, *args, check=0)
    return (src, *load(out))


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("label_ids,map_text,what", CASES)
def test_map_matches_np_select(tmp_path, dtype, label_ids, map_text, what):
    d = label_maps.volume(dtype)
    src, out_img, got = filtered(tmp_path, d, *map_args(label_ids, map_text))
    in_img, _ = load(src)
    assert got.dtype == label_maps.expected_dtype(dtype, label_ids, map_text), what
    np.testing.assert_array_equal(got.astype(np.int64), label_maps.expected(d, label_ids, map_text))
    # Never through float: the header holds no scaling nibabel would apply.
    # (nibabel moves a file's scaling from the image's header to its dataobj.)
    assert (out_img.dataobj.slope, out_img.dataobj.inter) == (1.0, 0.0)
    np.testing.assert_array_equal(out_img.affine, in_img.affine)


def test_widening_uint8_to_int16(tmp_path):
    d = label_maps.volume("uint8")
    _, img, got = filtered(tmp_path, d, "--map", "6:300,7:-7", suffix=".nii")
    assert img.header.get_data_dtype() == np.dtype("int16")
    assert set(np.unique(got)) == {0, 300, -7}
    assert np.array_equal(got == 300, d == 6) and np.array_equal(got == -7, d == 7)


def test_big_endian_int32(tmp_path):
    d = label_maps.volume(">i4")
    _, img, got = filtered(tmp_path, d, "--labels", "1-100", "--map", "100:-1,5:70000",
                           suffix=".nii")
    assert img.header.endianness == ">"
    assert got.dtype == np.dtype(">i4")
    np.testing.assert_array_equal(got, label_maps.expected(d, "1-100", "100:-1,5:70000"))


def test_mask_ignores_new_ids(tmp_path):
    d = label_maps.volume("int16")
    _, _, got = filtered(tmp_path, d, "--map", "28-32:2,6:300", "--mode", "mask")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.isin(d, [6, 28, 30, 32]).astype(np.uint8))


@pytest.mark.parametrize("dtype", ["uint8", "int32"])
def test_crop_to_the_selection(tmp_path, dtype):
    d = label_maps.volume(dtype)
    src, img, got = filtered(tmp_path, d, "--map", "100:-5", "--crop")
    box = label_maps.crop_box(d == 100)
    np.testing.assert_array_equal(got, label_maps.expected(d, None, "100:-5")[box])
    # The first kept voxel keeps its world coordinate.
    corner = [s.start for s in box]
    in_img = nib.load(str(src))
    np.testing.assert_allclose(img.affine @ [0, 0, 0, 1], in_img.affine @ [*corner, 1], atol=1e-4)


def test_scaled_input_new_ids_exact(tmp_path):
    # int16 stored with slope 2: id 6 is stored 3; 5 has no stored value, so
    # the output is unscaled and every id exact.
    d = label_maps.volume("int16")
    src = tmp_path / "scaled.nii"
    write_nifti(src, d)
    raw = bytearray(src.read_bytes())
    raw[112:120] = np.array([2.0, 0.0], dtype="<f4").tobytes()   # scl_slope, scl_inter
    src.write_bytes(bytes(raw))
    ids = np.asarray(nib.load(str(src)).get_fdata()).astype(np.int64)
    assert np.array_equal(ids, 2 * d.astype(np.int64))
    out = tmp_path / "out.nii"
    run("filter", src, out, "--labels", "2,12", "--map", "12:5", check=0)
    got_img, _ = load(out)
    got = np.asanyarray(got_img.dataobj)
    np.testing.assert_array_equal(got, label_maps.expected(ids, "2,12", "12:5"))
    out2 = tmp_path / "out2.nii"
    run("filter", src, out2, "--labels", "2,12", "--map", "12:-4", check=0)
    kept = nib.load(str(out2))
    assert kept.dataobj.slope == 2   # -4 is stored -2: scaling kept
    np.testing.assert_array_equal(kept.dataobj.get_unscaled(),
                                  label_maps.expected(ids, "2,12", "12:-4") // 2)
    np.testing.assert_array_equal(np.asanyarray(kept.dataobj),
                                  label_maps.expected(ids, "2,12", "12:-4"))


@pytest.mark.parametrize("map_text,words", [
    ("6", ["map rule 1", "':'"]),
    ("6:1,,7:2", ["map rule 2", "empty"]),
    ("x:1", ["source"]),
    ("6:1.5", ["new id"]),
    ("1-10:1,5:2", ["both match id 5"]),
])
def test_bad_map_is_usage_error(tmp_path, map_text, words):
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, label_maps.volume("int16"))
    before = sorted(p.name for p in tmp_path.iterdir())
    p = run("filter", src, tmp_path / "o.nii.gz", "--map", map_text)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("medimg filter: "), p.stderr
    for w in words:
        assert w in p.stderr, p.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_map_sources_count_against_the_limit(tmp_path):
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, label_maps.volume("int16"))
    p = run("filter", src, tmp_path / "o.nii.gz", "--map", "0-200000:1")
    assert p.returncode == 2, p.stderr
    assert "more than the limit" in p.stderr
