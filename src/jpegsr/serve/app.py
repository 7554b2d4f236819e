"""The ASGI app behind `jpegsr serve`: the page, `POST /api/upscale`, health and models.

Each upload is read up to the byte limit (413 beyond), written to a private temporary folder
that is removed after the request, and loaded with :func:`jpegsr.imageio.load_image`, so the
orientation, ICC, EXIF, alpha, mode and pixel-limit policies are the CLI's own; the result is
written by :func:`jpegsr.imageio.save_image` into the same folder and returned. Inference runs
in a pool of ``workers`` threads behind a bounded queue: a request that finds the queue full
gets 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image

from jpegsr import __version__, inference
from jpegsr.defaults import AUTO_MODEL, DEFAULT_MAX_PIXELS
from jpegsr.imageio import (
    ImageLoadError,
    ImageSaveError,
    load_image,
    save_image,
)
from jpegsr.weights_io import WeightsError, choose_shipped, shipped_models

STATIC = Path(__file__).parent / "static"
FORMATS = {"png": "image/png", "webp": "image/webp"}
NOT_AN_IMAGE = ("not an image", "corrupt", "truncated", "empty file", "unsupported image mode")


@dataclass(frozen=True)
class ServeOptions:
    model: str = AUTO_MODEL
    max_upload_mb: float = 20.0
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    workers: int = 1  # images upscaled at once
    queue: int = 8  # requests waiting or running beyond which 503 is returned
    threads: int | None = None  # torch threads (None: torch's default)


class _Jobs:
    """A bounded queue in front of a thread pool: ``admit`` refuses when it is full."""

    def __init__(self, workers: int, limit: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jpegsr")
        self.limit = limit
        self.active = 0
        self.lock = threading.Lock()

    def admit(self) -> bool:
        with self.lock:
            if self.active >= self.limit:
                return False
            self.active += 1
            return True

    def done(self) -> None:
        with self.lock:
            self.active -= 1


def _status_for(message: str) -> int:
    """415 for what is not a readable image, 400 for a readable one that is refused."""
    return 415 if any(m in message for m in NOT_AN_IMAGE) else 400


def _upscale_file(
    src: Path, folder: Path, model: str, quality: int | None, fmt: str, method: str,
    opt: ServeOptions, size: dict[str, float | int | None] | None = None,
    output_quality: int | None = None,
) -> tuple[Path, dict[str, str]]:  # fmt: skip
    """Load, upscale (or bicubic) and save one upload; returns the output and its headers."""
    image = load_image(src, opt.max_pixels)
    detected = image.jpeg_quality
    loaded = inference.resolve_model(model, quality if quality is not None else detected)
    s = loaded.descriptor.scale
    size = size or {}
    h, w = image.pixels.shape[:2]
    target = inference.output_size(h, w, s, size.get("outscale"), size.get("width"),
                                   size.get("height"))  # fmt: skip
    if method == "bicubic":
        pixels8 = image.pixels if image.pixels.dtype == np.uint8 else (image.pixels // 257)
        pixels8 = pixels8.astype(np.uint8)
        mode = "L" if pixels8.shape[2] == 1 else "RGB"
        im = Image.fromarray(pixels8[:, :, 0] if mode == "L" else pixels8, mode)
        pixels = np.asarray(im.resize((target[1], target[0]), Image.Resampling.BICUBIC))
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        alpha = image.alpha if image.alpha is None or image.alpha.dtype == np.uint8 else None
        alpha = None if alpha is None else inference.upscale_alpha(alpha, s, target)
        used = "bicubic"
    else:
        pixels, alpha = inference.upscale_image(loaded, image.pixels, image.alpha, **size)
        used = loaded.source and Path(loaded.source).stem
    out = folder / f"result.{fmt}"
    notes = save_image(out, pixels, alpha, image.icc_profile, image.exif, format=fmt,
                       xmp=image.xmp, quality=output_quality)  # fmt: skip
    headers = {
        "X-JPEG-Quality": "unknown" if detected is None else str(detected),
        "X-Model": str(used),
        "X-Input-Size": f"{image.width}x{image.height}",
        "X-Output-Size": f"{pixels.shape[1]}x{pixels.shape[0]}",
        "X-Warnings": "; ".join([*image.warnings, *notes])[:500],
    }
    return out, headers


def create_app(opt: ServeOptions | None = None) -> FastAPI:
    opt = opt or ServeOptions()
    app = FastAPI(title="jpegsr", version=__version__,
                  description="x4 super-resolution of heavily compressed JPEGs")  # fmt: skip
    jobs = _Jobs(opt.workers, max(1, opt.queue))
    max_bytes = int(opt.max_upload_mb * 2**20)
    if opt.threads:
        import torch

        torch.set_num_threads(opt.threads)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "version": __version__, "busy": jobs.active, "queue": jobs.limit}

    @app.get("/api/models")
    def models_() -> dict:
        return {"default": opt.model, "shipped": shipped_models(),
                "auto": {str(q): choose_shipped(q) for q in (10, 20, 30, 50, 75, 90)}}  # fmt: skip

    @app.post("/api/upscale", responses={200: {"content": {"image/png": {}, "image/webp": {}}}})
    async def upscale(
        file: Annotated[UploadFile, File(description="the image to upscale")],
        model: Annotated[str | None, Form(description="shipped model name, or auto")] = None,
        format: Annotated[str, Form(description="png or webp")] = "png",
        quality: Annotated[int | None, Form(description="JPEG quality for the model")] = None,
        method: Annotated[str, Form(description="jpegsr, or bicubic (to compare)")] = "jpegsr",
        outscale: Annotated[float | None, Form(description="output scale, 0 < S <= 4")] = None,
        width: Annotated[int | None, Form(description="output width, aspect kept")] = None,
        height: Annotated[int | None, Form(description="output height, aspect kept")] = None,
        output_quality: Annotated[
            int | None, Form(description="WebP encoder quality, 1..100 (default 95)")
        ] = None,
    ) -> Response:
        if format not in FORMATS:
            raise HTTPException(400, f"format must be png or webp, not {format!r}")
        if method not in ("jpegsr", "bicubic"):
            raise HTTPException(400, f"method must be jpegsr or bicubic, not {method!r}")
        if quality is not None and not 1 <= quality <= 100:
            raise HTTPException(400, f"quality must be in 1..100, not {quality}")
        if output_quality is not None and (format == "png" or not 1 <= output_quality <= 100):
            raise HTTPException(400, "output_quality (1..100) applies to webp; png is lossless")
        if not jobs.admit():
            return JSONResponse({"detail": "busy: too many images in progress, retry shortly"},
                                status_code=503, headers={"Retry-After": "2"})  # fmt: skip
        try:
            with tempfile.TemporaryDirectory(prefix="jpegsr-serve-") as tmp:
                folder = Path(tmp)
                src = folder / "upload"
                size = 0
                with src.open("wb") as f:
                    while chunk := await file.read(2**20):
                        size += len(chunk)
                        if size > max_bytes:
                            raise HTTPException(413, f"file too large (over {opt.max_upload_mb:g}"
                                                     " MB, the server's limit)")  # fmt: skip
                        f.write(chunk)
                loop = asyncio.get_running_loop()
                try:
                    out, headers = await loop.run_in_executor(
                        jobs.pool, _upscale_file, src, folder, model or opt.model, quality,
                        format, method, opt,
                        {"outscale": outscale, "width": width, "height": height},
                        output_quality,
                    )  # fmt: skip
                except ImageLoadError as exc:
                    raise HTTPException(_status_for(str(exc)), str(exc)) from None
                except (ImageSaveError, WeightsError, ValueError) as exc:
                    raise HTTPException(400, str(exc).splitlines()[0]) from None
                scale = f"x{outscale:g}" if outscale else "x4"  # the size asked for, in the name
                if width or height:
                    scale = headers["X-Output-Size"]
                name = Path(file.filename or "image").stem + f"_{scale}.{format}"
                headers["Content-Disposition"] = f'attachment; filename="{_ascii(name)}"'
                return Response(out.read_bytes(), media_type=FORMATS[format], headers=headers)
        finally:
            jobs.done()

    return app


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)
