"""DnCNN (Zhang et al., 2017): the blind Gaussian denoiser behind the paper's "(M)" rows.

The paper pre-denoises the compressed input with "the default" denoiser of MATLAB 2018, whose
``denoisingNetwork('DnCNN')`` is this network (DnCNN-B: blind Gaussian noise, grayscale):

* conv3x3 (1 -> 64) + ReLU;
* ``depth - 2`` layers of conv3x3 (64 -> 64, no bias) + batch norm + ReLU;
* conv3x3 (64 -> 1): the estimated noise, subtracted from the input (residual learning).

20 layers and 64 features as MATLAB's: 667,073 trainable parameters and 2,304 batch-norm
statistics. It works on one channel; colour images go through it channel by channel
(:mod:`jpegsr.denoisers`), as MathWorks' own colour example does.
"""

from __future__ import annotations

import torch
from torch import nn

from jpegsr.models.blocks import conv3x3


class DnCNN(nn.Module):
    """Residual denoiser on single-channel images in [0, 1]: returns ``x - noise(x)``."""

    def __init__(self, scale: int = 1, depth: int = 20, features: int = 64) -> None:
        super().__init__()
        if scale != 1:
            raise ValueError(f"DnCNN is a denoiser (x1), not an x{scale} model")
        layers: list[nn.Module] = [conv3x3(1, features), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [
                conv3x3(features, features, bias=False),
                nn.BatchNorm2d(features),
                nn.ReLU(inplace=True),
            ]
        layers.append(conv3x3(features, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)
