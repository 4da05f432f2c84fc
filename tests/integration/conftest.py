"""Fixtures for the HTTP integration suite.

A `server` fixture starts a real web server in front of real medimg-fcgi
workers on a free loopback port, over a temporary data tree made by
`medimg demo` plus hand-made files. Tests use only `server.base_url`,
`server.data_root`, `server.kind` (and `server.secret`, the bytes of the
hidden `.env` that must never be served), so every server kind runs the
same tests.

Server kinds are registered in SERVER_KINDS; MEDIMG_SERVER_KINDS (comma
separated) selects which run (default: every registered kind whose programs
exist).
"""

import gzip
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Re-exported: the tests import these from conftest.
from server_process import (Answer, alive, check_serves, children_of,  # noqa: E402,F401
                            descendants_of, identify, free_port, kill_exactly, listening_sockets,
                            process_name, request, terminate, tree_of, wait_gone,
                            wait_healthy)

BUILD = Path(os.environ.get("MEDIMG_BUILD_DIR", HERE.parents[1] / "build"))
SOURCE = Path(os.environ.get("MEDIMG_SOURCE_DIR", HERE.parents[1]))
MEDIMG = BUILD / "cli" / "medimg"
WORKER = BUILD / "fcgi" / "medimg-fcgi"

PATIENT = "PA00000002"
SCAN = f"{PATIENT}_CT"
SECRET = b"MEDIMG_TEST_SECRET=do-not-serve-4f1c\n"
OUTSIDE_SECRET = b"outside the data root 9b27\n"
ALLOWED_ORIGIN = "http://viewer.example"


# ---------------------------------------------------------------------------
# The data tree

def make_tree(root):
    """`medimg demo --size 64x64x40` plus hand-made files."""
    import nibabel as nib
    import numpy as np

    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(MEDIMG), "demo", str(root), "--size", "64x64x40", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, timeout=120)
    pdir = root / PATIENT
    scans = pdir / "scans"
    seg = np.asarray(nib.load(str(scans / f"{SCAN}.nii.gz")).dataobj)
    affine = nib.load(str(scans / f"{SCAN}.nii.gz")).affine
    small = np.zeros((8, 7, 6), dtype=np.int16)
    small[1:4, 1:3, 1:5] = 6
    small[4:7, 3:6, 2:4] = 10
    small[0, 0, 0] = 133
    nib.save(nib.Nifti1Image(small, np.diag([1.5, 1.5, 2.0, 1.0])), str(scans / "plain.nii"))
    nib.save(nib.AnalyzeImage(small, np.diag([1.5, 1.5, 2.0, 1.0])), str(scans / "pair.img"))
    whole = (scans / "plain.nii").read_bytes()
    packed = gzip.compress(whole)
    (scans / "broken.nii.gz").write_bytes(packed[:len(packed) // 2])        # truncated gzip
    bad = bytearray(whole)
    bad[72:74] = (8).to_bytes(2, "little")     # bitpix 8 for int16 data
    (pdir / "badheader.nii").write_bytes(bytes(bad))
    (pdir / "notnifti.nii").write_bytes(b"\0\0\0\0" + whole[4:])       # sizeof_hdr 0
    (pdir / ".env").write_bytes(SECRET)
    (root / ".env").write_bytes(SECRET)
    (pdir / "notes").mkdir()
    (pdir / "notes" / "readme.txt").write_text("a <b>plain</b> note & more\n")
    (pdir / "notes" / "data.json").write_text('{"a": 1}\n')
    (pdir / "notes" / "odd <name>&.txt").write_text("escaped\n")
    outside = root.parent / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_bytes(OUTSIDE_SECRET)
    nib.save(nib.Nifti1Image(small, np.eye(4)), str(outside / "outside.nii.gz"))
    (pdir / "escape.txt").symlink_to(outside / "secret.txt")
    (scans / "escape.nii.gz").symlink_to(outside / "outside.nii.gz")
    (pdir / "escape-dir").symlink_to(outside, target_is_directory=True)
    return {"seg": seg, "affine": affine, "small": small}


@pytest.fixture(scope="session")
def tree(tmp_path_factory):
    if not MEDIMG.exists():
        pytest.skip(f"{MEDIMG} is not built")
    base = tmp_path_factory.mktemp("tree")
    root = base / "output"
    info = make_tree(root)
    info["root"] = root
    return info


# ---------------------------------------------------------------------------
# Servers

class LighttpdServer:
    """`medimg serve`: lighttpd + its bin-path worker pool."""

    kind = "lighttpd"

    def __init__(self, build_dir, source_dir, data_root, *, port=None, listing=True,
                 cors_origins="*", workers=2, threads=4, extra_args=()):
        self.build_dir = Path(build_dir)
        self.source_dir = Path(source_dir)
        self.data_root = Path(data_root)
        self.port = port or free_port()
        self.listing = listing
        self.cors_origins = cors_origins
        self.workers = workers
        self.threads = threads
        self.extra_args = list(extra_args)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = None

    def command(self):
        cmd = [str(self.build_dir / "cli" / "medimg"), "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--data-root", str(self.data_root),
               "--workers", str(self.workers), "--threads", str(self.threads)]
        if not self.listing:
            cmd.append("--disable-dir-listing")
        if self.cors_origins is not None:
            origins = self.cors_origins if isinstance(self.cors_origins, str) \
                else " ".join(self.cors_origins)
            cmd += ["--cors-origins", origins]
        return cmd + self.extra_args

    def start(self, timeout=30):
        import tempfile
        fd, self.log_path = tempfile.mkstemp(prefix="medimg-serve-", suffix=".log")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("MEDIMG_") and k not in ("IMAGE_SERVER", "OUTPUT_FOLDER")}
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=fd,
                                     stderr=fd, env=env, cwd=tempfile.gettempdir(),
                                     start_new_session=True)
        os.close(fd)
        try:
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout=30):
        wait_healthy(self.proc, self.base_url, "medimg serve", self.logs, timeout)

    def logs(self):
        try:
            return Path(self.log_path).read_text(errors="replace")[-6000:]
        except (OSError, TypeError):
            return ""

    def lighttpd_pid(self):
        for c in children_of(self.proc.pid):
            if process_name(c) == "lighttpd":
                return c
        return None

    def runtime_dir(self):
        pid = self.lighttpd_pid()
        if pid is None:
            return None
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return Path(args[args.index(b"-f") + 1].decode()).parent

    def cache_dirs(self):
        rt = self.runtime_dir()
        return [rt / "cache"] if rt else []

    def worker_pids(self):
        return [p for p in descendants_of(self.proc.pid)
                if process_name(p) == "medimg-fcgi" and alive(p)]

    def stop(self):
        """SIGTERM to `medimg serve`; returns pids that outlived it."""
        if self.proc is None:
            return []
        tree = tree_of(self.proc)
        terminate(self.proc, 20)
        survivors = wait_gone(tree, timeout=5)
        for p in survivors:
            kill_exactly(p, signal.SIGKILL)
        if self.log_path and not os.environ.get("MEDIMG_KEEP_TMP"):
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
        self.proc = None
        return survivors

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


