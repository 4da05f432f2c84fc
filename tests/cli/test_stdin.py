"""`medimg filter - OUT` over a real pipe (man/medimg.1): the image is read
once as it arrives, in bounded memory and without a copy, except for the
filters that read the voxels twice (--crop, float or scaled maps), which keep
one copy of the voxels in $TMPDIR. Outputs are compared with filtering the
same file, read back with nibabel; broken streams give exit status 3, a
message naming stdin, and no output file."""
import gzip
import os
import subprocess
import threading
import time

import nibabel as nib
import numpy as np
import pytest

from conftest import MEDIMG, label_volume, load, run, write_nifti

IDS = "1,5,10-12"
MISSING_TMP = "/nonexistent/medimg-tmp"


def feed(proc, data, chunk=7919):
    """Writes `data` to proc's stdin from a thread, in chunks, then closes it."""
    def writer():
        try:
            for off in range(0, len(data), chunk):
                proc.stdin.write(data[off:off + chunk])
                proc.stdin.flush()
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
    t = threading.Thread(target=writer)
    t.start()
    return t


def filter_pipe(data, out, *args, env=None, prefix=(), chunk=7919):
    """`medimg filter - out args` with `data` written into a pipe on its stdin."""
    proc = subprocess.Popen([*prefix, str(MEDIMG), "filter", "-", str(out), *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)
    got = {}

    def drain(name, stream):
        got[name] = stream.read()
    readers = [threading.Thread(target=drain, args=(n, s))
               for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for r in readers:
        r.start()
    t = feed(proc, data, chunk)   # (communicate() would close stdin at once)
    proc.wait(timeout=300)
    for r in (t, *readers):
        r.join()
    return proc.returncode, got["out"], got["err"].decode("utf-8", "replace")


def env_with(**kw):
    env = dict(os.environ)
    env.update(kw)
    return env


def same_output(a, b):
    """Two filter outputs: the same NIfTI bytes once decompressed, and the
    same voxels and affine through nibabel."""
    def plain(p):
        raw = p.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    assert plain(a) == plain(b)
    ia, da = load(a)
    ib, db = load(b)
    np.testing.assert_array_equal(da, db)
    np.testing.assert_allclose(ia.affine, ib.affine)


def no_leftovers(folder, *keep):
    assert sorted(p.name for p in folder.iterdir()) == sorted(keep)


@pytest.fixture
def label_map(tmp_path):
    d = label_volume(shape=(70, 60, 50), seed=3)
    d[20:40, 10:30, 5:25] = 7   # the only 7s: a box for --crop to find
    return d


@pytest.mark.parametrize("name", ["in.nii.gz", "in.nii"])
@pytest.mark.parametrize("mode", ["keep", "mask"])
def test_pipe_in_chunks_is_identical_to_the_file_without_a_copy(tmp_path, label_map, name, mode):
    src = tmp_path / name
    write_nifti(src, label_map)
    data = src.read_bytes()
    assert (data[:2] == b"\x1f\x8b") == name.endswith(".gz")
    ref = tmp_path / "ref.nii.gz"
    run("filter", src, ref, "--labels", IDS, "--mode", mode, check=0)
    out = tmp_path / "out" / "o.nii.gz"
    out.parent.mkdir()
    # No temporary directory at all: a copy of stdin could not be made.
    rc, _, err = filter_pipe(data, out, "--labels", IDS, "--mode", mode,
                             env=env_with(TMPDIR=MISSING_TMP), chunk=4093)
    assert rc == 0, err
    same_output(out, ref)
    want = np.isin(label_map, [1, 5, 10, 11, 12])
    np.testing.assert_array_equal(load(out)[1], np.where(want, label_map, 0) if mode == "keep"
                                  else want.astype(np.uint8))
    no_leftovers(out.parent, "o.nii.gz")


def test_pipe_to_stdout_and_a_map(tmp_path, label_map):
    src = tmp_path / "in.nii"
    write_nifti(src, label_map)
    ref = tmp_path / "ref.nii.gz"
    run("filter", src, ref, "--labels", IDS, "--map", "5:2", check=0)
    rc, stdout, err = filter_pipe(src.read_bytes(), "-", "--labels", IDS, "--map", "5:2",
                                  env=env_with(TMPDIR=MISSING_TMP))
    assert rc == 0, err
    assert stdout[:2] == b"\x1f\x8b"   # stdout from stdin: gzip
    got = tmp_path / "got.nii.gz"
    got.write_bytes(stdout)
    same_output(got, ref)


@pytest.mark.parametrize("name", ["in.nii.gz", "in.nii"])
def test_crop_from_a_pipe_is_spooled_and_identical(tmp_path, label_map, name):
    src = tmp_path / name
    write_nifti(src, label_map)
    ref = tmp_path / "ref.nii.gz"
    run("filter", src, ref, "--labels", "7", "--crop", "--margin", "2", check=0)
    assert load(ref)[1].shape == (24, 24, 24)
    spool = tmp_path / "tmp"
    spool.mkdir()
    out = tmp_path / "o.nii.gz"
    rc, _, err = filter_pipe(src.read_bytes(), out, "--labels", "7", "--crop", "--margin", "2",
                             env=env_with(TMPDIR=str(spool)))
    assert rc == 0, err
    same_output(out, ref)
    assert list(spool.iterdir()) == []   # the copy was never a named file
    # Without a temporary directory the crop cannot copy stdin: a clear
    # refusal naming the directory, and no output.
    out2 = tmp_path / "o2.nii.gz"
    rc, _, err = filter_pipe(src.read_bytes(), out2, "--labels", "7", "--crop",
                             env=env_with(TMPDIR=MISSING_TMP))
    assert rc == 1, err
    assert err.startswith("medimg filter: stdin: ") and MISSING_TMP in err, err
    assert not out2.exists()


def test_float_label_map_from_a_pipe_is_verified_through_the_copy(tmp_path, label_map):
    src = tmp_path / "f.nii.gz"
    write_nifti(src, label_map.astype(np.float32))
    ref = tmp_path / "ref.nii.gz"
    run("filter", src, ref, "--labels", IDS, check=0)
    out = tmp_path / "o.nii.gz"
    rc, _, err = filter_pipe(src.read_bytes(), out, "--labels", IDS)
    assert rc == 0, err
    same_output(out, ref)
    # A non-integral value is found before anything is written.
    bad = label_map.astype(np.float32)
    bad[-1, -1, -1] = 2.5
    write_nifti(src, bad)
    rc, _, err = filter_pipe(src.read_bytes(), out, "--labels", IDS)
    assert rc == 3 and err.startswith("medimg filter: stdin: "), err


def cut_cases(tmp_path, label_map):
    src_gz, src = tmp_path / "c.nii.gz", tmp_path / "c.nii"
    write_nifti(src_gz, label_map)
    write_nifti(src, label_map)
    gz, plain = src_gz.read_bytes(), src.read_bytes()
    return {
        "gzip, inside the voxels": gz[:len(gz) // 2],
        "gzip, inside the trailer": gz[:-3],
        "plain, inside the voxels": plain[:len(plain) - 1000],
        "gzip, inside the header": gz[:40],
        "plain, inside the header": plain[:200],
        "plain, inside the extender": plain[:350],
        "nothing": b"",
    }


@pytest.mark.parametrize("crop", [False, True])
def test_a_stream_cut_short_is_status_3_names_stdin_and_writes_nothing(tmp_path, label_map, crop):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for case, data in cut_cases(tmp_path, label_map).items():
        out = out_dir / "o.nii.gz"
        rc, _, err = filter_pipe(data, out, "--labels", IDS, *(["--crop"] if crop else []))
        assert rc == 3, (case, rc, err)
        assert err.startswith("medimg filter: stdin: "), (case, err)
        assert err.count("\n") == 1, (case, err)   # one line
        no_leftovers(out_dir)   # neither the output nor a temporary


def test_a_pair_on_a_pipe_is_refused_gzip_or_not(tmp_path, label_map):
    write_nifti(tmp_path / "p.img", label_map, cls=nib.Nifti1Pair)
    hdr = (tmp_path / "p.hdr").read_bytes()
    for data in (hdr, gzip.compress(hdr), hdr + (tmp_path / "p.img").read_bytes()):
        out = tmp_path / "o.nii.gz"
        rc, _, err = filter_pipe(data, out, "--labels", "1")
        assert rc == 2, err
        assert "pair cannot be read from stdin" in err and "name the .hdr" in err, err
        assert not out.exists()


# --- memory: a clinical-size map streams in bounded memory -------------------

@pytest.fixture(scope="module")
def clinical(tmp_path_factory):
    root = tmp_path_factory.mktemp("clinical")
    run("demo", root, "--size", "512x512x400", "--seed", "3", "--quiet", check=0)
    return root / "PA00000002" / "scans" / "PA00000002_CT.nii.gz"


def peak_rss_kib(err):
    """The last line /usr/bin/time -f %M printed: peak RSS in KiB."""
    return int(err.strip().splitlines()[-1])


def test_peak_memory_of_a_pipe_stays_near_the_file_case(tmp_path, clinical):
    decompressed = 512 * 512 * 400 * 2
    out_file, out_pipe = tmp_path / "file.nii.gz", tmp_path / "pipe.nii.gz"
    timed = ["/usr/bin/time", "-f", "%M"]
    p = subprocess.run([*timed, str(MEDIMG), "filter", str(clinical), str(out_file), "--labels",
                        "1,6"], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    file_kib = peak_rss_kib(p.stderr.decode())
    started = time.monotonic()
    rc, _, err = filter_pipe(clinical.read_bytes(), out_pipe, "--labels", "1,6", prefix=timed,
                             env=env_with(TMPDIR=MISSING_TMP), chunk=65536)
    assert rc == 0, err
    pipe_kib = peak_rss_kib(err)
    print(f"peak RSS: file {file_kib} KiB, pipe {pipe_kib} KiB, "
          f"pipe run {time.monotonic() - started:.2f} s; decompressed {decompressed >> 10} KiB")
    same_output(out_pipe, out_file)
    assert pipe_kib < file_kib + 16 * 1024, (pipe_kib, file_kib)
    assert pipe_kib * 1024 < decompressed // 8, (pipe_kib, decompressed)
