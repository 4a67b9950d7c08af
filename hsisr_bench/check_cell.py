"""What ``hsibench check-method`` checks beyond the unit checks of :mod:`hsisr_bench.contract`.

- :func:`run_real_cell`: one tiny cell through the engine (``engine.runner.run_cell``, the code
  ``hsibench run`` runs): a synthetic dataset written to a temporary folder, a few training steps, a
  checkpoint, tiled evaluation, ``metrics.json``, then the run re-scored from its checkpoint as
  ``hsibench evaluate`` does. A method passes only when ``hsibench run`` would work.
- :func:`check_option_defaults`: every option value (factory defaults, variants, ``--option``) is a
  JSON value, since the resolved options are written to ``config.json`` and hashed into the run id.
- :func:`band_probe`: whether the method builds and runs at another band count, for the note
  "fixed to N bands" (the datasets have :data:`DATASET_BANDS` bands).
- :func:`explain`: a one-line explanation with the usual fix for the failures that real HSI-SR code
  from papers runs into (``.cuda()`` in ``forward``, in-place ops, non-JSON option defaults).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hsisr_bench.contract import CheckResult
from hsisr_bench.errors import HsiBenchError

__all__ = ["DATASET_BANDS", "OTHER_BANDS", "EXTRA_CHECKS", "CELL_SCENES", "explain", "where_raised",
           "describe_error", "check_option_defaults", "band_probe", "real_cell_plan", "run_real_cell"]

#: The band count of the benchmark's datasets (CAVE, Harvard, the synthetic scenes).
DATASET_BANDS = 31
#: The band count :func:`band_probe` tries when the checks ran at :data:`DATASET_BANDS`.
OTHER_BANDS = 12
#: The rows ``check-method`` adds after the unit checks' (:data:`hsisr_bench.contract.CHECKS`).
EXTRA_CHECKS = ("options", "cell")
#: Synthetic scenes of the real cell: 3 for training, 1 for testing (the seeded 80/20 split).
CELL_SCENES = 4

# (substrings of an error message, the explanation); the first entry with a matching substring wins.
_EXPLANATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Torch not compiled with CUDA enabled", "NVIDIA driver", "no CUDA-capable device",
      "Expected all tensors to be on the same device", "CUDA driver initialization failed"),
     "forward moves tensors to CUDA itself (.cuda(), device='cuda'): use x.device / .to(x.device); the "
     "harness moves the model and its inputs to the run's device."),
    (("modified by an inplace operation",),
     "an in-place operation overwrites a tensor autograd still needs: use inplace=False (e.g. "
     "nn.ReLU(inplace=False)) / avoid x += ... (write x = x + ...)."),
    (("is not JSON serializable", "not a JSON value"),
     "option defaults must be JSON values (numbers, strings, lists); take a string name (e.g. act='relu') "
     "and map it to the layer inside the factory."),
)


# A convolution built for a hard-coded band count, given another: torch's message names both counts.
_CHANNELS = re.compile(r"to have (\d+) channels, but got (\d+) channels")


def explain(text: str) -> Optional[str]:
    """The one-line explanation with the usual fix for a failure message, or ``None`` when none applies."""
    for needles, explanation in _EXPLANATIONS:
        if any(needle in text for needle in needles):
            return explanation
    match = _CHANNELS.search(text)
    if match:
        fixed, given = match.groups()
        return (f"the network is fixed to {fixed} bands (a hard-coded channel count) and got {given}: build its "
                f"layers from the factory's bands argument (the datasets have {DATASET_BANDS} bands).")
    return None


# ----------------------------------------------------------------------------------- error text


def _root(error: BaseException) -> BaseException:
    """The original exception behind ``error`` (its ``__cause__`` / ``__context__`` chain)."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


def _library_dirs() -> tuple[str, ...]:
    import torch

    import hsisr_bench

    dirs = [os.path.dirname(hsisr_bench.__file__), os.path.dirname(torch.__file__), os.path.dirname(os.__file__)]
    return tuple(os.path.realpath(d) + os.sep for d in dirs)


def where_raised(error: BaseException) -> str:
    """``" (at mine.py:42, in forward)"``: the deepest frame of the method's own code that raised, or ``""``.

    Frames of hsisr_bench, torch and the standard library are skipped: the line worth reading is the
    one in the method's file that called into them.
    """
    library = _library_dirs()
    frames = traceback.extract_tb(_root(error).__traceback__)
    own = [f for f in frames if not os.path.realpath(f.filename).startswith(library) and not f.filename.startswith("<")]
    if not own:
        return ""
    frame = own[-1]
    return f" (at {os.path.basename(frame.filename)}:{frame.lineno}, in {frame.name})"


