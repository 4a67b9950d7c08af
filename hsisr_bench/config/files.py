"""Reading the TOML configs under ``hsisr_bench.CONFIG_DIR``: protocols, method defaults, experiments."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from hsisr_bench import CONFIG_DIR
from hsisr_bench.config.schema import Experiment, MethodConfig, Protocol, _coerce, _protocol_defaults
from hsisr_bench.errors import ConfigError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


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
