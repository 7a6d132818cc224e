"""``roiops warmup``: the variant list, a small subset compiled in-process, failures."""
import pytest

from roiops.cli import warmup
from roiops.cli.main import main

OPERATORS = ["crop_and_resize", "crop_and_resize_grad_image", "crop_and_resize_grad_boxes",
             "roi_align", "roi_align_grad_input", "roi_align_grad_boxes", "ps_roi_align",
             "ps_roi_align_grad_boxes", "ps_roi_pool", "roi_pool", "multi_scale_roi_align"]


def test_list_names_every_operator_and_dtype_without_compiling(capsys, monkeypatch):
    monkeypatch.setattr(warmup, "_compile", lambda name: pytest.fail("compiled " + name))
    assert main(["warmup", "--list"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert len(names) == len(set(names)) == len(warmup.variants())
    assert {name.split()[0] for name in names} == set(OPERATORS)
    assert {name.split()[1] for name in names} == set(warmup.CROP_IMAGE_DTYPES)
    assert "crop_and_resize uint8 read-only bilinear" in names  # what roiops crop reads
    assert "roi_align float32 strided channels last" in names


def test_only_selects_by_substring(capsys):
    assert main(["warmup", "--list", "--only", "grad_boxes float64", "--only", "int32 C"]) == 0
    assert sorted(capsys.readouterr().out.splitlines()) == sorted([
        "crop_and_resize int32 C bilinear", "crop_and_resize int32 C nearest",
        "crop_and_resize int32 C bilinear_v2", "crop_and_resize_grad_boxes float64 C",
        "crop_and_resize_grad_boxes float64 strided", "roi_align_grad_boxes float64 C",
        "roi_align_grad_boxes float64 strided", "ps_roi_align_grad_boxes float64 C",
        "ps_roi_align_grad_boxes float64 strided"])


def test_compiles_a_subset_and_names_the_cache(capsys):
    # a name no other contains ("roi_align_grad_boxes" is part of "ps_roi_align_grad_boxes")
    assert main(["warmup", "--only", "crop_and_resize_grad_boxes float32 C", "--jobs", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "roiops warmup: compiling 1 kernel variants in 1 process"
    assert lines[1].startswith("  [1/1] crop_and_resize_grad_boxes float32 C: ")
    assert lines[2].startswith("compiled 1 of 1 variants in ")
    assert "cache: " in lines[2]


def test_a_failing_variant_is_reported_and_exits_1(capsys, monkeypatch):
    def broken():
        raise RuntimeError("no compiler")

    monkeypatch.setattr(warmup, "variants", lambda: [warmup.Variant("broken", broken)])
    assert main(["warmup", "--jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "[1/1] broken: FAILED: RuntimeError: no compiler" in out
    assert "compiled 0 of 1 variants" in out


def test_help(capsys):
    assert main(["warmup", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(word in text for word in ["NUMBA_CACHE_DIR", "__pycache__", "--jobs", "--only",
                                         "--list", "examples:"])
