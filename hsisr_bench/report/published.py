"""The SSRNet paper's published numbers (Tables I to V), as data, for comparison beside our results.

Source: Q. Wang, Q. Li and X. Li, "Spatial-Spectral Residual Network for Hyperspectral Image
Super-Resolution", arXiv:2001.04609 (2020). The values are copied from the paper's tables as
transcribed in the project's specification (``PROTOCOL.md`` section 7). Every value is
PSNR (dB) / SSIM / SAM (degrees) under the paper's metric conventions, on the top-left 512×512 region
of each test scene.

Tables I to IV are ablations of SSRNet on CAVE ×2 only; Table V compares the five methods on CAVE,
Harvard and Foster at ×2, ×3 and ×4.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

#: The paper every number below comes from.
PAPER_REFERENCE = (
    'Q. Wang, Q. Li, X. Li, "Spatial-Spectral Residual Network for Hyperspectral Image '
    'Super-Resolution", arXiv:2001.04609, 2020'
)

#: Short form used in table captions.
PAPER_SHORT = "Wang et al. (SSRNet), arXiv:2001.04609"

#: The metrics the paper publishes, in its column order.
PUBLISHED_METRICS = ("psnr", "ssim", "sam")

#: Decimals the paper prints each metric with.
PUBLISHED_DECIMALS = {"psnr": 2, "ssim": 3, "sam": 2}


@dataclass(frozen=True)
class Published:
    """One published result: PSNR (dB), SSIM, SAM (degrees), and where it comes from.

    Attributes:
        psnr: PSNR in dB (one MSE over the whole cube, peak 1).
        ssim: SSIM (mean over bands).
        sam: SAM in degrees (mean over pixels).
        source: the table it comes from, e.g. ``"Table V"``.
        params: the parameter count the table states, when it states one (Table III).
    """

    psnr: float
    ssim: float
    sam: float
    source: str
    params: Optional[int] = None

    def get(self, metric: str) -> Optional[float]:
        """The published value of ``metric`` (``psnr``, ``ssim``, ``sam``), ``None`` for any other metric."""
        return getattr(self, metric) if metric in PUBLISHED_METRICS else None


def _row(text: str, source: str, params: Optional[int] = None) -> Published:
    psnr, ssim, sam = (float(part) for part in text.split("/"))
    return Published(psnr, ssim, sam, source, params)


_TABLE_V_TEXT = {
    # dataset, scale: Bicubic | GDRRN | 3D-FCNN | EDSR | SSRNet
    ("cave", 2): "40.76/0.962/2.66 | 41.66/0.965/3.84 | 43.15/0.968/2.30 | 43.86/0.973/2.63 | 44.99/0.974/2.26",
    ("cave", 3): "37.53/0.932/3.52 | 38.83/0.940/4.53 | 40.21/0.945/2.93 | 40.53/0.951/3.17 | 40.90/0.952/2.81",
    ("cave", 4): "35.75/0.907/3.94 | 36.96/0.916/5.16 | 37.62/0.919/3.36 | 38.58/0.929/3.80 | 38.94/0.931/3.29",
    ("harvard", 2): "42.83/0.971/2.02 | 44.21/0.977/2.27 | 44.45/0.977/1.89 | 45.48/0.982/1.92 | 46.25/0.983/1.88",
    ("harvard", 3): "39.44/0.941/2.32 | 40.91/0.952/2.62 | 40.58/0.948/2.23 | 41.67/0.959/2.38 | 42.65/0.963/2.20",
    ("harvard", 4): "37.22/0.912/2.53 | 38.60/0.925/2.79 | 38.14/0.918/2.36 | 39.17/0.932/2.56 | 40.00/0.937/2.41",
    ("foster", 2): "55.15/0.998/4.39 | 53.52/0.996/5.63 | 60.24/0.999/5.27 | 57.37/0.998/5.75 | 58.85/0.999/4.06",
    ("foster", 3): "50.96/0.994/5.35 | 50.46/0.992/6.83 | 55.55/0.996/6.30 | 52.98/0.996/7.71 | 54.93/0.997/5.13",
    ("foster", 4): "48.28/0.988/5.99 | 47.83/0.987/7.69 | 52.18/0.992/7.79 | 50.36/0.992/7.10 | 52.21/0.994/5.70",
}
_TABLE_V_METHODS = ("bicubic", "gdrrn", "fcnn3d", "edsr", "ssrnet")

#: Table V: ``(dataset, scale, method) -> Published`` (registry method names, default variants).
TABLE_V: dict[tuple[str, int, str], Published] = {
    (dataset, scale, method): _row(cell, "Table V")
    for (dataset, scale), line in _TABLE_V_TEXT.items()
    for method, cell in zip(_TABLE_V_METHODS, line.split("|"))
}

#: Table I (SSRNet, CAVE ×2): training loss -> result. Keys are normalised loss names (see :func:`loss_key`).
TABLE_I: dict[str, Published] = {
    "mse": _row("44.62/0.973/2.33", "Table I"),
    "l1": _row("44.99/0.974/2.23", "Table I"),
    "mse+sam": _row("43.22/0.970/2.46", "Table I"),
}

#: Table II (SSRNet, CAVE ×2, D = 3): ``(lff, grl) -> Published``.
TABLE_II: dict[tuple[bool, bool], Published] = {
    (False, False): _row("44.03/0.973/2.36", "Table II"),
    (True, False): _row("44.39/0.973/2.31", "Table II"),
    (False, True): _row("44.44/0.973/2.25", "Table II"),
    (True, True): _row("44.99/0.974/2.23", "Table II"),
}

#: Table III (SSRNet, CAVE ×2): block kind -> Published (with the paper's parameter count, rounded to 1K).
TABLE_III: dict[str, Published] = {
    "standard": _row("44.89/0.974/2.22", "Table III", params=2_562_000),
    "separable": _row("44.99/0.974/2.23", "Table III", params=1_275_000),
}

#: Table IV (SSRNet, CAVE ×2): number of SSRMs D -> Published.
TABLE_IV: dict[int, Published] = {
    2: _row("44.93/0.971/2.24", "Table IV"),
    3: _row("45.01/0.974/2.23", "Table IV"),
    4: _row("44.99/0.974/2.23", "Table IV"),
    5: _row("45.13/0.975/2.22", "Table IV"),
}

#: What each ablation table varies, for captions.
ABLATION_TITLES = {
    "I": "training loss (SSRNet, CAVE ×2)",
    "II": "local feature fusion (LFF) and global residual learning (GRL) (SSRNet, CAVE ×2, D = 3)",
    "III": "standard 3D convolution vs separable block (SSRNet, CAVE ×2)",
    "IV": "number of SSRMs D (SSRNet, CAVE ×2)",
}

# Option names a method may use for the same knob (the reader matches any of them).
_DEPTH_KEYS = ("depth", "n_modules", "num_modules", "modules", "n_ssrm", "num_ssrm", "d", "n_blocks", "num_blocks")


def table_v(dataset: str, scale: int, method: str, variant: Optional[str] = None) -> Optional[Published]:
    """The Table V value of ``method`` on ``dataset`` at ``scale``, or ``None`` when the paper has none.

    Args:
        dataset: dataset name (``cave``, ``harvard``, ``foster``); case-insensitive.
        scale: 2, 3 or 4.
        method: registry name (``bicubic``, ``gdrrn``, ``fcnn3d``, ``edsr``, ``ssrnet``).
        variant: a named variant; only the default (``None`` or empty) has a Table V value.

    Returns:
        The published PSNR / SSIM / SAM, or ``None``.
    """
    if variant:
        return None
    return TABLE_V.get((str(dataset).lower(), int(scale), str(method).lower()))


def loss_key(loss: Any) -> Optional[str]:
    """Normalise a loss name or spec to a Table I key (``mse``, ``l1``, ``mse+sam``), or ``None``.

    Accepts names such as ``"L1"``, ``"mse"``, ``"mse+sam"``, ``"0.5*mse+0.5*sam"``, ``"mse_sam"``.
    """
    if loss is None:
        return None
    if isinstance(loss, Mapping):
        loss = loss.get("name", "")
    text = str(loss).strip().lower()
    if text in ("l1", "mae", "l1loss"):
        return "l1"
    if text in ("l2", "l2loss"):
        return "mse"
    letters = re.sub(r"[^a-z]", "", text)  # drop weights and separators: "0.5*mse+0.5*sam" -> "msesam"
    if letters == "mse":
        return "mse"
    if letters in ("msesam", "sammse", "mseandsam", "mseplussam"):
        return "mse+sam"
    return None


def _option(options: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    lowered = {str(k).lower(): v for k, v in options.items()}
    for key in keys:
        if key in lowered:
            return lowered[key]
    return None


def ablation_match(table: str, record: Mapping[str, Any]) -> Optional[Published]:
    """The published row of ablation ``table`` (``"I"`` to ``"IV"``) that ``record`` reproduces, if any.

    A record matches only when it is SSRNet on CAVE ×2 and its options (or loss, for Table I) name
    one of the paper's rows. Options the record does not state take SSRNet's defaults
    (LFF on, GRL on, separable block, D = 3, L1 loss).

    Args:
        table: ``"I"``, ``"II"``, ``"III"`` or ``"IV"``.
        record: a run record (``metrics.json`` content) with ``method``, ``dataset``, ``scale``,
            and optionally ``options`` and ``loss``.

    Returns:
        The published row, or ``None``.
    """
    if str(record.get("method", "")).lower() != "ssrnet":
        return None
    if str(record.get("dataset", "")).lower() != "cave" or int(record.get("scale", 0)) != 2:
        return None
    options = record.get("options") or {}
    if table == "I":
        return TABLE_I.get(loss_key(record.get("loss")) or "l1")
    if table == "II":
        lff = _option(options, ("lff",))
        grl = _option(options, ("grl",))
        return TABLE_II.get((True if lff is None else bool(lff), True if grl is None else bool(grl)))
    if table == "III":
        block = _option(options, ("block",))
        return TABLE_III.get(str(block).lower() if block is not None else "separable")
    if table == "IV":
        depth = _option(options, _DEPTH_KEYS)
        return TABLE_IV.get(3 if depth is None else int(depth))
    return None
