"""The paper's two-stage model: Stage I recovers the JPEG-compressed LR, Stage II upsamples it.

Splitting the tasks lets Stage I be supervised by the clean LR (the paper's first L1 term), so
Stage II sees an input close to what a clean-trained SR model expects.
"""

from __future__ import annotations

import torch
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


class TwoStage(nn.Module):
    """Stage I (width ``stage1_feats``) then s-LWSR Stage II (width ``stage2_feats``).

    ``forward(x)`` returns ``(recovered_lr, sr)`` so the training loss can supervise both.
    """

    def __init__(self, scale: int = 4, stage1_feats: int = 32, stage2_feats: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.stage1 = JPEGRecovery(stage1_feats)
        self.stage2 = SLWSR(scale=scale, n_feats=stage2_feats)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recovered = self.stage1(x)
        return recovered, self.stage2(recovered)
