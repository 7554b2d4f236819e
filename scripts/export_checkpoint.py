"""Export a run's last checkpoint as weights when the run was cut short (marked partial).

    python scripts/export_checkpoint.py CONFIG.yaml [--out-dir DIR]

writes ``<out_dir>/<name>/model.safetensors`` from ``checkpoint.pt`` beside it: the EMA
weights when the run keeps an EMA, with the iteration count and wall time reached.
"""

from __future__ import annotations

import argparse

import torch

from jpegsr import models
from jpegsr.config import load_config
from jpegsr.train import describe_spans, machine_description, run_metadata
from jpegsr.weights_io import save_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--out-dir", help="the runs folder, if not the config's out_dir")
    args = ap.parse_args()
    config = load_config(args.config, {"out_dir": args.out_dir} if args.out_dir else None)
    run = config.run_dir
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = models.build(config.model, config.data.scale)
    model.load_state_dict(state.get("ema", state["model"]))
    # the machines the checkpoint records; older checkpoints: this one (it runs where it ran)
    spans = state.get("machines") or [[machine_description(config), 0, state["iteration"]]]
    machine = describe_spans(spans)
    extra = run_metadata(config, state["iteration"], state["wall_seconds"], machine)
    extra["partial"] = f"true (schedule of {config.iterations} iterations)"
    save_weights(model, config.model, config.data.scale, run / "model.safetensors", extra=extra)
    print(f"exported iteration {state['iteration']} to {run / 'model.safetensors'}")


if __name__ == "__main__":
    main()
