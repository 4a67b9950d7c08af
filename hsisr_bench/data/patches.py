"""The training patch bank (PROTOCOL.md section 4) and the per-band mean of the training scenes.

For each training scene and each rescaling factor (1, 0.75, 0.5 by default; MATLAB bicubic), the
bank draws ``patches_per_image`` random HR patches of ``hr_patch = lr_patch * scale`` pixels, keeps
five copies of each (identity, rotations by 90, 180 and 270 degrees, and a horizontal flip of the
identity patch), and pairs every copy with its LR: MATLAB bicubic ``imresize(copy, 1 / scale)``.

What is stored, so that the full CAVE bank (26 scenes x 3 rescales x 24 patches x 5 copies = 9,360
pairs) stays well under 4 GB of memory:

* the rescaled scenes, once each, as float32 (without a cache, the factor 1 is the caller's cube
  itself, not a copy; with one, a memory-mapped copy in the cache, like the other factors);
* the patch corners, an ``(n_scenes, n_rescales, patches_per_image, 2)`` integer table; the copy of
  an item follows from its index; HR patches are cut from the scenes when read;
* the LR patches (the expensive part: a dense MATLAB-bicubic resize of every copy), computed once
  at construction when ``cache_dir`` is given (then written to one ``.npy`` file and memory-mapped,
  so the OS pages them in and out) or when all of them fit in ``PRECOMPUTE_LR_BYTES`` of memory;
  otherwise computed each time an item is read.

On-disk cache (``cache_dir``), content-addressed so that a stale file is never read:

* ``<cache_dir>/<dataset>/<scene>__<key>__r<factor>.npy``: a scene rescaled by each factor (``r1``:
  the scene itself, so that a pickled bank, e.g. for spawned DataLoader workers, holds file paths
  only); the key hashes the scene's bytes and the resize code, so every split, scale, seed and patch
  option over the same scene shares the file;
* ``<cache_dir>/<dataset>/lr__<key>.npy``: the LR patches of one bank; the key hashes the scenes
  (names, in order, and bytes), the scale, the patch sizes and count, the factors, ``augment``, the
  seed and the resize code: the training split and the protocol's patch options of one benchmark
  cell, so the next method on the same cell reads it instead of recomputing it.

Everything random comes from ``numpy.random.default_rng`` seeded by ``seed`` and the scene name,
so the same seed gives the same patches whether the cache is hit or missed, and whatever the order
of the scenes. Cache files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from hsisr_bench.data.imresize import imresize, output_length
from hsisr_bench.atomic import atomic_path
from hsisr_bench.data.scene import Scene
from hsisr_bench.errors import ConfigError, DataError

#: The copies kept of every patch, in item order. "flip" mirrors the identity patch left-right (W axis).
AUGMENTATIONS = ("identity", "rot90", "rot180", "rot270", "flip")
#: Rescaling factors of the paper protocol.
DEFAULT_RESCALES = (1.0, 0.75, 0.5)
#: The LR of every item is precomputed in memory when all of them take at most this many bytes.
PRECOMPUTE_LR_BYTES = 512 * 2 ** 20
#: Bump when the cache file format or the rescaling changes, so stale files are not read.
CACHE_VERSION = 1

_FLOAT32_BYTES = 4


@dataclass(frozen=True)
class PatchRef:
    """Where one item of the bank comes from.

    Attributes:
        scene: the scene name.
        rescale: the rescaling factor of the scene the patch was cut from.
        y, x: top-left corner of the HR patch in the rescaled scene.
        copy: the augmentation, one of ``AUGMENTATIONS``.
    """

    scene: str
    rescale: float
    y: int
    x: int
    copy: str


def band_mean(scenes: Sequence[Scene]) -> np.ndarray:
    """Return the per-band mean of the training scenes (every pixel of every scene weighs the same).

    The harness subtracts it from the network input and adds it back to the output.

    Args:
        scenes: the training scenes, all with the same number of bands.

    Returns:
        ``(L,)`` float32 array (accumulated in float64).

    Raises:
        DataError: when ``scenes`` is empty or the band counts differ.
    """
    _check_scenes(scenes)
    total = np.zeros(scenes[0].cube.shape[0], dtype=np.float64)
    count = 0
    for scene in scenes:
        # (L, H, W) -> (L,): sum over the pixels of each band in float64.
        total += np.asarray(scene.cube).sum(axis=(1, 2), dtype=np.float64)
        count += scene.cube.shape[1] * scene.cube.shape[2]
    return (total / count).astype(np.float32)


class PatchBank(Dataset):
    """A torch ``Dataset`` of ``(lr, hr)`` training pairs cut from the training scenes.

    Item ``i`` is ``(lr, hr)``: float32 tensors ``(L, h, w)`` and ``(L, scale * h, scale * w)`` with
    ``h = w = lr_patch``. Items are ordered scene by scene (in the order given), then by rescaling
    factor, then by patch, then by copy (``AUGMENTATIONS``); ``len(bank) = n_scenes * n_rescales *
    patches_per_image * n_copies``.

    Args:
        scenes: the training scenes, ``(L, H, W)`` float32 cubes with unique names and equal band counts.
        scale: the super-resolution factor (integer >= 2).
        lr_patch: side of the LR patch; the HR patch is ``lr_patch * scale``.
        hr_patch: side of the HR patch instead (the paper's "32 x 32" read as HR); must be divisible
            by ``scale``; ``lr_patch`` is then ignored.
        patches_per_image: random patches per scene and rescaling factor.
        rescales: rescaling factors applied to each scene before cutting (MATLAB bicubic; 1 keeps it).
        augment: keep the five copies of each patch (``False``: the identity only).
        seed: seed of the patch positions.
        cache_dir: folder of the on-disk cache (rescaled scenes and LR patches, memory-mapped);
            ``None`` keeps everything in memory and computes it again for every bank.
        precompute_lr: ``True`` computes every LR once at construction, ``False`` on each read,
            ``None`` (default) precomputes when ``cache_dir`` is given or all LR patches fit in
            ``PRECOMPUTE_LR_BYTES``. Either way an LR equals ``imresize(hr, 1 / scale)`` of its HR.

    Raises:
        ConfigError: on an invalid scale, patch size, count, rescaling factor or seed.
        DataError: on no scenes, duplicate names, unequal band counts, or a scene smaller than the
            HR patch after rescaling.
    """

    def __init__(self, scenes: Sequence[Scene], scale: int, lr_patch: int = 32, hr_patch: Optional[int] = None,
                 patches_per_image: int = 24, rescales: Sequence[float] = DEFAULT_RESCALES,
                 augment: bool = True, seed: int = 0, cache_dir: Union[str, Path, None] = None,
                 precompute_lr: Optional[bool] = None) -> None:
        self.scale = _check_int("scale", scale, minimum=2)
        self.hr_patch, self.lr_patch = _patch_sizes(self.scale, lr_patch, hr_patch)
        self.patches_per_image = _check_int("patches_per_image", patches_per_image, minimum=1)
        self.rescales = _check_rescales(rescales)
        self.augment = bool(augment)
        self.copies = AUGMENTATIONS if self.augment else AUGMENTATIONS[:1]
        self.seed = _check_int("seed", seed, minimum=0)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        _check_scenes(scenes)
        self.scene_names = tuple(scene.name for scene in scenes)
        self.bands = int(scenes[0].cube.shape[0])
        _check_patch_fits(scenes, self.rescales, self.hr_patch, self.lr_patch, self.scale,
                          hr_given=hr_patch is not None)

        #: Cache files read from / written to ``cache_dir`` while building (tests and logs use them).
        self.cache_hits = 0
        self.cache_writes = 0
        # Content hashes of the cubes, for the cache keys (hashing is skipped without a cache).
        self._digests = [_cube_digest(scene.cube) for scene in scenes] if self.cache_dir else None
        self._dataset = _safe_name(scenes[0].dataset or "unknown")
        # self._images[k][j]: scene k rescaled by self.rescales[j], (L, H_j, W_j) float32.
        self._images = [[self._rescaled(k, scene, r) for r in self.rescales] for k, scene in enumerate(scenes)]
        # (n_scenes, n_rescales, patches, 2) top-left corners (y, x) of the HR patches.
        self._corners = np.stack([
            np.stack([self._draw_corners(scene.name, r, image.shape[1:])
                      for r, image in zip(self.rescales, images)])
            for scene, images in zip(scenes, self._images)])

        lr_bytes = len(self) * self.bands * self.lr_patch ** 2 * _FLOAT32_BYTES
        if precompute_lr is None:
            precompute_lr = self.cache_dir is not None or lr_bytes <= PRECOMPUTE_LR_BYTES
        self._lr: Optional[np.ndarray] = None
        if precompute_lr:
            self._lr = self._cached_lr() if self.cache_dir is not None else self._compute_lr(None)

    # ------------------------------------------------------------------------------------------
    # Dataset protocol

    def __len__(self) -> int:
        return len(self.scene_names) * len(self.rescales) * self.patches_per_image * len(self.copies)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return item ``index`` as ``(lr, hr)`` float32 tensors ``(L, h, w)`` and ``(L, s*h, s*w)``."""
        k, j, p, c = self._locate(index)
        hr = self._hr_copy(k, j, p, c)
        if self._lr is not None:
            lr = self._lr[self._flat(index)].copy()  # a copy: callers may modify the tensor in place
        else:
            lr = self._degrade(hr)
        return torch.from_numpy(lr), torch.from_numpy(hr)

    def __getstate__(self) -> dict:
        """Pickle memory-mapped cache files by path (DataLoader workers started by spawn re-open them).

        With a ``cache_dir`` every scene (factor 1 included) and the LR patches are such files, so the
        pickle holds paths and the patch table, not the cubes; without one the cubes go by value.
        """
        state = self.__dict__.copy()
        state["_images"] = [[_MappedFile.wrap(image) for image in images] for images in self._images]
        state["_lr"] = _MappedFile.wrap(self._lr)
        return state

    def __setstate__(self, state: dict) -> None:
        state["_images"] = [[_MappedFile.unwrap(image) for image in images] for images in state["_images"]]
        state["_lr"] = _MappedFile.unwrap(state["_lr"])
        self.__dict__.update(state)

    # ------------------------------------------------------------------------------------------
    # Inspection

    def patch_info(self, index: int) -> PatchRef:
        """Return where item ``index`` comes from (scene, rescaling factor, corner, copy)."""
        k, j, p, c = self._locate(index)
        y, x = self._corners[k, j, p]
        return PatchRef(self.scene_names[k], self.rescales[j], int(y), int(x), self.copies[c])

    @property
    def lr_precomputed(self) -> bool:
        """Whether the LR of every item was computed at construction."""
        return self._lr is not None

    def stored_bytes(self) -> dict[str, int]:
        """Return the bytes the bank refers to, by kind.

        Keys: ``scenes`` (the factor-1 cubes, shared with the caller's ``Scene`` objects without a
        cache), ``rescaled`` (the other factors), ``corners`` (the patch table) and ``lr`` (precomputed
        LR patches, 0 when computed on read). With ``cache_dir``, ``scenes``, ``rescaled`` and ``lr``
        are memory-mapped files: the OS keeps only the pages in use in memory.
        """
        sizes = {"scenes": 0, "rescaled": 0}
        for images in self._images:
            for r, image in zip(self.rescales, images):
                sizes["scenes" if r == 1.0 else "rescaled"] += int(image.nbytes)
        sizes["corners"] = int(self._corners.nbytes)
        sizes["lr"] = 0 if self._lr is None else int(self._lr.nbytes)
        return sizes

    @staticmethod
    def estimate_bytes(shapes: Sequence[tuple[int, int, int]], scale: int, lr_patch: int = 32,
                       hr_patch: Optional[int] = None, patches_per_image: int = 24,
                       rescales: Sequence[float] = DEFAULT_RESCALES, augment: bool = True,
                       precompute_lr: Optional[bool] = None, cached: bool = False) -> dict[str, int]:
        """Return what ``stored_bytes()`` of a bank over scenes of these shapes would be, without building it.

        Args:
            shapes: ``(L, H, W)`` of each training scene.
            scale, lr_patch, hr_patch, patches_per_image, rescales, augment, precompute_lr: as for ``PatchBank``.
            cached: whether the bank would be built with a ``cache_dir``.

        Returns:
            The same keys as ``stored_bytes``.
        """
        scale = _check_int("scale", scale, minimum=2)
        _, lr_side = _patch_sizes(scale, lr_patch, hr_patch)
        rescales = _check_rescales(rescales)
        sizes = {"scenes": 0, "rescaled": 0}
        for bands, height, width in shapes:
            for r in rescales:
                pixels = output_length(height, r) * output_length(width, r)
                sizes["scenes" if r == 1.0 else "rescaled"] += bands * pixels * _FLOAT32_BYTES
        n_items = len(shapes) * len(rescales) * patches_per_image * (len(AUGMENTATIONS) if augment else 1)
        sizes["corners"] = len(shapes) * len(rescales) * patches_per_image * 2 * np.dtype(np.int64).itemsize
        bands = shapes[0][0] if len(shapes) else 0
        lr_bytes = bands * n_items * lr_side ** 2 * _FLOAT32_BYTES
        if precompute_lr is None:
            precompute_lr = cached or lr_bytes <= PRECOMPUTE_LR_BYTES
        sizes["lr"] = lr_bytes if precompute_lr else 0
        return sizes

    # ------------------------------------------------------------------------------------------
    # Building

    def _rescaled(self, k: int, scene: Scene, factor: float) -> np.ndarray:
        """Return scene ``k``'s cube rescaled by ``factor`` (read from or written to the cache)."""
        cube = np.asarray(scene.cube, dtype=np.float32)
        if factor == 1.0 and self.cache_dir is None:
            # MATLAB's imresize at scale 1 is the identity (the kernel is 1 at 0 and 0 at +-1, +-2).
            return cube
        if factor == 1.0:
            # The scene itself, as a memory-mapped cache file: DataLoader workers started by spawn or
            # forkserver then receive its path, not a copy of every training cube (__getstate__).
            key = _hash_key(f"scene|{cube.shape}", self._digests[k])
            path = self.cache_dir / self._dataset / f"{_safe_name(scene.name)}__{key}__r1.npy"

            def copy(out: np.ndarray) -> None:
                out[...] = cube

            return self._load_or_write(path, cube.shape, copy)
        if self.cache_dir is None:
            return _resize_scene(cube, factor)
        expected = (cube.shape[0], output_length(cube.shape[1], factor), output_length(cube.shape[2], factor))
        key = _hash_key(f"rescaled|{cube.shape}|{factor!r}", self._digests[k])
        path = self.cache_dir / self._dataset / f"{_safe_name(scene.name)}__{key}__r{factor:.6g}.npy"

        def fill(out: np.ndarray) -> None:
            out[...] = _resize_scene(cube, factor)

        return self._load_or_write(path, expected, fill)

    def _cached_lr(self) -> np.ndarray:
        """Return the LR of every item from the cache file of this bank, computing it on a miss."""
        options = (f"lr|scale={self.scale}|hr={self.hr_patch}|lr={self.lr_patch}|n={self.patches_per_image}|"
                   f"rescales={self.rescales!r}|copies={self.copies}|seed={self.seed}|bands={self.bands}|"
                   f"names={self.scene_names!r}")
        key = _hash_key(options, *self._digests)
        path = self.cache_dir / self._dataset / f"lr__{key}.npy"
        shape = (len(self), self.bands, self.lr_patch, self.lr_patch)
        return self._load_or_write(path, shape, self._compute_lr)

    def _load_or_write(self, path: Path, shape: tuple[int, ...], fill) -> np.ndarray:
        """Memory-map the float32 ``.npy`` at ``path`` if it has ``shape``; else create it with ``fill(out)``.

        ``fill`` writes into a memory-mapped temporary file, renamed into place once complete, so the
        array never has to fit in memory and a reader never sees a half-written file.
        """
        if path.is_file():
            try:
                array = np.load(path, mmap_mode="r")
            except (OSError, ValueError):
                array = None  # unreadable (e.g. truncated by hand): rewrite it below
            if array is not None and array.shape == shape and array.dtype == np.float32:
                self.cache_hits += 1
                return array
        _remove_stale_temporaries(path.parent)
        try:
            with atomic_path(path, suffix=".npy.tmp") as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
                # open_memmap makes a sparse file: on a full disk a store through the mapping is a SIGBUS
                # (exit 135, no message). Allocating the blocks first turns that into an OSError here.
                _preallocate(Path(tmp))
                fill(out)
                out.flush()
                del out
        except OSError as error:
            raise DataError(f"Cannot write the patch cache file {path} ({error.strerror or error}): the disk "
                            f"holding {self.cache_dir} is full or not writable. Free space there, or use another "
                            f"--out folder (the cache lives in <out>/.cache).") from None
        self.cache_writes += 1
        return np.load(path, mmap_mode="r")

    def _draw_corners(self, name: str, factor: float, shape: tuple[int, int]) -> np.ndarray:
        """Draw the ``(patches, 2)`` corners of one scene at one factor from its own seeded stream."""
        # The stream depends on the seed, the scene name and the factor, not on list positions:
        # reordering the scenes or the factors, or adding some, leaves the other patches unchanged.
        key = (zlib.crc32(name.encode("utf-8")), int(round(factor * 1_000_000)))
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))
        height, width = shape
        ys = rng.integers(0, height - self.hr_patch + 1, size=self.patches_per_image)
        xs = rng.integers(0, width - self.hr_patch + 1, size=self.patches_per_image)
        return np.stack([ys, xs], axis=1).astype(np.int64)  # (patches, 2)

    def _compute_lr(self, out: Optional[np.ndarray]) -> np.ndarray:
        """Compute the LR of every item into ``out`` (a new array when ``None``), one image at a time.

        All copies of one (scene, factor) go through one batched ``imresize`` call: the resize applies
        the same two matrix products to every batch item, and on the CPU the result equals that of
        ``imresize`` on each HR copy alone, bit for bit (``tests/test_patches.py`` checks it).
        """
        if out is None:
            out = np.empty((len(self), self.bands, self.lr_patch, self.lr_patch), dtype=np.float32)
        per_image = self.patches_per_image * len(self.copies)
        for k in range(len(self.scene_names)):
            for j in range(len(self.rescales)):
                # (patches * copies, L, hr, hr): every copy of every patch of this image, in item order.
                batch = np.stack([self._hr_copy(k, j, p, c) for p in range(self.patches_per_image)
                                  for c in range(len(self.copies))])
                start = (k * len(self.rescales) + j) * per_image
                out[start:start + per_image] = self._degrade(batch)
        return out

    # ------------------------------------------------------------------------------------------
    # Items

    def _flat(self, index: int) -> int:
        """Return ``index`` as a non-negative int, or raise ``IndexError``."""
        n = len(self)
        index = int(index)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"PatchBank index {index} out of range for a bank of {n} items.")
        return index

    def _locate(self, index: int) -> tuple[int, int, int, int]:
        """Split a flat item index into (scene, factor, patch, copy) indices."""
        rest, c = divmod(self._flat(index), len(self.copies))
        rest, p = divmod(rest, self.patches_per_image)
        k, j = divmod(rest, len(self.rescales))
        return k, j, p, c

    def _hr_copy(self, k: int, j: int, p: int, c: int) -> np.ndarray:
        """Cut patch ``p`` of scene ``k`` at factor ``j`` and apply copy ``c``: ``(L, hr, hr)`` float32."""
        y, x = self._corners[k, j, p]
        patch = self._images[k][j][:, y:y + self.hr_patch, x:x + self.hr_patch]  # (L, hr, hr) view
        # np.array copies: a patch must never share memory with the scene (callers may edit it in place).
        return np.array(_augment(np.asarray(patch), self.copies[c]), dtype=np.float32, order="C")

    def _degrade(self, hr: np.ndarray) -> np.ndarray:
        """MATLAB bicubic downscale by ``1 / scale`` of ``(..., L, hr, hr)`` to ``(..., L, lr, lr)``."""
        lr = imresize(hr, 1.0 / self.scale)
        if lr.shape[-2:] != (self.lr_patch, self.lr_patch):
            raise DataError(f"imresize by 1/{self.scale} turned a {self.hr_patch}x{self.hr_patch} patch into "
                            f"{lr.shape[-2]}x{lr.shape[-1]}, expected {self.lr_patch}x{self.lr_patch}.")
        return lr


