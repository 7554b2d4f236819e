"""RCAN (Zhang et al., 2018), reduced to a CPU-trainable size for the paper's baseline rows.

The architecture is RCAN's: residual groups of residual channel-attention blocks (RCAB) with
channel attention of reduction 16, a short skip around every group (after its trailing conv),
a long skip around the whole body (after its trailing conv), an EDSR pixel-shuffle upsampler,
and the DIV2K mean shift. Only the size is reduced, from 10 groups x 20 blocks x 64 features
(~15.6M parameters) to 5 groups x 5 blocks x 32 features (~0.6M): 56 3x3 convs at LR, about
the parameter count and per-pixel cost of s-LWSR32, so the baseline comparison is fair on a
small compute budget.
"""

from __future__ import annotations

import torch
from torch import nn

from jpegsr.models.blocks import MeanShift, Upsampler, conv3x3


class ChannelAttention(nn.Module):
    """Squeeze (global average) and excitation (1x1 C -> C/r -> C, sigmoid) channel gating."""

    def __init__(self, n_feats: int, reduction: int = 16) -> None:
        super().__init__()
        squeezed = max(1, n_feats // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(n_feats, squeezed, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, n_feats, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class RCAB(nn.Module):
    """Residual channel-attention block: conv, ReLU, conv, channel attention, identity skip."""

    def __init__(self, n_feats: int, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats),
            nn.ReLU(inplace=True),
            conv3x3(n_feats, n_feats),
            ChannelAttention(n_feats, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGroup(nn.Module):
    """RCABs then a conv, wrapped by the short skip connection."""

    def __init__(self, n_feats: int, n_blocks: int, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *(RCAB(n_feats, reduction) for _ in range(n_blocks)), conv3x3(n_feats, n_feats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(nn.Module):
    """RCAN with configurable depth and width (defaults: the reduced 5 x 5 x 32 baseline)."""

    def __init__(
        self,
        scale: int = 4,
        n_feats: int = 32,
        n_groups: int = 5,
        n_blocks: int = 5,
        reduction: int = 16,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = MeanShift(sign=-1)
        self.head = conv3x3(3, n_feats)
        self.body = nn.Sequential(
            *(ResidualGroup(n_feats, n_blocks, reduction) for _ in range(n_groups)),
            conv3x3(n_feats, n_feats),
        )
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv3x3(n_feats, 3))
        self.add_mean = MeanShift(sign=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(self.sub_mean(x))
        return self.add_mean(self.tail(head + self.body(head)))
