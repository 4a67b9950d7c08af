"""TOML configs -> frozen dataclasses: protocols, method defaults, experiments, overrides, run plans.

Three kinds of file live under ``configs/``:

- ``protocols/<name>.toml``: the shared training/evaluation protocol (``paper``, ``quick``, ``smoke``),
  flat keys that map one to one onto :class:`Protocol`.
- ``methods/<name>.toml``: one method's paper defaults (loss, optimiser, factory options).
- ``experiments/<name>.toml``: a grid (methods × variants × losses × datasets × scales × seeds) that
  :func:`plan_runs` expands into one :class:`RunConfig` per cell.

Any field can be overridden from the command line with ``--set key=value`` (see :func:`apply_overrides`);
an unknown key is a :class:`~hsisr_bench.errors.ConfigError` with a did-you-mean hint. The resolved config
of a run (:meth:`RunConfig.to_dict`) is saved with every run and hashed into its run id.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hsisr_bench import CONFIG_DIR
from hsisr_bench.errors import ConfigError, HsiBenchError, MethodError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: Devices a run may ask for; ``auto`` picks CUDA when available.
DEVICES = ("auto", "cpu", "cuda")
#: Mixed-precision modes (CUDA only): ``none`` (fp32), ``bf16``, ``fp16`` (with a gradient scaler).
AMP_MODES = ("none", "bf16", "fp16")


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
        if self.lr < 0 or not 0.0 < self.lr_gamma <= 1.0:
            raise ConfigError(f"protocol '{self.name}': need lr >= 0 and 0 < lr_gamma <= 1.")


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
    """

    name: str
    data_root: Optional[str] = None
    split_file: Optional[str] = None
    n_scenes: int = 0
    size: int = 0