# ----------------------------------------------------------------------------------------------
# Helpers


@dataclass(frozen=True)
class _MappedFile:
    """A read-only memory-mapped ``.npy`` cache file, pickled as its path instead of its contents."""

    path: str

    @staticmethod
    def wrap(array):
        """Return a ``_MappedFile`` for a memory map (the bank holds only whole-file ones), else ``array``."""
        if isinstance(array, np.memmap) and array.filename is not None:
            return _MappedFile(str(array.filename))
        return array

    @staticmethod
    def unwrap(value):
        """Re-open a ``_MappedFile``; return anything else unchanged."""
        return np.load(value.path, mmap_mode="r") if isinstance(value, _MappedFile) else value


#: A cache temporary untouched for this long belongs to a writer that died (a live one keeps writing).
STALE_TEMPORARY_SECONDS = 3600


def _preallocate(path: Path) -> None:
    """Allocate every block of ``path`` now, so a full disk fails here as ``OSError`` (ENOSPC/EFBIG)."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as error:
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
        chunk = b"\0" * (1 << 20)  # no fallocate here (e.g. some NFS): write zeros with ordinary I/O
        for offset in range(0, size, len(chunk)):
            os.pwrite(fd, chunk[: size - offset], offset)
    finally:
        os.close(fd)


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete cache temporaries left by killed writers (older than ``STALE_TEMPORARY_SECONDS``)."""
    now = time.time()
    for tmp in folder.glob(".*.npy.tmp") if folder.is_dir() else ():
        try:
            if now - tmp.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                tmp.unlink()
        except OSError:
            pass  # removed meanwhile by another process, or not ours to remove


