"""SSRNet: structure (parameter counts), shapes, the fast path against the plain path, training, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from hsisr_bench.benchmarks.train import count_aten_ops, step_op_counts
from hsisr_bench.errors import MethodError
from hsisr_bench.models import _ssrnet_composite, _ssrnet_fast
from hsisr_bench.models.ssrnet import PARAM_COUNTS, VARIANTS, SSRNet, build_ssrnet
from hsisr_bench.registry import count_parameters, create_method, get_method_info

# Hand counts for 31 bands at ×2 (weight norm: v plus one g per output channel, PyTorch's dim 0;
# ConvTranspose3d: one g per input channel; every layer has a bias):
#   head Conv3d 3×3×3 1->64        27·64 + 64 (g) + 64 (b)            =     1,856
#   separable block                (9·64·64 + 128) + (3·64·64 + 128)  =    49,408
#   LFF: fusion 1×1×1 192->64 + 3 γ  192·64 + 128 + 3                 =    12,419
#   SSRM = 7 blocks + LFF          7·49,408 + 12,419                  =   358,275
#   upsampling ×2                  64·64·3·4·4 + 64 + 64              =   196,736
#   tail Conv3d 3×3×3 64->1        27·64 + 1 + 1                      =     1,730
#   SSRNet ×2 = 1,856 + 3·358,275 + 196,736 + 1,730                   = 1,275,147
HEAD, BLOCK, LFF, UP2, TAIL = 1_856, 49_408, 12_419, 196_736, 1_730
SSRM = 7 * BLOCK + LFF
DEFAULT_X2 = 1_275_147

EXPECTED_VARIANT_COUNTS = {
    "nolff": DEFAULT_X2 - 3 * LFF,  # no fusion conv and no γ: 1,237,890
    "nogrl": DEFAULT_X2,  # the global skips are parameter-free
    "nolff_nogrl": DEFAULT_X2 - 3 * LFF,
    "standard": 2_562_699,  # 7 blocks of one 3×3×3 conv (27·64·64 + 128) per SSRM
    "d2": DEFAULT_X2 - SSRM,  # 916,872
    "d4": DEFAULT_X2 + SSRM,  # 1,633,422
    "d5": DEFAULT_X2 + 2 * SSRM,  # 1,991,697
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny inputs: with the cores shared, OpenMP synchronisation costs more than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _randomised(model: SSRNet, seed: int = 0) -> SSRNet:
    """Perturb every parameter (g, v, biases, γ) so that no test passes by symmetry of the init."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + 0.2 * torch.randn(p.shape, generator=generator))
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    return model


def _pair(scale: int, seed: int = 0, **options) -> tuple[SSRNet, SSRNet]:
    """A fast and a plain model with the same (randomised) weights."""
    torch.manual_seed(seed)
    fast = _randomised(build_ssrnet(bands=31, scale=scale, **options), seed).eval()
    plain = build_ssrnet(bands=31, scale=scale, fast=False, **options).eval()
    plain.load_state_dict(fast.state_dict())
    return fast, plain


def test_hand_count_matches_the_protocol():
    assert HEAD + 3 * SSRM + UP2 + TAIL == DEFAULT_X2


@pytest.mark.parametrize("scale, expected", [(2, 1_275_147), (3, 1_385_739), (4, 1_520_907)])
def test_parameter_counts_of_the_paper(scale, expected):
    assert count_parameters(build_ssrnet(bands=31, scale=scale)) == expected
    assert PARAM_COUNTS[(scale, "default")] == expected


def test_parameter_count_of_standard_blocks():
    assert count_parameters(build_ssrnet(bands=31, scale=2, block="standard")) == 2_562_699


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_builds_counts_and_runs(variant):
    model = create_method("ssrnet", bands=31, scale=2, **VARIANTS[variant])
    assert count_parameters(model) == EXPECTED_VARIANT_COUNTS[variant]
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 31, 8, 8))
    assert out.shape == (1, 31, 16, 16)
    assert torch.isfinite(out).all()


