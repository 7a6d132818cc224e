"""``torch.nn.Module`` wrappers of the operators (re-exported as ``roiops.nn``).

Options are validated once, at construction, with the functional API's messages; ``forward``
calls the differentiable functional API, so the modules work under ``torch.compile`` and
``torch.export``. torchvision's ``RoIAlign`` lives in ``roiops.compat.torchvision``.

Example:
    >>> import torch, roiops.nn
    >>> pool = roiops.nn.RoIAlign((7, 7), spatial_scale=1 / 16, sampling_ratio=2, aligned=True)
    >>> pool(torch.rand(2, 256, 50, 68), torch.tensor([[0, 16., 16., 320., 240.]])).shape
    torch.Size([1, 256, 7, 7])
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import _checks
from ..compat import mindspore as _mindspore
from ..crop_and_resize import checks as _crop_checks
from ..crop_and_resize.api import crop_and_resize  # public: scriptable, an FX leaf
from ..ps_roi_align import checks as _ps_align_checks
from ..ps_roi_align.api import ps_roi_align  # public: tensors through roiops._dispatch
from ..ps_roi_pool import checks as _ps_pool_checks
from ..ps_roi_pool.api import ps_roi_pool
from ..roi_align import checks as _roi_checks
from ..roi_align.api import roi_align  # public: scriptable, an FX leaf
from ..roi_align_rotated import checks as _rotated_checks
from ..roi_align_rotated.api import roi_align_rotated  # public: scriptable, an FX leaf
from ..roi_pool import checks as _pool_checks
from ..roi_pool.api import roi_pool  # public: scriptable, an FX leaf

__all__ = ["CropAndResize", "RoIAlign", "RoIAlignRotated", "RoIPool", "MindSporeCropAndResize",
           "MindSporeROIAlign", "PSRoIAlign", "PSRoIPool"]


class CropAndResize(torch.nn.Module):
    """:func:`roiops.crop_and_resize` as a module (TensorFlow semantics).

    ``forward(image, boxes, box_indices)``: image ``[B, H, W, D]`` (or ``[B, D, H, W]`` with
    ``data_format="NCHW"``) of an integer or float dtype, boxes ``[N, 4]`` float
    ``[y1, x1, y2, x2]`` normalized, box_indices ``[N]`` integers; returns
    ``[N, crop_height, crop_width, D]`` (or NCHW) in the image's float dtype (float32 for
    integer images), differentiable w.r.t. image and boxes.

    Example:
        >>> crop = CropAndResize((2, 2))
        >>> crop(torch.arange(16.).reshape(1, 4, 4, 1), torch.tensor([[0., 0, 1, 1]]),
        ...      torch.tensor([0]))[0, :, :, 0]
        tensor([[ 0.,  3.],
                [12., 15.]])
    """

    def __init__(self, crop_size: Sequence[int], method: str = "bilinear",
                 extrapolation_value: float = 0.0, data_format: str = "NHWC") -> None:
        super().__init__()
        self.crop_size = _checks.size_pair("crop_size", crop_size)
        _crop_checks.method_code(method)
        _checks.require_choice("data_format", data_format, _crop_checks.DATA_FORMATS)
        self.method = method
        self.extrapolation_value = _checks.require_number("extrapolation_value",
                                                          extrapolation_value)
        self.data_format = data_format

    def forward(self, image: torch.Tensor, boxes: torch.Tensor,
                box_indices: torch.Tensor) -> torch.Tensor:
        return crop_and_resize(image, boxes, box_indices, self.crop_size, method=self.method,
                               extrapolation_value=self.extrapolation_value,
                               data_format=self.data_format)

    def extra_repr(self) -> str:
        return (f"crop_size={self.crop_size}, method={self.method!r}, "
                f"extrapolation_value={self.extrapolation_value}, "
                f"data_format={self.data_format!r}")


class RoIAlign(torch.nn.Module):
    """:func:`roiops.roi_align` as a module, in either convention.

    ``forward(input, rois)``: input ``[N, C, H, W]`` float16/bfloat16/float32/float64, rois
    ``[K, 5]`` float ``(batch_index, x1, y1, x2, y2)``; returns ``[K, C, ph, pw]`` of the
    input's dtype, differentiable w.r.t. input and rois (the rois' column 0 gets zero).

    Args:
        output_size: ``(ph, pw)`` or one int.
        spatial_scale, sampling_ratio, aligned, roi_end_mode: as :func:`roiops.roi_align`.
        convention: ``"torchvision"`` (uses ``aligned``) or ``"mindspore"`` (uses
            ``roi_end_mode``).
    """

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0,
                 sampling_ratio: int = -1, aligned: bool = False,
                 convention: str = "torchvision", roi_end_mode: int = 1) -> None:
        super().__init__()
        options = _roi_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                   convention, roi_end_mode)
        self.output_size = (options.pooled_height, options.pooled_width)
        self.spatial_scale = options.spatial_scale
        self.sampling_ratio = options.sampling_ratio
        self.aligned = options.aligned
        self.convention = convention
        self.roi_end_mode = options.roi_end_mode

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_align(input, rois, self.output_size, spatial_scale=self.spatial_scale,
                         sampling_ratio=self.sampling_ratio, aligned=self.aligned,
                         convention=self.convention, roi_end_mode=self.roi_end_mode)

    def extra_repr(self) -> str:
        options = (f"aligned={self.aligned}" if self.convention == "torchvision"
                   else f"roi_end_mode={self.roi_end_mode}")
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, convention={self.convention!r}, "
                f"{options}")


class RoIAlignRotated(torch.nn.Module):
    """:func:`roiops.roi_align_rotated` as a module, in either convention.

    ``forward(input, rois)``: input ``[N, C, H, W]`` float16/bfloat16/float32/float64, rois
    ``[K, 6]`` float ``(batch_index, cx, cy, w, h, angle)``; returns ``[K, C, ph, pw]`` of
    the input's dtype, differentiable w.r.t. input and rois (the rois' column 0 gets zero).

    Args:
        output_size: ``(ph, pw)`` or one int.
        spatial_scale, sampling_ratio, aligned, clockwise: as :func:`roiops.roi_align_rotated`.
        convention: ``"detectron2"`` (angles in degrees) or ``"mmcv"`` (radians).

    Example:
        >>> pool = RoIAlignRotated(2, sampling_ratio=1)
        >>> pool(torch.arange(25.).reshape(1, 1, 5, 5), torch.tensor([[0., 2, 2, 2, 2, 90]]))
        tensor([[[[11.,  6.],
                  [12.,  7.]]]])
    """

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0,
                 sampling_ratio: int = 0, aligned: bool = True, clockwise: bool = False,
                 convention: str = "detectron2") -> None:
        super().__init__()
        options = _rotated_checks.Options(output_size, spatial_scale, sampling_ratio, aligned,
                                          clockwise, convention)
        self.output_size = options.output_size
        self.spatial_scale = options.spatial_scale
        self.sampling_ratio = options.sampling_ratio
        self.aligned = options.aligned
        self.clockwise = options.clockwise
        self.convention = convention

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return roi_align_rotated(input, rois, self.output_size,
                                 spatial_scale=self.spatial_scale,
                                 sampling_ratio=self.sampling_ratio, aligned=self.aligned,
                                 clockwise=self.clockwise, convention=self.convention)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}, "
                f"clockwise={self.clockwise}, convention={self.convention!r}")


class MindSporeCropAndResize(torch.nn.Module):
    """``mindspore.ops.CropAndResize`` as a module: ``forward(x, boxes, box_index, crop_size)``.

    MindSpore's constructor checks and dtypes (float32 output, boxes float32, box_index
    int32); see :class:`roiops.compat.mindspore.CropAndResize`.
    """

    def __init__(self, method: str = "bilinear", extrapolation_value: float = 0.0) -> None:
        super().__init__()
        self.primitive = _mindspore.CropAndResize(method, extrapolation_value)

    def forward(self, x: torch.Tensor, boxes: torch.Tensor, box_index: torch.Tensor,
                crop_size: Sequence[int]) -> torch.Tensor:
        return self.primitive(x, boxes, box_index, crop_size)

    def extra_repr(self) -> str:
        return (f"method={self.primitive.method!r}, "
                f"extrapolation_value={self.primitive.extrapolation_value}")


class MindSporeROIAlign(torch.nn.Module):
    """``mindspore.ops.ROIAlign`` as a module: ``forward(features, rois)``.

    MindSpore's constructor checks and arithmetic; see
    :class:`roiops.compat.mindspore.ROIAlign`. Differentiable w.r.t. features and rois; with
    both tensors float16 MindSpore's half arithmetic runs on the host, and so does its
    features gradient (see :mod:`roiops.torch.compat`).
    """

    def __init__(self, pooled_height: int, pooled_width: int, spatial_scale: float,
                 sample_num: int = 2, roi_end_mode: int = 1) -> None:
        super().__init__()
        self.primitive = _mindspore.ROIAlign(pooled_height, pooled_width, spatial_scale,
                                             sample_num, roi_end_mode)

    def forward(self, features: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return self.primitive(features, rois)

    def extra_repr(self) -> str:
        p = self.primitive
        return (f"pooled_height={p.pooled_height}, pooled_width={p.pooled_width}, "
                f"spatial_scale={p.spatial_scale}, sample_num={p.sample_num}, "
                f"roi_end_mode={p.roi_end_mode}")


class RoIPool(torch.nn.Module):
    """:func:`roiops.roi_pool` as a module (torchvision's RoI max pooling).

    ``forward(input, rois)``: input ``[N, C, H, W]`` float16/bfloat16/float32/float64, rois
    ``[K, 5]`` float ``(batch_index, x1, y1, x2, y2)``; returns ``[K, C, ph, pw]`` of the
    input's dtype, differentiable w.r.t. the input (the rois get no gradient: the result is
    piecewise constant in them). torchvision's own signature is
    ``roiops.compat.torchvision.RoIPool``.

    Example:
        >>> pool = RoIPool(2)
        >>> pool(torch.arange(16.).reshape(1, 1, 4, 4), torch.tensor([[0., 0, 0, 3, 3]]))
        tensor([[[[ 5.,  7.],
                  [13., 15.]]]])
    """

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        options = _pool_checks.Options(output_size, spatial_scale)
        self.output_size = options.output_size
        self.spatial_scale = options.spatial_scale

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        # without return_argmax the result alone (the public function's type says either)
        return roi_pool(input, rois, self.output_size,  # type: ignore[return-value]
                        spatial_scale=self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


class PSRoIAlign(torch.nn.Module):
    """:func:`roiops.ps_roi_align` as a module (position-sensitive RoI Align, R-FCN).

    ``forward(input, rois)``: input ``[N, C_out * PH * PW, H, W]`` float16/bfloat16/float32/
    float64, rois ``[K, 5]`` float ``(batch_index, x1, y1, x2, y2)``; returns
    ``[K, C_out, PH, PW]`` of the input's dtype, differentiable w.r.t. input and rois.
    torchvision's own signature is ``roiops.compat.torchvision.PSRoIAlign``.

    Example:
        >>> align = PSRoIAlign(2, sampling_ratio=1)
        >>> align(torch.arange(4.).reshape(1, 4, 1, 1), torch.tensor([[0., 0, 0, 1, 1]]))
        tensor([[[[0., 1.],
                  [2., 3.]]]])
    """

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0,
                 sampling_ratio: int = -1) -> None:
        super().__init__()
        options = _ps_align_checks.Options(output_size, spatial_scale, sampling_ratio)
        self.output_size = options.output_size
        self.spatial_scale = options.spatial_scale
        self.sampling_ratio = options.sampling_ratio

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return ps_roi_align(input, rois, self.output_size, spatial_scale=self.spatial_scale,
                            sampling_ratio=self.sampling_ratio)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}")


class PSRoIPool(torch.nn.Module):
    """:func:`roiops.ps_roi_pool` as a module (position-sensitive RoI average pooling).

    ``forward(input, rois)``: as :class:`PSRoIAlign`; differentiable w.r.t. the input (the
    rois get no gradient: rounded to whole pixels, the result is piecewise constant in them).
    torchvision's own signature is ``roiops.compat.torchvision.PSRoIPool``.

    Example:
        >>> pool = PSRoIPool(2)
        >>> pool(torch.arange(36.).reshape(1, 4, 3, 3), torch.tensor([[0., 0, 0, 2, 2]]))
        tensor([[[[ 0., 10.],
                  [21., 31.]]]])
    """

    def __init__(self, output_size: int | Sequence[int], spatial_scale: float = 1.0) -> None:
        super().__init__()
        options = _ps_pool_checks.Options(output_size, spatial_scale)
        self.output_size = options.output_size
        self.spatial_scale = options.spatial_scale

    def forward(self, input: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        return ps_roi_pool(input, rois, self.output_size, spatial_scale=self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"
