"""The ``hsibench`` command line: one click group; each sub-command lives in ``hsisr_bench.commands``."""

from __future__ import annotations

import sys

import click

from hsisr_bench import __version__, errors
from hsisr_bench.errors import HsiBenchError
from hsisr_bench.plugins import plugin_option


class HsiBenchGroup(click.Group):
    """A click group that turns :class:`HsiBenchError` and OS errors (a full disk, a folder without write
    permission) into ``Error: ...`` and exit code 2, no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except HsiBenchError as error:
            if errors.DEBUG:
                raise
            click.echo(f"Error: {error}", err=True)
            ctx.exit(getattr(error, "exit_code", 2))
        except OSError as error:
            if errors.DEBUG:
                raise
            where = f" ({error.filename})" if error.filename else ""
            click.echo(f"Error: {error.strerror or error}{where}. Check that the folder exists, is writable and "
                       f"has free space, or choose another --out folder.", err=True)
            ctx.exit(2)


@click.group(cls=HsiBenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hsibench")
@click.option("--debug", is_flag=True, envvar="HSIBENCH_DEBUG",
              help="Show the full traceback of an error (e.g. of a method that fails in a cell).")
def main(debug: bool) -> None:
    """hsisr-bench: train and compare hyperspectral super-resolution methods under one frozen protocol."""
    errors.DEBUG = debug


@main.command("list")
@plugin_option
def list_command() -> None:
    """List the known methods (with variants and parameter counts), datasets, protocols and experiments."""
    from hsisr_bench.commands.listing import print_listing

    print_listing()


def _register_commands() -> None:
    from hsisr_bench.commands import bench, data, doctor, report, run

    main.add_command(data.data)
    main.add_command(run.run)
    main.add_command(run.train)
    main.add_command(run.evaluate)
    main.add_command(bench.bench)
    main.add_command(doctor.doctor)
    main.add_command(report.report)
    main.add_command(report.figures)
    from hsisr_bench.commands import external

    main.add_command(external.export_testset)
    main.add_command(external.score)
    main.add_command(external.export_weights)
    from hsisr_bench.commands import check_method

    main.add_command(check_method.check_method)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
