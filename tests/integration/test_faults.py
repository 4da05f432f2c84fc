"""Faults under both web servers: a full or read-only results cache, a
source file replaced while it is filtered, a worker killed mid-answer, the
web server restarted under load. Each answer is correct or a clean error;
never a complete wrong answer, never a half-written cache entry."""
import concurrent.futures
import gzip
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import BUILD, SOURCE, LighttpdServer, alive, request, selected_kinds, start_server, \
    _available

PID = "PAFAULTS"
SHAPE = (128, 128, 80)


def volume(seed):
    rng = np.random.default_rng(seed)
    d = rng.integers(0, 12, size=SHAPE, dtype=np.int16)
    d[:8] = seed          # tells the versions apart
    return d


@pytest.fixture(scope="module")
def faults_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults") / "output"
    scans = root / PID / "scans"
    scans.mkdir(parents=True)
    for name, seed in (("big.nii.gz", 1), ("swap.nii.gz", 2), ("other.nii.gz", 3)):
        nib.save(nib.Nifti1Image(volume(seed), np.eye(4)), str(scans / name))
    return root


@pytest.fixture(scope="module", params=selected_kinds())
def server(request, faults_root):
    kw = {}
    if request.param == "apache":
        # multiwatch supervises the pool, so a killed worker is replaced.
        kw["processes"] = 1 if shutil.which("multiwatch") else 0
    s = start_server(request.param, faults_root, cors_origins="*", **kw)
    yield s
    s.stop()


def served_root(server):
    return Path(getattr(server, "served_data_root", server.data_root))


def check_filtered(a, ids, sources):
    """`a` is a 200 whose body is the filter of one of `sources` (arrays)."""
    img = nib.Nifti1Image.from_bytes(gzip.decompress(a.body))
    got = np.asanyarray(img.dataobj)
    for src in sources:
        if np.array_equal(got, np.where(np.isin(src, ids), src, 0)):
            return
    raise AssertionError("the answer equals no version of the source")


def cache_files_complete(server, allow_temps=False):
    """Every entry of the cache is a complete file (gzip entries inflate).
    `allow_temps`: a SIGKILLed producer cannot remove its `.tmp-*` file; such
    a temporary is never an entry (never served), only space."""
    for d in server.cache_dirs():
        for p in d.rglob("*"):
            if not p.is_file() or ".locks" in p.parts:
                continue
            if allow_temps and p.name.startswith(".tmp-"):
                continue
            assert not p.name.startswith(".") and "tmp" not in p.name.lower(), f"leftover {p}"
            if p.name.endswith(".gz"):
                gzip.decompress(p.read_bytes())


def is_root():
    return os.geteuid() == 0


@pytest.fixture
def tiny_cache(server):
    """The cache directory replaced by a 512 KiB tmpfs (root only)."""
    if not is_root():
        pytest.skip("mounting a tmpfs needs root")
    cache = server.cache_dirs()[0]
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0777", "tmpfs", str(cache)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount not permitted: {r.stderr.strip()}")
    try:
        (cache / ".locks").mkdir(mode=0o777)
        os.chmod(cache / ".locks", 0o777)
        yield cache
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_full_cache(server, tiny_cache):
    """Results larger than the space left: streamed instead, or a clean
    4xx/503 JSON; never a 500 and never a partial entry left behind."""
    # Leave ~16 KiB free.
    fd = os.open(tiny_cache / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    os.truncate(tiny_cache / "filler", max(0, (tiny_cache / "filler").stat().st_size - 16384))
    src = volume(1)
    answers = []
    for ids in ([1, 2, 3, 4, 5], [6, 7, 8, 9], [10, 11]):
        answers.append((ids, request(server.base_url, f"/filtered-scans/{PID}/big.nii.gz?label_ids="
                                     + ",".join(map(str, ids)))))
    (tiny_cache / "filler").unlink()
    cache_files_complete(server)          # no partial entry, whatever the answers
    for ids, a in answers:
        assert a.status == 200 or (400 <= a.status < 500 or a.status == 503), a
        if a.status == 200:
            check_filtered(a, ids, [src])
        else:
            assert a.header("Content-Type").startswith("application/json"), a


def test_read_only_cache(server, tiny_cache):
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_cache)], check=True)
    a = request(server.base_url, f"/filtered-scans/{PID}/big.nii.gz?label_ids=3,4")
    assert a.status == 200 or (400 <= a.status < 500 or a.status == 503), a
    if a.status == 200:
        check_filtered(a, [3, 4], [volume(1)])
    else:
        assert a.header("Content-Type").startswith("application/json"), a
    a = request(server.base_url, f"/output/{PID}/scans/big.nii.gz/labels")
    assert a.status == 200 or a.status == 503, a


