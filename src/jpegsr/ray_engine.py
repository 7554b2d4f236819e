"""``jpegsr upscale --engine ray``: the batch of files upscaled by a pool of Ray actors.

The policy is :mod:`jpegsr.batch`'s, shared rather than repeated. The driver (the process
that runs the command) does everything that happens before the per-file loop of the local
engine: it expands the inputs, checks that the model loads, prepares the output folder,
removes stale temporaries and plans every file (its output name; refused, skipped or to
do). Only the work items, (input path, output path) pairs, go to Ray: ``ray.data`` makes a
dataset of them and ``map_batches`` hands them to a fixed pool of actors. Each actor loads
the model once (``--model auto``: the model for each JPEG quality on its first use, then
cached) and runs :func:`jpegsr.batch.process_file` on each item, the local engine's own
per-file step (model choice per file, tiling, precision, metadata, atomic no-clobber
write). The driver reports each result through :meth:`jpegsr.batch.Batch.record`, in input
order, so the lines and the summary are the local engine's.

Paths must mean the same file on the driver and on every node (a shared file system); the
work items are plain strings, so other storage can be added later without changing them.

A dead actor (killed, out of memory, its node lost) is restarted and its unfinished item
run again, at most :data:`RETRIES` more times; an item whose actor dies every time is
reported as failed, the rest still done. An item run again may find its output already
written by the attempt that died after writing it: :func:`~jpegsr.batch.process_file` is
called with ``same_output_is_done``, so an output that appeared since planning and holds
exactly the bytes this attempt writes counts as done, while anything else there is refused
as "output exists" like in the local engine (nothing is ever replaced without
``--overwrite``). Writes are atomic, so a killed actor leaves at most a temporary, which the
driver removes when the run ends.

``ray`` is imported only here, and only when this engine runs: ``pip install 'jpegsr[ray]'``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from jpegsr.allocator import keep_freed_memory
from jpegsr.batch import (
    FAILED,
    OK,
    Batch,
    BatchOptions,
    FileResult,
    UpscaleSummary,
    hide_bar,
    model_picker,
    process_file,
)

RETRIES = 3  # times an item is run again after its actor died
MAX_BLOCKS = 10_000  # dataset blocks: one per work item, at most this many
# Test-only hooks (tests/test_ray.py), read on the driver and handed to the actors: a folder
# where each actor writes "<pid>.pid" once it is ready and then adds a line for each output it
# wrote, and seconds each actor sleeps after writing an output, before returning its result.
TEST_PID_DIR_ENV = "JPEGSR_TEST_RAY_PID_DIR"
TEST_DELAY_ENV = "JPEGSR_TEST_RAY_DELAY_S"


class RayEngineError(RuntimeError):
    """The cluster cannot run the batch: no connection or too few CPUs (``exit_code`` 2,
    nothing done), or the job stopped part way (1)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def missing_dependency() -> str | None:
    """The name of the package that ``--engine ray`` lacks, or None when Ray Data imports."""
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        return (exc.name or "ray").split(".")[0]
    return None


