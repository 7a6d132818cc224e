"""The one validator of rotated RoI Align and its gradients (docs/errors.md).

Every entry point (the NumPy functions, the torch functions, the detectron2 and mmcv
adapters) builds the :class:`Options` of its call and calls :func:`check_forward`,
:func:`check_grad_input` or :func:`check_grad_boxes` with the kind of its arrays and its
framework's argument names; they read metadata only and return a
``roiops.roi_align.checks.RoiAlign`` record (the same record as roi_align: its run checks
serve both). The values are checked next to the kernels that read them, by
:func:`check_roi_values` (host) or its device twin in ``roiops.torch.ops``.
"""
import copy
import functools
import math

import numpy as np

from .. import _arrays, _checks
from ..roi_align import checks as roi_checks
from ..roi_align.checks import (  # noqa: F401  (re-exported: the run checks are shared)
    Names,
    check_compute_type,
    check_forward_run,
    check_grad_input_run,
)
from . import conventions

# The samples of one roi per channel (output bins times grid), at most: the frameworks
# count them in a C int (and allocate a table of that many), and a finite but huge roi
# with an adaptive grid would otherwise run for days.
MAX_SAMPLES_PER_ROI = 2**31 - 1


class Options:
    """Checked rotated roi_align options, shared by the forward and both gradients;
    ``convention`` is the selected ``conventions.Convention`` record."""

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                 convention):
        self.pooled_height, self.pooled_width = _checks.size_pair(
            "output_size", output_size, allow_int=True)
        self.spatial_scale = _checks.require_number("spatial_scale", spatial_scale)
        if not -math.inf < self.spatial_scale < math.inf:
            raise ValueError(f"spatial_scale must be finite, got {spatial_scale!r}")
        self.sampling_ratio = _checks.require_sampling_ratio("sampling_ratio", sampling_ratio)
        self.convention = conventions.convention(convention, aligned, clockwise)
        self.aligned, self.clockwise = bool(aligned), bool(clockwise)

    @classmethod
    def from_op_args(cls, output_size, spatial_scale, sampling_ratio, aligned, clockwise,
                     convention):
        """The options of a custom op's arguments (:meth:`op_args`, already checked)."""
        options = cls.__new__(cls)
        options.pooled_height, options.pooled_width = (int(v) for v in output_size)
        options.spatial_scale = float(spatial_scale)
        options.sampling_ratio = int(sampling_ratio)
        options.convention = conventions.convention(convention, aligned, clockwise)
        options.aligned, options.clockwise = bool(aligned), bool(clockwise)
        return options

    def op_args(self):
        """The custom ops' arguments after the tensors (``roiops.torch.ops``)."""
        return ([self.pooled_height, self.pooled_width], self.spatial_scale,
                self.sampling_ratio, self.aligned, self.clockwise, self.convention.name)

    @property
    def output_size(self):
        return self.pooled_height, self.pooled_width

    def with_scale(self, spatial_scale):
        """These options with a framework's rounding of the spatial scale (already checked)."""
        options = copy.copy(self)
        options.spatial_scale = spatial_scale
        return options

    def kernel_args(self, F):
        return F(self.spatial_scale), self.sampling_ratio, self.convention.geometry


# roi_align's validator, for rows (batch, cx, cy, w, h, angle) and a [K, 6] box gradient
ROI_COLUMNS = 6
check_forward = functools.partial(roi_checks.check_forward, columns=ROI_COLUMNS)
check_grad_input = functools.partial(roi_checks.check_grad_input, columns=ROI_COLUMNS)
check_grad_boxes = functools.partial(roi_checks.check_grad_boxes, columns=ROI_COLUMNS)


def check_roi_values(rois, batch, call, name="rois"):
    """The host's value checks of ``[K, 6]`` NumPy rois; the batch indices as int64.

    Finite rows; the batch index truncated toward zero in ``[0, batch)``; for the aligned
    conventions (no minimum size) a width and height that stay ``>= 0`` once scaled in the
    compute type (both frameworks assert it).
    """
    _checks.require_finite_rows(name, rois)
    column = rois[:, 0]
    truncated = np.trunc(column)
    _checks.require_indices_in_range(f"{name} batch index", truncated, batch, shown=column)
    if not call.options.convention.geometry.min_size_one and rois.shape[0]:
        F = call.F
        # A scale that overflows F (refused next, by the run checks) makes a zero size NaN,
        # which passes here without a warning.
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            sizes = _arrays.kernel_input(np.ascontiguousarray(rois[:, 3:5]), F) * F(
                call.options.spatial_scale)
        bad = (sizes < 0).any(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} width and height times spatial_scale must be >= 0 "
                             f"(the {call.options.convention.name} convention has no minimum "
                             f"size), row {row} is {rois[row].tolist()}")
    return truncated.astype(np.int64)


def check_samples(call, grid_h, grid_w, name="rois"):
    """ValueError naming the first roi whose sample count per channel (output bins times
    adaptive grid, int64 arrays ``grid_h, grid_w`` from the kernels' geometry) exceeds
    :data:`MAX_SAMPLES_PER_ROI`."""
    bins = call.options.pooled_height * call.options.pooled_width
    # in float64: the product of two saturated grids overflows int64
    samples = grid_h.astype(np.float64) * grid_w.astype(np.float64) * bins
    bad = samples > MAX_SAMPLES_PER_ROI
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} row {row} needs {samples[row]:.4g} samples per channel "
                         f"(a {grid_h[row]}x{grid_w[row]} adaptive grid per bin), more than "
                         f"{MAX_SAMPLES_PER_ROI}; pass a sampling_ratio or a smaller roi")
