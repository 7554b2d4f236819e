"""How this process's C allocator treats freed memory.

Every forward pass allocates its large feature maps (about 10 MB each for a 480x320 image in
bf16) and frees them again, as does every training step. With glibc's defaults, much of that
memory goes back to the operating system when it is freed and is faulted in again, one 4 KiB
page at a time, when the next tensor takes it; each fault costs microseconds under a
hypervisor. :func:`keep_freed_memory` asks glibc to keep freed memory for reuse instead (a
high trim threshold, a fixed mmap threshold so that the large tensors come from the heap, and
a top pad so that the heap grows in large steps). ``benchmarks/page_faults.py`` counts the
faults and times both settings (``benchmarks/page_faults.md``). Peak memory stays about the
same; what changes is that the process keeps its peak until it exits.

It changes the whole process, so the library never calls it on import: the command line, the
server and the Ray workers do, for the processes they own. ``JPEGSR_KEEP_MEMORY=0`` turns it
off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt(3) parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 1 << 30  # keep up to 1 GiB of free memory at the top of the heap
TOP_PAD = 256 << 20  # grow the heap 256 MiB beyond each request (untouched pages cost no RSS)
MMAP_THRESHOLD = 32 << 20  # glibc's largest: below it, allocations come from the reusable heap

ENV = "JPEGSR_KEEP_MEMORY"

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (see the module's text); whether it
    did. ``False`` (and nothing changed) off glibc, or where ``JPEGSR_KEEP_MEMORY=0``. Safe to
    call more than once."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1").strip() in ("0", "false", "no", "off"):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    path = ctypes.util.find_library("c")
    if path is None:
        return False
    try:
        mallopt = ctypes.CDLL(path).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    _applied = all(mallopt(param, value) == 1 for param, value in settings)
    return _applied
