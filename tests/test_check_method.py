"""``hsibench check-method`` and the contract checks on broken methods; the documented example plugin end to end.

Each broken method below breaks exactly one part of the contract; the check for that part must
fail (and ``check-method`` exit with code 2 naming it), so none of the checks can pass vacuously.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from hsisr_bench import plugins
from hsisr_bench.cli import main
from hsisr_bench.commands import run as run_commands
from hsisr_bench.contract import check_method, check_model_output, failures, preflight_model
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import get_method_info

from conftest import REPO_ROOT
from plugin_fixtures import clean_registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_registry")

EXAMPLE = REPO_ROOT / "docs" / "examples" / "plugin" / "mine.py"

#: One plugin file with a correct method and one method per broken part of the contract.
BROKEN = '''
import os
import torch
import torch.nn as nn
import torch.nn.functional as F
from hsisr_bench.registry import OutputCrop, register_method


class Net(nn.Module):
    """A correct small method: conv, pixel shuffle; the options break one thing each."""

    def __init__(self, bands, scale, fault):
        super().__init__()
        self.scale, self.fault = scale, fault
        self.conv = nn.Conv2d(bands, bands * scale * scale, 3, padding=1)
        self.unused = nn.Linear(2, 2) if fault == "dead" else None
        self.receptive_field = 0 if fault == "field" else 2
        if fault == "unseeded":  # an init that ignores torch's seed
            generator = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
            with torch.no_grad():
                self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator) * 0.1)

    def forward(self, x):
        y = F.pixel_shuffle(self.conv(x), self.scale)  # (B, L*s*s, h, w) -> (B, L, s*h, s*w)
        if self.fault == "shape":
            return y[..., 1:, :]
        if self.fault == "nan":
            return y * float("nan")
        return y


def make(fault, **metadata):
    @register_method(f"broken-{fault}", title=f"Broken {fault}", **metadata)
    def build(*, bands, scale):
        if fault == "build":
            raise RuntimeError("cannot build")
        return Net(bands, scale, fault)


for fault in ("none", "shape", "nan", "dead", "unseeded", "field", "build"):
    make(fault)
make("counts", param_counts={(2, "default"): 1})
'''

CASES = [  # (fault, failing check, text in its detail)
    ("shape", "shape", "expected (2, 12, 16, 14)"),
    ("nan", "finite", "NaN/Inf"),
    ("dead", "backward", "no gradient reaches unused.weight"),
    ("unseeded", "determinism", "same seed give different outputs"),
    ("field", "tiled", "receptive_field=0: is it too small?"),
    ("counts", "parameters", "declared 1, built"),
    ("build", "build", "RuntimeError: cannot build"),
]


@pytest.fixture
def broken(tmp_path) -> Path:
    path = tmp_path / "broken.py"
    path.write_text(BROKEN)
    plugins.load_plugin(str(path))
    return path


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def test_the_correct_method_passes_every_check(broken):
    results = check_method("broken-none", scales=(2,))
    assert not failures(results), failures(results)
    assert {r.check for r in results if r.status == "pass"} >= {"shape", "finite", "backward", "fit",
                                                                 "determinism", "tiled"}


@pytest.mark.parametrize("fault,check,detail", CASES)
def test_each_broken_part_fails_its_check(broken, fault, check, detail):
    results = check_method(f"broken-{fault}", scales=(2,))
    failed = {r.check: r.detail for r in failures(results)}
    assert check in failed, f"{check} did not fail for broken-{fault}: {results}"
    assert detail in failed[check]
    if fault == "build":  # the checks that need a model are skipped, not failed
        assert set(failed) == {"build"}


def test_cli_check_method_exits_2_naming_the_failed_check_and_the_plugin(broken):
    result = invoke("check-method", "broken-shape", "--plugin", broken, "--scale", "2")
    assert result.exit_code == 2
    assert "FAIL" in result.output and "Error: check-method broken-shape:" in result.output
    assert "shape x2: Method 'broken-shape'" in result.output and f"plugin {broken.resolve()}" in result.output


def test_cli_check_method_on_a_builtin_with_options():
    result = invoke("check-method", "edsr", "--scale", "3", "--option", "n_feats=8", "--option", "n_resblocks=1")
    assert result.exit_code == 0, result.output
    assert "All checks passed for 'edsr'" in result.output and "built-in" in result.output
    bad = invoke("check-method", "edsr", "--option", "n_feat=8")
    assert bad.exit_code == 2 and "Did you mean 'n_feats'" in bad.output


def test_check_model_output_is_the_engines_cheap_check(broken):
    info = get_method_info("broken-shape")
    model = info.factory(bands=4, scale=2)
    x = torch.rand(1, 4, 5, 6)
    with pytest.raises(MethodError, match=r"forward returned shape \(1, 4, 9, 12\) .* expected \(1, 4, 10, 12\)") as error:
        check_model_output(model, info, x, model(x), scale=2)
    assert f"plugin {broken.resolve()}" in str(error.value)
    nan = get_method_info("broken-nan")
    with pytest.raises(MethodError, match="NaN or Inf"):
        check_model_output(model, nan, x, torch.full((1, 4, 10, 12), float("nan")), scale=2)
    with pytest.raises(MethodError, match="must return one tensor"):
        check_model_output(model, info, x, (x, x), scale=2)
    good = get_method_info("broken-none")
    net = good.factory(bands=4, scale=2)
    check_model_output(net, good, x, net(x), scale=2)  # no error


def test_preflight_model_catches_a_wrong_forward_before_any_training(broken):
    wrong = get_method_info("broken-shape")
    with pytest.raises(MethodError, match=r"'broken-shape' \(plugin .*broken\.py\): forward returned shape"):
        preflight_model(wrong.factory(bands=5, scale=3), wrong, bands=5, scale=3)
    with pytest.raises(MethodError, match=r"forward failed on an input of \(1, 7, 8, 8\) at x2: RuntimeError"):
        preflight_model(wrong.factory(bands=5, scale=2), wrong, bands=7, scale=2)  # 7 bands into a 5-band conv
    good = get_method_info("broken-none")
    model = good.factory(bands=5, scale=2).train()
    state = torch.random.get_rng_state()
    preflight_model(model, good, bands=5, scale=2)
    assert model.training and torch.equal(torch.random.get_rng_state(), state)


# ------------------------------------------------------------------------------------- the example


def test_the_guide_shows_the_tested_example_file_and_its_commands():
    guide = (REPO_ROOT / "docs" / "adding-a-method.md").read_text()
    blocks = guide.split("```python\n")
    assert len(blocks) == 2, "the guide has one python listing: the example file"
    assert blocks[1].split("```")[0] == EXAMPLE.read_text()
    assert "hsibench check-method mine --plugin mine.py" in guide
    assert "hsibench run --plugin mine.py --methods mine,ssrnet --dataset synthetic --scale 2 --profile quick" in guide


def test_the_documented_example_passes_check_method():
    result = invoke("check-method", "mine", "--plugin", EXAMPLE)
    assert result.exit_code == 0, result.output
    assert "All checks passed for 'mine'" in result.output
    assert "31 bands (the datasets' band count" in result.output  # the default --bands, said so
    assert "x2 cell         pass synthetic x2, 31 bands" in result.output  # one real cell through the engine
    assert "checkpoint, tiled evaluation" in result.output and "metrics.json" in result.output
    assert get_method_info("mine").source == f"plugin {EXAMPLE.resolve()}"
    assert get_method_info("mine").param_counts[(2, "default")] == 72_540  # the number the guide shows


def test_the_documented_example_runs_beside_ssrnet_and_reaches_the_report(tmp_path, monkeypatch):
    out = tmp_path / "results"
    run_params = {p.name for p in run_commands.run.params}
    if "plugins" in run_params:
        plugin_args = ["--plugin", str(EXAMPLE)]
    else:  # until `run` has --plugin: the environment variable, as a fresh process would read it
        monkeypatch.setenv(plugins.ENV_VAR, str(EXAMPLE))
        plugins.load_environment_plugins()
        plugin_args = []
    result = invoke("run", *plugin_args, "--methods", "mine,ssrnet", "--dataset", "synthetic", "--scale", "2",
                    "--profile", "smoke", "--device", "cpu", "--no-progress", "--out", out,
                    "--set", "dataset.n_scenes=3", "--set", "dataset.size=32",
                    "--set", "method.ssrnet.options.n_feats=8")
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "synthetic" / "x2" / "mine" / "seed0" / "metrics.json").read_text())
    assert metrics["method"] == "mine" and metrics["title"] == "Mine"
    report = invoke("report", "--results", out, "--no-published", "--format", "md")
    assert report.exit_code == 0, report.output
    markdown = (out / "reports" / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| Dataset"))  # Table V's columns
    assert "| Mine" in header and "| SSRNet" in header
    assert "Mine" in report.output


def test_run_with_a_wrong_forward_shape_stops_with_exit_2_and_leaves_results_intact(broken, tmp_path):
    out = tmp_path / "results"
    smoke = ["--dataset", "synthetic", "--scale", "2", "--profile", "smoke", "--device", "cpu", "--no-progress",
             "--out", out, "--set", "dataset.n_scenes=3", "--set", "dataset.size=32"]
    assert invoke("run", "--methods", "bicubic", *smoke).exit_code == 0
    before = {p: p.read_bytes() for p in (out / "synthetic" / "x2" / "bicubic").rglob("*") if p.is_file()}
    result = invoke("run", "--methods", "broken-shape", *smoke)
    assert result.exit_code == 2, result.output
    assert "Method 'broken-shape'" in result.output and "forward returned shape" in result.output
    assert not (out / "synthetic" / "x2" / "broken-shape" / "seed0" / "metrics.json").exists()
    assert {p: p.read_bytes() for p in (out / "synthetic" / "x2" / "bicubic").rglob("*") if p.is_file()} == before
