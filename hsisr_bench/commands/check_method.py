"""``hsibench check-method NAME``: the method contract's checks on one method, then one real cell, as a table.

First the unit checks, :func:`hsisr_bench.contract.check_method` (the same ones the test suite runs
on every built-in method): output shape with the output crop, finite output, backward, a two-step
fit, determinism under a seed, tiled inference equal to untiled on partial tiles, declared parameter
counts. Then :mod:`hsisr_bench.check_cell`: option values that can be recorded (``options``) and one
tiny cell through the engine, the path ``hsibench run`` takes (``cell``). The checks run at 31 bands,
the datasets' band count, unless ``--bands`` says otherwise; a method that works only at one band
count is reported as "fixed to N bands". Any failure is an ``Error: ...`` naming the failed checks,
each with a one-line explanation of the usual fix where one is known, with exit code 2.
"""

from __future__ import annotations

from typing import Optional, Sequence

import click
from tabulate import tabulate

from hsisr_bench.contract import CHECKS
from hsisr_bench.errors import ConfigError, MethodError
from hsisr_bench.plugins import plugin_option


def _options(pairs: Sequence[str]) -> dict:
    """``("n_feats=8", "lff=false")`` -> ``{"n_feats": 8, "lff": False}`` (values parsed as TOML)."""
    from hsisr_bench.config import parse_override

    options = {}
    for text in pairs:
        if "=" not in text:
            raise ConfigError(f"--option {text!r}: expected KEY=VALUE, e.g. --option n_feats=8.")
        key, value = parse_override(text)
        options[key] = value
    return options


def _scales(text: str) -> list[int]:
    from hsisr_bench.config import parse_scales

    return parse_scales(text)


def results_table(results: Sequence) -> str:
    """A pass/fail table: one row per check, one column per scale, then the detail of each check.

    A failed check with a known cause gets a ``fix:`` line under its detail.
    """
    from hsisr_bench.check_cell import EXTRA_CHECKS, explain

    scales = sorted({r.scale for r in results})
    cell = {(r.check, r.scale): r for r in results}
    marks = {"pass": "pass", "fail": "FAIL", "skip": "skip"}
    rows = [[check] + [marks[cell[(check, s)].status] if (check, s) in cell else "" for s in scales]
            for check in CHECKS + EXTRA_CHECKS if any((check, s) in cell for s in scales)]
    table = tabulate(rows, headers=["check"] + [f"x{s}" for s in scales])
    details = []
    for r in results:
        details.append(f"  x{r.scale} {r.check:<12} {marks[r.status]:<4} {r.detail}")
        fix = explain(r.detail) if r.status == "fail" else None
        if fix:
            details.append(f"  {'':<16}fix: {fix}")
    return table + "\n\nDetails:\n" + "\n".join(details)


def _failure_message(name: str, source: str, results: Sequence, hint: Optional[str]) -> str:
    from hsisr_bench import contract
    from hsisr_bench.check_cell import explain

    failed = contract.failures(results)
    listed = "; ".join(f"{r.check} x{r.scale}: {r.detail.rstrip('.')}" for r in failed)
    fixes = list(dict.fromkeys(f for f in (explain(r.detail) for r in failed) if f))  # once each, in order
    text = f"check-method {name}: {len(failed)} of {len(results)} checks failed ({source}): {listed}."
    if fixes:
        text += " Fix: " + " ".join(fixes)
    if hint:
        text += f" {hint}"
    return text + " See docs/adding-a-method.md for what each check expects."


@click.command("check-method")
@click.argument("name")
@plugin_option
@click.option("--scale", "scales", default="2,3,4", show_default=True, help="Scales to check, e.g. 2 or 2,3,4.")
@click.option("--bands", type=click.IntRange(min=1), default=31, show_default=True,
              help="Spectral bands of the unit checks' inputs (31: the datasets' band count). The real cell "
                   "always runs at 31.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A factory option for the checked build, e.g. --option n_feats=8 (repeatable).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for PyTorch (default: $OMP_NUM_THREADS, else every core).")
def check_method(name: str, scales: str, bands: int, options: Sequence[str], threads: Optional[int]) -> None:
    """Check that method NAME (or NAME+VARIANT) satisfies the method contract and runs; exit 2 on any failure.

    The unit checks run at --bands bands (default 31, the datasets' count), then one tiny real cell
    (synthetic data in a temporary folder: training steps, a checkpoint, tiled evaluation,
    metrics.json) runs through the engine of 'hsibench run' at the first --scale.

    Load outside methods with --plugin FILE.py or $HSIBENCH_PLUGINS, e.g.
    hsibench check-method mine --plugin mine.py
    """
    from hsisr_bench import check_cell, contract
    from hsisr_bench.engine.environment import set_threads
    from hsisr_bench.registry import get_method_info

    method, _, variant = name.partition("+")
    info = get_method_info(method)
    variant = variant if variant and variant != "default" else None
    scale_list = _scales(scales)
    parsed = _options(options)
    set_threads(threads)
    full = check_cell.DATASET_BANDS
    results = contract.check_method(method, bands=bands, scales=scale_list, variant=variant, options=parsed)
    checked, notes, hint = bands, [], None
    if bands != full and contract.failures(results):
        # Fails at the asked band count: does it work at the datasets' own? Then that is a note, not a failure.
        at_full = contract.check_method(method, bands=full, scales=scale_list, variant=variant, options=parsed)
        if not contract.failures(at_full):
            first = contract.failures(results)[0]
            notes.append(f"fixed to {full} bands: the checks fail at {bands} bands ({first.check} x{first.scale}: "
                         f"{first.detail.rstrip('.')}) and pass at {full}, the datasets' band count; datasets "
                         f"with another band count cannot use it.")
            results, checked = at_full, full
    elif not contract.failures(results):
        from hsisr_bench.registry import resolve_options

        resolved = resolve_options(method, parsed, variant)  # the options the unit checks built with
        other = check_cell.OTHER_BANDS if bands == full else full
        problem = check_cell.band_probe(method, bands=other, scale=scale_list[0], options=resolved)
        if problem and bands != full:
            hint = (f"The unit checks pass at {bands} bands but the method fails at {full}, the datasets' band "
                    f"count: it is fixed to {bands} bands ({problem.rstrip('.')}).")
        elif problem:
            notes.append(f"fixed to {full} bands: at {other} bands it fails ({problem.rstrip('.')}); datasets "
                         f"with another band count cannot use it.")
    scale = scale_list[0]
    results = list(results)
    results.append(check_cell.check_option_defaults(method, scale=scale, options=parsed))
    if contract.failures(results):
        results.append(contract.CheckResult("cell", scale, "skip", "not run: fix the failed checks first"))
    else:
        click.echo(f"Running one real cell through the engine (synthetic x{scale}, {full} bands) ...")
        results.append(check_cell.run_real_cell(method, scale=scale, variant=variant, option_texts=options))
    default = " (the datasets' band count; --bands N checks another)" if checked == full else ""
    click.echo(f"Method '{name}' ({info.title}, {info.source}): {checked} bands{default}")
    click.echo(results_table(results))
    for note in notes:
        click.echo(f"\nNote: {note}")
    if contract.failures(results):
        raise MethodError(_failure_message(name, info.source, results, hint))
    passed = sum(r.status == "pass" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    click.echo(f"\nAll checks passed for '{name}': {passed} passed, {skipped} skipped; 'hsibench run' runs it.")
