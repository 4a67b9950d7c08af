"""hsisr-bench: a reproducible benchmark toolkit for hyperspectral image super-resolution."""

from importlib.resources import files
from pathlib import Path

__version__ = "0.1.0"


def _config_dir() -> Path:
    """The folder of the shipped configs (package ``hsisr_bench.configs``) as a real filesystem path.

    In a wheel install it is ``site-packages/hsisr_bench/configs``; in an editable install setuptools
    maps the package to the repository's top-level ``configs/`` folder, so edits there take effect.
    Code globs and opens files in it, hence a :class:`~pathlib.Path`, not a Traversable: the package
    is never imported from a zip archive (setuptools installs it unzipped).
    """
    return Path(str(files("hsisr_bench.configs")))


#: The shipped configs (``protocols/``, ``methods/``, ``experiments/``, ``splits/``).
CONFIG_DIR = _config_dir()

#: The folder above the package: the repository root in an editable install (``site-packages`` in a
#: wheel install). Only developer tools use it (``hsibench bench`` writing docs/benchmarks.md,
#: benchmark data look-up); the library reads nothing from it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
