"""The ``hsibench`` command line: one click group; each sub-command lives in ``hsisr_bench.commands``."""

from __future__ import annotations

import sys

import click

from hsisr_bench import __version__
from hsisr_bench.errors import HsiBenchError


class HsiBenchGroup(click.Group):
    """A click group that turns :class:`HsiBenchError` into ``Error: ...`` and exit code 2, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HsiBenchError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(2)


@click.group(cls=HsiBenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hsibench")
def main() -> None:
    """hsisr-bench: train and compare hyperspectral super-resolution methods under one frozen protocol."""


@main.command("list")
def list_command() -> None:
    """List the known methods (with variants and parameter counts), datasets, protocols and experiments."""
    from hsisr_bench.commands.listing import print_listing

    print_listing()


def _register_commands() -> None:
    from hsisr_bench.commands import bench, data, report, run

    main.add_command(data.data)
    main.add_command(run.run)
    main.add_command(run.train)
    main.add_command(run.evaluate)
    main.add_command(bench.bench)
    main.add_command(report.report)
    main.add_command(report.figures)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
