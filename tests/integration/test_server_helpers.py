"""The test servers' own start-up checks (server_process.py), which every
other integration test leans on: two test processes running at once never
get the same port from free_port(), and a server counts as up only when the
answers on its port come from it, not from whatever else listens there (a
server that failed to bind must not pass for healthy while another test's
server answers in its place).

Real processes: a second Python interpreter taking ports at the same time,
and `medimg serve` started on a port another server already holds."""

import http.server
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from conftest import MEDIMG, PATIENT, SCAN, LighttpdServer, BUILD, SOURCE, check_serves, \
    free_port, request, wait_healthy
import server_process

HERE = Path(__file__).resolve().parent


def test_concurrent_processes_get_distinct_ports_outside_the_ephemeral_range():
    low = server_process._ephemeral_low()
    # Another test process takes 200 ports and keeps them (it holds their
    # locks) while this one takes 200 more.
    other = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(HERE)!r})
            import server_process
            print(" ".join(str(server_process.free_port()) for _ in range(200)), flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        theirs = [int(p) for p in other.stdout.readline().split()]
        ours = [free_port() for _ in range(200)]
    finally:
        other.stdin.close()
        other.wait(10)
    assert len(theirs) == 200 and len(set(ours)) == 200
    assert not set(theirs) & set(ours)
    assert all(20000 <= p < low for p in theirs + ours), (low, min(theirs + ours), max(theirs + ours))


class Impostor:
    """A plain HTTP server on a port, answering 200 to everything."""

    def __init__(self, port):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"status":"healthy"}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        http.server.HTTPServer.allow_reuse_address = True
        self.server = http.server.HTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_an_answer_from_another_process_is_not_healthy():
    port = free_port()
    impostor = Impostor(port)
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        assert request(f"http://127.0.0.1:{port}", "/health").status == 200
        with pytest.raises(RuntimeError, match=f"port {port} answers, but not from bystander"):
            wait_healthy(bystander, f"http://127.0.0.1:{port}", "bystander", lambda: "", timeout=5)
        with pytest.raises(RuntimeError, match="not from bystander"):
            check_serves(bystander, port, "bystander")
    finally:
        bystander.kill()
        bystander.wait()
        impostor.close()


@pytest.mark.skipif(not MEDIMG.exists(), reason="medimg must be built")
def test_medimg_serve_on_a_taken_port_fails_its_start(tree):
    port = free_port()
    impostor = Impostor(port)
    try:
        server = LighttpdServer(BUILD, SOURCE, tree["root"], port=port)
        with pytest.raises(RuntimeError) as failed:
            server.start(timeout=30)
        server.stop()
        # Either it saw medimg serve exit (lighttpd could not bind) or it saw
        # the answer come from this process: never "healthy".
        assert "exited" in str(failed.value) or "not from medimg serve" in str(failed.value), failed.value
    finally:
        impostor.close()


@pytest.mark.skipif(not MEDIMG.exists(), reason="medimg must be built")
def test_own_server_passes(tree):
    server = LighttpdServer(BUILD, SOURCE, tree["root"]).start()
    try:
        check_serves(server.proc, server.port, "medimg serve")
        assert request(server.base_url, f"/output/{PATIENT}/scans/{SCAN}.nii.gz/labels").status == 200
    finally:
        server.stop()
