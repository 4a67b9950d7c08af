"""``hsibench data``: check that a dataset's scenes are usable, and write the synthetic dataset to disk."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Optional

import click
import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from hsisr_bench.data.datasets import Dataset, open_dataset
from hsisr_bench.data.readers import read_synthetic_manifest
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import DataError

#: The scene names ``data synth`` writes (``synth_00.npy``, ...): the only files it ever deletes.
_SCENE_FILE = re.compile(r"synth_[0-9]+")
#: A usable scene whose brightest value is below this is flagged: probably divided by the wrong scale.
DARK_MAX = 0.05

_DATA_ROOT_HELP = "Folder holding the datasets (CAVE/, Harvard/, Foster/). Default: $HSIBENCH_DATA, else ./data."


@click.group()
def data() -> None:
    """Inspect datasets and write the synthetic dataset."""


# --------------------------------------------------------------------------------------------------
# data check
# --------------------------------------------------------------------------------------------------


def _problems(scene: Scene, dataset: Dataset) -> list[str]:
    """What makes a loaded scene unusable (empty when it is fine)."""
    cube = scene.cube
    problems = []
    if cube.ndim != 3 or cube.dtype != np.float32:
        problems.append(f"cube is {cube.dtype} {cube.shape}, expected (L, H, W) float32")
        return problems
    expected_bands = dataset.spec.bands if dataset.spec.name not in ("synthetic", "generic") else None
    if expected_bands is not None and cube.shape[0] != expected_bands:
        problems.append(f"{cube.shape[0]} bands, expected {expected_bands}")
    if not np.isfinite(cube).all():
        problems.append("non-finite values")
    elif cube.min() < 0 or cube.max() > 1:
        problems.append(f"values outside [0, 1] ({cube.min():.4g} to {cube.max():.4g})")
    if scene.wavelengths is not None and len(scene.wavelengths) != cube.shape[0]:
        problems.append(f"{len(scene.wavelengths)} wavelengths for {cube.shape[0]} bands")
    return problems


def _describe(scene: Scene) -> str:
    """A short account of what was read and how it was normalised."""
    parts = [f"{scene.bands} bands"]
    if scene.wavelengths is not None and len(scene.wavelengths):
        parts[0] += f" {scene.wavelengths[0]:g}-{scene.wavelengths[-1]:g} nm"
    if "disk_format" in scene.extras:
        parts.append(str(scene.extras["disk_format"]))
    if "normalisation" in scene.extras:
        parts.append(f"normalised {scene.extras['normalisation']}")
    return ", ".join(parts)


def _training_problems(scene: Scene, protocol: Any, scales: list[int]) -> list[str]:
    """Why a scene cannot be a training scene of ``protocol`` at each of ``scales`` (empty when it can)."""
    from hsisr_bench.data.patches import patch_fit_problem

    problems = []
    _, height, width = scene.cube.shape
    for scale in scales:
        lr_patch = protocol.hr_patch // scale if protocol.hr_patch else protocol.lr_patch
        hr_patch = protocol.hr_patch or protocol.lr_patch * scale
        problem = patch_fit_problem(scene.name, height, width, protocol.rescales, hr_patch, lr_patch, scale,
                                    hr_given=bool(protocol.hr_patch))
        if problem:
            problems.append(f"x{scale}: {problem}")
    return problems


def _check_scene(dataset: Dataset, name: str, protocol: Any = None,
                 scales: Optional[list[int]] = None) -> tuple[list[Any], bool, str]:
    """Load one scene; return its table row, whether it is usable, and the verdict with its reason.

    With ``protocol`` and ``scales``, a scene too small for that protocol's training patches is not
    usable (a run would stop on it), and the verdict says what would make it fit.
    """
    try:
        scene = dataset.load(name)
    except DataError as error:
        return [name, "-", "-", "-", "-", "-", "UNUSABLE"], False, f"UNUSABLE: {error}"
    cube = scene.cube
    low, high, mean = float(cube.min()), float(cube.max()), float(cube.mean(dtype=np.float64))
    disk = str(scene.extras.get("disk_format", "in memory" if scene.source is None else "?"))
    row = [name, "x".join(map(str, cube.shape)), disk, low, high, mean]
    problems = _problems(scene, dataset)
    if problems:
        return row + ["UNUSABLE"], False, "UNUSABLE: " + "; ".join(problems)
    too_small = _training_problems(scene, protocol, scales or []) if protocol is not None else []
    if too_small:
        return (row + ["too small to train"], False,
                f"too small to train with profile '{protocol.name}' (usable only as a test scene): "
                + " ".join(too_small))
    if high < DARK_MAX:
        note = (f"usable, but very dark (max {high:.4f}): check its normalisation ({_describe(scene)})")
        return row + ["usable (dark)"], True, note
    return row + ["usable"], True, f"usable ({_describe(scene)})"


@data.command("check", short_help="Check that every scene of a dataset is usable.")
@click.option("--dataset", "dataset_name", default="cave", show_default=True,
              help="cave, cave31, harvard, foster, synthetic, generic or a registered dataset (any case).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=_DATA_ROOT_HELP)
@click.option("--min-bands", type=click.IntRange(min=1), default=None,
              help="Fewer bands than this is an error (readers' default: 3).")
@click.option("--key", default=None, help="The variable holding the cube in each .mat/.h5 file "
              "(as --set dataset.key=NAME of hsibench run).")
@click.option("--profile", default="quick", show_default=True,
              help="Protocol profile whose training patches every scene must fit (as hsibench run).")
@click.option("--scale", "scale_text", default="2,3,4", show_default=True,
              help="Scales the training patches must fit at, e.g. 2 or 2,3,4.")
def check(dataset_name: str, data_root: Optional[Path], min_bands: Optional[int], key: Optional[str],
          profile: str, scale_text: str) -> None:
    """Load every scene of a dataset and say whether each is usable, and why.

    Prints one row per scene (shape, dtype on disk, min, max and mean after normalisation, verdict),
    then each verdict with its reason, then a summary. A scene is usable when it reads cleanly and
    gives the training patches of --profile at every --scale (after each rescaling factor). Exit code 0
    only when every scene is usable.
    """
    from hsisr_bench import config

    protocol = config.load_protocol(profile)
    scales = config.parse_scales(scale_text)
    options = {} if min_bands is None else {"min_bands": min_bands}
    dataset = open_dataset(dataset_name, data_root, key=key, **options)
    rows, verdicts, unusable = [], [], []
    for name in tqdm(dataset.scene_names, desc=f"checking {dataset.name}", unit="scene",
                     file=sys.stderr, leave=False):
        row, usable, verdict = _check_scene(dataset, name, protocol, scales)
        rows.append(row)
        verdicts.append(f"{name}: {verdict}")
        if not usable:
            unusable.append(name)
    where = dataset.root if dataset.root is not None else "generated in memory"
    click.echo(f"Dataset {dataset.name} ({dataset.spec.title}) at {where}; values after normalisation; "
               f"training patches of profile '{protocol.name}' at {', '.join(f'x{s}' for s in scales)}.")
    click.echo(tabulate(rows, headers=["scene", "shape (L x H x W)", "dtype on disk", "min", "max",
                                       "mean", "verdict"], floatfmt=".4f"))
    click.echo("\nVerdicts:")
    for verdict in verdicts:
        click.echo(f"  {verdict}")
    total = len(dataset.scene_names)
    click.echo(f"\n{total - len(unusable)} of {total} scenes usable.")
    if unusable:
        raise DataError(f"{len(unusable)} of {total} {dataset.name} scenes are unusable "
                        f"({', '.join(unusable)}); see the verdicts above. Repair or remove them.")


# --------------------------------------------------------------------------------------------------
# data split
# --------------------------------------------------------------------------------------------------


@data.command("split", short_help="Write a seeded train/test split of the scenes present.")
@click.option("--dataset", "dataset_name", default="cave", show_default=True,
              help="cave, cave31, harvard, foster, synthetic, generic or a registered dataset.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=_DATA_ROOT_HELP)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The split file to write (JSON), for --split-file of hsibench run.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed of the permutation.")
@click.option("--train-fraction", default=0.8, show_default=True, type=float,
              help="Fraction of the scenes used for training.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def split(dataset_name: str, data_root: Optional[Path], out: Path, seed: int, train_fraction: float,
          force: bool) -> None:
    """Draw a seeded split of the scenes present (PROTOCOL.md section 2) and write it to --out.

    For a partial copy of a dataset whose canonical split leaves no test (or no training) scene among
    the scenes present: the canonical split is never redrawn silently, so draw one here, on purpose,
    and pass it with --split-file. Every method of a comparison must use the same file.
    """
    from hsisr_bench.data.splits import make_split

    if out.exists() and not force:
        raise DataError(f"--out {out} exists. Choose another file, or pass --force to overwrite it.")
    dataset = open_dataset(dataset_name, data_root)
    drawn = make_split(dataset.scene_names, train_fraction=train_fraction, seed=seed, dataset=dataset.name)
    drawn.save(out)
    click.echo(f"Wrote a split of the {len(drawn.scenes)} {dataset.name} scenes at {dataset.root or 'memory'} "
               f"(seed {seed}, train fraction {train_fraction:g}) to {out}:")
    click.echo(f"  train ({len(drawn.train)}): {', '.join(drawn.train)}")
    click.echo(f"  test ({len(drawn.test)}): {', '.join(drawn.test)}")
    click.echo(f"Use it with --split-file {out}")


# --------------------------------------------------------------------------------------------------
# data synth
# --------------------------------------------------------------------------------------------------


def _previous_manifest(out: Path, force: bool) -> Optional[dict[str, Any]]:
    """The manifest already in ``out``; an unreadable one counts as none under ``--force``."""
    try:
        return read_synthetic_manifest(out)
    except DataError:
        if force:
            return None
        raise


@data.command("synth", short_help="Write the synthetic dataset to a folder.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write the scenes into (created if needed).")
@click.option("--n-scenes", default=12, show_default=True, type=int, help="Number of scenes.")
@click.option("--size", default=128, show_default=True, type=int, help="Side of each square scene.")
@click.option("--bands", default=31, show_default=True, type=int, help="Number of bands (400-700 nm).")
@click.option("--seed", default=0, show_default=True, type=int, help="Dataset seed.")
@click.option("--force", is_flag=True, help="Overwrite a folder that holds something else.")
def synth(out: Path, n_scenes: int, size: int, bands: int, seed: int, force: bool) -> None:
    """Write the synthetic dataset to disk: one (L, H, W) float32 .npy per scene plus synthetic.json.

    The folder reads back bit-exactly with --dataset synthetic --data-root OUT (or load_scene(file)).
    A non-empty folder holding anything but the same dataset is refused unless --force; then the
    scene files of an earlier synthetic dataset there are replaced (other files are left alone).
    """
    from hsisr_bench.data.synthetic import MANIFEST_NAME, write_synthetic_dataset

    arguments = {"n_scenes": n_scenes, "size": size, "bands": bands, "seed": seed}
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder.")
    previous = _previous_manifest(out, force) if out.is_dir() else None
    non_empty = out.is_dir() and any(out.iterdir())
    same = previous is not None and previous.get("arguments") == arguments
    if non_empty and not same and not force:
        held = (f"a synthetic dataset made with {previous.get('arguments')}" if previous is not None
                else "other files")
        raise DataError(f"--out {out} is not empty: it holds {held}. Choose an empty folder, or pass "
                        "--force to overwrite it.")
    paths = write_synthetic_dataset(out, n_scenes=n_scenes, size=size, bands=bands, seed=seed)
    if previous is not None:
        # Scenes of the earlier, larger dataset would otherwise linger next to the new ones. The old
        # manifest is only a hint: delete nothing but scene files this command writes (synth_<n>.npy,
        # directly in --out), whatever names the manifest lists ("../precious" is not ours to delete).
        written = {path.name for path in paths}
        for name in previous["scenes"]:
            if not isinstance(name, str) or not _SCENE_FILE.fullmatch(name):
                continue
            stale = out / f"{name}.npy"
            if stale.name not in written and stale.is_file() and not stale.is_symlink():
                stale.unlink()
    click.echo(f"Wrote {len(paths)} synthetic scenes ({bands} x {size} x {size} float32, seed {seed}) "
               f"and {MANIFEST_NAME} to {out}.")
    click.echo(f"Use them with --dataset synthetic --data-root {out}")
