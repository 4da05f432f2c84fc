"""Web servers in front of worker pools the tests start themselves: lighttpd
from the drop-in snippet lighttpd/medimg.conf with its backend replaced
(an external socket, or bin-path with chosen settings), spawn-fcgi +
multiwatch pools, and a listening socket handed to a worker on fd 0 the way
systemd socket activation does it."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from server_process import (alive, check_serves, descendants_of, kill_exactly, process_name,
                            request, tree_of, wait_gone)

LIGHTTPD = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
SPAWN_FCGI = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"
MULTIWATCH = shutil.which("multiwatch") or "/usr/bin/multiwatch"


def single_scan_root(tmp_path_factory, prefix, patient, file_name, data):
    """A data root holding one label map, {patient}/scans/{file_name}."""
    import nibabel as nib
    import numpy as np
    root = tmp_path_factory.mktemp(prefix) / "output"
    scans = root / patient / "scans"
    scans.mkdir(parents=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(scans / file_name))
    return root


def lighttpd_string(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def external_backend(sock):
    """A var.medimg_backend for a pool the test started on `sock`."""
    return (f'var.medimg_backend = (\n  "socket" => {lighttpd_string(sock)},\n'
            f'  "check-local" => "disable",\n)\n')


def bin_path_backend(sock, command, procs, environment):
    """A var.medimg_backend where lighttpd spawns `procs` workers."""
    env = "".join(f"    {lighttpd_string(k)} => {lighttpd_string(v)},\n"
                  for k, v in environment.items())
    return (f'var.medimg_backend = (\n  "socket" => {lighttpd_string(sock)},\n'
            f'  "bin-path" => {lighttpd_string(command)},\n  "max-procs" => {procs},\n'
            f'  "check-local" => "disable",\n  "bin-environment" => (\n{env}  ),\n)\n')


class SnippetLighttpd:
    """lighttpd with the installed-style snippet (see test_lighttpd_snippet)
    and `backend` instead of the snippet's own worker pool."""

    def __init__(self, tmp, data_root, backend, extra_main=""):
        from test_lighttpd_snippet import install_snippet
        from server_process import free_port
        self.tmp = Path(tmp)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.conf = install_snippet(self.tmp, data_root, self.port)
        snippet = self.tmp / "conf-enabled" / "50-medimg.conf"
        text, n = re.subn(r"^var\.medimg_backend = \(\n.*?^\)\n", lambda _m: backend,
                          snippet.read_text(), count=1, flags=re.M | re.S)
        assert n == 1
        snippet.write_text(text)
        if extra_main:
            self.conf.write_text(self.conf.read_text() + extra_main + "\n")
        self.error_log = self.tmp / "error.log"
        self.breakage_log = self.tmp / "breakage.log"
        self.proc = None

    def start(self, healthy=True, timeout=20):
        check = subprocess.run([LIGHTTPD, "-tt", "-f", str(self.conf)], capture_output=True,
                               text=True)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen([LIGHTTPD, "-D", "-f", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.tmp / "lighttpd.stderr", "ab"),
                                     start_new_session=True)
        if healthy:
            wait_answer(self.base_url, "/health", 200, timeout, self.logs)
            check_serves(self.proc, self.port, "lighttpd")
        return self

    def logs(self):
        out = []
        for f in (self.error_log, self.breakage_log, self.tmp / "lighttpd.stderr"):
            if f.exists():
                out.append(f"--- {f.name}\n" + f.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def worker_pids(self):
        return workers_under(self.proc.pid)

    def stop(self):
        if self.proc is None:
            return
        stop_tree(self.proc)
        self.proc = None


def workers_under(pid):
    return [p for p in descendants_of(pid) if process_name(p) == "medimg-fcgi" and alive(p)]


def stop_tree(proc, timeout=15):
    """SIGTERM to `proc`; SIGKILL to whatever of its tree is left after."""
    tree = tree_of(proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    for p in wait_gone(tree, timeout=5):
        kill_exactly(p, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(5)


def wait_answer(base_url, path, status, timeout, logs=lambda: ""):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            a = request(base_url, path, timeout=5)
            if a.status == status:
                return a
            last = a
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{path}: no {status} in {timeout} s (last {last})\n{logs()}")


def worker_environment(data_root, cache_dir, **settings):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEDIMG_") and k not in ("IMAGE_SERVER", "OUTPUT_FOLDER")}
    env["MEDIMG_DATA_ROOT"] = str(data_root)
    env["MEDIMG_CACHE_DIR"] = str(cache_dir)
    for k, v in settings.items():
        env[f"MEDIMG_{k.upper()}"] = str(v)
    return env


def spawn_multiwatch_pool(worker, sock, log_path, env, forks=2, threads=2):
    """`spawn-fcgi -n -s SOCK -- multiwatch -f N -- medimg-fcgi`
    (docs/DEPLOYMENT.md, "Without systemd")."""
    cmd = [SPAWN_FCGI, "-n", "-s", str(sock), "-M", "0600", "--", MULTIWATCH, "-f", str(forks),
           "--", str(worker), "--threads", str(threads)]
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, cwd=str(Path(log_path).parent), start_new_session=True)
    finally:
        log.close()


def listening_unix_socket(path):
    """What systemd's medimg-fcgi.socket holds: a bound, listening socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(128)
    return s


def worker_on_fd0(worker, listener, log_path, env, threads=2):
    """Starts a worker with `listener` as its standard input (StandardInput=
    socket in systemd/medimg-fcgi.service); the caller keeps `listener`."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen([str(worker), "--threads", str(threads)], stdin=listener.fileno(),
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=str(Path(log_path).parent), start_new_session=True)
    finally:
        log.close()