def _augment(patch: np.ndarray, copy: str) -> np.ndarray:
    """Return one copy of an ``(L, H, W)`` patch: rotation over (H, W) by ``np.rot90`` or a left-right flip."""
    if copy == "identity":
        return patch
    if copy == "flip":
        return patch[:, :, ::-1]
    turns = {"rot90": 1, "rot180": 2, "rot270": 3}[copy]
    return np.rot90(patch, turns, axes=(1, 2))


def _resize_scene(cube: np.ndarray, factor: float) -> np.ndarray:
    """MATLAB bicubic rescale of an ``(L, H, W)`` float32 cube (with antialiasing when shrinking)."""
    return np.ascontiguousarray(imresize(cube, factor), dtype=np.float32)


def _cube_digest(cube: np.ndarray) -> bytes:
    """Return a hash of a cube's shape, dtype and bytes (a changed scene never reads a stale cache file)."""
    array = np.ascontiguousarray(cube)
    digest = hashlib.blake2b(f"{array.shape}|{array.dtype.str}|".encode(), digest_size=16)
    digest.update(memoryview(array).cast("B"))  # (L, H, W) bytes, C order
    return digest.digest()


def _hash_key(text: str, *digests: bytes) -> str:
    """Return the 20-hex-digit cache key of ``text``, the scene digests, the resize code and ``CACHE_VERSION``."""
    key = hashlib.blake2b(f"v{CACHE_VERSION}|{text}".encode(), digest_size=10)
    key.update(_resize_code_digest())
    for digest in digests:
        key.update(digest)
    return key.hexdigest()


