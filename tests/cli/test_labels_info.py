"""`medimg labels` and `medimg info`: counts, names and geometry checked
against numpy/nibabel and the shipped label dictionary."""
import json
import os

import nibabel as nib
import numpy as np
import pytest

from conftest import LABEL_DICT, label_volume, run, write_nifti

NAMES = {v: k for k, v in json.load(open(LABEL_DICT)).items()}


@pytest.mark.parametrize("dtype", ["int16", "uint8", ">i4", "float32"])
def test_labels_json_counts(tmp_path, dtype):
    d = label_volume(dtype=dtype)
    src = tmp_path / "all.nii.gz"
    write_nifti(src, d)
    p = run("labels", src, "--json", check=0)
    doc = json.loads(p.stdout)
    ids, counts = np.unique(d, return_counts=True)
    want = {int(i): int(c) for i, c in zip(ids, counts) if i != 0}
    assert [l["id"] for l in doc["labels"]] == sorted(want)
    assert {l["id"]: l["voxels"] for l in doc["labels"]} == want
    zooms = nib.load(str(src)).header.get_zooms()
    for l in doc["labels"]:
        assert l["name"] == NAMES.get(l["id"], str(l["id"]))
        # volume_ml is rounded to 3 decimals in the JSON.
        assert l["volume_ml"] == pytest.approx(l["voxels"] * np.prod(zooms) / 1000, abs=6e-4)
    assert doc["voxel_filename"] == "all.nii.gz"
    assert doc["dims"] == list(d.shape)
    assert doc["pixdim"] == pytest.approx(list(zooms), rel=1e-6)
    assert doc["datatype"] == np.dtype(dtype).name
    # Compact, as the /labels route answers.
    assert b", " not in p.stdout and b": " not in p.stdout


