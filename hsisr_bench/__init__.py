"""hsisr-bench: a reproducible benchmark toolkit for hyperspectral image super-resolution."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root, where ``configs/`` lives (the package is installed in editable mode).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"
