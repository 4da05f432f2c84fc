"""The worker's file access, attacked from inside the data root, through both
web servers (docs/SECURITY.md, "Files the worker reads"; docs/SECURITY.md).

The attacker can write one patient folder (a segmentation service, an
operator, a compromised writer) and nothing else. Whatever they do there:
- no answer of /filtered-scans or /labels carries a byte of a file outside
  the data root or of a hidden entry: a pair partner, a sidecar or a folder
  that leads there is refused (403), also while it is being swapped in and
  out;
- a FIFO (or other non-regular file) never blocks a worker thread: 404 at
  once, and /health keeps answering;
- an answer is the file's own: a recycled inode, an in-place rewrite with
  the mtime put back, a changed partner or sidecar (names in any case)
  give a new answer and a new ETag, never a cached older or another
  patient's one;
- a broken extension chain is written with its flag cleared, so nibabel
  reads the output (docs/ARCHITECTURE.md).
Exact routes (`…/labels/`, `…/LABELS` are 404) are test_exact_routes.py's.

Every file outside the root is readable by the worker's user, so a refusal
is the worker's doing and not a permission error. The data root sits in a
directory Apache's user can enter, so both servers read the very files the
tests change (no mirror)."""
import concurrent.futures
import ctypes
import errno
import gzip
import io
import itertools
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import MEDIMG, SOURCE, request, selected_kinds, start_server
from apache_server import server_readable_dir

sys.path.insert(0, str(SOURCE / "tests" / "data"))
import make_malformed as mm  # noqa: E402

SHAPE = (8, 7, 6)
AFFINE = np.diag([1.5, 1.5, 2.0, 1.0])
LEGIT_IDS = [6, 10, 133]
OUTSIDE_IDS = [201, 202, 250]
# The bytes of the outside file a pair partner points at: int16 voxels
# 165, 90, 195, 60 (all kept by label_ids=0-255), recognisable in any answer.
PATTERN = struct.pack("<4h", 165, 90, 195, 60)
PATTERN_IDS = [60, 90, 165, 195]
OUTSIDE_NAME = "OUTSIDE-NAME-7f3a"
ALL = "label_ids=0-255"
RACE_SECONDS = 3.0


# ---------------------------------------------------------------------------
# Volumes and files

def labels_volume(ids, seed=0):
    """int16 SHAPE holding every id of `ids` in its own block."""
    d = np.zeros(SHAPE, dtype=np.int16)
    for k, i in enumerate(ids):
        d[k % 8, (k + seed) % 7, :] = i
        d[(k + 3) % 8, :, (k + seed) % 6] = i
    return d


def nifti_bytes(data, gz=False):
    raw = nib.Nifti1Image(data, AFFINE).to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if gz else raw


def write_nifti(path, data):
    path = Path(path)
    path.write_bytes(nifti_bytes(data, gz=path.name.lower().endswith(".gz")))
    return path


def write_pair(folder, stem, data, hdr_ext=".hdr", img_ext=".img"):
    """A NIfTI-1 pair `stem+hdr_ext` / `stem+img_ext` (names in any case)."""
    img = nib.Nifti1Pair(data, AFFINE)
    hdr_io, img_io = io.BytesIO(), io.BytesIO()
    img.to_file_map({"header": nib.FileHolder(fileobj=hdr_io), "image": nib.FileHolder(fileobj=img_io)})
    (folder / (stem + hdr_ext)).write_bytes(hdr_io.getvalue())
    (folder / (stem + img_ext)).write_bytes(img_io.getvalue())
    return folder / (stem + hdr_ext), folder / (stem + img_ext)


def volume_of(body):
    """Voxels of a filtered answer, read by nibabel."""
    raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    return np.asanyarray(nib.Nifti1Image.from_bytes(raw).dataobj)


def ids_of(answer):
    return [e["id"] for e in answer.json()["labels"]]


def names_of(answer):
    return {e["id"]: e["name"] for e in answer.json()["labels"]}


def raw_body(answer):
    return gzip.decompress(answer.body) if answer.body[:2] == b"\x1f\x8b" else answer.body


def assert_no_outside(answer, what):
    """No byte, id or name of an outside (or hidden) file in `answer`."""
    assert answer.status < 500, f"{what}: {answer.status} (a 5xx is a bug): {answer!r}"
    body = raw_body(answer) if answer.status == 200 else answer.body
    carries_bytes, carries_text = PATTERN * 2 in body, OUTSIDE_NAME.encode() in body
    assert not carries_bytes, f"{what}: the answer ({answer.status}) carries the outside file's bytes"
    assert not carries_text, f"{what}: the answer ({answer.status}) carries the outside file's text"
    if answer.status == 200 and (answer.header("Content-Type") or "").startswith("application/json"):
        leaked = set(ids_of(answer)) & set(PATTERN_IDS + OUTSIDE_IDS)
        assert not leaked, f"{what}: /labels lists the outside file's ids {sorted(leaked)}"


