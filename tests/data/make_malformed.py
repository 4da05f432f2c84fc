#!/usr/bin/python3
"""Generates tests/data/malformed/: malformed and tricky NIfTI/Analyze files,
one case per docs/ARCHITECTURE.md rule, each with its expectation.

    /usr/bin/python3 tests/data/make_malformed.py [OUTDIR]

Every file is built from a few small reference arrays by struct packing
(nibabel only supplies the valid base headers), so the output is
byte-for-byte reproducible; tests/cli/test_hostile_files_cli.py checks that
the committed files equal a fresh run. The table in README.md and
manifest.json (what the tests read) are written from CASES.

Expectation of a case:
  accept  -> `label_ids` filtered in keep mode equals
             np.where(np.isin(ref, ids), ref, 0) where `ref` is the array of
             scaled voxel values reference(case.ref) returns.
  reject  -> HTTP `status` with an `error` id in `errors`; CLI exit code
             `exit` and no output file.
"""

import gzip
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import nibabel as nib

HERE = Path(__file__).resolve().parent
OUT = HERE / "malformed"

# ---------------------------------------------------------------------------
# Reference arrays (scaled voxel values a correct reader must see)

SHAPE = (8, 7, 6)


def _blocks(dtype, a=6, b=10, c=133):
    d = np.zeros(SHAPE, dtype=dtype)
    d[1:4, 1:3, 1:5] = a
    d[4:7, 3:6, 2:4] = b
    d[0, 0, 0] = c
    d[7, 6, 5] = a
    return d


BIG_ID = 2**53 + 1             # not exact in a double
HUGE_U64 = 2**63 + 5           # above INT64_MAX: an id like any other


def reference(key):
    """Scaled voxel values of reference `key` (what every reader must see)."""
    if key == "int16":
        return _blocks(np.int16)
    if key == "int8":
        return _blocks(np.int8, c=100)
    if key in ("uint8", "uint16", "int32", "uint32", "int64", "float32", "float64"):
        return _blocks(np.dtype(key))
    if key == "int64_big":
        d = _blocks(np.int64)
        d[2, 2, 2] = BIG_ID
        d[3, 3, 3] = BIG_ID - 1
        return d
    if key == "uint64_huge":
        d = _blocks(np.uint64)
        d[5, 5, 5] = HUGE_U64
        return d
    if key == "int16_4d":
        return np.stack([_blocks(np.int16), _blocks(np.int16, 10, 6, 7), _blocks(np.int16, 0, 0, 6)],
                        axis=-1)
    if key == "int16_5d":
        return _blocks(np.int16).reshape(SHAPE + (1, 1))
    if key == "float_negzero":
        d = _blocks(np.float32)
        d[5, 6, 5] = np.float32(-0.0)
        return d
    if key == "int16_1d":
        return np.array([0, 6, 6, 10, 0, 133, 6, 0, 10, 1, 2, 3], dtype=np.int16)
    if key == "scaled_x2":          # stored 3/5/66 * 2
        return _blocks(np.int16, c=132).astype(np.float64)
    if key == "scaled_half":        # stored 12/20/266 * 0.5
        return _blocks(np.int16).astype(np.float64)
    if key == "scaled_odd":         # stored {0,3,5} * 2 + 1 -> {1,7,11}
        d = np.ones(SHAPE)
        d[1:4, 1:3, 1:5] = 7
        d[4:7, 3:6, 2:4] = 11
        return d
    if key == "float_huge":
        d = _blocks(np.float32)
        d[6, 6, 5] = np.float32(1e30)
        d[5, 6, 5] = np.float32(-0.0)
        return d
    raise KeyError(key)


# ---------------------------------------------------------------------------
# Byte builders

DT = {"uint8": 2, "int16": 4, "int32": 8, "float32": 16, "float64": 64, "int8": 256,
      "uint16": 512, "uint32": 768, "int64": 1024, "uint64": 1280}


