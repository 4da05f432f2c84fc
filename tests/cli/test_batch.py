"""`medimg filter` in scripts and pipelines (man/medimg.1): batches that
refuse to overwrite before writing anything, --no-clobber/--force,
--keep-tree, --files-from, -j, --json lines, exit statuses of the first
failure, re-runs over an output folder, stdin as IN, and `labels`/`info` on
several files. Every output is read back with nibabel."""
import json
import os
import pathlib
import pty
import subprocess

import nibabel as nib
import numpy as np
import pytest

from conftest import MEDIMG, label_volume, load, run, write_nifti

IDS = [1, 5, 10, 11, 12]


def kept(d):
    return np.where(np.isin(d, IDS), d, 0)


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def patients(tmp_path):
    """Two patients whose label maps share the same file name (as VISTA3D's
    voxels/*/original/all.nii.gz do), with different contents."""
    paths, data = [], []
    for i, pid in enumerate(("PA1", "PA2")):
        folder = tmp_path / "data" / pid / "voxels" / "scan" / "original"
        folder.mkdir(parents=True)
        d = label_volume(seed=i)
        write_nifti(folder / "all.nii.gz", d)
        paths.append(folder / "all.nii.gz")
        data.append(d)
    return paths, data


def test_same_names_collide_before_anything_is_written(tmp_path, patients):
    paths, _ = patients
    outdir = tmp_path / "out"
    p = run("filter", "--labels", "1,5,10-12", "--outdir", outdir, *paths)
    assert p.returncode == 2, p.stderr
    assert str(paths[1]) in p.stderr and str(paths[0]) in p.stderr and "--keep-tree" in p.stderr
    assert not outdir.exists()   # not even the folder


def test_keep_tree_over_two_patients(tmp_path, patients):
    paths, data = patients
    outdir = tmp_path / "out"
    rel = [p.relative_to(tmp_path) for p in paths]
    run("filter", "--labels", "1,5,10-12", "--outdir", outdir, "--keep-tree", *rel,
        cwd=tmp_path, check=0)
    assert files_under(outdir) == [
        "data/PA1/voxels/scan/original/filtered_all.nii.gz",
        "data/PA2/voxels/scan/original/filtered_all.nii.gz"]
    for r, d in zip(rel, data):
        got = load(outdir / r.parent / "filtered_all.nii.gz")[1]
        np.testing.assert_array_equal(got, kept(d))


def test_keep_tree_refuses_dot_dot(tmp_path, patients):
    paths, _ = patients
    sub = tmp_path / "sub"
    sub.mkdir()
    p = run("filter", "--labels", "1", "--outdir", tmp_path / "out", "--keep-tree",
            os.path.relpath(paths[0], sub), cwd=sub)
    assert p.returncode == 2 and "'..'" in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture
def three(tmp_path):
    d = [label_volume(seed=s) for s in range(3)]
    names = [tmp_path / f"s{i}.nii.gz" for i in range(3)]
    for n, v in zip(names, d):
        write_nifti(n, v)
    return names, d


def test_existing_output_refused_before_any_write(tmp_path, three):
    names, _ = three
    outdir = tmp_path / "out"
    outdir.mkdir()
    # Only the LAST input's output exists: a batch that checked as it went
    # would already have written the first two.
    (outdir / "filtered_s2.nii.gz").write_bytes(b"precious")
    p = run("filter", "--labels", "1", "--outdir", outdir, *names)
    assert p.returncode == 2, p.stderr
    assert "filtered_s2.nii.gz exists" in p.stderr and "--force" in p.stderr
    assert files_under(outdir) == ["filtered_s2.nii.gz"]
    assert (outdir / "filtered_s2.nii.gz").read_bytes() == b"precious"


def test_no_clobber_skips_and_force_overwrites(tmp_path, three):
    names, d = three
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "filtered_s1.nii.gz").write_bytes(b"precious")
    p = run("filter", "--labels", "1,5,10-12", "--outdir", outdir, "--no-clobber", "--json",
            *names, check=0)
    lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
    assert [l["status"] for l in lines] == ["ok", "skipped", "ok"]
    assert (outdir / "filtered_s1.nii.gz").read_bytes() == b"precious"
    np.testing.assert_array_equal(load(outdir / "filtered_s0.nii.gz")[1], kept(d[0]))
    run("filter", "--labels", "1,5,10-12", "--outdir", outdir, "--force", *names, check=0)
    np.testing.assert_array_equal(load(outdir / "filtered_s1.nii.gz")[1], kept(d[1]))
    p = run("filter", "--labels", "1", "--outdir", outdir, "--force", "--no-clobber", *names)
    assert p.returncode == 2 and "exclude" in p.stderr


