"""Runs Apache httpd with apache/medimg.conf in front of medimg-fcgi workers.

The configuration is self-contained (ServerRoot, runtime dir, logs and
sockets in a private temporary directory; LoadModule lines from
/usr/lib/apache2/modules), so nothing of the system's Apache is touched.

When the tests run as root, Apache's children drop to `www-data` (Apache
refuses to serve as root), which cannot enter pytest's 0700 temporary
directories. Permissions there cannot be widened reliably (every pytest
session resets /tmp/pytest-of-root to 0700), so a data root or www root
that www-data cannot reach is served from a mirror in the server's own 0755
directory: the same files, hard-linked (same inodes and bytes), symlinks
copied as they are. The worker's socket belongs to www-data (spawn-fcgi -U).
"""

import grp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

from server_process import descendants_of, free_port, process_name, terminate, wait_healthy

MODULE_DIR = Path("/usr/lib/apache2/modules")
APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
SPAWN_FCGI = shutil.which("spawn-fcgi") or "/usr/bin/spawn-fcgi"
MULTIWATCH = shutil.which("multiwatch") or "/usr/bin/multiwatch"

BASE_MODULES = [
    "mpm_event", "authz_core", "authz_host", "authz_user", "authn_core",
    "alias", "dir", "autoindex", "mime", "setenvif", "headers",
    "env", "xsendfile",
]
PROXY_MODULES = ["proxy", "proxy_fcgi"]
BALANCER_MODULES = ["proxy_balancer", "slotmem_shm", "lbmethod_byrequests"]


def apache_available():
    return Path(APACHE).exists() and (MODULE_DIR / "mod_proxy_fcgi.so").exists()


def _reachable(path):
    """True when others may enter `path` and every directory above it."""
    p = Path(path).resolve()
    return all(d.stat().st_mode & stat.S_IXOTH for d in [p, *p.parents])


def _mirror(src, dst):
    """Recreates the tree `src` at `dst`: directories 0755, files hard-linked
    (copied across file systems), symlinks copied verbatim."""
    src, dst = Path(src), Path(dst)
    dst.mkdir(mode=0o755)
    os.chmod(dst, 0o755)
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        for name in dirnames + filenames:
            s, d = Path(dirpath) / name, dst / rel / name
            if s.is_symlink():
                os.symlink(os.readlink(s), d)
            elif s.is_dir():
                d.mkdir()
                os.chmod(d, 0o755)
            else:
                try:
                    os.link(s, d)
                except OSError:
                    shutil.copy2(s, d)


