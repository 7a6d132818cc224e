"""Tests of roi_align's sample plan (``roiops.roi_align.plan``): the tables the Numba kernels
read. Their values are checked end to end (the kernels' results against the peers' golden
files and the reference); here, what the kernels rely on."""
import numpy as np
import pytest
from exact import assert_same_bits

from roiops.roi_align import conventions
from roiops.roi_align import plan as plan_module
from roiops.roi_align.plan import one_map

CONVENTIONS = [conventions.TORCHVISION, conventions.TORCHVISION_ALIGNED,
               conventions.MINDSPORE_END_MODE_0, conventions.MINDSPORE_END_MODE_1]


def _hostile_rois(rng, F, half, huge):
    """Rois of every kind: ordinary, reversed, points, beyond the map, NaN corners, and if
    ``huge`` huge boxes and infinite corners (adaptive grids of millions of samples up to the
    saturated int32 grid)."""
    num_rois = 40
    rois = rng.uniform(-20, 120, (num_rois, 5))
    rois[:8, 3:] = rois[:8, 1:3] - rng.uniform(0, 30, (8, 2))             # reversed
    rois[8:12, 3:] = rois[8:12, 1:3]                                       # points
    rois[12:16, 1:] += 500                                                 # beyond the map
    rois[16:18, 1:] = [[np.nan, 1, 2, 3], [1, 2, 3, np.nan]]
    if huge:
        rois[18:22, 3:] = rois[18:22, 1:3] + [[1e5, 3e4], [1e7, 2], [3e9, 5], [7, 6e6]]
        rois[22:24, 1:] = [[np.inf, 0, 5, 5], [0, -np.inf, 5, 5]]
    rois = rois.astype(F)
    return rois.astype(np.float16).astype(F) if half else rois


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("convention", CONVENTIONS, ids=lambda c: f"{c.name}-{c.geometry}")
@pytest.mark.parametrize("F, half", [(np.float32, False), (np.float64, False),
                                     (np.float32, True)], ids=["f32", "f64", "half"])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 3])
def test_whole_grids_and_bisection_find_the_same_samples(monkeypatch, convention, F, half,
                                                         sampling_ratio):
    # Small grids are evaluated whole, big ones bisected: both must give the same tables
    # (bisection is forced with a limit of 0). Huge boxes make adaptive grids too big to
    # evaluate whole, so they come only with a fixed grid.
    rois = _hostile_rois(np.random.default_rng(sampling_ratio + 5), F, half,
                         huge=sampling_ratio > 0)
    args = (rois, F(0.5), np.int64(sampling_ratio), convention.geometry, 3, 4, 50, 76, half, F)
    limit = plan_module._WHOLE_GRID_LIMIT
    with np.errstate(all="ignore"):
        whole = one_map(*args)
        monkeypatch.setattr(plan_module, "_WHOLE_GRID_LIMIT", 0)
        bisected = one_map(*args)
    grid_max = max(whole.grid_h.max(), whole.grid_w.max())
    assert len(rois) * 4 * grid_max <= limit  # the first plan evaluated whole grids
    for name, value in whole._asdict().items():
        if name in ("ys", "xs"):
            for field, table in value._asdict().items():
                assert_same_bits(table, getattr(getattr(bisected, name), field))
        else:
            assert_same_bits(value, getattr(bisected, name))
    assert whole.xs.first[-1, -1] > 0  # some samples are valid


def test_tables_have_the_kernels_types():
    # The compiled kernels are specialized on these dtypes: another would compile them again.
    rois = np.array([[0, 1, 1, 3, 3], [0, 2, 2, 9, 5]], np.float32)
    for F, half in [(np.float32, False), (np.float64, False), (np.float32, True)]:
        plan = one_map(rois.astype(F), F(1), np.int64(2),
                       conventions.TORCHVISION.geometry, 2, 3, 8, 8, half, F)
        assert plan.count.dtype == F
        for flag in (plan.y_clamped, plan.x_clamped):
            assert flag.dtype == np.bool_
        assert plan.grid_h.dtype == plan.grid_w.dtype == np.int64
        for table, pooled in ((plan.ys, 2), (plan.xs, 3)):
            assert table.first.dtype == np.int64 and table.first.shape == (2, pooled + 1)
            assert table.low.dtype == table.high.dtype == np.uint64
            assert table.frac.dtype == table.comp.dtype == table.position.dtype == F
            assert table.active.dtype == np.bool_
            for column in table:
                assert column.flags.c_contiguous


def test_no_rois_plan_empty_tables():
    plan = one_map(np.zeros((0, 5), np.float32), np.float32(1), np.int64(0),
                   conventions.TORCHVISION.geometry, 7, 7, 8, 8, False, np.float32)
    assert plan.ys.first.shape == (0, 8) and plan.xs.low.shape == (0,)
    assert plan.count.shape == (0,)


def test_valid_samples_are_those_inside_the_map():
    # aligned, scale 1: x from 1.5 - 0.5 to 5.5 - 0.5 on a 4-wide map, one bin of 4 samples at
    # 1.5, 2.5, 3.5 and 4.5; the last is beyond the map's [-1, 4] and is not planned; 3.5 is
    # pinned to the last column.
    rois = np.array([[0, 1.5, 0.0, 5.5, 1.0]], np.float32)
    plan = one_map(rois, np.float32(1), np.int64(4), conventions.TORCHVISION_ALIGNED.geometry,
                   1, 1, 4, 4, False, np.float32)
    np.testing.assert_array_equal(plan.xs.first, [[0, 3]])
    np.testing.assert_array_equal(plan.xs.low, [1, 2, 3])
    np.testing.assert_array_equal(plan.xs.high, [2, 3, 3])
    np.testing.assert_array_equal(plan.xs.frac, [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(plan.xs.active, [True, True, False])
