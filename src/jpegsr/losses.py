"""The paper's three L1 losses: Stage I recovery, Stage II SR, and the cycle loss; and, off
unless ``loss.ssim`` is set, a fourth term of ours: 1 - SSIM on Y between SR and HR.
``loss.norm: l2`` measures the three terms as mean squared errors instead (ours, not the
paper's: PSNR scores the squared error).

The cycle loss downsamples the SR output with the same MATLAB-style bicubic used to make
the training data (:func:`jpegsr.degrade.imresize_torch`), so a perfect SR image whose
downscale equals the clean LR costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from jpegsr.config import LossConfig
from jpegsr.degrade import imresize_torch
from jpegsr.metrics import luma, ssim_map

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
DISTANCES: dict[str, Distance] = {"l1": F.l1_loss, "l2": F.mse_loss}


def cycle_loss(sr: torch.Tensor, lr: torch.Tensor, distance: Distance = F.l1_loss) -> torch.Tensor:
    """L1 (or another ``distance``) between bicubic_down(SR) and the clean LR."""
    return distance(imresize_torch(sr, tuple(lr.shape[-2:])), lr.float())


def ssim_y_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM on Y (the benchmark's window and constants) between SR and HR."""
    return 1 - ssim_map(luma(sr.float()), luma(hr.float())).mean()


class TwoStageLoss(nn.Module):
    """Weighted sum of the three L1 terms (mean squared errors with ``norm: l2``; and the SSIM
    term where its weight is set); returns the total and each (detached) term.

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
        distance = DISTANCES[w.norm]
        terms: dict[str, torch.Tensor] = {"sr": distance(sr.float(), hr.float())}
        if recovered is not None and w.recover:
            terms["recover"] = distance(recovered.float(), lr.float())
        if w.cycle:
            terms["cycle"] = cycle_loss(sr, lr, distance)
        if w.ssim:
            terms["ssim"] = ssim_y_loss(sr, hr)
        weight = {"sr": w.sr, "recover": w.recover, "cycle": w.cycle, "ssim": w.ssim}
        total = sum(weight[k] * v for k, v in terms.items())
        # detached tensors, not floats: reading a value would make a GPU wait every step
        return total, {k: v.detach() for k, v in terms.items()}
