"""How long writing the result takes: Pillow's PNG encoder at each zlib level on the 1920x1280
output of the speed benchmarks' 480x320 test image (``jpegsr.perf.speed_test_image``), and
the file size it gives.

    python benchmarks/png_encode.py      # writes benchmarks/png_encode.{json,md}; about 1 min

Chooses nothing by itself: ``jpegsr.imageio.PNG_COMPRESS_LEVEL`` cites this table.
"""

from __future__ import annotations

import io
import json
import platform
from pathlib import Path

from PIL import Image

import jpegsr
from jpegsr.imageio import PNG_COMPRESS_LEVEL
from jpegsr.inference import upscale_array
from jpegsr.perf import cpu_model, speed_test_image, timed
from jpegsr.weights_io import choose_shipped

OUT = Path(__file__).resolve().parent
LEVELS = range(1, 10)


def encoded(image: Image.Image, level: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=level)
    return buffer.getvalue()


def main() -> None:
    model = choose_shipped(20)
    result = Image.fromarray(upscale_array(jpegsr.load_model(model), speed_test_image()))
    rows = [{"level": level, "seconds": timed(lambda lv=level: encoded(result, lv), 5),
             "kib": len(encoded(result, level)) / 1024} for level in LEVELS]  # fmt: skip
    ref = next(r for r in rows if r["level"] == 6)  # Pillow's default
    res = {"machine": {"cpu": cpu_model(), "python": platform.python_version()},
           "pillow": Image.__version__, "image": f"{result.width}x{result.height} RGB, "
           f"the {model} result of benchmarks/speed.py's test image", "rows": rows,
           "shipped_level": PNG_COMPRESS_LEVEL,
           "command": "python benchmarks/png_encode.py"}  # fmt: skip
    (OUT / "png_encode.json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        "# Writing the result: PNG encoding time and size per zlib level",
        "",
        f"{res['image']}; Pillow {res['pillow']}, {res['machine']['cpu']}. Command: "
        f"`{res['command']}`. Median of 5 encodes. jpegsr writes level "
        f"**{PNG_COMPRESS_LEVEL}** (`jpegsr.imageio.PNG_COMPRESS_LEVEL`); 6 is Pillow's default.",
        "",
        "| level | encode (s) | speed vs level 6 | size (KiB) | size vs level 6 |",
        "|---|---|---|---|---|",
        *[
            f"| {r['level']}{' (jpegsr)' if r['level'] == PNG_COMPRESS_LEVEL else ''} | "
            f"{r['seconds']:.3f} | {ref['seconds'] / r['seconds']:.2f}x | {r['kib']:.0f} | "
            f"{r['kib'] / ref['kib'] - 1:+.1%} |"
            for r in rows
        ],  # fmt: skip
    ]
    (OUT / "png_encode.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
