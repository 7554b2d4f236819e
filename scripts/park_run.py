"""Keep an unfinished training run across sessions whose checkouts start fresh.

``runs/`` is git-ignored, so a long CPU run (a Table 1 row takes several sessions on a 2-core
machine) loses its checkpoint when the next session starts from a clean checkout. Parking
copies what exact resumption needs into ``parked/`` (tracked), unparking copies it back:

    python scripts/park_run.py park runs/table1_20k_cpu/two_stage_nocycle  # then git commit
    python scripts/park_run.py unpark          # -> runs/..., then jpegsr train CONFIG --resume
    python scripts/park_run.py unpark --drop   # also git rm the parked copy (then commit)

``park`` stores the run's ``checkpoint.pt`` (model, EMA, optimizer, iteration, wall time) as
``checkpoint.safetensors`` (tensors, with the rest as JSON metadata: nothing in git is a
pickle), copies ``config.yaml`` and its CSV logs to ``parked/<run path>/`` and stages them;
``unpark`` writes the identical ``checkpoint.pt`` back. ``unpark`` never
replaces a checkpoint that is as far along or further. A parked checkpoint is tracked, so it
travels to a lent GPU with the working tree (64 MiB cap): ``unpark --drop`` (and commit)
before a lease; ``pack_training_images.py`` leaves it out of its budget and says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from jpegsr.train import save_checkpoint  # torch.save, written atomically

REPO = Path(__file__).resolve().parent.parent
PARKED = "parked"
LOGS = ("config.yaml", "train_log.csv", "val_log.csv")
PARKED_CHECKPOINT = "checkpoint.safetensors"


def _split(value: object, tensors: dict[str, torch.Tensor]) -> object:
    """``value`` as JSON, each tensor replaced by its key in ``tensors``; dict keys keep their
    type (Adam's state is keyed by int)."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value.contiguous()
        return {"tensor": key}
    if isinstance(value, dict):
        return {"dict": [[k, _split(v, tensors)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return {type(value).__name__: [_split(v, tensors) for v in value]}
    return {"value": value}


def _join(node: dict, tensors: dict[str, torch.Tensor]) -> object:
    ((kind, body),) = node.items()
    if kind == "tensor":
        return tensors[body]
    if kind == "dict":
        return {k: _join(v, tensors) for k, v in body}
    if kind in ("list", "tuple"):
        items = [_join(v, tensors) for v in body]
        return items if kind == "list" else tuple(items)
    return body


def store_checkpoint(checkpoint: Path, out: Path) -> None:
    """A ``torch.save`` checkpoint as safetensors: its tensors, its structure as metadata."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = json.dumps(_split(state, tensors))
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"checkpoint": skeleton})
    tmp.replace(out)


def restore_checkpoint(stored: Path, out: Path) -> None:
    """The ``torch.save`` checkpoint :func:`store_checkpoint` stored."""
    from safetensors import safe_open

    with safe_open(str(stored), "pt") as f:
        skeleton = json.loads(f.metadata()["checkpoint"])
    save_checkpoint(out, _join(skeleton, load_file(str(stored))))


def parked_iteration(stored: Path) -> int:
    """The iteration a stored checkpoint reached, read from its metadata alone."""
    from safetensors import safe_open

    with safe_open(str(stored), "pt") as f:
        body = json.loads(f.metadata()["checkpoint"])["dict"]
    return int(next(v["value"] for k, v in body if k == "iteration"))


def iteration(checkpoint: Path) -> int:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return int(state["iteration"])


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, stdout=subprocess.DEVNULL)


def park(repo: Path, run_dir: Path) -> str:
    run_dir = run_dir.resolve()
    if not (run_dir / "checkpoint.pt").is_file():
        raise SystemExit(f"error: {run_dir} has no checkpoint.pt to park")
    try:
        rel = run_dir.relative_to(repo)
    except ValueError:
        raise SystemExit(f"error: {run_dir} is not inside {repo}") from None
    dest = repo / PARKED / rel
    dest.mkdir(parents=True, exist_ok=True)
    store_checkpoint(run_dir / "checkpoint.pt", dest / PARKED_CHECKPOINT)
    copied = [str((dest / PARKED_CHECKPOINT).relative_to(repo))]
    for name in LOGS:
        if (run_dir / name).is_file():
            tmp = dest / (name + ".tmp")
            shutil.copy2(run_dir / name, tmp)
            tmp.replace(dest / name)
            copied.append(str((dest / name).relative_to(repo)))
    git(repo, "add", "-f", *copied)
    at = parked_iteration(dest / PARKED_CHECKPOINT)
    return f"parked {rel} at iteration {at}: commit {dest.relative_to(repo)}"


def unpark(repo: Path, drop: bool) -> list[str]:
    lines = []
    for stored in sorted((repo / PARKED).rglob(PARKED_CHECKPOINT)):
        src = stored.parent
        rel = src.relative_to(repo / PARKED)
        dest = repo / rel
        parked_at = parked_iteration(stored)
        if (dest / "checkpoint.pt").is_file() and iteration(dest / "checkpoint.pt") >= parked_at:
            lines.append(f"kept {rel}: it is already at or past the parked iteration {parked_at}")
        else:
            dest.mkdir(parents=True, exist_ok=True)
            restore_checkpoint(stored, dest / "checkpoint.pt")
            for name in LOGS:
                if (src / name).is_file():
                    shutil.copy2(src / name, dest / name)
            lines.append(f"unparked {rel} at iteration {parked_at}")
        if drop:
            git(repo, "rm", "-r", "-q", str(src.relative_to(repo)))
            lines.append(f"dropped {src.relative_to(repo)} from git: commit the removal")
    return lines or ["nothing is parked"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("park", help="copy a run's resumable state into parked/ and stage it")
    p.add_argument("run_dir", type=Path)
    u = sub.add_parser("unpark", help="copy parked runs back to where they ran")
    u.add_argument("--drop", action="store_true", help="also git rm the parked copies")
    parser.add_argument("--repo", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    if args.command == "park":
        print(park(repo, args.run_dir if args.run_dir.is_absolute() else Path.cwd() / args.run_dir))
    else:
        print("\n".join(unpark(repo, args.drop)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
