"""Building blocks shared by the architectures (BasicSR's arch_util): convolutions with
"same" padding, a 1x1 convolution over a concatenation, the RGB mean shift, the EDSR residual
block and the sub-pixel upsampler."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# DIV2K RGB mean in [0, 1]; the reference code subtracts it at the input and adds it back at
# the output (EDSR/RCAN practice). Kept as a fixed buffer, not a (trainable) parameter.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def conv3x3(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)


class ConcatConv1x1(nn.Conv2d):
    """A 1x1 convolution of the channel concatenation of a list of tensors.

    Its parameters are a plain ``Conv2d``'s; taking the parts rather than their concatenation
    lets an inference copy skip building it (:mod:`jpegsr.models.fused`).
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, parts: list[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat(parts, dim=1))


class MeanShift(nn.Module):
    """Adds ``sign * mean`` per channel; a buffer so it is neither trained nor counted."""

    mean: torch.Tensor

    def __init__(self, mean: tuple[float, float, float] = DIV2K_RGB_MEAN, sign: int = -1) -> None:
        super().__init__()
        self.register_buffer("mean", sign * torch.tensor(mean).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mean.to(x.dtype)


class ResBlock(nn.Module):
    """EDSR residual block: conv3x3, ReLU, conv3x3, identity skip (no BN, no scaling)."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def conv_pixel_shuffle(conv: nn.Conv2d, x: torch.Tensor, r: int) -> torch.Tensor:
    """``PixelShuffle(r)(conv(x))`` for a channels-last ``x``, computed faster: the conv's
    output channels are taken in (sub-row, sub-column, channel) order instead of (channel,
    sub-row, sub-column), so the shuffle moves whole runs of C channels instead of gathering
    single values. The same numbers; the parameters keep their order."""
    c = conv.out_channels // (r * r)
    order = torch.arange(conv.out_channels, device=x.device).view(c, r, r).permute(1, 2, 0)
    order = order.reshape(-1)
    bias = None if conv.bias is None else conv.bias[order]
    y = F.conv2d(x, conv.weight[order], bias, conv.stride, conv.padding, conv.dilation)
    n, _, h, w = y.shape
    y = y.permute(0, 2, 3, 1).reshape(n, h, w, r, r, c).permute(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h * r, w * r, c).permute(0, 3, 1, 2)


class SubPixelConvs(nn.Sequential):
    """Pairs of (convolution, ``PixelShuffle``); on channels-last inputs (training and
    inference here) each pair runs as :func:`conv_pixel_shuffle`. The modules and their
    parameters are the plain ones."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        layers = list(self)
        for conv, shuffle in zip(layers[::2], layers[1::2], strict=True):
            x = conv_pixel_shuffle(conv, x, shuffle.upscale_factor)
        return x


class Upsampler(SubPixelConvs):
    """Sub-pixel upsampler (ESPCN/EDSR): conv3x3 C -> s^2 C + PixelShuffle(s); x4 = two x2."""

    def __init__(self, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale in (2, 4):
            for _ in range(scale // 2):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"unsupported scale x{scale}; use 2, 3 or 4")
        super().__init__(*layers)
