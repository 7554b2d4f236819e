"""Reading and writing image files: every input policy of the tool lives here.

The network only ever sees 8-bit RGB, so :func:`load_image` turns whatever Pillow opens into
8-bit pixels with 1 channel (grey) or 3 (colour), plus an optional separate alpha plane, and
keeps what the output file should carry on (ICC profile, EXIF). Policies, in one place:

* EXIF orientation is applied to the pixels and the tag is reset to 1, so viewers that honour
  it do not rotate the output a second time.
* Grey modes (``1``, ``L``, ``I;16``, ``I``, ``F``) stay one channel; ``LA`` is grey + alpha;
  ``RGBA`` and palette images with transparency are RGB + alpha; other palette images are RGB.
* 16-bit PNG and TIFF files (grey, RGB, RGBA) keep their 16 bits: the network runs in float
  and the result is rounded to 16 bits and written as a 16-bit PNG (OpenCV decodes and
  encodes them, Pillow having no 16-bit colour mode). Other deep samples are scaled to 8 bits
  (32-bit ``I`` as 0..65535, ``F`` as 0..1 when its maximum is at most 1, else 0..255).
* CMYK (and other colour modes) are converted to RGB by Pillow without colour management;
  an ICC profile whose colour space does not match the output (a CMYK profile, say) is
  dropped with a warning rather than attached to pixels it does not describe.
* Multi-frame files (animated GIF/WebP/PNG, MPO) give their first frame, with a warning.
* Images with more than ``max_pixels`` pixels are refused from the header, before any pixel
  is decoded (decompression-bomb guard); pass a larger ``max_pixels`` (or ``None``) to accept.
* Truncated files are errors: the whole image is decoded up front and Pillow's
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is never set here.

Every failure is an :class:`ImageLoadError` / :class:`ImageSaveError` whose message is one
line meant for the user.
"""

from __future__ import annotations

import io
import os
import secrets
import stat
import struct
import threading
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from jpegsr.defaults import DEFAULT_MAX_PIXELS
from jpegsr.degrade import estimate_jpeg_quality

# What a folder of images is made of, for upscaling and for training data alike.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm"}
)
SAVE_FORMATS = {"png": "PNG", "webp": "WEBP", "jpg": "JPEG", "jpeg": "JPEG"}
JPEG_QUALITY = 95
WEBP_QUALITY = 95
# zlib level of PNG outputs: 4 encodes a 1920x1280 result several times faster than Pillow's
# default 6 for a few percent more bytes (benchmarks/png_encode.md); at 6, encoding took longer
# than the upscale itself. The pixels are the same either way: PNG is lossless.
PNG_COMPRESS_LEVEL = 4

