"""Methods run elsewhere: export the exact test set, score outside predictions, load released weights.

Three entry points (the ``hsibench`` commands in ``hsisr_bench/commands/external.py`` wrap them):

- :func:`export_testset` writes, per test scene, what the harness feeds a method: the HR region
  (after the dataset's normalisation, top-left ``test_region`` square, modcrop) and its LR cube, as
  MATLAB ``.mat`` (``HR``, ``LR``, H×W×L, as the SSRNet authors' test files are laid out) and
  ``.npy`` ``(L, H, W)``, with a ``manifest.json`` (protocol, conventions, split, sha256 of every array).
- :func:`score_predictions` reads SR cubes produced by any program, checks them against the same
  test set (names, shapes, axis order, NaN, value range) *before writing anything*, scores them with
  the run's metric conventions and stores a normal run folder (``method`` = the given name,
  ``external: true``), so ``hsibench report`` and ``hsibench figures`` show it beside trained methods.
- :func:`load_weights` builds a registered method and loads a weights file into it (our
  ``checkpoint.pt``, a file written by :func:`export_weights`, or a plain ``state_dict`` plus a band
  mean), checking that the file belongs to that method and scale.

The test set is always recomputed from the dataset with the harness's own functions
(``open_cell_data``, ``eval_image``), never read back from an export: the dataset is the reference.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from hsisr_bench import results
from hsisr_bench.config import RunConfig, plan_runs
from hsisr_bench.errors import ConfigError, DataError, ResultsError
# Released weights live in their own module; re-exported here, the one entry point for outside results.
from hsisr_bench.weights import WeightsFile, export_weights, file_sha256, load_weights, read_weights  # noqa: F401

PathLike = Union[str, Path]

#: File name of the export's manifest.
MANIFEST_FILE = "manifest.json"
#: Suffixes :func:`score_predictions` reads (case-insensitive).
PREDICTION_SUFFIXES = (".mat", ".npy", ".h5", ".hdf5")
#: Predictions may leave [0, 1] by this much; the harness clips them, as it clips every method's output.
#: Further out, the data is on another scale (0-255, 0-65535) and clipping would hide it.
RANGE_SLACK = 0.5
#: Names a run folder can take (a folder name on every platform; ``+`` is the variant separator).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class TestSet:
    """The scored regions of one cell, as ``hsibench run`` computes them.

    Attributes:
        run: the run config the regions come from (profile, split, conventions).
        data: the opened dataset and its split (``hsisr_bench.engine.evaluate.CellData``).
        images: one ``EvalImage`` per test scene (``.hr`` ``(L, H, W)``, ``.lr`` ``(L, H/s, W/s)``).
    """

    __test__ = False  # not a pytest test class, despite its name

    run: RunConfig
    data: Any
    images: list = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """The test scene names, in split order."""
        return [image.name for image in self.images]


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array as float32, C order, little-endian: what the manifest records.

    The same value comes from ``hashlib.sha256(np.load(f).tobytes())`` on the exported ``.npy``
    files, and in MATLAB from the bytes of ``permute(HR, [3 1 2])`` read in row-major order.
    """
    data = np.ascontiguousarray(array, dtype="<f4")
    return hashlib.sha256(data.tobytes()).hexdigest()


def open_testset(dataset: str, scale: int, *, profile: str = "quick", data_root: Optional[PathLike] = None,
                 split_file: Optional[PathLike] = None, overrides: Sequence[str] = ()) -> TestSet:
    """Compute the test regions of one cell exactly as ``hsibench run`` does.

    Args:
        dataset: dataset name (``cave``, ``synthetic``, ...).
        scale: integer scale >= 2.
        profile: the protocol profile (its ``test_region`` and ``split_seed`` matter here).
        data_root: the data root (``--data-root``; ``None``: ``$HSIBENCH_DATA``, else ``./data``).
        split_file: a split JSON file (``--split-file``), else the dataset's canonical split.
        overrides: ``--set KEY=VALUE`` overrides (``dataset.n_scenes=4``, ``metrics.sam_zero=exclude``).

    Raises:
        ConfigError, DataError: bad names or options, missing data (see ``hsibench run``).
    """
    from hsisr_bench.engine.evaluate import eval_image, open_cell_data

    run = plan_runs(methods="bicubic", datasets=[dataset], scales=[int(scale)], profile=profile,
                    overrides=tuple(overrides), data_root=None if data_root is None else str(data_root),
                    split_file=None if split_file is None else str(split_file))[0]
    data = open_cell_data(run)
    images = [eval_image(data.dataset.load(name).cube, name, run.protocol.test_region, run.scale)
              for name in data.test]
    return TestSet(run, data, images)


