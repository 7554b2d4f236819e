"""D-DBPN (Haris et al., 2018), reduced to a CPU-trainable size for the paper's baseline rows.

The architecture is D-DBPN's: feature extraction (conv3x3 3 -> n0, conv1x1 n0 -> nR, PReLU
after each), then T stages of alternating up- and down-projection units with dense
connections (each unit is fed the outputs of all earlier units of the other kind, the
extracted features excepted; where there are several they are concatenated and fused by a
1x1 conv with PReLU), and a conv3x3 reconstruction
from the concatenation of all T HR feature maps. Projection units use the paper's kernels:
x4: 8x8, stride 4, padding 2; x2: 6x6, stride 2, padding 2; x3 (not in the paper, same
pattern): 7x7, stride 3, padding 2. Any input size works.

Only the size is reduced, from T=7, n0=256, nR=64 (~10M parameters at x4) to T=3, n0=128,
nR=24 (~0.56M at x4), about the parameter count and per-LR-pixel cost of s-LWSR32; T=3 keeps
the dense connections (a T=2 model would have none inside the projection chain).
"""

from __future__ import annotations

import torch
from torch import nn

# (kernel, stride, padding) of the projection convs per scale
PROJECTION = {2: (6, 2, 2), 3: (7, 3, 2), 4: (8, 4, 2)}


def _conv(cin: int, cout: int, k: int, s: int, p: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.PReLU())


def _deconv(cin: int, cout: int, k: int, s: int, p: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p), nn.PReLU())


class UpProjection(nn.Module):
    """LR -> HR, then back-projects the LR error: ``h0 + deconv(conv(h0) - l)``.

    With ``n_inputs > 1`` (dense D-DBPN unit) a 1x1 conv first fuses the concatenated inputs.
    """

    def __init__(self, n_feats: int, scale: int, n_inputs: int = 1) -> None:
        super().__init__()
        k, s, p = PROJECTION[scale]
        self.fuse = _conv(n_inputs * n_feats, n_feats, 1, 1, 0) if n_inputs > 1 else None
        self.up1 = _deconv(n_feats, n_feats, k, s, p)
        self.down = _conv(n_feats, n_feats, k, s, p)
        self.up2 = _deconv(n_feats, n_feats, k, s, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fuse is not None:
            x = self.fuse(x)
        h0 = self.up1(x)
        return h0 + self.up2(self.down(h0) - x)


class DownProjection(nn.Module):
    """HR -> LR, then back-projects the HR error: ``l0 + conv(deconv(l0) - h)``."""

    def __init__(self, n_feats: int, scale: int, n_inputs: int = 1) -> None:
        super().__init__()
        k, s, p = PROJECTION[scale]
        self.fuse = _conv(n_inputs * n_feats, n_feats, 1, 1, 0) if n_inputs > 1 else None
        self.down1 = _conv(n_feats, n_feats, k, s, p)
        self.up = _deconv(n_feats, n_feats, k, s, p)
        self.down2 = _conv(n_feats, n_feats, k, s, p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fuse is not None:
            x = self.fuse(x)
        l0 = self.down1(x)
        return l0 + self.down2(self.up(l0) - x)


class DBPN(nn.Module):
    """D-DBPN with T stages (T up units, T-1 down units); defaults are the reduced baseline."""

    def __init__(
        self, scale: int = 4, n_feats: int = 24, n_init_feats: int = 128, n_stages: int = 3
    ) -> None:
        super().__init__()
        if scale not in PROJECTION:
            raise ValueError(f"unsupported scale x{scale}; use one of {sorted(PROJECTION)}")
        if n_stages < 1:
            raise ValueError("n_stages must be >= 1")
        self.scale = scale
        self.features = nn.Sequential(
            _conv(3, n_init_feats, 3, 1, 1), _conv(n_init_feats, n_feats, 1, 1, 0)
        )
        self.ups = nn.ModuleList(
            UpProjection(n_feats, scale, n_inputs=max(1, t)) for t in range(n_stages)
        )
        self.downs = nn.ModuleList(
            DownProjection(n_feats, scale, n_inputs=t) for t in range(1, n_stages)
        )
        self.reconstruction = nn.Conv2d(n_stages * n_feats, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lows = [self.features(x)]
        highs: list[torch.Tensor] = []
        for t, up in enumerate(self.ups):
            # up unit t sees every LR map so far (dense); the first sees the features only
            highs.append(up(torch.cat(lows[1:], dim=1) if t > 0 else lows[0]))
            if t < len(self.downs):
                lows.append(self.downs[t](torch.cat(highs, dim=1)))
        return self.reconstruction(torch.cat(highs[::-1], dim=1))
