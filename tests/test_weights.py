"""Weights files: safetensors round trip, metadata, name resolution and clear errors."""

from pathlib import Path

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


# --------------------------------------------------------------------------- choosing by quality


def test_choose_for_quality_prefers_nearest_then_specialist():
    from jpegsr.weights_io import choose_for_quality

    cands = {"q20": [20], "blind": [10, 15, 20, 30, 50, 90], "clean": []}
    assert choose_for_quality(cands, 20) == "q20"  # tie at distance 0: the specialist
    assert choose_for_quality(cands, 22) == "q20"
    assert choose_for_quality(cands, 50) == "blind"
    assert choose_for_quality(cands, 12) == "blind"
    assert choose_for_quality(cands, None) == "blind"  # unknown quality: the widest range
    with pytest.raises(WeightsError, match="no shipped model"):
        choose_for_quality({"clean": []}, 20)


def test_trained_qualities_from_metadata():
    from jpegsr.weights_io import trained_qualities

    assert trained_qualities({"qualities": "10,20", "input": "compressed"}) == [10, 20]
    assert trained_qualities({"qualities": "20", "input": "clean"}) == []
    assert trained_qualities({}) == []


def test_auto_resolves_shipped_models_by_quality(tmp_path, monkeypatch):
    import jpegsr.inference as inference
    import jpegsr.weights_io as wio

    for name, qs in (("spec", "20"), ("wide", "10,30,50,70,90")):
        save_weights(models.build("slwsr16", 4), "slwsr16", 4, tmp_path / f"{name}.safetensors",
                     {"qualities": qs, "input": "compressed"})  # fmt: skip
    monkeypatch.setattr(wio, "SHIPPED_DIR", tmp_path)
    inference._load_cached.cache_clear()
    try:
        assert Path(inference.resolve_model("auto", 20).source).stem == "spec"
        assert Path(inference.resolve_model("auto", 60).source).stem == "wide"
        assert Path(inference.resolve_model("auto", None).source).stem == "wide"
    finally:
        inference._load_cached.cache_clear()


def test_selection_table_decides_by_nearest_listed_quality():
    from jpegsr.weights_io import choose_from_table

    table = {"by_quality": {"10": "spec", "30": "wide", "50": "gone"}, "unknown": "wide"}
    available = ["spec", "wide"]
    assert choose_from_table(table, available, 12) == "spec"
    assert choose_from_table(table, available, 20) == "spec"  # equidistant: the lower quality
    assert choose_from_table(table, available, 25) == "wide"
    assert choose_from_table(table, available, 60) == "wide"  # "gone" is not shipped
    assert choose_from_table(table, available, None) == "wide"
    assert choose_from_table({"by_quality": {"10": "gone"}}, available, 10) is None
    assert choose_from_table({}, available, None) is None


def test_auto_follows_the_selection_table(tmp_path, monkeypatch):
    import jpegsr.weights_io as wio

    for name, qs in (("spec", "20"), ("wide", "10,30,50,70,90")):
        save_weights(models.build("slwsr16", 4), "slwsr16", 4, tmp_path / f"{name}.safetensors",
                     {"qualities": qs, "input": "compressed"})  # fmt: skip
    monkeypatch.setattr(wio, "SHIPPED_DIR", tmp_path)
    assert wio.choose_shipped(10) == "wide"  # metadata rule: nearest training quality
    (tmp_path / "auto.json").write_text('{"by_quality": {"10": "spec", "90": "wide"}}')
    assert wio.choose_shipped(10) == "spec"  # the table overrides
    assert wio.choose_shipped(None) == "wide"  # no "unknown" entry: the metadata rule
    (tmp_path / "auto.json").write_text("{not json")
    with pytest.raises(WeightsError, match="cannot read"):
        wio.choose_shipped(10)
