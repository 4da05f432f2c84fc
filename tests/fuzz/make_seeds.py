#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into DIR/<target>/.

Seeds are small valid files (written by nibabel, an independent writer) in
every container, version, byte order and label-capable datatype, plus the
malformed files kept under tests/data/malformed/.
Usage: /usr/bin/python3 tests/fuzz/make_seeds.py DIR
"""
import gzip
import io
import pathlib
import sys

import nibabel as nib
import numpy as np

out = pathlib.Path(sys.argv[1])
src = pathlib.Path(__file__).resolve().parents[1]
for t in ("header", "gzip", "filter", "label_set", "path", "router"):
    (out / t).mkdir(parents=True, exist_ok=True)


def nifti_bytes(arr, cls=nib.Nifti1Image, slope=None, inter=None):
    img = cls(arr, np.diag([0.8, 0.8, 2.5, 1.0]), dtype=arr.dtype)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    bio = io.BytesIO()
    img.to_file_map({"image": nib.FileHolder(fileobj=bio), "header": nib.FileHolder(fileobj=bio)})
    return bio.getvalue()


rng = np.random.default_rng(1)
n = 0
for dtype in ("<u1", "<i2", ">i2", "<u2", "<i4", ">i4", "<u4", "<i8", "<f4", ">f8", "<i1"):
    for cls in (nib.Nifti1Image, nib.Nifti2Image):
        arr = rng.integers(0, 6, size=(5, 4, 3)).astype(dtype)
        raw = nifti_bytes(arr, cls)
        n += 1
        opts = bytes([1, 128 + 3, n % 8, 1])
        (out / "filter" / f"plain_{n}").write_bytes(opts + raw)
        (out / "filter" / f"gz_{n}").write_bytes(opts + gzip.compress(raw, 1))
        (out / "header" / f"hdr_{n}").write_bytes(b"\0" + raw[:540])
(out / "filter" / "scaled").write_bytes(bytes([2, 128, 0, 0]) + nifti_bytes(
    np.arange(60, dtype=np.int16).reshape(5, 4, 3), slope=2.0, inter=-4.0))
(out / "filter" / "4d").write_bytes(bytes([1, 129, 2, 0]) + nifti_bytes(
    rng.integers(0, 3, size=(3, 3, 2, 2)).astype(np.uint8)))

payload = nifti_bytes(np.ones((4, 4, 4), np.uint8))
(out / "gzip" / "one").write_bytes(gzip.compress(payload))
(out / "gzip" / "two_members").write_bytes(gzip.compress(payload[:100]) + gzip.compress(payload[100:]))
(out / "gzip" / "empty_member").write_bytes(gzip.compress(b"") + gzip.compress(payload) + b"\0" * 8)

for i, text in enumerate(["1,5,10-12", "", " 6 , 7 ", "-3--1", "1-1000", "aorta,Liver", "left kidney,6",
                          "6:1,28-32:2", "-5--3:-1,1-3:1,2:1", "1-10:1,5:2"]):
    (out / "label_set" / f"s{i}").write_text(text)

for i, text in enumerate(["PA1/scans/all.nii", "PA1/scans/inside.nii", "PA1/escape.nii",
                          "PA1/../PA1/scans/all.nii", "PA1/%2e%2e/secret", "PA1/.env",
                          "PA1/up/secret", "PA1//scans/all.nii", "PA1/scans/all.nii%00"]):
    (out / "path" / f"p{i}").write_text(text)

malformed = src / "data" / "malformed"
if malformed.is_dir():
    for f in sorted(malformed.iterdir()):
        if f.is_file() and not f.name.endswith((".txt", ".md")):
            (out / "filter" / f"m_{f.name}").write_bytes(bytes([1, 129, 0, 0]) + f.read_bytes())
            (out / "header" / f"m_{f.name}").write_bytes(b"\0" + f.read_bytes()[:540])

for i, text in enumerate([
        "GET\n/health\n", "GET\n/filtered-scans/PA1/all.nii?label_ids=1,3-4\n",
        "HEAD\n/filtered-scans/PA1/voxels/ct/original/all.nii?label_ids=2&mode=mask&crop=1&margin=1\n",
        "GET\n/output/PA1/scans/all.nii/labels\nhttps://viewer.example",
        "GET\n/output/PA1/scans/all.nii/info\n\"abc\"", "OPTIONS\n/filtered-scans/PA1/all.nii\nhttps://viewer.example",
        "GET\n/filtered-scans/PA1/escape.nii?label_ids=1\n", "GET\n/filtered-scans/PA1/..%2f.env?label_ids=1\n",
        "GET\n/filtered-scans/PA1/up/secret.nii?labels=aorta\n", "DELETE\n/health\n",
        "GET\n/output/PA1/scans/.hidden.nii/labels\n"]):
    (out / "router" / f"r{i}").write_text(text)