@dataclass(frozen=True)
class RunConfig:
    """Everything one cell (dataset × scale × method[+variant] × seed) needs; frozen.

    Attributes:
        method, dataset, protocol: the three parts above.
        scale: integer upscaling factor (>= 2).
        seed: seed of weights init, patch sampling and data order.
        device: ``auto``, ``cpu`` or ``cuda`` (not part of the run id).
        amp: ``none``, ``bf16`` or ``fp16`` (CUDA only).
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
    experiment: Optional[str] = None
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def conventions(self):
        """The metric conventions of this run (:class:`hsisr_bench.metrics.Conventions`)."""
        from hsisr_bench.metrics import Conventions

        return Conventions.from_value(dict(self.metrics))

    @property
    def label(self) -> str:
        """The run folder name ``<method>[+<variant>][+loss-<loss>]``: unique per method setting."""
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


# ----------------------------------------------------------------------------------------- files


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}. Fix the file.") from None
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error}.") from None


def _names(kind: str) -> list[str]:
    folder = CONFIG_DIR / kind
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def list_protocols() -> list[str]:
    """Names of the protocol profiles in ``configs/protocols`` (``paper``, ``quick``, ``smoke``)."""
    return _names("protocols")


def list_experiments() -> list[str]:
    """Names of the experiments in ``configs/experiments`` (``table5``, ``table1_loss``, ...)."""
    return _names("experiments")


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


def load_protocol(name: str) -> Protocol:
    """Read ``configs/protocols/<name>.toml`` into a checked :class:`Protocol`.

    Raises:
        ConfigError: unknown profile (did-you-mean), unknown key or wrong type in the file.
    """
    choices = list_protocols()
    if name not in choices:
        raise ConfigError(f"Unknown profile '{name}' (--profile). {did_you_mean(name, choices)}")
    path = CONFIG_DIR / "protocols" / f"{name}.toml"
    data = _read_toml(path)
    defaults = _protocol_defaults()
    values: dict[str, Any] = {"name": name}
    for key, value in data.items():
        if key == "name":
            continue
        if key not in defaults:
            raise ConfigError(f"{path}: unknown key '{key}'. {did_you_mean(key, defaults)}")
        values[key] = _coerce(value, defaults[key], f"{path}: {key}")
    protocol = Protocol(**values)
    protocol.check()
    return protocol


def default_method_config(name: str) -> MethodConfig:
    """A method's paper defaults: ``configs/methods/<name>.toml`` over the registry's ``MethodInfo``.

    Raises:
        MethodError: unknown method (did-you-mean).
        ConfigError: an unknown key in the method's TOML file.
    """
    from hsisr_bench.registry import get_method_info

    info = get_method_info(name)
    optimizer = {"name": "adam", "lr": 1e-4, "betas": (0.9, 0.999), "weight_decay": 0.0, "eps": 1e-8}
    optimizer.update(info.optimizer)
    loss, options = info.loss, {}
    path = CONFIG_DIR / "methods" / f"{name}.toml"
    if path.is_file():
        data = _read_toml(path)
        for key in data:
            if key not in ("name", "title", "paper", "loss", "optimizer", "options", "notes"):
                raise ConfigError(f"{path}: unknown key '{key}'. "
                                  f"{did_you_mean(key, ['loss', 'optimizer', 'options', 'notes'])}")
        loss = data.get("loss", loss)
        for key, value in data.get("optimizer", {}).items():
            if key not in optimizer:
                raise ConfigError(f"{path}: unknown optimizer key '{key}'. {did_you_mean(key, optimizer)}")
            optimizer[key] = _coerce(value, optimizer[key], f"{path}: optimizer.{key}")
        options = dict(data.get("options", {}))
    optimizer["betas"] = tuple(float(b) for b in optimizer["betas"])
    return MethodConfig(name=name, variant=None, options={}, loss=loss, optimizer=optimizer, defaults=options)


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


def load_experiment(name: str) -> Experiment:
    """Read ``configs/experiments/<name>.toml``.

    Raises:
        ConfigError: unknown experiment (did-you-mean) or a malformed file.
    """
    choices = list_experiments()
    if name not in choices:
        raise ConfigError(f"Unknown experiment '{name}' (--experiment). {did_you_mean(name, choices)}")
    path = CONFIG_DIR / "experiments" / f"{name}.toml"
    data = _read_toml(path)
    fields = {f.name for f in dataclasses.fields(Experiment)} | {"description"}
    for key in data:
        if key not in fields:
            raise ConfigError(f"{path}: unknown key '{key}'. {did_you_mean(key, fields)}")
    try:
        return Experiment(
            name=name, title=str(data.get("title", name)),
            methods=tuple(data["methods"]), datasets=tuple(data["datasets"]),
            scales=tuple(int(s) for s in data["scales"]),
            variants=tuple(data.get("variants", ["default"])), losses=tuple(data.get("losses", ["default"])),
            seeds=tuple(int(s) for s in data.get("seeds", [0])),
        )
    except KeyError as error:
        raise ConfigError(f"{path}: missing key {error}; an experiment needs methods, datasets and scales.") from None


# ------------------------------------------------------------------------------------- overrides

_DATASET_KEYS = tuple(f.name for f in dataclasses.fields(DatasetConfig) if f.name != "name")
_TOP_KEYS = ("scale", "seed", "device", "amp")


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value`` and parse the value as TOML (``3``, ``1e-4``, ``[1.0, 0.5]``, ``true``).

    A value that is not valid TOML is kept as a bare string (``method.loss=mse``).

    Raises:
        ConfigError: no ``=`` in ``text``.
    """
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set protocol.epochs=3.")
    key, raw = (part.strip() for part in text.split("=", 1))
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def valid_override_keys(method: Optional[MethodConfig] = None) -> list[str]:
    """Every key ``--set`` accepts (method options and optimiser keys of ``method`` included)."""
    keys = [f"protocol.{f.name}" for f in dataclasses.fields(Protocol) if f.name not in ("name", "method_overrides")]
    keys += [f"dataset.{k}" for k in _DATASET_KEYS] + list(_TOP_KEYS)
    keys += ["method.variant", "method.loss"]
    keys += [f"metrics.{f.name}" for f in dataclasses.fields(_conventions_class())]
    if method is not None:
        from hsisr_bench.registry import get_method_info

        keys += [f"method.options.{k}" for k in get_method_info(method.name).options]
        keys += [f"method.optimizer.{k}" for k in method.optimizer]
    return keys