def upscale_files_ray(
    inputs: Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    options: BatchOptions | None = None,
    *,
    address: str | None = None,
    actors: int = 1,
    log: Callable[[str], None] | None = None,
    **fields: object,
) -> UpscaleSummary:
    """:func:`jpegsr.batch.upscale_files` with the files upscaled by ``actors`` Ray actors.

    ``address=None`` starts a local Ray instance for the call and stops it after; an address
    (``HOST:PORT`` of a running cluster's head) is connected to and disconnected from after,
    the cluster left running; a Ray connection the caller already made is used as it is.
    ``options.threads`` is the torch threads of each actor and the CPUs Ray reserves for it
    (default 1). Raises what :func:`~jpegsr.batch.upscale_files` raises, ``ImportError``
    without Ray, and :class:`RayEngineError` when the cluster cannot run the batch (the files
    finished before that are kept; ``skip_existing`` resumes).
    """
    if actors < 1:
        raise ValueError(f"actors must be >= 1, not {actors}")
    if address is not None:
        _check_reachable(address)
    batch = Batch(inputs, outdir, options, log, **fields)
    if not batch.files:
        return batch.summary
    opt = batch.options
    threads = opt.threads or 1
    model_picker(opt)(None)  # a model that cannot be loaded fails before any output
    batch.open()
    planned = [batch.plan(src) for src in batch.files]
    work = [  # absolute: an actor's working folder is not the driver's
        {"index": i, "source": os.path.abspath(src), "output": os.path.abspath(dst)}
        for i, (src, dst) in enumerate(zip(batch.files, planned, strict=True))
        if isinstance(dst, Path)
    ]
    results: dict[int, FileResult] = {}
    done = 0
    bar = tqdm(total=len(planned), file=sys.stderr, unit="img", disable=hide_bar(opt.progress))

    def report_ready() -> None:  # every result up to the first one still running, in order
        nonlocal done
        while done < len(planned):
            entry = planned[done]
            if isinstance(entry, Path):
                if done not in results:
                    return
                entry = results.pop(done)
            batch.record(entry)
            done += 1
            bar.update()

    try:
        report_ready()
        if work:
            actors = min(actors, len(work))  # an actor without a file would only load a model
            with _ray_session(address, actors * threads) as ray:
                try:
                    for index, status, reason, notes in _run(ray, work, opt, actors, threads):
                        output = str(planned[index]) if status != FAILED else ""
                        source = str(batch.files[index])
                        results[index] = FileResult(source, status, output, reason, notes)
                        report_ready()
                except Exception as exc:
                    if _is_ray_error(ray, exc):
                        left = sum(isinstance(p, Path) and i not in results
                                   for i, p in enumerate(planned) if i >= done)  # fmt: skip
                        raise RayEngineError(
                            f"the Ray job stopped ({_first_line(exc)}); {left} files not "
                            "done: run again with --skip-existing to finish",
                            exit_code=1,
                        ) from None
                    raise
        for i in range(done, len(planned)):  # items whose actor died every time
            if isinstance(planned[i], Path) and i not in results:
                results[i] = FileResult(
                    str(batch.files[i]),
                    FAILED,
                    reason=f"its Ray worker died {RETRIES + 1} times while upscaling it "
                    "(a crash, or out of memory: try a smaller --tile)",
                )
        report_ready()
    finally:
        bar.close()
        batch.remove_stale_temporaries()  # left by actors killed mid-write
        batch.finish()
    return batch.summary


class Upscaler:
    """A Ray Data actor: loads the model when it starts, then upscales the items it is given
    with :func:`jpegsr.batch.process_file`; returns one result row per item."""

    def __init__(
        self,
        options: BatchOptions,
        threads: int,
        pid_dir: str | None = None,
        delay_s: float = 0.0,
    ) -> None:
        keep_freed_memory()  # the actor's process is ours (see jpegsr.allocator)
        torch.set_num_threads(threads)
        self.options = options
        self.model_for = model_picker(options)
        self.model_for(None)  # loaded once per actor; other "auto" choices on first use
        self.delay_s = delay_s
        self.pid_file = Path(pid_dir, f"{os.getpid()}.pid") if pid_dir else None
        if self.pid_file is not None:  # test hook: which process to kill, and when
            self.pid_file.write_text("")

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {k: [] for k in ("index", "status", "reason", "warnings")}
        items = zip(batch["index"], batch["source"], batch["output"], strict=True)
        for index, source, output in items:
            src = Path(str(source))
            result = process_file(
                src, Path(str(output)), self.options, (src,), self.model_for,
                same_output_is_done=True,
            )  # fmt: skip
            if self.pid_file is not None and result.status == OK:  # test hook
                with self.pid_file.open("a") as f:
                    f.write(f"{output}\n")
            if self.delay_s:  # test hook: written, its result not yet returned
                time.sleep(self.delay_s)
            rows["index"].append(int(index))
            rows["status"].append(result.status)
            rows["reason"].append(result.reason)
            rows["warnings"].append(json.dumps(list(result.warnings)))
        return rows


