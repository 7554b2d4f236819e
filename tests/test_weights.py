"""Weights files: safetensors round trip, metadata, name resolution and clear errors."""

import pytest
import torch

from jpegsr import models
from jpegsr.weights_io import WeightsError, load_model, save_weights


def test_round_trip_rebuilds_the_architecture_from_metadata(tmp_path):
    model = models.build("slwsr16", 2)
    path = tmp_path / "w.safetensors"
    save_weights(model, "slwsr16", 2, path, extra={"note": "x"})
    loaded = load_model(path)
    assert loaded.descriptor.scale == 2 and loaded.descriptor.name == "slwsr16"
    assert loaded.metadata["note"] == "x" and not loaded.module.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.module.state_dict()[k])


def test_errors(tmp_path):
    with pytest.raises(WeightsError, match="no shipped model"):
        load_model("definitely_not_a_model")
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="cannot read"):
        load_model(junk)
    path = tmp_path / "w.safetensors"
    save_weights(models.build("slwsr16", 4), "slwsr32", 4, path)  # wrong arch in metadata
    with pytest.raises(WeightsError, match="does not match"):
        load_model(path)