def test_no_clobber_still_refuses_a_collision_before_any_write(tmp_path, three, patients):
    names, _ = three
    paths, _ = patients
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "filtered_s1.nii.gz").write_bytes(b"precious")
    # s0 and s2 could be written and s1 skipped, but the two patients' maps,
    # last in the list, share one output: the batch stops before any write.
    p = run("filter", "--labels", "1", "--outdir", outdir, "--no-clobber", "--json",
            *names, *paths)
    assert p.returncode == 2, p.stderr
    assert f"is also that of {paths[0]}" in p.stderr and "nothing written" in p.stderr, p.stderr
    assert p.stdout == b""
    assert files_under(outdir) == ["filtered_s1.nii.gz"]
    assert (outdir / "filtered_s1.nii.gz").read_bytes() == b"precious"


def test_exit_status_per_case_is_the_first_failure_in_input_order(tmp_path, three):
    names, d = three
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(names[0].read_bytes()[:200])
    missing = tmp_path / "missing.nii.gz"
    cases = [([names[0], names[1]], 0, [0, 0]),
             ([names[0], corrupt, missing], 3, [0, 3, 1]),
             ([missing, names[2], corrupt], 1, [1, 0, 3])]
    for i, (inputs, status, per_file) in enumerate(cases):
        outdir = tmp_path / f"o{i}"
        p = run("filter", "--labels", "1,5,10-12", "--outdir", outdir, "--json", *inputs)
        assert p.returncode == status, (i, p.stderr)
        lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
        assert [l["exit_status"] for l in lines] == per_file
        assert [l["status"] for l in lines] == ["ok" if s == 0 else "error" for s in per_file]
        # Every failure is on stderr, naming its file; the good ones are written.
        for l in lines:
            if l["status"] == "error":
                assert l["input"] in p.stderr
            else:
                k = names.index(pathlib.Path(l["input"]))
                np.testing.assert_array_equal(load(l["output"])[1], kept(d[k]))


def test_rerun_in_place_never_makes_filtered_filtered(tmp_path, three):
    names, d = three
    run("filter", "--labels", "1,5,10-12", "--outdir", ".", *[n.name for n in names],
        cwd=tmp_path, check=0)
    everything = sorted(p.name for p in tmp_path.glob("*.nii.gz"))
    p = run("filter", "--labels", "1,5,10-12", "--outdir", ".", "--force", "--json",
            *everything, cwd=tmp_path, check=0)
    assert not list(tmp_path.glob("filtered_filtered_*"))
    status = {json.loads(l)["input"]: json.loads(l)["status"]
              for l in p.stdout.decode().splitlines()}
    assert status == {**{n.name: "ok" for n in names},
                      **{f"filtered_{n.name}": "skipped" for n in names}}
    np.testing.assert_array_equal(load(tmp_path / "filtered_s0.nii.gz")[1], kept(d[0]))


def test_files_from_stdin_with_two_jobs_json_lines(tmp_path):
    # Big and small files interleaved, so with -j 2 they finish out of order.
    inputs, data = [], []
    for i in range(6):
        shape = (96, 96, 64) if i % 2 == 0 else (8, 8, 4)
        d = label_volume(shape=shape, seed=i)
        f = tmp_path / f"in{i}.nii.gz"
        write_nifti(f, d)
        inputs.append(f)
        data.append(d)
    missing = tmp_path / "missing.nii.gz"
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(inputs[1].read_bytes()[:200])
    order = [inputs[0], missing, inputs[1], corrupt, *inputs[2:]]
    outdir = tmp_path / "out"
    listing = "".join(f"{p}\n" for p in order[1:]) + "\n"
    p = run("filter", "--labels", "1,5,10-12", "--outdir", outdir, "-j", "2", "--json",
            "--files-from", "-", order[0], input=listing.encode())
    # The first failure in input order decides the status: missing (1), not
    # the corrupt file (3) after it.
    assert p.returncode == 1, p.stderr
    lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
    assert [l["input"] for l in lines] == [str(x) for x in order]
    assert set(lines[0]) >= {"input", "output", "status", "error", "voxels_selected", "seconds"}
    by = {l["input"]: l for l in lines}
    assert by[str(missing)]["status"] == "error" and by[str(missing)]["exit_status"] == 1
    assert by[str(corrupt)]["status"] == "error" and by[str(corrupt)]["exit_status"] == 3
    assert by[str(corrupt)]["error_code"] in ("truncated_data", "bad_gzip")
    # Errors on stderr name their file, in input order.
    err = p.stderr.splitlines()
    assert str(missing) in err[0] and str(corrupt) in err[1], err
    for f, d in zip(inputs, data):
        line = by[str(f)]
        assert line["status"] == "ok" and line["error"] is None
        assert line["output"] == str(outdir / f"filtered_{f.name}")
        assert line["voxels_selected"] == int(np.isin(d, IDS).sum())
        assert line["seconds"] >= 0
        np.testing.assert_array_equal(load(line["output"])[1], kept(d))
    # Same order, same status with -j 1 and -j4 spelt attached.
    for jobs in (["-j", "1"], ["-j4"]):
        q = run("filter", "--labels", "1,5,10-12", "--outdir", tmp_path / f"o{jobs[-1]}",
                *jobs, "--json", "--files-from", "-", order[0], input=listing.encode())
        assert q.returncode == 1
        assert [json.loads(l)["input"] for l in q.stdout.decode().splitlines()] == \
            [str(x) for x in order]


