"""``hsibench report`` (tables) and ``hsibench figures`` (error maps, spectra, convergence, RGB) from a results folder.

Both read only the results store that ``hsibench run`` wrote (finished runs; partial folders are
fine: what did not run shows as "—" or "not run"); neither trains nor evaluates anything.
"""

from __future__ import annotations

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


@click.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RESULTS,
              show_default=True, help="Results folder written by `hsibench run` (its --out).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the tables. Default: <results>/reports.")
@click.option("--format", "formats", default="md,tex,csv", show_default=True,
              help="Comma-separated file formats: md (report.md), tex (booktabs, one file per table), csv.")
@click.option("--published/--no-published", default=True, show_default=True,
              help="Show the paper's published numbers (Tables I–V) and the difference beside ours.")
@click.option("--experiment", default=None,
              help="Only this experiment (table5 -> Table V; table1_loss ... table4_depth -> its ablation table).")
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="Significance level of the paired Wilcoxon test across test scenes.")
def report(results_dir: Path, out_dir: Optional[Path], formats: str, published: bool, experiment: Optional[str],
           alpha: float) -> None:
    """Write Table V style and ablation tables (markdown, LaTeX, CSV) and print the markdown."""
    from hsisr_bench.report import load_records
    from hsisr_bench.report.tables import build_report, render_markdown, write_report

    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha must lie in (0, 1), got {alpha}.")
    records = load_records(results_dir)
    tables = build_report(records, results_dir, published=published, experiment=experiment, alpha=alpha)
    written = write_report(tables, out_dir if out_dir is not None else results_dir / "reports", _split_list(formats))
    click.echo(render_markdown(tables))
    click.echo(f"Wrote {len(written)} file(s) to {written[0].parent if written else out_dir}.")


@click.command()
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_RESULTS,
              show_default=True, help="Results folder written by `hsibench run` (its --out).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the figures. Default: <results>/figures.")
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
def figures(results_dir: Path, out_dir: Optional[Path], dataset: Optional[str], scale: Optional[int],
            scene: Optional[str], band: int, pixel: Optional[str], pixel_seed: int, run_seed: Optional[int],
            experiment: Optional[str], kinds: str, fmt: str, dpi: int) -> None:
    """Draw absolute-error maps, spectral curves, convergence curves and RGB composites."""
    from hsisr_bench.report.figures import make_figures

    written = make_figures(results_dir, out_dir, dataset=dataset, scale=scale, scene=scene, band=band,
                           pixel=_parse_pixel(pixel), fmt=fmt, dpi=dpi, pixel_seed=pixel_seed, run_seed=run_seed,
                           experiment=experiment, kinds=_split_list(kinds))
    for path in written:
        click.echo(str(path))
    click.echo(f"Wrote {len(written)} figure(s).")
