"""Make the small, heavily compressed example JPEGs in examples/ from images that
scikit-image ships (public domain / CC0; see examples/README.md for provenance).

    python scripts/make_examples.py   # needs scikit-image (pip install -e ".[test]")
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

from jpegsr import degrade

EXAMPLES = {
    # name: (loader, downscale factor, JPEG quality)
    "astronaut": (data.astronaut, 2, 20),
    "coffee": (data.coffee, 2, 20),
    "chelsea": (data.chelsea, 2, 15),
}


def main() -> None:
    out = Path("examples")
    out.mkdir(exist_ok=True)
    for name, (load, factor, quality) in EXAMPLES.items():
        hr = degrade.crop_to_scale(load()[..., :3], factor)
        lr = degrade.imresize(hr, size=(hr.shape[0] // factor, hr.shape[1] // factor))
        path = out / f"{name}_q{quality}.jpg"
        path.write_bytes(degrade.jpeg_encode(lr, quality))
        with Image.open(path) as im:
            print(path, im.size, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
