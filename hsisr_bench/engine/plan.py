"""Planning: the cells of a command, each a :class:`Cell`, and what ``--dry-run`` prints about them.

A cell is one dataset × scale × method[+variant] × seed. Planning expands the command line (or an
experiment) into run configs (``hsisr_bench.config.plan_runs``), merges duplicates, keeps this
process's shard (``--shard K/N``) and resolves the device once; the engine (``engine/runner.py``)
consumes the cells and never re-decides any of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from hsisr_bench import results
from hsisr_bench.config import RunConfig
from hsisr_bench.errors import ConfigError


@dataclass(frozen=True)
class Cell:
    """One unit of work, as planning decided it: what to compute, where, on which device and rank.

    Attributes:
        run: the cell's frozen config (method, dataset, protocol, scale, seed, precision...).
        out_dir: the results root (``--out``); the run folder is :attr:`directory`.
        device: this process's resolved device (``cpu``, ``cuda:0``, ...).
        rank, world: this process's place in the process group (``0`` and ``1`` without torchrun).
        index, total: the cell's position in the plan, for messages (``[index/total]``).
        shard: ``(k, n)`` when the plan is one shard of a larger one (``--shard k/n``), else ``None``.
    """

    run: RunConfig
    out_dir: Path
    device: str = "cpu"
    rank: int = 0
    world: int = 1
    index: int = 1
    total: int = 1
    shard: Optional[tuple[int, int]] = None

    @property
    def directory(self) -> Path:
        """The run folder ``<out>/<dataset>/x<scale>/<label>/seed<k>``."""
        return results.run_dir(self.out_dir, self.run.dataset.name, self.run.scale, self.run.label, self.run.seed)

    @property
    def is_main(self) -> bool:
        """True on the process that decides, writes and prints (rank 0)."""
        return self.rank == 0

    def describe(self) -> str:
        """``synthetic x2 edsr seed 0 (profile quick)``."""
        run = self.run
        return f"{run.dataset.name} x{run.scale} {run.label} seed {run.seed} (profile {run.protocol.name})"


@dataclass
class Plan:
    """The cells this process runs, and what planning changed on the way (merged duplicates, shard)."""

    cells: list[Cell]
    notes: list[str] = field(default_factory=list)
    planned: int = 0  # cells before sharding


def parse_shard(text: Optional[str]) -> Optional[tuple[int, int]]:
    """Parse ``--shard K/N`` (1 <= K <= N): this process runs cells K, K+N, K+2N, ... (1-based).

    Raises:
        ConfigError: not of the form ``K/N`` with integers 1 <= K <= N.
    """
    if text is None or str(text).strip() == "":
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ConfigError(f"--shard {text!r}: expected K/N, e.g. --shard 1/4 (the first of 4 shards).")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(f"--shard {text!r}: need 1 <= K <= N (shards are numbered from 1; with a Slurm array "
                          f"use --array=1-{max(n, 1)} and --shard $SLURM_ARRAY_TASK_ID/{max(n, 1)}).")
    return k, n


def _identity(run: RunConfig) -> tuple:
    """What makes two planned cells the same computation: their run folder and their resolved config."""
    return (run.dataset.name, run.scale, run.label, run.seed, repr(run.to_dict()))


def plan_cells(runs: Sequence[RunConfig], out_dir: Path, *, device: str = "cpu", rank: int = 0, world: int = 1,
               shard: Optional[tuple[int, int]] = None) -> Plan:
    """Turn run configs into this process's cells: duplicates merged, one shard kept, device resolved.

    Args:
        runs: the expanded command line (``config.plan_runs``), in plan order.
        out_dir: the results root.
        device: this process's device, already resolved (``engine.distributed.resolve_device``).
        rank, world: this process's place in the process group.
        shard: ``(k, n)``: keep cells ``k-1, k-1+n, ...`` (0-based positions) of the merged plan.

    Raises:
        ConfigError: two different configs that would write the same run folder.
    """
    unique: list[RunConfig] = []
    seen: dict[tuple, int] = {}
    folders: dict[tuple, RunConfig] = {}
    duplicates = 0
    for run in runs:
        key = _identity(run)
        if key in seen:
            duplicates += 1
            continue
        folder = key[:4]
        if folder in folders:
            raise ConfigError(f"Two planned cells write the same folder ({run.dataset.name} x{run.scale} "
                              f"{run.label} seed {run.seed}) with different configs; give each its own --out.")
        seen[key], folders[folder] = len(unique), run
        unique.append(run)
    notes = []
    if duplicates:
        notes.append(f"Merged {duplicates} duplicate cell(s) (the same method, dataset, scale and seed asked for "
                     f"more than once): {len(unique)} distinct cell(s) remain.")
    chosen = list(enumerate(unique))
    if shard is not None:
        k, n = shard
        chosen = [(i, run) for i, run in chosen if i % n == k - 1]
        notes.append(f"Shard {k}/{n}: {len(chosen)} of the {len(unique)} cell(s) (positions {k}, {k + n}, ... "
                     f"of the plan).")
    cells = [Cell(run, Path(out_dir), device=device, rank=rank, world=world, index=i + 1, total=len(unique),
                  shard=shard) for i, run in chosen]
    return Plan(cells, notes, planned=len(unique))


def _state(directory: Path) -> str:
    if (directory / results.METRICS_FILE).is_file():
        return "finished (skipped)"
    if (directory / results.CHECKPOINT_FILE).is_file():
        return "resume"
    return "new"


def training_schedule(run: RunConfig, n_train: int) -> Optional[tuple[int, int, int]]:
    """``(patches, steps per epoch, batch)`` of a cell with ``n_train`` training scenes (``None``: no training).

    The patch bank holds ``n_train x rescales x patches_per_image x copies`` patches (5 copies with
    augmentation); an epoch is one pass over it in batches, unless ``protocol.steps_per_epoch`` fixes it.
    """
    from hsisr_bench.registry import get_method_info

    if not get_method_info(run.method.name).trainable:
        return None
    p = run.protocol
    copies = 5 if p.augment else 1
    patches = n_train * len(p.rescales) * p.patches_per_image * copies
    batch = min(p.batch_size, patches) if not p.steps_per_epoch else p.batch_size
    steps = p.steps_per_epoch or max(1, patches // max(1, batch))
    return patches, steps, batch


def training_steps(run: RunConfig, n_train: int) -> int:
    """The optimiser steps of a cell's whole training (``epochs x steps per epoch``; 0 without training)."""
    schedule = training_schedule(run, n_train)
    return 0 if schedule is None else run.protocol.epochs * schedule[1]