def _describe(testset: TestSet) -> dict:
    """The protocol part of a manifest or of a scored run's config: where the arrays come from."""
    run, data = testset.run, testset.data
    spec = data.dataset.spec
    return {
        "dataset": run.dataset.name, "dataset_title": spec.title, "scale": run.scale,
        "profile": run.protocol.name, "test_region": run.protocol.test_region,
        "normalisation": spec.normalisation,
        "region": (f"top-left {run.protocol.test_region}x{run.protocol.test_region} of each test scene after "
                   f"the normalisation, cropped to a multiple of {run.scale} (modcrop)"),
        "degradation": (f"LR = MATLAB imresize(HR, 1/{run.scale}) (bicubic with antialiasing), computed in "
                        f"float64, stored as float32"),
        "conventions": run.conventions().to_dict(),
        "split": {"train": list(data.train), "val": list(data.val), "test": list(data.test),
                  "seed": data.split.seed, "note": data.split.note, "split_file": run.dataset.split_file},
        "toolkit_version": results.version(),
    }


# ------------------------------------------------------------------------------------------- export


def export_testset(testset: TestSet, to: PathLike, *, force: bool = False, overrides: Sequence[str] = ()) -> dict:
    """Write every test scene's HR region and LR cube as ``.mat`` and ``.npy``, then ``manifest.json``.

    Files per scene ``<name>``: ``<name>.mat`` (``HR`` H×W×L, ``LR`` h×w×L, single precision),
    ``<name>_HR.npy`` and ``<name>_LR.npy`` (``(L, H, W)`` float32). The manifest is written last.

    Args:
        testset: from :func:`open_testset`.
        to: the output folder; created if missing.
        force: write into a folder that already holds files.
        overrides: the ``--set`` overrides the test set was opened with (recorded, and repeated in the
            manifest's ``score_with`` command).

    Returns:
        The manifest.

    Raises:
        ResultsError: ``to`` holds files (without ``force``) or cannot be written.
    """
    import scipy.io

    folder = Path(to)
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"--to {folder} is a file; give a folder for the test set.")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ResultsError(f"--to {folder} is not empty; give an empty or new folder, or --force to overwrite.")
    results.ensure_writable(folder)
    scenes = []
    for image in testset.images:
        hr, lr = np.asarray(image.hr, dtype=np.float32), np.asarray(image.lr, dtype=np.float32)
        # (L, H, W) -> (H, W, L): the band-last layout of MATLAB cubes and of the authors' test files.
        cubes = {"HR": np.ascontiguousarray(hr.transpose(1, 2, 0)), "LR": np.ascontiguousarray(lr.transpose(1, 2, 0))}
        results.atomic_write(folder / f"{image.name}.mat", lambda h, c=cubes: scipy.io.savemat(h, c, format="5"))
        results.write_npy(folder / f"{image.name}_HR.npy", hr)
        results.write_npy(folder / f"{image.name}_LR.npy", lr)
        scenes.append({"name": image.name, "hr_shape": list(hr.shape), "lr_shape": list(lr.shape),
                       "files": {"mat": f"{image.name}.mat", "hr_npy": f"{image.name}_HR.npy",
                                 "lr_npy": f"{image.name}_LR.npy"},
                       "sha256": {"HR": array_sha256(hr), "LR": array_sha256(lr)}})
    wavelengths = testset.data.wavelengths
    manifest = {
        "format": "hsisr-bench-testset/1",
        **_describe(testset),
        "layout": {"mat": "HR, LR: height x width x bands, single, values in [0, 1]",
                   "npy": "(bands, height, width) float32, values in [0, 1]",
                   "sha256": "of each array as float32, C order (bands, height, width), little-endian"},
        "wavelengths": None if wavelengths is None else [float(w) for w in wavelengths],
        "scenes": scenes,
        "overrides": list(overrides),
        "score_with": _score_command(testset, overrides),
    }
    results.write_json(folder / MANIFEST_FILE, manifest)
    return manifest


