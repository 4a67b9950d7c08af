"""The engine's consumer of a plan: every :class:`~hsisr_bench.engine.plan.Cell` end to end, in order.

:func:`execute` is what ``hsibench run | train | evaluate`` call; :func:`run_cell` does one cell:

1. **prepare** (every rank): open the data, build the model from the seed, resolve the config;
2. **decide** (rank 0 only): skip a finished run, refuse a clashing or locked folder, take the lock,
   with ``--force`` move a finished result aside (kept until the new one is complete, put back if it
   fails), cut the test regions and check them against the stored targets.
   The decision (go, skip or the error) is broadcast, so every rank returns or raises together;
3. **train** (every rank, DDP when distributed): rank 0 builds the patch-bank cache first, the other
   ranks then map the same files;
4. **evaluate** (rank 0): fp32 forward passes on the test regions (AMP only with ``eval_amp``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch.nn as nn

from hsisr_bench import results
from hsisr_bench.contract import preflight_model
from hsisr_bench.engine import distributed, failures
from hsisr_bench.engine.evaluate import (CellData, CellOutcome, EvalImage, eval_image, evaluate_run, make_model,
                                         make_patch_bank, open_cell_data, resolve_config, train_settings,
                                         validation)
from hsisr_bench.engine.plan import Cell, data_key, split_notes
from hsisr_bench.engine.train import load_checkpoint, output_crop_of, train
from hsisr_bench.engine.checkpoint import restore_model
from hsisr_bench.errors import ConfigError, DataError, HsiBenchError, ResultsError
from hsisr_bench.registry import MethodInfo, OutputCrop, get_method_info


@dataclass
class PreparedCell:
    """A cell with everything built that every rank needs: data, network, crop and resolved config."""

    cell: Cell
    data: CellData
    info: MethodInfo
    model: nn.Module
    crop: OutputCrop
    resolved: dict
    weights: Optional[object] = None  # the WeightsFile of ``hsibench evaluate --weights``


def open_plan_data(cells: Sequence[Cell]) -> dict:
    """Open every (dataset, split) of the cells once and run the cheap pre-flight checks on every scene
    any cell will read, so missing or broken data fails before the first cell starts."""
    opened = {}
    for cell in cells:
        key = data_key(cell.run)
        if key not in opened:
            opened[key] = open_cell_data(cell.run)
    for data in opened.values():
        preflight = getattr(data.dataset, "preflight", None)
        if callable(preflight):
            preflight(list(data.train) + list(data.val) + list(data.test))
    return opened


def prepare(cell: Cell, data: Optional[CellData] = None, weights: Optional[Path] = None, *,
            allow_train_overlap: bool = False) -> PreparedCell:
    """Open the cell's data (unless given), build its network and resolve its config (every rank).

    With ``weights`` (``hsibench evaluate --weights FILE``) the network is loaded from that file, after
    checking that it belongs to this method, scale and options; its sha256 joins the run's identity.
    """
    run = cell.run
    info = get_method_info(run.method.name)
    data = data if data is not None else open_cell_data(run)
    first = data.dataset.load(data.train[0])  # a training scene: every rank reads those anyway
    side = min(run.protocol.test_region, *first.cube.shape[-2:])
    if side < run.scale:  # before any network is built for an impossible scale (x1000 would need gigabytes)
        raise DataError(f"x{run.scale} needs test regions of at least {run.scale} pixels; dataset "
                        f"'{run.dataset.name}' scene {first.name} is {first.cube.shape[-2]}x{first.cube.shape[-1]} "
                        f"and the test region is {run.protocol.test_region}. Use a smaller --scale.")
    bands = int(first.bands)
    loaded = None
    if weights is not None:
        from hsisr_bench.weights import load_weights

        model, loaded = load_weights(weights, method=run.method.name, scale=run.scale, bands=bands,
                                     options=run.effective_options(), variant=run.method.variant)
        _check_train_overlap(loaded, run, data, allow_train_overlap)
    else:
        model = make_model(run, bands)
    # One tiny forward checks the method's contract (shape, crop, finite output) before any work.
    preflight_model(model, info, bands=bands, scale=run.scale)
    crop = output_crop_of(model, info)
    resolved = resolve_config(run, data, info, crop, cell.device, None if loaded is None else loaded.sha256)
    return PreparedCell(cell, data, info, model, crop, resolved, loaded)


def _check_train_overlap(loaded, run, data: CellData, allow: bool) -> None:
    """Refuse (unless ``allow``) to score weights on test scenes they were trained on, by the split the
    weights file records; the overlap is kept on ``loaded`` for metrics.json and the report's notes."""
    from hsisr_bench.weights import training_overlap

    loaded.train_overlap = training_overlap(loaded, run.dataset.name, data.test)
    if loaded.train_overlap and not allow:
        raise ConfigError(f"{loaded.path} was trained on {len(loaded.train_overlap)} of the test scenes of "
                          f"{run.dataset.name} ({', '.join(loaded.train_overlap)}), by the split it records: its "
                          f"scores would not measure generalisation. Use another --split-file or dataset, or pass "
                          f"--allow-train-overlap (recorded in metrics.json and flagged in every table).")


