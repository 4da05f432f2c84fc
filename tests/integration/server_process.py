"""What the test servers (conftest.LighttpdServer, apache_server.ApacheServer)
share: a free loopback port, one-request HTTP, process lookups by pid
through /proc, waiting for /health, and stopping a server process.

conftest re-exports these names, so tests keep importing them from there.
"""

import fcntl
import http.client
import os
import random
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
from pathlib import Path


# Ports handed out by free_port(): below the kernel's ephemeral range, so that
# neither bind(port 0) nor the source port of an outgoing connection (a load
# generator's thousands of them) can take one between free_port() returning it
# and the server binding it; and each held under an flock() for the life of
# this process, so that two test processes running at once never get the same
# one. The lock files are per user (a lock is advisory between cooperating
# processes only); the bind check covers everyone else.
_PORT_LOCKS = Path(f"/tmp/medimg-test-ports-{os.getuid()}")
_held_ports = {}          # port -> the open lock file that keeps it ours


def _ephemeral_low():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port):
    # With SO_REUSEADDR, as lighttpd and Apache bind: a connection of an
    # earlier test left in TIME_WAIT does not stop them.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    """A loopback port no other server holds and no other test process of
    this user has been given (see _PORT_LOCKS above)."""
    low, high = 20000, min(_ephemeral_low(), 65536) - 1
    if high - low < 1000:                   # an unusual range: the kernel picks
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    _PORT_LOCKS.mkdir(mode=0o700, exist_ok=True)
    start = random.randrange(low, high + 1)
    for i in range(high - low + 1):
        port = low + (start - low + i) % (high - low + 1)
        if port in _held_ports:
            continue
        f = open(_PORT_LOCKS / str(port), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        if _bindable(port):
            _held_ports[port] = f
            return port
        f.close()
    raise RuntimeError(f"no free loopback port in {low}-{high}")


# ---------------------------------------------------------------------------
# Process helpers (by pid, through /proc)

def children_of(pid):
    """Direct children of `pid` (from /proc/*/stat)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == pid:
            out.append(int(entry))
    return out


def descendants_of(pid):
    out, todo = [], [pid]
    while todo:
        for c in children_of(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def process_name(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


class Process(tuple):
    """A process as (pid, start time in clock ticks since boot): a pid alone
    names whatever holds it now, and pids are handed out again once their
    process has been reaped. Signals and liveness checks of processes seen
    earlier go through this, so that a test never signals a process of
    another test (or of the system) that inherited a recycled pid."""
    __slots__ = ()

    def __new__(cls, pid, started):
        return super().__new__(cls, (pid, started))

    pid = property(lambda self: self[0])
    started = property(lambda self: self[1])


def _stat_fields(pid):
    """/proc/PID/stat's fields after the command name (state first), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def identify(pids):
    """The processes holding `pids` now (gone ones left out)."""
    out = []
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            out.append(Process(pid, int(fields[19])))
    return out


def alive(p):
    """True while `p` (a pid, or a Process seen earlier) exists and is not a
    zombie; a Process whose pid now belongs to a newer process is gone."""
    pid = p.pid if isinstance(p, Process) else p
    fields = _stat_fields(pid)
    if fields is None or fields[0] == "Z":
        return False
    return not isinstance(p, Process) or int(fields[19]) == p.started


def kill_exactly(p, sig):
    """Sends `sig` to Process `p` if that very process still runs. The pidfd
    pins the process, so the start time checked is the one signalled."""
    try:
        fd = os.pidfd_open(p.pid)
    except OSError:
        return False
    try:
        if not alive(p):
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def tree_of(proc):
    """The Popen `proc` and its descendants, as Processes. Empty once `proc`
    has been reaped: its pid may then be another process's, and the
    descendants of that one are not ours."""
    if proc.poll() is not None:
        return []
    return identify([proc.pid, *descendants_of(proc.pid)])


def wait_gone(procs, timeout=10):
    """Waits until none of `procs` (pids or Processes) is alive; returns
    those still alive at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in procs):
            return []
        time.sleep(0.05)
    return [p for p in procs if alive(p)]


# ---------------------------------------------------------------------------
# HTTP helper

class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # http.client.HTTPMessage (case-insensitive)
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return f"<Answer {self.status} {dict(self.headers)} {self.body[:200]!r}>"


def request(base_url, path, method="GET", headers=None, timeout=60):
    """One request on a fresh connection; the path is sent exactly as given."""
    host, port = base_url.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        body = r.read()
        return Answer(r.status, r.headers, body)
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# Starting and stopping

def listening_sockets(port):
    """The TCP sockets listening on `port`, as (local address in /proc/net's
    hex, socket inode), IPv4 and IPv6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            address, hexport = f[1].rsplit(":", 1)
            if f[3] == "0A" and int(hexport, 16) == port:   # 0A: LISTEN
                found.append((address, f[9]))
    return found


def listeners(port):
    """Pids of the processes that hold a listening TCP socket on `port` (any
    address), as far as /proc lets this user see them."""
    inodes = {f"socket:[{inode}]" for _, inode in listening_sockets(port)}
    holders = set()
    for entry in os.listdir("/proc") if inodes else ():
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") in inodes:
                    holders.add(int(entry))
                    break
            except OSError:
                continue
    return holders


def check_serves(proc, port, name):
    """Raises RuntimeError unless the listener on `port` is `proc`'s or one of
    its descendants'. An answer on a port says nothing about who gave it: a
    server that failed to bind (the port taken meanwhile) must not pass for
    healthy because another process answers there."""
    ours = {p.pid for p in tree_of(proc)}
    holders = listeners(port)
    if holders and holders <= ours:
        return
    others = ", ".join(f"{p} ({process_name(p)})" for p in sorted(holders - ours)) or "unknown"
    raise RuntimeError(f"port {port} answers, but not from {name} (pid {proc.pid}); "
                       f"its listener is held by: {others}")


def wait_healthy(proc, base_url, name, logs, timeout):
    """Polls `base_url`/health until it answers 200 from `proc` (called
    `name`) or its descendants. Raises RuntimeError with `logs()` when `proc`
    exits first, when another process holds the port, or when `timeout`
    seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}:\n{logs()}")
        try:
            a = request(base_url, "/health", timeout=5)
            if a.status == 200:
                check_serves(proc, urllib.parse.urlsplit(base_url).port, name)
                return
            last = a
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"no healthy answer from {base_url}: {last}\n{logs()}")


def terminate(proc, timeout):
    """SIGTERM to `proc` if it still runs; SIGKILL to its process group when
    it has not exited `timeout` seconds later."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def fcgi_request(address, params):
    """One FastCGI RESPONDER request; returns (status, headers, body)."""
    def record(kind, content):
        return struct.pack(">BBHHBx", 1, kind, 1, len(content), 0) + content

    def pair(name, value):
        out = b""
        for n in (len(name), len(value)):
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        return out + name + value

    body = b"".join(pair(k.encode(), v.encode()) for k, v in params.items())
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(record(1, struct.pack(">HB5x", 1, 0)) + record(4, body) + record(4, b"")
                     + record(5, b""))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    out, pos = b"", 0
    while pos + 8 <= len(data):
        _, kind, _, length, padding = struct.unpack(">BBHHBx", data[pos:pos + 8])
        if kind == 6:
            out += data[pos + 8:pos + 8 + length]
        pos += 8 + length + padding
        if kind == 3:
            break
    head, _, payload = out.partition(b"\r\n\r\n")
    headers = [line.split(":", 1) for line in head.decode().split("\r\n") if ":" in line]
    headers = [(k.strip().lower(), v.strip()) for k, v in headers]
    status = next((int(v.split()[0]) for k, v in headers if k == "status"), 200)
    return status, headers, payload


def wait_listening(proc, port, timeout=10):
    """Waits until `proc` accepts on 127.0.0.1:port; fails the test with its
    stderr when it exits first."""
    import pytest
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                pytest.fail(proc.stderr.read().decode(errors="replace"))
            time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
