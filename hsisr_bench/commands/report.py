"""PLACEHOLDER until the report helper lands."""
import click


@click.command()
def report() -> None:
    """Write tables."""


@click.command()
def figures() -> None:
    """Write figures."""