# ------------------------------------------------------------------------------------- the decision


def _test_images(prep: PreparedCell) -> list[EvalImage]:
    run = prep.cell.run
    return [eval_image(prep.data.dataset.load(name).cube, name, run.protocol.test_region, run.scale)
            for name in prep.data.test]


def _decide(prep: PreparedCell, force: bool, mode: str, notify: Callable[[str], None]):
    """Rank 0's decision: ``("skip", metrics)`` or ``("go", (lock, images, kept))``; raises what stops the cell.

    Everything that can fail on the inputs (a clashing folder, a test region too small for the scale)
    fails before the run folder is created or touched. ``--force`` over a finished run moves that result
    aside (``kept``: :data:`~hsisr_bench.results.PREVIOUS_DIR` holds it) instead of deleting it: the
    caller deletes it once the new run is complete and puts it back when the new run fails.
    """
    cell, run = prep.cell, prep.cell.run
    directory = cell.directory
    replace = force and mode != "evaluate"
    lock, kept = None, False
    # An earlier --force replacement of this folder did not finish: sort it out under the lock first.
    if results.previous_state(directory) is not None:
        lock = results.RunLock(directory, notify).acquire()
    try:
        if lock is not None:
            _recover_previous(prep, replace, notify)
        try:
            state = "new" if replace else results.run_state(directory, prep.resolved)
        except ResultsError as error:
            if not force:
                raise
            # evaluate --force only re-scores the same run: advising "--force" again would not help.
            raise ResultsError(str(error).split("\nRerun with --force")[0].split(" Rerun with --force")[0]
                               + f"\n'hsibench evaluate --force' re-scores the same run only (its checkpoint or "
                               f"weights are kept); it does not replace another run. Write to another folder with "
                               f"--out, or delete {directory} first.") from None
        if state == "finished" and not force:
            if lock is not None:
                lock.release()
            return "skip", results.read_json(directory / results.METRICS_FILE)
        if (mode == "evaluate" and prep.info.trainable and prep.weights is None
                and finished_checkpoint(directory, run.protocol.epochs) is None):
            raise ResultsError(f"{directory} holds no completed training of this run. Train it first with "
                               f"'hsibench train' (same options), or use 'hsibench run'.")
        images = _test_images(prep)  # a scale too large for the region fails here, before any folder exists
        results.ensure_writable(cell.out_dir)
        lock = lock or results.RunLock(directory, notify).acquire()
        results.remove_stale_temporaries(directory)
        # A clash with the targets already stored fails before any training.
        for image in images:
            results.check_or_write_target(cell.out_dir, run.dataset.name, run.scale, image.name, image.hr)
        results.write_wavelengths(cell.out_dir, run.dataset.name, run.scale, prep.data.wavelengths)
        if replace:
            if results.is_finished(directory) or results.previous_state(directory) == "complete":
                results.set_aside_run(directory)  # kept until the new run is complete
            else:
                results.clear_run(directory)  # nothing finished to keep
        kept = results.previous_state(directory) == "complete"
        results.write_json(directory / results.CONFIG_FILE, prep.resolved)
    except BaseException as error:
        if kept and not isinstance(error, KeyboardInterrupt):
            _put_back(directory, notify)
        if lock is not None:
            lock.release()
        raise
    return "go", (lock, images, kept)


