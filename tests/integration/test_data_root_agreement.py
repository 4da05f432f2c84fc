"""The web server and the workers name one data root (docs/DEPLOYMENT.md,
"Changing the data root"). Each request carries the web server's data root
(MEDIMG_DATA_ROOT, set by apache/medimg.conf and lighttpd/medimg-routes.conf);
a worker whose own root is another folder must answer 500 instead of
filtering or describing the other tree's file under this tree's URL, must
not name either folder to the client, and must say why in its log. A link to
the same folder is the same root (the web server names the link, the worker
the folder, so only the device/inode comparison can tell them alike). No
client header can stand in for the parameter.

Real Apache (mod_proxy_fcgi to a spawn-fcgi pool) and real lighttpd (the
drop-in snippet, workers started by bin-path), real workers; the second tree
is another `medimg demo` patient with the same id and other voxels."""

import json
import os
import shutil
import subprocess

import pytest

from apache_server import ApacheServer, apache_available, server_readable_dir
from conftest import BUILD, MEDIMG, PATIENT, SCAN, SOURCE, WORKER, free_port, request
from test_lighttpd_snippet import LIGHTTPD, install_snippet, start_lighttpd, stop_lighttpd

FILTERED = f"/filtered-scans/{PATIENT}/{SCAN}.nii.gz?label_ids=1,6"
LABELS = f"/output/{PATIENT}/scans/{SCAN}.nii.gz/labels"
INFO = f"/output/{PATIENT}/scans/{SCAN}.nii.gz/info"
MISMATCH = "cannot be seen by this worker as, its data root"