def _run(
    ray: Any, work: list[dict[str, Any]], opt: BatchOptions, actors: int, threads: int
) -> Iterator[tuple[int, str, str, tuple[str, ...]]]:
    """(item index, status, reason, warnings) of every work item, as they finish; items
    whose actor died every time are missing."""
    pid_dir = os.environ.get(TEST_PID_DIR_ENV) or None
    delay_s = float(os.environ.get(TEST_DELAY_ENV) or 0)
    dataset = ray.data.from_items(work, override_num_blocks=min(len(work), MAX_BLOCKS))
    with warnings.catch_warnings():
        # Ray 2.60 has no named parameter for the two retry settings, only the deprecated
        # **ray_remote_args; without them an item that kills its actor is retried forever
        warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
        dataset = dataset.map_batches(
            Upscaler,
            fn_constructor_kwargs={
                "options": opt,
                "threads": threads,
                "pid_dir": pid_dir,
                "delay_s": delay_s,
            },
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=threads,
            max_restarts=-1,  # an actor that dies is replaced ...
            max_task_retries=RETRIES,  # ... and its item run again, this many times at most
        )
    for row in dataset.iter_rows():
        notes = tuple(json.loads(str(row["warnings"])))
        yield int(row["index"]), str(row["status"]), str(row["reason"]), notes


@contextlib.contextmanager
def _ray_session(address: str | None, cpus: int) -> Iterator[Any]:
    """Ray, connected (``address``) or started locally for the block, with Ray Data set up
    for a batch: no progress bars or log lines of its own, and a block whose actor died
    every time dropped (the driver reports its files) rather than ending the job. Settings
    are restored and a connection made here is closed when the block ends."""
    import ray
    import ray.data

    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        # Ray warns about deprecations of its own settings whenever it copies them
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="ray")
        if not ray.is_initialized():
            quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
            try:
                if address is None:
                    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, cpus),
                             include_dashboard=False, **quiet)  # fmt: skip
                else:
                    ray.init(address=address, **quiet)
            except Exception as exc:  # a wrong address, an unreachable or incompatible cluster
                where = f"at {address}" if address else "locally"
                raise RayEngineError(f"cannot start Ray {where}: {_first_line(exc)}") from None
            stack.callback(ray.shutdown)  # stops a local instance; disconnects from a cluster
        available = ray.cluster_resources().get("CPU", 0)
        if available < cpus:
            raise RayEngineError(
                f"the Ray cluster has {available:g} CPUs; the actors need {cpus} "
                "(--actors x --threads): use fewer actors or threads, or add nodes"
            )
        context = ray.data.DataContext.get_current()
        settings = {"enable_progress_bars": False, "print_on_execution_start": False,
                    "max_errored_blocks": -1}  # fmt: skip
        for name, value in settings.items():
            stack.callback(setattr, context, name, getattr(context, name))
            setattr(context, name, value)
        data_logger = logging.getLogger("ray.data")
        stack.callback(data_logger.setLevel, data_logger.level)
        data_logger.setLevel(logging.CRITICAL)
        yield ray


def _check_reachable(address: str) -> None:
    """Refuse a ``HOST:PORT`` where nothing listens at once (Ray itself retries for minutes);
    other address forms are left to Ray."""
    host, sep, port = address.rpartition(":")
    if "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise RayEngineError(f"cannot reach a Ray cluster at {address}: {reason}") from None


def _is_ray_error(ray: Any, exc: BaseException) -> bool:
    return isinstance(exc, ray.exceptions.RayError) or type(exc).__module__.startswith("ray.")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