def _recover_previous(prep: PreparedCell, replace: bool, notify: Callable[[str], None]) -> None:
    """Settle a finished result kept by a ``--force`` replacement that did not finish (killed, or Ctrl-C).

    Kept while the folder holds the replacement's resumable run of this same config (the command of the
    Ctrl-C message continues it), or when this is a new ``--force`` replacement; deleted when the
    replacement did finish; put back otherwise (the folder then reads as before the ``--force``).
    """
    directory = prep.cell.directory
    previous = directory / results.PREVIOUS_DIR
    if results.previous_state(directory) == "partial":  # cut short while moving: nothing new was written yet
        results.restore_previous(directory)
        notify(f"    put back the finished result of {directory} (an earlier --force was cut short)")
        return
    if results.is_finished(directory):  # the replacement finished; only deleting the old result was cut short
        results.discard_previous(directory)
        return
    if replace:
        return
    try:
        same = results.read_json(directory / results.CONFIG_FILE).get("run_id") == prep.resolved["run_id"]
    except (ResultsError, AttributeError):
        same = False
    if same and (directory / results.CHECKPOINT_FILE).is_file():
        notify(f"    continuing the unfinished --force replacement in {directory}; the previous result stays in "
               f"{previous} until it finishes and is put back if it fails")
        return
    results.restore_previous(directory)
    notify(f"    put back the finished result of {directory} kept by an earlier --force that did not finish "
           f"(its unfinished replacement was deleted)")


def _put_back(directory: Path, notify: Callable[[str], None]) -> None:
    """After a failed replacement: the kept finished result back in place of the unfinished new one."""
    try:
        results.restore_previous(directory)
    except OSError as error:
        notify(f"WARNING: could not put back the previous result kept in {directory / results.PREVIOUS_DIR} "
               f"({error}); the next run of this folder puts it back.")
        return
    notify(f"    the replacement failed: the previous finished result of {directory} was put back (to replace "
           f"it, run the command with --force again once the cause is fixed)")


def _shared_decision(prep: PreparedCell, force: bool, mode: str, notify: Callable[[str], None]):
    """Run :func:`_decide` on rank 0 and tell every rank the outcome before anyone returns or raises."""
    if not prep.cell.is_main:
        kind, payload = distributed.broadcast_object(None)
        if kind == "error":
            raise ResultsError(f"rank 0 stopped this cell: {payload}")
        return kind, (payload if kind == "skip" else None)
    try:
        kind, payload = _decide(prep, force, mode, notify)
    except HsiBenchError as error:
        distributed.broadcast_object(("error", str(error)))
        raise
    except BaseException as error:
        distributed.broadcast_object(("error", f"{type(error).__name__}: {error}"))
        raise
    distributed.broadcast_object((kind, payload if kind == "skip" else None))
    return kind, payload


# ------------------------------------------------------------------------------------------ a cell


