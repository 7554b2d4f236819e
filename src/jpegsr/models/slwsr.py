"""s-LWSR (Li et al., 2019): the super-lightweight SR network the paper uses for both stages.

The wiring follows the authors' reference code (``Sudo-Biao/s-LWSR``,
``Train/code/model/s-LWSR.py``) rather than only the figure, because the figure does not say
which tensors enter the information pool or how the two halves are mirrored:

* head: conv3x3 (3 -> C);
* first half: 14 residual blocks in groups of 3, 3, 3, 3, 2. Each group is fed the sum of the
  previous group's first and last block outputs (group 1 is fed the head output);
* information pool: ``concat(head, first block of groups 2..5, last block of group 5)`` --
  six C-channel tensors -- fused by a bias-free 1x1 conv (6C -> C), as in the reference code;
* second half: four groups of 3 residual blocks. Group k (k = 1..4) is fed
  ``conv1x1(concat(prev, 0.5 * mirror_k + 0.5 * pool))`` (2C -> C), where ``prev`` is the
  previous group's output (for k = 1 the last block of first-half group 5) and ``mirror_k`` is
  the last block output of first-half group ``5 - k``: the second half walks the first half
  back from its middle (group 5 feeds the second half directly), so 1 <-> 4, 2 <-> 3, 3 <-> 2,
  4 <-> 1;
* global skip: body output + head output;
* tail: EDSR-style pixel-shuffle upsampler, then conv3x3 (C -> 3).

26 residual blocks in all. At x4: s-LWSR16 has 143,731 parameters, s-LWSR32 571,107.
"""

from __future__ import annotations

import torch
from torch import nn

from jpegsr.models.blocks import ConcatConv1x1, MeanShift, ResBlock, Upsampler, conv3x3

FIRST_HALF_GROUPS = (3, 3, 3, 3, 2)
SECOND_HALF_GROUPS = (3, 3, 3, 3)


class FusionGroup(nn.Module):
    """Second-half group: a 1x1 conv fuses (previous output, mirrored skip + pool), then blocks."""

    def __init__(self, n_feats: int, n_blocks: int) -> None:
        super().__init__()
        self.fuse = ConcatConv1x1(2 * n_feats, n_feats)
        self.blocks = nn.Sequential(*(ResBlock(n_feats) for _ in range(n_blocks)))

    def forward(self, prev: torch.Tensor, mirror: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        side = 0.5 * mirror + 0.5 * pool
        return self.blocks(self.fuse([prev, side]))


class Body(nn.Module):
    """Head conv + 26 residual blocks + information pool + global skip (C channels out).

    Shared by Stage I (JPEG recovery, no upsampling) and Stage II (s-LWSR SR).
    """

    def __init__(self, n_feats: int, in_channels: int = 3) -> None:
        super().__init__()
        self.n_feats = n_feats
        self.head = conv3x3(in_channels, n_feats)
        self.first_half = nn.ModuleList(
            nn.ModuleList(ResBlock(n_feats) for _ in range(n)) for n in FIRST_HALF_GROUPS
        )
        # pool inputs: head, first blocks of groups 2..5, last block of group 5 (6 tensors)
        n_pool = 1 + len(FIRST_HALF_GROUPS)
        self.pool = ConcatConv1x1(n_pool * n_feats, n_feats, bias=False)
        self.second_half = nn.ModuleList(FusionGroup(n_feats, n) for n in SECOND_HALF_GROUPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        firsts: list[torch.Tensor] = []
        lasts: list[torch.Tensor] = []
        feed = head
        n_first = len(self.first_half)
        for g, group in enumerate(self.first_half):
            out = feed
            outs: list[torch.Tensor] = []
            for block in group:
                out = block(out)
                outs.append(out)
            firsts.append(outs[0])
            lasts.append(outs[-1])
            if g + 1 < n_first:  # the next group's input
                feed = outs[0] + outs[-1]

        pool = self.pool([head, *firsts[1:], lasts[-1]])

        out = lasts[-1]
        for k, group in enumerate(self.second_half):
            mirror = lasts[n_first - 2 - k]  # k=0 -> group 4, ..., k=3 -> group 1
            out = group(out, mirror, pool)
        return out + head


class SLWSR(nn.Module):
    """s-LWSR: :class:`Body` then a pixel-shuffle tail; the paper's Stage II (SR generating)."""

    def __init__(self, scale: int = 4, n_feats: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = MeanShift(sign=-1)
        self.body = Body(n_feats)
        self.tail = nn.Sequential(Upsampler(scale, n_feats), conv3x3(n_feats, 3))
        self.add_mean = MeanShift(sign=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_mean(self.tail(self.body(self.sub_mean(x))))
