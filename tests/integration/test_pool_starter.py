"""packaging/medimg-fcgi-pool, the worker pool without systemd
(docs/DEPLOYMENT.md, "Without systemd"): start creates the runtime folder,
writes a pid file and a log, lighttpd's snippet with the external backend
(lighttpd/medimg.conf) reaches the pool, stop leaves no process, pid file or
socket behind."""

import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import MEDIMG, SOURCE, WORKER, children_of, free_port, \
    process_name, request, wait_gone
from server_process import identify
from test_lighttpd_snippet import LIGHTTPD, install_snippet, start_lighttpd

POOL = SOURCE / "packaging" / "medimg-fcgi-pool"

pytestmark = pytest.mark.skipif(
    not (Path(LIGHTTPD).exists() and WORKER.exists() and shutil.which("spawn-fcgi")
         and shutil.which("multiwatch")),
    reason="lighttpd, spawn-fcgi, multiwatch and medimg-fcgi needed")


def external_backend(conf_text, socket):
    """The snippet as its comment says: the bin-path backend replaced by the
    commented external one (lighttpd refuses to define a var. twice)."""
    active = re.search(r'^var\.medimg_backend = \(\n.*?^\)\n', conf_text, re.M | re.S)
    commented = re.search(r'^#var\.medimg_backend = \(\n(?:#.*\n)*?#\)\n', conf_text, re.M)
    assert active and commented, "lighttpd/medimg.conf lost one of its two backends"
    external = "\n".join(l[1:] for l in commented.group(0).splitlines()) + "\n"
    assert "bin-path" not in external and '"/run/medimg/fcgi.sock"' in external
    external = external.replace('"/run/medimg/fcgi.sock"', f'"{socket}"')
    return conf_text[:active.start()] + external + conf_text[active.end():]


