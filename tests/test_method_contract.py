"""The method contract, checked for every registered method (new methods are picked up automatically).

The checks are the ones ``hsibench check-method`` runs (:func:`hsisr_bench.contract.check_method`):
for each method in ``list_methods()`` and each scale 2, 3, 4: output shape (with the model's output
crop), finite values, a backward pass reaching every parameter, a two-step fit that lowers the
loss on a fixed batch, determinism under a seed, tiled inference equal to untiled on partial
tiles, and the exact parameter counts of ``MethodInfo.param_counts``. This file also checks that
the tiled check really tiles (several tiles, some reading only part of the input), then the
registry's errors and ``hsibench list``.

Inputs are tiny (12 bands, 8x7 LR pixels; the tiled check sizes its inputs from the receptive
field) and the wide built-ins are checked at a reduced width (same depth, hence the same receptive
field), so that the file runs in seconds on a CPU; the parameter counts use the registered
options at 31 bands on the ``meta`` device (no memory, no init cost).
"""

from __future__ import annotations

import pytest
import torch

import hsisr_bench.engine.infer as infer
from hsisr_bench.contract import CHECKS, check_method, failures, model_input
from hsisr_bench.engine.infer import super_resolve
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import create_method, get_method_info, list_methods, register_method, resolve_options

METHODS = list_methods()
SCALES = (2, 3, 4)
BANDS = 12  # fewer than 31 keeps every forward pass cheap; 3D-FCNN's valid convs need at least 9
#: Narrower built-ins for speed: widths only, so depth and receptive field are the registered ones.
NARROW = {"ssrnet": {"n_feats": 8}, "edsr": {"n_feats": 8}, "gdrrn": {"features": 16}}

_RESULTS: dict = {}


def _checked(name: str, scale: int, monkeypatch) -> tuple[list, list]:
    """check_method's results for one cell, and the tile grid of every super_resolve call it made."""
    if (name, scale) not in _RESULTS:
        grids: list[list] = []
        original = infer._tiles

        def recording_tiles(plans):  # the tiles super_resolve really runs, one list per call
            grids.append([])
            for pair in original(plans):
                grids[-1].append(pair)
                yield pair

        monkeypatch.setattr(infer, "_tiles", recording_tiles)
        results = check_method(name, bands=BANDS, scales=(scale,), options=NARROW.get(name, {}))
        monkeypatch.undo()
        _RESULTS[(name, scale)] = (results, grids)
    return _RESULTS[(name, scale)]


@pytest.fixture(params=METHODS)
def method(request) -> str:
    return request.param


@pytest.mark.parametrize("scale", SCALES)
def test_every_contract_check_passes(method, scale, monkeypatch):
    results, _ = _checked(method, scale, monkeypatch)
    assert [r.check for r in results] == list(CHECKS)
    failed = failures(results)
    assert not failed, "\n".join(f"{method} x{scale} {r.check}: {r.detail}" for r in failed)
    skipped = {r.check for r in results if r.status == "skip"}
    expected_skips = set() if get_method_info(method).trainable else {"fit"}
    assert skipped == expected_skips, f"{method} x{scale}: unexpected skips {skipped - expected_skips}"


@pytest.mark.parametrize("scale", SCALES)
def test_tiled_check_runs_several_tiles_and_partial_ones(method, scale, monkeypatch):
    """Issue 10: a tile that covers the whole input proves nothing; every case must cut the input."""
    results, grids = _checked(method, scale, monkeypatch)
    tiled = next(r for r in results if r.check == "tiled")
    per_lr = 1 if get_method_info(method).input == "lr" else scale  # input pixels per LR pixel
    shapes = [tuple(case["lr_shape"]) for case in tiled.data["cases"]]
    assert len(shapes) == 2 and shapes[0] == shapes[1][::-1] and shapes[0][0] > shapes[0][1]
    multi = [grid for grid in grids if len(grid) > 1]
    assert len(multi) == len(shapes), f"{method} x{scale}: {len(multi)} tiled calls with more than one tile"
    for grid, (h, w) in zip(multi, shapes):
        n_in = (h * per_lr, w * per_lr)
        partial = [(th, tw) for th, tw in grid
                   if th.in_stop - th.in_start < n_in[0] or tw.in_stop - tw.in_start < n_in[1]]
        assert partial, f"{method} x{scale} LR {h}x{w}: every tile reads the whole input"
        # The long axis is cut: some tile's input starts inside the image, some ends inside it.
        long_axis = [th for th, _ in grid] if h > w else [tw for _, tw in grid]
        assert any(t.in_start > 0 for t in long_axis) and any(t.in_stop < max(n_in) for t in long_axis)


def test_every_builtin_declares_default_counts(method):
    counts = get_method_info(method).param_counts
    missing = [s for s in SCALES if (s, "default") not in counts]
    assert not missing, f"{method}: param_counts lacks (scale, 'default') for scales {missing}"


def test_super_resolve_is_the_model_plus_the_band_mean(method):
    """What the tiled check compares is the model itself: super_resolve adds only the band mean."""
    torch.manual_seed(0)
    model = create_method(method, bands=BANDS, scale=2, **NARROW.get(method, {}))
    info = get_method_info(method)
    lr = torch.rand(1, BANDS, 8, 7, generator=torch.Generator().manual_seed(1))
    mean = torch.linspace(0.2, 0.6, BANDS)
    untiled = super_resolve(model, lr, scale=2, band_mean=mean, progress=False)
    crop = getattr(model, "output_crop", info.output_crop)
    with torch.no_grad():
        direct = model.eval()(model_input(info, lr, 2) - mean.view(1, -1, 1, 1))
    direct += mean[crop.bands:BANDS - crop.bands].view(1, -1, 1, 1)
    assert (direct - untiled).abs().max().item() <= 1e-5


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
    with pytest.raises(MethodError, match="Unknown variant"):
        check_method("edsr", variant="papr")


def test_registering_a_name_twice_is_an_error():
    before = get_method_info("edsr")
    with pytest.raises(MethodError, match="registered twice: first by built-in"):
        register_method("edsr", title="Impostor")(lambda *, bands, scale: torch.nn.Identity())
    assert get_method_info("edsr") is before


def test_builtins_record_their_source():
    assert {get_method_info(name).source for name in METHODS} == {"built-in"}


def test_cli_list_shows_every_method_its_source_and_each_variant():
    from click.testing import CliRunner

    from hsisr_bench.cli import main

    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == 0, result.output
    for name in METHODS:
        assert name in result.output
        assert get_method_info(name).title in result.output
    assert "built-in" in result.output
    # Variants without registered text are described by the options they change.
    assert "ssrnet+nolff" in result.output and "lff=False (default True)" in result.output
    assert "edsr+paper" in result.output and "size='paper' (default 'baseline')" in result.output
