"""Extra clean training photos from Debian's wallpaper packages (issue #12's data lever).

``data/extra_photos.yaml`` names each photo: the package and version it ships in, its path
there, its SHA-256, its licence and copyright holder (from the package's debian/copyright),
and its split ("train": trained on whole; "holdout": never trained on, a validation check on
photos of the same kind). :func:`fetch` downloads the packages (``apt-get download`` from the
machine's Debian suites, or a pinned ``.deb`` from a Debian mirror where the entry names a
``deb_url``, for packages of a newer Debian release),
unpacks them (``dpkg -x``) and :func:`prepare` writes each photo, downscaled, to
``<out>/<split>/<id>.png``. The downscale (MATLAB-style bicubic with antialiasing, by an
integer factor of at least 2) removes the photos' own JPEG block traces, which the network
must not learn as "clean". No image enters the repository.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import yaml
from PIL import Image

from jpegsr.data import DataError, read_rgb
from jpegsr.degrade import imresize

MANIFEST = Path("data/extra_photos.yaml")
# licences that permit training on the photo and redistributing what is made from it
ALLOWED_LICENCES = frozenset({"CC0-1.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "GPL-2+"})
LONG_SIDE = 1600  # prepared photos' longer side is at most this (and the factor at least 2)
Split = Literal["train", "holdout"]


@dataclass(frozen=True)
class Photo:
    id: str
    split: Split
    package: str
    version: str
    path: str  # inside the package
    licence: str
    copyright: str
    sha256: str
    deb_url: str = ""  # where the .deb is, when apt-get's suites do not carry this version


OPTIONAL_KEYS = frozenset({"deb_url"})


def load_manifest(path: Path = MANIFEST) -> list[Photo]:
    """The manifest's photos; a DataError names the first bad entry."""
    try:
        entries = yaml.safe_load(path.read_text())["photos"]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise TypeError("photos is not a list of mappings")
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a photo manifest ({exc.__class__.__name__}: {exc})") from None
    names = {f.name for f in fields(Photo)}
    photos: list[Photo] = []
    for i, entry in enumerate(entries):
        where = f"{path}: photo {i + 1} ({entry.get('id', '?')})"
        odd = sorted((names - OPTIONAL_KEYS - set(entry)) | (set(entry) - names))
        if odd:
            raise DataError(f"{where}: missing or unknown keys {odd}")
        photo = Photo(**entry)
        if photo.licence not in ALLOWED_LICENCES:
            raise DataError(f"{where}: licence {photo.licence!r} is not one that permits use")
        if photo.deb_url and not (
            photo.deb_url.startswith(("http://", "https://")) and photo.deb_url.endswith(".deb")
        ):
            raise DataError(f"{where}: deb_url must be an http(s) URL of a .deb")
        if photo.split not in get_args(Split):
            raise DataError(f"{where}: split must be one of {get_args(Split)}")
        photos.append(photo)
    ids = [p.id for p in photos]
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: repeated photo ids")
    return photos


def shrink_factor(height: int, width: int) -> int:
    """The integer downscale factor: at least 2, and enough to bring the long side to LONG_SIDE."""
    return max(2, math.ceil(max(height, width) / LONG_SIDE))


def prepare_pixels(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    k = shrink_factor(h, w)
    return imresize(pixels, size=(h // k, w // k))


def prepare(photos: list[Photo], unpacked: Path, out: Path) -> list[Path]:
    """Check and downscale every photo from ``unpacked/<package>/<path>`` into ``out``."""
    written = []
    for photo in photos:
        src = unpacked / photo.package / photo.path
        if not src.is_file():
            raise DataError(f"{photo.id}: {src} not found (was {photo.package} unpacked?)")
        digest = hashlib.sha256(src.read_bytes()).hexdigest()
        if digest != photo.sha256:
            raise DataError(f"{photo.id}: {src} has SHA-256 {digest}, manifest says {photo.sha256}")
        dst = out / photo.split / f"{photo.id}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".tmp")
        Image.fromarray(prepare_pixels(read_rgb(src))).save(tmp, format="PNG")
        tmp.replace(dst)
        written.append(dst)
    return written


def fetch(photos: list[Photo], workdir: Path) -> Path:
    """Download and unpack every package the photos come from; returns the unpacked root."""
    workdir.mkdir(parents=True, exist_ok=True)
    unpacked = workdir / "unpacked"
    for package, version, url in sorted({(p.package, p.version, p.deb_url) for p in photos}):
        target = unpacked / package
        if target.is_dir():
            continue
        debs = workdir / "debs"
        debs.mkdir(exist_ok=True)
        if url:
            deb = _download(url, debs)
        else:
            _run(["apt-get", "download", f"{package}={version}"], cwd=debs)
            deb = next(debs.glob(f"{package}_*.deb"))
        tmp = unpacked / (package + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _run(["dpkg", "-x", str(deb), str(tmp)])
        tmp.replace(target)
    return unpacked


def _download(url: str, folder: Path) -> Path:
    """Download ``url`` into ``folder`` (atomically); a DataError names the URL on failure."""
    dst = folder / url.rsplit("/", 1)[-1]
    if dst.is_file():
        return dst
    tmp = dst.with_name(dst.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=120) as response, tmp.open("wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {exc}") from None
    tmp.replace(dst)
    return dst


def _run(command: list[str], cwd: Path | None = None) -> None:
    """Run a packaging command; its failure is a DataError with stderr's last line."""
    run = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"{' '.join(command)} failed: {last}")