def assert_refused(answer, what, status=403):
    assert_no_outside(answer, what)
    assert answer.status == status, f"{what}: expected {status}, got {answer!r}"
    assert (answer.header("Content-Type") or "").startswith("application/json"), \
        f"{what}: the refusal is not a JSON error: {answer!r}"
    assert answer.json().get("error"), f"{what}: no error id: {answer!r}"


# ---------------------------------------------------------------------------
# Fixtures

@pytest.fixture(scope="module")
def base():
    """DIR/output (the data root) and DIR/outside, every level readable by
    the workers' user."""
    if not MEDIMG.exists():
        pytest.skip(f"{MEDIMG} is not built")
    old_umask = os.umask(0o022)         # files the tests write stay readable by www-data
    d = server_readable_dir("medimg-access-")
    root, outside = d / "output", d / "outside"
    root.mkdir(mode=0o755)
    outside.mkdir(mode=0o755)
    (outside / "pattern.bin").write_bytes(PATTERN * 4096)
    write_nifti(outside / "outside.nii.gz", labels_volume(OUTSIDE_IDS))
    (outside / "names.json").write_text('{"6": "%s", "10": "%s"}\n' % (OUTSIDE_NAME, OUTSIDE_NAME))
    (outside / "names.txt").write_text(f'6 255 0 0 1 1 1 "{OUTSIDE_NAME}"\n')
    # An outside "patient" for the folder exchange.
    (outside / "patient" / "scans").mkdir(parents=True)
    write_nifti(outside / "patient" / "scans" / "race.nii.gz", labels_volume(OUTSIDE_IDS))
    for p in [d, *d.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    yield {"root": root, "outside": outside}
    os.umask(old_umask)
    if not os.environ.get("MEDIMG_KEEP_TMP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module", params=selected_kinds())
def server(request, base):
    s = start_server(request.param, base["root"], cors_origins="*")
    assert Path(getattr(s, "served_data_root", s.data_root)) == base["root"], \
        "the server must read the data root itself, not a mirror"
    yield s
    s.stop()


_serial = itertools.count()


def new_patient(root, prefix="PACC"):
    pid = f"{prefix}{next(_serial):03d}"
    scans = root / pid / "scans"
    scans.mkdir(parents=True)
    os.chmod(root / pid, 0o755)
    return pid, scans


@pytest.fixture
def patient(base):
    return new_patient(base["root"])


def get(server, path, timeout=30):
    return request(server.base_url, path, timeout=timeout)


def filtered(server, pid, name, query=ALL):
    return get(server, f"/filtered-scans/{pid}/{name}?{query}")


def labels(server, pid, rel):
    return get(server, f"/output/{pid}/{rel}/labels")


def both_routes(server, pid, name):
    """(/labels, /filtered-scans?label_ids=0-255) of {pid}/scans/{name}."""
    return labels(server, pid, f"scans/{name}"), filtered(server, pid, name)


def assert_answers(server, now, before, ids, volume, what):
    """`now` (both routes) is the answer for a file holding `volume` (its
    ids `ids`), with other ETags than `before`."""
    l_now, f_now = now
    l_before, f_before = before
    assert l_now.status == 200 and f_now.status == 200, f"{server.kind}: {what}: {l_now!r} {f_now!r}"
    assert ids_of(l_now) == ids, f"{server.kind}: {what}: /labels answers {ids_of(l_now)}, not {ids}"
    assert l_now.header("ETag") != l_before.header("ETag"), f"{server.kind}: {what}: /labels ETag unchanged"
    got = volume_of(f_now.body)
    assert np.array_equal(got, volume), \
        f"{server.kind}: {what}: filter answers ids {sorted(int(v) for v in np.unique(got))}, not {ids}"
    assert f_now.header("ETag") != f_before.header("ETag"), f"{server.kind}: {what}: filter ETag unchanged"


# ---------------------------------------------------------------------------
# 1. A pair's partner out of the root

@pytest.mark.parametrize("hdr_ext,img_ext", [(".hdr", ".img"), (".HDR", ".IMG")])
def test_pair_partner_outside_root_is_refused(server, base, patient, hdr_ext, img_ext):
    pid, scans = patient
    write_pair(scans, "pair", labels_volume(LEGIT_IDS), hdr_ext, img_ext)
    img = scans / ("pair" + img_ext)
    img.unlink()
    img.symlink_to(base["outside"] / "pattern.bin")
    name = "pair" + hdr_ext
    assert_refused(filtered(server, pid, name), f"{server.kind}: /filtered-scans of {name} "
                   f"whose {img_ext} links out of the root")
    assert_refused(labels(server, pid, f"scans/{name}"),
                   f"{server.kind}: /labels of {name} whose {img_ext} links out of the root")
    assert_refused(get(server, f"/output/{pid}/scans/{name}/info"),
                   f"{server.kind}: /info of {name} whose {img_ext} links out of the root")


def test_pair_partner_linking_to_hidden_file_is_refused(server, patient):
    pid, scans = patient
    write_pair(scans, "pair", labels_volume(LEGIT_IDS))
    (scans / ".voxels").write_bytes(PATTERN * 4096)
    (scans / "pair.img").unlink()
    (scans / "pair.img").symlink_to(".voxels")
    assert_refused(filtered(server, pid, "pair.hdr"),
                   f"{server.kind}: /filtered-scans of a pair whose .img links to a hidden file")
    assert_refused(labels(server, pid, "scans/pair.hdr"),
                   f"{server.kind}: /labels of a pair whose .img links to a hidden file")


def test_pair_partner_linking_inside_root_still_works(server, patient):
    """Links that stay inside the root are allowed (docs/SECURITY.md): the fix
    must not refuse them."""
    pid, scans = patient
    data = labels_volume(LEGIT_IDS)
    (scans.parent / "store").mkdir()
    write_pair(scans.parent / "store", "pair", data)
    write_pair(scans, "pair", data)
    (scans / "pair.img").unlink()
    (scans / "pair.img").symlink_to("../store/pair.img")
    a = filtered(server, pid, "pair.hdr")
    assert a.status == 200, f"{server.kind}: a partner linked inside the root: {a!r}"
    assert np.array_equal(volume_of(a.body), data)
    a = labels(server, pid, "scans/pair.hdr")
    assert a.status == 200 and ids_of(a) == LEGIT_IDS, f"{server.kind}: {a!r}"


# ---------------------------------------------------------------------------
# 2. Sidecars out of the root

@pytest.mark.parametrize("sidecar", ["json", "itksnap"])
def test_sidecar_outside_root_is_refused(server, base, patient, sidecar):
    """A sidecar link leaving the root is refused like any other such path
    (403): its text never becomes label names."""
    pid, scans = patient
    write_nifti(scans / "seg.nii.gz", labels_volume(LEGIT_IDS))
    if sidecar == "json":
        (scans / "seg.nii.gz.labels.json").symlink_to(base["outside"] / "names.json")
    else:
        (scans / "seg.txt").symlink_to(base["outside"] / "names.txt")
    what = f"{server.kind}: {sidecar} sidecar linked out of the root"
    assert_refused(labels(server, pid, "scans/seg.nii.gz"), f"{what}, /labels")
    # Label names in a filter come from the same sidecar.
    a = filtered(server, pid, "seg.nii.gz", f"labels={OUTSIDE_NAME}")
    assert_refused(a, f"{what}, /filtered-scans?labels=<outside name>")


def test_sidecar_linking_inside_root_still_works(server, patient):
    pid, scans = patient
    write_nifti(scans / "seg.nii.gz", labels_volume(LEGIT_IDS))
    (scans.parent / "names.json").write_text('{"6": "site aorta"}\n')
    (scans / "seg.nii.gz.labels.json").symlink_to("../names.json")
    a = labels(server, pid, "scans/seg.nii.gz")
    assert a.status == 200, f"{server.kind}: a sidecar linked inside the root: {a!r}"
    assert names_of(a)[6] == "site aorta"


def itksnap(names):
    return "".join(f'{i} 10 20 30 1 1 1 "{n}"\n' for i, n in names.items())


def test_upper_case_sidecar_is_honoured_and_tracked(server, patient):
    """`CT.NII.GZ` takes its names from `CT.txt`, and a change of `CT.txt`
    changes /labels and its ETag (one set of case-insensitive name rules)."""
    pid, scans = patient
    write_nifti(scans / "CT.NII.GZ", labels_volume(LEGIT_IDS))
    (scans / "CT.txt").write_text(itksnap({6: "site aorta A"}))
    first = labels(server, pid, "scans/CT.NII.GZ")
    assert first.status == 200, first
    assert names_of(first)[6] == "site aorta A", f"{server.kind}: CT.txt not honoured for CT.NII.GZ"
    time.sleep(0.02)
    (scans / "CT.txt").write_text(itksnap({6: "site aorta B", 10: "site kidney"}))
    second = labels(server, pid, "scans/CT.NII.GZ")
    assert second.status == 200, second
    assert names_of(second)[6] == "site aorta B", \
        f"{server.kind}: CT.txt changed, /labels of CT.NII.GZ still gives the old names"
    assert second.header("ETag") != first.header("ETag"), f"{server.kind}: same ETag after the change"


# ---------------------------------------------------------------------------
# 3. Swap races

class Race:
    """Clients asking /filtered-scans (a new query each time, so every
    request computes) and /labels for `targets` while `swap()` runs in a
    thread; bounded by RACE_SECONDS and a request count."""

    def __init__(self, server, targets, legit_volume, legit_ids):
        self.server, self.targets = server, targets
        self.legit_volume, self.legit_ids = legit_volume, legit_ids
        self.answers = {"filter": [], "labels": []}
        self.queries = []
        self.leaks = []
        self.stop = threading.Event()
        self.n = itertools.count()

    def check(self, route, a, where):
        """Records the status; a 200 must be the legitimate answer."""
        self.answers[route].append(a.status)
        assert a.status < 500, f"{where}: {a!r}"
        if a.status != 200:
            return
        if route == "filter":
            got = volume_of(a.body)
            if set(np.unique(got)) & set(OUTSIDE_IDS) or not np.array_equal(got, self.legit_volume):
                self.leaks.append((where, sorted(int(v) for v in np.unique(got))))
        elif ids_of(a) != self.legit_ids:
            self.leaks.append((where, ids_of(a)))

    def client(self, route):
        deadline = time.monotonic() + RACE_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            i = next(self.n)
            if i > 5000:
                break
            pid, rel = self.targets[i % len(self.targets)]
            if route == "filter":
                q = f"label_ids=0-255,{100000 + i}"
                self.queries.append((pid, rel, q))
                a = get(self.server, f"/filtered-scans/{pid}/{rel}?{q}")
            else:
                a = labels(self.server, pid, rel)
            self.check(route, a, f"{route} {pid}/{rel} during the swapping")

    def run(self, swap):
        errors = []

        def swapper():
            try:
                while not self.stop.is_set():
                    swap()
            except Exception as e:      # reported below, never swallowed
                errors.append(e)
                self.stop.set()

        t = threading.Thread(target=swapper)
        t.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                futures = [pool.submit(self.client, r) for r in ("filter", "filter", "labels")]
                for f in futures:
                    f.result()
        finally:
            self.stop.set()
            t.join(10)
        assert not errors, f"the swapping thread failed: {errors[0]!r}"

    def stale_after(self):
        """Swapping stopped on the real file: every query asked during the
        race (a sample) and /labels must now give the real file's answer.
        Returns the ones that do not."""
        stale = []
        for pid, rel, q in self.queries[-40:] + self.queries[:20]:
            a = get(self.server, f"/filtered-scans/{pid}/{rel}?{q}")
            if a.status != 200 or not np.array_equal(volume_of(a.body), self.legit_volume):
                stale.append((f"filter {pid}/{rel}?{q}", a.status,
                              sorted(int(v) for v in np.unique(volume_of(a.body))) if a.status == 200 else a.body[:120]))
        for pid, rel in self.targets:
            for _ in range(3):
                a = labels(self.server, pid, rel)
                if a.status != 200 or ids_of(a) != self.legit_ids:
                    stale.append((f"labels {pid}/{rel}", a.status, ids_of(a) if a.status == 200 else a.body[:120]))
        return stale

    def summary(self):
        return {r: {s: v.count(s) for s in sorted(set(v))} for r, v in self.answers.items()}


def test_race_file_swapped_with_outside_link(server, base, patient):
    """Each segmentation renamed back and forth between a real file and a
    prepared symlink out of the root, each state held about a millisecond.
    The real file is a hard link of one prepared file (one identity, whose
    cached answers are checked afterwards) or, every other time, a fresh
    copy of it (a new identity, so /labels computes again)."""
    pid, scans = patient
    legit = labels_volume(LEGIT_IDS)
    keep = write_nifti(scans / ".real.nii.gz", legit)
    payload = keep.read_bytes()
    outside = base["outside"] / "outside.nii.gz"
    names = [f"race-{k}.nii.gz" for k in range(6)]
    for n in names:
        os.link(keep, scans / n)
    state = {"i": 0}

    def put_real(n, fresh):
        real = scans / f".real-{n}"
        if fresh:
            real.write_bytes(payload)
        else:
            os.link(keep, real)
        os.replace(real, scans / n)

    def swap():
        i = state["i"]
        state["i"] += 1
        n = names[i % len(names)]
        link = scans / f".link-{n}"
        link.symlink_to(outside)
        os.replace(link, scans / n)          # the segmentation is now the link
        time.sleep(0.0003)
        put_real(n, fresh=(i // len(names)) % 2 == 1)    # and a real file again
        time.sleep(0.0003)
    race = Race(server, [(pid, f"scans/{n}") for n in names], legit, LEGIT_IDS)
    race.run(swap)
    for n in names:                          # end on the prepared file's identity
        put_real(n, fresh=False)
    _judge_race(race, server, "file swap")


def _judge_race(race, server, what):
    """Targets are paths under the patient: /filtered-scans/{pid}/scans/{file}
    and /output/{pid}/scans/{file}/labels read the same file."""
    counts = race.summary()
    assert sum(len(v) for v in race.answers.values()) >= 20, \
        f"{server.kind}: only {counts} requests in {RACE_SECONDS} s: the race proves nothing"
    stale = race.stale_after()
    assert not race.leaks and not stale, \
        f"{server.kind}, {what}: {len(race.leaks)} answers of {sum(len(v) for v in race.answers.values())} " \
        f"during the swapping carry another file's content (first: {race.leaks[:3]}); statuses {counts}; " \
        f"{len(stale)} answers after the swapping stopped are not the real file's (first: {stale[:3]})"
    print(f"{server.kind} {what}: statuses {counts}")


AT_FDCWD = -100
RENAME_EXCHANGE = 2
SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276, "armv7l": 382, "i686": 353, "ppc64le": 357,
                 "s390x": 347, "riscv64": 276}


def rename_exchange(a, b):
    """renameat2(a, b, RENAME_EXCHANGE) through libc (glibc's wrapper, or
    the raw system call)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    args = (AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        rc = fn(*args)
    else:
        nr = SYS_RENAMEAT2.get(os.uname().machine)
        if nr is None:
            raise OSError(errno.ENOSYS, "renameat2: no system call number for this machine")
        libc.syscall.restype = ctypes.c_long
        rc = libc.syscall(ctypes.c_long(nr), ctypes.c_int(args[0]), ctypes.c_char_p(args[1]),
                          ctypes.c_int(args[2]), ctypes.c_char_p(args[3]), ctypes.c_uint(args[4]))
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(a))


def test_race_patient_folder_exchanged_with_outside_link(server, base):
    """The patient folder exchanged (renameat2 RENAME_EXCHANGE) with a link
    to an outside folder holding a file of the same name."""
    root = base["root"]
    pid, scans = new_patient(root, "PAXCH")
    legit = labels_volume(LEGIT_IDS)
    names = [f"race-{k}.nii.gz" for k in range(3)]
    for n in names:
        write_nifti(scans / n, legit)
    link = root / f"{pid}-elsewhere"
    link.symlink_to(base["outside"] / "patient", target_is_directory=True)
    elsewhere = base["outside"] / "patient" / "scans"
    for n in names:
        shutil.copyfile(elsewhere / "race.nii.gz", elsewhere / n)
        os.chmod(elsewhere / n, 0o644)
    try:
        rename_exchange(root / pid, link)
        rename_exchange(root / pid, link)
    except OSError as e:
        pytest.skip(f"renameat2(RENAME_EXCHANGE) not available on this file system: {e}")

    def swap():
        rename_exchange(root / pid, link)     # the patient folder is now the link
        time.sleep(0.0003)
        rename_exchange(root / pid, link)     # and the real folder again
        time.sleep(0.0003)
    race = Race(server, [(pid, f"scans/{n}") for n in names], legit, LEGIT_IDS)
    race.run(swap)
    assert (root / pid).is_dir() and not (root / pid).is_symlink(), \
        "the exchanges did not end on the real folder"
    _judge_race(race, server, "folder exchange")


# ---------------------------------------------------------------------------
# 4. FIFOs

def _drain_fifos(fifos, seconds=10):
    """Unblocks every reader stuck in open() on `fifos` (already renamed, so
    no new reader finds them): open for writing and close, until no reader
    has waited for a few rounds."""
    deadline = time.monotonic() + seconds
    quiet = 0
    while quiet < 5 and time.monotonic() < deadline:
        found = False
        for f in fifos:
            try:
                fd = os.open(f, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno in (errno.ENXIO, errno.ENOENT):
                    continue
                raise
            os.close(fd)
            found = True
        quiet = 0 if found else quiet + 1
        time.sleep(0.05)


@pytest.mark.parametrize("kind", selected_kinds())
def test_fifo_never_blocks_a_worker(base, kind):
    """A dozen requests for a .hdr whose .img is a FIFO, and more for a FIFO
    named as an image: each a 404 at once; /health answers within 2 s meanwhile.
    (Own server: on a worker that blocks, the stuck threads are released
    and the server stopped here, not left to the other tests.)"""
    root = base["root"]
    pid, scans = new_patient(root, "PAFIFO")
    write_pair(scans, "pair", labels_volume(LEGIT_IDS))
    (scans / "pair.img").unlink()
    os.mkfifo(scans / "pair.img", 0o644)
    os.mkfifo(scans / "fifo.nii", 0o644)
    os.mkfifo(scans / "FIFO.IMG", 0o644)
    write_pair(scans, "upper", labels_volume(LEGIT_IDS), ".HDR", ".IMG.tmp")
    (scans / "upper.IMG.tmp").unlink()
    os.mkfifo(scans / "upper.IMG", 0o644)
    for f in scans.iterdir():
        os.chmod(f, 0o644)
    server = start_server(kind, root, cors_origins="*")
    # A dozen whose partner is a FIFO (more than the servers' 8 and 4 worker
    # threads), and four FIFOs named as images.
    uris = [f"/filtered-scans/{pid}/pair.hdr?{ALL}", f"/output/{pid}/scans/pair.hdr/labels",
            f"/output/{pid}/scans/pair.hdr/info", f"/filtered-scans/{pid}/upper.HDR?{ALL}",
            f"/output/{pid}/scans/upper.HDR/labels", f"/output/{pid}/scans/upper.HDR/info"] * 2
    uris += [f"/filtered-scans/{pid}/fifo.nii?{ALL}", f"/output/{pid}/scans/fifo.nii/labels",
             f"/filtered-scans/{pid}/FIFO.IMG?{ALL}", f"/output/{pid}/scans/FIFO.IMG/info"]
    results = [None] * len(uris)
    health = []

    def one(k):
        t0 = time.monotonic()
        try:
            a = request(server.base_url, uris[k], timeout=8)
            results[k] = (a.status, time.monotonic() - t0, a)
        except OSError as e:
            results[k] = (repr(e), time.monotonic() - t0, None)

    pool = concurrent.futures.ThreadPoolExecutor(len(uris))
    try:
        futures = [pool.submit(one, k) for k in range(len(uris))]
        time.sleep(0.5)
        for _ in range(3):
            t0 = time.monotonic()
            try:
                a = request(server.base_url, "/health", timeout=2)
                health.append((a.status, time.monotonic() - t0))
            except OSError as e:
                health.append((repr(e), time.monotonic() - t0))
            time.sleep(0.2)
    finally:
        # Release whatever is stuck before judging, so the server can stop.
        hidden = []
        for f in ("pair.img", "fifo.nii", "FIFO.IMG", "upper.IMG"):
            os.rename(scans / f, scans / f".stuck-{f}")
            hidden.append(scans / f".stuck-{f}")
        _drain_fifos(hidden)
        concurrent.futures.wait(futures, timeout=20)
        pool.shutdown(wait=False)
        _drain_fifos(hidden, seconds=2)
        server.stop()
    slow_health = [h for h in health if h[0] != 200 or h[1] > 2]
    assert not slow_health, f"{kind}: /health while {len(uris)} FIFO requests were open: {health}"
    bad = [(uris[k], r[:2]) for k, r in enumerate(results) if r is None or r[0] != 404 or r[1] > 5]
    assert not bad, f"{kind}: FIFO requests not answered 404 within 5 s: {bad}"


# ---------------------------------------------------------------------------
# 5. Recycled inodes, 6. in-place rewrites

def test_recycled_inode_gets_its_own_answer(server, base, record_property):
    """A file deleted in patient A and another of the same size and mtime
    written into patient B (inode reuse tried a few times): B's URLs answer
    B's content with other ETags, whether or not the inode came back."""
    root = base["root"]
    a_data, b_data = labels_volume([6, 10]), labels_volume([21, 22])
    assert len(nifti_bytes(a_data)) == len(nifti_bytes(b_data))
    reused = []
    for attempt in range(8):
        pa, sa = new_patient(root, "PAREC")
        pb, sb = new_patient(root, "PAREC")
        fa = write_nifti(sa / "seg.nii", a_data)
        la, fla = both_routes(server, pa, "seg.nii")
        assert la.status == 200 and ids_of(la) == [6, 10], la
        assert fla.status == 200 and np.array_equal(volume_of(fla.body), a_data), fla
        st_a = os.stat(fa)
        fa.unlink()
        fb = write_nifti(sb / "seg.nii", b_data)
        os.utime(fb, ns=(st_a.st_atime_ns, st_a.st_mtime_ns))
        st_b = os.stat(fb)
        assert (st_b.st_size, st_b.st_mtime_ns) == (st_a.st_size, st_a.st_mtime_ns)
        same = (st_b.st_dev, st_b.st_ino) == (st_a.st_dev, st_a.st_ino)
        reused.append(same)
        assert_answers(server, both_routes(server, pb, "seg.nii"), (la, fla), [21, 22], b_data,
                       f"attempt {attempt}, inode {'reused' if same else 'not reused'}, patient B "
                       f"(A's ids: [6, 10])")
        if same:
            break
    record_property("inode_reuse", reused)
    print(f"{server.kind}: inode reused in attempts: {reused}")
    if not any(reused):
        warnings.warn(f"{server.kind}: the file system never handed out the freed inode again in "
                      f"{len(reused)} attempts: only the different-inode case was checked")


def test_in_place_rewrite_with_mtime_restored(server, patient):
    """Bytes rewritten in place, size kept, mtime put back with os.utime
    (what `cp -p` and restores from archives with one-second mtimes do)."""
    pid, scans = patient
    old, new = labels_volume([6, 10]), labels_volume([6, 30])
    f = write_nifti(scans / "rewrite.nii", old)
    l1, f1 = both_routes(server, pid, "rewrite.nii")
    assert ids_of(l1) == [6, 10] and np.array_equal(volume_of(f1.body), old)
    st = os.stat(f)
    time.sleep(0.05)            # a new ctime tick
    payload = nifti_bytes(new)
    assert len(payload) == st.st_size
    with open(f, "r+b") as fh:
        fh.write(payload)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(f)
    assert (st2.st_ino, st2.st_size, st2.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert_answers(server, both_routes(server, pid, "rewrite.nii"), (l1, f1), [6, 30], new,
                   "after an in-place rewrite with the mtime put back")


def wait_second_over(path):
    """Sleeps until the second of `path`'s last change (mtime or ctime) has
    passed, the earliest the filter's Last-Modified names it."""
    st = os.stat(path)
    changed = max(int(st.st_mtime), int(st.st_ctime))
    while int(time.time()) <= changed:
        time.sleep(0.05)
    return changed


def test_date_validators_follow_every_change(server, patient):
    """If-Modified-Since and If-Range carry a date, and with X-Sendfile the
    web server answers them from the worker's Last-Modified: a rewrite with
    the mtime put back, or a new sidecar, must still move that date on, or a
    client that revalidates by date keeps (or splices onto) the old volume."""
    from email.utils import formatdate, parsedate_to_datetime
    pid, scans = patient
    old, new = labels_volume([6, 10]), labels_volume([6, 30])
    f = write_nifti(scans / "dated.nii", old)
    hour_ago = time.time() - 3600
    os.utime(f, (hour_ago, hour_ago))
    changed = wait_second_over(f)
    uri = f"/filtered-scans/{pid}/dated.nii?{ALL}"
    a = get(server, uri)
    assert a.status == 200 and np.array_equal(volume_of(a.body), old), a
    date = a.header("Last-Modified")
    # The inode's change (ctime), not the mtime an hour back.
    assert date == formatdate(changed, usegmt=True), (server.kind, date, changed)
    # Date revalidation works at all, so the checks below can fail.
    assert get_with(server, uri, {"If-Modified-Since": date}).status == 304, server.kind

    st = os.stat(f)
    with open(f, "r+b") as fh:
        fh.write(nifti_bytes(new))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(f).st_mtime_ns == st.st_mtime_ns
    for headers in ({"If-Modified-Since": date}, {"If-Range": date, "Range": "bytes=0-9"}):
        b = get_with(server, uri, headers)
        assert b.status == 200, (server.kind, headers, b)
        assert np.array_equal(volume_of(b.body), new), (server.kind, headers)
        assert parsedate_to_datetime(b.header("Last-Modified")) > parsedate_to_datetime(date)

    # A sidecar that renames the labels: `labels=aorta` selects another id.
    named_uri = f"/filtered-scans/{pid}/dated.nii?labels=aorta"
    wait_second_over(f)
    n1 = get(server, named_uri)
    assert n1.status == 200 and set(np.unique(volume_of(n1.body))) == {0, 6}, (server.kind, n1)
    sidecar = scans / "dated.nii.labels.json"
    sidecar.write_text('{"30": "aorta", "6": "renamed"}')
    n2 = get_with(server, named_uri, {"If-Modified-Since": n1.header("Last-Modified")})
    assert n2.status == 200 and set(np.unique(volume_of(n2.body))) == {0, 30}, (server.kind, n2)
    sidecar.unlink()


def get_with(server, path, headers, timeout=30):
    return request(server.base_url, path, headers=headers, timeout=timeout)


# ---------------------------------------------------------------------------
# 7. Case rules

def test_upper_case_pair_tracks_its_image(server, patient):
    """`Y.HDR` + `Y.IMG`: a new `Y.IMG` changes both answers and ETags."""
    pid, scans = patient
    old, new = labels_volume([6, 10]), labels_volume([6, 30])
    write_pair(scans, "Y", old, ".HDR", ".IMG")
    l1, f1 = both_routes(server, pid, "Y.HDR")
    assert l1.status == 200 and ids_of(l1) == [6, 10], l1
    assert f1.status == 200 and np.array_equal(volume_of(f1.body), old), f1
    time.sleep(0.02)
    write_pair(scans, "next", new, ".hdr", ".img")
    os.replace(scans / "next.img", scans / "Y.IMG")
    assert_answers(server, both_routes(server, pid, "Y.HDR"), (l1, f1), [6, 30], new,
                   "Y.IMG replaced, Y.HDR")


# ---------------------------------------------------------------------------
# 9. Broken extension chains (docs/ARCHITECTURE.md)

CHAIN_CASES = [c for c in mm.load_manifest(SOURCE / "tests" / "data" / "malformed")
               if c["name"] in mm.REGION_CASES and c["name"] != "vox_offset_1024.nii"]


def check_chain_output(out_bytes, out_suffix, case, tmp_path):
    src = mm.single_bytes((SOURCE / "tests" / "data" / "malformed" / case["name"]).read_bytes())
    path = tmp_path / f"out-{case['name']}{out_suffix}"
    path.write_bytes(out_bytes)
    img = nib.load(str(path))            # no flag clearing: as any reader gets it
    got = img.get_fdata()
    assert mm.same_values(got, mm.expected(case)), case["note"]
    out = mm.single_bytes(out_bytes)
    (size,) = struct.unpack("<i", out[:4])
    size = size if size in (348, 540) else struct.unpack(">i", out[:4])[0]
    region_in, region_out = mm.extension_region(src), mm.extension_region(out)
    broken = case["name"] in mm.BROKEN_CHAIN_CASES
    assert out[size] == (0 if broken else 1), \
        f"{case['name']}: extension flag (byte {size}) is {out[size]}, expected {0 if broken else 1}"
    assert region_out[1:] == region_in[1:], f"{case['name']}: extension bytes not kept"


@pytest.mark.parametrize("case", CHAIN_CASES, ids=[c["name"] for c in CHAIN_CASES])
def test_broken_extension_chain_readable_filter_route(server, base, case, tmp_path):
    root = base["root"]
    pid = "PACHAIN"
    (root / pid / "scans").mkdir(parents=True, exist_ok=True)
    os.chmod(root / pid, 0o755)
    dst = root / pid / "scans" / case["name"]
    if not dst.exists():
        shutil.copyfile(SOURCE / "tests" / "data" / "malformed" / case["name"], dst)
        os.chmod(dst, 0o644)
    a = filtered(server, pid, case["name"], f"label_ids={case['ids']}")
    assert a.status == 200, a
    check_chain_output(a.body, ".nii.gz" if case["out_gzip"] else ".nii", case, tmp_path)


@pytest.mark.parametrize("case", CHAIN_CASES, ids=[c["name"] for c in CHAIN_CASES])
def test_broken_extension_chain_readable_cli(case, tmp_path):
    if not MEDIMG.exists():
        pytest.skip(f"{MEDIMG} is not built")
    src = tmp_path / case["name"]
    shutil.copyfile(SOURCE / "tests" / "data" / "malformed" / case["name"], src)
    suffix = ".nii.gz" if case["out_gzip"] else ".nii"
    out = tmp_path / f"filtered{suffix}"
    p = subprocess.run([str(MEDIMG), "filter", str(src), str(out), "--labels", case["ids"]],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    check_chain_output(out.read_bytes(), suffix, case, tmp_path)