@pytest.fixture
def pool_env(tmp_path):
    base = Path(tempfile_dir())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
    try:
        data = base / "output"
        subprocess.run([str(MEDIMG), "demo", str(data), "--size", "32x32x8", "--quiet"],
                       check=True, timeout=120, capture_output=True)
        cache = base / "cache"
        cache.mkdir()
        ini = base / "medimg.ini"
        ini.write_text(f"[paths]\ndata_root = {data}\ncache_dir = {cache}\n"
                       "[cache]\nsendfile_header = X-Sendfile\n[server]\nthreads = 2\n")
        env.update({
            "MEDIMG_PROCESSES": "2",
            # The runtime folder does not exist yet, as after a reboot.
            "MEDIMG_SOCKET": str(base / "run" / "medimg" / "fcgi.sock"),
            "MEDIMG_CONFIG": str(ini),
            "MEDIMG_POOL_LOG": str(base / "log" / "fcgi-pool.log"),
            "MEDIMG_FCGI_BIN": str(WORKER),
            "MEDIMG_POOL_DIR": str(base),
        })
        if os.geteuid() == 0:
            # The package's user may not exist here; the web server's does.
            env["MEDIMG_POOL_USER"] = "www-data"
            shutil.chown(cache, "www-data")
        yield {"base": base, "data": data, "cache": cache, "env": env}
    finally:
        subprocess.run([str(POOL), "stop"], env=env, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def tempfile_dir():
    import tempfile
    d = tempfile.mkdtemp(prefix="medimg-pool-")
    os.chmod(d, 0o755)   # the workers' user must reach the data and the socket
    return d


def pool(env, *args):
    return subprocess.run([str(POOL), *args], env=env, capture_output=True, text=True,
                          timeout=90)


def test_start_serve_through_lighttpd_stop(pool_env, tmp_path):
    env = pool_env["env"]
    sock = Path(env["MEDIMG_SOCKET"])
    pid_file = sock.parent / "pool.pid"
    assert pool(env, "status").returncode == 3

    r = pool(env, "start")
    assert r.returncode == 0, r.stderr + Path(env["MEDIMG_POOL_LOG"]).read_text()
    pid = int(pid_file.read_text())
    assert process_name(pid) == "multiwatch"
    # Forked children are named multiwatch until they exec the worker.
    def named_workers():
        return [w for w in children_of(pid) if process_name(w) == "medimg-fcgi"]
    workers = named_workers()
    deadline = time.monotonic() + 10
    while len(workers) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        workers = named_workers()
    assert len(workers) == 2 and all(process_name(w) == "medimg-fcgi" for w in workers)
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o660
    if os.geteuid() == 0:
        # Never root: the workers run as the configured user.
        assert all(os.stat(f"/proc/{w}").st_uid != 0 for w in workers)
    # A second start does not start a second pool.
    again = pool(env, "start")
    assert again.returncode == 0 and "already running" in again.stderr
    assert int(pid_file.read_text()) == pid
    assert pool(env, "status").returncode == 0

    port = free_port()
    conf = install_snippet(tmp_path, pool_env["data"], port)
    conf_d = tmp_path / "conf-enabled" / "50-medimg.conf"
    text = conf_d.read_text().replace(f'"{tmp_path / "cache"}"', f'"{pool_env["cache"]}"')
    conf_d.write_text(external_backend(text, sock))
    httpd = start_lighttpd(conf, port, log=tmp_path / "error.log")
    base_url = f"http://127.0.0.1:{port}"
    try:
        # lighttpd spawned nothing: the pool's workers are the only ones.
        assert not [c for c in children_of(httpd.pid) if process_name(c) == "medimg-fcgi"]
        patient = next(p.name for p in pool_env["data"].iterdir())
        seg = next((pool_env["data"] / patient / "scans").glob("*.nii.gz")).name
        f = request(base_url, f"/filtered-scans/{patient}/{seg}?label_ids=1")
        assert f.status == 200 and f.body[:2] == b"\x1f\x8b"
    finally:
        httpd.terminate()
        httpd.wait(15)
    assert "listening" in Path(env["MEDIMG_POOL_LOG"]).read_text()

    pool_processes = identify([pid, *workers])
    r = pool(env, "stop")
    assert r.returncode == 0, r.stderr
    assert wait_gone(pool_processes, timeout=10) == []
    assert not pid_file.exists() and not sock.exists()
    assert pool(env, "status").returncode == 3
    assert pool(env, "stop").returncode == 0


def test_start_over_stale_files(pool_env):
    """After a crash the pid file names a dead process and the socket file is
    still there: start replaces both, and the runtime folder's files are its
    own again."""
    import socket as s
    env = pool_env["env"]
    sock = Path(env["MEDIMG_SOCKET"])
    sock.parent.mkdir(parents=True)
    stale = s.socket(s.AF_UNIX)
    stale.bind(str(sock))
    stale.close()                      # the file stays, nobody listens
    (sock.parent / "pool.pid").write_text(f"{os.getpid()}\n")   # alive, but not a pool
    assert pool(env, "status").returncode == 3
    r = pool(env, "start")
    assert r.returncode == 0, r.stderr + Path(env["MEDIMG_POOL_LOG"]).read_text()
    pid = int((sock.parent / "pool.pid").read_text())
    assert pid != os.getpid() and process_name(pid) == "multiwatch"
    with s.socket(s.AF_UNIX) as c:
        c.settimeout(5)
        c.connect(str(sock))           # a worker's listening socket now
    pool_processes = identify([pid])
    assert pool(env, "stop").returncode == 0
    assert wait_gone(pool_processes, timeout=10) == []


def test_pid_file_names_one_process_and_a_shared_folder_keeps_its_mode(pool_env, tmp_path):
    """The pid file names multiwatch as it stood when the file was written: a
    process with that pid and name that started later (a pid handed on after
    a crash) is not the pool, so neither status nor stop touches it. A
    runtime folder that exists already (a shared one: sticky and
    world-writable here) keeps its mode."""
    env = pool_env["env"]
    sock = Path(env["MEDIMG_SOCKET"])
    sock.parent.mkdir(parents=True)
    os.chmod(sock.parent, 0o1777)
    r = pool(env, "start")
    assert r.returncode == 0, r.stderr + Path(env["MEDIMG_POOL_LOG"]).read_text()
    assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o1777
    pid_file = sock.parent / "pool.pid"
    assert process_name(int(pid_file.read_text())) == "multiwatch"
    assert pool(env, "stop").returncode == 0

    # A stand-in named multiwatch, under a pid file written before it started.
    fake = tmp_path / "multiwatch"
    shutil.copy("/bin/sleep", fake)
    impostor = subprocess.Popen([str(fake), "60"])
    try:
        deadline = time.monotonic() + 5
        while process_name(impostor.pid) != "multiwatch" and time.monotonic() < deadline:
            time.sleep(0.05)
        pid_file.write_text(f"{impostor.pid}\n")
        an_hour_ago = time.time() - 3600
        os.utime(pid_file, (an_hour_ago, an_hour_ago))
        assert pool(env, "status").returncode == 3
        assert pool(env, "stop").returncode == 0
        assert impostor.poll() is None, "stop signalled a process that is not the pool"
        # Written after it started: the pool as far as the file can tell.
        pid_file.write_text(f"{impostor.pid}\n")
        assert pool(env, "status").returncode == 0
    finally:
        impostor.kill()
        impostor.wait()
        pid_file.unlink(missing_ok=True)
