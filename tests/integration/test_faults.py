"""Faults under both web servers: a full or read-only results cache, a
source file replaced while it is filtered, a worker killed mid-answer, the
web server restarted under load. Each answer is correct or a clean error;
never a complete wrong answer, never a half-written cache entry."""
import concurrent.futures
import gzip
import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import BUILD, SERVER_KINDS, SOURCE, LighttpdServer, alive, identify, kill_exactly, \
    request, selected_kinds, start_server, _available

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
    # Slow enough to filter that a worker can be killed mid-write.
    nib.save(nib.Nifti1Image(slow_volume(), np.eye(4)), str(scans / "slow.nii.gz"))
    return root


def slow_volume():
    return np.random.default_rng(7).integers(0, 40, size=(256, 256, 160), dtype=np.int16)


@pytest.fixture(scope="module", params=selected_kinds())
def server(request, faults_root):
    kw = {}
    if request.param == "apache":
        # multiwatch supervises the pool, so a killed worker is replaced.
        kw["processes"] = 1 if shutil.which("multiwatch") else 0
        # test_killed_producer_leaves_no_temporary may kill the pool a dozen
        # times within seconds; by default multiwatch stops restarting a
        # child after 3 deaths within 10 s, and the pool would stay down.
        kw["pool_retries"] = 100
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


def cache_files_complete(server):
    """Every entry of the cache is a complete file (gzip entries inflate), and
    no temporary is left: a SIGKILLed producer's `.tmp-*` file is removed by
    the worker that replaces it."""
    for d in server.cache_dirs():
        for p in d.rglob("*"):
            if not p.is_file() or ".locks" in p.parts:
                continue
            assert not p.name.startswith(".") and "tmp" not in p.name.lower(), f"leftover {p}"
            if p.name.endswith(".gz"):
                gzip.decompress(p.read_bytes())


def is_root():
    return os.geteuid() == 0