# Temporary outputs are ".jpegsr-<pid>-<hex>.tmp": short (a long output name must not make the
# temporary name too long) and owned by a process, so one left by a killed run can be told
# from one being written now (remove_stale_temporaries).
TEMP_PREFIX = ".jpegsr-"

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_NUMPY_TRANSPOSE = {
    Image.Transpose.FLIP_LEFT_RIGHT: lambda a: a[:, ::-1],
    Image.Transpose.ROTATE_180: lambda a: a[::-1, ::-1],
    Image.Transpose.FLIP_TOP_BOTTOM: lambda a: a[::-1],
    Image.Transpose.TRANSPOSE: lambda a: a.transpose(1, 0, 2),
    Image.Transpose.ROTATE_270: lambda a: np.rot90(a, -1),
    Image.Transpose.TRANSVERSE: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    Image.Transpose.ROTATE_90: lambda a: np.rot90(a, 1),
}
_GREY_MODES = {"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
# Image.MAX_IMAGE_PIXELS is process-global; it is changed only under this lock and restored.
_BOMB_LOCK = threading.Lock()


class ImageLoadError(ValueError):
    """An input that cannot be used; the message is one line for the user."""


class ImageSaveError(OSError):
    """An output that cannot be written; the message is one line for the user."""


@dataclass
class LoadedImage:
    """8-bit pixels ready for the network, plus what the output file should carry."""

    pixels: np.ndarray  # uint8 (uint16 from 16-bit PNG/TIFF), H x W x C with C in {1, 3}
    alpha: np.ndarray | None  # same dtype, H x W, or None when the source has no transparency
    icc_profile: bytes | None
    exif: bytes | None  # orientation already applied and reset to 1
    source_mode: str  # Pillow mode of the file, before conversion
    format: str | None  # Pillow format name of the file ("JPEG", "PNG", ...)
    warnings: list[str] = field(default_factory=list)
    jpeg_quality: int | None = None  # estimated from the file's quantisation tables
    xmp: bytes | None = None  # the XMP packet, carried to the output as it is

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def icc_colour_space(icc: bytes) -> str | None:
    """The data colour space of an ICC profile ("RGB", "GRAY", "CMYK", ...), from its header."""
    if len(icc) < 20:
        return None
    return icc[16:20].decode("ascii", "replace").strip()


def _to_8bit_grey(im: Image.Image) -> Image.Image:
    """Scale a 16/32-bit or float grey image to 8 bits (see module docstring for the ranges)."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        finite = a[np.isfinite(a)]
        if finite.size and finite.max() <= 1.0:
            a = a * 255.0
        a = np.nan_to_num(a, nan=0.0)
        out = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    else:
        a = np.clip(a.astype(np.int64), 0, 65535)
        out = ((a + 128) // 257).astype(np.uint8)
    return Image.fromarray(out, mode="L")


def image_to_arrays(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Any Pillow image as (uint8 H x W x C pixels with C in {1, 3}, alpha or None, warnings).

    No orientation is applied here: that is a property of files (see :func:`load_image`).
    """
    notes: list[str] = []
    mode = im.mode
    has_trns = "transparency" in im.info
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        notes.append(f"{mode} samples scaled to 8 bits")
        conv = _to_8bit_grey(im)
    elif mode == "1":
        conv = im.convert("L")
    elif mode == "L":
        conv = im.convert("LA") if has_trns else im
    elif mode in ("LA", "La"):
        conv = im.convert("LA")
    elif mode in ("P", "PA"):
        conv = im.convert("RGBA") if (mode == "PA" or has_trns) else im.convert("RGB")
    elif mode == "RGB":
        conv = im.convert("RGBA") if has_trns else im
    elif mode in ("RGBA", "RGBa"):
        conv = im.convert("RGBA")
    else:  # CMYK, YCbCr, RGBX, HSV, ...: plain Pillow conversion, no colour management
        try:
            conv = im.convert("RGB")
        except (ValueError, OSError) as exc:
            raise ImageLoadError(f"unsupported image mode {mode}: {_one_line(exc)}") from None
    arr = np.asarray(conv)
    if conv.mode == "L":
        return arr[:, :, None].copy(), None, notes
    if conv.mode == "LA":
        return arr[:, :, :1].copy(), arr[:, :, 1].copy(), notes
    if conv.mode == "RGBA":
        return arr[:, :, :3].copy(), arr[:, :, 3].copy(), notes
    return arr.copy(), None, notes


def max_bytes_for(max_pixels: int | None) -> int | None:
    """The file-size limit that goes with a pixel limit: 8 bytes a pixel (16-bit RGBA, the
    largest uncompressed layout read here) plus 1 MiB of headers and metadata."""
    return None if max_pixels is None else 8 * max_pixels + 2**20


def _read_limited(path: Path, max_bytes: int | None) -> bytes:
    """The file's bytes, refusing devices, FIFOs and sockets, and files over ``max_bytes``
    (checked from the size before reading, and again while reading a file that grows)."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError
    if not stat.S_ISREG(st.st_mode):
        raise ImageLoadError("not a regular file (a device, FIFO or socket)")
    if max_bytes is not None and st.st_size > max_bytes:
        raise ImageLoadError(
            f"file too large ({st.st_size} bytes, limit {max_bytes} with the pixel limit); "
            "raise --max-pixels if the file is trusted"
        )
    with open(path, "rb") as f:
        data = f.read() if max_bytes is None else f.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageLoadError(f"file grew past {max_bytes} bytes while being read")
    return data


def _open_checked(path: Path, max_pixels: int | None) -> tuple[Image.Image, bytes]:
    """Read the file and open it with Pillow, refusing bombs before decoding; returns the
    image and the file's bytes."""
    try:
        data = _read_limited(path, max_bytes_for(max_pixels))
    except FileNotFoundError:
        raise ImageLoadError("no such file") from None
    except IsADirectoryError:
        raise ImageLoadError("is a directory, not an image file") from None
    except PermissionError:
        raise ImageLoadError("permission denied (cannot read the file)") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read the file: {_one_line(exc)}") from None
    if not data:
        raise ImageLoadError("empty file (0 bytes)")
    with _BOMB_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        # Let Pillow's own guard fire at our limit too (it errors at twice the limit).
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise ImageLoadError(_too_many_pixels_message(None, max_pixels)) from None
        except UnidentifiedImageError:
            raise ImageLoadError("not an image, or a format Pillow cannot read") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageLoadError(f"corrupt image header: {_one_line(exc)}") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageLoadError(_too_many_pixels_message((width, height), max_pixels))
    return im, data


def _too_many_pixels_message(size: tuple[int, int] | None, max_pixels: int | None) -> str:
    what = f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels" if size else "too many pixels"
    return (
        f"image too large ({what}, limit {max_pixels}); "
        "raise the limit with --max-pixels if the file is trusted"
    )


def jpeg_quality(image: Image.Image) -> int | None:
    """A PIL JPEG's quality, estimated from its luminance quantisation table (else None)."""
    tables = getattr(image, "quantization", None)
    return estimate_jpeg_quality(tables[0]) if tables and 0 in tables else None


def load_image(path: str | Path, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image file as 8-bit pixels for the network, applying every input policy.

    ``max_pixels=None`` disables the decompression-bomb guard.
    """
    path = Path(path)
    im, data = _open_checked(path, max_pixels)
    notes: list[str] = []
    source_mode, fmt = im.mode, im.format
    try:
        n_frames = int(getattr(im, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError):
        n_frames = 1  # a broken later frame is irrelevant: only the first one is used
    try:
        if n_frames > 1:
            im.seek(0)
            notes.append(f"{n_frames} frames: only the first frame is upscaled")
        im.load()  # full decode now, so truncation and corruption surface here
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageLoadError(f"corrupt or truncated image: {_one_line(exc)}") from None
    except Image.DecompressionBombError:
        raise ImageLoadError(_too_many_pixels_message(im.size, max_pixels)) from None

    orientation, exif_bytes = exif_orientation(im, notes)
    deep = _sixteen_bit(im, data)
    if deep is not None:  # kept at 16 bits through the network and into a 16-bit PNG
        pixels, alpha = deep
    else:
        pixels, alpha, conv_notes = image_to_arrays(im)
        notes.extend(conv_notes)
    pixels, alpha = apply_orientation(pixels, alpha, orientation)

    icc = im.info.get("icc_profile") or None
    if icc is not None:
        space = icc_colour_space(icc)
        wanted = "GRAY" if pixels.shape[2] == 1 else "RGB"
        if space != wanted:
            notes.append(f"{space or 'unrecognised'} ICC profile dropped (output is {wanted})")
            icc = None
    return LoadedImage(
        jpeg_quality=jpeg_quality(im) if fmt == "JPEG" else None,
        pixels=np.ascontiguousarray(pixels),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        icc_profile=icc,
        exif=exif_bytes or None,
        source_mode=source_mode,
        format=fmt,
        warnings=notes,
        xmp=_xmp(im),
    )


def _is_sixteen_bit(im: Image.Image, data: bytes) -> bool:
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return True
    if im.format == "PNG":  # Pillow opens 16-bit colour PNGs as 8-bit RGB(A): read IHDR
        return len(data) > 24 and data[24] == 16
    if im.format == "TIFF":
        bits = getattr(im, "tag_v2", {}).get(258)
        return bits is not None and 16 in (bits if isinstance(bits, tuple) else (bits,))
    return False


def _sixteen_bit(im: Image.Image, data: bytes) -> tuple[np.ndarray, np.ndarray | None] | None:
    """(uint16 H x W x C pixels, uint16 alpha or None) of a 16-bit PNG or TIFF, else None.

    Pillow has no 16-bit colour mode, so OpenCV decodes these files; None (the 8-bit path)
    when it cannot."""
    if not _is_sixteen_bit(im, data):
        return None
    import cv2

    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16 or a.shape[:2] != (im.height, im.width):
        return None
    if a.ndim == 2:
        return a[:, :, None].copy(), None
    if a.shape[2] == 4:
        rgba = cv2.cvtColor(a, cv2.COLOR_BGRA2RGBA)
        return rgba[:, :, :3].copy(), rgba[:, :, 3].copy()
    if a.shape[2] == 3:
        return cv2.cvtColor(a, cv2.COLOR_BGR2RGB), None
    return None


def _xmp(im: Image.Image) -> bytes | None:
    """The XMP packet Pillow found (JPEG APP1, PNG iTXt, WebP XMP chunk), as bytes."""
    xmp = im.info.get("xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return xmp or None


def exif_orientation(im: Image.Image, notes: list[str]) -> tuple[int, bytes | None]:
    """(EXIF orientation, the EXIF to write with the upright result: orientation reset to 1).

    The one orientation policy of files (:func:`load_image`) and PIL images
    (:func:`jpegsr.upscale`). Unreadable EXIF is dropped with a note, never fatal.
    """
    exif_bytes = im.info.get("exif")
    orientation = 1
    try:
        exif = im.getexif()
        orientation = int(exif.get(_ORIENTATION_TAG, 1) or 1)
        if orientation != 1:
            exif[_ORIENTATION_TAG] = 1
            exif_bytes = exif.tobytes()
        elif exif_bytes is None and len(exif):
            exif_bytes = exif.tobytes()
    except Exception as exc:  # unreadable EXIF must not lose the image
        notes.append(f"EXIF unreadable, dropped: {_one_line(exc)}")
        exif_bytes, orientation = None, 1
    if isinstance(exif_bytes, str):
        exif_bytes = exif_bytes.encode("latin-1")
    return orientation, exif_bytes or None


def apply_orientation(
    pixels: np.ndarray, alpha: np.ndarray | None, orientation: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Turn pixels (and alpha) upright for an EXIF orientation (1..8)."""
    method = _TRANSPOSE.get(orientation)
    if method is None:
        return pixels, alpha
    pixels = _transpose(pixels, method)
    return pixels, None if alpha is None else _transpose(alpha[:, :, None], method)[:, :, 0]


def _transpose(a: np.ndarray, method: Image.Transpose) -> np.ndarray:
    """Apply a Pillow transpose to an H x W x C array (via Pillow for uint8, so it matches
    EXIF exactly; the same moves in NumPy for 16-bit pixels)."""
    if a.dtype != np.uint8:
        return np.ascontiguousarray(_NUMPY_TRANSPOSE[method](a))
    if a.shape[2] == 1:
        return np.array(Image.fromarray(a[:, :, 0], "L").transpose(method))[:, :, None]
    return np.array(Image.fromarray(a, "RGB").transpose(method))


def arrays_to_image(pixels: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """uint8 pixels (H x W, H x W x 1 or H x W x 3) and optional alpha as an L/LA/RGB/RGBA image."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"pixels must be uint8, not {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 2:
        if alpha is None:
            return Image.fromarray(np.ascontiguousarray(pixels), "L")
        return Image.fromarray(np.ascontiguousarray(np.stack([pixels, alpha], axis=2)), "LA")
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be H x W, H x W x 1 or H x W x 3, not {pixels.shape}")
    if alpha is None:
        return Image.fromarray(np.ascontiguousarray(pixels), "RGB")
    return Image.fromarray(np.ascontiguousarray(np.dstack([pixels, alpha])), "RGBA")


def _to_8bit(a: np.ndarray) -> np.ndarray:
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    icc: bytes | None,
    exif: bytes | None,
    xmp: bytes | None,
) -> bytes:
    """A 16-bit PNG (grey, RGB or RGBA) with ICC, EXIF and XMP chunks: OpenCV encodes the
    samples (Pillow has no 16-bit colour mode), the metadata chunks follow IHDR."""
    import cv2

    if pixels.shape[2] == 1:
        planes = pixels[:, :, 0] if alpha is None else np.dstack([pixels, pixels, pixels, alpha])
    else:
        planes = np.dstack([pixels, alpha]) if alpha is not None else pixels
    if planes.ndim == 3:
        planes = cv2.cvtColor(planes, cv2.COLOR_RGBA2BGRA if planes.shape[2] == 4
                              else cv2.COLOR_RGB2BGR)  # fmt: skip
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(planes))
    if not ok:
        raise ImageSaveError("cannot encode a 16-bit PNG")
    png = encoded.tobytes()
    chunks = b""
    if icc:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    if xmp:
        chunks += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, 13 bytes, CRC
    return png[:ihdr_end] + chunks + png[ihdr_end:]


def _flatten_on_white(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    p = pixels.reshape(alpha.shape + (-1,)).astype(np.float32)
    return np.clip(np.rint(p * a + 255.0 * (1.0 - a)), 0, 255).astype(np.uint8)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def save_image(
    path: str | Path,
    pixels: np.ndarray,
    alpha: np.ndarray | None = None,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    format: str | None = None,
    overwrite: bool = False,
    protect: Iterable[str | Path] = (),
    xmp: bytes | None = None,
    quality: int | None = None,
) -> list[str]:
    """Write an image atomically (temp file + ``os.replace``); returns warnings.

    ``quality`` (1..100) is the JPEG or WebP encoder's quality (default 95); PNG is lossless
    and takes none.

    Refuses an existing ``path`` unless ``overwrite``, and any path in ``protect`` (the inputs)
    even with ``overwrite``. JPEG has no alpha, so transparent pixels are flattened on white;
    WebP has no grey mode, so grey is written as RGB. ICC, EXIF and XMP are carried in all
    formats.
    """
    path = Path(path)
    notes: list[str] = []
    name = (format or path.suffix.lstrip(".")).lower()
    pil_format = SAVE_FORMATS.get(name)
    if pil_format is None:
        raise ImageSaveError(f"unsupported output format {name!r} (use png, webp or jpg)")
    if quality is not None and (pil_format == "PNG" or not 1 <= quality <= 100):
        raise ValueError("an output quality (1..100) applies to JPEG and WebP, not PNG")
    for p in protect:
        if _same_file(path, Path(p)):
            raise ImageSaveError("refusing to write over an input file")
    if not overwrite and path.exists():
        raise ImageSaveError("output exists (use --overwrite to replace it)")
    payload = None  # encoded bytes, when Pillow cannot write the image (16-bit colour)
    if pixels.dtype == np.uint16 and pil_format != "PNG":
        pixels = _to_8bit(pixels)
        alpha = None if alpha is None else _to_8bit(alpha)
        notes.append(f"{name.upper()} has no 16-bit samples: written as 8-bit (PNG keeps 16)")
    elif pixels.dtype == np.uint16:
        payload = _png16(pixels, alpha, icc_profile, exif, xmp)
    if pil_format == "JPEG" and alpha is not None:
        pixels, alpha = _flatten_on_white(pixels, alpha), None
        notes.append("JPEG has no transparency: alpha flattened on white")
    im = arrays_to_image(pixels, alpha) if payload is None else None
    if im is not None and pil_format == "WEBP" and im.mode in ("L", "LA"):
        im = im.convert("RGBA" if im.mode == "LA" else "RGB")
        if icc_profile is not None and icc_colour_space(icc_profile) != "RGB":
            icc_profile = None
            notes.append("WebP has no grey mode: grey ICC profile dropped")
    params: dict[str, object] = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if exif:
        params["exif"] = exif
    if xmp and pil_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
        params["pnginfo"] = info
    elif xmp:
        params["xmp"] = xmp
    if pil_format == "JPEG":
        params.update(quality=quality or JPEG_QUALITY, subsampling=0)
    elif pil_format == "WEBP":
        params.update(quality=quality or WEBP_QUALITY)
    elif pil_format == "PNG":
        params.update(compress_level=PNG_COMPRESS_LEVEL)

    folder = path.parent
    tmp = folder / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.tmp"
    try:
        # os.open applies the umask, so the result gets normal permissions (unlike mkstemp).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileNotFoundError:
        raise ImageSaveError(f"output folder does not exist: {folder}") from None
    except PermissionError:
        raise ImageSaveError(f"output folder is not writable: {folder}") from None
    except OSError as exc:
        raise ImageSaveError(f"cannot write in {folder}: {_one_line(exc)}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if payload is not None:
                f.write(payload)
            else:
                im.save(f, format=pil_format, **params)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _publish_no_clobber(tmp, path)
    except ImageSaveError:
        raise
    except (OSError, ValueError) as exc:
        raise ImageSaveError(f"cannot write {path.name}: {_one_line(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return notes


def _publish_no_clobber(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` without replacing a file that appeared meanwhile."""
    try:
        os.link(tmp, path)  # atomic and fails if ``path`` exists
    except FileExistsError:
        raise ImageSaveError("output exists (use --overwrite to replace it)") from None
    except OSError:  # filesystem without hard links: check, then replace
        if path.exists():
            raise ImageSaveError("output exists (use --overwrite to replace it)") from None
        os.replace(tmp, path)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete this tool's temporaries in ``folder`` whose writing process is gone (a run killed
    mid-write); returns how many. Temporaries of running processes are left alone."""
    removed = 0
    for tmp in folder.glob(f"{TEMP_PREFIX}*.tmp"):
        pid_text = tmp.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        try:
            tmp.unlink()
            removed += 1
        except OSError:
            pass
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True
