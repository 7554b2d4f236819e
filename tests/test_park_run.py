"""scripts/park_run.py: a run's resumable state survives a fresh checkout through git."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def _tracked(repo: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.split()


def _run(repo: Path, at: int) -> Path:
    run = repo / "runs" / "table" / "row"
    run.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"iteration": at, "model": {"w": torch.full((3,), float(at))}}, run / "checkpoint.pt"
    )
    (run / "config.yaml").write_text("name: row\n")
    (run / "train_log.csv").write_text(f"iteration,loss\n{at},0.1\n")
    return run


def test_park_and_unpark_round_trip_through_git(tmp_path, capsys, monkeypatch, repo_script):
    park_run = repo_script("scripts/park_run.py")
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("runs/\n*.pt\n")
    run = _run(repo, 3000)
    original = torch.load(run / "checkpoint.pt", weights_only=True)["model"]

    assert park_run.main(["--repo", str(repo), "park", str(run)]) == 0
    assert "at iteration 3000" in capsys.readouterr().out
    assert set(_tracked(repo)) == {
        "parked/runs/table/row/checkpoint.safetensors",
        "parked/runs/table/row/config.yaml",
        "parked/runs/table/row/train_log.csv",
    }

    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "park"]
    subprocess.run(commit, cwd=repo, check=True)

    # a fresh checkout has no runs/: unpark restores the exact bytes
    for f in run.iterdir():
        f.unlink()
    run.rmdir()
    assert park_run.main(["--repo", str(repo), "unpark"]) == 0
    assert "unparked runs/table/row at iteration 3000" in capsys.readouterr().out
    restored = torch.load(run / "checkpoint.pt", weights_only=True)
    assert restored["iteration"] == 3000 and torch.equal(restored["model"]["w"], original["w"])
    assert (run / "train_log.csv").read_text() == "iteration,loss\n3000,0.1\n"

    # while parked, the checkpoint would travel to a lent GPU: packing counts it apart
    spec = importlib.util.spec_from_file_location("pack", REPO / "scripts/pack_training_images.py")
    pack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pack)
    monkeypatch.chdir(repo)
    parked = [f for f in (repo / "parked").rglob("*") if f.is_file()]
    assert pack.parked_bytes() == sum(f.stat().st_size for f in parked) > 0

    # a run that went further is never replaced by an older parked copy
    _run(repo, 4000)
    park_run.main(["--repo", str(repo), "unpark", "--drop"])
    out = capsys.readouterr().out
    assert "kept runs/table/row" in out and "dropped parked/runs/table/row" in out
    assert torch.load(run / "checkpoint.pt", weights_only=True)["iteration"] == 4000
    assert _tracked(repo) == [] and pack.parked_bytes() == 0


def test_park_refuses_a_run_without_checkpoint(tmp_path, repo_script):
    park_run = repo_script("scripts/park_run.py")
    (tmp_path / "runs" / "empty").mkdir(parents=True)
    with pytest.raises(SystemExit, match="has no checkpoint.pt to park"):
        park_run.main(["--repo", str(tmp_path), "park", str(tmp_path / "runs" / "empty")])