def nifti1(data, *, big=False, pair=False, magic=None, slope=None, inter=None, ext=b"",
           dtype_code=None, bitpix=None, trailing=b""):
    """A NIfTI-1 single file (or (hdr, img) for pair) holding `data` as stored."""
    endian = ">" if big else "<"
    h = nib.nifti1.Nifti1PairHeader(endianness=endian) if pair else nib.Nifti1Header(endianness=endian)
    h.set_data_dtype(data.dtype.newbyteorder("="))
    h.set_data_shape(data.shape)
    h.set_qform(np.diag([1.5, 1.5, 2.0, 1.0]), code=1)
    h.set_sform(np.diag([1.5, 1.5, 2.0, 1.0]), code=1)
    h.set_xyzt_units("mm", "sec")
    h["descrip"] = b"medimg malformed corpus"
    if slope is not None:
        h["scl_slope"] = slope
    if inter is not None:
        h["scl_inter"] = inter
    h["vox_offset"] = 0 if pair else 352 + len(ext)
    b = bytearray(h.binaryblock)
    if magic is not None:
        b[344:348] = magic
    if dtype_code is not None:
        b[70:72] = struct.pack(endian + "h", dtype_code)
    if bitpix is not None:
        b[72:74] = struct.pack(endian + "h", bitpix)
    raw = data.astype(data.dtype.newbyteorder(endian)).tobytes(order="F")
    if pair:
        return bytes(b), raw + trailing
    extender = (b"\x01\0\0\0" if ext else b"\0\0\0\0")
    body = bytes(b) + extender + ext
    return body + raw + trailing


def nifti2(data, *, big=False, pair=False):
    endian = ">" if big else "<"
    h = nib.nifti2.Nifti2PairHeader(endianness=endian) if pair else nib.Nifti2Header(endianness=endian)
    h.set_data_dtype(data.dtype.newbyteorder("="))
    h.set_data_shape(data.shape)
    h.set_qform(np.diag([1.5, 1.5, 2.0, 1.0]), code=1)
    h.set_sform(np.diag([1.5, 1.5, 2.0, 1.0]), code=1)
    h.set_xyzt_units("mm", "sec")
    h["vox_offset"] = 0 if pair else 544
    raw = data.astype(data.dtype.newbyteorder(endian)).tobytes(order="F")
    if pair:
        return bytes(h.binaryblock), raw
    return bytes(h.binaryblock) + b"\0\0\0\0" + raw


def analyze(data):
    h = nib.AnalyzeHeader()
    h.set_data_dtype(data.dtype)
    h.set_data_shape(data.shape)
    return bytes(h.binaryblock), data.tobytes(order="F")


def patch(b, offset, fmt, *values):
    b = bytearray(b)
    struct.pack_into(fmt, b, offset, *values)
    return bytes(b)


def gz(payload, *, mtime=0, level=6):
    return gzip.compress(payload, compresslevel=level, mtime=mtime)


