"""`jpegsr upscale --engine ray` (issue #18) against a real Ray cluster started here.

The cluster is a head and one more worker node (``ray start``, one CPU each, on 127.0.0.1,
its own temp folder and ports), started once for the module and stopped at its end. The
inputs are 20 small JPEGs of several qualities (so ``--model auto`` chooses per file) and two
bad files; the reference is the same command with ``--engine local``, run in this process.
Without the ray extra the cluster tests are skipped, unless ``JPEGSR_REQUIRE_RAY`` is set
(``.ci/run``): then they fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import jpegsr.inference as up
from jpegsr.batch import FAILED, OK, BatchOptions, process_file
from jpegsr.cli import main
from jpegsr.models import ModelDescriptor
from jpegsr.ray_engine import TEST_DELAY_ENV, TEST_PID_DIR_ENV
from jpegsr.weights_io import LoadedModel

HAVE_RAY = importlib.util.find_spec("ray") is not None
if not HAVE_RAY and os.environ.get("JPEGSR_REQUIRE_RAY"):
    pytest.fail("the ray extra is required here (.ci/run installs it)", pytrace=False)
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="needs the ray extra: pip install -e '.[ray]'")

GOOD = 20
BAD = ("bad_text.jpg", "bad_truncated.jpg")  # a text file named .jpg, half a JPEG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sessions(sids: set[int]) -> list[int]:
    """Processes in these sessions: every process of a cluster whose ``ray start`` was run
    in a new session (raylets, GCS, agents and the workers they start)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) in sids and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A head plus one worker node on 127.0.0.1; yields the head's address.

    Stopped by signalling the processes of the two sessions started here, not ``ray stop``,
    which stops every Ray process of the user on the machine, other clusters included."""
    if not HAVE_RAY:
        pytest.skip("needs the ray extra")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    temp = tempfile.mkdtemp(prefix="jpegsr-ray-")  # short: Ray's socket paths live under it
    port = _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats",
              f"--dashboard-agent-listen-port={_free_port()}"]  # fmt: skip
    head = [ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false",
            f"--ray-client-server-port={_free_port()}", f"--temp-dir={temp}", *common]  # fmt: skip
    worker = [ray_cli, "start", f"--address=127.0.0.1:{port}", *common]
    # no token authentication, whatever Ray finds in ~/.ray: for the nodes and the drivers
    auth_mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    sids: set[int] = set()
    try:
        for cmd in (head, worker):
            proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)  # fmt: skip
            sids.add(proc.pid)
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out[-3000:]
        yield f"127.0.0.1:{port}"
    finally:
        for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            for pid in _sessions(sids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.time() + wait
            while _sessions(sids) and time.time() < deadline:
                time.sleep(0.1)
        if auth_mode is None:
            del os.environ["RAY_AUTH_MODE"]
        else:
            os.environ["RAY_AUTH_MODE"] = auth_mode
        assert not _sessions(sids), "the test cluster did not stop"
        shutil.rmtree(temp, ignore_errors=True)


def _smooth(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients plus a little noise: a photo-like tiny image."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 7 + yy * 3 + seed * 11) % 256, (xx * 2 + seed) % 256, (yy * 5) % 256], -1)
    noise = np.random.default_rng(seed).integers(-10, 10, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def _run_main(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _file_lines(stderr: str) -> list[str]:
    """The command's own lines (Ray prints lines of its own on stderr too)."""
    return [line for line in stderr.splitlines() if line.startswith("jpegsr: ")]


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Path, Path, list[str]]:
    """(inputs, outputs of --engine local, its per-file lines): 20 JPEGs and 2 bad files."""
    root = tmp_path_factory.mktemp("batch")
    src = root / "in"
    src.mkdir()
    for i in range(GOOD):
        quality = (10, 20, 30, 50, 90)[i % 5]
        Image.fromarray(_smooth(16, 24, i)).save(src / f"img{i:02d}.jpg", quality=quality)
    (src / "bad_text.jpg").write_text("not a JPEG at all")
    whole = (src / "img00.jpg").read_bytes()
    (src / "bad_truncated.jpg").write_bytes(whole[: len(whole) // 2])
    code, out, err = _run_main("upscale", str(src), "-o", str(root / "local"))
    assert code == 1 and f"{GOOD} upscaled, {len(BAD)} failed" in out, err
    lines = _file_lines(err)
    assert len(lines) == len(BAD) and all(name in err for name in BAD)
    return src, root / "local", lines


def _ray_cli(
    *argv: str, env: dict[str, str] | None = None, **popen: object
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "jpegsr.cli", "upscale", *argv, "--engine", "ray"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **popen)  # fmt: skip


def _assert_same_outputs(out: Path, local: Path) -> None:
    """Every good file written once, byte for byte the local engine's; no temporaries."""
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in local.iterdir())
    for ref in local.iterdir():
        assert (out / ref.name).read_bytes() == ref.read_bytes(), ref.name


@needs_ray
def test_ray_equals_local_byte_for_byte(cluster, batch, tmp_path):
    src, local, local_lines = batch
    out = tmp_path / "ray"
    proc = _ray_cli(str(src), "-o", str(out), "--ray-address", cluster, "--actors", "2")
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 1, stderr[-3000:]
    assert f"jpegsr: {GOOD} upscaled, {len(BAD)} failed, 0 skipped" in stdout, stderr[-3000:]
    assert _file_lines(stderr) == local_lines  # one line per bad file, as the local engine
    assert "Traceback" not in stderr
    _assert_same_outputs(out, local)


@needs_ray
def test_killed_actor_still_writes_every_file_once(cluster, batch, tmp_path):
    src, local, local_lines = batch
    out, pids = tmp_path / "ray", tmp_path / "pids"
    pids.mkdir()
    hooks = {TEST_PID_DIR_ENV: str(pids), TEST_DELAY_ENV: "0.3"}
    proc = _ray_cli(str(src), "-o", str(out), "--ray-address", cluster, "--actors", "2", env=hooks)
    victim, deadline = None, time.time() + 120
    while victim is None and time.time() < deadline and proc.poll() is None:
        for pid_file in pids.glob("*.pid"):  # an actor that has written its second output
            if len(pid_file.read_text().splitlines()) >= 2:
                victim = int(pid_file.stem)
                break
        time.sleep(0.02)
    assert victim is not None, "no actor got as far as two outputs"
    os.kill(victim, signal.SIGKILL)  # sleeping after a write, before returning its result
    written_before = len(list(out.glob("*.png")))
    stdout, stderr = proc.communicate(timeout=180)
    assert written_before < GOOD, "the kill must come in the middle of the batch"
    assert proc.returncode == 1, stderr[-3000:]
    # the item whose result was lost is run again and finds its own output: not "exists"
    assert f"jpegsr: {GOOD} upscaled, {len(BAD)} failed, 0 skipped" in stdout, stderr[-3000:]
    assert _file_lines(stderr) == local_lines
    assert len(list(pids.glob("*.pid"))) >= 3  # the killed actor was replaced
    _assert_same_outputs(out, local)  # no partial file under a final name, no temporary


@needs_ray
def test_skip_existing_finishes_only_what_is_missing(batch, tmp_path, monkeypatch):
    """Through the Python API, on a Ray instance the call starts here and stops after."""
    import ray

    from jpegsr.ray_engine import upscale_files_ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token written into ~/.ray
    src, local, _ = batch
    out = shutil.copytree(local, tmp_path / "out")
    missing = sorted(out.iterdir())[::4]
    for p in missing:
        p.unlink()
    (out / ".jpegsr-999999999-0badf00d.tmp").write_bytes(b"left by a killed run")
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()
            if not p.name.startswith(".")}  # fmt: skip
    lines: list[str] = []
    summary = upscale_files_ray([src], out, BatchOptions(skip_existing=True), actors=2,
                                log=lines.append)  # fmt: skip
    assert not ray.is_initialized()
    deadline = time.time() + 10
    while _ray_children() and time.time() < deadline:
        time.sleep(0.1)
    assert not _ray_children(), "the Ray instance started for the call is still running"
    assert len(summary.ok) == len(missing) and len(summary.skipped) == len(kept)
    assert sorted(p.name for _, p in summary.ok) == sorted(p.name for p in missing)
    assert len(summary.failed) == len(BAD) and summary.exit_code == 1
    assert len(lines) == len(BAD)
    for name, stat in kept.items():
        p = out / name
        assert (p.stat().st_ino, p.stat().st_mtime_ns) == stat, f"{name} was rewritten"
    _assert_same_outputs(out, local)


