"""`medimg filter`: output checked voxel by voxel and field by field with
nibabel, for every label-capable datatype, both byte orders and every
container; failures give the documented exit code and leave no file."""
import gzip
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pytest

from conftest import load, run, write_nifti, label_volume

IDS = [1, 5, 10, 11, 12]
IDS_ARG = "1,5,10-12"

# Header fields a filter must not change (README.md).
KEPT_FIELDS = ["pixdim", "qform_code", "sform_code", "xyzt_units", "descrip", "quatern_b",
               "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z", "srow_x",
               "srow_y", "srow_z", "intent_code", "dim"]


def same_field(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True)
    return np.array_equal(a, b)


def assert_header_kept(out_img, in_img, fields=KEPT_FIELDS):
    for f in fields:
        assert same_field(out_img.header[f], in_img.header[f]), f


def files_in(d):
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize("dtype", ["int16", "uint8", "int32", "uint16", "int64", "float32",
                                   "int8", "uint32", "float64"])
def test_keep_matches_numpy(tmp_path, dtype):
    d = label_volume(dtype=dtype)
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    out = tmp_path / "out.nii.gz"
    run("filter", src, out, "--labels", IDS_ARG, check=0)
    in_img, _ = load(src)
    out_img, got = load(out)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, np.where(np.isin(d, IDS), d, 0))
    np.testing.assert_array_equal(out_img.affine, in_img.affine)
    assert_header_kept(out_img, in_img)
    assert open(out, "rb").read(2) == b"\x1f\x8b"


def test_big_endian_written_back_big_endian(tmp_path):
    d = label_volume().astype(">i2")
    src = tmp_path / "be.nii"
    write_nifti(src, d)
    assert nib.load(str(src)).header.endianness == ">"
    out = tmp_path / "be_out.nii"
    run("filter", src, out, "--labels", IDS_ARG, check=0)
    out_img, got = load(out)
    assert out_img.header.endianness == ">"
    assert open(out, "rb").read(4) == (348).to_bytes(4, "big")
    np.testing.assert_array_equal(got, np.where(np.isin(d, IDS), d, 0))
    assert_header_kept(out_img, nib.load(str(src)))


def test_plain_nii_gives_plain_output(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii"
    write_nifti(src, d)
    out = tmp_path / "out.nii"
    run("filter", src, out, "--labels", "5", check=0)
    raw = open(out, "rb").read()
    assert raw[:2] != b"\x1f\x8b"
    _, got = load(out)
    np.testing.assert_array_equal(got, np.where(d == 5, d, 0))


def test_gzip_named_nii_is_read(tmp_path):
    """The container is sniffed from the bytes, not the name (§10)."""
    d = label_volume()
    real = tmp_path / "seg.nii.gz"
    write_nifti(real, d)
    lying = tmp_path / "lying.nii"
    shutil.copy(real, lying)
    out = tmp_path / "out.nii.gz"
    run("filter", lying, out, "--labels", "6", check=0)
    np.testing.assert_array_equal(load(out)[1], np.where(d == 6, d, 0))


@pytest.mark.parametrize("cls", [nib.Nifti1Pair, nib.AnalyzeImage])
def test_pairs_become_nii_gz(tmp_path, cls):
    d = label_volume()
    src = tmp_path / "pair.img"
    write_nifti(src, d, cls=cls)
    assert (tmp_path / "pair.hdr").exists()
    in_img, _ = load(tmp_path / "pair.hdr")
    for given in ("pair.hdr", "pair.img"):
        out = tmp_path / f"from_{given}.nii.gz"
        run("filter", tmp_path / given, out, "--labels", IDS_ARG, check=0)
        assert open(out, "rb").read(2) == b"\x1f\x8b"
        out_img, got = load(out)
        assert isinstance(out_img, nib.Nifti1Image)
        np.testing.assert_array_equal(got, np.where(np.isin(d, IDS), d, 0))
        np.testing.assert_allclose(out_img.affine, in_img.affine, atol=1e-5)
        assert out_img.header["magic"] == b"n+1"


def test_batch_names_pairs_nii_gz(tmp_path):
    d = label_volume()
    write_nifti(tmp_path / "pair.img", d, cls=nib.Nifti1Pair)
    outdir = tmp_path / "out"
    run("filter", "--labels", "1", "--outdir", outdir, tmp_path / "pair.hdr", check=0)
    assert files_in(outdir) == ["filtered_pair.nii.gz"]


def test_mask_mode(tmp_path):
    d = label_volume(dtype=np.int32)
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    out = tmp_path / "mask.nii.gz"
    run("filter", src, out, "--labels", IDS_ARG, "--mode", "mask", check=0)
    out_img, got = load(out)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.isin(d, IDS).astype(np.uint8))
    np.testing.assert_array_equal(out_img.affine, nib.load(str(src)).affine)


