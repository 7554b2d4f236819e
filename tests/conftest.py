"""Shared by the test modules: loading a repository script (``scripts/``, ``benchmarks/``: not
package modules) as a module, to test its functions; running the command line in-process."""

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo_script() -> Callable[[str], ModuleType]:
    """``repo_script("benchmarks/machines.py")``: that file, loaded as a fresh module."""

    def load(relpath: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(Path(relpath).stem, REPO / relpath)
        assert spec is not None and spec.loader is not None, relpath
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture
def jpegsr_cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run ``jpegsr ARGS...`` in-process; returns (exit code, stdout, stderr)."""
    from jpegsr.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
