"""Shared helpers for the `medimg` command-line tests: the binary, a runner,
and small NIfTI files written by nibabel (the independent reader/writer)."""
import os
import pathlib
import subprocess

import nibabel as nib
import numpy as np
import pytest

BUILD_DIR = pathlib.Path(os.environ.get("MEDIMG_BUILD_DIR", "build"))
SOURCE_DIR = pathlib.Path(os.environ.get("MEDIMG_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))
MEDIMG = BUILD_DIR / "cli" / "medimg"
LABEL_DICT = SOURCE_DIR / "conf" / "vista3d_label_dict.json"


def run(*args, check=None, **kw):
    """Runs medimg with args; returns CompletedProcess (bytes stdout, text stderr)."""
    p = subprocess.run([str(MEDIMG), *map(str, args)], capture_output=True, timeout=120, **kw)
    p.stderr = p.stderr.decode("utf-8", "replace")
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stderr)
    return p


@pytest.fixture(scope="session", autouse=True)
def _binary_exists():
    if not MEDIMG.exists():
        pytest.fail(f"{MEDIMG} is not built (set MEDIMG_BUILD_DIR)")


def label_volume(shape=(23, 19, 11), dtype=np.int16, seed=0, ids=(0, 1, 2, 5, 6, 10, 11, 12, 40)):
    """A reproducible label map with blobs of several ids."""
    rng = np.random.default_rng(seed)
    d = rng.choice(np.array(ids), size=shape, p=None)
    # Make it blocky so cropping has a meaningful box.
    d[:3] = 0
    d[..., -2:] = 0
    return d.astype(dtype)


def test_affine():
    a = np.array([[-0.8, 0.1, 0.0, 90.5],
                  [0.05, 0.75, 0.0, -120.25],
                  [0.0, 0.0, 2.5, -300.0],
                  [0, 0, 0, 1]], dtype=np.float64)
    return a


def write_nifti(path, data, affine=None, cls=nib.Nifti1Image, descrip=b"medimg test"):
    """Writes `data` with nibabel; keeps the dtype and byte order of the array."""
    # nibabel writes in its header's byte order: make it the array's.
    header = cls.header_class(endianness=">" if data.dtype.byteorder == ">" else "<")
    img = cls(data, test_affine() if affine is None else affine, header=header,
              dtype=data.dtype)
    hdr = img.header
    if hasattr(hdr, "set_xyzt_units"):
        hdr.set_xyzt_units("mm", "sec")
    if "descrip" in hdr:
        hdr["descrip"] = descrip
    if isinstance(img, (nib.Nifti1Pair, nib.Nifti2Pair)):
        img.set_qform(img.affine, code=1)
        img.set_sform(img.affine, code=2)
    nib.save(img, str(path))
    return img


def load(path):
    img = nib.load(str(path))
    return img, np.asanyarray(img.dataobj)


@pytest.fixture(scope="session")
def demo_tree(tmp_path_factory):
    """A small demo tree, made once per session."""
    root = tmp_path_factory.mktemp("demo")
    run("demo", root, "--size", "64x64x40", "--seed", "7", "--quiet", check=0)
    return root / "PA00000002"
