"""Architecture tests: parameter budgets, shapes, two-stage contract, registry errors.

Inputs are tiny (12x10) so the whole file runs in seconds on a 2-core CPU.
"""

from __future__ import annotations

import pytest
import torch

from jpegsr.models import (
    build,
    count_parameters,
    describe,
    list_models,
    names,
    sr_output,
)
from jpegsr.models.slwsr import SLWSR
from jpegsr.models.two_stage import CoarseRecovery, JPEGRecovery, TwoStage

ALL_MODELS = [
    "dbpn_small",
    "rcan_small",
    "slwsr16",
    "slwsr32",
    "slwsr64",
    "two_stage_slwsr16",
    "two_stage_slwsr32",
    "two_stage_slwsr32_coarse",
]
SMALL_MODELS = ["dbpn_small", "rcan_small", "slwsr16", "two_stage_slwsr16"]


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


def _input(h: int = 12, w: int = 10) -> torch.Tensor:
    return torch.rand(1, 3, h, w)


@pytest.mark.parametrize(("n_feats", "target"), [(16, 144_000), (32, 571_000)])
def test_slwsr_parameter_budget(n_feats: int, target: int) -> None:
    n = count_parameters(SLWSR(scale=4, n_feats=n_feats))
    assert abs(n - target) / target < 0.03, n


def test_registered_slwsr_counts_match_modules() -> None:
    assert count_parameters(build("slwsr16", 4)) == count_parameters(SLWSR(4, 16))
    assert count_parameters(build("slwsr32", 4)) == count_parameters(SLWSR(4, 32))


@pytest.mark.parametrize("name", SMALL_MODELS)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes(name: str, scale: int) -> None:
    x = _input()
    model = build(name, scale).eval()
    with torch.no_grad():
        out = model(x)
    assert sr_output(out).shape == (1, 3, 12 * scale, 10 * scale)
    assert describe(name, scale).two_stage == isinstance(out, tuple)


def test_two_stage_returns_recovered_and_sr() -> None:
    x = _input()
    model = TwoStage(scale=4, stage1_feats=16, stage2_feats=16).eval()
    with torch.no_grad():
        recovered, sr = model(x)
    assert recovered.shape == x.shape
    assert sr.shape == (1, 3, 48, 40)


def test_stage1_is_identity_when_last_conv_is_zeroed() -> None:
    stage1 = JPEGRecovery(n_feats=16).eval()
    with torch.no_grad():
        stage1.tail.weight.zero_()
        assert stage1.tail.bias is not None
        stage1.tail.bias.zero_()
        x = _input()
        assert torch.equal(stage1(x), x)


@pytest.mark.parametrize(("h", "w"), [(12, 10), (13, 11), (9, 14)])
def test_coarse_recovery_starts_as_identity_and_keeps_any_size(h: int, w: int) -> None:
    coarse = CoarseRecovery(n_feats=8).eval()
    x = _input(h, w)
    with torch.no_grad():
        assert torch.equal(coarse(x), x)  # zeroed last conv: exactly the input
        coarse.tail.weight.normal_(0, 0.1)
        out = coarse(x)
    assert out.shape == x.shape and not torch.equal(out, x)


def test_two_stage_with_coarse_recovery_supervises_its_output() -> None:
    model = TwoStage(scale=4, stage1_feats=8, stage2_feats=8, coarse_feats=8).eval()
    x = _input(13, 11)
    with torch.no_grad():
        model.coarse.tail.weight.normal_(0, 0.1)
        recovered, sr = model(x)
        assert torch.equal(recovered, model.coarse(model.stage1(x)))
        assert torch.equal(sr, model.stage2(recovered))
    assert sr.shape == (1, 3, 52, 44)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(KeyError) as err:
        build("no_such_model", 4)
    for name in ALL_MODELS:
        assert name in str(err.value)


def test_unsupported_scale_raises() -> None:
    with pytest.raises(ValueError):
        build("slwsr16", 8)
    with pytest.raises(ValueError):
        describe("dbpn_small", 5)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = build(name, 4)
    out = model(_input())
    loss = sum(o.abs().mean() for o in out) if isinstance(out, tuple) else out.abs().mean()
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    if name.startswith(("slwsr", "two_stage")):
        # no gating here, so every tensor must actually receive signal
        for pname, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_list_models_lists_everything_with_counts() -> None:
    rows = list_models(4)
    assert [r["name"] for r in rows] == sorted(ALL_MODELS)
    assert sorted(names()) == sorted([*ALL_MODELS, "dncnn"])
    assert [r["name"] for r in list_models(1)] == ["dncnn"]  # the denoisers run at x1
    for row in rows:
        assert isinstance(row["parameters"], int) and row["parameters"] > 0
        assert row["description"]
    counts = {r["name"]: r["parameters"] for r in rows}
    assert 300_000 <= counts["rcan_small"] <= 800_000
    assert 300_000 <= counts["dbpn_small"] <= 800_000


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_channels_last_matches_contiguous(name: str) -> None:
    model = build(name, 4).eval()
    x = _input()
    with torch.no_grad():
        ref = sr_output(model(x))
        model_cl = model.to(memory_format=torch.channels_last)
        out = sr_output(model_cl(x.to(memory_format=torch.channels_last)))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_bf16_autocast_runs(name: str) -> None:
    model = build(name, 4).eval()
    x = _input()
    with torch.no_grad():
        ref = sr_output(model(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = sr_output(model(x))
    assert out.shape == ref.shape
    assert torch.isfinite(out.float()).all()
    assert (out.float() - ref).abs().max() < 0.1


def test_dncnn_shape_parameters_determinism_and_residual() -> None:
    model = build("dncnn", 1).eval()
    d = describe("dncnn", 1)
    assert (d.task, d.scale, d.in_channels, d.out_channels) == ("denoise", 1, 1, 1)
    assert count_parameters(model) == 667_073
    x = torch.rand(2, 1, 23, 17)
    with torch.no_grad():
        a, b = model(x), model(x)
        # residual learning: with the last conv zeroed, the network is the identity
        model.body[-1].weight.zero_()
        model.body[-1].bias.zero_()
        identity = model(x)
    assert a.shape == x.shape and torch.equal(a, b)
    assert torch.equal(identity, x)
    with pytest.raises(ValueError, match="supports scales"):
        build("dncnn", 4)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_channels_last_upsampler_is_the_plain_one_in_value_and_gradient(scale):
    from jpegsr.models.blocks import Upsampler

    torch.manual_seed(scale)
    up = Upsampler(scale, 8).double()
    x = torch.randn(2, 8, 7, 9, dtype=torch.float64)
    fast_in = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    plain_in = x.clone().requires_grad_()
    fast, plain = up(fast_in), torch.nn.Sequential.forward(up, plain_in)
    assert fast.shape == plain.shape == (2, 8, 7 * scale, 9 * scale)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fast, plain, atol=1e-12)
    g = torch.randn_like(plain)
    fast.backward(g)
    fast_grads = [p.grad.clone() for p in up.parameters()]
    up.zero_grad()
    plain.backward(g)
    for p, fg in zip(up.parameters(), fast_grads, strict=True):
        assert torch.allclose(fg, p.grad, atol=1e-10)
    assert torch.allclose(fast_in.grad, plain_in.grad, atol=1e-12)
