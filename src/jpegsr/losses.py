"""The paper's three L1 losses: Stage I recovery, Stage II SR, and the cycle loss; and, off
unless ``loss.ssim`` is set, a fourth term of ours: 1 - SSIM on Y between SR and HR.

The cycle loss downsamples the SR output with the same MATLAB-style bicubic used to make
the training data (:func:`jpegsr.degrade.imresize_torch`), so a perfect SR image whose
downscale equals the clean LR costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jpegsr.config import LossConfig
from jpegsr.degrade import imresize_torch
from jpegsr.metrics import luma, ssim_map


def cycle_loss(sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """L1 between bicubic_down(SR) and the clean LR."""
    return F.l1_loss(imresize_torch(sr, tuple(lr.shape[-2:])), lr.float())


def ssim_y_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM on Y (the benchmark's window and constants) between SR and HR."""
    return 1 - ssim_map(luma(sr.float()), luma(hr.float())).mean()


class TwoStageLoss(nn.Module):
    """Weighted sum of the three L1 terms (and the SSIM term where its weight is set); returns
    the total and each (detached) term.

    ``recovered`` may be None (single-stage models): the recovery term is then skipped.
    """

    def __init__(self, weights: LossConfig | None = None) -> None:
        super().__init__()
        self.weights = weights or LossConfig()

    def forward(
        self,
        recovered: torch.Tensor | None,
        sr: torch.Tensor,
        lr: torch.Tensor,
        hr: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        w = self.weights
        terms: dict[str, torch.Tensor] = {"sr": F.l1_loss(sr.float(), hr.float())}
        if recovered is not None and w.recover:
            terms["recover"] = F.l1_loss(recovered.float(), lr.float())
        if w.cycle:
            terms["cycle"] = cycle_loss(sr, lr)
        if w.ssim:
            terms["ssim"] = ssim_y_loss(sr, hr)
        weight = {"sr": w.sr, "recover": w.recover, "cycle": w.cycle, "ssim": w.ssim}
        total = sum(weight[k] * v for k, v in terms.items())
        # detached tensors, not floats: reading a value would make a GPU wait every step
        return total, {k: v.detach() for k, v in terms.items()}