def server_readable_dir(prefix="medimg-apache-files-"):
    """A fresh 0755 directory Apache's children can read (caller removes it)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(d, 0o755)
    return d


def _apache_string(value):
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class ApacheServer:
    """Apache + worker pool(s). Use as a context manager or start()/stop().

    Options:
      listing        False: Define MEDIMG_NO_LISTING
      cors_origins   None (no CORS), "*" (MEDIMG_CORS_ANY) or a list of
                     origins, turned into the allow-list regular expression
      variant        "proxy" (mod_proxy_fcgi to a spawn-fcgi pool) or
                     "fcgid" (mod_fcgid spawns one-thread workers)
      pools          > 1: that many pools behind mod_proxy_balancer
      threads        worker threads per process (proxy variant)
      extra_conf     text appended after the medimg snippet
      extra_conf_first  text read before the medimg snippets (as a site's
                     conf-enabled file that sorts first)
      extra_modules  more module names to load (e.g. "ssl", "auth_basic")
      listen         extra "Listen" lines (e.g. for a TLS port)
      cache          False: no result cache, no mod_xsendfile (the worker
                     streams results itself)
      worker_data_root  the workers' [paths] data_root when it is not the
                     folder Apache serves (a misconfigured deployment)
      pool_retries   multiwatch -r: deaths within 10 s after which it stops
                     restarting a child (multiwatch's default: 3)
    """

    kind = "apache"

    def __init__(self, build_dir, source_dir, data_root, *, port=None,
                 listing=True, cors_origins=None, variant="proxy", pools=1,
                 threads=4, extra_conf="", extra_modules=(), listen=(),
                 cache=True, worker=None, www_root=None, apache_dir=None,
                 conf_dir=None, processes=0, share_dir=None, worker_data_root=None,
                 pool_retries=None, extra_conf_first=""):
        self.build_dir = Path(build_dir)
        self.source_dir = Path(source_dir)
        self.data_root = Path(data_root)
        self.port = port or free_port()
        self.listing = listing
        self.cors_origins = cors_origins
        self.variant = variant
        self.pools = pools
        self.threads = threads
        self.extra_conf = extra_conf
        self.extra_conf_first = extra_conf_first
        self.extra_modules = list(extra_modules)
        self.listen = list(listen)
        self.cache = cache
        # > 0: each pool is `spawn-fcgi -- multiwatch -f N -- medimg-fcgi`
        # (DEPLOYMENT.md, "Without systemd").
        self.processes = processes
        self.pool_retries = pool_retries
        # Defaults: the build and source trees; an installed tree can be
        # given instead (tests/packaging).
        self.worker = Path(worker) if worker else self.build_dir / "fcgi" / "medimg-fcgi"
        self.www_root = Path(www_root) if www_root else self.source_dir / "www"
        self.apache_dir = Path(apache_dir) if apache_dir else self.source_dir / "apache"
        self.conf_dir = Path(conf_dir) if conf_dir else self.source_dir / "conf"
        # Holds apache/cors-headers.conf (MEDIMG_SHARE_DIR).
        self.share_dir = Path(share_dir) if share_dir else self.source_dir
        # What Apache and the worker are pointed at (a mirror when needed).
        self.served_data_root = self.data_root
        self.served_www_root = self.www_root
        self.worker_data_root = Path(worker_data_root) if worker_data_root else None
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workdir = None
        self.httpd = None
        self.workers = []
        self.sockets = []
        self.as_root = os.geteuid() == 0
        if self.as_root:
            self.user, self.group = "www-data", "www-data"
        else:
            self.user = pwd.getpwuid(os.geteuid()).pw_name
            self.group = grp.getgrgid(os.getegid()).gr_name

    # ------------------------------------------------------------------
    @property
    def worker_binary(self):
        return self.worker

    @property
    def error_log(self):
        return self.workdir / "logs" / "error.log"

    def _cors_regex(self):
        if not self.cors_origins or self.cors_origins == "*":
            return None
        import re
        return "^(" + "|".join(re.escape(o) for o in self.cors_origins) + ")$"

    def _write_ini(self):
        conf = self.conf_dir
        lines = [
            "[paths]",
            f"data_root = {self.worker_data_root or self.served_data_root}",
            f"cache_dir = {self.cache_dir}",
            f"label_dict = {conf / 'vista3d_label_dict.json'}",
            f"label_colors = {conf / 'vista3d_label_colors.json'}",
            f"www_root = {self.served_www_root}",
            "[server]",
            # Ignored by the worker (the web server owns CORS); set to a
            # list so a worker that sent CORS headers would be noticed.
            "cors_origins = http://worker.example",
            f"dir_listing = {'true' if self.listing else 'false'}",
            f"threads = {1 if self.variant == 'fcgid' else self.threads}",
            "[cache]",
            f"enabled = {'true' if self.cache else 'false'}",
            f"sendfile_header = {'X-Sendfile' if self.cache else 'none'}",
        ]
        if self.as_root:
            # Apache (www-data) sends the entries root's workers wrote: its
            # group reads them (docs/DEPLOYMENT.md, "Results cache").
            lines.append(f"group = {self.group}")
        self.ini = self.workdir / "medimg.ini"
        self.ini.write_text("\n".join(lines) + "\n")
        self.ini.chmod(0o644)

    def _module_lines(self):
        mods = list(BASE_MODULES)
        if not self.cache:
            mods.remove("xsendfile")
        if self.variant == "fcgid":
            mods.append("fcgid")
        else:
            mods += PROXY_MODULES
            if self.pools > 1:
                mods += BALANCER_MODULES
        for m in self.extra_modules:
            if m not in mods:
                mods.append(m)
        return [f"LoadModule {m}_module {MODULE_DIR}/mod_{m}.so" for m in mods]

    def _write_conf(self):
        w = self.workdir
        lines = [
            "# Generated by tests/integration/apache_server.py",
            f"ServerRoot {_apache_string(w)}",
            "ServerName 127.0.0.1",
            f"DefaultRuntimeDir {_apache_string(w / 'run')}",
            f"PidFile {_apache_string(w / 'run' / 'httpd.pid')}",
            f"Listen 127.0.0.1:{self.port}",
            *[f"Listen {l}" for l in self.listen],
            *self._module_lines(),
        ]
        if self.as_root:
            lines += [f"User {self.user}", f"Group {self.group}"]
        lines += [
            f"ErrorLog {_apache_string(self.error_log)}",
            "LogLevel warn",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %O" common',
            f"CustomLog {_apache_string(w / 'logs' / 'access.log')} common",
            "TypesConfig /etc/mime.types",
            "Timeout 60",
            "KeepAlive On",
            "StartServers 1",
            "ServerLimit 2",
            "ThreadsPerChild 16",
            "MinSpareThreads 4",
            "MaxSpareThreads 32",
            "MaxRequestWorkers 32",
            "TraceEnable off",
            # An empty document root: URLs outside medimg's get 404.
            f"DocumentRoot {_apache_string(w / 'htdocs')}",
            f"<Directory {_apache_string(w / 'htdocs')}>",
            "    Require all granted",
            "</Directory>",
            "<Directory />",
            "    Options None",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            f"Define MEDIMG_DATA_ROOT {_apache_string(self.served_data_root)}",
            f"Define MEDIMG_WWW_ROOT {_apache_string(self.served_www_root)}",
            f"Define MEDIMG_CACHE_DIR {_apache_string(self.cache_dir)}",
            f"Define MEDIMG_SHARE_DIR {_apache_string(self.share_dir)}",
            f"Define MEDIMG_SOCKET {_apache_string(self.sockets[0] if self.sockets else w / 'fcgi.sock')}",
            "Define MEDIMG_TIMEOUT 120",
        ]
        if not self.cache:
            lines.append("Define MEDIMG_NO_XSENDFILE")
        if not self.listing:
            lines.append("Define MEDIMG_NO_LISTING")
        if self.cors_origins == "*":
            lines.append("Define MEDIMG_CORS_ANY")
        elif self._cors_regex():
            lines.append(f"Define MEDIMG_CORS_ORIGINS {_apache_string(self._cors_regex())}")
        if self.pools > 1:
            lines.append("Define MEDIMG_BALANCER")
            lines.append('<Proxy "balancer://medimg">')
            # Each member needs its own host name: members that differ only
            # in the unix socket path are merged into one worker.
            for i, s in enumerate(self.sockets):
                lines.append(f'    BalancerMember "unix:{s}|fcgi://medimg-{i}/" retry=1')
            lines.append("</Proxy>")
        if self.extra_conf_first:
            lines.append(self.extra_conf_first)
        if self.variant == "fcgid":
            lines += [
                f"Define MEDIMG_FCGI_BIN {_apache_string(self.worker_binary)}",
                f"Define MEDIMG_CONFIG {_apache_string(self.ini)}",
                f"Define MEDIMG_FCGID_IPC_DIR {_apache_string(w / 'fcgid')}",
                "Define MEDIMG_FCGID_MAX_PROCESSES 4",
                f"Include {_apache_string(self.apache_dir / 'medimg-fcgid.conf')}",
            ]
        lines.append(f"Include {_apache_string(self.apache_dir / 'medimg.conf')}")
        if self.extra_conf:
            lines.append(self.extra_conf)
        self.conf = w / "httpd.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------
    def _start_pool(self, sock):
        cmd = [SPAWN_FCGI, "-n", "-s", str(sock), "-M", "0600"]
        if self.as_root:
            cmd += ["-U", self.user, "-G", self.group]
        cmd.append("--")
        if self.processes:
            cmd += [MULTIWATCH, "-f", str(self.processes)]
            if self.pool_retries:
                cmd += ["-r", str(self.pool_retries)]
            cmd.append("--")
        cmd += [str(self.worker_binary), "--config", str(self.ini),
                "--threads", str(self.threads)]
        log = open(self.workdir / "logs" / f"worker-{len(self.workers)}.log", "ab")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, cwd=self.workdir,
                                start_new_session=True)
        log.close()
        self.workers.append(proc)
        return proc

    def start(self, timeout=20):
        if not self.worker_binary.exists():
            raise RuntimeError(f"{self.worker_binary} is not built")
        self.workdir = Path(tempfile.mkdtemp(prefix="medimg-apache-"))
        os.chmod(self.workdir, 0o755)
        for d in ("run", "logs", "htdocs"):
            (self.workdir / d).mkdir()
        self.cache_dir = self.workdir / "cache"
        self.cache_dir.mkdir(mode=0o755)
        if self.variant == "fcgid":
            (self.workdir / "fcgid").mkdir()
            if self.as_root:
                # mod_fcgid runs the workers as Apache's user: they write the
                # cache and mod_fcgid's sockets.
                uid = pwd.getpwnam(self.user).pw_uid
                gid = grp.getgrnam(self.group).gr_gid
                for d in ("cache", "fcgid"):
                    os.chown(self.workdir / d, uid, gid)
        if self.as_root:
            if not _reachable(self.data_root):
                self.served_data_root = self.workdir / "data"
                _mirror(self.data_root, self.served_data_root)
            if not _reachable(self.www_root):
                self.served_www_root = self.workdir / "www"
                _mirror(self.www_root, self.served_www_root)
        self._write_ini()
        if self.variant != "fcgid":
            self.sockets = [self.workdir / (f"fcgi-{i}.sock" if self.pools > 1 else "fcgi.sock")
                            for i in range(self.pools)]
        self._write_conf()
        try:
            if self.variant != "fcgid":
                for s in self.sockets:
                    self._start_pool(s)
            self.httpd = subprocess.Popen(
                [APACHE, "-DFOREGROUND", "-f", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(self.workdir / "logs" / "stderr.log", "ab"),
                cwd=self.workdir, start_new_session=True)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout=20):
        wait_healthy(self.httpd, self.base_url, "apache2", self.logs, timeout)

    def logs(self):
        out = []
        for f in sorted((self.workdir / "logs").glob("*")):
            try:
                out.append(f"--- {f.name}\n" + f.read_text(errors="replace")[-4000:])
            except OSError:
                pass
        return "\n".join(out)

    def cache_dirs(self):
        return [self.cache_dir] if self.workdir else []

    def worker_pids(self):
        """Live medimg-fcgi processes of all pools."""
        out = []
        for proc in self.workers:
            if proc.poll() is None:
                out += [pid for pid in [proc.pid, *descendants_of(proc.pid)]
                        if process_name(pid) == "medimg-fcgi"]
        return out

    def kill_pool(self, index):
        """Stops one worker pool (balancer tests)."""
        proc = self.workers[index]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self):
        if self.httpd:
            terminate(self.httpd, 15)
        for proc in self.workers:
            terminate(proc, 10)
        if self.workdir and not os.environ.get("MEDIMG_KEEP_TMP"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
