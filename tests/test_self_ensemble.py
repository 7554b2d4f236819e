"""Geometric self-ensemble: exact for equivariant models, an average otherwise."""

from pathlib import Path

import torch
import torch.nn.functional as F

from jpegsr import models
from jpegsr.inference import SelfEnsemble, upscale_array, with_self_ensemble
from jpegsr.models.registry import ModelDescriptor
from jpegsr.weights_io import LoadedModel


class Nearest(torch.nn.Module):
    def forward(self, x):
        return F.interpolate(x, scale_factor=4, mode="nearest")


class Skewed(torch.nn.Module):
    """Not flip/rotation equivariant: brightens the left half."""

    def forward(self, x):
        y = F.interpolate(x, scale_factor=4, mode="nearest")
        return y + (torch.arange(y.shape[-1]) < y.shape[-1] // 2).float() * 0.1


def test_equivariant_model_is_unchanged_and_shapes_hold():
    x = torch.rand(1, 3, 5, 7)
    assert torch.allclose(SelfEnsemble(Nearest())(x), Nearest()(x), atol=1e-6)
    assert SelfEnsemble(Skewed())(x).shape == (1, 3, 20, 28)


def test_non_equivariant_bias_is_averaged_out():
    x = torch.zeros(1, 3, 4, 4)
    out = SelfEnsemble(Skewed())(x)
    assert torch.allclose(out, torch.full_like(out, 0.05), atol=1e-6)


def test_two_stage_model_through_upscale_array():
    loaded = LoadedModel(
        models.build("two_stage_slwsr16", 4).eval(),
        models.describe("two_stage_slwsr16", 4),
        "test",
        {},
    )
    img = (torch.rand(9, 11, 3) * 255).to(torch.uint8).numpy()
    out = upscale_array(with_self_ensemble(loaded), img, tile=0)
    assert out.shape == (36, 44, 3)
    assert isinstance(with_self_ensemble(loaded).descriptor, ModelDescriptor)


def test_upscale_warns_when_jpeg_quality_is_far_from_training(tmp_path):
    import numpy as np
    from PIL import Image

    from jpegsr.batch import upscale_files

    loaded = LoadedModel(Nearest(), ModelDescriptor(name="n", scale=4), "t", {"qualities": "20"})
    rng = np.random.default_rng(0)
    for q in (20, 90):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            tmp_path / f"q{q}.jpg", quality=q
        )
    summary = upscale_files([str(tmp_path / "q20.jpg"), str(tmp_path / "q90.jpg")],
                            tmp_path / "out", model=loaded, progress=False)  # fmt: skip
    warned = {Path(name).name for name, _ in summary.warnings}
    assert warned == {"q90.jpg"}
    assert "looks like 90" in summary.warnings[0][1]