def training_summary(run: RunConfig, n_train: int) -> str:
    """``3600 patches, 200 epochs x 225 steps of 16`` (or ``no training``) for a cell with ``n_train`` scenes."""
    schedule = training_schedule(run, n_train)
    if schedule is None:
        return "no training"
    patches, steps, batch = schedule
    return f"{patches} patches, {run.protocol.epochs} epochs x {steps} steps of {batch}"


def print_plan(plan: Plan, echo: Callable[[str], None] = print) -> None:
    """Print what ``hsibench run`` would do: cells, scenes, patches, epochs, folder states (``--dry-run``).

    Opens every dataset of the plan and runs the pre-flight checks, so bad data fails here too.
    """
    from tabulate import tabulate

    from hsisr_bench.engine.runner import open_plan_data

    cells = plan.cells
    opened = open_plan_data(cells)
    rows = []
    for cell in cells:
        data = opened[data_key(cell.run)]
        rows.append([cell.run.dataset.name, f"x{cell.run.scale}", cell.run.label, cell.run.seed,
                     f"{len(data.train)}/{len(data.val)}/{len(data.test)}",
                     training_summary(cell.run, len(data.train)), _state(cell.directory)])
    profile = cells[0].run.protocol.name if cells else "-"
    out = cells[0].out_dir if cells else "-"
    echo(f"Plan: {len(cells)} cell(s), profile '{profile}', output {out}, device {cells[0].device if cells else '-'}")
    for note in plan.notes:
        echo(f"Note: {note}")
    echo(tabulate(rows, headers=["dataset", "scale", "method", "seed", "train/val/test scenes", "training",
                                 "folder"]))
    for note in split_notes(opened):
        echo(note)
    for key, data in opened.items():
        if data.split.note and getattr(data.split, "restriction", None) is None:
            echo(f"Split note ({key[0].name}): {data.split.note}")
    for cell in cells:
        overrides = cell.run.protocol.method_overrides.get(cell.run.method.name)
        if overrides:
            echo(f"Profile '{cell.run.protocol.name}' overrides {cell.run.method.name}: {dict(overrides)}")
            break


def data_key(run: RunConfig) -> tuple:
    """Cells with equal keys read the same dataset with the same split: open it once."""
    return (run.dataset, run.protocol.split_seed, run.protocol.val_scenes)


def split_notes(opened: dict) -> list[str]:
    """One line per dataset whose split file was not used as written (restricted to the scenes present)."""
    notes = set()
    for key, data in opened.items():
        if getattr(data.split, "restriction", None) is not None:
            notes.add(f"Split restricted ({key[0].name}): {data.split.restriction_text()}")
    return sorted(notes)
