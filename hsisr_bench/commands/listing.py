"""``hsibench list``: what the toolkit knows, as tables (methods with their source and variants)."""

from __future__ import annotations

import click
import torch
from tabulate import tabulate

from hsisr_bench import config
from hsisr_bench.data.datasets import DATASETS
from hsisr_bench.registry import count_parameters, create_method, describe_variant, get_method_info, list_methods


def _parameter_summary(name: str, variant: str, variant_options: dict) -> str:
    """Trainable parameters at 31 bands for x2, x3, x4: the declared ``param_counts`` (which the contract
    checks verify), else counted on a build."""
    info = get_method_info(name)
    if not info.trainable:
        return "0"
    counts = []
    for scale in (2, 3, 4):
        declared = info.param_counts.get((scale, variant))
        if declared is not None:
            counts.append(f"x{scale} {declared:,}")
            continue
        try:
            # A real CPU build: construction under the meta device is ~20x slower for weight-normed
            # networks (SSRNet), and the large paper-size variants declare their counts anyway.
            with torch.no_grad():
                model = create_method(name, bands=31, scale=scale, **variant_options)
        except Exception as error:  # noqa: BLE001 - a plugin's factory may fail at some scale: still list it
            counts.append(f"x{scale} ? ({type(error).__name__})")
            continue
        counts.append(f"x{scale} {count_parameters(model):,}")
    return ", ".join(counts)


def print_listing() -> None:
    """Print methods (source, variants with a description, parameter counts for 31 bands), datasets,
    protocols and experiments."""
    rows = []
    for name in list_methods():
        info = get_method_info(name)
        rows.append([name, info.title, info.input, "yes" if info.trainable else "no",
                     info.loss if info.trainable else "-", _parameter_summary(name, "default", {}), info.source])
        for variant, options in info.variants.items():
            rows.append([f"  {name}+{variant}", describe_variant(name, variant), "", "", "",
                         _parameter_summary(name, variant, dict(options)), ""])
    click.echo("Methods (parameters for 31 bands; a variant's title column describes it):")
    click.echo(tabulate(rows, headers=["name", "title / variant", "input", "trainable", "loss", "parameters",
                                       "source"]))

    click.echo("\nDatasets:")
    click.echo(tabulate(
        [[name, spec.title, spec.bands, spec.normalisation] for name, spec in DATASETS.items()],
        headers=["name", "title", "bands", "normalisation"],
    ))
    click.echo("\nProtocols: " + ", ".join(config.list_protocols()))
    click.echo("Experiments: " + ", ".join(config.list_experiments()))