def fill(path):
    """Writes zeros to `path` until its file system is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.fixture
def tiny_cache(server):
    """The cache directory replaced by a 512 KiB tmpfs (root only)."""
    if not is_root():
        pytest.skip("mounting a tmpfs needs root")
    cache = server.cache_dirs()[0]
    # Owner and mode of the directory it covers: the workers open the cache
    # again at its path when it changes, with the checks of docs/DEPLOYMENT.md
    # ("Results cache"), and would refuse a tmpfs writable by others.
    st = cache.stat()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                        f"size=512k,mode={st.st_mode & 0o7777:o},uid={st.st_uid},gid={st.st_gid}",
                        "tmpfs", str(cache)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mount not permitted: {r.stderr.strip()}")
    try:
        yield cache
    finally:
        subprocess.run(["umount", "-l", str(cache)], check=False)


def test_full_cache(server, tiny_cache):
    """Results larger than the space left: streamed instead, or a clean
    4xx/503 JSON; never a 500 and never a partial entry left behind."""
    # Leave ~16 KiB free.
    fill(tiny_cache / "filler")
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


def test_both_cache_and_temp_dir_cannot_store(faults_root, monkeypatch):
    """A read-only results cache and a full temporary directory ($TMPDIR of
    the workers): 503 JSON with Retry-After, no partial file in either place;
    once the temporary directory has room again the same request succeeds."""
    if not is_root():
        pytest.skip("mounting a tmpfs needs root")
    for kind in selected_kinds():
        # A directory every user can reach (Apache's workers run as www-data).
        tmp = Path(tempfile.mkdtemp(prefix="medimg-fault-tmpdir-", dir="/tmp"))
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0777", "tmpfs", str(tmp)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"mount not permitted: {r.stderr.strip()}")
        mounted = [tmp]
        s = None
        try:
            with monkeypatch.context() as m:
                m.setenv("TMPDIR", str(tmp))      # inherited by the workers
                s = start_server(kind, faults_root, cors_origins="*")
            cache = s.cache_dirs()[0]
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0777", "tmpfs", str(cache)],
                           check=True)
            mounted.append(cache)
            (cache / ".locks").mkdir(mode=0o777)
            subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
            filler = tmp / "filler"
            fill(filler)
            uri = f"/filtered-scans/{PID}/big.nii.gz?label_ids=2,9"
            for method in ("GET", "HEAD"):
                a = request(s.base_url, uri, method=method)
                assert a.status == 503, (kind, a)
                assert a.header("Content-Type").startswith("application/json"), (kind, a)
                assert a.header("Retry-After"), (kind, a)
                if method == "GET":
                    assert a.json()["error"] == "busy", (kind, a)
            assert sorted(p.name for p in tmp.iterdir()) == ["filler"], kind
            assert sorted(p.name for p in cache.rglob("*")) == [".locks"], kind
            filler.unlink()
            a = request(s.base_url, uri)
            assert a.status == 200, (kind, a)
            check_filtered(a, [2, 9], [volume(1)])       # whole: gzip's CRC and size check
            assert list(tmp.iterdir()) == [], kind     # the streamed temporary is unlinked
        finally:
            if s is not None:
                s.stop()
            for d in reversed(mounted):
                subprocess.run(["umount", "-l", str(d)], check=False)
            shutil.rmtree(tmp, ignore_errors=True)


def test_cache_directory_removed_while_running(server):
    """`rm -rf` of the cache directory while the workers run (docs/DEPLOYMENT.md,
    "Results cache"): a result cached before and a new one both answer 200
    with the right voxels, sent from the directory the workers create again
    at the same path, never a 404 for a file left in the removed one."""
    uri = f"/filtered-scans/{PID}/big.nii.gz?label_ids="
    src = volume(1)
    a = request(server.base_url, uri + "1,7")
    assert a.status == 200, a
    check_filtered(a, [1, 7], [src])
    for d in server.cache_dirs():
        shutil.rmtree(d)
    for ids in ([1, 7], [2, 8], [1, 7]):     # stored before, new, stored after
        a = request(server.base_url, uri + ",".join(map(str, ids)))
        assert a.status == 200, (ids, a)
        check_filtered(a, ids, [src])
    stored = [p for d in server.cache_dirs() for p in d.rglob("*.nii.gz")]
    assert len(stored) == 2, stored
    cache_files_complete(server)


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
        for p in identify(server.worker_pids()):
            kill_exactly(p, signal.SIGKILL)
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
    cache_files_complete(server)


def temporaries(server):
    return [p for d in server.cache_dirs() for p in d.glob("*/.tmp-*")]


def test_killed_producer_leaves_no_temporary(server):
    """SIGKILL to the workers while one writes a cache entry: its `.tmp-*`
    file is removed when the pool restarts, and the same request then
    answers the whole, exact result."""
    if server.kind == "apache" and not getattr(server, "processes", 0):
        pytest.skip("no multiwatch: nothing restarts a killed worker")
    src = slow_volume()
    killed = None
    # A try misses when the result is renamed into place between the
    # temporary being seen and the kill landing: more tries, new ids each.
    for ids in ([3 * k + 1, 3 * k + 2, 3 * k + 3] for k in range(12)):
        uri = f"/filtered-scans/{PID}/slow.nii.gz?label_ids=" + ",".join(map(str, ids))
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(lambda: request(server.base_url, uri, timeout=60))
            deadline = time.monotonic() + 30
            found = []
            while not found and not pending.done() and time.monotonic() < deadline:
                found = temporaries(server)
                time.sleep(0.002)
            caught = False
            if found:
                for p in identify(server.worker_pids()):
                    kill_exactly(p, signal.SIGKILL)
                # Looked at now, before the restarted worker sweeps them away
                # (that sweep is what the test is about, not a miss).
                caught = all(p.exists() for p in found)
            try:
                pending.result()
            except Exception:          # aborted connection: fine
                pass
        if caught:
            killed = (ids, uri, found)
            break
    if killed is None:
        pytest.fail("never caught a worker mid-write")
    ids, uri, found = killed
    deadline = time.monotonic() + 30
    while True:
        try:
            a = request(server.base_url, uri, timeout=60)
            if a.status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the pool did not recover within 30 s after SIGKILL"
        time.sleep(0.5)
    assert int(a.header("Content-Length")) == len(a.body)
    got = np.asanyarray(nib.Nifti1Image.from_bytes(gzip.decompress(a.body)).dataobj)
    assert np.array_equal(got, np.where(np.isin(src, ids), src, 0))
    assert not any(p.exists() for p in found)
    assert temporaries(server) == []
    cache_files_complete(server)


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
        old = identify(s.worker_pids())
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


def test_apache_restart_under_load(faults_root):
    """Apache restarted gracefully (`apache2 -k graceful` on its own
    configuration), then stopped and started again on the same port, while
    clients keep asking: each answer is complete and exact or fails at the
    connection; afterwards all succeed; no worker outlives the stop."""
    if "apache" not in SERVER_KINDS or not _available("apache"):
        pytest.skip("apache not available")
    Apache = SERVER_KINDS["apache"]
    processes = 1 if shutil.which("multiwatch") else 0
    s = Apache(BUILD, SOURCE, faults_root, cors_origins="*", processes=processes).start()
    port = s.port
    base = f"http://127.0.0.1:{port}"
    uris = [f"/output/{PID}/scans/other.nii.gz/labels",
            f"/filtered-scans/{PID}/other.nii.gz?label_ids=3,4,5"]
    reference = {}
    for uri in uris:
        a = request(base, uri)
        assert a.status == 200, a
        reference[uri] = a.body
    stop = threading.Event()
    seen = []

    def client(uri):
        while not stop.is_set():
            try:
                a = request(base, uri, timeout=10)
            except (OSError, http.client.HTTPException):    # refused, reset, cut short
                seen.append("down")
                time.sleep(0.05)
                continue
            length = a.header("Content-Length")     # absent when sent chunked
            ok = a.body == reference[uri] and (length is None or int(length) == len(a.body))
            seen.append(a.status if ok or a.status != 200 else "wrong body")

    threads = [threading.Thread(target=client, args=(u,)) for u in uris]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        r = subprocess.run([shutil.which("apache2") or "/usr/sbin/apache2", "-f", str(s.conf),
                            "-k", "graceful"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        time.sleep(2)
        assert s.httpd.poll() is None, s.logs()
        mark = len(seen)
        old = identify(s.worker_pids())
        assert old
        s.stop()
        assert not any(alive(p) for p in old)
        s = Apache(BUILD, SOURCE, faults_root, cors_origins="*", processes=processes,
                   port=port).start()
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
        workers = identify(s.worker_pids())
        s.stop()
    assert not any(alive(p) for p in workers)
    assert set(x for x in seen if x != "down") <= {200}, seen
    assert set(seen[:mark]) <= {200}, seen[:mark]     # a graceful restart drops nothing
    assert seen[-2:] == [200, 200], seen
