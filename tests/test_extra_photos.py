"""The extra training photos: the committed manifest, licence checks, checked downscaling."""

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jpegsr.data import DataError, read_rgb
from jpegsr.extra_photos import (
    ALLOWED_LICENCES,
    Photo,
    load_manifest,
    prepare,
    shrink_factor,
)

REPO = Path(__file__).resolve().parents[1]
ENTRY = """
  - id: one
    split: train
    package: pkg
    version: "1.0"
    path: usr/share/backgrounds/one.jpg
    licence: {licence}
    copyright: 2020, Somebody
    sha256: "{sha}"
"""


def test_committed_manifest_records_a_permitting_licence_per_photo():
    photos = load_manifest(REPO / "data" / "extra_photos.yaml")
    assert len(photos) == 36 and len({p.id for p in photos}) == 36
    assert sum(p.split == "holdout" for p in photos) == 7
    assert all(p.licence in ALLOWED_LICENCES and p.copyright for p in photos)
    assert all(len(p.sha256) == 64 and p.version for p in photos)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ENTRY.format(licence="CC-BY-NC-4.0", sha="0" * 64), "not one that permits use"),
        (ENTRY.format(licence="CC0-1.0", sha="0" * 64) + "    colour: red\n", "unknown keys"),
        (ENTRY.format(licence="CC0-1.0", sha="0" * 64).replace("train", "test"), "split"),
        (ENTRY.format(licence="CC0-1.0", sha="0" * 64) * 2, "repeated photo ids"),
        ("[not, a, mapping", "not a photo manifest"),
    ],
)
def test_manifest_refuses_bad_entries(tmp_path, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(text if text.startswith("[") else "photos:" + text)
    with pytest.raises(DataError, match=message):
        load_manifest(path)


def test_shrink_factor_is_at_least_two_and_bounds_the_long_side():
    assert shrink_factor(1600, 2560) == 2
    assert shrink_factor(2880, 5120) == 4
    assert shrink_factor(480, 640) == 2
    assert shrink_factor(3837, 2560) == 3


def test_prepare_checks_the_hash_and_writes_a_downscaled_png(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    src = tmp_path / "unpacked" / "pkg" / "usr/share/backgrounds/one.jpg"
    src.parent.mkdir(parents=True)
    src.write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    photo = Photo("one", "holdout", "pkg", "1.0", "usr/share/backgrounds/one.jpg", "CC0-1.0",
                  "2020, Somebody", sha)  # fmt: skip
    [dst] = prepare([photo], tmp_path / "unpacked", tmp_path / "out")
    assert dst == tmp_path / "out" / "holdout" / "one.png"
    assert read_rgb(dst).shape == (32, 48, 3)
    assert src.read_bytes() == buf.getvalue()  # the source is never touched
    wrong = Photo(**{**photo.__dict__, "sha256": "0" * 64})
    with pytest.raises(DataError, match="manifest says"):
        prepare([wrong], tmp_path / "unpacked", tmp_path / "out")
    with pytest.raises(DataError, match="not found"):
        prepare([photo], tmp_path / "elsewhere", tmp_path / "out")
