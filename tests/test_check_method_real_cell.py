"""``hsibench check-method`` runs the real path: code as it comes from papers' repositories, one tiny real cell.

Each method of :data:`PAPER_CODE` is written the way published HSI-SR code is (a ``.cuda()`` in
``forward``, a residual added in place after a ReLU, a layer class as an option default, AdamW, a
hard-coded band count). ``check-method`` must fail each broken one with exit code 2 and a one-line
explanation of the usual fix, and pass the documented example including the real cell.
"""

from __future__ import annotations

import tempfile

import pytest
import torch
from click.testing import CliRunner

from hsisr_bench import check_cell, plugins
from hsisr_bench.cli import main
from hsisr_bench.contract import check_method, failures

from conftest import REPO_ROOT
from plugin_fixtures import clean_registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_registry")

EXAMPLE = REPO_ROOT / "docs" / "examples" / "plugin" / "mine.py"

PAPER_CODE = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
from hsisr_bench.registry import register_method


class Upsampler(nn.Module):
    """conv + pixel shuffle, the tail most of these models share."""

    def __init__(self, n_feats, bands, scale):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(n_feats, bands * scale * scale, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(self.conv(x), self.scale)


class GroupNet(nn.Module):
    """SSPSR-style: the output buffer is allocated with .cuda(), as the authors ran it."""

    def __init__(self, bands, scale):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(bands, 16, 3, padding=1)
        self.tail = Upsampler(16, bands, scale)

    def forward(self, x):
        b, c, h, w = x.shape
        y = torch.zeros(b, c, h * self.scale, w * self.scale).cuda()
        return y + self.tail(F.relu(self.head(x)))


class ResNet(nn.Module):
    """A residual block whose skip is added in place to the ReLU's output (autograd still needs it)."""

    def __init__(self, bands, scale, act=None):
        super().__init__()
        self.relu = act() if act is not None else nn.ReLU()
        self.conv = nn.Conv2d(bands, bands, 3, padding=1)
        self.tail = Upsampler(bands, bands, scale)
        self.inplace_skip = act is None

    def forward(self, x):
        out = self.relu(self.conv(x))
        if self.inplace_skip:
            out += x
        else:
            out = out + x
        return self.tail(out)


class CaveNet(nn.Module):
    """Written for CAVE: 31 bands hard-coded (the bands argument is ignored)."""

    def __init__(self, scale, n_bands=31):
        super().__init__()
        self.head = nn.Conv2d(n_bands, 16, 3, padding=1)
        self.tail = Upsampler(16, n_bands, scale)

    def forward(self, x):
        return self.tail(F.relu(self.head(x)))


class PeakNet(nn.Module):
    """Normalises by the largest input seen in training, kept as a plain attribute (not a buffer)."""

    def __init__(self, bands, scale):
        super().__init__()
        self.peak = torch.full((), 0.01)
        self.head = nn.Conv2d(bands, 16, 3, padding=1)
        self.tail = Upsampler(16, bands, scale)

    def forward(self, x):
        if self.training:
            self.peak = torch.maximum(self.peak, x.detach().abs().amax())
        return self.tail(F.relu(self.head(x / self.peak))) * self.peak


@register_method("paper-cuda", title="Paper cuda")
def build_cuda(*, bands, scale):
    return GroupNet(bands, scale)


@register_method("paper-inplace", title="Paper in-place")
def build_inplace(*, bands, scale):
    return ResNet(bands, scale)


@register_method("paper-act", title="Paper act")
def build_act(*, bands, scale, act=nn.ReLU):
    return ResNet(bands, scale, act=act)


@register_method("paper-adamw", title="Paper AdamW", optimizer={"name": "adamw", "lr": 2e-4, "weight_decay": 1e-4})
def build_adamw(*, bands, scale):
    return CaveNet(scale, n_bands=bands)


@register_method("paper-cave", title="Paper CAVE")
def build_cave(*, bands, scale):
    return CaveNet(scale)


@register_method("paper-eight", title="Paper eight bands")
def build_eight(*, bands, scale):
    return CaveNet(scale, n_bands=8)


@register_method("paper-peak", title="Paper peak")
def build_peak(*, bands, scale):
    return PeakNet(bands, scale)
'''


@pytest.fixture
def paper(tmp_path):
    path = tmp_path / "paper_model.py"
    path.write_text(PAPER_CODE)
    plugins.load_plugin(str(path))
    return path


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Send ``tempfile``'s folders to an empty folder of this test, to see what is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def leftovers(folder):
    """What the real cell left in ``folder`` (torch's own caches, e.g. torchinductor_<user>, aside)."""
    return [p for p in folder.iterdir() if p.name.startswith("hsibench-check-method-")]


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("method,check,fix", [
    ("paper-cuda", "shape", "forward moves tensors to CUDA itself (.cuda(), device='cuda'): use x.device / "
                            ".to(x.device)"),
    ("paper-inplace", "backward", "use inplace=False (e.g. nn.ReLU(inplace=False)) / avoid x += ..."),
    ("paper-act", "options", "option defaults must be JSON values (numbers, strings, lists); take a string name"),
])
def test_code_from_papers_fails_with_a_one_line_fix(paper, method, check, fix):
    result = invoke("check-method", method, "--plugin", paper, "--scale", "2")
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    row = next(line for line in result.output.splitlines() if line.startswith(check + " "))
    assert "FAIL" in row
    fix_lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("fix: ")]
    assert any(fix in line for line in fix_lines), result.output
    error = result.output[result.output.index("Error: check-method"):]
    assert f"{check} x2:" in error and "Fix: " in error and fix in error
    assert "cell         skip" in result.output  # no real cell for a method that fails its unit checks


def test_the_cuda_failure_names_the_line_of_the_method(paper):
    result = invoke("check-method", "paper-cuda", "--plugin", paper, "--scale", "2")
    # On a CPU the .cuda() line raises; on a GPU machine the addition after it (CUDA + CPU tensors) does.
    lines = PAPER_CODE.splitlines()
    cuda = lines.index("        y = torch.zeros(b, c, h * self.scale, w * self.scale).cuda()") + 1
    assert any(f"(at paper_model.py:{n}, in forward)" in result.output for n in (cuda, cuda + 1)), result.output


def test_a_method_that_passes_the_unit_checks_but_not_the_engine_fails_in_the_real_cell(paper, private_tmp):
    # AdamW, as most transformer papers train: the unit checks never use the registered optimiser,
    # `hsibench run` does.
    assert not failures(check_method("paper-adamw", bands=31, scales=(2,)))
    result = invoke("check-method", "paper-adamw", "--plugin", paper, "--scale", "2")
    assert result.exit_code == 2, result.output
    assert "cell         FAIL" in result.output
    error = result.output[result.output.index("Error: check-method"):]
    # the engine refuses it when the cell is planned or when training starts: either way `run` would fail
    assert "1 of " in error and "cell x2: " in error and "optimizer 'adamw' is not supported" in error
    assert not leftovers(private_tmp)  # the temporary folder is gone after a failure too


def test_state_outside_the_checkpoint_fails_the_re_scoring(paper):
    result = check_cell.run_real_cell("paper-peak", scale=2)
    assert result.status == "fail"
    assert result.detail.startswith("checkpoint: re-scored from checkpoint.pt")
    assert "keeps state outside its parameters and buffers" in result.detail


def test_the_example_passes_the_real_cell_tiled_with_a_checkpoint_and_cleans_up(private_tmp, monkeypatch):
    from hsisr_bench.engine import infer

    tiles = []
    real = infer.super_resolve

    def spy(*args, tile=None, **kwargs):
        tiles.append(tile)
        return real(*args, tile=tile, **kwargs)

    monkeypatch.setattr(infer, "super_resolve", spy)
    plugins.load_plugin(str(EXAMPLE))
    result = check_cell.run_real_cell("mine", scale=2, option_texts=["n_feats=8"])
    assert result.status == "pass", result.detail
    assert "checkpoint" in result.detail and "metrics.json" in result.detail and "re-scored" in result.detail
    assert 0 < result.data["psnr"] < 100
    # the test scene scored by the run and again from the checkpoint, both tiled
    assert [t for t in tiles if t] == [check_cell.real_cell_plan(2)["tile"]] * 2, tiles
    assert not leftovers(private_tmp)


def test_the_example_passes_check_method_at_31_bands_including_the_real_cell():
    result = invoke("check-method", "mine+deep", "--plugin", EXAMPLE, "--scale", "3", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert "31 bands (the datasets' band count; --bands N checks another)" in result.output
    assert "cell         pass" in result.output and "options      pass" in result.output
    assert "x3 cell         pass synthetic x3, 31 bands" in result.output
    assert "All checks passed for 'mine+deep'" in result.output and "Note: fixed" not in result.output


def test_a_method_fixed_to_31_bands_is_a_note_not_a_failure(paper):
    at_12 = invoke("check-method", "paper-cave", "--plugin", paper, "--scale", "2", "--bands", "12")
    assert at_12.exit_code == 0, at_12.output
    assert "Note: fixed to 31 bands: the checks fail at 12 bands" in at_12.output
    assert "Method 'paper-cave' (Paper CAVE, plugin" in at_12.output and "31 bands (the datasets'" in at_12.output
    assert "cell         pass" in at_12.output
    default = invoke("check-method", "paper-cave", "--plugin", paper, "--scale", "2")
    assert default.exit_code == 0, default.output
    assert "Note: fixed to 31 bands: at 12 bands it fails" in default.output


def test_a_method_fixed_to_another_band_count_fails(paper):
    default = invoke("check-method", "paper-eight", "--plugin", paper, "--scale", "2")
    assert default.exit_code == 2, default.output
    assert "Fix: the network is fixed to 8 bands (a hard-coded channel count) and got 31" in default.output
    at_8 = invoke("check-method", "paper-eight", "--plugin", paper, "--scale", "2", "--bands", "8")
    assert at_8.exit_code == 2, at_8.output
    assert "cell         FAIL" in at_8.output
    assert "The unit checks pass at 8 bands but the method fails at 31" in at_8.output
    assert "it is fixed to 8 bands" in at_8.output


def test_option_values_are_checked_as_json(paper):
    assert check_cell.check_option_defaults("paper-act", scale=2).status == "fail"
    assert check_cell.check_option_defaults("paper-inplace", scale=2).status == "pass"
    plugins.load_plugin(str(EXAMPLE))
    assert check_cell.check_option_defaults("mine", scale=2, options={"n_feats": 8}).status == "pass"
    bad = check_cell.check_option_defaults("mine", scale=2, options={"n_feats": float("nan")})
    assert bad.status == "fail" and "n_feats (--option): nan is not a finite number" in bad.detail


def test_explain_knows_the_usual_failures():
    cuda = check_cell.explain("AssertionError: Torch not compiled with CUDA enabled")
    assert cuda == check_cell.explain("RuntimeError: Found no NVIDIA driver on your system.")
    assert cuda == check_cell.explain("RuntimeError: Expected all tensors to be on the same device, but found "
                                      "at least two devices, cuda:0 and cpu!")
    assert "x.device" in cuda
    assert "inplace=False" in check_cell.explain("one of the variables needed for gradient computation has been "
                                                 "modified by an inplace operation: [torch.FloatTensor]")
    assert "JSON values" in check_cell.explain("TypeError: Object of type type is not JSON serializable")
    assert check_cell.explain("RuntimeError: cannot build") is None


def test_an_untrainable_method_runs_its_real_cell_without_a_checkpoint():
    result = check_cell.run_real_cell("bicubic", scale=2)
    assert result.status == "pass", result.detail
    assert "not trainable" in result.detail and torch.get_num_threads() >= 1