def test_files_from_file(tmp_path, three):
    names, d = three
    lst = tmp_path / "list.txt"
    lst.write_text("\n".join(map(str, names)) + "\r\n")
    run("filter", "--labels", "1,5,10-12", "--outdir", tmp_path / "out", "--files-from", lst,
        check=0)
    assert files_under(tmp_path / "out") == [f"filtered_{n.name}" for n in names]
    p = run("filter", "--labels", "1", "--outdir", tmp_path / "o2", "--files-from",
            tmp_path / "nope.txt")
    assert p.returncode == 1 and "nope.txt" in p.stderr


def test_summary_line_on_a_tty(tmp_path, three):
    names, _ = three
    leader, follower = pty.openpty()
    try:
        p = subprocess.run([str(MEDIMG), "filter", "--labels", "1", "--outdir",
                            str(tmp_path / "out"), *map(str, names)],
                           stdout=subprocess.PIPE, stderr=follower, timeout=60)
        os.close(follower)
        follower = -1
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    assert p.returncode == 0
    last = out.decode().replace("\r\n", "\n").split("\n")[-2]
    assert "3 written, 0 skipped, 0 failed of 3" in last, out


def test_batch_only_options_need_outdir(tmp_path, three):
    names, _ = three
    for opt in (["--json"], ["-j", "2"], ["--keep-tree"], ["--force"]):
        p = run("filter", names[0], tmp_path / "o.nii.gz", "--labels", "1", *opt)
        assert p.returncode == 2 and "--outdir" in p.stderr, opt


# --- stdin ---------------------------------------------------------------------

def test_stdin_from_a_pipe(tmp_path, three):
    names, d = three
    out = tmp_path / "o.nii.gz"
    cat = subprocess.Popen(["cat", str(names[0])], stdout=subprocess.PIPE)
    p = subprocess.run([str(MEDIMG), "filter", "-", str(out), "--labels", "1,5,10-12"],
                       stdin=cat.stdout, capture_output=True, timeout=60)
    cat.stdout.close()
    cat.wait()
    assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(load(out)[1], kept(d[0]))
    img = nib.load(str(out))
    np.testing.assert_allclose(img.affine, nib.load(str(names[0])).affine)