def _score_command(testset: TestSet, overrides: Sequence[str]) -> str:
    """The ``hsibench score`` command line that scores predictions against this test set."""
    import shlex

    run = testset.run
    words = ["hsibench", "score", "--pred", "PRED_DIR", "--dataset", run.dataset.name, "--scale", str(run.scale),
             "--profile", run.protocol.name]
    for option, value in (("--data-root", run.dataset.data_root), ("--split-file", run.dataset.split_file)):
        words += [option, str(value)] if value else []
    for text in overrides:
        words += ["--set", text]
    return " ".join(shlex.quote(w) for w in words) + " --name NAME"


# -------------------------------------------------------------------------------------- predictions


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == b"\x89HDF\r\n\x1a\n" or (handle.seek(512) == 512 and
                                                         handle.read(8) == b"\x89HDF\r\n\x1a\n")


def _pick(path: Path, arrays: Mapping[str, Any], preferred: str = "SR") -> tuple[str, Any]:
    """The variable holding the SR cube: ``SR`` if present, else the only 3-D numeric one."""
    if preferred in arrays:
        return preferred, arrays[preferred]
    cubes = {k: v for k, v in arrays.items() if len(getattr(v, "shape", ())) == 3}
    if len(cubes) == 1:
        return next(iter(cubes.items()))
    found = ", ".join(f"{k} {tuple(getattr(v, 'shape', ()))}" for k, v in arrays.items()) or "none"
    raise DataError(f"{path}: cannot tell which variable holds the SR cube: expected a variable named "
                    f"'{preferred}' or exactly one 3-D array, found: {found}. Rename the cube to '{preferred}'.")


def _check_declared(shape: Sequence[int], target_shape: Optional[Sequence[int]], layout: str, where: str) -> None:
    """Check a cube's declared shape (from the file's header) before its data is read.

    A tiny crafted file can declare a huge array (HDF5 fills unwritten chunks): reading it first took
    785 MB for a 1.4 KB file. A zero-stride stand-in runs :func:`to_lhw`'s own checks at no memory cost.
    """
    if target_shape is not None:
        to_lhw(np.broadcast_to(np.float32(0), tuple(int(v) for v in shape)), target_shape, layout, where)


