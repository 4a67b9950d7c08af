"""``hsibench run`` (a grid of cells), ``hsibench train`` and ``hsibench evaluate`` (one cell).

Every bad input (unknown method, dataset, profile or experiment; a bad scale; missing data; an
unwritable or clashing output folder) is a :class:`~hsisr_bench.errors.HsiBenchError`, which the CLI
prints as ``Error: ...`` with exit code 2 before any result is touched.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Optional, Sequence

import click
from tabulate import tabulate

from hsisr_bench import config, results
from hsisr_bench.config import RunConfig
from hsisr_bench.errors import ConfigError


def _common_options(func):
    """Options shared by run, train and evaluate."""
    options = [
        click.option("--data-root", type=click.Path(path_type=Path), default=None,
                     help="Data root (else $HSIBENCH_DATA, else ./data). Not needed for the synthetic dataset."),
        click.option("--profile", default="quick", show_default=True,
                     help="Protocol profile: paper, quick or smoke (configs/protocols)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
        click.option("--amp", default="none", show_default=True, help="Mixed precision on CUDA: none, bf16 or fp16."),
        click.option("--out", type=click.Path(path_type=Path), default=Path("results"), show_default=True,
                     help="Results folder."),
        click.option("--epochs", type=int, default=None, help="Override the profile's epochs."),
        click.option("--force", is_flag=True, help="Recompute finished runs and replace clashing run folders."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override any config field, e.g. --set protocol.epochs=3 (repeatable; several "
                          "space-separated KEY=VALUE pairs in one --set are accepted too)."),
        click.option("--split-file", type=click.Path(path_type=Path), default=None,
                     help="A split JSON to use instead of the canonical or seeded split."),
        click.option("--progress/--no-progress", default=None, help="Progress bars (default: when on a terminal)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _split_overrides(overrides: Sequence[str]) -> list[str]:
    """Split ``--set "a=1 b=[1, 2]"`` into ``["a=1", "b=[1, 2]"]``: a new pair starts at each ``key=``."""
    parts: list[str] = []
    for text in overrides:
        for piece in text.split():
            if _KEY.match(piece) or not parts:
                parts.append(piece)
            else:
                parts[-1] += " " + piece  # a value that contained spaces
    return parts


_KEY = re.compile(r"^[A-Za-z_][\w.]*=")


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seed {text!r}: expected an integer or a comma-separated list (e.g. 0,1,2).") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seed {text!r}: seeds must be integers >= 0.")
    return seeds


def _plan(methods, dataset, scale, seed, experiment, data_root, profile, device, amp, epochs, overrides,
          split_file) -> list[RunConfig]:
    datasets = [d.strip() for d in dataset.split(",") if d.strip()] if dataset else None
    scales = config.parse_scales(scale) if scale else None
    seeds = _seeds(seed) if seed is not None else None
    if not experiment and not methods:
        raise ConfigError("Give --methods (e.g. --methods ssrnet,edsr or --methods all) or --experiment.")
    return config.plan_runs(
        methods=methods, datasets=datasets, scales=scales, seeds=seeds, profile=profile, experiment=experiment,
        overrides=_split_overrides(overrides), device=device, amp=amp,
        data_root=None if data_root is None else str(data_root),
        split_file=None if split_file is None else str(split_file), epochs=epochs,
    )


def _echo(message: str) -> None:
    from hsisr_bench.engine import distributed

    if distributed.current().is_main:
        click.echo(message, err=True)


def _check_data(runs: Sequence[RunConfig]) -> dict:
    """Open every (dataset, options) once before any work, so missing data fails early."""
    from hsisr_bench.engine.evaluate import open_cell_data

    opened = {}
    for run in runs:
        key = (run.dataset, run.protocol.split_seed, run.protocol.val_scenes)
        if key not in opened:
            opened[key] = open_cell_data(run)
    return opened


def print_plan(runs: Sequence[RunConfig], out: Path) -> None:
    """Print what ``hsibench run`` would do: cells, scenes, patches, epochs (``--dry-run``)."""
    from hsisr_bench.registry import get_method_info

    opened = _check_data(runs)
    rows = []
    for run in runs:
        data = opened[(run.dataset, run.protocol.split_seed, run.protocol.val_scenes)]
        info = get_method_info(run.method.name)
        p = run.protocol
        if info.trainable:
            copies = 5 if p.augment else 1
            patches = len(data.train) * len(p.rescales) * p.patches_per_image * copies
            batch = min(p.batch_size, patches) if not p.steps_per_epoch else p.batch_size
            steps = p.steps_per_epoch or max(1, patches // batch)
            training = f"{patches} patches, {p.epochs} epochs x {steps} steps of {batch}"
        else:
            training = "no training"
        directory = results.run_dir(out, run.dataset.name, run.scale, run.label, run.seed)
        rows.append([run.dataset.name, f"x{run.scale}", run.label, run.seed,
                     f"{len(data.train)}/{len(data.val)}/{len(data.test)}", training, _state(directory)])
    click.echo(f"Plan: {len(runs)} cell(s), profile '{runs[0].protocol.name}', output {out}")
    click.echo(tabulate(rows, headers=["dataset", "scale", "method", "seed", "train/val/test scenes",
                                       "training", "folder"]))
    notes = {f"{key[0].name}: {data.split.note}" for key, data in opened.items() if data.split.note}
    for note in sorted(notes):
        click.echo(f"Split note: {note}")
    for run in runs:
        overrides = run.protocol.method_overrides.get(run.method.name)
        if overrides:
            click.echo(f"Profile '{run.protocol.name}' overrides {run.method.name}: {dict(overrides)}")
            break


def _state(directory: Path) -> str:
    if (directory / results.METRICS_FILE).is_file():
        return "finished (skipped)"
    if (directory / results.CHECKPOINT_FILE).is_file():
        return "resume"
    return "new"


def summary(records: Sequence[dict]) -> str:
    """The Table V-style summary of finished runs (the report layer's compact table)."""
    from hsisr_bench.report.tables import summary_table

    return summary_table(records)


def execute(runs: Sequence[RunConfig], out: Path, *, force: bool, progress: Optional[bool],
            mode: str = "run") -> list[dict]:
    """Run every cell in order (``mode``: ``run``, ``train`` or ``evaluate``); return the finished records."""
    from hsisr_bench.engine import distributed
    from hsisr_bench.engine.evaluate import run_cell

    _check_data(runs)  # missing data fails before anything is written
    results.ensure_writable(out)
    show = sys.stderr.isatty() if progress is None else progress
    records = []
    for index, run in enumerate(runs, 1):
        _echo(f"[{index}/{len(runs)}] {run.dataset.name} x{run.scale} {run.label} seed {run.seed} "
              f"(profile {run.protocol.name})")
        try:
            outcome = run_cell(run, out, force=force, progress=show, notify=_echo, mode=mode)
        except KeyboardInterrupt:
            _echo("Interrupted. Run the same command again to resume from the last checkpoint.")
            raise
        if outcome.status == "skipped":
            _echo(f"    already finished in {outcome.directory} (use --force to recompute)")
        elif outcome.metrics is not None:
            m = outcome.metrics["mean"]
            _echo(f"    PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, SAM {m['sam']:.2f} deg "
                  f"(train {outcome.metrics['train_seconds']:.0f} s) -> {outcome.directory}")
        else:
            _echo(f"    trained -> {outcome.directory}")
        if outcome.metrics is not None:
            records.append(outcome.metrics)
    if not distributed.current().is_main:
        return records
    return records


@click.command()
@click.option("--methods", default=None, help="Comma-separated methods (name or name+variant), or 'all'.")
@click.option("--dataset", default=None, help="Dataset(s), comma-separated: cave, harvard, foster, synthetic, generic.")
@click.option("--scale", default=None, help="Scale(s), comma-separated integers >= 2, e.g. 2,3,4.")
@click.option("--seed", default=None, help="Seed(s), comma-separated (default 0).")
@click.option("--experiment", default=None, help="An experiment grid (configs/experiments), e.g. table2_ablation.")
@click.option("--dry-run", is_flag=True, help="Print the plan (cells, scenes, patches, epochs) and stop.")
@_common_options
def run(methods, dataset, scale, seed, experiment, dry_run, data_root, profile, device, amp, out, epochs, force,
        overrides, split_file, progress) -> None:
    """Train and evaluate methods on datasets and scales, then print a Table V-style summary.

    Example: hsibench run --methods bicubic,edsr,ssrnet --dataset synthetic --scale 2 --profile quick
    """
    from hsisr_bench.engine import distributed

    runs = _plan(methods, dataset, scale, seed, experiment, data_root, profile, device, amp, epochs, overrides,
                 split_file)
    if dry_run:
        print_plan(runs, out)
        return
    distributed.init_from_env(runs[0].device if runs[0].device != "auto" else "cpu")
    records = execute(runs, out, force=force, progress=progress)
    if distributed.current().is_main and records:
        click.echo("")
        click.echo(summary(records))
        overrides_used = {r["method"]: r["profile_overrides"] for r in records if r.get("profile_overrides")}
        for method, options in overrides_used.items():
            click.echo(f"Note: profile '{records[0]['profile']}' runs {method} with {options} (not the paper's size).")
        if any(r.get("output_crop", {}).get("bands") for r in records):
            click.echo("Note: 3D-FCNN is scored on the aligned part of HR it produces: bands 5 to L-4 (1-based; "
                       "5-27 of 31) with a 6-pixel border removed.")


def _one_cell(method, dataset, scale, seed, data_root, profile, device, amp, epochs, overrides,
              split_file) -> RunConfig:
    if "," in method:
        raise ConfigError(f"--method {method!r}: give one method (use 'hsibench run' for several).")
    scales = config.parse_scales(scale)
    if len(scales) != 1:
        raise ConfigError(f"--scale {scale!r}: give one scale (use 'hsibench run' for several).")
    runs = _plan(method, dataset, scale, str(seed), None, data_root, profile, device, amp, epochs, overrides,
                 split_file)
    return runs[0]


@click.command()
@click.option("--method", required=True, help="One method (name or name+variant).")
@click.option("--dataset", required=True, help="One dataset.")
@click.option("--scale", required=True, help="One integer scale >= 2.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed.")
@_common_options
def train(method, dataset, scale, seed, data_root, profile, device, amp, out, epochs, force, overrides, split_file,
          progress) -> None:
    """Train one cell (checkpoint and train_log.csv in its run folder; resumes if interrupted).

    Multi-GPU: torchrun --nproc_per_node 2 -m hsisr_bench.cli train ... (gloo on CPU, NCCL on CUDA).
    """
    from hsisr_bench.engine import distributed

    cell = _one_cell(method, dataset, scale, seed, data_root, profile, device, amp, epochs, overrides, split_file)
    distributed.init_from_env(cell.device if cell.device != "auto" else "cpu")
    execute([cell], out, force=force, progress=progress, mode="train")


@click.command()
@click.option("--method", required=True, help="One method (name or name+variant).")
@click.option("--dataset", required=True, help="One dataset.")
@click.option("--scale", required=True, help="One integer scale >= 2.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed.")
@_common_options
def evaluate(method, dataset, scale, seed, data_root, profile, device, amp, out, epochs, force, overrides,
             split_file, progress) -> None:
    """Evaluate one trained cell (after ``hsibench train``) and write its metrics."""
    cell = _one_cell(method, dataset, scale, seed, data_root, profile, device, amp, epochs, overrides, split_file)
    records = execute([cell], out, force=force, progress=progress, mode="evaluate")
    if records:
        click.echo(summary(records))