_RESIZE_DIGEST: Optional[bytes] = None


def _resize_code_digest() -> bytes:
    """Return a hash of ``imresize.py``'s source (computed once), so a change of the resize invalidates the cache."""
    global _RESIZE_DIGEST
    if _RESIZE_DIGEST is None:
        source = Path(importlib.import_module("hsisr_bench.data.imresize").__file__).read_bytes()
        _RESIZE_DIGEST = hashlib.blake2b(source, digest_size=16).digest()
    return _RESIZE_DIGEST


def _safe_name(name: str) -> str:
    """Keep a name usable as a file name: letters, digits, '-', '_' and '.'; anything else becomes '_'."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def _check_int(name: str, value: object, *, minimum: int) -> int:
    """Return ``value`` as an int, or raise ``ConfigError`` when it is not an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"PatchBank: {name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _patch_sizes(scale: int, lr_patch: int, hr_patch: Optional[int]) -> tuple[int, int]:
    """Return ``(hr_patch, lr_patch)`` from the LR size, or from the HR size when it is given."""
    if hr_patch is None:
        lr = _check_int("lr_patch", lr_patch, minimum=1)
        return lr * scale, lr
    hr = _check_int("hr_patch", hr_patch, minimum=scale)
    if hr % scale:
        raise ConfigError(f"PatchBank: hr_patch {hr} is not divisible by the scale {scale}; use a multiple of "
                          f"{scale} (e.g. {hr - hr % scale} or {hr - hr % scale + scale}), or set lr_patch instead.")
    return hr, hr // scale


