"""Released weights: export a trained run as a small weights file, and load one into a registered method.

A weights file (``hsibench export-weights RUN_DIR --to FILE``) is a ``torch.save`` of::

    {"format": "hsisr-bench-weights/1", "model": state_dict, "band_mean": (L,) tensor,
     "manifest": {method, variant, options, dataset, scale, seed, split, protocol, run_id, ...}}

with, beside it, ``<FILE stem>.json``: the same manifest plus the file's sha256 (a file cannot hold
its own hash), the entry to publish with a result. :func:`load_weights` reads such a file, a run's
``checkpoint.pt``, or a plain ``state_dict`` (given a band mean), always with ``weights_only``
loading (tensors and plain data only: a file cannot run code), and checks that it belongs to the
method and scale it is loaded for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from hsisr_bench import results
from hsisr_bench.errors import DataError, MethodError, ResultsError

PathLike = Union[str, Path]

#: The ``format`` value of a file written by :func:`export_weights`.
WEIGHTS_FORMAT = "hsisr-bench-weights/1"
#: Prefixes that wrappers add to parameter names (DataParallel/DDP, ``torch.compile``).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: Manifest fields copied from a run's resolved config (config.json).
_MANIFEST_KEYS = ("method", "variant", "label", "title", "options", "dataset", "synthetic", "scale", "seed", "split",
                  "split_file", "protocol", "profile", "run_id", "output_crop", "version")


@dataclass
class WeightsFile:
    """A weights file as read by :func:`read_weights`.

    Attributes:
        path: the file.
        sha256: sha256 of its bytes.
        kind: ``weights`` (written by :func:`export_weights`), ``checkpoint`` (a run's checkpoint.pt)
            or ``state_dict`` (parameter names to tensors, nothing else).
        state_dict: parameter name -> tensor (wrapper prefixes removed).
        band_mean: ``(L,)`` float32 band mean the harness subtracts, or ``None`` (plain state_dict).
        manifest: what the file records about its run (method, scale, options, dataset, split, ...);
            empty for a plain state_dict.
    """

    path: Path
    sha256: str
    kind: str
    state_dict: dict
    band_mean: Optional[np.ndarray]
    manifest: dict = field(default_factory=dict)
    #: Test scenes that were training scenes of the weights (set by ``hsibench evaluate``; scored only
    #: with ``--allow-train-overlap``).
    train_overlap: list = field(default_factory=list)


def _torch_load(path: Path) -> Any:
    import torch

    if not path.is_file():
        raise DataError(f"--weights {path} does not exist; give a checkpoint.pt, a file from "
                        f"'hsibench export-weights' or a state_dict saved with torch.save.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types; weights_only refuses pickled code objects
        raise DataError(f"Cannot read the weights file {path} ({type(error).__name__}: {error}). It must be a "
                        f"torch.save file of tensors and plain data (weights_only loading).") from None


def _clean_state_dict(state: Mapping[str, Any], path: Path) -> dict:
    import torch

    clean = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise DataError(f"{path}: entry '{key}' of the state_dict is a {type(value).__name__}, not a tensor; "
                            f"save model.state_dict() (or a dict with 'model' and 'band_mean').")
        name = str(key)
        for prefix in _WRAPPER_PREFIXES:
            name = name[len(prefix):] if name.startswith(prefix) else name
        clean[name] = value
    return clean


def read_weights(path: PathLike) -> WeightsFile:
    """Read a weights file without building a model: its state_dict, band mean, manifest and sha256.

    Raises:
        DataError: the file is missing, unreadable, or holds something other than weights.
    """
    path = Path(path)
    state = _torch_load(path)
    sha = file_sha256(path)
    if not isinstance(state, Mapping):
        raise DataError(f"{path} holds a {type(state).__name__}, not a dict of weights.")
    if "model" in state and isinstance(state["model"], Mapping):
        kind = "weights" if state.get("format") == WEIGHTS_FORMAT else "checkpoint"
        manifest = dict(state.get("manifest") or {}) if kind == "weights" else \
            {k: v for k, v in dict(state.get("config") or {}).items() if k in _MANIFEST_KEYS}
        mean = _read_mean(state.get("band_mean"), path)
        return WeightsFile(path, sha, kind, _clean_state_dict(state["model"], path), mean,
                           _check_manifest(manifest, path))
    inner = state.get("state_dict")  # Lightning-style wrapper
    return WeightsFile(path, sha, "state_dict",
                       _clean_state_dict(inner if isinstance(inner, Mapping) else state, path), None, {})


def _read_mean(value: Any, path: Path) -> Optional[np.ndarray]:
    """The recorded band mean as ``(L,)`` float32, or ``None``; anything but finite real numbers is refused
    here, naming the file, so a crafted mean is never blamed on the model's output later."""
    import torch

    if value is None:
        return None
    ok = isinstance(value, torch.Tensor) and not value.is_complex() and value.dtype != torch.bool
    if not ok and isinstance(value, (list, tuple)):
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    mean = np.asarray(torch.as_tensor(value).reshape(-1).float(), dtype=np.float32) if ok else None
    if mean is None or mean.size == 0 or not np.isfinite(mean).all():
        shown = f"{type(value).__name__} {value!r}"[:80] if mean is None else f"{mean.size} values, " \
            f"{int(mean.size - np.isfinite(mean).sum())} NaN or infinite"
        raise DataError(f"{path}: 'band_mean' must be one finite number per band; it holds {shown}. The file is "
                        f"damaged or was not written by 'hsibench export-weights': export the run again.")
    return mean


def _check_manifest(manifest: dict, path: Path) -> dict:
    """Check the types of the manifest fields :func:`load_weights` compares, so a crafted file is an error
    that names it (``scale="two"``), not a traceback."""
    def bad(key: str, expected: str) -> DataError:
        return DataError(f"{path}: manifest field '{key}' is {manifest[key]!r}; expected {expected}. The file is "
                         f"damaged or was not written by 'hsibench export-weights': export the run again.")

    scale = manifest.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, int) or scale < 1):
        raise bad("scale", "a whole number such as 2")
    for key in ("method", "variant", "dataset"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            raise bad(key, "a name (text)")
    for key in ("options", "split"):
        if manifest.get(key) is not None and not isinstance(manifest[key], Mapping):
            raise bad(key, "an object of names to values")
    split = manifest.get("split") or {}
    for key in ("train", "val", "test"):
        names = split.get(key)
        if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
            raise DataError(f"{path}: manifest field 'split.{key}' must be a list of scene names, got {names!r}. "
                            f"Export the run again.")
    return manifest


def training_overlap(weights: WeightsFile, dataset: str, test_scenes) -> list[str]:
    """The test scenes that were training (or validation) scenes of the weights, by the split the file
    records; empty when it records none or was trained on another dataset."""
    recorded = weights.manifest
    if str(recorded.get("dataset") or "").lower() != str(dataset).lower():
        return []
    split = recorded.get("split") or {}
    seen = set(split.get("train") or ()) | set(split.get("val") or ())
    return [name for name in test_scenes if name in seen]


def file_sha256(path: PathLike) -> str:
    """sha256 of a file's bytes (what ``sha256sum`` prints)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_band_mean(path: PathLike) -> np.ndarray:
    """Read a band mean ``(L,)`` from ``.npy``, ``.json`` (a list) or text (one value per line or comma).

    Raises:
        DataError: missing or unreadable file, or not a 1-D list of finite numbers.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            values = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".json":
            values = np.asarray(json.loads(path.read_text(encoding="utf-8")), dtype=float)
        else:
            values = np.asarray([float(v) for v in path.read_text(encoding="utf-8").replace(",", " ").split()])
    except (OSError, ValueError, TypeError) as error:
        raise DataError(f"Cannot read the band mean {path}: {error}. Give one value per band (.npy, .json list "
                        f"or text).") from None
    values = np.asarray(values, dtype=np.float32).reshape(-1) if np.ndim(values) <= 2 and np.size(values) else None
    if values is None or not np.isfinite(values).all():
        raise DataError(f"{path} does not hold a list of finite numbers (one per band).")
    return values


def _option_differences(recorded: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """``key: file X, run Y`` for the options both know and set differently (compared as JSON: a tuple
    saved in a checkpoint equals the list read back from config.json)."""
    def plain(value: Any) -> Any:
        return json.loads(json.dumps(value, default=str))

    return [f"{k}: file {recorded[k]!r}, run {given[k]!r}" for k in sorted(set(recorded) & set(given))
            if plain(recorded[k]) != plain(given[k])]


def load_weights(path: PathLike, *, method: str, scale: int, bands: int, options: Optional[Mapping[str, Any]] = None,
                 variant: Optional[str] = None, band_mean: Union[None, PathLike, np.ndarray] = None):
    """Build ``method`` and load a weights file into it, checking that the file belongs to it.

    Args:
        path: our ``checkpoint.pt``, a file from :func:`export_weights`, or a plain ``state_dict``
            (optionally wrapped as ``{"state_dict": ...}``; ``module.``/``_orig_mod.`` prefixes removed).
        method: the registered method the weights are for.
        scale: the scale they are evaluated at.
        bands: the dataset's band count.
        options: the factory options (a run's ``effective_options()``); ``None`` uses those the file
            records (or the method's defaults for a plain state_dict).
        variant: the run's variant, checked against the file's when both are known.
        band_mean: ``(L,)`` values or a file (:func:`read_band_mean`); required for a plain state_dict,
            and when given for another file it replaces the recorded one.

    Returns:
        ``(model, weights)``: the ``nn.Module`` in eval mode with the weights loaded, and the
        :class:`WeightsFile` (``weights.band_mean`` is the mean to pass to inference, ``weights.sha256``
        the value to record in metrics.json).

    Raises:
        MethodError: the file records another method, scale, variant or options (naming both), the
            method has no weights (not trainable), or the parameters do not fit the model.
        DataError: unreadable file or band mean, a band mean of the wrong length, no band mean for a
            plain state_dict.
    """
    from hsisr_bench.registry import create_method, get_method_info

    info = get_method_info(method)
    weights = read_weights(path)
    if not info.trainable:
        raise MethodError(f"Method '{method}' has no parameters; it needs no --weights (got {weights.path}).")
    recorded = weights.manifest
    here = f"{method}{'+' + variant if variant else ''} at x{scale}"
    if recorded.get("method") is not None and recorded["method"] != method:
        raise MethodError(f"{weights.path} holds weights of method '{recorded['method']}' (x{recorded.get('scale')}), "
                          f"not '{method}': evaluate it with --method {recorded['method']}.")
    if recorded.get("scale") is not None and int(recorded["scale"]) != int(scale):
        raise MethodError(f"{weights.path} holds {method} weights trained at x{recorded['scale']}, not x{scale}: "
                          f"evaluate it with --scale {recorded['scale']}, or use weights trained at x{scale}.")
    if variant is not None and "variant" in recorded and (recorded["variant"] or None) != (variant or None):
        raise MethodError(f"{weights.path} holds weights of {method}+{recorded['variant'] or 'default'}, "
                          f"not {method}+{variant}.")
    file_options = dict(recorded.get("options") or {})
    if options is not None:
        differences = _option_differences(file_options, options)
        if differences:
            raise MethodError(f"{weights.path} was trained with other options than {here}: "
                              + "; ".join(differences) + ". Use the file's variant or --set method.options.")
    mean = weights.band_mean
    if band_mean is not None:
        mean = read_band_mean(band_mean) if isinstance(band_mean, (str, Path)) else \
            np.asarray(band_mean, dtype=np.float32).reshape(-1)
    if mean is None:
        raise DataError(f"{weights.path} is a plain state_dict without the band mean the harness subtracts before "
                        f"the network (PROTOCOL.md section 4); give it ({bands} values, e.g. a .npy file).")
    if not np.isfinite(mean).all():
        raise DataError(f"The band mean for {weights.path} holds NaN or infinite values; give finite ones.")
    if mean.shape != (bands,):  # checked first: clearer than the parameter shapes it implies
        raise DataError(f"The band mean for {weights.path} has {mean.size} values; the dataset has {bands} bands. "
                        f"Weights are trained for one band count: use a dataset with {mean.size} bands.")
    model = create_method(method, bands=bands, scale=scale, **dict(file_options if options is None else options))
    _load_into(model, weights, here)
    weights.band_mean = mean
    return model.eval(), weights


def _load_into(model, weights: WeightsFile, here: str) -> None:
    """``load_state_dict`` with an error that says which parameters are missing, extra or misshapen."""
    expected = model.state_dict()
    given = weights.state_dict
    missing = [k for k in expected if k not in given]
    extra = [k for k in given if k not in expected]
    shapes = [f"{k} file {tuple(given[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
              if k in given and tuple(given[k].shape) != tuple(v.shape)]
    # load_state_dict casts silently: a complex or integer tensor would lose its imaginary part or mean
    # something else. Floating parameters take any real floating dtype (a float16 release); the rest
    # (counters such as num_batches_tracked) keep their own.
    dtypes = [f"{k} file {given[k].dtype} vs model {v.dtype}" for k, v in expected.items() if k in given
              and not (given[k].dtype == v.dtype or (v.is_floating_point() and given[k].is_floating_point()))]
    if dtypes:
        raise MethodError(f"{weights.path} does not fit {here}: tensors of another type ({len(dtypes)}): "
                          f"{', '.join(dtypes[:4])}{', ...' if len(dtypes) > 4 else ''}. Save the model's own "
                          f"state_dict (floating-point parameters).")
    if missing or extra or shapes:
        parts = [f"{label} ({len(keys)}): {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", extra), ("other shapes", shapes)) if keys]
        raise MethodError(f"{weights.path} does not fit {here}: " + "; ".join(parts)
                          + ". Were they trained for another method, scale, band count or options?")
    model.load_state_dict(given, strict=True)


