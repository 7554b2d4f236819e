"""Pack training image folders as lossless WebP, small enough to travel to a lent GPU machine.

    python scripts/pack_training_images.py ../shared/datasets/train/BSD200 \
        ../shared/datasets/train/T91 -o .gpu_data

writes ``.gpu_data/<folder name>/<stem>.webp`` (about two thirds of the PNG/BMP bytes) and
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
        Image.fromarray(pixels).save(tmp, format="WEBP", lossless=True, quality=100, method=0)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