def _check_rescales(rescales: Sequence[float]) -> tuple[float, ...]:
    """Return the rescaling factors as a tuple of floats in (0, 1], unique, or raise ``ConfigError``."""
    try:
        values = tuple(float(r) for r in rescales)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"PatchBank: rescales must be a list of numbers such as (1.0, 0.75, 0.5), "
                          f"got {rescales!r}.") from exc
    if not values or any(not (0.0 < r <= 1.0) for r in values) or len(set(values)) != len(values):
        raise ConfigError(f"PatchBank: rescales must be distinct factors in (0, 1], at least one, "
                          f"got {rescales!r}.")
    return values


def _check_scenes(scenes: Sequence[Scene]) -> None:
    """Raise ``DataError`` on no scenes, a cube that is not ``(L, H, W)``, duplicate names or unequal band counts."""
    if len(scenes) == 0:
        raise DataError("No training scenes: the patch bank and the band mean need at least one scene. "
                        "Check the data root and the split's train list.")
    names = [scene.name for scene in scenes]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DataError(f"Training scene names must be unique; duplicated: {', '.join(duplicates)}.")
    for scene in scenes:
        if np.ndim(scene.cube) != 3:
            raise DataError(f"Scene {scene.name}: expected an (L, H, W) cube, got shape {np.shape(scene.cube)}.")
    bands = {scene.name: int(scene.cube.shape[0]) for scene in scenes}
    if len(set(bands.values())) > 1:
        detail = ", ".join(f"{name}: {count}" for name, count in bands.items())
        raise DataError(f"Training scenes must all have the same number of bands; found {detail}.")


