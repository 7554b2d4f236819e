"""The choices and defaults ``jpegsr --help`` shows, in one module that imports nothing heavy.

The CLI's parser is built from these names alone, so ``--help`` and a mistyped option answer
without importing torch (seconds on a small CPU). Each module that owns an idea imports its
name from here; nowhere else spells the value.
"""

from __future__ import annotations

from pathlib import Path

AUTO_MODEL = "auto"  # pick a shipped model per input from its JPEG quality
PRECISIONS = ("auto", "fp32", "bf16")  # inference arithmetic; auto = bf16 where it is native
DEFAULT_QUALITY = 20  # the JPEG quality of the paper's main table
SCALES = (2, 3, 4)
# Refuse inputs above 25 megapixels by default: a x4 result of that is 400 megapixels
# (1.2 GB as 8-bit RGB), already far beyond the small JPEGs this tool is for.
DEFAULT_MAX_PIXELS = 25_000_000
DATASETS_ROOT = Path("../shared/datasets")  # validation/, train/ and benchmark/ sets
BENCHMARK_ROOT = DATASETS_ROOT / "benchmark"
DEFAULT_SETS = ("Set5", "Set14", "BSD100", "Urban100")
# the derived tables `jpegsr report` rebuilds, in build order (jpegsr.reports.REPORTS)
REPORT_NAMES = ("baselines", "table1", "quality", "curve", "cards", "readme")