def run_cell(cell: Cell, *, force: bool = False, progress: Optional[bool] = None, notify: Callable[[str], None] = print,
             mode: str = "run", data: Optional[CellData] = None, weights: Optional[Path] = None,
             allow_train_overlap: bool = False) -> CellOutcome:
    """Train (if needed) and evaluate one cell, storing everything in its run folder.

    A finished run is skipped unless ``force``; an interrupted one resumes from its checkpoint.

    Args:
        cell: the planned cell (config, results root, device, rank).
        force: recompute a finished run, or replace a run folder of another config or version
            (``mode="evaluate"``: only re-score, the checkpoint is kept).
        progress: progress bars (``None``: a bar on a terminal, one line per epoch otherwise).
        notify: prints messages.
        mode: ``run`` (train if needed, then evaluate), ``train`` (stop after training) or
            ``evaluate`` (score a run whose training is complete).
        data: the cell's opened data, when the caller already has it.
        weights: score this weights file instead of training (``mode="evaluate"`` only).
        allow_train_overlap: score ``weights`` even on test scenes the file records as its training
            scenes (recorded in metrics.json as ``weights.train_overlap``); refused otherwise.

    Returns:
        A :class:`~hsisr_bench.engine.evaluate.CellOutcome`.

    Raises:
        ResultsError: the run folder holds another config or version (without ``force``), is locked,
            the output folder is not writable, or (``evaluate``) training is not complete.
        DataError, ConfigError, MethodError, TrainingError: see the data layer and the training loop.
    """
    from hsisr_bench.engine.environment import apply_tf32

    if weights is not None and mode != "evaluate":
        raise ConfigError("--weights scores given weights: use it with 'hsibench evaluate', not with training.")
    apply_tf32(cell.run.tf32)
    with failures.phase("build"):
        prep = prepare(cell, data, weights, allow_train_overlap=allow_train_overlap)
    with failures.phase("decide"):
        kind, payload = _shared_decision(prep, force, mode, notify)
    if kind == "skip":
        return CellOutcome("skipped", cell.directory, payload)
    lock, images, kept = payload if payload is not None else (None, None, False)
    try:
        outcome = _train_and_evaluate(prep, images, progress, notify, mode)
    except KeyboardInterrupt:
        # Ctrl-C keeps both: the new run resumes with the same command (without --force), the old result
        # stays in .previous until then (see _recover_previous).
        if kept:
            notify(f"    the previous finished result stays in {cell.directory / results.PREVIOUS_DIR} until this "
                   f"run finishes; a run of another config puts it back")
        raise
    except BaseException:
        if kept:
            _put_back(cell.directory, notify)
        raise
    else:
        if kept:  # the new result is complete: only now is the old one deleted
            results.discard_previous(cell.directory)
        return outcome
    finally:
        if lock is not None:
            lock.release()


def finished_checkpoint(directory: Path, epochs: int) -> Optional[dict]:
    """The run's checkpoint when its training is complete (``epochs`` done), else ``None``."""
    path = directory / results.CHECKPOINT_FILE
    if not path.is_file():
        return None
    state = load_checkpoint(path)
    return state if int(state["epoch"]) >= epochs else None


def _train_and_evaluate(prep: PreparedCell, images: Optional[list[EvalImage]], progress: Optional[bool],
                        notify: Callable[[str], None], mode: str) -> CellOutcome:
    cell, run = prep.cell, prep.cell.run
    mean, train_seconds, epochs_done, extra, trained_here = None, 0.0, 0, None, False
    if prep.weights is not None:  # released weights: nothing to train
        mean = np.asarray(prep.weights.band_mean, dtype=np.float32)
        extra = {"weights": {"file": str(prep.weights.path), "sha256": prep.weights.sha256,
                             "train_overlap": list(getattr(prep.weights, "train_overlap", []))}, "external": False}
    elif prep.info.trainable:
        with failures.phase("train"):
            mean, train_seconds, epochs_done, trained_here = _train_or_load(prep, progress, notify)
    if not cell.is_main or mode == "train":
        return CellOutcome("trained", cell.directory)
    with failures.phase("evaluate"):
        metrics = evaluate_run(run, prep.info, prep.model, prep.crop, images, mean, prep.resolved, cell.directory,
                               cell.device, train_seconds, epochs_done, extra, trained_here=trained_here)
    return CellOutcome("finished", cell.directory, metrics)


def _train_or_load(prep: PreparedCell, progress: Optional[bool],
                   notify: Callable[[str], None]) -> tuple[np.ndarray, float, int, bool]:
    """Train the cell, or load its complete training: ``(band mean, seconds, epochs, trained here)``."""
    cell, run = prep.cell, prep.cell.run
    done = finished_checkpoint(cell.directory, run.protocol.epochs)  # every rank takes the same path
    if done is not None:  # training complete (e.g. killed while evaluating): load, do not rebuild patches
        if done["config"].get("run_id") != prep.resolved["run_id"]:
            raise ResultsError(f"{cell.directory / results.CHECKPOINT_FILE} belongs to run "
                               f"{done['config'].get('run_id')}, not {prep.resolved['run_id']}. Rerun with "
                               f"--force or use another --out.")
        restore_model(prep.model, done["model"], cell.directory / results.CHECKPOINT_FILE)
        mean = done["band_mean"].numpy()
        return mean, sum(float(r["seconds"]) for r in done["log"]), len(done["log"]), False
    # trained here: the runtime record then states the training's cuDNN autotuning
    return (*_train(prep, progress, notify), True)


