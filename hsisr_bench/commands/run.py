"""PLACEHOLDER until the harness helper lands."""
import click


@click.command()
def run() -> None:
    """Train and evaluate methods."""


@click.command()
def train() -> None:
    """Train one cell."""


@click.command()
def evaluate() -> None:
    """Evaluate one cell."""
