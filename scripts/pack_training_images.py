"""Pack training image folders as lossless WebP, small enough to travel to a lent GPU machine.

    python scripts/pack_training_images.py ../shared/datasets/train/BSD200 \
        ../shared/datasets/train/T91 -o .gpu_data

writes ``.gpu_data/<folder name>/<stem>.webp`` (about 60% of the PNG/BMP bytes) and
checks every file decodes to exactly the source pixels. Names keep their order, so
``split_train_val`` holds out the same images from the packed folders as from the originals.
The output folder is git-ignored: dataset images never enter the repository.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("-o", "--out", type=Path, default=Path(".gpu_data"))
    args = parser.parse_args()
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
        total = (tree + size) / 2**20
        print(f"with the tracked files ({tree / 2**20:.1f} MiB): {total:.1f} MiB would travel "
              f"to a lent GPU, of the {TRAVEL_LIMIT_MIB} MiB allowed")  # fmt: skip
        if total > TRAVEL_LIMIT_MIB:
            print("too much to carry to a lent GPU: pack fewer folders", file=sys.stderr)
            return 1
    return 0


TRAVEL_LIMIT_MIB = 64  # the device tool's cap on the working tree plus carried paths


def tracked_bytes() -> int | None:
    """Bytes of the repository's tracked files (None outside a git checkout)."""
    import subprocess

    run = subprocess.run(["git", "ls-files", "-z"], capture_output=True)
    if run.returncode != 0:
        return None
    files = [Path(f) for f in run.stdout.decode().split("\0") if f]
    return sum(f.stat().st_size for f in files if f.is_file())


if __name__ == "__main__":
    sys.exit(main())
