"""``hsibench report`` (tables) and ``hsibench figures`` (error maps, spectra, convergence, RGB) from a results folder.

Both read only the results store that ``hsibench run`` wrote (finished runs; partial folders are
fine: what did not run shows as "—" or "not run"); neither trains nor evaluates anything.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import click

from hsisr_bench.errors import ConfigError

DEFAULT_RESULTS = Path("results")


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_pixel(text: Optional[str]) -> Optional[tuple[int, int]]:
    """Parse ``--pixel Y,X`` (0-based) into ``(y, x)``.

    Raises:
        ConfigError: not two non-negative integers separated by a comma.
    """
    if text is None:
        return None
    parts = _split_list(text)
    try:
        y, x = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--pixel {text!r}: expected two integers Y,X (0-based row and column), e.g. --pixel 100,200.") from None
    if y < 0 or x < 0:
        raise ConfigError(f"--pixel {text!r}: row and column must be 0 or more.")
    return y, x


def check_out_is_not_another_store(out_dir: Optional[Path], results_dir: Path, command: str, what: str,
                                   default_sub: str) -> None:
    """Refuse an ``--out`` that holds a results store other than the ``--results`` store being read.

    ``hsibench run --out DIR`` writes its runs to DIR, so ``hsibench report --out DIR`` looks like "report
    DIR", but ``--out`` is where the tables go and the runs are read from ``--results`` (``results``
    by default): the command would silently report another folder's runs into DIR.

    Raises:
        ConfigError: ``out_dir`` holds a results store and is not ``results_dir`` (says the command that works).
    """
    from hsisr_bench.report import holds_results_store

    if out_dir is None or not holds_results_store(out_dir):
        return
    if out_dir.resolve() == results_dir.resolve():
        return
    raise ConfigError(
        f"--out {out_dir} holds a results store (runs written by `hsibench run --out {out_dir}`), but "
        f"`hsibench {command}` reads runs from --results, here {results_dir}, a different folder; "
        f"--out is only where the {what} go. To read the runs in {out_dir}: "
        f"`hsibench {command} --results {out_dir}` (the {what} go to {out_dir / default_sub}). "
        f"To write the {what} of {results_dir} elsewhere, give an --out that holds no results store.")


@click.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RESULTS,
              show_default=True, help="Results store to read: the folder `hsibench run --out` wrote.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the tables (not the store to read: that is --results). Default: <results>/reports.")
@click.option("--format", "formats", default="md,tex,csv", show_default=True,
              help="Comma-separated file formats: md (report.md), tex (booktabs, one file per table), csv.")
@click.option("--published/--no-published", default=True, show_default=True,
              help="Show the paper's published numbers (Tables I–V) and the difference beside ours.")
@click.option("--experiment", default=None,
              help="Only this experiment (table5 -> Table V; table1_loss ... table4_depth -> its ablation table).")
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="Significance level of the paired Wilcoxon test across test scenes.")
@click.option("--force", is_flag=True, help="Write into an --out folder that holds files 'hsibench report' did not "
                                            "write (files of the same names are overwritten).")
@click.option("--strict", is_flag=True, help="Exit with status 1 when a run's metrics.json cannot be read "
                                             "(it is left out of the tables; a warning names it either way).")
def report(results_dir: Path, out_dir: Optional[Path], formats: str, published: bool, experiment: Optional[str],
           alpha: float, force: bool, strict: bool) -> None:
    """Write Table V style and ablation tables (markdown, LaTeX, CSV) and print them as plain text."""
    from hsisr_bench.report import load_records, unreadable_runs
    from hsisr_bench.report.render_markdown import render_terminal
    from hsisr_bench.report.tables import build_report, write_report
    from hsisr_bench.report.writing import claim_output_folder

    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha must lie in (0, 1), got {alpha}.")
    check_out_is_not_another_store(out_dir, results_dir, "report", "tables", "reports")
    dropped = unreadable_runs(results_dir) if results_dir.is_dir() else []
    for path, why in dropped:
        click.echo(f"WARNING: left out of the tables: {path} cannot be read ({why}). Rerun that cell with "
                   f"--force, or delete its folder.", err=True)
    records = load_records(results_dir)
    tables = build_report(records, results_dir, published=published, experiment=experiment, alpha=alpha)
    target = out_dir if out_dir is not None else results_dir / "reports"
    # The store being read, and its default reports/ folder (written before the marker existed), are the
    # toolkit's own (check_out_is_not_another_store allows the store as --out).
    own_store = out_dir is None or (target.is_dir() and results_dir.is_dir() and target.resolve() == results_dir.resolve())
    claim_output_folder(target, "report", force or own_store)
    written = write_report(tables, target, _split_list(formats))
    click.echo(render_terminal(tables))  # plain text here; the files keep the markdown and LaTeX markup
    click.echo(f"Wrote {len(written)} file(s) to {target}.")
    if dropped and strict:
        click.echo(f"Error: {len(dropped)} run(s) left out because their metrics.json cannot be read (--strict).",
                   err=True)
        sys.exit(1)


@click.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RESULTS,
              show_default=True, help="Results store to read: the folder `hsibench run --out` wrote.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the figures (not the store to read: that is --results). Default: <results>/figures.")
@click.option("--dataset", default=None, help="Only this dataset (default: every dataset in the results).")
@click.option("--scale", default=None, type=int, help="Only this scale (default: every scale).")
@click.option("--scene", default=None, help="Only this test scene (default: every stored test scene).")
@click.option("--band", default=27, show_default=True, type=int,
              help="1-based band of the error maps (the paper's Fig. 8 uses band 27).")
@click.option("--pixel", default=None, help="Y,X (0-based) of the spectral curves. Default: a seeded random pixel.")
@click.option("--pixel-seed", default=0, show_default=True, type=int, help="Seed of the random pixel.")
@click.option("--seed", "run_seed", default=None, type=int,
              help="Which training seed's predictions to draw when several ran (default: the lowest).")
@click.option("--experiment", default=None, help="Only this experiment's runs (e.g. table2_ablation for Fig. 7, table5 for Fig. 8).")
@click.option("--kinds", default="errors,spectra,convergence,rgb", show_default=True,
              help="Comma-separated figure kinds: errors (Fig. 8), spectra (Fig. 9), convergence (Fig. 7), rgb.")
@click.option("--format", "fmt", default="png", show_default=True, type=click.Choice(["png", "pdf", "svg"]),
              help="File format.")
@click.option("--dpi", default=150, show_default=True, type=int, help="Resolution of PNG output.")
@click.option("--force", is_flag=True, help="Write into an --out folder that holds files 'hsibench figures' did "
                                            "not write (files of the same names are overwritten).")
def figures(results_dir: Path, out_dir: Optional[Path], dataset: Optional[str], scale: Optional[int],
            scene: Optional[str], band: int, pixel: Optional[str], pixel_seed: int, run_seed: Optional[int],
            experiment: Optional[str], kinds: str, fmt: str, dpi: int, force: bool) -> None:
    """Draw absolute-error maps, spectral curves, convergence curves and RGB composites."""
    from hsisr_bench.report.figures import make_figures

    from hsisr_bench.report.writing import claim_output_folder

    check_out_is_not_another_store(out_dir, results_dir, "figures", "figures", "figures")
    if not results_dir.is_dir():  # load_records says what is missing and how to make it, before any folder
        from hsisr_bench.report import load_records

        load_records(results_dir)
    target = out_dir if out_dir is not None else results_dir / "figures"
    own_store = out_dir is None or (target.is_dir() and target.resolve() == results_dir.resolve())
    claim_output_folder(target, "figures", force or own_store)
    written = make_figures(results_dir, target, dataset=dataset, scale=scale, scene=scene, band=band,
                           pixel=_parse_pixel(pixel), fmt=fmt, dpi=dpi, pixel_seed=pixel_seed, run_seed=run_seed,
                           experiment=experiment, kinds=_split_list(kinds))
    for path in written:
        click.echo(str(path))
    click.echo(f"Wrote {len(written)} figure(s).")