def describe_error(error: BaseException) -> str:
    """A one-line account of a failure: the message (with its type unless it is a toolkit error) and where."""
    if isinstance(error, HsiBenchError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    return text.rstrip() + where_raised(error)


# ------------------------------------------------------------------------------- option values


def _json_problem(value: Any) -> Optional[str]:
    """Why ``value`` is not a plain JSON value (None, bool, number, string, list, string-keyed object)."""
    if value is None or isinstance(value, (bool, int, str)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} is not a finite number"
    if isinstance(value, (list, tuple)):
        return next((p for p in map(_json_problem, value) if p), None)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "an object with non-string keys"
        return next((p for p in map(_json_problem, value.values()) if p), None)
    kind = "a class" if inspect.isclass(value) else "a function" if callable(value) else f"a {type(value).__name__}"
    return f"{value!r} is {kind}, not a JSON value"


def check_option_defaults(name: str, *, scale: int, options: Optional[Mapping[str, Any]] = None) -> CheckResult:
    """Check that every option value of method ``name`` is a JSON value (the ``options`` row).

    The factory's keyword defaults, every registered variant's values and the explicit ``options``
    end up in ``config.json`` and the run id; a class or function there (``act=nn.ReLU``) makes
    ``hsibench run`` fail after the model was built.
    """
    from hsisr_bench.registry import get_method_info

    info = get_method_info(name)
    sources = [("default", info.options)] + [(f"variant '{v}'", values) for v, values in info.variants.items()]
    sources.append(("--option", dict(options or {})))
    wrong = []
    for where, values in sources:
        for key, value in values.items():
            if value is inspect.Parameter.empty:  # a required option: no default to record
                continue
            problem = _json_problem(value)
            if problem:
                wrong.append(f"{key} ({where}): {problem}")
    if wrong:
        return CheckResult("options", scale, "fail", "option values not JSON (they go to config.json): "
                           + "; ".join(wrong))
    count = sum(1 for v in info.options.values() if v is not inspect.Parameter.empty)
    return CheckResult("options", scale, "pass", f"{count} option default(s) and {len(info.variants)} variant(s) "
                                                 "are JSON values")


# -------------------------------------------------------------------------------- band counts


def band_probe(name: str, *, bands: int, scale: int, options: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """Build method ``name`` at ``bands`` bands and run one small forward; the failure text, or ``None``."""
    import torch

    from hsisr_bench.contract import preflight_model
    from hsisr_bench.registry import create_method, get_method_info

    info = get_method_info(name)
    try:
        with torch.random.fork_rng(devices=[]):  # the probe does not move the caller's RNG
            torch.manual_seed(0)
            model = create_method(name, bands=bands, scale=scale, **dict(options or {}))
        preflight_model(model, info, bands=bands, scale=scale)
    except Exception as error:  # noqa: BLE001 - any failure means "not at this band count"
        return describe_error(error)
    return None


# ------------------------------------------------------------------------------------ the real cell


def real_cell_plan(scale: int) -> dict:
    """The real cell's size at ``scale``: scene side, test region and evaluation tile (LR pixels).

    The smoke profile trains on 8x8 LR patches (HR ``8*scale``) and scores a 32x32 region; the scenes
    are large enough for both, and the tile is about a third of the LR region, so the evaluation
    has several tiles, the last one partial.
    """
    region = 32
    lr_side = region // scale
    return {"size": max(region, 16 * scale), "region": region, "tile": max(2, math.ceil(lr_side / 3))}


def run_real_cell(name: str, *, scale: int, variant: Optional[str] = None, option_texts: Sequence[str] = (),
                  threads: Optional[int] = None) -> CheckResult:
    """Run one tiny cell of method ``name`` through the engine, as ``hsibench run`` would (the ``cell`` row).

    In a temporary folder (removed afterwards): :data:`CELL_SCENES` synthetic scenes at
    :data:`DATASET_BANDS` bands written as ``hsibench data synth`` does, the ``smoke`` profile (one
    epoch of two steps of four 8x8 LR patches), a tiled evaluation writing ``metrics.json``, then
    the run re-scored from ``checkpoint.pt`` on a freshly built model (``hsibench evaluate``), which
    must give the same PSNR.

    Args:
        name: the registry name.
        scale: the cell's scale.
        variant: a registered variant, or ``None``.
        option_texts: ``KEY=VALUE`` option overrides as given to ``--option``.
        threads: CPU threads for the cell (``None``: leave torch's setting).

    Returns:
        A :class:`CheckResult` ``cell``: ``pass`` with the PSNR and the time, or ``fail`` naming the
        phase (setup, build, training, evaluation, checkpoint) and the error.
    """
    import torch

    from hsisr_bench import results
    from hsisr_bench.config import plan_runs
    from hsisr_bench.data.synthetic import write_synthetic_dataset
    from hsisr_bench.engine.plan import plan_cells
    from hsisr_bench.engine.runner import run_cell
    from hsisr_bench.registry import get_method_info

    info = get_method_info(name)
    size = real_cell_plan(scale)
    label = name if not variant else f"{name}+{variant}"
    start = time.perf_counter()
    messages: list[str] = []
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="hsibench-check-method-") as tmp:
            root = Path(tmp)
            phase = "setup"
            directory = None
            try:
                write_synthetic_dataset(root / "data" / "synthetic", n_scenes=CELL_SCENES, size=size["size"],
                                        bands=DATASET_BANDS, seed=0)
                overrides = [f"protocol.tile={size['tile']}", f"protocol.test_region={size['region']}"]
                overrides += [f"method.options.{text}" for text in option_texts]
                runs = plan_runs(methods=label, datasets=["synthetic"], scales=[scale], profile="smoke",
                                 overrides=overrides, device="cpu", data_root=str(root / "data"))
                cell = plan_cells(runs, root / "results", device="cpu").cells[0]
                directory = cell.directory
                phase = "run"
                outcome = run_cell(cell, progress=False, notify=messages.append)
                metrics_file = directory / results.METRICS_FILE
                if outcome.status != "finished" or not metrics_file.is_file():
                    return CheckResult("cell", scale, "fail", f"evaluation: the engine ended with '{outcome.status}' and "
                                                              f"wrote no {results.METRICS_FILE}")
                psnr = float(json.loads(metrics_file.read_text())["mean"]["psnr"])
                detail = (f"synthetic x{scale}, {DATASET_BANDS} bands, {CELL_SCENES} scenes of "
                          f"{size['size']}x{size['size']}")
                if info.trainable:
                    phase = "checkpoint"
                    if not (directory / results.CHECKPOINT_FILE).is_file():
                        return CheckResult("cell", scale, "fail", f"checkpoint: training wrote no {results.CHECKPOINT_FILE}")
                    again = run_cell(cell, mode="evaluate", force=True, progress=False, notify=messages.append)
                    rescored = float(again.metrics["mean"]["psnr"])
                    if not math.isclose(rescored, psnr, rel_tol=1e-6, abs_tol=1e-6):
                        return CheckResult("cell", scale, "fail", (
                            f"checkpoint: re-scored from {results.CHECKPOINT_FILE} (as 'hsibench evaluate' does) the PSNR is "
                            f"{rescored:.4f} dB, the run gave {psnr:.4f} dB: the model keeps state outside its "
                            "parameters and buffers (a plain tensor attribute?); register it with "
                            "register_buffer so that the checkpoint holds it"))
                    detail += (f", {runs[0].protocol.steps_per_epoch} training steps, checkpoint, tiled "
                               f"evaluation (tile {size['tile']} LR px), {results.METRICS_FILE}, re-scored from "
                               "the checkpoint")
                else:
                    detail += f", not trainable, tiled evaluation (tile {size['tile']} LR px), {results.METRICS_FILE}"
                seconds = time.perf_counter() - start
                return CheckResult("cell", scale, "pass", f"{detail}: PSNR {psnr:.2f} dB, {seconds:.1f} s",
                                   {"psnr": psnr, "seconds": seconds})
            except Exception as error:  # noqa: BLE001 - any failure of the real path is the check's result
                if phase == "run":
                    phase = _phase(directory, results)
                return CheckResult("cell", scale, "fail", f"{phase}: {describe_error(error)}")
    finally:
        torch.set_num_threads(previous_threads)


def _phase(directory: Optional[Path], results) -> str:
    """Where a failed ``run_cell`` stopped, from what it left in the run folder."""
    if directory is None:
        return "build"
    if (directory / results.CHECKPOINT_FILE).is_file():
        return "evaluation"
    if (directory / results.CONFIG_FILE).is_file():
        return "training"
    return "build"
