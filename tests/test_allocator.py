"""jpegsr.allocator: freed memory is reused instead of faulted in again, only where asked."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from jpegsr import cli

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Rounds of large allocations of changing sizes, freed again, the way a forward pass uses
# memory; prints whether keep_freed_memory took effect and each round's minor page faults.
PATTERN = """
import json, resource
import torch
from jpegsr.allocator import keep_freed_memory

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

kept = keep_freed_memory()
counts = []
for _ in range(6):
    f0 = faults()
    for mib in (12, 4, 20, 8):
        tensors = [torch.ones(mib << 20, dtype=torch.uint8) for _ in range(4)]
        small = torch.ones(1 << 16, dtype=torch.uint8)
        del tensors
    counts.append(faults() - f0)
print(json.dumps({"kept": kept, "faults": counts}))
"""


def run_pattern(keep: str) -> dict:
    env = {**os.environ, "JPEGSR_KEEP_MEMORY": keep}
    out = subprocess.run(
        [sys.executable, "-c", PATTERN], check=True, capture_output=True, text=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="keep_freed_memory acts on glibc's malloc only")
def test_kept_memory_is_reused_without_page_faults() -> None:
    default, kept = run_pattern("0"), run_pattern("1")
    assert default["kept"] is False and kept["kept"] is True
    steady_default, steady_kept = sum(default["faults"][2:]), sum(kept["faults"][2:])
    # glibc's default gives memory back and faults it in again on every round (each round
    # touches 176 MiB, 45,000 pages); kept, the rounds after the first reuse the same memory
    assert steady_default > 4 * 5000
    assert steady_kept < steady_default / 10


def test_off_switch_and_repeat_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from jpegsr import allocator

    monkeypatch.setattr(allocator, "_applied", None)
    monkeypatch.setenv(allocator.ENV, "0")
    assert allocator.keep_freed_memory() is False
    monkeypatch.setenv(allocator.ENV, "1")
    assert allocator.keep_freed_memory() is False  # decided once per process


def test_the_command_line_keeps_freed_memory(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(1) or True)
    assert cli.main(["models"]) == 0
    assert calls == [1]
    assert "two_stage_slwsr32" in capsys.readouterr().out