# -------------------------------------------------------------------------------------------- export


def export_weights(run_dir: PathLike, to: PathLike, *, force: bool = False) -> dict:
    """Write a trained run's weights, band mean and manifest to ``to``, and the manifest entry beside it.

    Args:
        run_dir: a run folder (``<out>/<dataset>/x<scale>/<label>/seed<k>``) whose training is complete.
        to: the weights file to write (e.g. ``ssrnet_cave_x2.pt``); the entry goes to ``<stem>.json``.
        force: replace existing files.

    Returns:
        The manifest entry (also written to ``<stem>.json``), with ``file`` and ``sha256``.

    Raises:
        ResultsError: not a run folder, no checkpoint, training not complete, a checkpoint of
            another run, or ``to`` exists (without ``force``).
    """
    import torch

    from hsisr_bench.engine.checkpoint import load_checkpoint

    run_dir, to = Path(run_dir), Path(to)
    config_path, checkpoint_path = run_dir / results.CONFIG_FILE, run_dir / results.CHECKPOINT_FILE
    if not config_path.is_file():
        raise ResultsError(f"{run_dir} is not a run folder (no {results.CONFIG_FILE}); give a folder such as "
                           f"results/cave/x2/ssrnet/seed0.")
    config = results.read_json(config_path)
    if not checkpoint_path.is_file():
        raise ResultsError(f"{run_dir} has no {results.CHECKPOINT_FILE}: method '{config.get('method')}' was not "
                           f"trained there (methods without parameters have no weights).")
    state = load_checkpoint(checkpoint_path)
    epochs = int((config.get("protocol") or {}).get("epochs", 0))
    if int(state.get("epoch", 0)) < epochs:
        raise ResultsError(f"{run_dir}: training is not complete (epoch {state.get('epoch')} of {epochs}); finish "
                           f"it with the same 'hsibench run' command first.")
    if (state.get("config") or {}).get("run_id") != config.get("run_id"):
        raise ResultsError(f"{checkpoint_path} belongs to run {(state.get('config') or {}).get('run_id')}, "
                           f"but {config_path} to {config.get('run_id')}; rerun that cell with --force.")
    sidecar = to.with_suffix(".json")
    if to.suffix.lower() == ".json":
        raise ResultsError(f"--to {to}: give the weights file a .pt name; the manifest entry goes beside it as .json.")
    for path in (to, sidecar):
        if path.exists() and not force:
            raise ResultsError(f"{path} exists; give another --to, or --force to replace it.")
    manifest = {k: config.get(k) for k in _MANIFEST_KEYS}
    manifest["bands"] = int(state["band_mean"].numel())
    manifest["epochs"] = int(state["epoch"])
    metrics_path = run_dir / results.METRICS_FILE
    if metrics_path.is_file():
        record = results.read_json(metrics_path)
        if record.get("finished"):
            manifest["metrics"] = {"mean": record.get("mean"), "conventions": record.get("conventions"),
                                   "n_test_scenes": record.get("n_test_scenes"), "params": record.get("params")}
    payload = {"format": WEIGHTS_FORMAT, "model": state["model"],
               "band_mean": state["band_mean"].detach().reshape(-1).float().cpu(), "manifest": manifest}
    results.ensure_writable(to.parent)
    results.atomic_write(to, lambda handle: torch.save(payload, handle))
    entry = {**manifest, "file": to.name, "sha256": file_sha256(to), "bytes": to.stat().st_size}
    results.write_json(sidecar, entry)
    return entry
