"""The extra training photos: the committed manifest, licence checks, checked downscaling."""

import functools
import hashlib
import http.server
import io
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jpegsr.data import DataError, read_rgb
from jpegsr.extra_photos import (
    ALLOWED_LICENCES,
    Photo,
    fetch,
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
    assert len(photos) == 50 and len({p.id for p in photos}) == 50
    assert sum(p.split == "holdout" for p in photos) == 10
    assert all(p.licence in ALLOWED_LICENCES and p.copyright for p in photos)
    assert all(len(p.sha256) == 64 and p.version for p in photos)
    # the packages bookworm's apt-get cannot download name their pinned .deb
    pinned = {p.package: p.deb_url for p in photos if p.deb_url}
    assert pinned == {
        "budgie-backgrounds": "http://deb.debian.org/debian/pool/main/b/budgie-backgrounds/"
        "budgie-backgrounds_3.0-1_all.deb"
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ENTRY.format(licence="CC-BY-NC-4.0", sha="0" * 64), "not one that permits use"),
        (ENTRY.format(licence="CC0-1.0", sha="0" * 64) + "    colour: red\n", "unknown keys"),
        (ENTRY.format(licence="CC0-1.0", sha="0" * 64).replace("train", "test"), "split"),
        (ENTRY.format(licence="CC0-1.0", sha="0" * 64) * 2, "repeated photo ids"),
        (
            ENTRY.format(licence="CC0-1.0", sha="0" * 64).replace("    path:", "    pth:"),
            r"missing or unknown keys \['path', 'pth'\]",
        ),
        (
            ENTRY.format(licence="CC0-1.0", sha="0" * 64) + "    deb_url: ftp://x/pkg.deb\n",
            "deb_url must be",
        ),
        ("[not, a, mapping", "not a photo manifest"),
    ],
)
def test_manifest_refuses_bad_entries(tmp_path, text, message):
    path = tmp_path / "m.yaml"
    path.write_text(text if text.startswith("[") else "photos:" + text)
    with pytest.raises(DataError, match=message):
        load_manifest(path)


def test_an_entry_may_pin_its_deb_and_the_key_stays_optional(tmp_path):
    path = tmp_path / "m.yaml"
    url = "http://deb.debian.org/debian/pool/main/p/pkg/pkg_1.0_all.deb"
    two = ENTRY.format(licence="CC0-1.0", sha="0" * 64)
    two += two.replace("id: one", "id: two") + f"    deb_url: {url}\n"
    path.write_text("photos:" + two)
    one, pinned = load_manifest(path)
    assert (one.deb_url, pinned.deb_url) == ("", url)


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


def test_fetch_downloads_a_pinned_deb_over_http_and_unpacks_it(tmp_path):
    """A real .deb (dpkg-deb --build) served on 127.0.0.1: fetch downloads and unpacks it."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    root = tmp_path / "build" / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: pkg\nVersion: 1.0\nArchitecture: all\nMaintainer: x <x@example.org>\n"
        "Description: test\n"
    )
    photo_path = root / "usr/share/backgrounds/one.png"
    photo_path.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(photo_path)
    served = tmp_path / "served"
    served.mkdir()
    subprocess.run(["dpkg-deb", "--build", str(root), str(served / "pkg_1.0_all.deb")],
                   check=True, capture_output=True)  # fmt: skip
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        photo = Photo("one", "train", "pkg", "1.0", "usr/share/backgrounds/one.png", "CC0-1.0",
                      "2020, Somebody", "0" * 64, deb_url=f"{base}/pkg_1.0_all.deb")  # fmt: skip
        unpacked = fetch([photo], tmp_path / "work")
        assert read_rgb(unpacked / "pkg" / photo.path)[0, 0].tolist() == [10, 20, 30]
        missing = Photo(**{**photo.__dict__, "package": "gone", "deb_url": f"{base}/gone.deb"})
        with pytest.raises(DataError, match="download of .*gone.deb failed"):
            fetch([missing], tmp_path / "work")
        assert not list((tmp_path / "work" / "debs").glob("*.part"))
    finally:
        server.shutdown()
        server.server_close()
