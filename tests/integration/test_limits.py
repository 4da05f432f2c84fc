"""Limits through both web servers: [limits] max_voxels, max_label_ids and
max_intensity_bins (413), the queue limit (503 busy with Retry-After), bounded inflate (a gzip
bomb is refused fast and the worker's peak RSS stays bounded).

There is no per-request time limit in the worker (lib/config.hpp has no
such key; fcgi/README.md says so): work is bounded by max_voxels and the
inflate cap instead."""
import concurrent.futures
import shutil
import time
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import BUILD, SOURCE, SERVER_KINDS, LighttpdServer, request, selected_kinds, \
    _available

PID = "PALIMITS"


def vm_hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def limits_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("limits") / "output"
    scans = root / PID / "scans"
    scans.mkdir(parents=True)
    small = np.zeros((8, 7, 6), dtype=np.int16)
    small[1:4, 1:3, 1:5] = 6
    small[4:7, 3:6, 2:4] = 10
    nib.save(nib.Nifti1Image(small, np.eye(4)), str(scans / "small.nii"))
    # A CT-like image on small.nii's grid whose 336 voxels hold 336 distinct
    # values 7 apart: the background's histogram alone spans 2,346 bins.
    ct = np.arange(-1000, -1000 + small.size, dtype=np.int16).reshape(small.shape) * 7
    nib.save(nib.Nifti1Image(ct, np.eye(4)), str(scans / "ct.nii"))
    rng = np.random.default_rng(7)
    big = rng.integers(0, 40, size=(160, 160, 96), dtype=np.int16)   # 2.4 M voxels
    nib.save(nib.Nifti1Image(big, np.eye(4)), str(scans / "big.nii.gz"))
    # A bomb: a 64^3 int16 image (512 KiB) followed by 192 MiB of zeros.
    h = nib.Nifti1Image(np.zeros((64, 64, 64), np.int16), np.eye(4)).header
    h["vox_offset"] = 352
    hdr = bytes(h.binaryblock)
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(hdr + b"\0\0\0\0")]
    zeros = b"\0" * (1 << 20)
    for _ in range(64 * 64 * 64 * 2 // len(zeros) + 192):
        parts.append(c.compress(zeros))
    parts.append(c.flush())
    (scans / "bomb.nii.gz").write_bytes(b"".join(parts))
    return root


def start_limited(kind, root, tmp_path, limits, threads=4, workers=2):
    """A server whose workers read `limits` ([limits] keys) from an ini."""
    if not _available(kind):
        pytest.skip(f"{kind} not available")
    text = "[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items())
    if kind == "lighttpd":
        ini = tmp_path / "limits.ini"
        ini.write_text(text)
        s = LighttpdServer(BUILD, SOURCE, root, cors_origins="*", workers=workers, threads=threads,
                           extra_args=["--config", str(ini)])
    else:
        base = SERVER_KINDS[kind]

        class Limited(base):
            def _write_ini(self):
                super()._write_ini()
                self.ini.write_text(self.ini.read_text() + text)

        s = Limited(BUILD, SOURCE, root, cors_origins="*", threads=threads)
    s.start()
    return s


@pytest.fixture(scope="module", params=selected_kinds())
def kind(request):
    return request.param


@pytest.fixture(scope="module")
def limited(kind, limits_root, tmp_path_factory):
    s = start_limited(kind, limits_root, tmp_path_factory.mktemp("ini"),
                      {"max_voxels": 100000, "max_label_ids": 10, "max_intensity_bins": 1024})
    yield s
    s.stop()


def error_of(a):
    assert a.header("Content-Type").startswith("application/json"), a
    return a.json()["error"]


def test_max_voxels(limited):
    a = request(limited.base_url, f"/filtered-scans/{PID}/small.nii?label_ids=6")
    assert a.status == 200, a
    for path in (f"/filtered-scans/{PID}/big.nii.gz?label_ids=6", f"/output/{PID}/scans/big.nii.gz/labels",
                 f"/output/{PID}/scans/big.nii.gz/info"):
        a = request(limited.base_url, path)
        assert a.status == 413, (path, a)
        assert error_of(a) == "image_too_large"
        assert "100000" in a.json()["detail"]


def test_max_label_ids(limited):
    a = request(limited.base_url, f"/filtered-scans/{PID}/small.nii?label_ids=1-10")
    assert a.status == 200, a
    for ids in ("1-11", "1,2,3,4,5,6,7,8,9,10,11", "0-9223372036854775807", "-9223372036854775808-0"):
        a = request(limited.base_url, f"/filtered-scans/{PID}/small.nii?label_ids={ids}")
        assert a.status == 413, (ids, a)
        assert error_of(a) == "too_many_label_ids"


def intensity_answer(server):
    return request(server.base_url, f"/output/{PID}/scans/small.nii/labels?image=scans/ct.nii")


def test_max_intensity_bins(limited, default_limits):
    a = intensity_answer(limited)
    assert a.status == 413, a
    assert error_of(a) == "image_too_large"
    assert "1024" in a.json()["detail"] and "max_intensity_bins" in a.json()["detail"]
    # The same request under the default bound (2,097,152 bins): exact.
    ok = intensity_answer(default_limits)
    assert ok.status == 200, ok
    small = np.asanyarray(nib.load(str(limited.data_root / PID / "scans" / "small.nii")).dataobj)
    ct = np.asanyarray(nib.load(str(limited.data_root / PID / "scans" / "ct.nii")).dataobj)
    by_id = {entry["id"]: entry for entry in ok.json()["labels"]}
    for label in (6, 10):
        assert by_id[label]["intensity"]["mean"] == pytest.approx(float(ct[small == label].mean()))


def test_bomb_is_refused_fast_with_bounded_memory(limited):
    before = {p: vm_hwm_kib(p) for p in limited.worker_pids()}
    t = time.monotonic()
    a = request(limited.base_url, f"/filtered-scans/{PID}/bomb.nii.gz?label_ids=6")
    took = time.monotonic() - t
    # 64^3 = 262144 voxels > 100000: refused from the header alone.
    assert a.status == 413, a
    assert took < 10
    # Had the worker inflated what follows the header, it would have grown by
    # the bomb's 192 MiB.
    grew = {p: vm_hwm_kib(p) - hwm for p, hwm in before.items()}
    assert grew and max(grew.values()) < 32 * 1024, grew


@pytest.fixture(scope="module")
def default_limits(kind, limits_root, tmp_path_factory):
    s = start_limited(kind, limits_root, tmp_path_factory.mktemp("ini"), {"max_label_ids": 100000})
    yield s
    s.stop()


def test_bomb_inflate_is_capped(default_limits):
    """Declared 512 KiB, inflates to 192 MiB more: 422 bad_gzip well before
    the end, and no worker's peak RSS grows by anything near the bomb."""
    s = default_limits
    t = time.monotonic()
    for _ in range(3):
        a = request(s.base_url, f"/filtered-scans/{PID}/bomb.nii.gz?label_ids=6")
        assert a.status == 422, a
        assert error_of(a) == "bad_gzip"
        a = request(s.base_url, f"/output/{PID}/scans/bomb.nii.gz/labels")
        assert a.status == 422, a
    took = time.monotonic() - t
    assert took < 30, took
    hwm = {p: vm_hwm_kib(p) for p in s.worker_pids()}
    assert hwm and max(hwm.values()) < 64 * 1024, hwm     # docs/PERFORMANCE.md: ≤ 64 MiB per worker


def sidecar_of(n_labels, name_len):
    """A {file}.labels.json of the short form, `n_labels` names of `name_len`
    letters."""
    return "{" + ",".join(f'"{i}":"{"n" * name_len}{i}"' for i in range(n_labels)) + "}"


def test_label_sidecars_are_bounded(default_limits, limits_root):
    """A sidecar is parsed for every request that names labels, and whoever
    writes the data root writes it: past 256 KiB or 25,000 keys and values
    it is a 400 naming it; at the limits, three requests at once on each worker
    keep its peak memory within the per-worker target."""
    s = default_limits
    scans = limits_root / PID / "scans"
    for name in ("huge.nii", "many.nii", "full.nii"):
        shutil.copy(scans / "small.nii", scans / name)
    (scans / "huge.nii.labels.json").write_text('{"6":"' + "a" * (256 << 10) + '"}')
    (scans / "many.nii.labels.json").write_text(sidecar_of(12_500, 1))
    # Within both limits: 12,499 labels, nearly 256 KiB.
    full = sidecar_of(12_499, 6)
    assert 200 << 10 <= len(full) <= 256 << 10, len(full)
    (scans / "full.nii.labels.json").write_text(full)
    for name, why in (("huge.nii", "larger than 256 KiB"), ("many.nii", "keys and values")):
        for uri in (f"/output/{PID}/scans/{name}/labels", f"/filtered-scans/{PID}/{name}?labels=aorta"):
            a = request(s.base_url, uri)
            assert a.status == 400, (uri, a)
            assert error_of(a) == "bad_parameter"
            detail = a.json()["detail"]
            assert f"{PID}/scans/{name}.labels.json" in detail and why in detail, detail
            assert str(limits_root) not in detail
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: request(
            s.base_url, f"/filtered-scans/{PID}/full.nii?labels={'n' * 6}{6 + i % 2}"), range(12)))
    assert [a.status for a in answers] == [200] * 12, answers
    hwm = {p: vm_hwm_kib(p) for p in s.worker_pids()}
    assert hwm and max(hwm.values()) < 64 * 1024, hwm     # docs/PERFORMANCE.md: ≤ 64 MiB per worker


def test_queue_limit_answers_busy(kind, limits_root, tmp_path):
    """1 worker process, 1 thread, max_queue 1: of 10 concurrent uncached
    filters of a 2.4 M-voxel map, some are answered 503 busy with
    Retry-After at once; the others succeed; nothing else."""
    s = start_limited(kind, limits_root, tmp_path, {"max_queue": 1}, threads=1, workers=1)
    try:
        def one(i):
            t = time.monotonic()
            a = request(s.base_url, f"/filtered-scans/{PID}/big.nii.gz?label_ids={i},{i + 1},{i + 2}&mode=keep",
                        timeout=120)
            return a, time.monotonic() - t

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(one, range(1, 11)))
        statuses = [a.status for a, _ in results]
        assert set(statuses) <= {200, 503}, statuses
        assert statuses.count(200) >= 1, statuses
        assert statuses.count(503) >= 1, statuses
        for a, took in results:
            if a.status == 503:
                assert a.header("Retry-After"), a
                assert error_of(a) == "busy"
        # The pool recovers: a request after the burst succeeds.
        a = request(s.base_url, f"/filtered-scans/{PID}/small.nii?label_ids=6")
        assert a.status == 200
    finally:
        s.stop()
