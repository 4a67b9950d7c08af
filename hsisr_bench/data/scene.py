"""The ``Scene`` record every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np


@dataclass
class Scene:
    """One hyperspectral scene, band-first.

    Attributes:
        name: scene name (for CAVE the folder name, e.g. ``balloons_ms``).
        cube: ``(L, H, W)`` float32 array with values in [0, 1], after the dataset's normalisation.
        wavelengths: ``(L,)`` band centres in nanometres, or ``None`` when unknown.
        dataset: the dataset this scene belongs to (``cave``, ``harvard``, ``foster``, ``synthetic``, ...).
        source: the file or folder it was read from, if any.
        extras: other arrays stored with the scene (e.g. Harvard's ``lbl`` mask).
    """

    name: str
    cube: np.ndarray
    wavelengths: Optional[np.ndarray] = None
    dataset: Optional[str] = None
    source: Optional[Path] = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def bands(self) -> int:
        return int(self.cube.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.cube.shape)  # type: ignore[return-value]
