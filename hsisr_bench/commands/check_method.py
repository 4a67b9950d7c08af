"""``hsibench check-method NAME``: run the method contract's checks on one method and print a table.

The checks are :func:`hsisr_bench.contract.check_method` (the same ones the test suite runs on every
built-in method): output shape with the output crop, finite output, backward, a two-step fit,
determinism under a seed, tiled inference equal to untiled on partial tiles, declared parameter
counts. Any failure is an ``Error: ...`` naming the failed checks, with exit code 2.
"""

from __future__ import annotations

from typing import Sequence

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
    """A pass/fail table: one row per check, one column per scale, then the detail of each check."""
    scales = sorted({r.scale for r in results})
    cell = {(r.check, r.scale): r for r in results}
    marks = {"pass": "pass", "fail": "FAIL", "skip": "skip"}
    rows = [[check] + [marks[cell[(check, s)].status] if (check, s) in cell else "" for s in scales]
            for check in CHECKS if any((check, s) in cell for s in scales)]
    table = tabulate(rows, headers=["check"] + [f"x{s}" for s in scales])
    details = [f"  x{r.scale} {r.check:<12} {marks[r.status]:<4} {r.detail}" for r in results]
    return table + "\n\nDetails:\n" + "\n".join(details)


@click.command("check-method")
@click.argument("name")
@plugin_option
@click.option("--scale", "scales", default="2,3,4", show_default=True, help="Scales to check, e.g. 2 or 2,3,4.")
@click.option("--bands", type=click.IntRange(min=1), default=12, show_default=True,
              help="Spectral bands of the test inputs (small keeps it fast).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="A factory option for the checked build, e.g. --option n_feats=8 (repeatable).")
def check_method(name: str, scales: str, bands: int, options: Sequence[str]) -> None:
    """Check that method NAME (or NAME+VARIANT) satisfies the method contract; exit 2 on any failure.

    Load outside methods with --plugin FILE.py or $HSIBENCH_PLUGINS, e.g.
    hsibench check-method mine --plugin mine.py
    """
    from hsisr_bench import contract
    from hsisr_bench.registry import get_method_info

    method, _, variant = name.partition("+")
    info = get_method_info(method)
    results = contract.check_method(method, bands=bands, scales=_scales(scales),
                                    variant=variant if variant and variant != "default" else None,
                                    options=_options(options))
    click.echo(f"Method '{name}' ({info.title}, {info.source}): {bands} bands")
    click.echo(results_table(results))
    failed = contract.failures(results)
    passed = sum(r.status == "pass" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    if failed:
        listed = "; ".join(f"{r.check} x{r.scale}: {r.detail.rstrip('.')}" for r in failed)
        raise MethodError(f"check-method {name}: {len(failed)} of {len(results)} checks failed ({info.source}): "
                          f"{listed}. See docs/adding-a-method.md for what each check expects.")
    click.echo(f"\nAll checks passed for '{name}': {passed} passed, {skipped} skipped.")
