"""A worker that cannot start says why where an administrator looks
(README.md, "Troubleshooting"): under lighttpd's bin-path, in the
server.breakagelog that lighttpd/medimg.conf sets; its exit code is the
error table's (lib/error.hpp: 2 for a bad setting, 1 for anything else)."""

import os
import re
import socket
import subprocess
import time

import pytest

from conftest import WORKER, request
from pool_servers import LIGHTTPD, SnippetLighttpd, bin_path_backend

pytestmark = pytest.mark.skipif(not (os.path.exists(LIGHTTPD) and WORKER.exists()),
                                reason="lighttpd and medimg-fcgi needed")


# The error table's exit code of each (lib/error.hpp): BadParameter 2,
# NotFound 1, Io 1.
STARTUP_FAILURES = [
    ("MEDIMG_MAX_QUEUE", "-3", 'configuration: [limits] max_queue = "-3": out of range', 2),
    ("MEDIMG_SEND_TIMEOUT", "soon", '[limits] send_timeout = "soon"', 2),
    ("MEDIMG_DATA_ROOT", "/nonexistent/medimg", "data root /nonexistent/medimg is not a directory", 1),
    ("MEDIMG_CACHE_DIR", "/etc/hostname/cache", "cache directory /etc/hostname/cache is not a directory", 1),
]


@pytest.mark.parametrize("setting, value, reason, code", STARTUP_FAILURES)
def test_reason_in_lighttpd_breakagelog(tmp_path, tree, setting, value, reason, code):
    env = {"MEDIMG_DATA_ROOT": str(tree["root"]), "MEDIMG_CACHE_DIR": str(tmp_path / "cache"),
           setting: value}
    backend = bin_path_backend(tmp_path / "fcgi.sock", f"{WORKER} --threads 1", 1, env)
    web = SnippetLighttpd(tmp_path, tree["root"], backend)
    web.start(healthy=False)
    try:
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline and reason not in text:
            if web.breakage_log.exists():
                text = web.breakage_log.read_text(errors="replace")
            time.sleep(0.1)
        assert reason in text, web.logs()
        assert re.search(r"medimg-fcgi\[\d+\]: cannot start: ", text)
        # lighttpd's own error log has the exit code, the table's.
        errors = ""
        while time.monotonic() < deadline + 10 and "child exited" not in errors:
            if web.error_log.exists():
                errors = web.error_log.read_text(errors="replace")
            time.sleep(0.1)
        assert re.search(rf"child exited: {code}\b", errors), errors
        # lighttpd gives up when the worker dies while it waits for it to
        # start, else it answers 503; never a healthy answer.
        end = time.monotonic() + 10
        while web.proc.poll() is None and time.monotonic() < end:
            try:
                assert request(web.base_url, "/health", timeout=5).status == 503
                break
            except OSError:
                time.sleep(0.1)
        else:
            assert web.proc.poll() is not None, web.logs()
    finally:
        web.stop()


@pytest.mark.parametrize("setting, value, reason, code", STARTUP_FAILURES)
def test_exit_code_from_the_error_table(tmp_path, tree, setting, value, reason, code):
    """Started as systemd starts it (a listening socket on fd 0)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
    full.update({"MEDIMG_DATA_ROOT": str(tree["root"]), "MEDIMG_CACHE_DIR": str(tmp_path / "c")})
    full[setting] = value
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(tmp_path / "s.sock"))
        s.listen(4)
        r = subprocess.run([str(WORKER)], stdin=s.fileno(), capture_output=True, text=True,
                           env=full, timeout=30)
    assert r.returncode == code, r.stderr
    assert "cannot start: " in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert reason in r.stderr


@pytest.mark.parametrize("args, reason, code", [
    # No socket on fd 0 and no --listen: the stdin of a terminal or a file.
    ([], "no listening socket on fd 0", 2),
    (["--listen", "0.0.0.0:9000"], "binding every interface is refused", 2),   # BadParameter
    (["--listen", "/nonexistent/dir/medimg.sock"], "--listen /nonexistent/dir/medimg.sock: ", 1),   # Io
])
def test_socket_failures_from_the_error_table(tmp_path, tree, args, reason, code):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
    full.update({"MEDIMG_DATA_ROOT": str(tree["root"]), "MEDIMG_CACHE_DIR": str(tmp_path / "c")})
    r = subprocess.run([str(WORKER)] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       env=full, timeout=30)
    assert r.returncode == code, r.stderr
    assert re.fullmatch(r"medimg-fcgi\[\d+\]: cannot start: .*\n", r.stderr), r.stderr
    assert reason in r.stderr


def test_usage_error_exits_2_with_the_usage(tmp_path):
    r = subprocess.run([str(WORKER), "--frobnicate"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("medimg-fcgi: unknown argument --frobnicate\nusage: medimg-fcgi"), r.stderr


@pytest.mark.parametrize("setting, value, reason, code",
                         [f for f in STARTUP_FAILURES if f[0] != "MEDIMG_SEND_TIMEOUT"])
def test_reason_in_apache_error_log_under_mod_fcgid(tree, setting, value, reason, code):
    """mod_fcgid starts the workers and writes their stderr to Apache's
    ErrorLog (apache/medimg-fcgid.conf); at its info level it logs each
    worker's exit code too, which must be the table's."""
    from conftest import BUILD, SOURCE, _available
    if not _available("apache"):
        pytest.skip("apache: not available")
    from apache_server import ApacheServer
    # The last FcgidInitialEnv of a name wins over the snippet's.
    server = ApacheServer(BUILD, SOURCE, tree["root"], variant="fcgid",
                          extra_conf=f"FcgidInitialEnv {setting} {value}\nLogLevel warn fcgid:info")
    with pytest.raises(RuntimeError) as failed:
        server.start(timeout=8)       # never healthy; the logs are in the message
    text = str(failed.value)
    sections = {part.split("\n", 1)[0]: part for part in text.split("--- ")[1:]}
    error_log = sections.get(server.error_log.name, "")
    assert f"cannot start: {reason}" in error_log, text
    codes = set(re.findall(r"medimg-fcgi\(\d+\) exit\(.*\), terminated by calling exit\(\), "
                           r"return code: (\d+)", error_log))
    assert codes == {str(code)}, error_log
