"""``hsibench bench``: run benchmark suites and append their markdown to ``docs/benchmarks.md``."""

from __future__ import annotations

import datetime
import importlib
import shlex
import sys
from pathlib import Path

import click

from hsisr_bench.benchmarks import SUITES, BenchOptions, machine_description


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


@click.command()
@click.option("--suite", "suites", multiple=True, type=click.Choice(SUITES),
              help="Suite to run (repeatable). Default: all of them.")
@click.option("--methods", default="", help="Comma-separated methods for the models/train suites (default: all).")
@click.option("--scales", default="2,3,4", show_default=True, help="Comma-separated scales.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--size", default=512, show_default=True, help="HR side of the benchmark input.")
@click.option("--repeats", default=3, show_default=True, help="Timed repeats (median is reported).")
@click.option("--quick", is_flag=True, help="Small inputs, one repeat: checks that the suites run.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("docs") / "benchmarks.md", show_default=True,
              help="Markdown file the results are appended to.")
@click.option("--no-append", is_flag=True, help="Print only; do not touch the output file.")
def bench(suites, methods, scales, device, size, repeats, quick, output, no_append) -> None:
    """Measure speed and memory (parameters, FLOPs, latency, peak memory, throughput) as ratios in one run."""
    options = BenchOptions(
        methods=[m for m in methods.split(",") if m], scales=_int_list(scales), device=device,
        size=size, repeats=repeats, quick=quick,
    )
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    command = "hsibench " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    sections = [f"## Run of {stamp}\n\nCommand: `{command}`  \nMachine: {machine_description(device)}\n"]
    click.echo(sections[0])
    for suite in suites or SUITES:
        module = importlib.import_module(f"hsisr_bench.benchmarks.{suite}")
        sections.append(module.run(options))
        click.echo(sections[-1])
    if not no_append:
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("a", encoding="utf-8") as handle:
            handle.write("\n" + "\n".join(sections) + "\n")
        click.echo(f"Appended to {output}")
