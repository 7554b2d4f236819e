"""Keep an unfinished training run across sessions whose checkouts start fresh.

``runs/`` is git-ignored, so a long CPU run (a Table 1 row takes several sessions on a 2-core
machine) loses its checkpoint when the next session starts from a clean checkout. Parking
copies what exact resumption needs into ``parked/`` (tracked), unparking copies it back:

    python scripts/park_run.py park runs/table1_20k_cpu/two_stage_nocycle  # then git commit
    python scripts/park_run.py unpark          # -> runs/..., then jpegsr train CONFIG --resume
    python scripts/park_run.py unpark --drop   # also git rm the parked copy (then commit)

``park`` copies the run's ``checkpoint.pt`` (model, EMA, optimizer, iteration, wall time),
``config.yaml`` and its CSV logs to ``parked/<run path>/`` and stages them. ``unpark`` never
replaces a checkpoint that is as far along or further. A parked checkpoint is tracked, so it
travels to a lent GPU with the working tree (64 MiB cap): ``unpark --drop`` (and commit)
before a lease; ``pack_training_images.py`` leaves it out of its budget and says so.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
PARKED = "parked"
FILES = ("checkpoint.pt", "config.yaml", "train_log.csv", "val_log.csv")


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
    copied = []
    for name in FILES:
        if (run_dir / name).is_file():
            tmp = dest / (name + ".tmp")
            shutil.copy2(run_dir / name, tmp)
            tmp.replace(dest / name)
            copied.append(str((dest / name).relative_to(repo)))
    git(repo, "add", "-f", *copied)  # *.pt is ignored elsewhere
    at = iteration(dest / "checkpoint.pt")
    return f"parked {rel} at iteration {at}: commit {dest.relative_to(repo)}"


def unpark(repo: Path, drop: bool) -> list[str]:
    lines = []
    for checkpoint in sorted((repo / PARKED).rglob("checkpoint.pt")):
        src = checkpoint.parent
        rel = src.relative_to(repo / PARKED)
        dest = repo / rel
        parked_at = iteration(checkpoint)
        if (dest / "checkpoint.pt").is_file() and iteration(dest / "checkpoint.pt") >= parked_at:
            lines.append(f"kept {rel}: it is already at or past the parked iteration {parked_at}")
        else:
            dest.mkdir(parents=True, exist_ok=True)
            for name in FILES:
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
