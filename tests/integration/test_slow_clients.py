"""Clients that stop reading a streamed answer (docs/SECURITY.md, docs/SECURITY.md):
each costs a worker thread at most `[limits] send_timeout`, and /health keeps
answering meanwhile.

The worker streams an answer itself when the cache is off, with
`sendfile_header = none` (both run here), or when the cache cannot store. lighttpd
would buffer a backend's whole answer, but medimg-routes.conf sets
`server.stream-response-body = 2`, so lighttpd passes the client's pace on
to the worker, which then really blocks in write(). Real clients send a
request and never read."""

import concurrent.futures
import os
import socket
import time

import nibabel as nib
import numpy as np
import pytest

from conftest import PATIENT, SOURCE, WORKER, request
from pool_servers import LIGHTTPD, SnippetLighttpd, bin_path_backend, single_scan_root

pytestmark = pytest.mark.skipif(not (os.path.exists(LIGHTTPD) and WORKER.exists()),
                                reason="lighttpd and medimg-fcgi needed")

SHAPE = (128, 128, 256)            # int16: an 8 MiB answer
IDS = "1,2,3,4,5,6,7,8,9"
BIG = f"/filtered-scans/{PATIENT}/big.nii?label_ids={IDS}"
THREADS = 4
CLIENTS = 16
SEND_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def big_root(tmp_path_factory):
    data = np.random.default_rng(5).integers(0, 10, size=SHAPE, dtype=np.int16)
    return single_scan_root(tmp_path_factory, "slow", PATIENT, "big.nii", data)


@pytest.fixture(params=[{"MEDIMG_CACHE_ENABLED": "false"},      # a temporary, streamed
                        {"MEDIMG_SENDFILE_HEADER": "none"}],    # the cache entry, streamed
                ids=["cache-off", "sendfile-none"])
def streaming_lighttpd(request, tmp_path, big_root):
    env = {"MEDIMG_DATA_ROOT": str(big_root), "MEDIMG_CACHE_DIR": str(tmp_path / "cache"),
           "MEDIMG_SEND_TIMEOUT": str(SEND_TIMEOUT), **request.param}
    backend = bin_path_backend(tmp_path / "fcgi.sock", f"{WORKER} --threads {THREADS}", 1, env)
    web = SnippetLighttpd(tmp_path, big_root, backend)
    routes = (SOURCE / "lighttpd" / "medimg-routes.conf").read_text()
    assert "\nserver.stream-response-body = 2\n" in routes
    web.start()
    yield web
    web.stop()


def stalled_client(port):
    """Asks for the 8 MiB answer, then never reads (a 4 KiB receive window)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {BIG} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    return s


def whole_answer(base):
    a = request(base, BIG, timeout=20)
    assert a.status == 200, a
    img = nib.Nifti1Image.from_bytes(a.body)
    return img.shape, len(a.body)


def test_clients_that_never_read_free_their_threads_after_send_timeout(streaming_lighttpd):
    web = streaming_lighttpd
    shape, size = whole_answer(web.base_url)
    assert shape == SHAPE and size > 8 * 1024 * 1024
    clients = [stalled_client(web.port) for _ in range(CLIENTS)]
    try:
        start = time.monotonic()
        # Every stalled answer holds a thread for send_timeout, THREADS at a
        # time: CLIENTS / THREADS rounds, plus the time to compute each.
        free_at = start + (CLIENTS / THREADS) * SEND_TIMEOUT + 4
        slowest = 0.0
        while time.monotonic() < free_at:
            t = time.monotonic()
            a = request(web.base_url, "/health", timeout=2)   # raises past 2 s
            assert a.status == 200, a
            slowest = max(slowest, time.monotonic() - t)
            time.sleep(0.25)
        assert slowest < 2
        # The threads are free again: THREADS whole answers at once.
        t = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(THREADS) as ex:
            for shape, _ in ex.map(lambda _i: whole_answer(web.base_url), range(THREADS)):
                assert shape == SHAPE
        assert time.monotonic() - t < 15
        print(f"slowest /health during the stalls {slowest * 1000:.0f} ms; {THREADS} whole "
              f"answers {time.monotonic() - t:.2f} s after {free_at - start:.0f} s")
        # Each stalled answer was given up and said so in the breakage log.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = web.breakage_log.read_text(errors="replace") if web.breakage_log.exists() else ""
            if text.count("send_timeout") >= CLIENTS:
                break
            time.sleep(0.2)
        assert text.count("send_timeout") == CLIENTS, web.logs()
        assert "big.nii" in text
        # The stalled clients got a truncated answer, not a complete one.
        for s in clients:
            s.settimeout(5)
            got = 0
            try:
                while True:
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
            except OSError:
                pass
            assert got < size
    finally:
        for s in clients:
            s.close()
