"""``hsibench doctor``: a self-check of this machine (CPU or GPU), printed and written as markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from hsisr_bench.errors import ConfigError


@click.command()
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the verdict (doctor.md), the step times (doctor.json) and the smoke runs "
                   "(default: a temporary folder).")
@click.option("--checks", default=None, help="Comma-separated subset of: environment, contract, tiled, training, "
                                             "resume, throughput, compile, inference, ddp, projection.")
@click.option("--threads", type=int, default=None, help="CPU threads for PyTorch.")
def doctor(device: str, out: Optional[Path], checks: Optional[str], threads: Optional[int]) -> None:
    """Check that this machine trains and scores correctly: CUDA equals CPU, tiled equals untiled, smoke
    trainings in fp32/bf16/fp16, an interrupted-and-resumed run, throughput, latency, DDP, and the projected
    time of a paper-profile training. Verdict rows pass or fail; measurement rows say "measured". Exit code 1
    when a check fails.

    Example: hsibench doctor --device cuda --out doctor
    """
    from hsisr_bench.doctor import CHECKS, run_doctor, verdict_markdown, write_figures
    from hsisr_bench.engine.distributed import resolve_device
    from hsisr_bench.engine.environment import set_threads
    from hsisr_bench.results import write_text

    selected = tuple(c.strip() for c in checks.split(",") if c.strip()) if checks else CHECKS
    unknown = [c for c in selected if c not in CHECKS]
    if unknown:
        raise ConfigError(f"--checks: unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}.")
    set_threads(threads)
    resolved = resolve_device(device, env={})
    click.echo(f"hsibench doctor on {resolved}: {', '.join(selected)}")
    found = run_doctor(resolved, out, selected, echo=click.echo)
    markdown = verdict_markdown(found, resolved)
    click.echo("")
    click.echo(markdown)
    if out is not None:
        path = write_text(Path(out) / "doctor.md", markdown)
        figures = write_figures(Path(out) / "doctor.json", found, resolved)
        click.echo(f"Written to {path} (paste it into docs/benchmarks.md) and {figures} (the step times for "
                   f"'hsibench run --dry-run --doctor-report {figures}').")
    if any(c.status == "fail" for c in found):
        raise SystemExit(1)