def test_labels_sidecar_overrides_names(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    (tmp_path / "seg.nii.gz.labels.json").write_text('{"6": "my aorta", "40": "forty"}')
    doc = json.loads(run("labels", src, "--json", check=0).stdout)
    names = {l["id"]: l["name"] for l in doc["labels"]}
    assert names[6] == "my aorta" and names[40] == "forty" and names[1] == "liver"


def test_labels_dict_flag_and_env(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    custom = tmp_path / "dict.json"
    custom.write_text('{"alpha": 1, "beta": 5}')
    doc = json.loads(run("labels", src, "--json", "--label-dict", custom, check=0).stdout)
    names = {l["id"]: l["name"] for l in doc["labels"]}
    assert names[1] == "alpha" and names[5] == "beta"
    import os
    env = dict(os.environ, MEDIMG_LABEL_DICT=str(custom))
    doc = json.loads(run("labels", src, "--json", check=0, env=env).stdout)
    assert {l["id"]: l["name"] for l in doc["labels"]}[5] == "beta"
    p = run("labels", src, "--label-dict", tmp_path / "missing.json")
    assert p.returncode == 1 and "missing.json" in p.stderr


def test_labels_table(tmp_path):
    d = np.zeros((10, 10, 10), np.int16)
    d[:2] = 6
    d[5, 5, 5] = 1
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    out = run("labels", src, check=0).stdout.decode()
    assert "aorta" in out and "liver" in out and "200" in out


def test_uint64_ids_above_int64(tmp_path):
    """Every uint64 value is an id: listed, printed and selected exactly."""
    top, half = 2**64 - 1, 2**63
    d = np.zeros((4, 3, 2), np.uint64)
    d[0, 0, 0] = top
    d[1, 0, 0] = half
    d[2, 0, 0] = half - 1
    d[3, 2, 1] = 5
    src = tmp_path / "huge.nii"
    write_nifti(src, d.astype(">u8"))
    p = run("labels", src, "--json", check=0)
    assert b"18446744073709551615" in p.stdout
    doc = json.loads(p.stdout)
    assert [l["id"] for l in doc["labels"]] == [5, half - 1, half, top]
    assert doc["labels"][3]["name"] == str(top) and doc["labels"][3]["bbox"] == [[0, 0, 0], [0, 0, 0]]
    rows = run("labels", src, check=0).stdout.decode().splitlines()
    assert [r.split()[0] for r in rows[2:6]] == ["5", str(half - 1), str(half), str(top)]
    id_ends = {len(r) - len(r.lstrip()) + len(r.split()[0]) for r in rows[1:6]}
    assert len(id_ends) == 1, "id column not aligned"
    assert json.loads(run("info", src, "--json", check=0).stdout)["datatype"] == "uint64"
    out = tmp_path / "out.nii.gz"
    run("filter", src, out, "--labels", f"5,{half},{top - 1}-{top}", check=0)
    got = np.asanyarray(nib.load(str(out)).dataobj)
    assert got.dtype.kind == "u" and got.dtype.itemsize == 8   # big-endian, as the input
    assert np.array_equal(got, np.where((d == 5) | (d >= half), d, np.uint64(0)))
    p = run("filter", src, out, "--labels", str(top + 1))
    assert p.returncode == 2 and "18446744073709551615" in p.stderr


def test_labels_errors(tmp_path):
    p = run("labels", tmp_path / "missing.nii.gz")
    assert p.returncode == 1 and p.stderr.startswith("medimg labels: ")
    bad = tmp_path / "bad.nii"
    bad.write_bytes(b"\0" * 400)
    assert run("labels", bad).returncode == 3
    assert run("labels").returncode == 2
    assert run("labels", bad, "--frobnicate").returncode == 2
    assert b"--json" in run("labels", "--help", check=0).stdout


@pytest.mark.parametrize("cls,name", [(nib.Nifti1Image, "a.nii.gz"), (nib.Nifti2Image, "b.nii"),
                                      (nib.Nifti1Pair, "c.img")])
def test_info_json_matches_nibabel(tmp_path, cls, name):
    d = label_volume(shape=(7, 6, 5))
    src = tmp_path / name
    write_nifti(src, d, cls=cls)
    doc = json.loads(run("info", src, "--json", check=0).stdout)
    img = nib.load(str(src))
    assert doc["dims"] == list(d.shape)
    assert doc["pixdim"][:3] == pytest.approx(list(img.header.get_zooms()), rel=1e-6)
    np.testing.assert_allclose(np.array(doc["affine"]), img.affine, atol=1e-5)
    assert doc["datatype"] == "int16"
    assert doc["version"] == ("nifti2" if cls is nib.Nifti2Image else "nifti1")
    assert doc["sform_code"] == 2 and doc["qform_code"] == 1


def test_info_text(tmp_path):
    src = tmp_path / "x.nii.gz"
    write_nifti(src, label_volume(shape=(7, 6, 5)).astype(">i2"))
    out = run("info", src, check=0).stdout.decode()
    assert "7 6 5" in out and "big-endian" in out and "int16" in out and "gzip" in out
    assert run("info", tmp_path / "nope.nii").returncode == 1
    assert b"--json" in run("info", "--help", check=0).stdout


# --- --image: per-label intensity statistics ---------------------------------

def test_labels_image_matches_numpy(demo_tree):
    seg = demo_tree / "scans" / "PA00000002_CT.nii.gz"
    ct = demo_tree / "nifti" / "PA00000002_CT.nii.gz"
    doc = json.loads(run("labels", seg, "--image", ct, "--json", check=0).stdout)
    s = np.asarray(nib.load(str(seg)).dataobj)
    v = nib.load(str(ct)).get_fdata()
    assert [l["id"] for l in doc["labels"]] == [int(i) for i in np.unique(s[s != 0])]
    for l in doc["labels"]:
        x = v[s == l["id"]]
        got = l["intensity"]
        assert got["mean"] == pytest.approx(x.mean(), rel=1e-6)
        assert got["sd"] == pytest.approx(x.std(), rel=1e-6)
        assert (got["min"], got["max"]) == (x.min(), x.max())
        for q in (5, 50, 95):
            assert got[f"p{q:02d}"] == np.percentile(x, q, method="lower")
    # The table shows the mean beside each label.
    table = run("labels", seg, "--image", ct, check=0).stdout.decode()
    assert "mean" in table.splitlines()[1]


def test_labels_image_other_grid_exit_3_naming_both(tmp_path, demo_tree):
    seg = demo_tree / "scans" / "PA00000002_CT.nii.gz"
    ct = nib.load(str(demo_tree / "nifti" / "PA00000002_CT.nii.gz"))
    short = tmp_path / "short.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(ct.dataobj)[:, :-1, :], ct.affine), str(short))
    p = run("labels", seg, "--image", short, "--json", check=3)
    assert p.stdout == b""
    assert str(seg) in p.stderr and str(short) in p.stderr and "dims" in p.stderr


def test_labels_image_histogram_bound_from_the_configuration(tmp_path, demo_tree):
    """[limits] max_intensity_bins bounds the histograms (one key for the CLI
    and the worker): the demo CT under its labels needs more than 1,024 bins,
    so that bound refuses it (exit 3, naming both files and the key) whether
    it comes from the environment or an ini, and the default answers."""
    seg = demo_tree / "scans" / "PA00000002_CT.nii.gz"
    ct = demo_tree / "nifti" / "PA00000002_CT.nii.gz"
    env = {**os.environ, "MEDIMG_MAX_INTENSITY_BINS": "1024"}
    p = run("labels", seg, "--image", ct, "--json", check=3, env=env)
    assert p.stdout == b""
    assert str(seg) in p.stderr and str(ct) in p.stderr
    assert "1024" in p.stderr and "max_intensity_bins" in p.stderr
    ini = tmp_path / "medimg.ini"
    ini.write_text("[limits]\nmax_intensity_bins = 1024\n")
    run("labels", seg, "--image", ct, "--json", "--config", ini, check=3)
    bad = run("labels", seg, "--image", ct, env={**os.environ, "MEDIMG_MAX_INTENSITY_BINS": "12"}, check=2)
    assert "max_intensity_bins" in bad.stderr
    run("labels", seg, "--image", ct, "--json", check=0)
