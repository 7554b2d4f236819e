"""The paper's two-stage model: Stage I recovers the JPEG-compressed LR, Stage II upsamples it.

Splitting the tasks lets Stage I be supervised by the clean LR (the paper's first L1 term), so
Stage II sees an input close to what a clean-trained SR model expects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jpegsr.models.blocks import conv3x3
from jpegsr.models.slwsr import SLWSR, Body


class JPEGRecovery(nn.Module):
    """Stage I, "JPG recovering": the s-LWSR body without upsampling, predicting a residual.

    conv in, 26 residual blocks with the information pool, global skip, conv3x3 C -> 3; the
    output is ``input + residual``, so a zeroed last conv makes the stage an exact identity.
    """

    def __init__(self, n_feats: int = 32) -> None:
        super().__init__()
        self.body = Body(n_feats)
        self.tail = conv3x3(n_feats, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tail(self.body(x))


class CoarseRecovery(nn.Module):
    """A residual correction of Stage I's output computed at half resolution, for a wider view
    of JPEG's 8x8 blocks at a quarter of the pixels: pixel-unshuffle by 2 (3 -> 12 channels),
    an s-LWSR body, conv3x3 C -> 12, pixel-shuffle by 2, added to the input. Odd sizes are
    padded by edge replication and cropped back. The last conv starts at zero, so a model
    grown from a trained two-stage model starts as exactly that model."""

    def __init__(self, n_feats: int = 32) -> None:
        super().__init__()
        self.body = Body(n_feats, in_channels=12)
        self.tail = conv3x3(n_feats, 12)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if h % 2 or w % 2 else x
        coarse = F.pixel_unshuffle(padded, 2)
        residual = F.pixel_shuffle(self.tail(self.body(coarse)), 2)
        return x + residual[..., :h, :w]


class TwoStage(nn.Module):
    """Stage I (width ``stage1_feats``) then s-LWSR Stage II (width ``stage2_feats``).

    With ``coarse_feats`` > 0, Stage I ends with a :class:`CoarseRecovery` of that width (our
    extension, not the paper's). ``forward(x)`` returns ``(recovered_lr, sr)`` so the training
    loss can supervise both.
    """

    def __init__(
        self, scale: int = 4, stage1_feats: int = 32, stage2_feats: int = 32, coarse_feats: int = 0
    ) -> None:
        super().__init__()
        self.scale = scale
        self.stage1 = JPEGRecovery(stage1_feats)
        self.coarse = CoarseRecovery(coarse_feats) if coarse_feats else None
        self.stage2 = SLWSR(scale=scale, n_feats=stage2_feats)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recovered = self.stage1(x)
        if self.coarse is not None:
            recovered = self.coarse(recovered)
        return recovered, self.stage2(recovered)
