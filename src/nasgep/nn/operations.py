"""The operation table: one constructor per operation of :data:`nasgep.space.OPERATIONS`.

Every operation is a convolution block ReLU -> convolution -> BatchNorm (paper III-C)
that maps ``channels`` to ``channels``: no convolution bias (the BN's shift makes it
redundant), "same" padding (``k // 2`` per axis, so a 1x7 kernel pads (0, 3)).
With ``stride=2`` the block halves the resolution: a reduction cell uses that for every
operation that reads a cell input directly.

- ``pw``       ReLU -> 1x1 conv -> BN
- ``dw_K``     ReLU -> depth-wise K conv -> BN
- ``sep_K``    ReLU -> 1x1 conv -> depth-wise K conv -> BN   (point-wise first: the paper's "separable")
- ``isep_K``   ReLU -> depth-wise K conv -> 1x1 conv -> BN   (depth-wise first: the paper's "inverse")

The separable blocks are *one* block: one ReLU at the start and one BN at the end, no
BN or ReLU between the two convolutions, i.e. the pair is treated as a single factorised
convolution (as Xception's and MobileNet's ``SeparableConv`` layers). That keeps every
operation a single "ReLU -> conv -> BN" block as the paper defines it. The stride sits
on the depth-wise convolution of a separable block: it is the one with a spatial extent.

Also here: the 1x1 ReLU-conv-BN block that matches channel counts, the DARTS factorised
stride-2 reduction, and the two stems. Nothing in this module knows about genomes.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..space import KERNELS, OPERATIONS

Kernel = tuple[int, int]


def parse_kernel(text: str) -> Kernel:
    """``'3x5' -> (3, 5)`` (height, width)."""
    height, width = text.split("x")
    return int(height), int(width)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` without bias, zero "same" padding, Kaiming-normal initialised
    (paper III-D: fan-in, ReLU gain), built by a light constructor.

    Why the light constructor: ``nn.Conv2d.__init__`` validates its arguments and draws a
    default initialisation that NASGEP replaces anyway; with ~200 convolutions in a search
    network that was most of the build time (about 87 us against 11 us a convolution on
    a 2-core CPU). Forward, repr, state-dict keys and ``isinstance(m, nn.Conv2d)`` are
    those of ``nn.Conv2d`` (``tests/test_nn.py`` checks the equivalence). The
    initialisation draws from the global CPU generator: :func:`build_network` seeds it.
    """

    def __init__(self, c_in: int, c_out: int, kernel: Kernel, stride: int = 1, groups: int = 1):
        nn.Module.__init__(self)
        padding = (kernel[0] // 2, kernel[1] // 2)
        self.__dict__.update(
            in_channels=c_in, out_channels=c_out, kernel_size=kernel, stride=(stride, stride),
            padding=padding, dilation=(1, 1), transposed=False, output_padding=(0, 0),
            groups=groups, padding_mode="zeros",
            _reversed_padding_repeated_twice=(padding[1], padding[1], padding[0], padding[0]),
        )
        weight = torch.empty(c_out, c_in // groups, *kernel)
        if not weight.is_meta:     # a shapes-only build (parameter counts): drawing there costs ~10 ms a call
            nn.init.kaiming_normal_(weight, mode="fan_in", nonlinearity="relu")
        # straight into the registries: what register_parameter does, minus its checks
        self._parameters.update(weight=nn.Parameter(weight), bias=None)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with PyTorch's defaults (eps 1e-5, momentum 0.1, affine, running
    statistics), built by a light constructor for the same reason as :class:`Conv2d`."""

    def __init__(self, channels: int):
        nn.Module.__init__(self)
        self.__dict__.update(num_features=channels, eps=1e-5, momentum=0.1, affine=True,
                             track_running_stats=True)
        self._parameters.update(weight=nn.Parameter(torch.ones(channels)),
                                bias=nn.Parameter(torch.zeros(channels)))
        self._buffers.update(running_mean=torch.zeros(channels), running_var=torch.ones(channels),
                             num_batches_tracked=torch.zeros((), dtype=torch.long))


def pointwise(c_in: int, c_out: int, stride: int = 1) -> Conv2d:
    return Conv2d(c_in, c_out, (1, 1), stride)


def depthwise(channels: int, kernel: Kernel, stride: int = 1) -> Conv2d:
    return Conv2d(channels, channels, kernel, stride, groups=channels)


class ConvBlock(nn.Sequential):
    """ReLU -> the given convolutions -> BatchNorm; children are named (``relu``, ``pw``,
    ``dw``, ``bn``) so state-dict keys say what each weight is."""

    def __init__(self, convs: OrderedDict[str, nn.Conv2d], out_channels: int, relu: bool = True):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if relu:
            layers["relu"] = nn.ReLU(inplace=False)  # inputs are shared by several blocks
        layers.update(convs)
        layers["bn"] = BatchNorm2d(out_channels)
        super().__init__(layers)


OpConstructor = Callable[[int, int], nn.Module]


def _pw_op(channels: int, stride: int) -> nn.Module:
    return ConvBlock(OrderedDict(pw=pointwise(channels, channels, stride)), channels)


def _dw_op(kernel: Kernel) -> OpConstructor:
    def make(channels: int, stride: int) -> nn.Module:
        return ConvBlock(OrderedDict(dw=depthwise(channels, kernel, stride)), channels)
    return make


def _sep_op(kernel: Kernel) -> OpConstructor:
    def make(channels: int, stride: int) -> nn.Module:
        return ConvBlock(OrderedDict(pw=pointwise(channels, channels),
                                     dw=depthwise(channels, kernel, stride)), channels)
    return make


def _isep_op(kernel: Kernel) -> OpConstructor:
    def make(channels: int, stride: int) -> nn.Module:
        return ConvBlock(OrderedDict(dw=depthwise(channels, kernel, stride),
                                     pw=pointwise(channels, channels)), channels)
    return make


#: operation name -> constructor ``(channels, stride) -> module`` mapping channels to channels.
OPS: dict[str, OpConstructor] = {
    "pw": _pw_op,
    **{f"dw_{k}": _dw_op(parse_kernel(k)) for k in KERNELS},
    **{f"sep_{k}": _sep_op(parse_kernel(k)) for k in KERNELS},
    **{f"isep_{k}": _isep_op(parse_kernel(k)) for k in KERNELS},
}
assert tuple(OPS) == OPERATIONS, "the op table must cover space.OPERATIONS in order"


def relu_conv_bn(c_in: int, c_out: int) -> nn.Module:
    """The 1x1 block that brings a tensor to another channel count (input preprocessing,
    channel matching before an ``add``, the cell's final projection)."""
    return ConvBlock(OrderedDict(pw=pointwise(c_in, c_out)), c_out)


class FactorizedReduce(nn.Module):
    """DARTS' stride-2 reduction of an h_{i-2} at twice h_{i-1}'s resolution: two 1x1
    stride-2 convolutions, the second shifted by one pixel so together they see every
    pixel, concatenated to ``c_out`` channels.

    The shifted branch is padded back to full size first, so odd resolutions give
    ceil(H/2) like every stride-2 operation with "same" padding.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even output width, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = pointwise(c_in, c_out // 2, stride=2)
        self.conv_2 = pointwise(c_in, c_out // 2, stride=2)
        self.bn = BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> Conv2d:
    return Conv2d(c_in, c_out, (3, 3), stride)


def cifar_stem(in_channels: int, channels: int) -> nn.Module:
    """3x3 convolution + BN to ``channels`` at full resolution (paper Fig. 3, left)."""
    return ConvBlock(OrderedDict(conv=conv3x3(in_channels, channels)), channels, relu=False)


def imagenet_stem(in_channels: int, channels: int) -> nn.Module:
    """Three 3x3 stride-2 convolution blocks, the first without ReLU:
    in -> C/2 -> C -> C, i.e. 1/8 of the input resolution (paper IV-A, mobile setting)."""
    half = max(channels // 2, 1)
    return nn.Sequential(OrderedDict(
        block0=ConvBlock(OrderedDict(conv=conv3x3(in_channels, half, 2)), half, relu=False),
        block1=ConvBlock(OrderedDict(conv=conv3x3(half, channels, 2)), channels),
        block2=ConvBlock(OrderedDict(conv=conv3x3(channels, channels, 2)), channels),
    ))


#: stem kind -> constructor ``(in_channels, channels) -> module``.
STEMS: dict[str, Callable[[int, int], nn.Module]] = {"cifar": cifar_stem, "imagenet": imagenet_stem}
