"""Every derived table, built by one command from committed results: ``jpegsr report NAME``.

Each report is a ``build() -> {path: text}`` function that reads committed files only;
:func:`write` puts its texts in place atomically. ``all`` builds them in dependency order.
Nothing here measures anything: the measurements are `jpegsr benchmark` JSONs and weights
metadata, made by the commands each report names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jpegsr.reports import baselines, cards, curve, quality, readme, table1
from jpegsr.reports.common import write_atomic

REPORTS: dict[str, Callable[[], dict[Path, str]]] = {
    "baselines": baselines.build,
    "table1": table1.build,
    "quality": quality.build,
    "curve": curve.build,
    "cards": cards.build,  # the benchmark section of each shipped model's card
    "readme": readme.build,  # README's quality table and speed summary
}


def build(names: list[str]) -> dict[Path, str]:
    """The texts of the named reports ("all" for every one), in order."""
    chosen = list(REPORTS) if "all" in names else names
    unknown = [n for n in chosen if n not in REPORTS]
    if unknown:
        raise ValueError(f"unknown report(s) {unknown}; choose from {[*REPORTS, 'all']}")
    texts: dict[Path, str] = {}
    for name in chosen:
        texts.update(REPORTS[name]())
    return texts


def stale(texts: dict[Path, str]) -> list[Path]:
    """The files whose committed text differs from what the reports build."""
    return [p for p, t in texts.items() if not p.exists() or p.read_text() != t]


def write(texts: dict[Path, str]) -> list[Path]:
    """Write every text that changed (atomically); returns the paths written."""
    changed = stale(texts)
    for path in changed:
        write_atomic(path, texts[path])
    return changed