def _check_patch_fits(scenes: Sequence[Scene], rescales: tuple[float, ...], hr_patch: int, lr_patch: int,
                      scale: int, hr_given: bool = False) -> None:
    """Raise ``DataError`` naming the first scene that is smaller than the HR patch after rescaling."""
    for scene in scenes:
        _, height, width = scene.cube.shape
        problem = patch_fit_problem(scene.name, height, width, rescales, hr_patch, lr_patch, scale, hr_given)
        if problem:
            raise DataError(problem)


def patch_fit_problem(name: str, height: int, width: int, rescales: Sequence[float], hr_patch: int,
                      lr_patch: int, scale: int, hr_given: bool = False) -> str:
    """Say why a ``height`` x ``width`` training scene cannot give HR patches, with advice that works.

    Dropping a rescaling factor only helps when the scene fits the patch at some other factor; when it
    does not fit even at the largest factor, the advice is a smaller patch (or leaving the scene out of
    training), never dropping factors.

    Args:
        name: the scene name (for the message).
        height, width: the scene's size in pixels.
        rescales: the rescaling factors of the protocol (``protocol.rescales``).
        hr_patch, lr_patch: the HR and LR patch sides (``hr_patch == lr_patch * scale``).
        scale: the upscaling factor.
        hr_given: the protocol sets ``hr_patch`` (the advice then names it instead of ``lr_patch``).

    Returns:
        The message, or ``""`` when the scene gives a patch at every factor.
    """
    failing = [r for r in rescales if min(output_length(height, r), output_length(width, r)) < hr_patch]
    if not failing:
        return ""
    r = failing[0]
    h, w = output_length(height, r), output_length(width, r)
    # The largest LR patch whose HR patch fits this scene at every factor.
    fits = min(output_length(min(height, width), f) for f in rescales) // scale
    if hr_given:
        patch_advice = (f"a smaller hr_patch (at most {fits * scale} fits this scene at every factor: "
                        f"--set protocol.hr_patch={fits * scale})")
    else:
        patch_advice = (f"a smaller lr_patch (at most {fits} fits this scene at every factor: "
                        f"--set protocol.lr_patch={fits})")
    if fits < 1:
        patch_advice = "a smaller patch cannot help (not even 1 LR pixel fits at every factor)"
    kept = [f for f in rescales if f not in failing]
    if kept:
        factors = ", ".join(f"{f:g}" for f in failing)
        advice = (f"Use {patch_advice}, or drop the rescaling factor(s) {factors} from rescales "
                  f"(--set protocol.rescales=[{', '.join(f'{f:g}' for f in kept)}]).")
    else:
        largest = max(rescales)
        advice = (f"The scene is smaller than the patch even at the largest factor {largest:g}, so dropping "
                  f"rescaling factors cannot help. Use {patch_advice}" if fits >= 1 else
                  f"The scene is smaller than the patch even at the largest factor {largest:g}: {patch_advice}")
        advice += "; or leave the scene out of training (a split file that puts it in test)."
    return (f"Scene {name} is {h}x{w} pixels after rescaling by {r:g} ({height}x{width} before), smaller than "
            f"the {hr_patch}x{hr_patch} HR patch (LR patch {lr_patch} at x{scale}). {advice}")
