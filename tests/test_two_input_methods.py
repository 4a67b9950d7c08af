"""Two-input methods (``input="lr+upsampled"``, issue 15 item 2): ``forward(lr, lms)`` as SSPSR-style code is written.

The harness gives such a model the LR cube and its own MATLAB-bicubic upsampling (float32, band
mean subtracted from both) in training, tiled inference (tiles of the whole-cube upsampling cut at
``scale *`` the LR tile's coordinates), check-method, bench and doctor.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.data.imresize import imresize
from hsisr_bench.engine.infer import probe_model, super_resolve
from hsisr_bench.errors import MethodError
from hsisr_bench.plugins import load_plugin
from hsisr_bench.registry import OutputCrop, create_method, get_method_info, register_method

from conftest import REPO_ROOT
from plugin_fixtures import clean_registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_registry")

PLUGIN = REPO_ROOT / "tests" / "outside_plugins" / "two_input.py"
EXAMPLE = REPO_ROOT / "docs" / "examples" / "plugin" / "two_input.py"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _model(bands=5, scale=2):
    load_plugin(str(PLUGIN))
    torch.manual_seed(0)
    return create_method("two-input", bands=bands, scale=scale), get_method_info("two-input")


class _Recorder(nn.Module):
    """Records both inputs; the output is ``lms`` plus a learnable 0 (so it trains)."""

    def __init__(self) -> None:
        super().__init__()
        self.zero = nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, lr, lms):
        self.seen.append((lr.detach().clone(), lms.detach().clone()))
        return lms + self.zero


@pytest.fixture
def recorder():
    model = _Recorder()
    register_method("hsibench-test-recorder", title="Recorder", input="lr+upsampled")(
        lambda *, bands, scale: model)
    return model, get_method_info("hsibench-test-recorder")


# ------------------------------------------------------------------ the inputs the model receives


def test_inference_gives_the_model_lr_and_its_matlab_bicubic_upsampling_minus_the_band_mean(recorder):
    model, info = recorder
    lr = torch.rand(1, 4, 9, 7, generator=torch.Generator().manual_seed(0))
    mean = torch.tensor([0.1, 0.2, 0.3, 0.4])
    out = super_resolve(model, lr, scale=3, info=info, band_mean=mean, progress=False)
    got_lr, got_lms = model.seen[-1]
    m = mean.reshape(1, -1, 1, 1)
    assert torch.equal(got_lr, lr - m)
    assert got_lms.shape == (1, 4, 27, 21)
    assert torch.allclose(got_lms, imresize(lr, 3) - m, atol=1e-6)
    assert torch.allclose(out, imresize(lr, 3), atol=1e-6)  # the mean comes back on the output


def test_training_forward_computes_the_upsampling_in_float32_outside_autocast(recorder):
    from hsisr_bench.engine.train import forward_with_mean

    model, info = recorder
    lr = torch.rand(2, 4, 6, 5, generator=torch.Generator().manual_seed(1))
    mean = torch.full((1, 4, 1, 1), 0.25)
    out = forward_with_mean(model, info, lr, mean, 2, OutputCrop(),
                            autocast=torch.autocast("cpu", dtype=torch.bfloat16))
    got_lr, got_lms = model.seen[-1]
    assert got_lms.dtype == torch.float32 and torch.equal(got_lr, lr - mean)
    assert torch.allclose(got_lms, imresize(lr, 2) - mean, atol=1e-6)  # fp32, not bf16-rounded
    assert out.shape == (2, 4, 12, 10)


def test_registration_accepts_the_new_kind_and_names_all_kinds_for_a_bad_one():
    with pytest.raises(MethodError, match="'lr', 'upsampled', 'lr\\+upsampled'"):
        register_method("hsibench-test-bad-kind", title="Bad", input="lms")(lambda *, bands, scale: None)


def test_preflight_pads_lr_to_the_multiple_and_lms_to_multiple_times_scale():
    from hsisr_bench.contract import preflight_model
    from hsisr_bench.engine.model_calls import forward_padded

    model, info = _model(bands=3, scale=3)
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append([tuple(a.shape) for a in args]))
    preflight_model(model, info, bands=3, scale=3, size=9)
    assert seen[-1] == [(1, 3, 12, 12), (1, 3, 36, 36)]
    lr = torch.rand(1, 3, 5, 6)
    out = forward_padded(model, lr, multiple=4, factor=3, crop=0, upsampled=imresize(lr, 3))
    assert seen[-1] == [(1, 3, 8, 8), (1, 3, 24, 24)] and out.shape == (1, 3, 15, 18)


# ------------------------------------------------------------------ tiled inference


@pytest.mark.parametrize("scale", [2, 3])
def test_two_input_model_tiled_equals_untiled_at_several_tile_sizes(scale):
    model, info = _model(scale=scale)
    lr = torch.rand(1, 5, 19, 13, generator=torch.Generator().manual_seed(3))
    mean = torch.linspace(0.2, 0.5, 5)
    untiled = super_resolve(model, lr, scale=scale, info=info, band_mean=mean, progress=False)
    assert untiled.shape == (1, 5, 19 * scale, 13 * scale)
    for tile in (2, 4, 5, 8):
        tiled = super_resolve(model, lr, scale=scale, info=info, band_mean=mean, tile=tile, progress=False)
        assert (tiled - untiled).abs().max().item() <= 1e-5, tile


class _WideUpsampledPath(nn.Module):
    """A field of 6 HR pixels on ``lms`` only (six 3x3 convs), none on ``lr``: the probe must see it."""

    def __init__(self, bands: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[nn.Conv2d(bands, bands, 3, padding=1) for _ in range(6)])

    def forward(self, lr, lms):
        return self.convs(lms) + 0 * lr.repeat_interleave(lms.shape[-1] // lr.shape[-1], -1).repeat_interleave(
            lms.shape[-2] // lr.shape[-2], -2)


def test_the_receptive_field_probe_sees_the_upsampled_input_and_tiling_stays_exact():
    torch.manual_seed(0)
    model = _WideUpsampledPath(3)
    register_method("hsibench-test-wide", title="Wide", input="lr+upsampled")(lambda *, bands, scale: model)
    info = get_method_info("hsibench-test-wide")
    assert probe_model(model, bands=3, scale=2, input_kind="lr+upsampled").radius == 3  # ceil(6 / 2) LR px
    lr = torch.rand(1, 3, 17, 11, generator=torch.Generator().manual_seed(4))
    untiled = super_resolve(model, lr, scale=2, info=info, progress=False)
    for tile in (2, 3, 6):
        tiled = super_resolve(model, lr, scale=2, info=info, tile=tile, progress=False)
        assert (tiled - untiled).abs().max().item() <= 1e-5, tile
    tiled = super_resolve(model, lr, scale=2, info=info, max_memory=2e5, progress=False)  # the memory probe
    assert (tiled - untiled).abs().max().item() <= 1e-5


# ------------------------------------------------------------------ the CLI paths


@pytest.mark.parametrize("plugin, method", [(PLUGIN, "two-input"), (EXAMPLE, "two-input-example")])
def test_two_input_plugin_passes_check_method(plugin, method):
    result = invoke("check-method", method, "--plugin", plugin, "--scale", "2", "--bands", "6", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "input lr+upsampled" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("tile", [0, 5])
def test_two_input_plugin_trains_and_scores_through_run(tmp_path, tile):
    out = tmp_path / "results"
    # A 44-pixel test region: LR 22x22, not a multiple of the model's 4 (both inputs get padded).
    result = invoke("run", "--plugin", PLUGIN, "--methods", "two-input", "--dataset", "synthetic", "--scale", "2",
                    "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", out,
                    "--set", "dataset.n_scenes=4", "--set", "dataset.size=48", "--set", f"protocol.tile={tile}",
                    "--set", "protocol.test_region=44")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    metrics = json.loads((out / "synthetic" / "x2" / "two-input" / "seed0" / "metrics.json").read_text())
    assert metrics["finished"] and metrics["n_test_scenes"] >= 1 and metrics["mean"]["psnr"] > 10


def test_bench_and_doctor_helpers_call_the_model_with_both_inputs():
    from hsisr_bench.benchmarks.models import _count_flops, _model_input
    from hsisr_bench.doctor import _tiled_geometry

    model, info = _model(bands=4, scale=2)
    inputs = _model_input(info, torch.rand(1, 4, 8, 8), 2)
    assert [tuple(t.shape) for t in inputs] == [(1, 4, 8, 8), (1, 4, 16, 16)]
    assert _count_flops(model.eval(), inputs) > 0
    radius, crop, per_lr, factor = _tiled_geometry(model, info, scale=2, bands=4)
    assert (per_lr, factor, crop) == (1, 2, 0) and radius >= 3


def test_the_guide_gives_the_real_instructions_instead_of_a_workaround():
    guide = (REPO_ROOT / "docs" / "adding-a-method.md").read_text()
    assert 'input="lr+upsampled"' in guide and "examples/plugin/two_input.py" in guide
    assert "planned" not in guide and "compute `lms` inside `forward`" not in guide