def read_prediction(path: PathLike, target_shape: Optional[Sequence[int]] = None, layout: str = "auto") -> np.ndarray:
    """Read one SR cube from ``.npy``, ``.mat`` (v5 or v7.3) or ``.h5``, in the file's own axis order.

    A ``.mat`` array comes back in MATLAB order (a v7.3 file, read through HDF5, is transposed back);
    an ``.h5`` dataset as stored. The variable is ``SR`` if present, else the only 3-D one. With
    ``target_shape`` (the HR region's ``(L, H, W)``), the declared shape is checked before any data is read.

    Raises:
        DataError: unreadable file, no or several candidate cubes, a declared shape that does not fit.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            _check_declared(np.load(path, mmap_mode="r", allow_pickle=False).shape, target_shape, layout, str(path))
            return np.load(path, allow_pickle=False)
        if suffix == ".mat" and not _is_hdf5(path):
            import scipy.io

            declared = {name: shape for name, shape, _ in scipy.io.whosmat(str(path))}
            if target_shape is not None:
                name = _pick(path, {k: np.broadcast_to(np.float32(0), v) for k, v in declared.items()})[0]
                _check_declared(declared[name], target_shape, layout, str(path))
                return np.asarray(scipy.io.loadmat(str(path), variable_names=[name])[name])
            arrays = {k: v for k, v in scipy.io.loadmat(str(path)).items() if not k.startswith("__")}
            return np.asarray(_pick(path, arrays)[1])
        import h5py

        with h5py.File(path, "r") as handle:
            arrays = {}

            def collect(name: str, item) -> None:  # returns None: a value would stop visititems
                if isinstance(item, h5py.Dataset):
                    arrays[name] = item

            handle.visititems(collect)
            name, item = _pick(path, arrays)
            _check_declared(item.shape[::-1] if suffix == ".mat" else item.shape, target_shape, layout, str(path))
            array = item[()]
        # MATLAB v7.3 stores column-major: h5py sees an H x W x L variable as L x W x H.
        return array.T if suffix == ".mat" else array
    except DataError:
        raise
    except Exception as error:  # numpy, scipy and h5py raise many types for a damaged file
        raise DataError(f"Cannot read the prediction {path}: {type(error).__name__}: {error}. Write it as "
                        f".npy, .mat (variable SR) or .h5 (dataset SR).") from None


def to_lhw(array: np.ndarray, target_shape: Sequence[int], layout: str, where: str) -> np.ndarray:
    """Return a prediction as ``(L, H, W)``, detecting (``auto``) or checking its axis order.

    Args:
        array: the cube as read.
        target_shape: the HR region's ``(L, H, W)``.
        layout: ``auto``, ``lhw`` (bands first) or ``hwl`` (bands last, MATLAB).
        where: the file, for messages.

    Raises:
        DataError: not 3-D, no layout gives the target shape, the given layout does not, or
            ``auto`` cannot decide (H == W == L).
    """
    L, H, W = (int(v) for v in target_shape)
    shape = tuple(int(v) for v in array.shape)
    fits = {"lhw": shape == (L, H, W), "hwl": shape == (H, W, L)}
    expected = f"{L}x{H}x{W} (bands, height, width; --layout lhw) or {H}x{W}x{L} (height, width, bands; --layout hwl)"
    if array.ndim != 3 or not any(fits.values()):
        raise DataError(f"{where} has shape {'x'.join(map(str, shape))}; the test region is {expected}. "
                        f"Predict the whole HR region of the exported test set (same --profile and --split-file).")
    if layout == "auto":
        if all(fits.values()):
            raise DataError(f"{where} is {L}x{H}x{W} with as many bands as pixels per side: the axis order "
                            f"cannot be detected. Give --layout lhw (bands first) or --layout hwl (bands last).")
        layout = "lhw" if fits["lhw"] else "hwl"
    elif layout not in fits:
        raise ConfigError(f"--layout must be auto, lhw or hwl, got '{layout}'.")
    elif not fits[layout]:
        other = "hwl" if layout == "lhw" else "lhw"
        raise DataError(f"{where} has shape {'x'.join(map(str, shape))}, which is not --layout {layout} "
                        f"({expected.split(' or ')[0 if layout == 'lhw' else 1]}); it looks like --layout {other}. "
                        f"Use --layout {other} or --layout auto.")
    # (H, W, L) -> (L, H, W)
    return np.ascontiguousarray(array if layout == "lhw" else array.transpose(2, 0, 1), dtype=np.float32)


def find_predictions(pred_dir: PathLike, names: Sequence[str]) -> dict[str, Path]:
    """Map every test scene to its prediction file in ``pred_dir`` (``<scene>.<mat|npy|h5|hdf5>``).

    Raises:
        DataError: the folder is missing; scenes missing, extra files, or two files for one scene
            (each listed, with the expected names).
    """
    folder = Path(pred_dir)
    if not folder.is_dir():
        raise DataError(f"--pred {folder} is not a folder; give the folder holding one SR cube per test scene.")
    files: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in PREDICTION_SUFFIXES:
            files.setdefault(path.stem, []).append(path)
    problems = []
    missing = [n for n in names if n not in files]
    extra = sorted(set(files) - set(names))
    doubled = [f"{n} ({', '.join(p.name for p in files[n])})" for n in names if len(files.get(n, ())) > 1]
    if missing:
        problems.append(f"missing {len(missing)} of {len(names)} test scenes: {', '.join(missing)}")
    if extra:
        problems.append(f"files for scenes not in the test set: {', '.join(extra)}")
    if doubled:
        problems.append(f"several files for one scene: {'; '.join(doubled)}")
    if problems:
        raise DataError(f"Predictions in {folder} do not match the test set: " + "; ".join(problems)
                        + f". Expected one file per test scene named <scene>{'|'.join(PREDICTION_SUFFIXES)}: "
                        + ", ".join(names) + ".")
    return {name: files[name][0] for name in names}


def check_dtype(array: Any, where: str) -> np.ndarray:
    """Accept only real floating-point or integer cubes, as the dataset readers do.

    A complex cube would be scored on its real part (or as PSNR = inf), a bool or datetime one as
    numbers it does not hold; strings, records and objects are not numbers at all.

    Raises:
        DataError: naming the file, its dtype and what is expected.
    """
    dtype = getattr(array, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.kind not in "fiu" or dtype.fields is not None:
        described = "complex" if dtype is not None and dtype.kind == "c" else str(dtype)
        raise DataError(f"{where} holds {described} data (dtype {dtype}); a prediction must be a real "
                        f"floating-point or integer cube with values in [0, 1]. Save the SR cube as float32.")
    return array


def check_values(sr: np.ndarray, where: str) -> np.ndarray:
    """Reject NaN/Inf and values far outside [0, 1]; clip small excursions as the harness clips.

    Raises:
        DataError: non-finite values, or values beyond ``[-RANGE_SLACK, 1 + RANGE_SLACK]`` (says
            whether the data looks 8-bit or 16-bit).
    """
    finite = np.isfinite(sr)
    if not finite.all():
        raise DataError(f"{where} has {int(sr.size - finite.sum())} NaN or infinite values of {sr.size}; "
                        f"the harness scores finite cubes only.")
    low, high = float(sr.min()), float(sr.max())
    if low < -RANGE_SLACK or high > 1.0 + RANGE_SLACK:
        hint = ""
        if high > 1.0 + RANGE_SLACK:
            hint = (" The values look like 16-bit data (0-65535): divide by 65535." if high > 2 * 255
                    else " The values look like 8-bit data (0-255): divide by 255." if high > 2 else "")
        raise DataError(f"{where} has values in [{low:.4g}, {high:.4g}]; the test set is in [0, 1] after the "
                        f"dataset's normalisation (see the export's manifest.json), and predictions may leave "
                        f"it by at most {RANGE_SLACK} (then they are clipped).{hint}")
    return np.clip(sr, 0.0, 1.0)


def check_name(name: str) -> str:
    """Check that ``name`` can label an outside method's run folder; return it.

    Raises:
        ConfigError: not a plain folder name, or the name of a registered method.
    """
    from hsisr_bench.registry import list_methods

    if not _NAME.match(name or ""):
        raise ConfigError(f"--name '{name}' must start with a letter or digit and hold only letters, digits, "
                          f"'_', '-' or '.' (it names the run folder), e.g. --name mymethod-matlab.")
    if name.lower() in {m.lower() for m in list_methods()}:
        raise ConfigError(f"--name '{name}' is a registered method; scored predictions need a name of their own "
                          f"(e.g. --name {name}-external), so they never mix with that method's trained runs.")
    return name


# ------------------------------------------------------------------------------------------- scoring


@dataclass
class ScoreOutcome:
    """What :func:`score_predictions` did: ``status`` is ``finished`` or ``skipped`` (the same scores exist)."""

    status: str
    directory: Path
    metrics: dict


def load_predictions(testset: TestSet, pred_dir: PathLike, layout: str = "auto") -> dict[str, dict]:
    """Read and check every prediction against the test set; nothing is written.

    Returns:
        ``{scene: {"sr": (L, H, W) float32 clipped to [0, 1], "file": name, "sha256": file sha256,
        "layout": "lhw" | "hwl"}}``.

    Raises:
        DataError: see :func:`find_predictions`, :func:`read_prediction`, :func:`to_lhw`,
            :func:`check_values`.
    """
    if layout not in ("auto", "lhw", "hwl"):
        raise ConfigError(f"--layout must be auto, lhw or hwl, got '{layout}'.")
    paths = find_predictions(pred_dir, testset.names)
    loaded = {}
    for image in testset.images:
        path = paths[image.name]
        raw = check_dtype(read_prediction(path, image.hr.shape, layout), str(path))
        sr = to_lhw(raw, image.hr.shape, layout, str(path))
        used = layout if layout != "auto" else ("lhw" if tuple(raw.shape) == tuple(image.hr.shape) else "hwl")
        loaded[image.name] = {"sr": check_values(sr, str(path)), "file": path.name, "sha256": file_sha256(path),
                              "layout": used}
    return loaded


def _check_targets(out_dir: Path, testset: TestSet) -> None:
    """Fail before writing when the results folder holds other targets for this cell (another protocol)."""
    for image in testset.images:
        path = results.cell_dir(out_dir, testset.run.dataset.name, testset.run.scale) / results.TARGETS_DIR / \
            f"{image.name}.npy"
        if path.is_file():
            try:
                old = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise ResultsError(f"Cannot read {path}: {error}. Delete it or use another --out.") from None
            new = np.asarray(image.hr, dtype=np.float16)
            if old.shape != new.shape or not np.array_equal(old, new):
                raise ResultsError(
                    f"{path} holds a target of shape {old.shape} that differs from this test set's {new.shape}: "
                    f"{path.parent.parent} was written with another profile, split or dataset. Use the same "
                    f"--profile/--split-file as those runs, or another --out.")


def _check_only_external(directory: Path, name: str) -> None:
    """Refuse a run folder that holds anything but an earlier ``score`` (``external: true``), even under
    ``--force``: a trained run there (e.g. of a plugin that is not loaded now, so its name passed
    :func:`check_name`) would lose its checkpoint and training log.

    Raises:
        ResultsError: naming the folder and what it holds.
    """
    if not directory.is_dir():
        return
    held = sorted(p.name for p in directory.iterdir() if p.name != results.LOCK_FILE)
    if not held:
        return
    for file in (results.CONFIG_FILE, results.METRICS_FILE):
        path = directory / file
        if path.is_file():
            try:
                record = results.read_json(path)
            except ResultsError:
                continue
            if isinstance(record, dict) and record.get("external") is True:
                return
    raise ResultsError(f"{directory} holds a run that 'hsibench score' did not write ({', '.join(held[:5])}"
                       f"{', ...' if len(held) > 5 else ''}): probably a trained method named '{name}' (a plugin "
                       f"not loaded now). 'score' replaces only an earlier scoring, even with --force. Give "
                       f"another --name, or another --out.")


def score_predictions(testset: TestSet, pred_dir: PathLike, name: str, out_dir: PathLike, *,
                      layout: str = "auto", title: Optional[str] = None, force: bool = False,
                      notify=print) -> ScoreOutcome:
    """Check, score and store predictions made outside the harness as a normal run folder.

    Every check (names, shapes, axis order, values, the results folder) passes before anything is
    written, so bad input leaves earlier results as they were. The run folder is
    ``<out>/<dataset>/x<scale>/<name>/seed0``; its ``metrics.json`` has the schema of a trained run's
    (``engine/evaluate.py``), with ``external: true`` and ``trainable``/``params`` ``null``.

    Args:
        testset: from :func:`open_testset` (the same dataset, scale, profile and split as the export).
        pred_dir: folder with one SR cube per test scene, ``<scene>.mat|.npy|.h5``.
        name: the method's name in tables (a folder name; not a registered method's).
        out_dir: the results root (``--out``).
        layout: ``auto``, ``lhw`` or ``hwl`` (see :func:`to_lhw`).
        title: the name shown in tables (default: ``name``).
        force: replace an earlier scoring under the same name with different predictions.

    Returns:
        A :class:`ScoreOutcome`.

    Raises:
        ConfigError: bad name or layout.
        DataError: predictions that do not match the test set.
        ResultsError: the run folder holds another run (without ``force``), other targets, or is locked.
    """
    from hsisr_bench.engine.evaluate import score

    name = check_name(name)
    run, out_dir = testset.run, Path(out_dir)
    loaded = load_predictions(testset, pred_dir, layout)
    described = _describe(testset)
    resolved = {
        "method": name, "variant": None, "title": title or name, "label": name, "external": True,
        "predictions": {scene: {"file": item["file"], "sha256": item["sha256"], "layout": item["layout"]}
                        for scene, item in loaded.items()},
        "options": {}, "loss": None, "optimizer": None, "profile_overrides": {},
        "dataset": run.dataset.name, "synthetic": {"n_scenes": run.dataset.n_scenes, "size": run.dataset.size},
        "scale": run.scale, "seed": 0,
        "protocol": {"test_region": run.protocol.test_region, "tile": run.protocol.tile},
        "profile": run.protocol.name, "split": described["split"], "output_crop": {"bands": 0, "pixels": 0},
        "conventions": described["conventions"], "experiment": None, "device": None,
        "data_root": run.dataset.data_root, "split_file": run.dataset.split_file, "version": results.version(),
    }
    resolved["run_id"] = results.compute_run_id(resolved)
    directory = results.run_dir(out_dir, run.dataset.name, run.scale, name, 0)
    results.ensure_writable(out_dir)
    _check_targets(out_dir, testset)
    _check_only_external(directory, name)
    state = "new" if force else results.run_state(directory, resolved)  # raises on another run, unless force
    if state == "finished":
        return ScoreOutcome("skipped", directory, results.read_json(directory / results.METRICS_FILE))
    lock = results.RunLock(directory, notify).acquire()
    try:
        results.clear_run(directory)
        for image in testset.images:
            results.check_or_write_target(out_dir, run.dataset.name, run.scale, image.name, image.hr)
        results.write_wavelengths(out_dir, run.dataset.name, run.scale, testset.data.wavelengths)
        results.write_json(directory / results.CONFIG_FILE, resolved)
        per_image = []
        for image in testset.images:
            sr = loaded[image.name]["sr"]
            results.write_predictions(directory, image.name, sr)
            per_image.append({"scene": image.name, **_plain(score(sr, image.hr, run.scale, run.conventions()))})
        scalars = [k for k, v in per_image[0].items() if isinstance(v, float)]
        record = {
            "run_id": resolved["run_id"], "method": name, "variant": None, "label": name, "title": title or name,
            "source": "external",  # where the method came from (built-in, a plugin): here another program
            "dataset": run.dataset.name, "scale": run.scale, "seed": 0,
            "protocol": run.protocol.name, "profile": run.protocol.name, "experiment": None,
            "options": {}, "loss": None, "profile_overrides": {},
            "conventions": described["conventions"], "output_crop": {"bands": 0, "pixels": 0},
            "external": True, "trainable": None, "params": None, "epochs": None, "train_seconds": None,
            "infer_seconds": None, "n_test_scenes": len(testset.images), "test_region": run.protocol.test_region,
            "device": None, "split": described["split"],
            "runtime": None,  # nothing ran here: the predictions come from another program
            "predictions": resolved["predictions"],
            "mean": {k: float(np.mean([row[k] for row in per_image])) for k in scalars},
            "per_image": per_image, "finished": True, "version": results.version(),
        }
        results.write_per_image(directory, per_image)
        results.write_json(directory / results.METRICS_FILE, record)  # last: marks the run finished
    finally:
        lock.release()
    return ScoreOutcome("finished", directory, record)


def _plain(metrics: Mapping[str, Any]) -> dict:
    """Metrics as JSON-able floats (per-band arrays as lists)."""
    out = {}
    for key, value in metrics.items():
        if np.ndim(value):
            out[key] = [float(v) for v in np.asarray(value, dtype=float).ravel()]
        else:
            out[key] = float(value)
    return out
