"""PLACEHOLDER until the data helper lands: `hsibench data` group."""
import click


@click.group()
def data() -> None:
    """Inspect datasets and write the synthetic dataset."""
