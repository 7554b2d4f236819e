"""Choosing between models: per-image Y-PSNR (and SSIM) on validation images and paired gains.

The validation images are Sun-Hays 80 (``validation/SunHays80`` of the data root: for choosing
only, never for training) and the 10 training images every config holds out; never the
benchmark sets. A candidate is compared with a reference image by image, so the scene-to-
scene spread cancels: the mean of the per-image differences and its standard error say
whether a gain is real. The shipping rule (issue #12): the gain at q=20 exceeds twice its
standard error and no quality drops by more than 0.02 dB. SSIM on Y is measured beside it and
its paired gains reported (issue #12's SSIM targets), but the rule is PSNR's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jpegsr import metrics
from jpegsr.data import DataError, list_images, read_rgb, split_train_val
from jpegsr.degrade import degrade
from jpegsr.inference import upscale_array
from jpegsr.weights_io import LoadedModel

QUALITIES = (10, 20, 30, 50)
SHIP_QUALITY = 20
SHIP_MIN_SE = 2.0  # the gain at SHIP_QUALITY must exceed this many standard errors
SHIP_MAX_DROP_DB = 0.02  # ... and no quality may drop by more than this
TRAIN_DIRS = ("train/BSD200", "train/T91")
HELD_OUT = 10  # the training images every config holds out (data.val_count)

Scores = dict[str, dict[str, float]]  # image name -> str(quality) -> Y-PSNR (or Y-SSIM)


@dataclass(frozen=True)
class ModelScores:
    psnr: Scores
    ssim: Scores


def validation_images(data_root: Path, images: Path | None = None) -> list[Path]:
    """Sun-Hays 80 plus the held-out training images, in a fixed order; or, given ``images``,
    the images of that folder (e.g. .extra_photos/holdout, the extra photos' own check)."""
    if images is not None:
        found = list_images(images)
        if not found:
            raise DataError(f"--images {images}: no images there")
        return found
    train = [p for d in TRAIN_DIRS for p in list_images(data_root / d)]
    return list_images(data_root / "validation" / "SunHays80") + split_train_val(train, HELD_OUT)[1]


def image_key(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def score(
    loaded: LoadedModel,
    paths: Sequence[Path],
    qualities: Sequence[int] = QUALITIES,
    on_image: Callable[[int], None] | None = None,
) -> ModelScores:
    """Y-PSNR and Y-SSIM (x4, border 4, fp32 inference) of ``loaded`` on every image at every
    quality."""
    out = ModelScores({}, {})
    for i, path in enumerate(paths):
        hr = read_rgb(path)
        psnr, ssim = {}, {}
        for q in qualities:
            lq, _, hr_crop = degrade(hr, 4, q)
            sr = upscale_array(loaded, lq, precision="fp32")
            psnr[str(q)] = float(metrics.psnr(sr, hr_crop, border=4))
            ssim[str(q)] = float(metrics.ssim(sr, hr_crop, border=4))
        out.psnr[image_key(path)], out.ssim[image_key(path)] = psnr, ssim
        if on_image:
            on_image(i)
    return out


@dataclass(frozen=True)
class PairedGain:
    quality: int
    mean_db: float  # candidate minus reference, averaged over images
    se_db: float  # standard error of that mean
    n: int

    @property
    def z(self) -> float:
        return self.mean_db / self.se_db if self.se_db > 0 else math.inf * np.sign(self.mean_db)


def paired_gains(
    candidate: Scores, reference: Scores, qualities: Sequence[int]
) -> list[PairedGain]:
    """Per-quality mean and standard error of the per-image difference (PSNR in dB; the same
    for SSIM scores, in SSIM units)."""
    images = sorted(set(candidate) & set(reference))
    if len(images) < 2:
        raise ValueError("need at least two images scored by both models")
    gains = []
    for q in qualities:
        d = np.array([candidate[i][str(q)] - reference[i][str(q)] for i in images])
        gains.append(
            PairedGain(q, float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), len(d))
        )
    return gains


def ship_verdict(gains: Sequence[PairedGain]) -> tuple[bool, str]:
    """Whether the candidate may replace the reference, and why (one line)."""
    by_q = {g.quality: g for g in gains}
    main = by_q.get(SHIP_QUALITY)
    if main is None:
        raise ValueError(f"no gain measured at q={SHIP_QUALITY}")
    drops = [g for g in gains if g.mean_db < -SHIP_MAX_DROP_DB]
    if drops:
        worst = min(drops, key=lambda g: g.mean_db)
        return False, f"drops {worst.mean_db:+.3f} dB at q={worst.quality}"
    if main.mean_db <= SHIP_MIN_SE * main.se_db:
        return False, (
            f"q={SHIP_QUALITY} gain {main.mean_db:+.4f} dB is not above {SHIP_MIN_SE:g} "
            f"standard errors ({SHIP_MIN_SE * main.se_db:.4f} dB)"
        )
    return True, f"q={SHIP_QUALITY} gain {main.mean_db:+.4f} dB = {main.z:.1f} standard errors"


# --- `jpegsr validate` ------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def scores_for(
    name_or_path: str,
    label: str,
    data_root: Path,
    out_dir: Path,
    progress: bool = True,
    images: Path | None = None,
    qualities: Sequence[int] = QUALITIES,
) -> ModelScores:
    """The model's per-image scores at (at least) ``qualities``: from ``out_dir/<label>.json``
    when it holds these very weights and images (and SSIM: older files hold PSNR only), else
    measured (minutes on a CPU) and written there. Qualities the file lacks are measured and
    added to it, so one file serves `jpegsr validate` (q 10/20/30/50) and the selection of
    ``--model auto`` (q 10..90) alike."""
    import json
    import sys

    from jpegsr.inference import BORDER
    from jpegsr.weights_io import load_model, resolve

    path = Path(resolve(name_or_path))
    paths = validation_images(data_root, images)
    keys = [image_key(p) for p in paths]
    cache = out_dir / f"{label}.json"
    sha = _sha256(path)
    saved = ModelScores({k: {} for k in keys}, {k: {} for k in keys})
    record = _read_scores(cache)
    if record is not None:
        # scores made before the mirrored border (BORDER) came in record none: 0
        same_code = record.get("inference_border", 0) == BORDER
        same = record.get("weights_sha256") == sha and list(record["scores"]) == keys
        if same and same_code and isinstance(record.get("ssim_scores"), dict):
            saved = ModelScores(record["scores"], record["ssim_scores"])
    missing = [q for q in qualities if any(str(q) not in saved.psnr[k] for k in keys)]
    if not missing:
        return saved
    loaded = load_model(path)

    def tick(i: int) -> None:
        if progress:
            print(f"\r{label}: {i + 1}/{len(paths)} images", end="", file=sys.stderr, flush=True)

    new = score(loaded, paths, missing, tick)
    if progress:
        print(file=sys.stderr)
    for k in keys:  # keep the file's qualities in ascending order
        saved.psnr[k] = dict(sorted({**saved.psnr[k], **new.psnr[k]}.items(), key=_by_quality))
        saved.ssim[k] = dict(sorted({**saved.ssim[k], **new.ssim[k]}.items(), key=_by_quality))
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "weights": str(name_or_path),
        "weights_sha256": sha,
        "inference_border": BORDER,
        "scores": saved.psnr,
        "ssim_scores": saved.ssim,
    }
    tmp = cache.with_name(cache.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(cache)
    return saved


def _read_scores(cache: Path) -> dict | None:
    """A scores file's record; None when there is none, or when it cannot be read as one (cut
    short, edited by hand): then, with a warning, the scores are measured again and the file
    rewritten whole, since everything in it derives from the weights and the images."""
    import json
    import warnings

    if not cache.is_file():
        return None
    try:
        record = json.loads(cache.read_text())
        if not isinstance(record, dict) or not isinstance(record.get("scores"), dict):
            raise ValueError("no per-image scores")
    except (ValueError, UnicodeDecodeError) as exc:
        warnings.warn(f"jpegsr: {cache}: unreadable scores ({exc}); measuring them again",
                      stacklevel=2)  # fmt: skip
        return None
    return record


def _by_quality(item: tuple[str, float]) -> int:
    return int(item[0])


def comparison_table(
    label: str, reference: str, gains: Sequence[PairedGain], ssim: Sequence[PairedGain] = ()
) -> str:
    lines = [
        f"{label} against {reference} on {gains[0].n} validation images (Y-PSNR, x4):",
        "| JPEG q | gain dB | standard error dB | gain / SE |",
        "|---|---|---|---|",
    ]
    lines += [f"| {g.quality} | {g.mean_db:+.4f} | {g.se_db:.4f} | {g.z:+.1f} |" for g in gains]
    if ssim:
        lines += ["Y-SSIM, the same images:", "| JPEG q | gain | standard error | gain / SE |",
                  "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {g.quality} | {g.mean_db:+.5f} | {g.se_db:.5f} | {g.z:+.1f} |" for g in ssim]
    ok, why = ship_verdict(gains)
    lines.append(f"ship rule: {'PASS' if ok else 'fail'}: {why}")
    return "\n".join(lines)


RESULTS = Path("results/validation")


def paired_result_path(candidate: str, reference: str, out: Path = RESULTS) -> Path:
    """Where `jpegsr validate --against` records a candidate's paired gains over a reference."""
    return out / f"{candidate}_vs_{reference}.json"


def validate_command(args) -> str:  # noqa: ANN001 - argparse namespace
    """The `jpegsr validate` command line that makes a paired record (what its file cites)."""
    parts = ["jpegsr validate", *args.weights]
    parts += [f"--label {label}" for label in args.label]
    parts.append(f"--against {args.against}")
    if args.against_label:
        parts.append(f"--against-label {args.against_label}")
    if args.images:
        parts.append(f"--images {args.images}")
    return " ".join(parts)


def run_validate_command(args) -> int:  # noqa: ANN001 - argparse namespace
    import json

    if args.against_label and not args.against:  # before any scoring: a usage error
        raise DataError("--against-label names the --against model: give --against too")
    if len(args.label) > len(args.weights):
        raise DataError(f"{len(args.label)} --label for {len(args.weights)} weights")
    labels = args.label + [Path(w).stem for w in args.weights[len(args.label) :]]
    # scores on another image set go to their own folder, beside the standard set's
    out = args.out or RESULTS / (args.images.name if args.images else "")
    results = {}
    for w, label in zip(args.weights, labels, strict=True):
        results[label] = scores_for(w, label, args.data_root, out, not args.no_progress,
                                    args.images)  # fmt: skip
    if args.against:
        ref_label = args.against_label or Path(args.against).stem
        reference = scores_for(args.against, ref_label, args.data_root, out,
                               not args.no_progress, args.images)  # fmt: skip
        for label, scores in results.items():
            gains = paired_gains(scores.psnr, reference.psnr, QUALITIES)
            ssim = paired_gains(scores.ssim, reference.ssim, QUALITIES)
            ok, why = ship_verdict(gains)
            print(comparison_table(label, ref_label, gains, ssim))
            record = {
                "candidate": label, "reference": ref_label, "ship": ok, "why": why,
                "gains": [g.__dict__ for g in gains],
                # SSIM units, under the same field names as the dB gains
                "ssim_gains": [g.__dict__ for g in ssim],
                "command": validate_command(args),
            }  # fmt: skip
            paired_result_path(label, ref_label, out).write_text(json.dumps(record, indent=1))
    else:
        for label, scores in results.items():
            means = {q: np.mean([s[str(q)] for s in scores.psnr.values()]) for q in QUALITIES}
            print(label, " ".join(f"q{q}: {v:.3f}" for q, v in means.items()))
    return 0
