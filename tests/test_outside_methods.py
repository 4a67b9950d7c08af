"""Methods written as the field writes them (tests/outside_plugins/), through check-method and ``hsibench run``.

Each plugin file is a pattern from published HSI-SR code; each must pass ``hsibench check-method
--plugin`` and train and score through ``hsibench run --plugin`` on tiny synthetic data, with
untiled and tiled evaluation (issue 15).
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from hsisr_bench.cli import main
from hsisr_bench.engine.infer import probe_model, super_resolve
from hsisr_bench.plugins import load_plugin
from hsisr_bench.registry import create_method, get_method_info

from conftest import REPO_ROOT
from plugin_fixtures import clean_registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_registry")

PLUGINS = REPO_ROOT / "tests" / "outside_plugins"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _run_and_score(plugin, method, out, *extra):
    """``hsibench run --plugin`` on 4 synthetic 48x48 scenes at x2 (smoke profile); the metrics record."""
    result = invoke("run", "--plugin", plugin, "--methods", method, "--dataset", "synthetic", "--scale", "2",
                    "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", out,
                    "--set", "dataset.n_scenes=4", "--set", "dataset.size=48", *extra)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    metrics = json.loads((out / "synthetic" / "x2" / method / "seed0" / "metrics.json").read_text())
    assert metrics["finished"] and metrics["n_test_scenes"] >= 1
    return metrics


def _trained_legacy_wn():
    load_plugin(str(PLUGINS / "legacy_weight_norm.py"))
    torch.manual_seed(0)
    model = create_method("legacy-wn", bands=6, scale=2)
    model(torch.rand(1, 6, 8, 8)).mean().backward()  # after a step, weight is a non-leaf: deepcopy refuses
    return model, get_method_info("legacy-wn")


def test_legacy_weight_norm_model_cannot_be_deep_copied_but_is_probed_and_tiled():
    model, info = _trained_legacy_wn()
    with pytest.raises(RuntimeError, match="deepcopy"):
        copy.deepcopy(model)  # the reason the engine must never deep-copy a user's model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = probe_model(model, bands=6, scale=2, input_kind="lr")
    assert probe.radius == 2  # two 3x3 convolutions
    lr = torch.rand(1, 6, 13, 11)
    untiled = super_resolve(model, lr, scale=2, info=info, progress=False)
    tiled = super_resolve(model, lr, scale=2, info=info, tile=3, progress=False)
    assert (tiled - untiled).abs().max().item() <= 1e-5
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.head.weight_g.dtype == torch.float32  # the float64 probe left the model's own tensors alone


def test_compiled_ddp_and_parametrized_models_are_probed_through_the_wrapped_module():
    model, info = _trained_legacy_wn()
    expected = probe_model(model, bands=6, scale=2, input_kind="lr").radius
    wrapped = torch.nn.DataParallel(model)  # the same wrapper interface as DDP, without a process group
    assert probe_model(wrapped, bands=6, scale=2, input_kind="lr").radius == expected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = torch.compile(model)
    assert probe_model(compiled, bands=6, scale=2, input_kind="lr").radius == expected
    new = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv2d(6, 24, 3, padding=1))
    net = torch.nn.Sequential(new, torch.nn.PixelShuffle(2))
    assert probe_model(net, bands=6, scale=2, input_kind="lr").radius == 1


def test_legacy_weight_norm_plugin_passes_check_method():
    result = invoke("check-method", "legacy-wn", "--plugin", PLUGINS / "legacy_weight_norm.py", "--scale", "2")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("tile", [0, 5])
def test_legacy_weight_norm_plugin_trains_and_scores_through_run(tmp_path, tile):
    metrics = _run_and_score(PLUGINS / "legacy_weight_norm.py", "legacy-wn", tmp_path / "results",
                             "--set", f"protocol.tile={tile}")
    assert metrics["method"] == "legacy-wn" and metrics["mean"]["psnr"] > 10


# ------------------------------------------------------------------ size_multiple: a window-8 model


def test_window8_model_is_padded_cropped_and_tiled_on_aligned_tiles():
    load_plugin(str(PLUGINS / "window8.py"))
    info = get_method_info("window8")
    assert info.size_multiple == 8
    torch.manual_seed(0)
    model = create_method("window8", bands=5, scale=2)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 5, 13, 11))  # the model itself refuses odd sides
    lr = torch.rand(1, 5, 21, 13)
    untiled = super_resolve(model, lr, scale=2, info=info, progress=False)
    assert untiled.shape == (1, 5, 42, 26)  # padded to 24x16 inside, cropped back
    for tile in (3, 8, 9):
        tiled = super_resolve(model, lr, scale=2, info=info, tile=tile, progress=False)
        assert (tiled - untiled).abs().max().item() <= 1e-5, tile


def test_size_multiple_must_be_a_positive_integer(tmp_path):
    bad = tmp_path / "hsibench_test_badmultiple.py"
    bad.write_text((PLUGINS / "window8.py").read_text().replace("size_multiple=WINDOW", "size_multiple=0"))
    result = invoke("check-method", "window8", "--plugin", bad, "--scale", "2")
    assert result.exit_code == 2 and "size_multiple must be an integer >= 1" in result.output


@pytest.mark.parametrize("plugin, method", [("window8.py", "window8"), ("fixed31.py", "fixed31")])
def test_outside_plugin_passes_check_method(plugin, method):
    result = invoke("check-method", method, "--plugin", PLUGINS / plugin, "--scale", "2")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("plugin, method", [("window8.py", "window8"), ("fixed31.py", "fixed31")])
@pytest.mark.parametrize("tile", [0, 5])
def test_outside_plugin_trains_and_scores_through_run(tmp_path, plugin, method, tile):
    # A 44-pixel test region: LR 22x22, not a multiple of 8 (the window model's input gets padded).
    metrics = _run_and_score(PLUGINS / plugin, method, tmp_path / "results", "--set", f"protocol.tile={tile}",
                             "--set", "protocol.test_region=44")
    assert metrics["method"] == method and metrics["mean"]["psnr"] > 10


def test_plan_axis_aligns_tiles_to_the_multiple_and_covers_the_unpadded_output():
    from hsisr_bench.engine.infer import plan_axis

    tiles = plan_axis(24, factor=2, crop=0, radius=3, core=5, multiple=8, n_keep=21)
    assert all(t.in_start % 8 == 0 and t.in_stop % 8 == 0 for t in tiles)
    assert tiles[0].out_start == 0 and tiles[-1].out_stop == 42
    assert all(a.out_stop == b.out_start for a, b in zip(tiles, tiles[1:]))


@pytest.mark.parametrize("side", [1, 3, 9])
def test_pad_to_multiple_reflects_even_sides_much_smaller_than_the_multiple(side):
    from hsisr_bench.engine.infer import pad_to_multiple

    x = torch.rand(1, 2, side, 5)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (1, 2, 8 * -(-side // 8), 8)
    assert torch.equal(padded[..., :side, :5], x)
