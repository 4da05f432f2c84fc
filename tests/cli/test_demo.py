"""`medimg demo`: the tree layout, and every file read back by nibabel with
the expected ids, names, geometry and CT values."""
import json

import numpy as np

from conftest import LABEL_DICT, load, run

NAMES = {v: k for k, v in json.load(open(LABEL_DICT)).items()}


def test_layout(demo_tree):
    pid = demo_tree.name
    assert (demo_tree / "nifti" / f"{pid}_CT.nii.gz").is_file()
    assert (demo_tree / "scans" / f"{pid}_CT.nii.gz").is_file()
    original = demo_tree / "voxels" / f"{pid}_CT" / "original"
    assert (original / "all.nii.gz").is_file()
    names = sorted(p.name for p in original.iterdir())
    assert len(names) >= 11
    assert "liver.nii.gz" in names and "aorta.nii.gz" in names
    # No temporaries or hidden files left behind.
    assert not [p for p in demo_tree.rglob(".*")]


def test_segmentation_ids_and_names(demo_tree):
    pid = demo_tree.name
    seg_img, seg = load(demo_tree / "scans" / f"{pid}_CT.nii.gz")
    all_img, all_ = load(demo_tree / "voxels" / f"{pid}_CT" / "original" / "all.nii.gz")
    assert seg.dtype == np.int16 and seg.shape == (64, 64, 40)
    np.testing.assert_array_equal(seg, all_)
    ids = set(np.unique(seg).tolist()) - {0}
    assert len(ids) >= 10
    assert all(i in NAMES for i in ids)
    assert {1, 6} <= ids
    original = demo_tree / "voxels" / f"{pid}_CT" / "original"
    per_structure = [p for p in original.iterdir() if p.name != "all.nii.gz"]
    assert len(per_structure) == len(ids)
    for p in per_structure:
        img, d = load(p)
        present = set(np.unique(d).tolist()) - {0}
        assert len(present) == 1, p.name
        (i,) = present
        assert p.name == NAMES[i].replace(" ", "_") + ".nii.gz"
        assert d.dtype == np.int16
        np.testing.assert_array_equal(d, np.where(seg == i, seg, 0))
        np.testing.assert_array_equal(img.affine, seg_img.affine)


def test_ct_geometry_and_values(demo_tree):
    pid = demo_tree.name
    ct_img, ct = load(demo_tree / "nifti" / f"{pid}_CT.nii.gz")
    seg_img, seg = load(demo_tree / "scans" / f"{pid}_CT.nii.gz")
    assert ct.dtype == np.int16 and ct.shape == seg.shape
    np.testing.assert_allclose(ct_img.affine, seg_img.affine)
    h = ct_img.header
    assert h["qform_code"] == 1 and h["sform_code"] == 1
    assert h.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(h.get_zooms(), (6.4, 6.4, 25.0), rtol=1e-6)
    np.testing.assert_allclose(ct_img.get_qform(), ct_img.get_sform(), atol=1e-4)
    assert ct[0, 0, 0] < -900                            # air in the corner
    lungs = np.isin(seg, [28, 29, 30, 31, 32])
    assert lungs.any() and ct[lungs].mean() < -700
    spine = np.isin(seg, [33, 34, 35, 36, 37])
    assert spine.any() and ct[spine].mean() > 500
    liver = seg == 1
    assert 50 < ct[liver].mean() < 200


def test_seed_changes_noise_not_layout(tmp_path):
    run("demo", tmp_path / "a", "--size", "24x24x16", "--seed", "1", "--quiet", check=0)
    run("demo", tmp_path / "b", "--size", "24x24x16", "--seed", "2", "--patient", "PX1",
        "--quiet", check=0)
    _, a = load(tmp_path / "a" / "PA00000002" / "nifti" / "PA00000002_CT.nii.gz")
    _, b = load(tmp_path / "b" / "PX1" / "nifti" / "PX1_CT.nii.gz")
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_usage_errors(tmp_path):
    for args in (["--size", "64x64"], ["--size", "0x4x4"], ["--patient", "../x"], [],
                 ["--seed", "x"]):
        p = run("demo", *([tmp_path] if args != [] else []), *args)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith("medimg demo: ")
    assert not list(tmp_path.iterdir())
    assert b"--patient" in run("demo", "--help", check=0).stdout