def test_source_replaced_while_filtered(server):
    """Renaming a new file over the source mid-request: each answer is the
    filter of one whole version, never a mix."""
    scans = served_root(server) / PID / "scans"
    versions = {2: volume(2), 3: volume(3)}
    payload = {s: (scans / n).read_bytes() for s, n in ((2, "swap.nii.gz"), (3, "other.nii.gz"))}
    stop = threading.Event()

    def swapper():
        i = 0
        while not stop.is_set():
            seed = 2 + (i % 2)
            tmp = scans / f".swap-{i}.tmp"
            tmp.write_bytes(payload[seed])
            os.replace(tmp, scans / "swap.nii.gz")
            i += 1
            time.sleep(0.03)

    t = threading.Thread(target=swapper)
    t.start()
    try:
        for n in range(8):
            ids = [n % 12, (n + 5) % 12, 2, 3]
            a = request(server.base_url, f"/filtered-scans/{PID}/swap.nii.gz?label_ids="
                        + ",".join(map(str, ids)))
            assert a.status == 200 or a.status in (404, 422), a     # 422: a changing file noticed
            if a.status == 200:
                check_filtered(a, ids, versions.values())
    finally:
        stop.set()
        t.join()
    cache_files_complete(server)


def test_worker_killed_mid_answer(server):
    """SIGKILL to every worker while uncached filters run: each client sees
    an error or a short answer, or a correct one; the pool recovers."""
    src = volume(1)
    results = []

    def one(i):
        ids = [i, i + 1]
        try:
            a = request(server.base_url, f"/filtered-scans/{PID}/big.nii.gz?label_ids={ids[0]},{ids[1]}"
                        f"&crop={i % 2}", timeout=60)
        except Exception as e:                       # aborted connection: fine
            return ("aborted", repr(e))
        return ("answer", a, ids)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, i) for i in range(4)]
        time.sleep(0.15)
        for p in server.worker_pids():
            os.kill(p, signal.SIGKILL)
        results = [f.result() for f in futures]
    for r in results:
        if r[0] == "answer":
            a, ids = r[1], r[2]
            if a.status == 200:
                img = nib.Nifti1Image.from_bytes(gzip.decompress(a.body))
                got = np.asanyarray(img.dataobj)
                assert set(np.unique(got)) <= {0, *ids}
                assert int(a.header("Content-Length")) == len(a.body)
            else:
                assert a.status >= 500 or a.status == 503, a    # the web server's 502/503/500
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            a = request(server.base_url, f"/filtered-scans/{PID}/big.nii.gz?label_ids=5", timeout=30)
            if a.status == 200:
                check_filtered(a, [5], [src])
                break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        pytest.fail("the pool did not recover within 30 s after SIGKILL")
    cache_files_complete(server, allow_temps=True)


def test_lighttpd_restart_under_load(faults_root):
    """`medimg serve` stopped and started again on the same port while a
    client keeps asking: bounded downtime, nothing left running, correct
    answers afterwards."""
    if not _available("lighttpd"):
        pytest.skip("lighttpd not available")
    s = LighttpdServer(BUILD, SOURCE, faults_root, cors_origins="*").start()
    port = s.port
    stop = threading.Event()
    seen = []

    def client():
        while not stop.is_set():
            try:
                a = request(f"http://127.0.0.1:{port}", f"/output/{PID}/scans/other.nii.gz/labels", timeout=10)
                seen.append(a.status)
            except OSError:
                seen.append("down")
                time.sleep(0.05)

    t = threading.Thread(target=client)
    t.start()
    try:
        time.sleep(1)
        old = s.worker_pids()
        assert s.stop() == []
        assert not any(alive(p) for p in old)
        t0 = time.monotonic()
        s = LighttpdServer(BUILD, SOURCE, faults_root, cors_origins="*", port=port).start()
        assert time.monotonic() - t0 < 30
        time.sleep(1)
    finally:
        stop.set()
        t.join()
        s.stop()
    assert set(x for x in seen if x != "down") <= {200}, seen
    assert seen[-1] == 200