SERVER_KINDS = {"lighttpd": LighttpdServer}
try:
    from apache_server import ApacheServer
    SERVER_KINDS["apache"] = ApacheServer
except ImportError:
    pass


def _available(kind):
    if kind == "lighttpd":
        return (shutil.which("lighttpd") or Path("/usr/sbin/lighttpd").exists()) \
            and MEDIMG.exists() and WORKER.exists()
    cls = SERVER_KINDS[kind]
    check = getattr(sys.modules.get(cls.__module__), f"{kind}_available", None)
    return WORKER.exists() and (check() if check else True)


def selected_kinds():
    wanted = os.environ.get("MEDIMG_SERVER_KINDS")
    names = [k.strip() for k in wanted.split(",")] if wanted else list(SERVER_KINDS)
    return [k for k in names if k in SERVER_KINDS]


def start_server(kind, tree_root, **options):
    if not _available(kind):
        pytest.skip(f"{kind}: server or medimg binaries not available")
    server = SERVER_KINDS[kind](BUILD, SOURCE, tree_root, **options)
    server.start()
    server.secret = SECRET
    return server


@pytest.fixture(scope="module", params=selected_kinds())
def server(request, tree):
    """Listings on, CORS "*"."""
    s = start_server(request.param, tree["root"], cors_origins="*")
    yield s
    s.stop()


@pytest.fixture(scope="module", params=selected_kinds())
def strict_server(request, tree):
    """Listings off, CORS allow-list of ALLOWED_ORIGIN."""
    s = start_server(request.param, tree["root"], listing=False, cors_origins=[ALLOWED_ORIGIN])
    yield s
    s.stop()


@pytest.fixture
def get(server):
    def _get(path, method="GET", headers=None):
        return request(server.base_url, path, method=method, headers=headers)
    return _get
