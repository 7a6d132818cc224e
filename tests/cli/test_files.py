"""Outputs are written atomically and replace links in --out instead of writing through them."""
import os

import numpy as np
import pytest

from roiops.cli import files
from roiops.cli.main import main


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_atomically_replaces_a_link_and_leaves_its_target(tmp_path):
    target = tmp_path / "outside.txt"
    target.write_bytes(b"keep me")
    link = tmp_path / "out.txt"
    link.symlink_to(target)
    files.write_atomically(link, lambda file: file.write(b"new"))
    assert target.read_bytes() == b"keep me"
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert link.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.txt", "outside.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "crop.png"
    path.write_bytes(b"old")

    def fail(file):
        file.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.write_atomically(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["crop.png"]


def test_is_written_counts_only_non_empty_regular_files(tmp_path):
    (tmp_path / "crop.png").write_bytes(b"x")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "link.png").symlink_to(tmp_path / "crop.png")
    assert files.is_written(tmp_path / "crop.png")
    assert not files.is_written(tmp_path / "empty.png")
    assert not files.is_written(tmp_path / "link.png")
    assert not files.is_written(tmp_path / "missing.png")


@pytest.mark.parametrize("image_format", ["png", "npz"])
def test_links_in_out_are_replaced_not_followed(dataset, tree_hashes, image_format):
    """A link at an output's name (a crop, a shard, the manifest, the contact sheet) pointing
    outside --out: the file it points to is neither written nor read (not taken for a finished
    crop)."""
    elsewhere = dataset / "elsewhere"
    elsewhere.mkdir()
    out = dataset / "out"
    out.mkdir()
    names = {"png": ["street_1_cat.png", "gray_2_dog.png"],
             "npz": ["crops-00000.npz"]}[image_format] + ["manifest.csv"]
    for name in [*names, "sheet.png"]:
        (elsewhere / name).write_bytes(b"not an output")
        (out / name).symlink_to(elsewhere / name)
    before = tree_hashes(elsewhere)
    assert main(["crop", str(dataset / "boxes.csv"), "--images", str(dataset / "images"),
                 "--out", str(out), "--format", image_format, "--size", "6", "--workers", "1",
                 "--contact-sheet", str(out / "sheet.png")]) == 0
    assert tree_hashes(elsewhere) == before
    for name in [*names, "sheet.png"]:
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
    if image_format == "npz":
        with np.load(out / "crops-00000.npz") as data:
            assert data["crops"].shape == (3, 6, 6, 3)
    assert not list(out.glob(".roiops-*"))


def test_write_bytes_creates_replaces_and_leaves_no_temporary(tmp_path):
    """Crop files: a new name is created whole (an unnamed file linked into place where the
    system has them), with the permissions of any new file; an empty file or a link at the name
    is replaced (the link's target untouched)."""
    target = tmp_path / "elsewhere.png"
    target.write_bytes(b"keep me")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "link.png").symlink_to(target)
    for name in ("new.png", "empty.png", "link.png"):
        files.write_bytes(str(tmp_path / name), b"crop " + name.encode())
        path = tmp_path / name
        assert not path.is_symlink() and path.read_bytes() == b"crop " + name.encode()
        assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere.png", "empty.png",
                                                          "link.png", "new.png"]
