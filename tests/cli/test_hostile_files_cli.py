"""Every file of tests/data/malformed/ through `medimg filter` and
`medimg labels --json` (man/medimg.1, docs/ARCHITECTURE.md): accepted files give voxel-exact
output (nibabel as the independent reader), rejected ones exit with the
documented code and leave no output file behind."""
import json
import shutil
import sys

import numpy as np
import pytest

from conftest import SOURCE_DIR, run

sys.path.insert(0, str(SOURCE_DIR / "tests" / "data"))
import make_malformed as mm  # noqa: E402

CASES = mm.load_manifest(SOURCE_DIR / "tests" / "data" / "malformed")
ACCEPT = [c for c in CASES if c["expect"] == "accept"]
REJECT = [c for c in CASES if c["expect"] == "reject"]
# Fuzz reproducers whose input holds a file (tests/data/fuzz/README.md): the
# filter target's after its 4 option bytes, the header target's after its
# layout byte.
FUZZ_DIR = SOURCE_DIR / "tests" / "data" / "fuzz"
FUZZ_SKIP = {"filter": 4, "header": 1}
FUZZ = sorted(f"{t}/{p.name}" for t in FUZZ_SKIP for p in (FUZZ_DIR / t).glob("*")
              if p.is_file() and p.name != "expected.txt")


def stage(case, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for n in case["files"]:
        shutil.copyfile(SOURCE_DIR / "tests" / "data" / "malformed" / n, d / n)
    return d / case["name"]


def test_corpus_is_reproducible(tmp_path):
    """The committed files are exactly what make_malformed.py generates."""
    fresh = tmp_path / "fresh"
    mm.write(fresh)
    committed = SOURCE_DIR / "tests" / "data" / "malformed"
    for case in CASES:
        for n in case["files"]:
            assert (fresh / n).read_bytes() == (committed / n).read_bytes(), n
    assert json.loads((fresh / "manifest.json").read_text()) == CASES
    assert (fresh / "README.md").read_text() == (committed / "README.md").read_text()


def test_corpus_covers_enough():
    assert len(CASES) >= 60
    assert len(ACCEPT) >= 20 and len(REJECT) >= 40


FILTER_PARAMS = [pytest.param(c, m, id=f"{c['name']}-{m}", marks=mm.marks_for(c["name"], m))
                 for c in ACCEPT for m in ("keep", "mask") if m == "keep" or c["name"] in mm.MASK_CASES]


@pytest.mark.parametrize("case,mode", FILTER_PARAMS)
def test_filter_accepts(case, mode, tmp_path):
    src = stage(case, tmp_path)
    out = tmp_path / "out.nii.gz"
    p = run("filter", src, out, "--labels", case["ids"], "--mode", mode)
    assert p.returncode == 0, p.stderr
    img, got = mm.read_volume(out)
    want = mm.expected(case, mode)
    assert mm.same_values(got, want), (case["note"], np.unique(got), np.unique(want))
    if mode == "mask":
        assert img.get_data_dtype() == np.uint8
    elif case["name"] in mm.REGION_CASES:
        assert mm.extension_region(mm.single_bytes(out.read_bytes())) == \
            mm.expected_extension_region(mm.single_bytes(src.read_bytes())), \
            "extension region not copied verbatim (flag 0 only over an invalid chain)"


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"], marks=mm.marks_for(c["name"], "labels"))
                                  for c in ACCEPT])
def test_labels_accepts(case, tmp_path):
    src = stage(case, tmp_path)
    p = run("labels", src, "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    ids = [entry["id"] for entry in doc["labels"]]
    ref = mm.reference(case["ref"])
    want = sorted({int(v) for v in np.unique(ref) if v != 0})
    assert ids == want, case["note"]


@pytest.mark.parametrize("case", REJECT, ids=[c["name"] for c in REJECT])
def test_filter_rejects(case, tmp_path):
    src = stage(case, tmp_path)
    out = tmp_path / "out" / "result.nii.gz"
    out.parent.mkdir()
    p = run("filter", src, out, "--labels", case["ids"])
    assert p.returncode == case["exit"], (case["note"], p.returncode, p.stderr)
    assert p.stderr.strip(), "no message on stderr"
    assert list(out.parent.iterdir()) == [], "a failed filter left a file behind"


@pytest.mark.parametrize("case", REJECT, ids=[c["name"] for c in REJECT])
def test_labels_rejects(case, tmp_path):
    src = stage(case, tmp_path)
    p = run("labels", src, "--json")
    assert p.returncode == case["exit"], (case["note"], p.returncode, p.stderr)
    assert p.stdout == b"" or b"error" in p.stdout


@pytest.mark.parametrize("name", FUZZ or ["(none)"])
def test_fuzz_reproducers_do_not_crash(name, tmp_path):
    """Inputs the fuzzers once crashed on: any clean answer, never a signal."""
    if name == "(none)":
        pytest.skip("no fuzzer reproducers kept")
    target = name.split("/")[0]
    src = tmp_path / (name.split("/")[1] + ".nii")
    src.write_bytes((FUZZ_DIR / name).read_bytes()[FUZZ_SKIP[target]:])
    for args in (("filter", src, tmp_path / "o.nii.gz", "--labels", "1-5"), ("labels", src, "--json")):
        p = run(*args)
        assert p.returncode in (0, 1, 2, 3), (args, p.returncode, p.stderr)