def apply_overrides(run: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """Apply ``--set key=value`` overrides to one run config and return the new (frozen) config.

    Keys: ``protocol.<field>``, ``dataset.<field>``, ``method.loss``, ``method.variant``,
    ``method.options.<option>``, ``method.optimizer.<key>``, ``scale``, ``seed``, ``device``, ``amp``.
    ``method.<name>.<...>`` applies only to the runs of method ``<name>``.

    Raises:
        ConfigError: unknown key (did-you-mean) or a value of the wrong type.
    """
    from hsisr_bench.registry import list_methods

    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        where = f"--set {key}"
        if parts[0] == "method" and len(parts) >= 3 and parts[1] in list_methods():
            if parts[1] != run.method.name:
                continue  # a per-method override for another method
            parts = ["method"] + parts[2:]
        if parts[0] == "protocol" and len(parts) == 2:
            defaults = _protocol_defaults()
            if parts[1] not in defaults or parts[1] in ("name", "method_overrides"):
                raise _unknown_key(key, run)
            new = _coerce(value, getattr(run.protocol, parts[1]), where)
            run = dataclasses.replace(run, protocol=dataclasses.replace(run.protocol, **{parts[1]: new}))
            run.protocol.check()
        elif parts[0] == "dataset" and len(parts) == 2 and parts[1] in _DATASET_KEYS:
            template = getattr(DatasetConfig("x"), parts[1])
            new = _coerce(value, template, where)
            run = dataclasses.replace(run, dataset=dataclasses.replace(run.dataset, **{parts[1]: new}))
        elif parts[0] == "method" and len(parts) == 2 and parts[1] in ("loss", "variant"):
            new = None if parts[1] == "variant" and value in ("", "default") else str(value)
            run = dataclasses.replace(run, method=dataclasses.replace(run.method, **{parts[1]: new}))
        elif parts[0] == "method" and len(parts) == 3 and parts[1] == "options":
            from hsisr_bench.registry import get_method_info

            valid = get_method_info(run.method.name).options
            if parts[2] not in valid:
                raise ConfigError(f"{where}: method '{run.method.name}' has no option '{parts[2]}'. "
                                  f"{did_you_mean(parts[2], valid or ['(none)'])}")
            options = {**run.method.options, parts[2]: value}
            run = dataclasses.replace(run, method=dataclasses.replace(run.method, options=options))
        elif parts[0] == "method" and len(parts) == 3 and parts[1] == "optimizer" and parts[2] in run.method.optimizer:
            new = _coerce(value, run.method.optimizer[parts[2]], where)
            optimizer = {**run.method.optimizer, parts[2]: new}
            run = dataclasses.replace(run, method=dataclasses.replace(run.method, optimizer=optimizer))
        elif parts[0] == "metrics" and len(parts) == 2:
            fields = {f.name for f in dataclasses.fields(_conventions_class())}
            if parts[1] not in fields:
                raise _unknown_key(key, run)
            metrics = {**run.metrics, parts[1]: value}
            try:
                _conventions_class()(**metrics)
            except HsiBenchError as error:
                raise ConfigError(f"{where}: {error}") from None
            run = dataclasses.replace(run, metrics=metrics)
        elif len(parts) == 1 and parts[0] in _TOP_KEYS:
            run = dataclasses.replace(run, **{parts[0]: _coerce(value, getattr(run, parts[0]), where)})
        else:
            raise _unknown_key(key, run)
    check_run(run)
    return run


def _conventions_class():
    from hsisr_bench.metrics import Conventions

    return Conventions


def _unknown_key(key: str, run: RunConfig) -> ConfigError:
    return ConfigError(f"--set {key}: unknown key. {did_you_mean(key, valid_override_keys(run.method))}")


def check_run(run: RunConfig) -> None:
    """Check a run config before any work starts.

    Raises:
        ConfigError: bad scale, device, amp, loss or protocol value.
        MethodError: unknown method, variant or option.
    """
    from hsisr_bench.engine.losses import check_loss

    if not isinstance(run.scale, int) or isinstance(run.scale, bool) or run.scale < 2:
        raise ConfigError(f"scale must be an integer of at least 2, got {run.scale!r} (--scale).")
    if run.device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {run.device!r} (--device).")
    if run.amp not in AMP_MODES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {run.amp!r} (--amp).")
    run.protocol.check()
    from hsisr_bench.registry import get_method_info

    if get_method_info(run.method.name).trainable:
        check_loss(run.method.loss)
    run.effective_options()  # unknown variant/option -> MethodError with a did-you-mean hint


# ------------------------------------------------------------------------------------ run plans


def parse_scales(text: str) -> list[int]:
    """Parse ``--scale 2,3,4``.

    Raises:
        ConfigError: a part that is not an integer, or an integer below 2.
    """
    scales = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            scale = int(part)
        except ValueError:
            raise ConfigError(f"--scale {text!r}: '{part}' is not an integer; use e.g. --scale 2 or --scale 2,3,4.") from None
        if scale < 2:
            raise ConfigError(f"--scale {text!r}: scale {scale} is below 2; super-resolution needs 2, 3, 4, ...")
        scales.append(scale)
    return scales


def parse_methods(text: str) -> list[tuple[str, Optional[str]]]:
    """Parse ``--methods ssrnet,edsr+nolff`` or ``all`` into ``(name, variant)`` pairs.

    Raises:
        MethodError: unknown method or variant (did-you-mean).
    """
    from hsisr_bench.registry import get_method_info, list_methods

    if text.strip() == "all":
        return [(name, None) for name in list_methods()]
    pairs = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, variant = part.partition("+")
        info = get_method_info(name)
        if variant and variant != "default" and variant not in info.variants:
            raise MethodError(f"Unknown variant '{variant}' of method '{name}'. "
                              f"{did_you_mean(variant, list(info.variants) or ['(none)'])}")
        pairs.append((name, variant if variant and variant != "default" else None))
    if not pairs:
        raise ConfigError("--methods is empty; give e.g. --methods ssrnet,edsr or --methods all.")
    return pairs


def _check_dataset(name: str) -> None:
    from hsisr_bench.data.datasets import DATASETS

    if name not in DATASETS:
        raise ConfigError(f"Unknown dataset '{name}' (--dataset). {did_you_mean(name, DATASETS)}")


def plan_runs(
    *,
    methods: Optional[str] = None,
    datasets: Optional[Sequence[str]] = None,
    scales: Optional[Sequence[int]] = None,
    seeds: Optional[Sequence[int]] = None,
    profile: str = "quick",
    experiment: Optional[str] = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    amp: str = "none",
    data_root: Optional[str] = None,
    split_file: Optional[str] = None,
    epochs: Optional[int] = None,
) -> list[RunConfig]:
    """Expand the command line (or an experiment) into one checked :class:`RunConfig` per cell.

    Arguments given explicitly replace the experiment's own datasets, scales or seeds.

    Returns:
        The cells in order dataset, scale, method, variant, loss, seed.

    Raises:
        ConfigError, MethodError: any unknown name (did-you-mean), bad scale or override.
    """
    protocol = load_protocol(profile)
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {epochs}.")
        protocol = dataclasses.replace(protocol, epochs=int(epochs))
    if experiment:
        exp = load_experiment(experiment)
        pairs = [(m, v) for m in exp.methods for v in exp.variants]
        losses = exp.losses
        datasets = list(datasets or exp.datasets)
        scales = list(scales or exp.scales)
        seeds = list(seeds if seeds is not None else exp.seeds)
    else:
        pairs = parse_methods(methods or "")
        losses = ("default",)
        if not datasets:
            raise ConfigError("No dataset: give --dataset (e.g. --dataset synthetic) or --experiment.")
        scales = list(scales or [])
        seeds = list(seeds if seeds is not None else [0])
        if not scales:
            raise ConfigError("No scale: give --scale (e.g. --scale 2 or --scale 2,3,4).")
    for name in datasets:
        _check_dataset(name)
    for scale in scales:
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 2:
            raise ConfigError(f"scale must be an integer of at least 2, got {scale!r} (--scale).")
    runs = []
    for dataset, scale, (name, variant), loss, seed in itertools.product(datasets, scales, pairs, losses, seeds):
        base = default_method_config(name)
        method = dataclasses.replace(base, variant=None if variant in (None, "default") else variant,
                                     loss=base.loss if loss == "default" else loss)
        run = RunConfig(method=method, dataset=DatasetConfig(name=dataset, data_root=data_root, split_file=split_file),
                        protocol=protocol, scale=int(scale), seed=int(seed), device=device, amp=amp,
                        experiment=experiment)
        runs.append(apply_overrides(run, overrides))
    return runs