def demo_tree(parent, name, seed):
    root = parent / name
    subprocess.run([str(MEDIMG), "demo", str(root), "--size", "48x40x24", "--seed", str(seed),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL, timeout=120)
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    return root


@pytest.fixture(scope="module")
def trees():
    if not (MEDIMG.exists() and WORKER.exists()):
        pytest.skip("medimg and medimg-fcgi must be built")
    base = server_readable_dir("medimg-two-roots-")
    served = demo_tree(base, "served", 3)
    other = demo_tree(base, "other", 4)
    assert (served / PATIENT / "scans" / f"{SCAN}.nii.gz").read_bytes() != \
        (other / PATIENT / "scans" / f"{SCAN}.nii.gz").read_bytes()
    (base / "link-to-served").symlink_to(served, target_is_directory=True)
    yield {"base": base, "served": served, "other": other, "link": base / "link-to-served"}
    shutil.rmtree(base, ignore_errors=True)


# A client's try at naming the data root itself: headers arrive as HTTP_*.
SPOOFS = ({"MEDIMG-DATA-ROOT": "/"}, {"MEDIMG_DATA_ROOT": "/"}, {"Data-Root": "/"})


def assert_refused(base_url, roots, spoof_with=None):
    for path, headers in [(p, None) for p in (FILTERED, LABELS, INFO)] + \
            [(FILTERED, {k: str(spoof_with) for k in h}) for h in SPOOFS if spoof_with]:
        a = request(base_url, path, headers=headers)
        assert a.status == 500, (path, a.status, a.body[:200])
        assert a.header("Content-Type") == "application/json"
        body = json.loads(a.body)
        assert body["error"] == "internal_error"
        for root in roots:
            assert str(root).encode() not in a.body, "a server path reached the client"
    # The web server's own static files are not the worker's business.
    assert request(base_url, f"/output/{PATIENT}/scans/{SCAN}.nii.gz").status == 200
    assert request(base_url, "/health").status == 200


def assert_answered(base_url, served):
    f = request(base_url, FILTERED)
    assert f.status == 200, f.body[:200]
    for headers in SPOOFS:
        spoofed = request(base_url, FILTERED + ",10", headers=headers)
        assert spoofed.status == 200, (headers, spoofed.status)
    labels = request(base_url, LABELS)
    assert labels.status == 200
    import nibabel as nib
    import numpy as np
    want = np.asanyarray(nib.load(str(served / PATIENT / "scans" / f"{SCAN}.nii.gz")).dataobj)
    present = sorted(int(v) for v in np.unique(want) if v != 0)
    got = sorted(int(x["id"]) for x in json.loads(labels.body)["labels"] if int(x["id"]) != 0)
    assert got == present


@pytest.mark.skipif(not apache_available(), reason="Apache with mod_proxy_fcgi needed")
def test_apache_worker_with_another_root_refuses(trees):
    with ApacheServer(BUILD, SOURCE, trees["served"], worker_data_root=trees["other"]) as server:
        assert_refused(server.base_url, (trees["served"], trees["other"]), spoof_with=trees["other"])
        logs = server.logs()
        assert MISMATCH in logs and str(trees["other"]) in logs, logs[-2000:]


@pytest.mark.skipif(not apache_available(), reason="Apache with mod_proxy_fcgi needed")
def test_apache_worker_with_a_link_to_the_same_root_answers(trees):
    with ApacheServer(BUILD, SOURCE, trees["link"], worker_data_root=trees["served"]) as server:
        assert_answered(server.base_url, trees["served"])
        assert MISMATCH not in server.logs()


def lighttpd_with_worker_root(tmp, served, worker_root):
    port = free_port()
    conf = install_snippet(tmp, served, port)
    snippet = tmp / "conf-enabled" / "50-medimg.conf"
    text = snippet.read_text()
    # The workers lighttpd starts get their root from bin-environment: point
    # it elsewhere, as an operator who changed one of the two settings would.
    old = '"MEDIMG_DATA_ROOT"       => var.medimg_data_root,'
    assert old in text
    snippet.write_text(text.replace(old, f'"MEDIMG_DATA_ROOT"       => "{worker_root}",'))
    return start_lighttpd(conf, port, log=tmp / "error.log"), f"http://127.0.0.1:{port}"


@pytest.mark.skipif(not os.path.exists(LIGHTTPD), reason="lighttpd needed")
def test_lighttpd_worker_with_another_root_refuses(trees, tmp_path):
    proc, base_url = lighttpd_with_worker_root(tmp_path, trees["served"], trees["other"])
    try:
        assert_refused(base_url, (trees["served"], trees["other"]), spoof_with=trees["other"])
    finally:
        stop_lighttpd(proc)
    log = (tmp_path / "breakage.log").read_text(errors="replace")
    assert MISMATCH in log and str(trees["served"]) in log, log[-2000:]


@pytest.mark.skipif(not os.path.exists(LIGHTTPD), reason="lighttpd needed")
def test_lighttpd_worker_with_a_link_to_the_same_root_answers(trees, tmp_path):
    proc, base_url = lighttpd_with_worker_root(tmp_path, trees["link"], trees["served"])
    try:
        assert_answered(base_url, trees["served"])
    finally:
        stop_lighttpd(proc)


@pytest.mark.skipif(not os.path.exists(LIGHTTPD), reason="lighttpd needed")
def test_lighttpd_without_the_parameter_answers_and_says_so_once(trees, tmp_path):
    """A web server configured by hand that passes no MEDIMG_DATA_ROOT: the
    worker answers from its own root and logs, once, that it could not
    check (docs/DEPLOYMENT.md, "Changing the data root")."""
    port = free_port()
    conf = install_snippet(tmp_path, trees["served"], port)
    routes = tmp_path / "medimg-routes.conf"
    text = (SOURCE / "lighttpd" / "medimg-routes.conf").read_text()
    line = '  "MEDIMG_DATA_ROOT" => var.medimg_data_root,\n'
    assert line in text
    routes.write_text(text.replace(line, ""))
    snippet = tmp_path / "conf-enabled" / "50-medimg.conf"
    snippet.write_text(snippet.read_text().replace(
        'var.medimg_lighttpd_dir + "/medimg-routes.conf"', f'"{routes}"'))
    assert str(routes) in snippet.read_text(), "the snippet no longer includes medimg-routes.conf"
    proc = start_lighttpd(conf, port, log=tmp_path / "error.log")
    try:
        base_url = f"http://127.0.0.1:{port}"
        assert_answered(base_url, trees["served"])
        assert request(base_url, INFO).status == 200
    finally:
        stop_lighttpd(proc)
    log = (tmp_path / "breakage.log").read_text(errors="replace")
    # Once per worker process (lighttpd starts two), not once per request.
    assert 1 <= log.count("passes no MEDIMG_DATA_ROOT") <= 2, log[-2000:]