def test_stdin_to_stdout_plain_nii_input(tmp_path):
    d = label_volume()
    src = tmp_path / "plain.nii"
    write_nifti(src, d)
    with open(src, "rb") as f:   # a regular file on stdin, read in place
        p = subprocess.run([str(MEDIMG), "filter", "-", "-", "--labels", "1,5,10-12"],
                           stdin=f, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout[:2] == b"\x1f\x8b"   # stdout from stdin: gzip
    out = tmp_path / "got.nii.gz"
    out.write_bytes(p.stdout)
    np.testing.assert_array_equal(load(out)[1], kept(d))


def test_pair_on_stdin_refused_clearly(tmp_path):
    write_nifti(tmp_path / "pair.img", label_volume(), cls=nib.Nifti1Pair)
    out = tmp_path / "o.nii.gz"
    p = run("filter", "-", out, "--labels", "1", input=(tmp_path / "pair.hdr").read_bytes())
    assert p.returncode == 2, p.stderr
    assert "pair cannot be read from stdin" in p.stderr
    assert not out.exists()


def test_corrupt_stdin_names_stdin(tmp_path, three):
    names, _ = three
    out = tmp_path / "o.nii.gz"
    p = run("filter", "-", out, "--labels", "1", input=names[0].read_bytes()[:300])
    assert p.returncode == 3 and p.stderr.startswith("medimg filter: stdin: "), p.stderr
    assert not out.exists()


def test_single_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "nothere.nii.gz"
    p = run("filter", missing, tmp_path / "o.nii.gz", "--labels", "1")
    assert p.returncode == 1 and str(missing) in p.stderr


def test_single_no_clobber(tmp_path, three):
    names, _ = three
    out = tmp_path / "o.nii.gz"
    out.write_bytes(b"keep")
    p = run("filter", names[0], out, "--labels", "1", "--no-clobber")
    assert p.returncode == 2 and out.read_bytes() == b"keep"


# --- labels and info on several files -----------------------------------------

@pytest.mark.parametrize("command", ["labels", "info"])
def test_several_files_json_lines_with_path_as_given(tmp_path, patients, command):
    paths, data = patients
    rel = [str(p.relative_to(tmp_path)) for p in paths]
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti file at all" * 20)
    p = run(command, "--json", rel[0], "bad.nii.gz", rel[1], cwd=tmp_path)
    assert p.returncode == 3, p.stderr
    assert "bad.nii.gz" in p.stderr
    lines = [json.loads(l) for l in p.stdout.decode().splitlines()]
    assert [l["path"] for l in lines] == [rel[0], rel[1]]
    if command == "labels":
        for l, d in zip(lines, data):
            ids = sorted(int(i) for i in np.unique(d) if i)
            assert [x["id"] for x in l["labels"]] == ids
            assert l["voxel_filename"] == "all.nii.gz"
    else:
        assert all(l["dims"][:3] == list(data[0].shape) for l in lines)
    text = run(command, *rel, cwd=tmp_path, check=0).stdout.decode()
    assert text.count("all.nii.gz") >= 2


# --- label names ---------------------------------------------------------------

def test_names_with_underscores_any_case(tmp_path):
    from conftest import LABEL_DICT
    ids = json.loads(LABEL_DICT.read_text())
    kidney = ids["right kidney"]
    d = label_volume(ids=(0, kidney, 1, 6))
    src = tmp_path / "seg.nii.gz"
    write_nifti(src, d)
    for spelling in ("right_kidney", "RIGHT KIDNEY", "Right__Kidney", "right_kidney,aorta"):
        out = tmp_path / "o.nii.gz"
        run("filter", src, out, "--names", spelling, check=0)
        want = [kidney, ids["aorta"]] if "aorta" in spelling else [kidney]
        np.testing.assert_array_equal(load(out)[1], np.where(np.isin(d, want), d, 0))
        out.unlink()
    p = run("filter", src, tmp_path / "o.nii.gz", "--names", "right_kidny")
    assert p.returncode == 2
    assert 'unknown label name "right_kidny"; closest known: "right kidney"' in p.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_names_that_are_not_utf8_keep_their_json_lines(tmp_path):
    """A file name may hold any bytes, and JSON only UTF-8: every input still
    gets its line (the bytes shown as U+FFFD), the batch ends with the first
    failure's status, and no output is left half-written."""
    d = label_volume()
    good = tmp_path / "good.nii.gz"
    odd_name = os.fsdecode(b"odd\xff.nii.gz")
    odd = tmp_path / odd_name
    for path in (good, odd):
        write_nifti(path, d)
    junk = tmp_path / os.fsdecode(b"junk\xfe.nii.gz")
    junk.write_bytes(b"\x1f\x8b\x08\x00")
    out = tmp_path / "out"
    p = run("filter", "--labels", "1,5", "--outdir", out, "-j", "2", "--json", good, junk, odd)
    assert p.returncode == 3, p.stderr
    lines = [json.loads(l) for l in p.stdout.decode("utf-8").splitlines()]
    assert [l["status"] for l in lines] == ["ok", "error", "ok"], lines
    assert lines[1]["input"].endswith("junk\ufffd.nii.gz") and lines[1]["error"], lines[1]
    assert files_under(out) == sorted(["filtered_good.nii.gz", "filtered_" + odd_name]), files_under(out)
    for name in files_under(out):
        np.testing.assert_array_equal(load(out / name)[1], np.where(np.isin(d, [1, 5]), d, 0))
    for command in ("info", "labels"):
        q = run(command, "--json", odd, check=0)
        line = json.loads(q.stdout.decode("utf-8"))
        assert line["path"].endswith("odd\ufffd.nii.gz"), line