def _train(prep: PreparedCell, progress: Optional[bool], notify: Callable[[str], None]) -> tuple[np.ndarray, float, int]:
    from hsisr_bench.data.patches import band_mean

    cell, run, data = prep.cell, prep.cell.run, prep.data
    scenes = [data.dataset.load(name) for name in data.train]
    mean = np.asarray(band_mean(scenes), dtype=np.float32)
    cache = Path(cell.out_dir) / ".cache" / "patches"
    # Rank 0 computes and writes the LR-patch cache; the other ranks wait, then map the same files.
    bank = make_patch_bank(run, scenes, cache_dir=cache) if cell.is_main else None
    distributed.barrier()
    if bank is None:
        bank = make_patch_bank(run, scenes, cache_dir=cache)
    del scenes
    validate = None
    if data.val and cell.is_main:
        val_images = [eval_image(data.dataset.load(n).cube, n, run.protocol.val_region, run.scale) for n in data.val]
        validate = validation(prep.info, val_images, prep.crop, mean, run.scale, cell.device, run.protocol.tile)
    outcome = train(prep.model, prep.info, bank, mean, scale=run.scale,
                    settings=train_settings(run, cell.device, progress), run_dir=cell.directory,
                    config=prep.resolved, validate=validate, notify=notify,
                    label=f"{run.dataset.name} x{run.scale} {run.label}")
    return mean, outcome.seconds, len(outcome.log)


# ---------------------------------------------------------------------------------------- the plan


def execute(cells: Sequence[Cell], *, force: bool = False, progress: Optional[bool] = None, mode: str = "run",
            notify: Callable[[str], None] = print, resume_command: Optional[str] = None,
            weights: Optional[Path] = None, allow_train_overlap: bool = False,
            argv: Optional[Sequence[str]] = None) -> list[dict]:
    """Run every cell in order (``mode``: ``run``, ``train`` or ``evaluate``); return the finished records.

    Every dataset is opened and pre-flight checked before the first cell, so bad data never stops a
    plan half-way. A cell that fails (a method raising in training or evaluation, a held lock) stops
    that cell only: ``Error: <cell>: <phase>: <message>`` and the command that continues it are printed,
    its checkpoint is kept, the next cells run, and the plan ends with
    :class:`~hsisr_bench.errors.CellsFailed`. On Ctrl-C the message names ``resume_command`` (the
    command without ``--force``). ``argv``: the command's arguments, to print the continue command.
    """
    if not cells:
        return []
    opened = open_plan_data(cells)
    for note in split_notes(opened):  # loudly, before any work: the experiment differs from the split file
        notify(f"WARNING: {note}")
    records, failed = [], []
    for cell in cells:
        notify(f"[{cell.index}/{cell.total}] {cell.describe()}")
        try:
            outcome = run_cell(cell, force=force, progress=progress, notify=notify, mode=mode,
                               data=opened[data_key(cell.run)], weights=weights,
                               allow_train_overlap=allow_train_overlap)
        except KeyboardInterrupt:
            again = resume_command or "the same command again"
            notify(f"Interrupted. To resume from the last checkpoint, run: {again}")
            raise
        except Exception as error:  # this cell only: the others still run
            failure = failures.record_failure(cell.describe(), error)
            failed.append(failure)
            notify(f"Error: {failure.cell}: {failure.phase}: {failure.message}")
            details = failures.traceback_text(error)
            if details:
                notify(details.rstrip())
            notify(f"    To continue this cell once fixed: {failures.continue_command(cell.run, failure.phase, argv)}")
            continue
        if outcome.status == "skipped":
            notify(f"    already finished in {outcome.directory} (use --force to recompute)")
        elif outcome.metrics is not None:
            m = outcome.metrics["mean"]
            notify(f"    PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, SAM {m['sam']:.2f} deg "
                   f"(train {outcome.metrics['train_seconds']:.0f} s) -> {outcome.directory}")
        else:
            notify(f"    trained -> {outcome.directory}")
        if outcome.metrics is not None:
            records.append(outcome.metrics)
    # Under torchrun only rank 0 evaluates: every rank learns of its failures, so every rank exits non-zero.
    main_failed = distributed.broadcast_object(failed if cells[0].is_main else None)
    failures.raise_if_failed(failed if cells[0].is_main else (failed or main_failed or []), len(cells), records)
    return records
