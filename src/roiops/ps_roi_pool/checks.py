"""The validator of ps_roi_pool and its input gradient (docs/errors.md).

ps_roi_pool shares ps_roi_align's position-sensitive shape rules and records
(``roiops.ps_roi_align.checks``: ``C = C_out * PH * PW``, result ``[K, C_out, PH, PW]``) and
roi_align's roi value rule (torchvision's truncated batch index); only its options differ.
"""
import copy
import math

from .. import _checks
from ..ps_roi_align.checks import (
    check_forward,
    check_grad_input,
    forward_call,
    grad_input_call,
)
from ..roi_align.conventions import TORCHVISION

__all__ = ["Options", "check_forward", "check_grad_input", "forward_call", "grad_input_call"]


class Options:
    """Checked ps_roi_pool options: the output size and the spatial scale."""

    # roi_align's record of torchvision's batch index rule (the geometry is not used)
    convention = TORCHVISION

    def __init__(self, output_size, spatial_scale):
        self.pooled_height, self.pooled_width = _checks.size_pair(
            "output_size", output_size, allow_int=True)
        self.spatial_scale = _checks.require_number("spatial_scale", spatial_scale)
        # A comparison, not np.isfinite: torch.compile traces it, also for a symbolic float.
        if not -math.inf < self.spatial_scale < math.inf:
            raise ValueError(f"spatial_scale must be finite, got {spatial_scale!r}")

    @classmethod
    def from_op_args(cls, output_size, spatial_scale):
        """The options of a custom op's arguments (:meth:`op_args`), not checked again."""
        options = cls.__new__(cls)
        options.pooled_height, options.pooled_width = (int(v) for v in output_size)
        options.spatial_scale = float(spatial_scale)
        return options

    def op_args(self):
        """The custom ops' arguments after the tensors (``roiops.torch.ops``)."""
        return [self.pooled_height, self.pooled_width], self.spatial_scale

    @property
    def output_size(self):
        return self.pooled_height, self.pooled_width

    def with_scale(self, spatial_scale):
        """These options with a framework's rounding of the spatial scale (already checked)."""
        options = copy.copy(self)
        options.spatial_scale = spatial_scale
        return options

    def kernel_args(self, F):
        return (F(self.spatial_scale),)
