"""Grow a trained model into a larger architecture that starts as exactly the same function.

    python scripts/grow_model.py SOURCE ARCH -o OUT.safetensors

SOURCE: a shipped model's name or a weights file; ARCH: a registered architecture whose
parameters include every one of SOURCE's and whose added parts start as an identity (e.g.
``two_stage_slwsr32_coarse``, whose half-resolution refinement has a zeroed last conv). The
grown weights are the ``init_from`` of a training run; the script refuses when a parameter of
SOURCE has no place in ARCH or when the grown model's output differs from SOURCE's.
"""

from __future__ import annotations

import argparse
import sys

import torch

from jpegsr import models
from jpegsr.weights_io import load_model, save_weights


def grow(source: str, arch: str) -> tuple[torch.nn.Module, int, dict[str, str]]:
    loaded = load_model(source)
    scale = int(loaded.metadata["scale"])
    torch.manual_seed(0)
    grown = models.build(arch, scale)
    missing, unexpected = grown.load_state_dict(loaded.module.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"{arch} has no place for {len(unexpected)} of the source's tensors, "
                         f"e.g. {unexpected[0]}")  # fmt: skip
    if not missing:
        raise ValueError(f"{arch} adds nothing to {loaded.metadata['jpegsr_arch']}")
    grown.eval()
    x = torch.rand(1, 3, 21, 26, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pairs = zip(_outputs(grown(x)), _outputs(loaded.module(x)), strict=True)
        same = all(torch.equal(a, b) for a, b in pairs)
    if not same:
        raise ValueError(f"{arch} grown from {source} does not start as the same function")
    return grown, scale, {"grown_from": source, "grown_new_tensors": str(len(missing))}


def _outputs(out: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return out if isinstance(out, tuple) else (out,)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="shipped model name or weights file")
    parser.add_argument("arch", choices=models.names(), help="the larger architecture")
    parser.add_argument("-o", "--out", required=True, help="grown weights (.safetensors)")
    args = parser.parse_args(argv)
    try:
        grown, scale, extra = grow(args.source, args.arch)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    save_weights(grown, args.arch, scale, args.out, extra)
    print(f"{args.out}: {args.arch} grown from {extra['grown_from']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
