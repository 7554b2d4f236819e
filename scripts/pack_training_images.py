"""Pack training image folders as lossless WebP, small enough to travel to a lent GPU machine.

    python scripts/pack_training_images.py ../shared/datasets/train/BSD200 \
        ../shared/datasets/train/T91 -o .gpu_data

writes ``.gpu_data/<folder name>/<stem>.webp`` (about 60% of the PNG/BMP bytes) and
checks every file decodes to exactly the source pixels. Names keep their order, so
``split_train_val`` holds out the same images from the packed folders as from the originals.
The output folder is git-ignored: dataset images never enter the repository.

When the extra photos must travel too and everything does not fit the cap:

    python scripts/pack_training_images.py ../shared/datasets/train/BSD200 \
        ../shared/datasets/train/T91 --extra .extra_photos/train --fit -o .gpu_photos

packs the ``--extra`` folders whole (into ``OUT/extra/<name>``) and, of the other folders,
only their *training* split (the 10 held-out images never travel), spread evenly over them,
as many as fit beside the tracked files under the cap. ``OUT/packed.txt`` lists what was
packed. A config training on such a pack sets ``val_count: 0``: its held-out images are
already gone (``configs/gpu/continuing_photos.yaml``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from jpegsr.data import list_images, read_rgb, split_train_val


def pack(folder: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    sources = list_images(folder)
    for src in sources:
        pixels = read_rgb(src)
        dst = out / f"{src.stem}.webp"
        tmp = dst.with_name(dst.name + ".tmp")
        # method 4: about 9% fewer bytes than method 0 for the same pixels (what travels to a
        # lent GPU is capped), at a few tenths of a second an image
        Image.fromarray(pixels).save(tmp, format="WEBP", lossless=True, quality=100, method=4)
        if not np.array_equal(read_rgb(tmp), pixels):
            raise SystemExit(f"{src}: WebP round trip is not lossless")
        tmp.replace(dst)
    packed = list_images(out)
    if [p.stem for p in packed] != [p.stem for p in sources]:
        raise SystemExit(f"{out}: packed names differ from {folder} (stale files?)")
    return len(sources)


def fit_evenly(paths: list[Path], budget: int) -> list[Path]:
    """The most of ``paths``, spread evenly over the list, whose files fit ``budget`` bytes."""
    n = len(paths)
    for k in range(n, 0, -1):
        chosen = [paths[int(i * n / k)] for i in range(k)]
        if sum(p.stat().st_size for p in chosen) <= budget:
            return chosen
    return []


def pack_fitted(folders: list[Path], extras: list[Path], out: Path) -> list[Path]:
    """Extras whole, then the training split of ``folders`` thinned evenly to fit the cap."""
    for extra in extras:
        pack(extra, out / "extra" / extra.name)
    packed = [p for e in extras for p in list_images(out / "extra" / e.name)]
    train, _held_out = split_train_val([p for f in folders for p in list_images(f)], 10)
    staged = out / ".staging"
    for folder in folders:
        pack(folder, staged / folder.name)
    candidates = [staged / p.parent.name / f"{p.stem}.webp" for p in train]
    tree = (tracked_bytes() or 0) - parked_bytes()  # a parked run is dropped before a lease
    budget = (TRAVEL_LIMIT_MIB * 2**20 - tree - 2**19  # 0.5 MiB spare
              - sum(p.stat().st_size for p in packed))  # fmt: skip
    kept = fit_evenly(candidates, budget)
    for path in kept:
        dst = out / path.parent.name / path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        path.replace(dst)
        packed.append(dst)
    shutil.rmtree(staged)
    beside = " beside the extras" if extras else ""
    print(f"training split: {len(kept)} of {len(train)} images fit{beside}")
    return packed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path(".gpu_data"))
    extra_help = "a folder trained whole (data.extra_train_dirs), packed whole"
    parser.add_argument("--extra", type=Path, action="append", default=[], help=extra_help)
    fit_help = "pack only the training split of FOLDERS, thinned to fit the cap"
    parser.add_argument("--fit", action="store_true", help=fit_help)
    args = parser.parse_args()
    parked = parked_bytes()
    if parked:  # left out of the budget below: the pack must not thin for a run set aside
        print(f"note: parked/ holds {parked / 2**20:.1f} MiB of a parked run, not counted "
              "here; before a lease: `python scripts/park_run.py unpark --drop` and commit, "
              "or it travels too and the carry exceeds the cap", file=sys.stderr)  # fmt: skip
    if args.fit:
        packed = pack_fitted(args.folders, args.extra, args.out)
        listing = args.out / "packed.txt"
        listing.write_text("".join(f"{p.relative_to(args.out)}\n" for p in packed))
    else:
        if args.extra:
            parser.error("--extra needs --fit")
        for folder in args.folders:
            n = pack(folder, args.out / folder.name)
            print(f"{folder} -> {args.out / folder.name}: {n} images")
        sources = [p for f in args.folders for p in list_images(f)]
        packed = [p for f in args.folders for p in list_images(args.out / f.name)]
        held_src = [p.stem for p in split_train_val(sources, 10)[1]]
        held_packed = [p.stem for p in split_train_val(packed, 10)[1]]
        if held_src != held_packed:
            print("held-out images differ between source and packed folders", file=sys.stderr)
            return 1
    size = sum(p.stat().st_size for p in packed)
    print(f"{len(packed)} images, {size / 2**20:.1f} MiB")
    tree = tracked_bytes()
    if tree is not None:
        tree -= parked
        total = (tree + size) / 2**20
        print(f"with the tracked files ({tree / 2**20:.1f} MiB): {total:.1f} MiB would travel "
              f"to a lent GPU, of the {TRAVEL_LIMIT_MIB} MiB allowed")  # fmt: skip
        if total > TRAVEL_LIMIT_MIB:
            print("too much to carry to a lent GPU: pack fewer folders", file=sys.stderr)
            return 1
    return 0


TRAVEL_LIMIT_MIB = 64  # the device tool's cap on the working tree plus carried paths


def tracked_files() -> list[Path] | None:
    """The repository's tracked files (None outside a git checkout)."""
    import subprocess

    run = subprocess.run(["git", "ls-files", "-z"], capture_output=True)
    if run.returncode != 0:
        return None
    return [Path(f) for f in run.stdout.decode().split("\0") if f]


def tracked_bytes() -> int | None:
    """Bytes of the repository's tracked files (None outside a git checkout)."""
    files = tracked_files()
    return None if files is None else sum(f.stat().st_size for f in files if f.is_file())


def parked_bytes() -> int:
    """Bytes of tracked runs parked by scripts/park_run.py (they would travel too)."""
    files = [f for f in tracked_files() or [] if f.parts[:1] == ("parked",)]
    return sum(f.stat().st_size for f in files if f.is_file())


if __name__ == "__main__":
    sys.exit(main())
