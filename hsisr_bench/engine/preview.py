"""``hsibench run --dry-run``: the whole plan, without the hardware or the data, and what is missing.

A dry run never stops at the first missing thing. The device is checked, not resolved strictly: a
``--device cuda`` plan on a machine without CUDA is still shown, with the device listed as missing.
A dataset that cannot be opened is planned from the protocol: its scene counts come from its
canonical split (``configs/splits/<dataset>.json``) or, failing that, from the dataset's size in
PROTOCOL.md with the default 80 % training split. Every problem (device, dataset, scenes of a split,
broken scene files) is listed at the end. With a doctor report (``doctor.json``, written by
``hsibench doctor --out``) the plan shows each cell's projected training time from the measured step
time of its method at the protocol's batch and patch size.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from hsisr_bench.config import RunConfig
from hsisr_bench.errors import ConfigError, HsiBenchError

#: Scenes of the built-in real datasets (PROTOCOL.md, datasets table), for planning without the data.
EXPECTED_SCENES = {"cave": 32, "cave31": 31, "harvard": 77, "foster": 30}
#: The training fraction of a computed split (``data.splits.make_split``'s default).
TRAIN_FRACTION = 0.8


@dataclass
class Scenes:
    """A dataset's train/val/test scene counts for the plan, and where they came from."""

    train: Optional[int]
    val: int
    test: Optional[int]
    source: str  # "data", "canonical split", "expected" or "unknown"

    def text(self) -> str:
        """``10/0/2``, ``26/0/6 (canonical split)``, ``?``."""
        if self.train is None:
            return "?"
        counts = f"{self.train}/{self.val}/{self.test}"
        return counts if self.source == "data" else f"{counts} ({self.source})"


def device_problem(requested: str) -> Optional[str]:
    """Why ``--device requested`` cannot run here, or ``None``; a malformed device is still an error.

    Raises:
        ConfigError: ``requested`` is none of auto, cpu, cuda, cuda:<index>.
    """
    from hsisr_bench.engine.distributed import resolve_device

    try:
        resolve_device(requested)
    except ConfigError as error:
        if requested in ("auto", "cpu", "cuda") or requested.startswith("cuda:"):
            return str(error)
        raise
    return None


def load_doctor_report(path: Path) -> dict:
    """The measured step times of ``hsibench doctor``: ``doctor.json``, its folder, or the ``doctor.md`` beside it.

    Raises:
        ConfigError: no such file, or not a doctor report.
    """
    path = Path(path)
    candidate = path / "doctor.json" if path.is_dir() else (path.with_name("doctor.json") if path.suffix == ".md"
                                                              else path)
    if not candidate.is_file():
        raise ConfigError(f"--doctor-report {path}: no doctor report at {candidate}. Run 'hsibench doctor --device "
                          f"cuda --out doctor' on the GPU machine and pass doctor/doctor.json.")
    try:
        report = json.loads(candidate.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"--doctor-report {candidate}: not readable as JSON ({error}); expected the doctor.json "
                          f"that 'hsibench doctor --out FOLDER' writes.") from None
    if not isinstance(report, dict) or not isinstance(report.get("step_seconds"), list):
        raise ConfigError(f"--doctor-report {candidate}: no 'step_seconds' list; expected the doctor.json that "
                          f"'hsibench doctor --out FOLDER' writes.")
    return report


def _step_seconds(report: Optional[dict], run: RunConfig) -> Optional[tuple[float, int]]:
    """``(seconds, measured scale)`` of one step of this cell's method at its batch, patch and precision."""
    if report is None:
        return None
    p = run.protocol
    found = [f for f in report["step_seconds"] if f.get("method") == run.method.name and f.get("amp") == run.amp
             and f.get("batch") == p.batch_size and f.get("lr_patch") == p.lr_patch]
    if not found:
        return None
    best = min(found, key=lambda f: abs(int(f.get("scale", 2)) - run.scale))
    return float(best["seconds"]), int(best.get("scale", 2))


def _expected_scenes(run: RunConfig) -> Scenes:
    """Scene counts of a dataset that is not there: its canonical split, else its size in PROTOCOL.md."""
    from hsisr_bench.data.splits import canonical_split_path, load_split

    val = int(run.protocol.val_scenes)
    path = canonical_split_path(run.dataset.name)
    if path.is_file():
        split = load_split(path)
        return Scenes(len(split.train) - val, val, len(split.test), "canonical split")
    total = EXPECTED_SCENES.get(run.dataset.name)
    if total is None:
        return Scenes(None, val, None, "unknown")
    train = min(total - 1, max(1, math.floor(TRAIN_FRACTION * total + 0.5)))
    return Scenes(train - val, val, total - train, "expected")


