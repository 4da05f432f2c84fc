"""The Debian package: `cpack -G DEB` builds it, it holds what DEPLOYMENT.md
promises, its /etc files are conffiles, Depends is computed, and the
installed Apache snippet is accepted by apache2 -t against the extracted
tree."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("MEDIMG_BUILD_DIR", "build"))
SOURCE = Path(os.environ.get("MEDIMG_SOURCE_DIR", Path(__file__).resolve().parents[2]))

pytestmark = pytest.mark.skipif(
    not (shutil.which("cpack") and shutil.which("dpkg-deb")),
    reason="cpack and dpkg-deb are needed")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    config = BUILD / "CPackConfig.cmake"
    assert config.exists(), f"{config} missing: configure the build first"
    for binary in ("cli/medimg", "fcgi/medimg-fcgi"):
        assert (BUILD / binary).exists(), f"{binary} is not built"
    out = tmp_path_factory.mktemp("deb")
    # Builds the install tree and the package in a scratch directory, so the
    # build directory is left as it was.
    proc = subprocess.run(["cpack", "-G", "DEB", "--config", str(config), "-B", str(out)],
                          cwd=BUILD, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    debs = list(out.glob("medimg_*.deb"))
    assert len(debs) == 1, proc.stdout
    root = out / "root"
    run(["dpkg-deb", "-x", str(debs[0]), str(root)])
    control = out / "control"
    run(["dpkg-deb", "-e", str(debs[0]), str(control)])
    return {"path": debs[0], "root": root, "control": control}


def field(deb, name):
    return run(["dpkg-deb", "-f", str(deb["path"]), name]).stdout.strip()


def listing(deb):
    lines = run(["dpkg-deb", "-c", str(deb["path"])]).stdout.splitlines()
    # "-rw-r--r-- root/root 1234 2026-01-01 00:00 ./etc/medimg/medimg.ini"
    return {line.split(None, 5)[5].split(" -> ")[0].lstrip(".") : line.split()[0]
            for line in lines}


EXPECTED = [
    "/usr/bin/medimg",
    "/usr/bin/medimg-fcgi",
    "/usr/sbin/medimg-fcgi-pool",
    "/etc/medimg/medimg.ini",
    "/etc/medimg/vista3d_label_dict.json",
    "/etc/medimg/vista3d_label_colors.json",
    "/etc/apache2/conf-available/medimg.conf",
    "/etc/apache2/conf-available/medimg-fcgid.conf",
    "/lib/systemd/system/medimg-fcgi.socket",
    "/lib/systemd/system/medimg-fcgi.service",
    "/lib/systemd/system/medimg-fcgi-spawn.service",
    "/usr/share/man/man1/medimg.1.gz",
    "/usr/share/man/man8/medimg-fcgi.8.gz",
    "/usr/share/medimg/www/viewer.html",
    "/usr/share/medimg/www/assets/listing.css",
    "/usr/share/medimg/www/assets/listing.js",
    "/usr/share/medimg/www/node_modules/@niivue/niivue/dist/index.js",
    "/usr/share/medimg/lighttpd/medimg-routes.conf",
    "/usr/share/medimg/lighttpd/cors.lua",
    "/usr/share/medimg/apache/cors-headers.conf",
    "/usr/share/doc/medimg/copyright",
]


def test_package_metadata(deb):
    assert field(deb, "Package") == "medimg"
    assert field(deb, "Maintainer")
    depends = field(deb, "Depends")
    # Computed by dpkg-shlibdeps from the binaries.
    for lib in ("libc6", "libstdc++6", "libfcgi", "zlib1g"):
        assert lib in depends, depends
    assert "adduser" in depends
    recommends = field(deb, "Recommends")
    assert "lighttpd | apache2" in recommends and "libapache2-mod-xsendfile" in recommends


@pytest.mark.parametrize("path", EXPECTED)
def test_package_contains(deb, path):
    files = listing(deb)
    assert path in files, f"{path} not in the package"


def test_binaries_are_executable_and_run(deb):
    files = listing(deb)
    for b in ("/usr/bin/medimg", "/usr/bin/medimg-fcgi", "/usr/sbin/medimg-fcgi-pool"):
        assert files[b].startswith("-rwxr-xr-x"), files[b]
    proc = subprocess.run([str(deb["root"] / "usr/bin/medimg"), "--help"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_no_build_or_test_files(deb):
    files = listing(deb)
    # The browser's modules only: NiiVue (viewer) and Swagger UI (api.html).
    kept = ("/usr/share/medimg/www/node_modules/@niivue/niivue/",
            "/usr/share/medimg/www/node_modules/swagger-ui-dist/")
    for f in files:
        assert "/node_modules/" not in f or any(f.startswith(k) or k.startswith(f) for k in kept), f
        assert not f.endswith((".test.mjs", "package-lock.json")), f
        assert "/." not in f.rstrip("/").replace("/./", "/"), f


def test_api_page_and_description_are_packaged(deb):
    files = listing(deb)
    www = "/usr/share/medimg/www/"
    for name in ("api.html", "openapi.json", "assets/api.js",
                 "node_modules/swagger-ui-dist/swagger-ui-bundle.js",
                 "node_modules/swagger-ui-dist/swagger-ui.css",
                 "node_modules/swagger-ui-dist/LICENSE"):
        assert www + name in files, name
    assert not any(f.startswith(www + "node_modules/swagger-ui-dist/") and f.endswith(".map")
                   for f in files)


def test_every_etc_file_is_a_conffile(deb):
    conffiles = set((deb["control"] / "conffiles").read_text().split())
    etc = {f for f, mode in listing(deb).items() if f.startswith("/etc/") and mode.startswith("-")}
    assert etc, "no files under /etc"
    assert conffiles == etc


def test_maintainer_scripts(deb):
    for script in ("postinst", "prerm", "postrm"):
        path = deb["control"] / script
        assert path.exists(), script
        assert os.access(path, os.X_OK), script
        run(["sh", "-n", str(path)])
    postinst = (deb["control"] / "postinst").read_text()
    assert "adduser --system" in postinst
    assert "/var/cache/medimg" in postinst and "/srv/medimg/output" in postinst


def test_installed_ini_has_system_paths(deb):
    ini = (deb["root"] / "etc/medimg/medimg.ini").read_text()
    assert "\ndata_root = /srv/medimg/output\n" in ini
    assert "\ncache_dir = /var/cache/medimg\n" in ini
    assert "\nsendfile_header = X-Sendfile\n" in ini


def test_man_pages_render(deb):
    if not shutil.which("man"):
        pytest.skip("man is not installed")
    for page in ("usr/share/man/man1/medimg.1.gz", "usr/share/man/man8/medimg-fcgi.8.gz"):
        proc = subprocess.run(["man", "--warnings", "-l", str(deb["root"] / page)],
                              capture_output=True, text=True, timeout=30,
                              env={**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8"})
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip() == "", proc.stderr
        assert "medimg" in proc.stdout


def test_units_verify(deb):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    units = sorted((deb["root"] / "lib/systemd/system").glob("medimg-fcgi*"))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)],
                          capture_output=True, text=True, timeout=60)
    # The binary is only in the scratch root, not at /usr/bin.
    problems = [l for l in (proc.stdout + proc.stderr).splitlines()
                if l.strip() and "/usr/bin/medimg-fcgi" not in l]
    assert problems == []


def test_apache_accepts_installed_snippets(deb, tmp_path):
    if not Path("/usr/sbin/apache2").exists():
        pytest.skip("apache2 is not installed")
    root = deb["root"]
    mods = Path("/usr/lib/apache2/modules")
    modules = ["mpm_event", "authz_core", "alias", "dir", "autoindex", "mime", "setenvif", "env",
               "headers", "proxy", "proxy_fcgi", "xsendfile", "fcgid"]
    for variant in ("proxy", "fcgid"):
        (tmp_path / "run").mkdir(exist_ok=True)
        lines = [f'ServerRoot "{tmp_path}"', "ServerName 127.0.0.1",
                 f'DefaultRuntimeDir "{tmp_path}/run"', f'PidFile "{tmp_path}/run/httpd.pid"',
                 "Listen 127.0.0.1:65500", f'ErrorLog "{tmp_path}/error.log"']
        lines += [f"LoadModule {m}_module {mods}/mod_{m}.so" for m in modules]
        lines += [f'Define MEDIMG_DATA_ROOT "{tmp_path}/output"',
                  f'Define MEDIMG_WWW_ROOT "{root}/usr/share/medimg/www"',
                  f'Define MEDIMG_CACHE_DIR "{tmp_path}/cache"',
                  f'Define MEDIMG_SHARE_DIR "{root}/usr/share/medimg"',
                  f'Define MEDIMG_FCGI_BIN "{root}/usr/bin/medimg-fcgi"',
                  f'Define MEDIMG_CONFIG "{root}/etc/medimg/medimg.ini"']
        if variant == "fcgid":
            lines.append(f'Include "{root}/etc/apache2/conf-available/medimg-fcgid.conf"')
        lines.append(f'Include "{root}/etc/apache2/conf-available/medimg.conf"')
        conf = tmp_path / f"{variant}.conf"
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.run(["/usr/sbin/apache2", "-t", "-f", str(conf)],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0 and "Syntax OK" in proc.stderr, proc.stderr


def test_installed_tree_serves(deb, tmp_path):
    """Apache with the packaged snippet, www, label tables and worker."""
    import json
    import sys
    import urllib.request
    sys.path.insert(0, str(SOURCE / "tests" / "integration"))
    from apache_server import ApacheServer, apache_available
    if not apache_available():
        pytest.skip("apache2 with mod_proxy_fcgi needed")
    root = deb["root"]
    data = tmp_path / "output"
    subprocess.run([str(root / "usr/bin/medimg"), "demo", str(data), "--size", "32x32x20",
                    "--quiet"], check=True, timeout=120, capture_output=True)
    patient = next(p.name for p in data.iterdir())
    seg = next((data / patient / "scans").glob("*.nii.gz")).name
    with ApacheServer(BUILD, SOURCE, data,
                      worker=root / "usr/bin/medimg-fcgi",
                      www_root=root / "usr/share/medimg/www",
                      apache_dir=root / "etc/apache2/conf-available",
                      share_dir=root / "usr/share/medimg",
                      conf_dir=root / "etc/medimg") as server:
        def get(path):
            with urllib.request.urlopen(server.base_url + path, timeout=30) as r:
                return r.status, r.headers, r.read()
        status, _, body = get("/health")
        assert status == 200 and json.loads(body)["status"] == "healthy"
        for page in ("/", "/viewer.html", "/assets/listing.js",
                     "/node_modules/@niivue/niivue/dist/index.js"):
            assert get(page)[0] == 200, page
        status, _, body = get(f"/output/{patient}/scans/{seg}/labels")
        labels = json.loads(body)["labels"]
        # Names come from the packaged VISTA3D table.
        assert labels and any(l["name"] != str(l["id"]) for l in labels)
        status, headers, body = get(f"/filtered-scans/{patient}/{seg}?label_ids={labels[0]['id']}")
        assert status == 200 and headers["Content-Type"] == "application/gzip"
        assert body[:2] == b"\x1f\x8b"


def test_debian_apache_layout(deb):
    """A copy of this host's /etc/apache2 (Debian's layout, 000-default vhost,
    its enabled modules), set up as DEPLOYMENT.md says: a2enmod, a2enconf
    medimg plus a local file of Defines, the worker pool on its socket."""
    import json
    import signal
    import sys
    import time
    import urllib.error
    import urllib.request
    sys.path.insert(0, str(SOURCE / "tests" / "integration"))
    from apache_server import apache_available, free_port, server_readable_dir
    if not (apache_available() and Path("/etc/apache2/apache2.conf").exists()
            and shutil.which("a2enmod") and shutil.which("spawn-fcgi")
            and shutil.which("multiwatch")):
        pytest.skip("Debian's apache2 layout, a2enmod, spawn-fcgi and multiwatch needed")
    base = server_readable_dir()
    procs = []
    stop_pool = None
    try:
        # Extracted again where www-data may enter (pytest's tmp is 0700).
        root = base / "root"
        run(["dpkg-deb", "-x", str(deb["path"]), str(root)])
        etc = base / "apache2"
        shutil.copytree("/etc/apache2", etc, symlinks=True)
        for c in ("medimg.conf", "medimg-fcgid.conf"):
            shutil.copy(root / "etc/apache2/conf-available" / c, etc / "conf-available" / c)
        for d in ("run", "lock", "log", "cache"):
            (base / d).mkdir()
        data = base / "output"
        subprocess.run([str(root / "usr/bin/medimg"), "demo", str(data), "--size", "32x32x20",
                        "--quiet"], check=True, timeout=120, capture_output=True)
        port = free_port()
        envvars = (etc / "envvars").read_text()
        for var, d in (("APACHE_PID_FILE", "run/apache2.pid"), ("APACHE_RUN_DIR", "run"),
                       ("APACHE_LOCK_DIR", "lock"), ("APACHE_LOG_DIR", "log")):
            envvars += f"export {var}={base / d}\n"
        (etc / "envvars").write_text(envvars)
        (etc / "ports.conf").write_text(f"Listen 127.0.0.1:{port}\n")
        site = etc / "sites-available" / "000-default.conf"
        site.write_text(site.read_text().replace("*:80", f"*:{port}"))
        sock = base / "run" / "medimg" / "fcgi.sock"   # made by the pool at start
        (etc / "conf-available" / "medimg-local.conf").write_text(
            f'Define MEDIMG_DATA_ROOT "{data}"\n'
            f'Define MEDIMG_WWW_ROOT "{root}/usr/share/medimg/www"\n'
            f'Define MEDIMG_SOCKET "{sock}"\n'
            f'Define MEDIMG_CACHE_DIR "{base}/cache"\n'
            f'Define MEDIMG_SHARE_DIR "{root}/usr/share/medimg"\n'
            'Define MEDIMG_CORS_ORIGINS "^https://viewer\\.example$"\n')
        os.chmod(root, 0o755)
        env = {**os.environ, "APACHE_CONFDIR": str(etc)}
        run(["a2enmod", "-q", "proxy_fcgi", "headers", "xsendfile", "setenvif", "env", "alias",
             "autoindex", "mime"], env=env)
        run(["a2enconf", "-q", "medimg-local", "medimg"], env=env)
        ini = base / "medimg.ini"
        ini.write_text((root / "etc/medimg/medimg.ini").read_text()
                       .replace("/srv/medimg/output", str(data))
                       .replace("/var/cache/medimg", str(base / "cache"))
                       .replace("/usr/share/medimg/www", f"{root}/usr/share/medimg/www")
                       + f"\n[paths]\nlabel_dict = {root}/etc/medimg/vista3d_label_dict.json\n"
                       f"label_colors = {root}/etc/medimg/vista3d_label_colors.json\n")
        # The pool as DEPLOYMENT.md starts it without systemd: the packaged
        # medimg-fcgi-pool (spawn-fcgi + multiwatch, pid file, log).
        pool_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIMG_")}
        pool_env.update({"MEDIMG_SOCKET": str(sock), "MEDIMG_CONFIG": str(ini),
                         "MEDIMG_FCGI_BIN": str(root / "usr/bin/medimg-fcgi"),
                         "MEDIMG_POOL_LOG": str(base / "log" / "fcgi-pool.log"),
                         "MEDIMG_POOL_DIR": str(base)})
        if os.geteuid() == 0:
            pool_env["MEDIMG_POOL_USER"] = "www-data"
            shutil.chown(base / "cache", "www-data")
        pool = str(root / "usr/sbin/medimg-fcgi-pool")
        started = subprocess.run([pool, "start"], env=pool_env, capture_output=True,
                                 text=True, timeout=60)
        stop_pool = lambda: subprocess.run([pool, "stop"], env=pool_env, capture_output=True,
                                           timeout=60)
        assert started.returncode == 0, started.stderr
        check = subprocess.run(["sh", "-c", f'. "{etc}/envvars" && apache2 -d "{etc}" -t'],
                               capture_output=True, text=True, env=env, timeout=30)
        assert check.returncode == 0, check.stderr
        procs.append(subprocess.Popen(
            ["sh", "-c", f'. "{etc}/envvars" && exec apache2 -d "{etc}" -DFOREGROUND'],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        url = f"http://127.0.0.1:{port}"

        def req(path, method="GET", headers=None):
            r = urllib.request.Request(url + path, method=method, headers=headers or {})
            try:
                with urllib.request.urlopen(r, timeout=30) as a:
                    return a.status, a.headers, a.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read()

        deadline = time.monotonic() + 20
        while True:
            try:
                if req("/health")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (base / "log" / "error.log").read_text()
            time.sleep(0.1)
        patient = next(p.name for p in data.iterdir())
        seg = next((data / patient / "scans").glob("*.nii.gz")).name
        # Served inside Debian's 000-default virtual host.
        status, headers, body = req(f"/output/{patient}/scans/{seg}")
        assert status == 200 and headers["Content-Type"] == "application/gzip"
        assert "Content-Encoding" not in headers
        assert req(f"/output/{patient}/")[0] == 200
        assert req("/viewer.html")[0] == 200
        assert req("/output/.env")[0] in (403, 404)
        status, headers, _ = req(f"/filtered-scans/{patient}/{seg}?label_ids=1", "OPTIONS",
                                 {"Origin": "https://viewer.example",
                                  "Access-Control-Request-Method": "GET"})
        assert status == 204
        assert headers["Access-Control-Allow-Origin"] == "https://viewer.example"
        assert req(f"/output/{patient}/scans/{seg}", "DELETE")[0] == 405
        status, _, body = req(f"/output/{patient}/scans/{seg}/labels")
        assert status == 200 and json.loads(body)["labels"]
        status, headers, body = req(f"/filtered-scans/{patient}/{seg}?label_ids=1",
                                    headers={"Range": "bytes=0-1"})
        assert status == 206 and body == b"\x1f\x8b"
        # Debian's own site still answers its other URLs, its own way.
        assert req("/index.nginx-debian.html")[0] == 404
        assert req("/elsewhere/page", "OPTIONS")[0] != 204
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
        if stop_pool:
            assert stop_pool().returncode == 0
        shutil.rmtree(base, ignore_errors=True)