def gz_fields(payload, *, fhcrc=True, bad_hcrc=False, fname=b"x.nii", comment=b"c", extra=b"ab"):
    """A gzip member with FEXTRA, FNAME, FCOMMENT and FHCRC set."""
    flags = 0x02 * fhcrc | 0x04 | 0x08 | 0x10
    head = bytearray(b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff")
    head += struct.pack("<H", len(extra)) + extra + fname + b"\0" + comment + b"\0"
    if fhcrc:
        crc = zlib.crc32(bytes(head)) & 0xFFFF
        head += struct.pack("<H", crc ^ 0x5555 if bad_hcrc else crc)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = c.compress(payload) + c.flush()
    return bytes(head) + body + struct.pack("<II", zlib.crc32(payload), len(payload) & 0xFFFFFFFF)


def raw_deflate(payload):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(payload) + c.flush()


def stored(ref, dtype):
    return ref.astype(dtype)


# ---------------------------------------------------------------------------
# Cases: (file name, {name: bytes}, expectation dict, note)

CASES = []


def accept(name, files, ref, note, ids="6,133", out_gzip=None):
    if isinstance(files, bytes):
        files = {name: files}
    if out_gzip is None:
        out_gzip = name.endswith(".gz") or name.endswith(".hdr") or name.endswith(".img")
    CASES.append({"name": name, "files": files, "expect": "accept", "ref": ref, "ids": ids,
                  "out_gzip": out_gzip, "note": note})


def reject(name, files, status, errors, note, exit_code=3, ids="6,133"):
    if isinstance(files, bytes):
        files = {name: files}
    CASES.append({"name": name, "files": files, "expect": "reject", "status": status,
                  "errors": list(errors), "exit": exit_code, "ids": ids, "note": note})


def build():
    CASES.clear()
    i16 = reference("int16")
    base = nifti1(i16)
    n2 = nifti2(i16)

    # --- valid bases, every byte order, version and integer type -----------
    accept("valid_int16.nii", base, "int16", "plain NIfTI-1 int16, little-endian")
    accept("valid_int16.nii.gz", gz(base), "int16", "gzip NIfTI-1 int16")
    accept("bigendian_int16.nii", nifti1(i16, big=True), "int16",
           "big-endian NIfTI-1: read byte-swapped, written back big-endian")
    accept("bigendian_int16.nii.gz", gz(nifti1(i16, big=True)), "int16", "big-endian, gzip")
    accept("nifti2_int16.nii", n2, "int16", "NIfTI-2 single file (sizeof_hdr 540, n+2)")
    accept("nifti2_bigendian.nii.gz", gz(nifti2(i16, big=True)), "int16", "NIfTI-2 big-endian, gzip")
    for t in ("uint8", "int8", "uint16", "int32", "uint32", "int64"):
        accept(f"type_{t}.nii", nifti1(reference(t)), t, f"{t} labels compared exactly")
    accept("type_int64_bigids.nii.gz", gz(nifti1(reference("int64_big"))), "int64_big",
           "int64 ids 2^53+1 and 2^53 (not exact as doubles) told apart",
           ids=f"6,{BIG_ID}")
    accept("type_uint64_huge.nii", nifti1(reference("uint64_huge")), "uint64_huge",
           "uint64 holding 2^63+5 (above INT64_MAX): listed, removed when not selected")
    accept("type_uint64_huge_selected.nii", nifti1(reference("uint64_huge"), big=True), "uint64_huge",
           "big-endian uint64: 2^63+5 selected by its exact id", ids=f"6,{HUGE_U64}")
    accept("type_float32_integral.nii", nifti1(reference("float32")), "float32",
           "float32 with integral values only")
    accept("type_float64_integral.nii.gz", gz(nifti1(reference("float64"))), "float64",
           "float64 with integral values only")
    accept("float_negative_zero.nii", nifti1(reference("float_negzero")), "float_negzero",
           "float32 -0.0 voxel: integral, a zero")
    reject("float_huge_integral.nii", nifti1(reference("float_huge")), 415, ["non_integral_labels"],
           "float32 1e30: integral but no int64 label id (ids are int64): 415")

    # --- scaling ------------------------------------------------------------
    accept("scaled_slope2.nii", nifti1(_half_stored(), slope=2.0), "scaled_x2",
           "scl_slope 2: labels matched on scaled values 6 and 10", ids="6,10")
    accept("scaled_slope_half.nii", nifti1((i16.astype(np.int16) * 2), slope=0.5), "scaled_half",
           "scl_slope 0.5 on stored 12/20/266")
    accept("scaled_inter_odd.nii", nifti1(_odd_stored(), slope=2.0, inter=1.0), "scaled_odd",
           "slope 2 inter 1: no stored value scales to 0, output unscaled ids", ids="7")
    accept("scl_slope_nan.nii", nifti1(i16, slope=float("nan"), inter=5.0), "int16",
           "scl_slope NaN: no scaling")
    accept("scl_slope_inf.nii", nifti1(i16, slope=float("inf"), inter=5.0), "int16",
           "scl_slope +inf: no scaling")
    accept("scl_slope_zero.nii", nifti1(i16, slope=0.0, inter=5.0), "int16",
           "scl_slope 0: no scaling")
    accept("scl_inter_nan.nii", nifti1(_half_stored(), slope=2.0, inter=float("nan")), "scaled_x2",
           "valid slope, scl_inter NaN counts as 0", ids="6,10")

    # --- geometry, dims, extensions ------------------------------------------
    ext = struct.pack("<ii", 48, 4) + b"medimg extension payload".ljust(40, b"\0")
    accept("extension_kept.nii", nifti1(i16, ext=ext), "int16",
           "one 48-byte extension (ecode 4): copied verbatim")
    accept("extension_garbage.nii", nifti1(i16, ext=b"\xff" * 37 + b"\0" * 3), "int16",
           "extension region with an invalid esize: never parsed, copied")
    # Extension flag set over an invalid chain (docs/ARCHITECTURE.md): the region
    # is copied, the output's flag (byte 348 / 540) written as 0.
    payload = b"medimg chain text 24 byt"
    for name, esize in (("extension_esize_zero.nii", 0), ("extension_esize_8.nii", 8),
                        ("extension_esize_negative.nii.gz", -16),
                        ("extension_esize_huge.nii", 0x7FFFFFF0),
                        ("extension_esize_not16.nii", 24),
                        ("extension_past_vox_offset.nii.gz", 48)):
        data = nifti1(i16, ext=struct.pack("<ii", esize, 6) + payload)
        accept(name, gz(data) if name.endswith(".gz") else data, "int16",
               f"extension flag set, esize {esize} in a 32-byte chain: flag written as 0")
    accept("extension_second_bad.nii",
           nifti1(i16, ext=struct.pack("<ii", 16, 6) + b"first ok" + struct.pack("<ii", 0, 6) + b"\0" * 8),
           "int16", "a valid 16-byte extension, then esize 0: flag written as 0")
    accept("extension_chain_bigendian.nii",
           nifti1(i16, big=True, ext=struct.pack(">ii", 32, 6) + payload), "int16",
           "big-endian file, esize 32 in its own byte order: a valid chain, flag kept")
    n2_ext = struct.pack("<ii", 0, 6) + payload
    n2_bad = bytearray(n2[:540]) + b"\x01\0\0\0" + n2_ext + n2[544:]
    accept("nifti2_extension_esize_zero.nii", patch(bytes(n2_bad), 168, "<q", 544 + len(n2_ext)),
           "int16", "NIfTI-2, flag set, esize 0: flag (byte 540) written as 0")
    big_off = bytearray(nifti1(i16))
    big_off = bytes(big_off[:352]) + b"\xab" * 672 + bytes(big_off[352:])
    accept("vox_offset_1024.nii", patch(big_off, 108, "<f", 1024.0), "int16",
           "vox_offset 1024 with junk between header and data")
    accept("trailing_bytes.nii", base + b"TRAILING" * 16, "int16", "bytes after the data ignored")
    b = patch(base, 48, "<hhh", -5, 0, 32767)
    accept("dims_beyond_dim0.nii", b, "int16", "dim[4..6] garbage beyond dim[0]=3: ignored")
    accept("trailing_unit_dims.nii", nifti1(i16.reshape(SHAPE + (1, 1))), "int16_5d",
           "dim[0]=5 with trailing dims of 1")
    accept("four_d.nii.gz", gz(nifti1(reference("int16_4d"))), "int16_4d",
           "4-D label map, filtered volume by volume", ids="6,7")
    accept("one_d.nii", nifti1(reference("int16_1d")), "int16_1d", "dim[0]=1")

    # --- containers -------------------------------------------------------------
    accept("gzip_named_plain.nii", gz(base), "int16",
           "gzip bytes named .nii: sniffed, output plain as the name says", out_gzip=False)
    accept("plain_named_gzip.nii.gz", base, "int16",
           "plain bytes named .nii.gz: sniffed, output gzip as the name says", out_gzip=True)
    half = len(base) // 2
    accept("gzip_multimember.nii.gz", gz(base[:half]) + gz(base[half:]), "int16",
           "two gzip members (RFC 1952)")
    accept("gzip_empty_members.nii.gz", gz(b"") + gz(base) + gz(b""), "int16",
           "empty members before and after the data")
    accept("gzip_many_members.nii.gz", b"".join(gz(base[i:i + 40]) for i in range(0, len(base), 40)),
           "int16", "a member every 40 bytes, splitting the header")
    accept("gzip_trailing_nuls.nii.gz", gz(base) + b"\0" * 1000, "int16",
           "NUL padding after the last member ignored")
    accept("gzip_trailing_garbage.nii.gz", gz(base) + b"this is not gzip", "int16",
           "garbage after the last complete member ignored, as gzip(1)")
    accept("gzip_header_fields.nii.gz", gz_fields(base), "int16",
           "FEXTRA, FNAME, FCOMMENT and a correct FHCRC")
    accept("gzip_level0.nii.gz", gz(base, level=0), "int16", "stored (level 0) deflate blocks")

    # --- pairs -----------------------------------------------------------------
    h, img = analyze(i16)
    accept("analyze_pair.hdr", {"analyze_pair.hdr": h, "analyze_pair.img": img}, "int16",
           "Analyze 7.5 pair (no magic), output .nii.gz")
    h, img = nifti1(i16, pair=True)
    accept("ni1_pair.hdr", {"ni1_pair.hdr": h, "ni1_pair.img": img}, "int16", "NIfTI-1 pair (ni1)")
    accept("ni1_pair_byimg.img", {"ni1_pair_byimg.hdr": h, "ni1_pair_byimg.img": img}, "int16",
           "NIfTI-1 pair requested by its .img name")
    accept("ni1_pair_gz.hdr", {"ni1_pair_gz.hdr": h, "ni1_pair_gz.img.gz": gz(img)}, "int16",
           ".hdr with .img.gz")
    accept("ni1_pair_allgz.hdr.gz", {"ni1_pair_allgz.hdr.gz": gz(h), "ni1_pair_allgz.img.gz": gz(img)},
           "int16", ".hdr.gz with .img.gz")
    h2, img2 = nifti2(i16, pair=True)
    accept("ni2_pair.hdr", {"ni2_pair.hdr": h2, "ni2_pair.img": img2}, "int16", "NIfTI-2 pair (ni2)")
    h, img = nifti1(i16, pair=True)
    reject("n1_magic_pair.hdr", {"n1_magic_pair.hdr": patch(h, 344, "4s", b"n+1\0"),
                                 "n1_magic_pair.img": img}, 415, ["not_nifti"],
           "n+1 magic in a .hdr/.img pair")
    reject("pair_missing_img.hdr", {"pair_missing_img.hdr": h}, 404, ["not_found"],
           ".hdr without its .img", exit_code=1)
    reject("pair_short_img.hdr", {"pair_short_img.hdr": h, "pair_short_img.img": img[:-100]},
           422, ["truncated_data"], ".img shorter than the header declares")

    # --- header rules: rejects -------------------------------------------------------
    reject("sizeof_hdr_0.nii", patch(base, 0, "<i", 0), 415, ["not_nifti"], "sizeof_hdr 0")
    reject("sizeof_hdr_347.nii", patch(base, 0, "<i", 347), 415, ["not_nifti"], "sizeof_hdr 347")
    reject("sizeof_hdr_swapped_wrong.nii", patch(base, 0, ">i", 349), 415, ["not_nifti"],
           "sizeof_hdr 349 big-endian: valid in neither order")
    reject("sizeof_hdr_540_n1.nii", patch(base, 0, "<i", 540), 415, ["not_nifti"],
           "sizeof_hdr 540 with an n+1 header")
    reject("mixed_byteorder.nii", patch(nifti1(i16, big=True), 0, "<i", 348), 422,
           ["corrupt_header"], "sizeof_hdr little-endian, the rest big-endian")
    reject("ni1_magic_single.nii", patch(base, 344, "4s", b"ni1\0"), 415, ["not_nifti"],
           "ni1 magic in a single .nii")
    reject("no_magic_single.nii", patch(base, 344, "4s", b"\0\0\0\0"), 415, ["not_nifti"],
           "no magic in a single .nii (Analyze needs a pair)")
    reject("n2_magic_in_n1.nii", patch(base, 344, "4s", b"n+2\0"), 415, ["not_nifti"],
           "n+2 magic in a 348-byte header")
    for v, label in ((0, "0"), (8, "8"), (-1, "neg1")):
        reject(f"dim0_{label}.nii", patch(base, 40, "<h", v), 422, ["corrupt_header"], f"dim[0] = {v}")
    reject("dim2_zero.nii", patch(base, 44, "<h", 0), 422, ["corrupt_header"], "dim[2] = 0")
    reject("dim3_negative.nii", patch(base, 46, "<h", -6), 422, ["corrupt_header"], "dim[3] = -6")
    reject("dims_huge.nii", patch(base, 40, "<8h", 3, 32767, 32767, 32767, 1, 1, 1, 1), 413,
           ["image_too_large"], "32767^3 voxels: past max_voxels")
    reject("dims_huge.nii.gz", gz(patch(base, 40, "<8h", 7, 32767, 32767, 32767, 32767, 32767, 32767,
                                        32767)), 413, ["image_too_large"], "32767^7 voxels, gzip")
    b2 = patch(n2, 16, "<8q", 3, 2**40, 2**40, 2**40, 1, 1, 1, 1)
    reject("nifti2_count_overflow.nii", b2, 413, ["image_too_large"],
           "NIfTI-2 dims 2^40 x 3: voxel count overflows 64 bits")
    b2 = patch(n2, 16, "<8q", 3, -8, 7, 6, 1, 1, 1, 1)
    reject("nifti2_dim_negative.nii", b2, 422, ["corrupt_header"], "NIfTI-2 dim[1] = -8")
    reject("nifti2_vox_offset_540.nii", patch(n2, 168, "<q", 540), 422, ["corrupt_header"],
           "NIfTI-2 vox_offset 540 < 544")
    reject("nifti2_vox_offset_huge.nii", patch(n2, 168, "<q", 2**62), 422, ["truncated_data"],
           "NIfTI-2 vox_offset 2^62: data past the end")
    reject("nifti2_vox_offset_negative.nii", patch(n2, 168, "<q", -1), 422, ["corrupt_header"],
           "NIfTI-2 vox_offset -1")
    reject("datatype_unknown.nii", patch(base, 70, "<hh", 999, 16), 422, ["corrupt_header"],
           "datatype 999")
    reject("datatype_zero.nii", patch(base, 70, "<hh", 0, 0), 422, ["corrupt_header"],
           "datatype 0 (DT_UNKNOWN)")
    for code, bits, label in ((32, 64, "complex64"), (1792, 128, "complex128"),
                              (2048, 256, "complex256"), (128, 24, "rgb24"), (2304, 32, "rgba32"),
                              (1536, 128, "float128"), (1, 1, "binary")):
        nbytes = max(1, bits // 8)
        vox = 8 * 7 * 6
        data = (np.arange(vox * nbytes) % 7).astype(np.uint8).tobytes()
        if code == 1:
            data = bytes((vox + 7) // 8)
        b = patch(base[:352], 70, "<hh", code, bits) + data
        reject(f"datatype_{label}.nii", b, 415, ["unsupported_datatype"],
               f"datatype {code} ({label}): cannot hold labels")
    reject("bitpix_mismatch.nii", patch(base, 72, "<h", 8), 422, ["corrupt_header"],
           "int16 with bitpix 8")
    reject("bitpix_zero.nii", patch(base, 72, "<h", 0), 422, ["corrupt_header"], "bitpix 0")
    for v, label, errs in ((float("nan"), "nan", ["corrupt_header"]),
                           (float("inf"), "inf", ["corrupt_header"]),
                           (352.5, "fractional", ["corrupt_header"]),
                           (0.0, "zero", ["corrupt_header"]),
                           (348.0, "348", ["corrupt_header"]),
                           (-352.0, "negative", ["corrupt_header"]),
                           (1.0e6, "past_eof", ["truncated_data"]),
                           (3.0e38, "3e38", ["corrupt_header", "truncated_data"])):
        reject(f"vox_offset_{label}.nii", patch(base, 108, "<f", v), 422, errs, f"vox_offset {v}")
    reject("vox_offset_past_eof.nii.gz", gz(patch(base, 108, "<f", 100000.0)), 422,
           ["truncated_data"], "gzip, vox_offset 100000 past the inflated end")

    # --- voxel values --------------------------------------------------------------
    f = reference("float32")
    f[2, 2, 2] = 6.5
    reject("float_half.nii", nifti1(f), 415, ["non_integral_labels"], "float32 voxel 6.5")
    f = reference("float32")
    f[7, 6, 5] = np.nan
    reject("float_nan_last.nii.gz", gz(nifti1(f)), 415, ["non_integral_labels"],
           "float32 NaN in the last voxel")
    f = reference("float64")
    f[0, 1, 0] = np.inf
    reject("float_inf.nii", nifti1(f), 415, ["non_integral_labels"], "float64 +inf voxel")
    reject("float_scaled_half.nii", nifti1(reference("float32") + np.float32(1), slope=0.5), 415,
           ["non_integral_labels"], "integral stored floats, slope 0.5 makes 3.5")
    reject("int_scaled_half.nii", nifti1(i16 + np.int16(1), slope=0.5), 415,
           ["non_integral_labels"], "int16 stored 7 x slope 0.5 = 3.5")

    # --- truncation, containers ------------------------------------------------------
    reject("truncated_data.nii", base[:-100], 422, ["truncated_data"], "100 bytes of data missing")
    reject("truncated_header.nii", base[:200], 422, ["truncated_data"], "file ends inside the header")
    reject("empty.nii", b"", 415, ["not_nifti"], "empty file")
    reject("three_bytes.nii.gz", b"abc", 415, ["not_nifti"], "3 bytes")
    reject("text.nii", b"hello, this is not an image\n" * 20, 415, ["not_nifti"], "text named .nii")
    reject("html.nii.gz", b"<!doctype html><title>x</title>" * 20, 415, ["not_nifti"],
           "HTML named .nii.gz")
    reject("gzip_of_text.nii.gz", gz(b"hello, this is not an image\n" * 20), 415, ["not_nifti"],
           "gzip whose content is not NIfTI")
    packed = gz(base)
    reject("gzip_truncated.nii.gz", packed[:len(packed) // 2], 422, ["bad_gzip", "truncated_data"],
           "gzip cut in the middle of the deflate stream")
    reject("gzip_no_trailer.nii.gz", packed[:-8], 422, ["bad_gzip", "truncated_data"],
           "gzip without CRC/ISIZE trailer")
    reject("gzip_header_only.nii.gz", packed[:10], 422, ["bad_gzip", "truncated_data"],
           "only the 10-byte gzip header")
    reject("gzip_bad_crc.nii.gz", patch(packed, len(packed) - 8, "<I", zlib.crc32(base) ^ 1), 422,
           ["bad_gzip"], "CRC-32 off by one bit")
    reject("gzip_bad_isize.nii.gz", patch(packed, len(packed) - 4, "<I", len(base) + 1), 422,
           ["bad_gzip"], "ISIZE one too large")
    reject("gzip_bad_hcrc.nii.gz", gz_fields(base, bad_hcrc=True), 422, ["bad_gzip"],
           "FHCRC header CRC wrong")
    reject("gzip_bad_method.nii.gz", patch(packed, 2, "B", 7), 422, ["bad_gzip"],
           "compression method 7 instead of 8 (deflate)")
    reject("gzip_corrupt_deflate.nii.gz", packed[:20] + bytes(x ^ 0x5A for x in packed[20:40])
           + packed[40:], 422, ["bad_gzip", "truncated_data"], "deflate bytes flipped")
    reject("gzip_then_bad_member.nii.gz", packed + packed[:30], 422,
           ["bad_gzip", "truncated_data"], "a second member that starts but never completes")
    reject("zlib_wrapped.nii.gz", zlib.compress(base), 415, ["not_nifti", "bad_gzip"],
           "zlib (RFC 1950) stream: not gzip")
    reject("raw_deflate.nii.gz", raw_deflate(base), 415, ["not_nifti", "bad_gzip"],
           "raw deflate stream: not gzip")
    bomb_payload = base + b"\0" * (8 << 20)
    reject("gzip_bomb.nii.gz", gz(bomb_payload, level=9), 422, ["bad_gzip"],
           "a few KiB inflating to 8 MiB past a 1 KiB image: refused")
    bomb = patch(base, 40, "<8h", 3, 512, 512, 512, 1, 1, 1, 1)
    reject("gzip_declares_big_short.nii.gz", gz(bomb + b"\0" * 4096, level=9), 422,
           ["truncated_data", "bad_gzip"], "declares 512^3 int16 but holds 4 KiB")
    return CASES


def _half_stored():
    d = _blocks(np.int16)
    out = np.zeros(SHAPE, dtype=np.int16)
    out[d == 6] = 3
    out[d == 10] = 5
    out[d == 133] = 66   # scales to 132: scaled_x2 reference uses 132 there
    return out


def _odd_stored():
    d = np.zeros(SHAPE, dtype=np.int16)
    d[1:4, 1:3, 1:5] = 3
    d[4:7, 3:6, 2:4] = 5
    return d


def manifest_entry(c):
    e = {k: v for k, v in c.items() if k != "files"}
    e["files"] = sorted(c["files"])
    return e


def write(outdir):
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cases = build()
    names = set()
    for c in cases:
        for n, data in c["files"].items():
            assert n not in names, n
            names.add(n)
            assert len(data) < 100 * 1024, (n, len(data))
            (outdir / n).write_bytes(data)
    (outdir / "manifest.json").write_text(json.dumps([manifest_entry(c) for c in cases], indent=1) + "\n")
    rows = ["# Malformed and tricky inputs", "",
            "Generated by `/usr/bin/python3 tests/data/make_malformed.py` (reproducible; do not edit by hand).",
            "Each is run through `medimg filter`/`medimg labels --json` (tests/cli/test_hostile_files_cli.py)",
            "and both web servers (tests/integration/test_hostile_files.py). `accept`: filtered output equals",
            "`np.where(np.isin(ref, ids), ref, 0)`; `reject`: HTTP status + error id, CLI exit code, no output file.",
            "Fuzzer reproducers are kept in `tests/data/fuzz/` (its README.md), one folder per target.", "",
            "| file | expectation | note |", "|---|---|---|"]
    for c in cases:
        exp = (f"accept ids {c['ids']}" if c["expect"] == "accept"
               else f"reject {c['status']} {'/'.join(c['errors'])}, exit {c['exit']}")
        extra = [n for n in sorted(c["files"]) if n != c["name"]]
        name = c["name"] + (f" (+ {', '.join(extra)})" if extra else "")
        rows.append(f"| `{name}` | {exp} | {c['note']} |")
    (outdir / "README.md").write_text("\n".join(rows) + "\n")
    return cases


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else OUT)


# ---------------------------------------------------------------------------
# Helpers for the tests

def load_manifest(outdir=OUT):
    return json.loads((Path(outdir) / "manifest.json").read_text())


def parse_ids(text):
    out = []
    for item in text.split(","):
        if item:
            out.append(int(item))
    return out


def expected(case, mode="keep"):
    """The array a correct filter returns for an accepted case."""
    ref = reference(case["ref"])
    ids = parse_ids(case["ids"])
    if ref.dtype.kind in "iu":
        # Exact integer comparison (never through double).
        sel = np.zeros(ref.shape, dtype=bool)
        for i in ids:
            if ref.dtype.kind == "u" and i < 0:
                continue
            sel |= ref == np.array(i).astype(ref.dtype) if _fits(i, ref.dtype) else False
    else:
        sel = np.isin(ref, np.array(ids, dtype=np.float64))
    if mode == "mask":
        return sel.astype(np.uint8)
    return np.where(sel, ref, np.zeros((), dtype=ref.dtype))


def _fits(i, dtype):
    info = np.iinfo(dtype)
    return info.min <= i <= info.max


def single_bytes(data):
    """The uncompressed bytes of a single-file NIfTI (gzip sniffed)."""
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def extension_region(data):
    """Bytes between the header and vox_offset of a single-file NIfTI-1/2."""
    (size,) = struct.unpack("<i", data[:4])
    endian = "<" if size in (348, 540) else ">"
    (size,) = struct.unpack(endian + "i", data[:4])
    if size == 348:
        (vox,) = struct.unpack(endian + "f", data[108:112])
    else:
        (vox,) = struct.unpack(endian + "q", data[168:176])
    return data[size:int(vox)]


def extension_chain_valid(region, endian):
    """The rule of docs/ARCHITECTURE.md for `region` (extender + extensions):
    wherever 8 bytes remain, an esize >= 16, a multiple of 16, within the
    region."""
    pos = 4
    while len(region) - pos >= 8:
        (esize,) = struct.unpack(endian + "i", region[pos:pos + 4])
        if esize < 16 or esize % 16 or esize > len(region) - pos:
            return False
        pos += esize
    return True


def expected_extension_region(data):
    """The region an output must carry for input `data` (a single file):
    verbatim, with the extension flag written as 0 when it is set over an
    invalid chain."""
    region = bytearray(extension_region(data))
    (size,) = struct.unpack("<i", data[:4])
    endian = "<" if size in (348, 540) else ">"
    if region and region[0] and not extension_chain_valid(bytes(region), endian):
        region[0] = 0
    return bytes(region)


def read_volume(path_or_bytes):
    """(image, voxel values) of an output as nibabel sees them: integers
    exactly when unscaled, else scaled doubles. The extension flag is cleared
    first (extensions are copied verbatim, valid or not, and nibabel gives up
    on invalid ones; they never affect the voxels)."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    data = bytearray(single_bytes(data))
    (size,) = struct.unpack("<i", data[:4])
    if size not in (348, 540):
        size = struct.unpack(">i", data[:4])[0]
    data[size:size + 4] = b"\0\0\0\0"
    cls = nib.Nifti1Image if size == 348 else nib.Nifti2Image
    img = cls.from_bytes(bytes(data))
    return img, np.asanyarray(img.dataobj)


def same_values(got, want):
    """Exact comparison; integers compared as integers when both are."""
    got = np.asarray(got)
    want = np.asarray(want)
    if got.shape != want.shape:
        return False
    if got.dtype.kind in "iu" and want.dtype.kind in "iu":
        return bool(np.all(got.astype(object) == want.astype(object))) if \
            (got.dtype.itemsize == 8 or want.dtype.itemsize == 8) else bool(np.array_equal(got, want))
    return bool(np.array_equal(got.astype(np.float64), want.astype(np.float64)))


# Product defects these files expose (tests mark them xfail(strict=True));
# name -> (checks that fail, reason). Checks: "keep", "mask", "labels".
KNOWN_BUGS = {}

# Mask mode is run on these (keep mode on every accepted file).
MASK_CASES = ("valid_int16.nii.gz", "bigendian_int16.nii", "nifti2_bigendian.nii.gz", "type_uint8.nii",
              "type_int64_bigids.nii.gz", "type_uint64_huge_selected.nii", "type_float32_integral.nii",
              "scaled_slope2.nii", "scaled_inter_odd.nii", "four_d.nii.gz", "analyze_pair.hdr",
              "ni1_pair_allgz.hdr.gz", "gzip_named_plain.nii", "gzip_multimember.nii.gz")

# Where the region between header and vox_offset must come back verbatim.
REGION_CASES = ("extension_kept.nii", "extension_garbage.nii", "vox_offset_1024.nii",
                "extension_esize_zero.nii", "extension_esize_8.nii", "extension_esize_negative.nii.gz",
                "extension_esize_huge.nii", "extension_esize_not16.nii",
                "extension_past_vox_offset.nii.gz", "extension_second_bad.nii",
                "extension_chain_bigendian.nii", "nifti2_extension_esize_zero.nii")
# Of those, the ones whose extension flag is set over an invalid chain.
BROKEN_CHAIN_CASES = tuple(n for n in REGION_CASES if n.startswith(("extension_esize", "extension_past",
                                                                    "extension_second", "nifti2_extension",
                                                                    "extension_garbage")))


def marks_for(name, check):
    import pytest
    bug = KNOWN_BUGS.get(name)
    if bug and check in bug[0]:
        return [pytest.mark.xfail(strict=True, reason=bug[1])]
    return []