def _open_data(runs: Sequence[RunConfig], missing: list[str]) -> tuple[dict, dict]:
    """Open each (dataset, split) once; ``(opened data, scene counts)`` by data key, problems into ``missing``."""
    from hsisr_bench.engine.plan import data_key
    from hsisr_bench.engine.runner import open_cell_data

    opened, scenes = {}, {}
    for run in runs:
        key = data_key(run)
        if key in scenes:
            continue
        try:
            data = open_cell_data(run)
        except HsiBenchError as error:
            missing.append(f"dataset {run.dataset.name}: {error}")
            scenes[key] = _expected_scenes(run)
            continue
        opened[key] = data
        scenes[key] = Scenes(len(data.train), len(data.val), len(data.test), "data")
        restriction = getattr(data.split, "restriction", None)
        if restriction and restriction.get("missing"):
            absent = list(restriction["missing"])
            missing.append(f"scenes of {run.dataset.name} ({len(absent)} named by {restriction.get('source')}): "
                           f"{', '.join(absent[:12])}{' ...' if len(absent) > 12 else ''}")
        preflight = getattr(data.dataset, "preflight", None)
        if callable(preflight):
            try:
                preflight(list(data.train) + list(data.val) + list(data.test))
            except HsiBenchError as error:
                missing.append(f"scenes of {run.dataset.name}: {error}")
    return opened, scenes


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def preview_plan(runs: Sequence[RunConfig], out_dir: Path, *, shard: Optional[str] = None,
                 doctor_report: Optional[Path] = None, echo: Callable[[str], None] = print) -> list[str]:
    """Print the whole plan of ``hsibench run`` and everything it lacks; run nothing, write nothing.

    Args:
        runs: the expanded command line (``config.plan_runs``).
        out_dir: the results root (folder states: new, resume, finished).
        shard: ``--shard K/N``: the plan is shown whole, with each cell's shard and this one's marked.
        doctor_report: a ``doctor.json`` whose step times project each cell's training time.
        echo: prints a line.

    Returns:
        The missing items (device, datasets, scenes), as printed; empty when the plan can run here.
    """
    from tabulate import tabulate

    from hsisr_bench.engine.plan import _state, data_key, parse_shard, plan_cells, split_notes, training_schedule

    parsed = parse_shard(shard)
    report = load_doctor_report(doctor_report) if doctor_report is not None else None
    missing: list[str] = []
    requested = sorted({run.device for run in runs})
    if len(requested) > 1:
        raise ConfigError(f"The planned cells ask for different devices ({', '.join(requested)}); one command runs "
                          f"on one device: give --device once.")
    problem = device_problem(requested[0])
    if problem:
        missing.append(f"device: {problem}")
    plan = plan_cells(runs, out_dir, device=requested[0])  # the whole plan; shards are marked below
    opened, scenes = _open_data([cell.run for cell in plan.cells], missing)

    rows, per_shard, unprojected = [], {}, 0
    for position, cell in enumerate(plan.cells):
        run, counts = cell.run, scenes[data_key(cell.run)]
        schedule = training_schedule(run, counts.train) if counts.train is not None else None
        trainable = counts.train is None or schedule is not None
        if schedule is None:
            training, steps = ("no training" if not trainable else "? (scene count unknown)"), 0
        else:
            patches, per_epoch, batch = schedule
            steps = run.protocol.epochs * per_epoch
            training = f"{patches} patches, {run.protocol.epochs} epochs x {per_epoch} steps of {batch}"
        projected = "-"
        if steps:
            figure = _step_seconds(report, run)
            if figure is None:
                projected = "no doctor figure" if report is not None else "-"
                unprojected += report is not None
            else:
                seconds, measured_scale = figure
                at_least = "" if measured_scale == run.scale else ">= "  # larger scales cost more per step
                projected = f"{at_least}{_hours(steps * seconds)}"
                k = position % parsed[1] + 1 if parsed else 1
                per_shard[k] = per_shard.get(k, 0.0) + steps * seconds
        row = [run.dataset.name, f"x{run.scale}", run.label, run.seed, counts.text(), training, f"{steps:,}",
               projected, _state(cell.directory)]
        if parsed:
            k = position % parsed[1] + 1
            row.insert(0, f"{k}/{parsed[1]}{' *' if k == parsed[0] else ''}")
        rows.append(row)

    protocol = plan.cells[0].run.protocol.name if plan.cells else "-"
    echo(f"Plan: {len(plan.cells)} cell(s), profile '{protocol}', output {out_dir}, device {requested[0]}"
         f"{' (not available here)' if problem else ''}")
    for note in plan.notes:
        echo(f"Note: {note}")
    headers = ["dataset", "scale", "method", "seed", "train/val/test scenes", "training", "steps", "projected",
               "folder"]
    if parsed:
        headers.insert(0, "shard")
        mine = sum(1 for i in range(len(plan.cells)) if i % parsed[1] == parsed[0] - 1)
        echo(f"Shard {parsed[0]}/{parsed[1]} (marked *): {mine} of the {len(plan.cells)} cells.")
    echo(tabulate(rows, headers=headers))
    for note in split_notes(opened):
        echo(note)
    for key, data in opened.items():
        if data.split.note and getattr(data.split, "restriction", None) is None:
            echo(f"Split note ({key[0].name}): {data.split.note}")
    if report is not None:
        where = f"doctor report of {report.get('date', '?')} on {report.get('device', '?')}"
        total = sum(per_shard.values())
        shards = "" if not parsed else "; " + ", ".join(f"shard {k}/{parsed[1]} {_hours(s)}"
                                                        for k, s in sorted(per_shard.items()))
        echo(f"Projected training time ({where}; step times measured by the doctor; evaluation not included): "
             f"{_hours(total)} in all{shards}" + (f"; {unprojected} cell(s) without a figure" if unprojected else "")
             + ".")
    if missing:
        echo(f"Missing ({len(missing)}):")
        for item in missing:
            echo(f"  - {item}")
        echo("The plan above was computed from the protocol (scene counts from the canonical splits or the "
             "datasets' sizes where the data is absent); provide what is missing before running it.")
    else:
        echo("Nothing is missing: the plan can run here.")
    return missing


def is_main_process(env: Optional[dict] = None) -> bool:
    """True unless torchrun started this process with a rank other than 0 (a dry run joins no group)."""
    env = os.environ if env is None else env
    return str(env.get("RANK", "0")).strip() in ("", "0")
