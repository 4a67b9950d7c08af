"""Planning: ``--scale`` and ``--methods`` parsing, and expanding a command line or experiment into cells.

Names are accepted in any case (``--methods SSRNet``, ``--dataset CAVE``, as papers and the README write
them) and stored as registered (lower case); a near miss gets a did-you-mean hint.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Optional, Sequence

from hsisr_bench.config.files import default_method_config, load_experiment, load_protocol
from hsisr_bench.config.overrides import apply_overrides
from hsisr_bench.config.schema import DatasetConfig, RunConfig
from hsisr_bench.errors import ConfigError, MethodError, did_you_mean


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

    if text.strip().lower() == "all":
        return [(name, None) for name in list_methods()]
    pairs = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, _, variant = part.partition("+")
        # Registered names are lower case; the README and papers write SSRNet, EDSR, 3D-FCNN.
        name, variant = _method_name(name.strip()), variant.strip()
        info = get_method_info(name)
        if variant.lower() in info.variants and variant not in info.variants:
            variant = variant.lower()
        if variant and variant != "default" and variant not in info.variants:
            raise MethodError(f"Unknown variant '{variant}' of method '{name}'. "
                              f"{did_you_mean(variant, list(info.variants) or ['(none)'])}")
        pairs.append((name, variant if variant and variant != "default" else None))
    if not pairs:
        raise ConfigError("--methods is empty; give e.g. --methods ssrnet,edsr or --methods all.")
    return pairs


def _method_name(name: str) -> str:
    """A method name as registered (lower case), with a did-you-mean hint that ignores case."""
    from hsisr_bench.registry import list_methods

    lowered = name.lower()
    if lowered in list_methods():
        return lowered
    if name in list_methods():  # a plugin may register a mixed-case name
        return name
    raise MethodError(f"Unknown method '{name}' (--methods). {did_you_mean(lowered, list_methods())}")


def _check_dataset(name: str) -> str:
    """Return the dataset's registered name (any case accepted), or raise ConfigError with a hint."""
    from hsisr_bench.data.datasets import DATASETS

    lowered = str(name).lower()
    if lowered not in DATASETS:
        raise ConfigError(f"Unknown dataset '{name}' (--dataset). {did_you_mean(lowered, DATASETS)}")
    return lowered


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
        pairs = [(_method_name(m), v) for m in exp.methods for v in exp.variants]
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
    datasets = [_check_dataset(name) for name in datasets]
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
