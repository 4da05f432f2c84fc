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


@pytest.mark.parametrize("setting, value, reason, code", [
    ("MEDIMG_MAX_QUEUE", "-3", 'configuration: [limits] max_queue = "-3": out of range', 2),
    ("MEDIMG_SEND_TIMEOUT", "soon", '[limits] send_timeout = "soon"', 2),
    ("MEDIMG_CACHE_DIR", "/etc/hostname/cache", "cache directory /etc/hostname/cache is not a directory", 1),
])
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


@pytest.mark.parametrize("env, code", [
    ({"MEDIMG_MAX_QUEUE": "-3"}, 2),                         # BadParameter
    ({"MEDIMG_DATA_ROOT": "/nonexistent/medimg"}, 1),        # not a directory
    ({"MEDIMG_CACHE_DIR": "/etc/hostname/cache"}, 1),        # Io
])
def test_exit_code_from_the_error_table(tmp_path, tree, env, code):
    """Started as systemd starts it (a listening socket on fd 0)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
    full.update({"MEDIMG_DATA_ROOT": str(tree["root"]), "MEDIMG_CACHE_DIR": str(tmp_path / "c")})
    full.update(env)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(tmp_path / "s.sock"))
        s.listen(4)
        r = subprocess.run([str(WORKER)], stdin=s.fileno(), capture_output=True, text=True,
                           env=full, timeout=30)
    assert r.returncode == code, r.stderr
    assert "cannot start: " in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_reason_in_apache_error_log_under_mod_fcgid(tree):
    """mod_fcgid starts the workers and writes their stderr to Apache's
    ErrorLog (apache/medimg-fcgid.conf)."""
    from conftest import BUILD, SOURCE, _available
    if not _available("apache"):
        pytest.skip("apache: not available")
    from apache_server import ApacheServer
    server = ApacheServer(BUILD, SOURCE, tree["root"], variant="fcgid",
                          extra_conf="FcgidInitialEnv MEDIMG_MAX_QUEUE -3")
    with pytest.raises(RuntimeError) as failed:
        server.start(timeout=8)       # never healthy; the logs are in the message
    text = str(failed.value)
    sections = {part.split("\n", 1)[0]: part for part in text.split("--- ")[1:]}
    error_log = sections.get(server.error_log.name, "")
    assert 'cannot start: configuration: [limits] max_queue = "-3": out of range' in error_log, text
