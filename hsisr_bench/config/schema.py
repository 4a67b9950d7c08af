"""The config schema: frozen dataclasses for a protocol, a method's settings, a dataset and one run cell.

Value checks that need no file (``Protocol.check``, the mode tuples) live here too; reading TOML files
is :mod:`hsisr_bench.config.files`, ``--set`` is :mod:`hsisr_bench.config.overrides`, expanding a
command line into cells is :mod:`hsisr_bench.config.planning`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from hsisr_bench.errors import ConfigError

#: Devices a run may ask for; ``auto`` picks CUDA when available.
DEVICES = ("auto", "cpu", "cuda")
#: Mixed-precision modes: ``none`` (fp32), ``bf16`` (CUDA, or CPU with bf16 support), ``fp16`` (CUDA, with a
#: gradient scaler).
AMP_MODES = ("none", "bf16", "fp16")
#: TF32 policy for float32 matmuls and convolutions on CUDA: ``default`` leaves PyTorch's own setting.
TF32_MODES = ("default", "on", "off")


@dataclass(frozen=True)
class Protocol:
    """The shared training and evaluation protocol (PROTOCOL.md section 4), one per profile.

    Attributes:
        name: the profile name (``paper``, ``quick``, ``smoke``).
        description: one line for listings and captions.
        epochs: training epochs.
        batch_size: patches per optimiser step (global, across DDP processes).
        lr_patch: LR patch side (the authors' code: 32; HR side ``lr_patch * scale``).
        hr_patch: HR patch side; 0 means ``lr_patch * scale`` (the paper's text is ambiguous).
        patches_per_image: random patches per training image and rescaling factor (paper: 24).
        rescales: rescaling factors of each training image before cutting patches (paper: 1, 0.75, 0.5).
        augment: keep the 90/180/270 degree rotations and the flip of each patch (5 copies).
        steps_per_epoch: cap on optimiser steps per epoch; 0 means one full pass over the patch bank.
        lr: learning rate; 0 means the method's own (its ``optimizer.lr``).
        lr_step_epochs: the learning rate is multiplied by ``lr_gamma`` every this many epochs.
        lr_gamma: the step decay factor (paper: 0.5 every 35 epochs).
        split_seed: seed of the scene split when no split file applies (the same split for every
            method and seed; the fraction is PROTOCOL.md's 80/20).
        val_scenes: training scenes carved out for per-epoch validation PSNR (0: no validation).
        val_region: side of the top-left region of each validation scene that is scored.
        test_region: side of the top-left region of each test scene that is scored (paper: 512).
        tile: inference tile side in LR pixels (0: the inference engine decides).
        method_overrides: per-method factory options forced by this profile (recorded and reported).
    """

    name: str
    description: str = ""
    epochs: int = 200
    batch_size: int = 16
    lr_patch: int = 32
    hr_patch: int = 0
    patches_per_image: int = 24
    rescales: tuple[float, ...] = (1.0, 0.75, 0.5)
    augment: bool = True
    steps_per_epoch: int = 0
    lr: float = 0.0
    lr_step_epochs: int = 35
    lr_gamma: float = 0.5
    split_seed: int = 0
    val_scenes: int = 0
    val_region: int = 64
    test_region: int = 512
    tile: int = 0
    method_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`ConfigError` when a value is out of range."""
        positive = ("epochs", "batch_size", "patches_per_image", "lr_step_epochs", "test_region", "val_region")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"protocol '{self.name}': {name} must be at least 1, got {getattr(self, name)}.")
        if self.lr_patch < 1 and self.hr_patch < 1:
            raise ConfigError(f"protocol '{self.name}': set lr_patch or hr_patch to a positive size.")
        for name in ("steps_per_epoch", "val_scenes", "tile", "hr_patch", "split_seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"protocol '{self.name}': {name} must be 0 or more, got {getattr(self, name)}.")
        if not self.rescales or any(not 0.0 < r <= 1.0 for r in self.rescales):
            raise ConfigError(f"protocol '{self.name}': rescales must be factors in (0, 1], got {self.rescales}.")
        # NaN passes every comparison above as "not out of range", so finiteness is checked first.
        # (lr_gamma and rescales are checked by ranges that NaN fails.)
        if not math.isfinite(self.lr):
            raise ConfigError(f"protocol '{self.name}': lr must be a finite number (0: the method's own), "
                              f"got {self.lr}.")
        if self.lr < 0 or not 0.0 < self.lr_gamma <= 1.0:
            raise ConfigError(f"protocol '{self.name}': need lr >= 0 and 0 < lr_gamma <= 1.")


def check_optimizer(optimizer: Mapping[str, Any], where: str) -> None:
    """Check a method's optimiser settings the way ``torch.optim.Adam`` would, but at config time.

    Adam raises ``ValueError`` only when the first run builds it, after the run folder and its
    ``config.json`` exist; checking here turns that into a ``ConfigError`` before anything is written.
    NaN and infinity are refused too (Adam accepts a NaN weight decay and trains NaN weights).

    Args:
        optimizer: ``{"name", "lr", "betas", "eps", "weight_decay"}`` (missing keys are not checked).
        where: what the message names (``method 'edsr'``).

    Raises:
        ConfigError: an unsupported optimiser name or a value out of range.
    """
    name = str(optimizer.get("name", "adam")).lower()
    if name != "adam":
        raise ConfigError(f"{where}: optimizer '{name}' is not supported (method.optimizer.name); use 'adam'.")

    def number(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{where}: method.optimizer.{key} must be a finite number, got {value!r} "
                              f"(--set method.optimizer.{key}=...).")
        return float(value)

    for key, low in (("lr", "0"), ("eps", "0"), ("weight_decay", "0")):
        if key in optimizer and number(key, optimizer[key]) < 0:
            raise ConfigError(f"{where}: method.optimizer.{key} must be {low} or more, got {optimizer[key]!r}.")
    if "betas" in optimizer:
        betas = optimizer["betas"]
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ConfigError(f"{where}: method.optimizer.betas must be two numbers like [0.9, 0.999], "
                              f"got {betas!r}.")
        for index, beta in enumerate(betas):
            if not 0.0 <= number(f"betas[{index}]", beta) < 1.0:
                raise ConfigError(f"{where}: method.optimizer.betas[{index}] must be in [0, 1), got {beta!r} "
                                  f"(e.g. betas=[0.9, 0.999]).")


@dataclass(frozen=True)
class MethodConfig:
    """One method's settings for a run: variant, factory options, loss and optimiser.

    Attributes:
        name: registry name.
        variant: a named variant of the method (``nolff``...), or ``None`` for the default network.
        options: explicit factory options (on top of the variant's), e.g. ``{"n_feats": 32}``.
        defaults: the options of ``configs/methods/<name>.toml`` (below the variant's and the explicit ones).
        loss: training loss name (see ``hsisr_bench.engine.losses.LOSSES``).
        optimizer: ``{"name": "adam", "lr", "betas", "weight_decay", "eps"}``.
    """

    name: str
    variant: Optional[str] = None
    options: Mapping[str, Any] = field(default_factory=dict)
    loss: str = "l1"
    optimizer: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetConfig:
    """Which dataset a run reads and how.

    Attributes:
        name: a key of ``hsisr_bench.data.datasets.DATASETS``.
        data_root: folder holding the data (``None``: ``$HSIBENCH_DATA``, else ``./data``).
        split_file: a split JSON to use instead of the seeded split (``None``: shipped or seeded).
        n_scenes: synthetic only: number of generated scenes (0: the generator's default, 12).
        size: synthetic only: side of the generated scenes (0: the generator's default, 128).
        key: the variable to read from each ``.mat``/``.h5`` scene file (``None``: the dataset's own,
            e.g. Harvard's ``ref``).
        restrict_split: allow a split file that names scenes absent from the data root; the split is
            restricted to the present scenes and the restriction is printed and recorded.
    """

    name: str
    data_root: Optional[str] = None
    split_file: Optional[str] = None
    n_scenes: int = 0
    size: int = 0
    key: Optional[str] = None
    restrict_split: bool = False


@dataclass(frozen=True)
class RunConfig:
    """Everything one cell (dataset × scale × method[+variant] × seed) needs; frozen.

    Attributes:
        method, dataset, protocol: the three parts above.
        scale: integer upscaling factor (>= 2).
        seed: seed of weights init, patch sampling and data order.
        device: ``auto``, ``cpu`` or ``cuda`` (not part of the run id).
        amp: ``none``, ``bf16`` or ``fp16``: mixed precision of training (bf16 also on a CPU that supports it).
        eval_amp: score the test scenes with the ``amp`` forward too (default: fp32 forward); recorded.
        tf32: ``default``, ``on`` or ``off``: TF32 for float32 matmuls/convolutions on CUDA (recorded).
        compile: wrap the model in ``torch.compile`` for training (off by default).
        experiment: the experiment this cell came from, if any (recorded, not part of the run id).
        metrics: metric conventions that differ from the paper's, as ``hsisr_bench.metrics.Conventions``
            fields (``--set metrics.sam_zero=exclude``); empty means the paper's conventions.
    """

    method: MethodConfig
    dataset: DatasetConfig
    protocol: Protocol
    scale: int
    seed: int = 0
    device: str = "auto"
    amp: str = "none"
    eval_amp: bool = False
    tf32: str = "default"
    compile: bool = False
    experiment: Optional[str] = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def conventions(self):
        """The metric conventions of this run (:class:`hsisr_bench.metrics.Conventions`)."""
        from hsisr_bench.metrics import Conventions

        return Conventions.from_value(dict(self.metrics))

    @property
    def label(self) -> str:
        """The run folder name ``<method>[+<variant>][+loss-<loss>]``: unique per method setting."""
        from hsisr_bench.config.files import default_method_config  # files imports this module
        from hsisr_bench.registry import get_method_info

        label = self.method.name
        if self.method.variant:
            label += f"+{self.method.variant}"
        trainable = get_method_info(self.method.name).trainable
        if trainable and self.method.loss != default_method_config(self.method.name).loss:
            label += f"+loss-{self.method.loss}"
        return label

    def effective_options(self) -> dict:
        """The factory options of this run, later ones winning: the method's TOML defaults, the profile's
        overrides, the variant's options, the explicit ones (``--set method.options.<key>``).

        Raises:
            MethodError: unknown variant or option (did-you-mean).
        """
        from hsisr_bench.registry import resolve_options

        variant = resolve_options(self.method.name, {}, self.method.variant)  # checks the variant name
        options = {**self.method.defaults, **self.protocol.method_overrides.get(self.method.name, {}),
                   **variant, **self.method.options}
        return resolve_options(self.method.name, options)

    def recorded_options(self) -> dict:
        """Every factory option with its value in this run (defaults filled in), for config.json."""
        from hsisr_bench.registry import get_method_info

        return {**get_method_info(self.method.name).options, **self.effective_options()}

    def effective_lr(self) -> float:
        """The learning rate: the protocol's when set, else the method's."""
        return float(self.protocol.lr or self.method.optimizer.get("lr", 1e-4))

    def to_dict(self) -> dict:
        """The resolved config as plain JSON-able data (lists for tuples)."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _coerce(value: Any, template: Any, where: str) -> Any:
    """Convert a TOML/CLI value to the type of ``template`` (the field's default), or raise ConfigError."""
    if isinstance(template, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(template, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(template, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(template, tuple):
        if isinstance(value, (list, tuple)):
            return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
    elif isinstance(template, str) or template is None:
        if isinstance(value, str) or (template is None and value is None):
            return value
    elif isinstance(template, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
    else:  # pragma: no cover - every field has one of the types above
        return value
    expected = type(template).__name__ if template is not None else "str"
    raise ConfigError(f"{where}: expected a value of type {expected}, got {value!r} ({type(value).__name__}).")


def _protocol_defaults() -> dict:
    return {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
            for f in dataclasses.fields(Protocol) if f.name != "name"}


@dataclass(frozen=True)
class Experiment:
    """A grid of cells read from ``configs/experiments/<name>.toml``.

    Attributes:
        name, title: identifiers for listings and reports.
        methods: method names; ``variants`` and ``losses`` apply to each of them.
        variants: variant names (``"default"`` is the plain network).
        losses: loss names (``"default"`` is the method's own loss).
        datasets, scales, seeds: the rest of the grid.
    """

    name: str
    title: str
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    scales: tuple[int, ...]
    variants: tuple[str, ...] = ("default",)
    losses: tuple[str, ...] = ("default",)
    seeds: tuple[int, ...] = (0,)
