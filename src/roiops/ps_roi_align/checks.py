"""The one validator of ps_roi_align and its gradients, and the position-sensitive shape rules
that ps_roi_pool's validator shares (docs/errors.md).

Position-sensitive pooling reads output bin ``(c, ph, pw)`` from input channel
``(c * PH + ph) * PW + pw``: the input has ``C_out * PH * PW`` channels and the result
``C_out``. Every entry point builds its :class:`Options` and calls :func:`check_forward`,
:func:`check_grad_input` or :func:`check_grad_boxes` with the kind of its arrays and its
framework's argument names (``roiops.roi_align.checks.Names``); they read metadata only and
return a ``roiops.roi_align.checks.RoiAlign`` record. The roi values are checked by
roi_align's rule (``roiops.roi_align.checks.check_roi_values``, torchvision's truncated
batch index).
"""
from .. import _checks
from ..roi_align import checks as roi_checks
from ..roi_align.checks import NATIVE


class Options(roi_checks.Options):
    """Checked ps_roi_align options. The geometry is roi_align's aligned torchvision one
    (``-0.5`` pixel shift, no minimum size, ``ceil`` adaptive grid): a ``convention``
    record of ``roiops.roi_align.conventions``, so the roi_align plan serves both."""

    def __init__(self, output_size, spatial_scale, sampling_ratio):
        super().__init__(output_size, spatial_scale, sampling_ratio, True, "torchvision", 1)

    @classmethod
    def from_op_args(cls, output_size, spatial_scale, sampling_ratio):
        """The options of a custom op's arguments (:meth:`op_args`), not checked again."""
        return super().from_op_args(output_size, spatial_scale, sampling_ratio, True,
                                    "torchvision", 1)

    def op_args(self):
        """The custom ops' arguments after the tensors (``roiops.torch.ops``)."""
        return [self.pooled_height, self.pooled_width], self.spatial_scale, self.sampling_ratio


def bins(options):
    """``PH * PW``: the input channels per output channel."""
    return options.pooled_height * options.pooled_width


def output_channels(name, channels, options):
    """``channels / (PH * PW)``; ValueError naming ``name`` unless it divides exactly."""
    per_output = bins(options)
    if channels % per_output:
        raise ValueError(f"{name} channels must be a multiple of pooled_height * pooled_width "
                         f"= {per_output} (position-sensitive maps hold one channel per "
                         f"output channel and bin), got {channels}")
    return channels // per_output


def _input(kind, name, input, options, dtypes):
    roi_checks.require_maps(kind, name, input, dtypes)
    return output_channels(name, input.shape[1], options)


def _grads(kind, name, grads, expected, dtypes):
    _checks.require_dtype(name, grads, roi_checks.allowed_dtypes(kind, dtypes))
    if tuple(grads.shape) != expected:
        raise ValueError(f"{name} must have shape [num_rois, channels / (pooled_height * "
                         f"pooled_width), pooled_height, pooled_width] = {expected}, "
                         f"got {tuple(grads.shape)}")


def check_forward(kind, input, rois, options, names=NATIVE, dtypes=None):
    """Check a forward call (``options``: this module's or ps_roi_pool's); ``dtypes`` (names,
    ``None``: float16/32/64 and torch's bfloat16) is a framework's rule for both arrays."""
    kind.require({names.input: input, names.rois: rois})
    _input(kind, names.input, input, options, dtypes)
    num_rois = roi_checks.require_rois(kind, names.rois, rois, dtypes)
    return forward_call(kind, input, num_rois, options, names)


def forward_call(kind, input, num_rois, options, names=NATIVE):
    """The record of a checked forward: ``[K, C / (PH*PW), PH, PW]``; derives, checks
    nothing."""
    return roi_checks.call_record(
        kind, input.shape, num_rois, options, input.dtype,
        (num_rois, input.shape[1] // bins(options), *options.output_size), names)


def check_grad_input(kind, grads, rois, input_shape, options, names=NATIVE, dtypes=None):
    """Check an input gradient call; the result has ``input_shape`` and the grads' dtype."""
    kind.require({names.grads: grads, names.rois: rois})
    shape = roi_checks.check_input_shape(input_shape, names.input_shape)
    channels_out = output_channels(names.input_shape, shape[1], options)
    num_rois = roi_checks.require_rois(kind, names.rois, rois, dtypes)
    _grads(kind, names.grads, grads, (num_rois, channels_out, *options.output_size), dtypes)
    return grad_input_call(kind, grads, num_rois, shape, options, names)


def grad_input_call(kind, grads, num_rois, input_shape, options, names=NATIVE):
    """The record of a checked input gradient; derives, checks nothing."""
    return roi_checks.call_record(kind, input_shape, num_rois, options, grads.dtype,
                                  input_shape, names)


def check_grad_boxes(kind, grads, input, rois, options, names=NATIVE):
    """Check a box gradient call; the result is ``[K, 5]`` of the input's dtype."""
    kind.require({names.grads: grads, names.input: input, names.rois: rois})
    channels_out = _input(kind, names.input, input, options, None)
    num_rois = roi_checks.require_rois(kind, names.rois, rois, None)
    _grads(kind, names.grads, grads, (num_rois, channels_out, *options.output_size), None)
    return grad_boxes_call(kind, input, num_rois, options, names)


def grad_boxes_call(kind, input, num_rois, options, names=NATIVE):
    """The record of a checked box gradient; derives, checks nothing."""
    return roi_checks.call_record(kind, input.shape, num_rois, options, input.dtype,
                                  (num_rois, 5), names)
