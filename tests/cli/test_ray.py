"""``roiops crop --engine ray`` on a real two-node Ray cluster started here on loopback: the same
outputs (bytes), manifest, error lines and exit status as ``--engine local``, resume included.

The cluster (two nodes of one CPU each) is started once for the module, which takes about a third
of its time: the whole file took 20-29 s on this 2-core machine under a load average of 4-5.
Skipped when Ray is not installed.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from roiops.cli.main import main

# Every Ray process of this session takes 127.0.0.1 as its node address (Ray otherwise replaces
# loopback by the machine's network address), read when ray is imported: the test cluster, its
# workers and the drivers, the child process below included, stay on loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

BOXES = ("image,x1,y1,x2,y2,label\n"
         "street.png,2,3,12,11,cat\n"
         "gray.png,4,6,10,11,dog\n"
         "missing.png,0,0,4,4,cat\n"
         "street.png,100,100,120,120,cat\n"
         "logo.png,1,1,10,12,ball\n"
         "street.png,0,0,40,30,\n")
EXPECTED_ERRORS = 2  # missing.png, and the box outside street.png


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node, one CPU each, on 127.0.0.1; this process connected."""
    loopback = {"num_cpus": 1, "node_ip_address": "127.0.0.1"}
    nodes = cluster_utils.Cluster(initialize_head=True,
                                  head_node_args={**loopback, "include_dashboard": False})
    try:
        nodes.add_node(**loopback)
        nodes.wait_for_nodes()
        ray.init(address=nodes.address, log_to_driver=False, logging_level="WARNING")
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


@pytest.fixture
def boxes(dataset):
    path = dataset / "ray_boxes.csv"
    path.write_text(BOXES)
    return path


def crop(boxes, images, out, capsys, *flags):
    """``(exit status, error lines, summary)`` of one in-process run."""
    capsys.readouterr()
    status = main(["crop", str(boxes), "--images", str(images), "--out", str(out),
                   "--size", "8x6", *flags])
    printed = capsys.readouterr()
    errors = [line for line in printed.err.splitlines() if line.startswith("error:")]
    return status, errors, printed.out.splitlines()[0]


def relative_hashes(tree_hashes, out):
    return {str(Path(path).relative_to(out)): digest
            for path, digest in tree_hashes(out).items()}


def test_two_nodes_on_loopback(cluster):
    nodes = [node for node in ray.nodes() if node["Alive"]]
    assert len(nodes) == 2
    assert {node["NodeManagerAddress"] for node in nodes} == {"127.0.0.1"}
    assert ray.cluster_resources()["CPU"] == 2


@pytest.mark.parametrize("flags", [("--format", "png", "--contact-sheet", "{out}/sheet.png"),
                                   ("--format", "jpg", "--layout", "class"),
                                   ("--format", "npz")])
def test_same_outputs_errors_and_status_as_local(cluster, dataset, boxes, capsys, tree_hashes,
                                                 flags):
    results = {}
    for engine in ("local", "ray"):
        out = dataset / engine
        given = [flag.format(out=out) for flag in flags]
        status, errors, _ = crop(boxes, dataset / "images", out, capsys, *given,
                                 "--engine", engine, "--workers", "2")
        results[engine] = (status, errors, relative_hashes(tree_hashes, out))
    assert results["ray"] == results["local"]
    status, errors, hashes = results["ray"]
    assert status == 1 and len(errors) == EXPECTED_ERRORS
    assert "manifest.csv" in hashes and len(hashes) >= 2


def test_resume_redoes_only_what_is_missing(cluster, dataset, boxes, capsys, tree_hashes):
    out = dataset / "out"
    status, errors, summary = crop(boxes, dataset / "images", out, capsys, "--engine", "ray")
    assert summary.startswith("4 written, 0 skipped, 2 failed")
    before = relative_hashes(tree_hashes, out)
    (out / "gray_2_dog.png").unlink()
    (out / "logo_5_ball.png").write_bytes(b"")  # an empty file is redone
    again = crop(boxes, dataset / "images", out, capsys, "--engine", "ray")
    # (the same lines; the order is that of the images still to do)
    assert again[0] == status and sorted(again[1]) == sorted(errors)
    assert again[2].startswith("2 written, 2 skipped, 2 failed")
    assert relative_hashes(tree_hashes, out) == before


def test_images_from_a_filesystem_uri(cluster, dataset, boxes, capsys, tree_hashes):
    """--images as a pyarrow filesystem URI (file:// here; s3:// and gs:// are read the same
    way), read by the Ray workers: the same crops as from the folder."""
    images = (dataset / "images").resolve()
    status, errors, _ = crop(boxes, f"file://{images}", dataset / "uri", capsys,
                             "--engine", "ray")
    local = crop(boxes, images, dataset / "folder", capsys)
    assert status == local[0] == 1
    assert [line.replace(f"file://{images}", str(images)) for line in errors] == local[1]
    for name in ("street_1_cat.png", "gray_2_dog.png", "logo_5_ball.png", "street_6.png"):
        assert (dataset / "uri" / name).read_bytes() == (dataset / "folder" / name).read_bytes()
    with np.load(_npz(dataset, boxes, f"file://{images}", capsys)) as shard:
        assert shard["crops"].shape == (4, 8, 6, 3)


def _npz(dataset, boxes, images, capsys):
    out = dataset / "uri_npz"
    crop(boxes, images, out, capsys, "--engine", "ray", "--format", "npz")
    return out / "crops-00000.npz"


def test_ray_address_names_the_cluster(cluster, dataset, boxes, rgb):
    """A separate process finds the cluster through RAY_ADDRESS (as under ``ray job
    submit``) and exits as a local run does."""
    environment = {**os.environ, "RAY_ADDRESS": cluster.address}
    done = subprocess.run([sys.executable, "-m", "roiops.cli", "crop", str(boxes), "--images",
                           str(dataset / "images"), "--out", str(dataset / "out"), "--size",
                           "8x6", "--engine", "ray"],
                          env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "4 written, 0 skipped, 2 failed" in done.stdout
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {boxes} row 4 (line 5): box x1=100, y1=100, x2=120, y2=120 lies outside the "
        f"40x30 image (image {dataset / 'images' / 'street.png'})",
        f"error: {dataset / 'images' / 'missing.png'}: no such file (1 box not cropped)"]
    assert rgb(dataset / "out" / "street_6.png").shape == (8, 6, 3)
