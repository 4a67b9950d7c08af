"""Shared test fixtures (keep this file small)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: The repository root (where ``configs/`` lives).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Real data shared by the project's tests (10 CAVE scenes, one Hyperion cube); may be absent.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: ``--set`` overrides that make the synthetic dataset tiny (4 scenes of 48 x 48) for smoke runs.
TINY_SYNTHETIC = ("dataset.n_scenes=4", "dataset.size=48")


@pytest.fixture
def subprocess_env() -> dict:
    """The environment for a child Python process that imports this checkout (and single-threaded torch)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["OMP_NUM_THREADS"] = "1"
    return env
