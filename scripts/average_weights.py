"""Average the parameters of runs fine-tuned from one starting point (a "model soup").

    python scripts/average_weights.py A.safetensors B.safetensors -o SOUP.safetensors

Runs that share an initialisation and differ only in later training tend to sit in one basin,
where their average is often at least as good as either, for no training cost. Validate the
result (``scripts/select_auto_models.py --evaluate``) before shipping it. The output keeps the
first file's metadata, with ``averaged_from`` naming the runs and the others' run, cost and
device under ``also1_``, ``also2_``... keys, which ``results/quality.md``'s training budget
counts (``jpegsr report quality``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from jpegsr import models
from jpegsr.weights_io import save_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    if len(args.weights) < 2:
        ap.error("give at least two weights files")
    metas = []
    for path in args.weights:
        with safe_open(str(path), framework="pt") as f:
            metas.append(dict(f.metadata() or {}))
    archs = {m.get("jpegsr_arch") for m in metas}
    if len(archs) != 1:
        ap.error(f"the files hold different architectures: {sorted(map(str, archs))}")
    states = [load_file(str(p)) for p in args.weights]
    if any(s.keys() != states[0].keys() for s in states):
        ap.error("the files hold different parameter sets")
    arch, scale = metas[0]["jpegsr_arch"], int(metas[0]["scale"])
    module = models.build(arch, scale)
    averaged = {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]}
    module.load_state_dict(averaged)
    extra = {k: v for k, v in metas[0].items() if k not in ("jpegsr_arch", "scale")}
    runs = [m.get("run", p.stem) for m, p in zip(metas, args.weights, strict=True)]
    extra["averaged_from"] = ",".join(runs)
    for i, m in enumerate(metas[1:], start=1):
        for key in ("run", "iterations", "wall_seconds", "machine", "device"):
            if key in m:
                extra[f"also{i}_{key}"] = m[key]
    save_weights(module, arch, scale, args.output, extra)
    print(f"wrote {args.output}: mean of {extra['averaged_from']}")


if __name__ == "__main__":
    main()
