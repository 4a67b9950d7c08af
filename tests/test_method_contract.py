"""The method contract, checked for every registered method (new methods are picked up automatically).

For each method in ``list_methods()`` and each scale 2, 3, 4: output shape (with the model's output
crop), finite values, a backward pass reaching every parameter, a two-step fit that lowers the
loss on a fixed batch, determinism under a seed, tiled inference equal to untiled, and the exact
parameter counts of ``MethodInfo.param_counts``. Then the registry's errors and ``hsibench list``.

Inputs are tiny (12 bands, 8x7 LR pixels) so that the whole file runs in seconds on a CPU; the
parameter counts use 31 bands and are built on the ``meta`` device (no memory, no init cost).
"""

from __future__ import annotations

import pytest
import torch

from hsisr_bench.data.imresize import imresize
from hsisr_bench.engine.infer import super_resolve
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import (
    OutputCrop,
    count_parameters,
    create_method,
    get_method_info,
    list_methods,
    register_method,
    resolve_options,
)

METHODS = list_methods()
SCALES = (2, 3, 4)
BANDS = 12  # fewer than 31 keeps every forward pass cheap; 3D-FCNN's valid convs need at least 9
LR_SHAPE = (8, 7)  # non-square, so a swapped H/W shows up


def _build(name: str, scale: int, seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_method(name, bands=BANDS, scale=scale, **options)


def _batch(scale: int, batch: int = 1, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed (LR, HR) pair: HR random cube in [0, 1], LR its MATLAB-bicubic downscale."""
    generator = torch.Generator().manual_seed(seed)
    h, w = LR_SHAPE
    hr = torch.rand(batch, BANDS, h * scale, w * scale, generator=generator)
    return imresize(hr, 1 / scale), hr


def _model_input(name: str, lr: torch.Tensor, scale: int) -> torch.Tensor:
    return imresize(lr, scale) if get_method_info(name).input == "upsampled" else lr


def _crop(name: str, model: torch.nn.Module) -> OutputCrop:
    return getattr(model, "output_crop", get_method_info(name).output_crop)


@pytest.fixture(params=METHODS)
def method(request) -> str:
    return request.param


@pytest.mark.parametrize("scale", SCALES)
def test_output_shape_and_finite(method, scale):
    model = _build(method, scale).eval()
    lr, hr = _batch(scale, batch=2)
    with torch.no_grad():
        out = model(_model_input(method, lr, scale))
    target = _crop(method, model).apply(hr)
    assert out.shape == target.shape, f"{method} x{scale}: output {tuple(out.shape)}, target {tuple(target.shape)}"
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("scale", SCALES)
def test_backward_and_two_step_fit(method, scale):
    if not get_method_info(method).trainable:
        model = _build(method, scale)
        assert count_parameters(model) == 0, f"{method} is not trainable but has parameters"
        pytest.skip(f"{method} is not trainable")
    model = _build(method, scale).train()
    lr, hr = _batch(scale)
    x = _model_input(method, lr, scale)
    target = _crop(method, model).apply(hr)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_value() -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(x), target)

    losses = []
    for step in range(2):
        optimizer.zero_grad()
        loss = loss_value()
        loss.backward()
        if step == 0:
            for name, parameter in model.named_parameters():
                assert parameter.grad is not None, f"{method}: no gradient reaches {name}"
                assert torch.isfinite(parameter.grad).all(), f"{method}: non-finite gradient in {name}"
        losses.append(loss.item())
        optimizer.step()
    with torch.no_grad():
        final = loss_value().item()
    assert final < losses[0], f"{method} x{scale}: loss {losses[0]:.6g} -> {final:.6g} after two Adam steps"


@pytest.mark.parametrize("scale", SCALES)
def test_deterministic_under_seed(method, scale):
    lr, _ = _batch(scale)
    x = _model_input(method, lr, scale)
    outputs = []
    for _ in range(2):
        model = _build(method, scale, seed=123).eval()
        with torch.no_grad():
            outputs.append(model(x))
    assert torch.equal(outputs[0], outputs[1])
    if get_method_info(method).trainable:
        other = _build(method, scale, seed=124).eval()
        with torch.no_grad():
            assert not torch.equal(other(x), outputs[0]), f"{method}: the seed does not change the init"


@pytest.mark.parametrize("scale", SCALES)
def test_tiled_equals_untiled(method, scale):
    model = _build(method, scale)
    lr, _ = _batch(scale)
    mean = torch.linspace(0.2, 0.6, BANDS)
    untiled = super_resolve(model, lr, scale=scale, band_mean=mean, progress=False)
    tiled = super_resolve(model, lr, scale=scale, band_mean=mean, tile=3, progress=False)
    crop = _crop(method, model)
    h, w = LR_SHAPE
    assert untiled.shape == (1, BANDS - 2 * crop.bands, scale * h - 2 * crop.pixels, scale * w - 2 * crop.pixels)
    assert (tiled - untiled).abs().max().item() <= 1e-5
    # super_resolve is the model plus the band mean, nothing else.
    with torch.no_grad():
        direct = model.eval()(_model_input(method, lr, scale) - mean.view(1, -1, 1, 1))
    direct += mean[crop.bands:BANDS - crop.bands].view(1, -1, 1, 1)
    assert (direct - untiled).abs().max().item() <= 1e-5


def _count_cases():
    for name in METHODS:
        for (scale, variant) in sorted(get_method_info(name).param_counts):
            yield pytest.param(name, scale, variant, id=f"{name}-x{scale}-{variant}")


def test_every_method_declares_default_counts(method):
    counts = get_method_info(method).param_counts
    missing = [s for s in SCALES if (s, "default") not in counts]
    assert not missing, f"{method}: param_counts lacks (scale, 'default') for scales {missing}"


@pytest.mark.parametrize("name,scale,variant", list(_count_cases()))
def test_parameter_count(name, scale, variant):
    options = {} if variant == "default" else resolve_options(name, variant=variant)
    with torch.device("meta"):  # shapes only: the 43M-parameter EDSR paper size costs nothing
        model = create_method(name, bands=31, scale=scale, **options)
    assert count_parameters(model) == get_method_info(name).param_counts[(scale, variant)]


def test_unknown_option_suggests_the_right_one(method):
    options = list(get_method_info(method).options)
    if not options:
        with pytest.raises(MethodError, match="Unknown option 'size'"):
            create_method(method, bands=BANDS, scale=2, size=3)
        return
    typo = options[0][:-1] + "x"
    with pytest.raises(MethodError, match=f"Did you mean '{options[0]}'"):
        create_method(method, bands=BANDS, scale=2, **{typo: 1})


def test_unknown_method_and_variant():
    with pytest.raises(MethodError, match="Did you mean 'ssrnet'"):
        create_method("ssrnett", bands=BANDS, scale=2)
    with pytest.raises(MethodError, match="Did you mean 'paper'"):
        resolve_options("edsr", variant="papr")


def test_registering_a_name_twice_is_an_error():
    before = get_method_info("edsr")
    with pytest.raises(MethodError, match="registered twice"):
        register_method("edsr", title="Impostor")(lambda *, bands, scale: torch.nn.Identity())
    assert get_method_info("edsr") is before


def test_cli_list_shows_every_method():
    from click.testing import CliRunner

    from hsisr_bench.cli import main

    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    for name in METHODS:
        assert name in result.output
        assert get_method_info(name).title in result.output