@pytest.mark.parametrize("margin", [None, 0, 2, 50])
def test_crop_keeps_world_coordinates(tmp_path, margin):
    d = np.zeros((30, 28, 20), np.int16)
    d[5:9, 10:20, 3:7] = 5
    d[12, 11, 8] = 11
    d[20:25, 2:4, 15:18] = 40      # not selected
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    out = tmp_path / "crop.nii.gz"
    extra = [] if margin is None else ["--margin", margin]
    run("filter", src, out, "--labels", "5,11", "--crop", *extra, check=0)
    in_img = nib.load(str(src))
    out_img, got = load(out)
    m = margin or 0
    lo = np.maximum(np.array([5, 10, 3]) - m, 0)
    hi = np.minimum(np.array([12, 19, 8]) + m, np.array(d.shape) - 1)
    expect = np.where(np.isin(d, [5, 11]), d, 0)[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
    np.testing.assert_array_equal(got, expect)
    for ijk in [(0, 0, 0), (1, 2, 3), tuple(np.array(got.shape) - 1)]:
        v = np.array([*ijk, 1.0])
        w = np.array([*(np.array(ijk) + lo), 1.0])
        np.testing.assert_allclose(out_img.affine @ v, in_img.affine @ w, atol=1e-3)
    # The qform, read on its own, agrees too.
    np.testing.assert_allclose(out_img.get_qform() @ [0, 0, 0, 1], in_img.get_qform() @ [*lo, 1],
                               atol=1e-3)



def _f32_w2(b, c, d):
    q = np.array([b, c, d], np.float32).astype(np.float64)
    return 1.0 - q @ q


# Stored (b, c, d) where the qform rotation's rule decides (lib/nifti/geometry.hpp):
# a exactly 0, a^2 tiny but positive (a kept, not rounded to 0), and
# (b, c, d) a little longer than 1 (a = 0, normalised).
@pytest.mark.parametrize("bcd,w2_band", [
    ((0.0, 0.0, 1.0), (0.0, 0.0)),
    ((0.6, 0.0, 0.79999995), (1e-9, 1e-7)),
    ((0.6, 0.0, 0.8), (-3.5e-7, -1e-12)),
])
def test_crop_with_degenerate_quaternion_keeps_world_coordinates(tmp_path, bcd, w2_band):
    w2 = _f32_w2(*bcd)
    assert w2_band[0] <= w2 <= w2_band[1], w2
    d = np.zeros((40, 30, 20), np.int16)
    d[25:31, 20:26, 12:16] = 7
    img = nib.Nifti1Image(d, None)
    hdr = img.header
    hdr.set_xyzt_units("mm")
    hdr["pixdim"][:4] = [-1, 0.9, 1.1, 2.5]
    hdr["qform_code"] = 1
    hdr["sform_code"] = 0
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = bcd
    hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"] = 80.5, -60.25, 30.0
    src = tmp_path / "seg.nii.gz"
    nib.save(img, str(src))
    in_img = nib.load(str(src))
    assert int(in_img.header["qform_code"]) == 1 and int(in_img.header["sform_code"]) == 0
    out = tmp_path / "crop.nii.gz"
    run("filter", src, out, "--labels", "7", "--crop", check=0)
    out_img, got = load(out)
    assert got.shape == (6, 6, 4)
    lo = np.array([25, 20, 12])
    for ijk in [(0, 0, 0), (5, 5, 3), (2, 0, 1)]:
        np.testing.assert_allclose(out_img.affine @ [*ijk, 1], in_img.affine @ [*(lo + ijk), 1],
                                   atol=1e-4)

def test_empty_set_gives_zero_volume(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    out = tmp_path / "empty.nii.gz"
    run("filter", src, out, "--labels", "", check=0)
    _, got = load(out)
    assert got.shape == d.shape and got.dtype == d.dtype and not got.any()


def test_names_and_ids_combine(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    out = tmp_path / "named.nii.gz"
    # aorta = 6, liver = 1 in conf/vista3d_label_dict.json
    run("filter", src, out, "--names", "Aorta,LIVER", "--labels", "40", check=0)
    np.testing.assert_array_equal(load(out)[1], np.where(np.isin(d, [1, 6, 40]), d, 0))


def test_stdout_equals_file(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    out = tmp_path / "file.nii.gz"
    run("filter", src, out, "--labels", IDS_ARG, check=0)
    p = run("filter", src, "-", "--labels", IDS_ARG, check=0)
    assert p.stdout == open(out, "rb").read()


def test_level_0_and_9(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    expect = np.where(np.isin(d, IDS), d, 0)
    sizes = {}
    for level in (0, 9):
        out = tmp_path / f"l{level}.nii.gz"
        run("filter", src, out, "--labels", IDS_ARG, "--level", level, check=0)
        np.testing.assert_array_equal(load(out)[1], expect)
        assert gzip.decompress(open(out, "rb").read())[:4] == (348).to_bytes(4, "little")
        sizes[level] = out.stat().st_size
    assert sizes[0] > sizes[9]


def test_nifti_tool_accepts_output(tmp_path):
    if not shutil.which("nifti_tool"):
        pytest.skip("nifti_tool (package nifti-bin) is not installed")
    d = label_volume()
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    for args in (["--labels", IDS_ARG], ["--labels", "5", "--crop", "--margin", "1"],
                 ["--labels", "5", "--mode", "mask"]):
        out = tmp_path / "checked.nii.gz"
        run("filter", src, out, *args, check=0)
        p = subprocess.run(["nifti_tool", "-check_hdr", "-infiles", str(out)],
                           capture_output=True, text=True, timeout=60)
        text = p.stdout + p.stderr
        assert p.returncode == 0, text
        assert "header IS GOOD" in text, text


# --- failures: exit code, one message naming the problem, no file left ---

def expect_failure(tmp_path, args, code, words):
    before = files_in(tmp_path)
    p = run("filter", *args)
    assert p.returncode == code, p.stderr
    assert p.stderr.startswith("medimg filter: "), p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    for w in words:
        assert w.lower() in p.stderr.lower(), p.stderr
    assert files_in(tmp_path) == before   # nothing written, no temporary left
    return p


@pytest.fixture
def good(tmp_path):
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, label_volume())
    return src


def test_missing_input(tmp_path):
    expect_failure(tmp_path, [tmp_path / "nope.nii.gz", tmp_path / "o.nii.gz", "--labels", "1"],
                   1, ["nope.nii.gz"])


def test_truncated_gzip(tmp_path, good):
    raw = open(good, "rb").read()
    bad = tmp_path / "trunc.nii.gz"
    bad.write_bytes(raw[: len(raw) // 2])
    expect_failure(tmp_path, [bad, tmp_path / "o.nii.gz", "--labels", "1"], 3, [])


def test_corrupt_gzip_crc(tmp_path, good):
    raw = bytearray(open(good, "rb").read())
    raw[-8] ^= 0xFF   # CRC-32 of the member
    bad = tmp_path / "crc.nii.gz"
    bad.write_bytes(bytes(raw))
    expect_failure(tmp_path, [bad, tmp_path / "o.nii.gz", "--labels", "1"], 3, [])


def test_bad_header_dim0(tmp_path):
    d = label_volume()
    src = tmp_path / "seg.nii"
    write_nifti(src, d)
    raw = bytearray(open(src, "rb").read())
    raw[40:42] = (9).to_bytes(2, "little")   # dim[0] = 9
    src.write_bytes(bytes(raw))
    expect_failure(tmp_path, [src, tmp_path / "o.nii", "--labels", "1"], 3, ["dim[0]"])


def test_not_nifti(tmp_path):
    src = tmp_path / "text.nii"
    src.write_bytes(b"hello, this is not an image at all\n" * 20)
    expect_failure(tmp_path, [src, tmp_path / "o.nii", "--labels", "1"], 3, [])


@pytest.mark.parametrize("labels", ["1,x", "5-2", "1,,2", "abc", "1.5"])
def test_bad_label_ids(tmp_path, good, labels):
    expect_failure(tmp_path, [good, tmp_path / "o.nii.gz", "--labels", labels], 2, [])


def test_unknown_name(tmp_path, good):
    expect_failure(tmp_path, [good, tmp_path / "o.nii.gz", "--names", "aorta,notanorgan"], 2,
                   ["notanorgan"])


@pytest.mark.parametrize("args", [
    ["--labels", "1", "--mode", "blur"],
    ["--labels", "1", "--level", "10"],
    ["--labels", "1", "--margin", "2"],            # margin without crop
    ["--labels", "1", "--crop", "--margin", "-1"],
    ["--labels", "1", "--bogus"],
    [],                                            # no --labels nor --names
])
def test_usage_errors(tmp_path, good, args):
    expect_failure(tmp_path, [good, tmp_path / "o.nii.gz", *args], 2, [])


def test_wrong_number_of_files(tmp_path, good):
    expect_failure(tmp_path, [good, "--labels", "1"], 2, [])


def test_non_integral_float(tmp_path):
    d = label_volume(dtype=np.float32)
    d[4, 4, 4] = 2.5
    src = tmp_path / "float.nii.gz"
    write_nifti(src, d)
    expect_failure(tmp_path, [src, tmp_path / "o.nii.gz", "--labels", "1"], 3, [])


def test_non_integral_float_to_stdout_writes_nothing(tmp_path):
    d = label_volume(dtype=np.float64)
    d[-1, -1, 0] = np.nan
    src = tmp_path / "float.nii.gz"
    write_nifti(src, d)
    p = run("filter", src, "-", "--labels", "1")
    assert p.returncode == 3 and p.stdout == b""


def test_too_many_voxels(tmp_path, good):
    expect_failure(tmp_path, [good, tmp_path / "o.nii.gz", "--labels", "1", "--max-voxels", "100"],
                   3, [])


def test_unsupported_datatype(tmp_path):
    src = tmp_path / "complex.nii"
    write_nifti(src, np.zeros((4, 4, 4), np.complex64))
    expect_failure(tmp_path, [src, tmp_path / "o.nii", "--labels", "1"], 3, ["complex"])


def test_batch_one_bad_file(tmp_path):
    d = label_volume()
    names = ["a.nii.gz", "b.nii", "c.nii.gz"]
    for n in names:
        write_nifti(tmp_path / n, d)
    bad = tmp_path / "bad.nii.gz"
    raw = open(tmp_path / "a.nii.gz", "rb").read()
    bad.write_bytes(raw[:100])
    outdir = tmp_path / "out"
    inputs = [tmp_path / "a.nii.gz", bad, tmp_path / "b.nii", tmp_path / "c.nii.gz"]
    p = run("filter", "--labels", IDS_ARG, "--outdir", outdir, *inputs)
    assert p.returncode == 3, p.stderr
    assert "bad.nii.gz" in p.stderr and p.stderr.startswith("medimg filter: ")
    assert files_in(outdir) == ["filtered_a.nii.gz", "filtered_b.nii", "filtered_c.nii.gz"]
    for n in names:
        np.testing.assert_array_equal(load(outdir / f"filtered_{n}")[1],
                                      np.where(np.isin(d, IDS), d, 0))
    assert open(outdir / "filtered_b.nii", "rb").read(2) != b"\x1f\x8b"


def test_batch_missing_file_is_exit_1(tmp_path, good):
    outdir = tmp_path / "out"
    p = run("filter", "--labels", "1", "--outdir", outdir, good, tmp_path / "missing.nii.gz")
    assert p.returncode == 1, p.stderr
    assert files_in(outdir) == ["filtered_seg.nii.gz"]


def test_batch_quiet_and_not_a_tty_print_nothing(tmp_path, good):
    outdir = tmp_path / "out"
    p = run("filter", "--labels", "1", "--outdir", outdir, good, check=0)
    assert p.stderr == "" and p.stdout == b""
    p = run("filter", "--labels", "1", "--outdir", outdir, "--quiet", "--force", good, check=0)
    assert p.stderr == ""


def test_help(tmp_path):
    p = run("filter", "--help", check=0)
    assert b"--labels" in p.stdout and b"--outdir" in p.stdout
