"""``--set key=value`` overrides of a run config, applied through one table of handlers, and run checks.

A key is ``<section>.<field>`` (``protocol.epochs``, ``dataset.key``, ``method.loss``, ``metrics.sam_zero``),
``method.options.<option>``, ``method.optimizer.<key>``, or a top-level field (``scale``, ``seed``,
``device``, ``amp``, ``eval_amp``, ``tf32``, ``compile``). ``method.<name>.<...>`` applies only to the
runs of method ``<name>``. :data:`_HANDLERS` maps the part before the last dot (the section) to the
function that sets the field; a key no handler takes is a ``ConfigError`` with a did-you-mean hint.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Optional, Sequence

from hsisr_bench.config.files import tomllib
from hsisr_bench.config.schema import (
    AMP_MODES, DEVICES, TF32_MODES, DatasetConfig, MethodConfig, Protocol, RunConfig, _coerce, _protocol_defaults,
    check_optimizer,
)
from hsisr_bench.errors import ConfigError, HsiBenchError, did_you_mean

_DATASET_KEYS = tuple(f.name for f in dataclasses.fields(DatasetConfig) if f.name != "name")
_TOP_KEYS = ("scale", "seed", "device", "amp", "eval_amp", "tf32", "compile")
_PROTOCOL_FIXED = ("name", "method_overrides")  # set by the profile file, never by --set


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
    keys = [f"protocol.{f.name}" for f in dataclasses.fields(Protocol) if f.name not in _PROTOCOL_FIXED]
    keys += [f"dataset.{k}" for k in _DATASET_KEYS] + list(_TOP_KEYS)
    keys += ["method.variant", "method.loss"]
    keys += [f"metrics.{f.name}" for f in dataclasses.fields(_conventions_class())]
    if method is not None:
        from hsisr_bench.registry import get_method_info

        keys += [f"method.options.{k}" for k in get_method_info(method.name).options]
        keys += [f"method.optimizer.{k}" for k in method.optimizer]
    return keys


class _UnknownKey(Exception):
    """Raised by a handler for a field it does not take; :func:`apply_overrides` turns it into a ConfigError."""


# Each handler: (run, field, value, where) -> the new run. ``where`` is "--set <key>" for messages.
Handler = Callable[[RunConfig, str, Any, str], RunConfig]


def _set_protocol(run: RunConfig, name: str, value: Any, where: str) -> RunConfig:
    if name not in _protocol_defaults() or name in _PROTOCOL_FIXED:
        raise _UnknownKey
    new = _coerce(value, getattr(run.protocol, name), where)
    run = dataclasses.replace(run, protocol=dataclasses.replace(run.protocol, **{name: new}))
    run.protocol.check()
    return run


def _set_dataset(run: RunConfig, name: str, value: Any, where: str) -> RunConfig:
    if name not in _DATASET_KEYS:
        raise _UnknownKey
    new = _coerce(value, getattr(DatasetConfig("x"), name), where)  # the field's default gives its type
    return dataclasses.replace(run, dataset=dataclasses.replace(run.dataset, **{name: new}))


def _set_method_field(run: RunConfig, name: str, value: Any, where: str) -> RunConfig:
    if name not in ("loss", "variant"):
        raise _UnknownKey
    new = None if name == "variant" and value in ("", "default") else str(value)
    return dataclasses.replace(run, method=dataclasses.replace(run.method, **{name: new}))


def _set_method_option(run: RunConfig, name: str, value: Any, where: str) -> RunConfig:
    from hsisr_bench.registry import get_method_info

    valid = get_method_info(run.method.name).options
    if name not in valid:
        raise ConfigError(f"{where}: method '{run.method.name}' has no option '{name}'. "
                          f"{did_you_mean(name, valid or ['(none)'])}")
    options = {**run.method.options, name: value}
    return dataclasses.replace(run, method=dataclasses.replace(run.method, options=options))


def _set_optimizer(run: RunConfig, name: str, value: Any, where: str) -> RunConfig:
    if name not in run.method.optimizer:
        raise _UnknownKey
    optimizer = {**run.method.optimizer, name: _coerce(value, run.method.optimizer[name], where)}
    return dataclasses.replace(run, method=dataclasses.replace(run.method, optimizer=optimizer))


def _set_metric(run: RunConfig, name: str, value: Any, where: str) -> RunConfig:
    if name not in {f.name for f in dataclasses.fields(_conventions_class())}:
        raise _UnknownKey
    metrics = {**run.metrics, name: value}
    try:
        _conventions_class()(**metrics)  # check the combination now, not when scoring
    except HsiBenchError as error:
        raise ConfigError(f"{where}: {error}") from None
    return dataclasses.replace(run, metrics=metrics)


def _set_top(run: RunConfig, name: str, value: Any, where: str) -> RunConfig:
    if name not in _TOP_KEYS:
        raise _UnknownKey
    return dataclasses.replace(run, **{name: _coerce(value, getattr(run, name), where)})


#: The section of a key (everything before its last dot) -> the handler that sets its field.
_HANDLERS: dict[str, Handler] = {
    "protocol": _set_protocol,
    "dataset": _set_dataset,
    "method": _set_method_field,
    "method.options": _set_method_option,
    "method.optimizer": _set_optimizer,
    "metrics": _set_metric,
    "": _set_top,
}


def apply_overrides(run: RunConfig, overrides: Sequence[str]) -> RunConfig:
    """Apply ``--set key=value`` overrides to one run config and return the new (frozen) config.

    Keys: ``protocol.<field>``, ``dataset.<field>``, ``method.loss``, ``method.variant``,
    ``method.options.<option>``, ``method.optimizer.<key>``, ``metrics.<field>``, ``scale``, ``seed``,
    ``device``, ``amp``, ``eval_amp``, ``tf32``, ``compile``. ``method.<name>.<...>`` applies only to the
    runs of method ``<name>`` (any case).

    Raises:
        ConfigError: unknown key (did-you-mean) or a value of the wrong type.
    """
    from hsisr_bench.registry import list_methods

    for text in overrides:
        key, value = parse_override(text)
        parts = key.split(".")
        if parts[0] == "method" and len(parts) >= 3 and parts[1].lower() in list_methods():
            if parts[1].lower() != run.method.name:
                continue  # a per-method override for another method
            parts = ["method"] + parts[2:]
        handler = _HANDLERS.get(".".join(parts[:-1]))
        try:
            if handler is None:
                raise _UnknownKey
            run = handler(run, parts[-1], value, f"--set {key}")
        except _UnknownKey:
            raise _unknown_key(key, run) from None
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
        ConfigError: bad scale, device, amp, tf32, loss or protocol value.
        MethodError: unknown method, variant or option.
    """
    from hsisr_bench.engine.losses import check_loss
    from hsisr_bench.registry import get_method_info

    if not isinstance(run.scale, int) or isinstance(run.scale, bool) or run.scale < 2:
        raise ConfigError(f"scale must be an integer of at least 2, got {run.scale!r} (--scale).")
    if run.device not in DEVICES and not re.fullmatch(r"cuda:\d+", str(run.device)):
        raise ConfigError(f"device must be one of {', '.join(DEVICES)} or cuda:<index>, got {run.device!r} "
                          f"(--device).")
    if run.amp not in AMP_MODES:
        raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {run.amp!r} (--amp).")
    if run.tf32 not in TF32_MODES:
        raise ConfigError(f"tf32 must be one of {', '.join(TF32_MODES)}, got {run.tf32!r} (--tf32).")
    run.protocol.check()
    if get_method_info(run.method.name).trainable:
        check_loss(run.method.loss)
        check_optimizer(run.method.optimizer, f"method '{run.method.name}'")
    run.effective_options()  # unknown variant/option -> MethodError with a did-you-mean hint
