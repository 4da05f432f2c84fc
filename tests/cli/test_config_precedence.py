"""One configuration for every front end (conf/medimg.ini): the precedence flag >
environment > .env > ini > default, observed on `medimg filter` and on a
real medimg-fcgi worker from the same table. The key is [limits]
max_label_ids: N ids are accepted and N + 1 refused (CLI exit 2, worker 413)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BUILD_DIR, SOURCE_DIR, label_volume, load, run, write_nifti

sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))
from server_process import fcgi_request, free_port, terminate, wait_listening  # noqa: E402


WORKER = BUILD_DIR / "fcgi" / "medimg-fcgi"

# (ini, .env, environment, flag) -> the value that wins; None: layer absent.
TABLE = [
    ((None, None, None, None), 100000),
    ((10, None, None, None), 10),
    ((10, 20, None, None), 20),
    ((None, 20, None, None), 20),
    ((10, 20, 30, None), 30),
    ((10, None, 30, None), 30),
    ((10, 20, 30, 40), 40),
    ((None, None, None, 40), 40),
]


def layered(tmp_path, layers):
    """The working directory, environment and extra arguments of one row."""
    ini, dotenv, env_value, flag = layers
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MEDIMG_") and k not in ("OUTPUT_FOLDER", "IMAGE_SERVER")}
    args = []
    if ini is not None:
        (tmp_path / "medimg.ini").write_text(f"[limits]\nmax_label_ids = {ini}\n")
        env["MEDIMG_CONFIG"] = str(tmp_path / "medimg.ini")
    if dotenv is not None:
        (work / ".env").write_text(f"MEDIMG_MAX_LABEL_IDS={dotenv}\n")
    if env_value is not None:
        env["MEDIMG_MAX_LABEL_IDS"] = str(env_value)
    if flag is not None:
        args = ["--max-label-ids", str(flag)]
    return work, env, args


@pytest.fixture
def segmentation(tmp_path):
    root = tmp_path / "root"
    (root / "PA1" / "scans").mkdir(parents=True)
    d = label_volume(shape=(12, 10, 6))
    write_nifti(root / "PA1" / "scans" / "seg.nii.gz", d)
    return root, d


@pytest.mark.parametrize("layers,winner", TABLE)
def test_cli(tmp_path, segmentation, layers, winner):
    root, d = segmentation
    work, env, args = layered(tmp_path, layers)
    src = root / "PA1" / "scans" / "seg.nii.gz"
    out = work / "o.nii.gz"
    p = run("filter", src, out, "--labels", f"1-{winner}", *args, cwd=work, env=env)
    assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(load(out)[1], np.where((d >= 1) & (d <= winner), d, 0))
    out.unlink()
    p = run("filter", src, out, "--labels", f"1-{winner + 1}", *args, cwd=work, env=env)
    assert p.returncode == 2 and f"limit of {winner}" in p.stderr, p.stderr
    assert not out.exists()


@pytest.mark.parametrize("layers,winner", [row for row in TABLE if row[0][3] is None])
def test_worker(tmp_path, segmentation, layers, winner):
    """The same rows without a flag (medimg-fcgi takes only --threads, --config
    and --listen on its command line)."""
    if not WORKER.exists():
        pytest.skip(f"{WORKER} is not built")
    root, _ = segmentation
    work, env, _ = layered(tmp_path, layers)
    env.update(MEDIMG_DATA_ROOT=str(root), MEDIMG_CACHE_ENABLED="false",
               MEDIMG_SENDFILE_HEADER="none")
    port = free_port()
    proc = subprocess.Popen([str(WORKER), "--listen", f"127.0.0.1:{port}", "--threads", "1"],
                            cwd=work, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        wait_listening(proc, port)

        def status(n):
            return fcgi_request(("127.0.0.1", port), {
                "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
                "REQUEST_URI": f"/filtered-scans/PA1/seg.nii.gz?label_ids=1-{n}",
                "QUERY_STRING": f"label_ids=1-{n}"})[0]
        assert status(winner) == 200
        assert status(winner + 1) == 413
    finally:
        terminate(proc, 10)


def test_bad_value_names_key_and_source(tmp_path, segmentation):
    root, _ = segmentation
    work, env, _ = layered(tmp_path, (None, None, None, None))
    env["MEDIMG_GZIP_LEVEL"] = "12"
    p = run("info", root / "PA1" / "scans" / "seg.nii.gz", cwd=work, env=env)
    assert p.returncode == 2 and "gzip_level" in p.stderr and "12" in p.stderr, p.stderr


def test_config_flag_and_gzip_level(tmp_path, segmentation):
    """--config names the ini; [filter] gzip_level reaches the CLI's output
    (gzip XFL byte 2 = best compression) unless --level."""
    root, d = segmentation
    work, env, _ = layered(tmp_path, (None, None, None, None))
    ini = tmp_path / "other.ini"
    ini.write_text("[filter]\ngzip_level = 9\n")
    src = root / "PA1" / "scans" / "seg.nii.gz"
    run("filter", src, work / "a.nii.gz", "--labels", "1", "--config", ini, cwd=work, env=env,
        check=0)
    run("filter", src, work / "b.nii.gz", "--labels", "1", cwd=work, env=env, check=0)
    run("filter", src, work / "c.nii.gz", "--labels", "1", "--config", ini, "--level", "1",
        cwd=work, env=env, check=0)
    xfl = {n: (work / n).read_bytes()[8] for n in ("a.nii.gz", "b.nii.gz", "c.nii.gz")}
    # level 9: XFL 2; level 1 (default, and --level over the ini): not 2
    assert xfl["a.nii.gz"] == 2 and xfl["b.nii.gz"] != 2 and xfl["c.nii.gz"] != 2, xfl
    for n in xfl:
        np.testing.assert_array_equal(load(work / n)[1], np.where(d == 1, 1, 0).astype(d.dtype))
    p = run("labels", src, "--config", tmp_path / "none.ini", cwd=work, env=env)
    assert p.returncode == 1 and "none.ini" in p.stderr