def test_registry_metadata():
    info = get_method_info("ssrnet")
    assert info.input == "lr" and info.trainable and info.loss == "l1"
    assert info.optimizer == {"name": "adam", "lr": 1e-4, "betas": (0.9, 0.999)}
    assert info.options == {"block": "separable", "lff": True, "grl": True, "n_modules": 3, "n_feats": 64,
                            "fast": True}
    assert set(info.variants) == {"nolff", "nogrl", "nolff_nogrl", "standard", "d2", "d4", "d5"}
    for (scale, variant), count in info.param_counts.items():
        options = {} if variant == "default" else info.variants[variant]
        assert count_parameters(create_method("ssrnet", bands=31, scale=scale, **options)) == count


def test_lff_and_grl_change_the_structure():
    default = build_ssrnet(bands=31, scale=2)
    no_lff = build_ssrnet(bands=31, scale=2, lff=False)
    assert hasattr(default.body[0], "fusion") and not hasattr(no_lff.body[0], "fusion")
    assert not hasattr(no_lff.body[0], "gamma")
    # GRL has no parameters, so the same weights must give a different function without it.
    fast, _ = _pair(2)
    no_grl = build_ssrnet(bands=31, scale=2, grl=False).eval()
    no_grl.load_state_dict(fast.state_dict())
    x = torch.randn(1, 31, 6, 6)
    with torch.no_grad():
        assert (fast(x) - no_grl(x)).abs().max() > 1e-3
        assert (no_grl(x) - no_grl.forward_plain(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("fast", [True, False])
def test_output_shape_on_non_square_input(scale, fast):
    model = build_ssrnet(bands=31, scale=scale, fast=fast).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 31, 7, 5))
    assert out.shape == (2, 31, 7 * scale, 5 * scale)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fast_path_equals_plain_path(scale):
    fast, plain = _pair(scale, seed=scale)
    x = torch.randn(2, 31, 9, 6, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = plain(x)
        got = fast(x)
    assert expected.abs().max() > 0.05  # a non-trivial output
    assert (got - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize("options", [{"lff": False}, {"block": "standard"}, {"grl": False, "n_modules": 2}])
def test_fast_path_equals_plain_path_for_variants(options):
    fast, plain = _pair(3, seed=5, **options)
    x = torch.randn(1, 31, 5, 7, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert (fast(x) - plain(x)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 2, 1, 3), (1, 3, 2, 2)])
@pytest.mark.parametrize("scale", [2, 4])
def test_fast_path_borders_on_tiny_inputs(shape, scale):
    """Every output is a border output here: the inclusion–exclusion corrections all matter."""
    torch.manual_seed(3)
    fast = _randomised(build_ssrnet(bands=shape[1], scale=scale, n_feats=8), seed=3).eval()
    plain = build_ssrnet(bands=shape[1], scale=scale, n_feats=8, fast=False).eval()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(shape)
    with torch.inference_mode():
        assert (fast(x) - plain(x)).abs().max().item() <= 1e-5


def test_backward_through_the_default_path_matches_plain():
    fast, plain = _pair(2, seed=7)
    fast.train()
    plain.train()
    x = torch.randn(2, 31, 6, 5)
    target = torch.randn(2, 31, 12, 10)
    grads = []
    for model in (fast, plain):
        model.zero_grad()
        loss = (model(x) - target).abs().mean()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        assert torch.isfinite(grad).all(), name
        assert (grad - grads[1][name]).abs().max().item() <= 1e-5 * max(1.0, grads[1][name].abs().max().item()), name
    assert grads[0]["body.0.gamma"].abs().sum() > 0
    assert grads[0]["upsample.parametrizations.weight.original0"].abs().sum() > 0


def _gradients(model: SSRNet, x: torch.Tensor, target: torch.Tensor) -> dict:
    model.train().zero_grad()
    (model(x) - target).abs().mean().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("scale, shape, options", [
    (3, (2, 4, 5, 4), {}),
    (4, (1, 3, 4, 5), {"lff": False}),
    (2, (1, 3, 3, 4), {"block": "standard"}),
    (2, (2, 4, 1, 1), {"grl": False, "n_modules": 2}),  # every output a border output
])
def test_training_gradients_equal_the_plain_models(scale, shape, options):
    """The training path (composite reconstruction, autograd on) gives the plain model's gradients."""
    torch.manual_seed(scale)
    fast = _randomised(build_ssrnet(bands=shape[1], scale=scale, n_feats=8, **options), seed=scale)
    plain = build_ssrnet(bands=shape[1], scale=scale, n_feats=8, fast=False, **options)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(shape)
    target = torch.randn(shape[0], shape[1], shape[2] * scale, shape[3] * scale)
    got, expected = _gradients(fast, x, target), _gradients(plain, x, target)
    for name, grad in expected.items():
        assert (got[name] - grad).abs().max().item() <= 1e-5 * max(1.0, grad.abs().max().item()), name
    assert expected["upsample.parametrizations.weight.original1"].abs().sum() > 0


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("shape", [(2, 8, 5, 7, 6), (1, 8, 1, 1, 1), (1, 8, 2, 1, 3)])
def test_composite_reconstruction_equals_tail_of_upsample(scale, shape):
    model = _randomised(build_ssrnet(bands=shape[2], scale=scale, n_feats=8), seed=scale)
    y = torch.randn(shape, generator=torch.Generator().manual_seed(scale))
    layers = (model.upsample.weight, model.upsample.bias, model.tail.weight, model.tail.bias, scale)
    with torch.no_grad():
        expected = model.tail(model.upsample(y)).squeeze(1)
        got = _ssrnet_composite.CompositeReconstruction(*layers)(y)
        phase = _ssrnet_fast._Reconstruction(*layers)(y)  # the inference path's reconstruction
    assert got.shape == expected.shape == phase.shape
    assert (got - expected).abs().max().item() <= 1e-5
    assert (phase - expected).abs().max().item() <= 1e-5


def test_composite_kernels_equal_the_einsum_construction():
    model = _randomised(build_ssrnet(bands=3, scale=3, n_feats=8), seed=2)
    w_up, w_tail = model.upsample.weight.detach(), model.tail.weight.detach()
    K = w_up.shape[2:]
    parts = dict(_ssrnet_composite.composite_kernels(w_up, w_tail))
    for fixed, weight in parts.items():
        kernels = weight.reshape(2 ** len(fixed), 8, *weight.shape[1:])  # (G·C, 1, ...) -> (G, C, 1, ...)
        for g, choice in enumerate(itertools.product(("lo", "hi"), repeat=len(fixed))):
            pairs = [None] * 3
            for d, c in zip(fixed, choice):
                pairs[d] = (0, 0) if c == "lo" else (K[d] - 1, 2)
            expected = _ssrnet_fast._composite_kernel(w_up, w_tail, tuple(pairs)) * (-1) ** len(fixed)
            assert (kernels[g] - expected).abs().max().item() <= 1e-6, (fixed, choice)


def test_training_step_costs_at_most_one_and_a_half_plain_steps_of_aten_ops():
    """Issue 10.5: the composite weights were rebuilt with ~14,000 ops a step; counts are deterministic."""
    x = torch.rand(1, 4, 3, 3)
    hr = torch.rand(1, 4, 6, 6)
    mean = x.mean(dim=(0, 2, 3)).reshape(1, -1, 1, 1)
    counts = {}
    for fast in (True, False):
        torch.manual_seed(0)
        counts[fast] = step_op_counts(build_ssrnet(bands=4, scale=2, n_feats=4, fast=fast), x, hr, mean, 2)
    assert min(min(c.values()) for c in counts.values()) > 0
    assert sum(counts[True].values()) <= 1.5 * sum(counts[False].values())
    assert counts[True]["optimizer"] == counts[False]["optimizer"]  # same parameters, same Adam


def test_the_op_counter_counts_backward_ops_too():
    a = torch.ones(3, requires_grad=True)
    forward = count_aten_ops(lambda: (a * 2).sum())
    assert forward["aten.mul"] == 1 and forward["aten.sum"] == 1
    assert sum(count_aten_ops(lambda: (a * 2).sum().backward()).values()) > sum(forward.values())


def test_inference_keeps_the_cached_phase_kernels(monkeypatch):
    """Without autograd the fast path uses (and caches) the phase kernels; with it, the composite."""
    built = []
    real = _ssrnet_composite.CompositeReconstruction

    def recorded(*args):
        built.append(args)
        return real(*args)

    monkeypatch.setattr(_ssrnet_fast, "CompositeReconstruction", recorded)
    fast, _ = _pair(2, seed=3)
    x = torch.randn(1, 31, 4, 4)
    with torch.inference_mode():
        fast(x)
        fast(x)
    assert built == []
    assert isinstance(fast._fast_cache.weights[fast.upsample], _ssrnet_fast._Reconstruction)
    fast(x).sum().backward()
    assert len(built) == 1


def test_state_dict_is_interchangeable_between_paths():
    torch.manual_seed(0)
    fast = _randomised(build_ssrnet(bands=31, scale=2, fast=True), seed=11).eval()
    torch.manual_seed(1)
    plain = build_ssrnet(bands=31, scale=2, fast=False).eval()
    assert list(fast.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(fast.state_dict())
    back = build_ssrnet(bands=31, scale=2).eval()
    back.load_state_dict(plain.state_dict())
    x = torch.randn(1, 31, 6, 6)
    with torch.no_grad():
        assert (plain(x) - fast(x)).abs().max() <= 1e-5
        assert torch.equal(back(x), fast(x))


def test_inference_cache_follows_parameter_changes():
    fast, plain = _pair(2, seed=13)
    x = torch.randn(1, 31, 5, 5)
    with torch.no_grad():
        before = fast(x)  # builds the cache
        for model in (fast, plain):
            model.body[1].gamma.mul_(0.5)  # an in-place update, as an optimiser step does
            model.tail.bias.add_(0.25)
        after = fast(x)
        assert (after - before).abs().max() > 1e-3
        assert (after - plain(x)).abs().max() <= 1e-5
        fast.load_state_dict(_pair(2, seed=14)[1].state_dict())
        assert (fast(x) - after).abs().max() > 1e-3


def test_gamma_scalars_are_trainable_and_used():
    model = build_ssrnet(bands=31, scale=2)
    for module in model.body:
        assert module.gamma.shape == (3,)
        assert module.gamma.requires_grad
        assert torch.equal(module.gamma.detach(), torch.ones(3))
    names = [n for n, _ in model.named_parameters()]
    assert {"body.0.gamma", "body.1.gamma", "body.2.gamma"} <= set(names)
    fast, plain = _pair(2, seed=17)
    x = torch.randn(1, 31, 5, 5)
    with torch.no_grad():
        before = fast(x)
        for model in (fast, plain):
            model.body[0].gamma[1] = 3.0
        assert (fast(x) - before).abs().max() > 1e-4
        assert (fast(x) - plain(x)).abs().max() <= 1e-5


def test_autocast_runs_on_the_fast_path():
    model = build_ssrnet(bands=31, scale=2).eval()
    x = torch.randn(1, 31, 6, 6)
    with torch.inference_mode():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert low.shape == reference.shape
    assert (low.float() - reference).abs().max() < 0.05


def test_receptive_field_bounds_the_dependency():
    """Changing LR column 0 must not change HR columns beyond s·(R + 1) (R = 7·D + 2 = 23 for D = 3)."""
    model = _randomised(build_ssrnet(bands=4, scale=2, n_feats=8), seed=19).eval()
    assert model.receptive_field == 23
    x = torch.randn(1, 4, 4, 40)
    y = x.clone()
    y[..., 0] += 1.0
    with torch.no_grad():
        changed = (model(x) - model(y)).abs().amax(dim=(0, 1, 2)) > 0
    last = int(changed.nonzero().max())
    assert 2 * 7 <= last < 2 * (model.receptive_field + 1)  # reaches past one SSRM, never past R


@pytest.mark.parametrize("options, words", [
    ({"block": "sparse"}, ["block='sparse'", "separable", "standard"]),
    ({"n_modules": 0}, ["n_modules", "at least 1", "0"]),
    ({"n_feats": 0}, ["n_feats", "at least 1"]),
    ({"n_modules": 2.5}, ["n_modules"]),
])
def test_bad_options_are_clear_errors(options, words):
    with pytest.raises(MethodError) as error:
        build_ssrnet(bands=31, scale=2, **options)
    for word in words:
        assert word in str(error.value)


@pytest.mark.parametrize("scale", [1, 2.0, True, "2"])
def test_bad_scale_is_a_clear_error(scale):
    with pytest.raises(MethodError, match="scale must be an integer of at least 2"):
        build_ssrnet(bands=31, scale=scale)


def test_unknown_option_through_the_registry():
    with pytest.raises(MethodError, match="n_modules"):
        create_method("ssrnet", bands=31, scale=2, n_module=4)


def test_forward_rejects_a_5d_input():
    with pytest.raises(MethodError, match=r"\(B, L, h, w\)"):
        build_ssrnet(bands=31, scale=2)(torch.randn(1, 1, 31, 4, 4))


# --------------------------------------------------------------------------- in-place convolutions (inference on CPU)


def _requires_fused_convolutions():
    if not _ssrnet_fast.fused_conv_available():
        pytest.skip("this torch build lacks oneDNN's in-place convolution; the public convolutions run instead")


@pytest.fixture
def workspaces(monkeypatch):
    """Every Workspace the fast path creates, recorded."""
    created = []

    class Recorded(_ssrnet_fast.Workspace):
        def __init__(self, like):
            super().__init__(like)
            created.append(self)

    monkeypatch.setattr(_ssrnet_fast, "Workspace", Recorded)
    return created


@pytest.mark.parametrize("scale, options", [(2, {}), (3, {"lff": False}), (4, {"block": "standard"})])
def test_in_place_convolutions_equal_the_public_ones(scale, options, workspaces):
    _requires_fused_convolutions()
    fast, plain = _pair(scale, seed=11, **options)
    x = torch.randn(2, 31, 7, 9, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        fused = fast(x)
        assert len(workspaces) == 1  # the in-place path really ran
        fast.fused_convolutions = False
        public = fast(x)
        assert len(workspaces) == 1  # and this one did not
        expected = plain(x)
    assert (fused - public).abs().max().item() <= 1e-5
    assert (fused - expected).abs().max().item() <= 1e-5


def test_the_workspace_stays_small(workspaces):
    """At most five activation buffers live at once (SSRM input, unit state, fusion sum, two outputs)."""
    _requires_fused_convolutions()
    fast, _ = _pair(2, seed=1)
    with torch.inference_mode():
        fast(torch.randn(1, 31, 6, 6))
    (ws,) = workspaces
    assert 1 <= len(ws.buffers) <= 5
    assert all(b.is_contiguous(memory_format=torch.channels_last_3d) for b in ws.buffers)


def test_no_workspace_with_autograd_or_autocast(workspaces):
    fast, plain = _pair(2, seed=2)
    x = torch.randn(1, 31, 5, 5)
    out = fast(x)  # autograd on: outputs must stay differentiable, no buffer is reused
    assert out.requires_grad
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        fast(x)
    assert workspaces == []
    with torch.inference_mode():
        assert (out.detach() - plain(x)).abs().max().item() <= 1e-5


def test_workspace_never_hands_out_a_live_buffer():
    like = torch.zeros(1, 4, 3, 5, 5).contiguous(memory_format=torch.channels_last_3d)
    ws = _ssrnet_fast.Workspace(like)
    a = ws.spare()
    b = ws.spare(a)
    c = ws.spare(a, b.permute(0, 2, 1, 3, 4))  # a view of b holds b
    storages = {t.untyped_storage().data_ptr() for t in (a, b, c)}
    assert len(storages) == 3 and len(ws.buffers) == 3
    assert ws.spare(a, c) is b  # reused, not allocated
    assert ws.spare() is a
    assert a.shape == like.shape and a.is_contiguous(memory_format=torch.channels_last_3d)


def test_probe_falls_back_when_the_operator_is_missing(monkeypatch):
    probe = _ssrnet_fast.fused_conv_available.__wrapped__
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert probe() is False
    monkeypatch.undo()

    def missing(*args, **kwargs):
        raise AttributeError("'_OpNamespace' 'mkldnn' object has no attribute '_convolution_pointwise_'")

    monkeypatch.setattr(_ssrnet_fast, "_conv_relu", missing)
    assert probe() is False


def test_probe_rejects_an_operator_that_computes_something_else(monkeypatch):
    probe = _ssrnet_fast.fused_conv_available.__wrapped__
    real = _ssrnet_fast._conv_relu

    def off_by_one(x, weight, bias, padding, out=None):
        return real(x, weight, bias, padding, out=out).add_(1.0)

    monkeypatch.setattr(_ssrnet_fast, "_conv_relu", off_by_one)
    assert probe() is False


def test_model_falls_back_to_public_convolutions(monkeypatch, workspaces):
    monkeypatch.setattr(_ssrnet_fast, "fused_conv_available", lambda: False)
    fast, plain = _pair(3, seed=6)
    x = torch.randn(1, 31, 6, 5)
    with torch.inference_mode():
        assert (fast(x) - plain(x)).abs().max().item() <= 1e-5
    assert workspaces == []
