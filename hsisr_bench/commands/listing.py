"""``hsibench list``: what the toolkit knows, as tables."""

from __future__ import annotations

import click
import torch
from tabulate import tabulate

from hsisr_bench import config
from hsisr_bench.data.datasets import DATASETS
from hsisr_bench.registry import count_parameters, create_method, get_method_info, list_methods


def _parameter_summary(name: str, variant_options: dict) -> str:
    info = get_method_info(name)
    if not info.trainable:
        return "0"
    counts = []
    for scale in (2, 3, 4):
        # Shapes only: the meta device allocates nothing (EDSR's paper size has 43 M parameters).
        with torch.device("meta"):
            model = create_method(name, bands=31, scale=scale, **variant_options)
        counts.append(f"x{scale} {count_parameters(model):,}")
    return ", ".join(counts)


def print_listing() -> None:
    """Print methods (variants and parameter counts for 31 bands), datasets, protocols, experiments."""
    rows = []
    for name in list_methods():
        info = get_method_info(name)
        rows.append([name, info.title, info.input, "yes" if info.trainable else "no",
                     info.loss if info.trainable else "-", _parameter_summary(name, {})])
        for variant, options in info.variants.items():
            rows.append([f"  {name}+{variant}", "", "", "", "", _parameter_summary(name, dict(options))])
    click.echo("Methods (parameters for 31 bands):")
    click.echo(tabulate(rows, headers=["name", "title", "input", "trainable", "loss", "parameters"]))

    click.echo("\nDatasets:")
    click.echo(tabulate(
        [[name, spec.title, spec.bands, spec.normalisation] for name, spec in DATASETS.items()],
        headers=["name", "title", "bands", "normalisation"],
    ))
    click.echo("\nProtocols: " + ", ".join(config.list_protocols()))
    click.echo("Experiments: " + ", ".join(config.list_experiments()))