def _ray_children() -> list[int]:
    """This process's children that are Ray's own (GCS, raylet, their agents)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"ray" in cmdline:
            found.append(int(stat.parent.name))
    return found


@needs_ray
def test_too_many_actors_for_the_cluster_is_one_line(cluster, batch, tmp_path):
    src, _, _ = batch
    argv = ["upscale", str(src), "-o", str(tmp_path / "o"), "--engine", "ray"]
    argv += ["--ray-address", cluster, "--actors", "2", "--threads", "2"]
    code, out, err = _run_main(*argv)
    assert code == 2 and out == ""
    assert _file_lines(err) == [
        "jpegsr: the Ray cluster has 2 CPUs; the actors need 4 (--actors x --threads): use "
        "fewer actors or threads, or add nodes"
    ]
    assert not (tmp_path / "o").exists()  # nothing written, no folder left behind
    import ray

    assert not ray.is_initialized()  # disconnected, the cluster left running


@needs_ray
def test_nothing_listening_at_the_address_is_one_line(batch, tmp_path):
    src, _, _ = batch
    address = f"127.0.0.1:{_free_port()}"
    argv = ["upscale", str(src), "-o", str(tmp_path / "o"), "--engine", "ray"]
    code, out, err = _run_main(*argv, "--ray-address", address)
    assert code == 2 and out == ""
    refused = f"jpegsr: cannot reach a Ray cluster at {address}: Connection refused"
    assert err.splitlines() == [refused]
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- no cluster needed


def test_without_ray_the_engine_is_one_line_and_exit_2(batch, monkeypatch, tmp_path):
    src, _, _ = batch
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    code, out, err = _run_main("upscale", str(src), "-o", str(tmp_path / "o"), "--engine", "ray")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "jpegsr: --engine ray needs the ray extra (ray is missing): pip install 'jpegsr[ray]'"
    ]
    assert not (tmp_path / "o").exists()


def test_ray_flags_need_the_ray_engine(batch, tmp_path):
    src, _, _ = batch
    code, _, err = _run_main("upscale", str(src), "-o", str(tmp_path / "o"), "--actors", "2")
    assert code == 2 and err.splitlines() == ["jpegsr: --actors only applies to --engine ray"]


class Nearest(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=4, mode="nearest")


STANDIN = LoadedModel(Nearest().eval(), ModelDescriptor(name="nearest", scale=4), "test", {})


def test_rerun_of_an_item_accepts_only_its_own_output(tmp_path, monkeypatch):
    """What a retry after a dead actor sees: its output already there (the attempt that died
    wrote it) is done; anything else there is still refused."""
    monkeypatch.setattr(up, "resolve_model", lambda model, jpeg_quality=None: STANDIN)
    src = tmp_path / "a.jpg"
    Image.fromarray(_smooth(8, 8, 0)).save(src, quality=30)
    dst = tmp_path / "a.png"
    opt = BatchOptions(fmt="png")

    def run(again: bool):
        return process_file(src, dst, opt, [src], up.resolve_model, same_output_is_done=again)

    assert run(False).status == OK
    first = dst.read_bytes()
    assert run(False).status == FAILED  # the local engine's rule: never over an output
    again = run(True)
    assert again.status == OK and again.output == str(dst) and dst.read_bytes() == first
    dst.write_bytes(b"someone else's file")
    refused = run(True)
    assert refused.status == FAILED and "output exists" in refused.reason
    assert dst.read_bytes() == b"someone else's file"
    assert not list(tmp_path.glob(".jpegsr-*"))
