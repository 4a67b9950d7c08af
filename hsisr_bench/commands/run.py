"""``hsibench run`` (a grid of cells), ``hsibench train`` and ``hsibench evaluate`` (one cell).

Every bad input (unknown method, dataset, profile or experiment; a bad scale; missing data; an
unwritable or clashing output folder) is a :class:`~hsisr_bench.errors.HsiBenchError`, which the CLI
prints as ``Error: ...`` with exit code 2 before any result is touched.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

import click

from hsisr_bench import config
from hsisr_bench.config import RunConfig
from hsisr_bench.errors import CellsFailed, ConfigError
from hsisr_bench.plugins import plugin_option


def _common_options(func):
    """Options shared by run, train and evaluate."""
    options = [
        click.option("--data-root", type=click.Path(path_type=Path), default=None,
                     help="Data root (else $HSIBENCH_DATA, else ./data). Not needed for the synthetic dataset."),
        click.option("--profile", default="quick", show_default=True,
                     help="Protocol profile: paper, quick or smoke (configs/protocols)."),
        click.option("--device", default="auto", show_default=True,
                     help="auto, cpu, cuda or cuda:<index> (under torchrun, cuda is cuda:<LOCAL_RANK>)."),
        click.option("--amp", default="none", show_default=True,
                     help="Mixed precision of training: none, bf16 (CUDA, or a CPU with bf16) or fp16 (CUDA)."),
        click.option("--eval-amp", is_flag=True,
                     help="Score with the --amp forward too (default: test metrics from an fp32 forward)."),
        click.option("--tf32", default="default", show_default=True,
                     help="TF32 for float32 matmuls/convolutions on CUDA: default (PyTorch's), on or off."),
        click.option("--compile", "compile_model", is_flag=True, help="Train the model through torch.compile."),
        click.option("--threads", type=int, default=None,
                     help="CPU threads for PyTorch (default: $OMP_NUM_THREADS, else every core)."),
        click.option("--out", "--results", "out", type=click.Path(path_type=Path), default=Path("results"),
                     show_default=True, help="Results folder (the store that 'report --results' and "
                                             "'figures --results' read)."),
        click.option("--epochs", type=int, default=None, help="Override the profile's epochs."),
        click.option("--force", is_flag=True, help="Recompute finished runs and replace clashing run folders."),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override any config field, e.g. --set protocol.epochs=3 (repeatable; several "
                          "space-separated KEY=VALUE pairs in one --set are accepted too)."),
        click.option("--split-file", type=click.Path(path_type=Path), default=None,
                     help="A split JSON to use instead of the canonical or seeded split."),
        click.option("--progress/--no-progress", default=None, help="Progress bars (default: when on a terminal)."),
        click.option("--dist-timeout", type=float, default=None, metavar="SECONDS",
                     help="Under torchrun: how long a process waits for the others, e.g. while rank 0 evaluates "
                          "alone (default $HSIBENCH_DIST_TIMEOUT, else 21600 = 6 hours)."),
    ]
    for option in reversed(options):
        func = option(func)
    return plugin_option(func)


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
          split_file, eval_amp=False, tf32="default", compile_model=False, **_) -> list[RunConfig]:
    datasets = [d.strip() for d in dataset.split(",") if d.strip()] if dataset else None
    scales = config.parse_scales(scale) if scale else None
    seeds = _seeds(seed) if seed is not None else None
    if not experiment and not methods:
        raise ConfigError("Give --methods (e.g. --methods ssrnet,edsr or --methods all) or --experiment.")
    return config.plan_runs(
        methods=methods, datasets=datasets, scales=scales, seeds=seeds, profile=profile, experiment=experiment,
        overrides=_split_overrides(overrides) + _flag_overrides(eval_amp, tf32, compile_model), device=device, amp=amp,
        data_root=None if data_root is None else str(data_root),
        split_file=None if split_file is None else str(split_file), epochs=epochs,
    )


def _flag_overrides(eval_amp: bool, tf32: str, compile_model: bool) -> list[str]:
    """The precision flags as ``--set`` overrides, so they are checked and recorded like any field."""
    flags = [f"tf32={json.dumps(tf32)}"] if tf32 != "default" else []
    return flags + (["eval_amp=true"] if eval_amp else []) + (["compile=true"] if compile_model else [])


def _echo(message: str) -> None:
    from hsisr_bench.engine import distributed

    if distributed.current().is_main:
        click.echo(message, err=True)


def summary(records: Sequence[dict]) -> str:
    """The Table V-style summary of finished runs, as plain text for the terminal."""
    from hsisr_bench.report.tables import summary_table

    return summary_table(records)


def _resume_command(argv: Sequence[str]) -> str:
    """The command line that resumes an interrupted one: the same arguments without ``--force``."""
    kept = [arg for arg in argv if arg != "--force"]
    return " ".join(["hsibench", *(shlex.quote(arg) for arg in kept)])


def _start(runs: Sequence[RunConfig], out: Path, shard: Optional[str], threads: Optional[int],
           dist_timeout: Optional[float] = None):
    """Set threads, resolve the device and join torchrun's process group; return this process's plan."""
    from hsisr_bench.engine import distributed
    from hsisr_bench.engine.environment import describe_threads, set_threads
    from hsisr_bench.engine.plan import parse_shard, plan_cells

    parsed_shard = parse_shard(shard)
    # under torchrun (OMP_NUM_THREADS=1 from torchrun) rank 0's lone CPU work gets the cores of its local rank
    set_threads(threads if threads is not None else distributed.threads_per_local_rank())
    requested = {run.device for run in runs}
    if len(requested) > 1:
        raise ConfigError(f"The planned cells ask for different devices ({', '.join(sorted(requested))}); one "
                          f"command runs on one device: give --device once.")
    device = distributed.resolve_device(runs[0].device)  # before joining: the backend follows the device
    info = distributed.init_from_env(runs[0].device, timeout=dist_timeout)
    plan = plan_cells(runs, out, device=device, rank=info.rank, world=info.world, shard=parsed_shard)
    world = f", {info.world} processes" if info.world > 1 else ""
    _echo(f"Device {device}{world}; {describe_threads()}. Set OMP_NUM_THREADS or --threads on a busy machine.")
    for note in plan.notes:
        _echo(f"Note: {note}")
    return plan


@click.command()
@click.option("--methods", default=None, help="Comma-separated methods (name or name+variant), or 'all'.")
@click.option("--dataset", default=None, help="Dataset(s), comma-separated: cave, harvard, foster, synthetic, generic.")
@click.option("--scale", default=None, help="Scale(s), comma-separated integers >= 2, e.g. 2,3,4.")
@click.option("--seed", default=None, help="Seed(s), comma-separated (default 0).")
@click.option("--experiment", default=None, help="An experiment grid (configs/experiments), e.g. table2_ablation.")
@click.option("--shard", default=None, metavar="K/N",
              help="Run only shard K of N (cells K, K+N, ...; K from 1) of the plan: a Slurm array or N machines "
                   "sharing one --out folder run the whole grid; 'hsibench report' shows the union.")
@click.option("--dry-run", is_flag=True, help="Print the whole plan (cells, shards, scenes, patches, steps) and what "
                                             "is missing (device, datasets, scenes); run nothing.")
@click.option("--doctor-report", type=click.Path(path_type=Path), default=None,
              help="With --dry-run: a doctor.json ('hsibench doctor --out DIR') to project each cell's training time.")
@_common_options
def run(methods, dataset, scale, seed, experiment, shard, dry_run, doctor_report, **options) -> None:
    """Train and evaluate methods on datasets and scales, then print a Table V-style summary.

    Example: hsibench run --methods bicubic,edsr,ssrnet --dataset synthetic --scale 2 --profile quick
    """
    from hsisr_bench.engine import distributed
    from hsisr_bench.engine.runner import execute

    runs = _plan(methods, dataset, scale, seed, experiment, **options)
    if dry_run:  # no device resolution, no process group, no data needed: engine/preview.py
        from hsisr_bench.engine.preview import is_main_process, preview_plan

        if is_main_process():
            preview_plan(runs, options["out"], shard=shard, doctor_report=doctor_report, echo=click.echo)
        return
    if doctor_report is not None:
        raise ConfigError("--doctor-report projects the training time of a plan: use it with --dry-run.")
    plan = _start(runs, options["out"], shard, options["threads"], options["dist_timeout"])
    failed = None
    try:
        records = execute(plan.cells, force=options["force"], progress=options["progress"], notify=_echo,
                          resume_command=_resume_command(sys.argv[1:]) if options["force"] else None,
                          argv=sys.argv[1:])
    except CellsFailed as error:  # the summary of the cells that ran, then the failures
        failed, records = error, error.records
    if distributed.current().is_main and records:
        click.echo("")
        click.echo(summary(records))
        overrides_used = {r["method"]: r["profile_overrides"] for r in records if r.get("profile_overrides")}
        for method, values in overrides_used.items():
            click.echo(f"Note: profile '{records[0]['profile']}' runs {method} with {values} (not the paper's size).")
        if any(r.get("output_crop", {}).get("bands") for r in records):
            click.echo("Note: 3D-FCNN is scored on the aligned part of HR it produces: bands 5 to L-4 (1-based; "
                       "5-27 of 31) with a 6-pixel border removed.")
        out = shlex.quote(str(options["out"]))
        click.echo(f"Tables and figures: hsibench report --results {out}; hsibench figures --results {out}")
    if failed is not None:
        raise failed


def _one_cell(method, dataset, scale, seed, **options):
    """The plan of ``train``/``evaluate``: exactly one cell."""
    if "," in method:
        raise ConfigError(f"--method {method!r}: give one method (use 'hsibench run' for several).")
    scales = config.parse_scales(scale)
    if len(scales) != 1:
        raise ConfigError(f"--scale {scale!r}: give one scale (use 'hsibench run' for several).")
    runs = _plan(method, dataset, scale, str(seed), None, **options)
    return _start(runs[:1], options["out"], None, options["threads"], options["dist_timeout"])


@click.command()
@click.option("--method", required=True, help="One method (name or name+variant).")
@click.option("--dataset", required=True, help="One dataset.")
@click.option("--scale", required=True, help="One integer scale >= 2.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed.")
@_common_options
def train(method, dataset, scale, seed, **options) -> None:
    """Train one cell (checkpoint and train_log.csv in its run folder; resumes if interrupted).

    Multi-GPU: torchrun --nproc_per_node 2 -m hsisr_bench.cli train ... (gloo on CPU, NCCL on CUDA).
    """
    from hsisr_bench.engine.runner import execute

    plan = _one_cell(method, dataset, scale, seed, **options)
    execute(plan.cells, force=options["force"], progress=options["progress"], mode="train", notify=_echo,
            resume_command=_resume_command(sys.argv[1:]) if options["force"] else None, argv=sys.argv[1:])


@click.command()
@click.option("--method", required=True, help="One method (name or name+variant).")
@click.option("--dataset", required=True, help="One dataset.")
@click.option("--scale", required=True, help="One integer scale >= 2.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed.")
@click.option("--weights", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Score this weights file (a checkpoint.pt, an 'hsibench export-weights' file or a state_dict) "
                   "instead of the cell's own training; its sha256 is recorded.")
@click.option("--allow-train-overlap", is_flag=True,
              help="Score --weights even on test scenes they were trained on (recorded, flagged in every table).")
@_common_options
def evaluate(method, dataset, scale, seed, weights, allow_train_overlap, **options) -> None:
    """Evaluate one trained cell (after ``hsibench train``), or given weights, and write its metrics.

    Example: hsibench evaluate --method ssrnet --dataset cave --scale 4 --weights ssrnet_x4.pt
    """
    from hsisr_bench.engine.runner import execute

    plan = _one_cell(method, dataset, scale, seed, **options)
    records = execute(plan.cells, force=options["force"], progress=options["progress"], mode="evaluate",
                      notify=_echo, weights=weights, allow_train_overlap=allow_train_overlap, argv=sys.argv[1:])
    if records:
        click.echo(summary(records))
