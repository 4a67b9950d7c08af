"""MATLAB-compatible bicubic resize (``imresize(x, scale, 'bicubic')``), vectorised in torch.

This is the degradation of PROTOCOL.md section 3: the LR image is MATLAB's
``imresize(HR, 1/s, 'bicubic')`` and the Bicubic baseline upsamples with ``imresize(LR, s)``.
``torch.nn.functional.interpolate``, PIL and OpenCV all differ from it (other cubic coefficient,
other borders, no or other antialiasing), so the algorithm is reimplemented here from MATLAB's
documented one (Image Processing Toolbox, ``imresize``: its ``contributions`` and ``cubic``
functions, which ship as readable M-code):

* Kernel: Keys' cubic convolution with a = -0.5 (MATLAB's ``cubic``)::

      k(x) = 1.5|x|^3 - 2.5|x|^2 + 1              for |x| <= 1
           = -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2      for 1 < |x| <= 2
           = 0                                    otherwise

* Output length: ``ceil(scale * in_len)``, with the scale used exactly as given (1/3 stays 1/3; it is
  not replaced by ``out_len / in_len``).
* Output pixel ``i`` (1-based) sits at input coordinate ``u = i / scale + 0.5 * (1 - 1 / scale)``.
* Antialiasing when shrinking (``scale < 1``): the kernel becomes ``scale * k(scale * x)`` and its
  width ``4 / scale``, so it low-pass filters before subsampling.
* Taps: ``P = ceil(width) + 2`` input indices starting at ``floor(u - width / 2)``; each weight is the
  (widened) kernel at ``u - index``; the weights of an output pixel are divided by their sum.
* Borders: out-of-range indices are mirrored with the edge sample repeated (MATLAB's
  ``aux = [1:n, n:-1:1]; index = aux(mod(index - 1, 2n) + 1)``), so ``x(0) -> x(1)``,
  ``x(-1) -> x(2)``, ``x(n + 1) -> x(n)``.
* Separable: one 1-D resize along each axis. MATLAB resizes the axis with the smaller scale first
  (``[~, order] = sort(scale)``, a stable sort), so with one scale for both axes it resizes the rows
  (H) first, then the columns (W). This module does the same. The two passes are linear maps on
  different axes and commute exactly in real arithmetic; the order only affects float rounding.

Implementation: for each axis the taps are folded into a dense ``(out_len, in_len)`` weight matrix
(mirrored taps that land on the same sample are summed), cached in a small LRU per
``(in_len, scale, dtype, device)``, and applied with one matrix product per axis in which every band
and batch item is folded into a single GEMM. Weights are computed in float64 and cast to the working
dtype. (A sparse gather of the ``ceil(4 / scale) + 2`` taps does fewer flops but measured several
times slower on CPU than the dense GEMM for 512-pixel axes.)

``imresize_reference`` is a deliberately slow pure-Python transcription of the same algorithm, kept
as an oracle for the tests and the ``data`` benchmark suite.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from functools import lru_cache
from typing import Iterator, Union

import numpy as np
import torch

from hsisr_bench.errors import ConfigError, DataError

__all__ = ["clear_weight_cache", "imresize", "imresize_reference", "output_length", "resize_weights"]

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Width of the Keys cubic kernel's support, in input samples, before antialiasing widens it.
KERNEL_WIDTH = 4.0

#: Upper bound on ``out_len * taps`` for one axis: a tiny scale on a short axis would otherwise ask
#: for millions of taps per output pixel (the antialiasing kernel is ``4 / scale`` samples wide).
_MAX_TAP_ENTRIES = 50_000_000

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def imresize(x: ArrayLike, scale: float, *, check_finite: bool = True) -> ArrayLike:
    """Resize the last two axes of ``x`` by ``scale`` exactly as MATLAB's ``imresize(x, scale, 'bicubic')``.

    Args:
        x: a numpy array or torch tensor shaped ``(H, W)``, ``(L, H, W)`` or ``(B, L, H, W)``, of a
            floating dtype (float32 and float64; float16 and bfloat16 are computed in float32 and
            cast back). Every band and batch item is resized identically. Integer arrays are
            rejected rather than converted: in this toolkit they mean un-normalised data (CAVE's
            8-bit ``watercolors`` scene), and MATLAB would round the result back to integers.
            Values must be finite: the dense weight matrices would spread a NaN or Inf along
            whole rows and columns, while MATLAB confines it to the kernel's support.
        scale: any positive finite real number; ``< 1`` shrinks (with antialiasing), ``> 1`` enlarges.
            It is used exactly as given, e.g. ``1/3`` on 512 pixels gives ``ceil(512/3) = 171``.
        check_finite: refuse NaN and Inf values (the default). Checking them reads a flag back to the
            host, a device-to-host sync on a GPU; the harness passes ``False`` for batches whose
            finiteness it checks itself (the training loop checks the loss at its own intervals).

    Returns:
        The resized array, of the same kind (numpy or torch), dtype, device and leading shape, with
        the last two axes ``ceil(scale * H)`` and ``ceil(scale * W)``. A torch result keeps autograd.

    Raises:
        DataError: ``x`` is not a numpy array or torch tensor, has the wrong number of axes, a
            non-floating dtype, an empty axis, or (with ``check_finite``) non-finite values.
        ConfigError: ``scale`` is not a positive finite number, or is so small for this input that the
            antialiasing kernel would be unreasonably wide.
    """
    scale = _check_scale(scale)
    tensor, is_numpy = _to_tensor(x, check_finite)
    height, width = tensor.shape[-2:]

    # float16 / bfloat16 have too little precision for the accumulation: compute in float32.
    work_dtype = tensor.dtype if tensor.dtype in (torch.float32, torch.float64) else torch.float32
    work = tensor.to(work_dtype)
    weights_h = _cached_weights(height, scale, work_dtype, str(work.device))  # (out_h, H)
    weights_w = _cached_weights(width, scale, work_dtype, str(work.device))   # (out_w, W)
    with _exact_float32_matmul(work):
        # Both passes are written as (tensor @ matrix) so that torch folds every leading axis into
        # one large GEMM (weights @ tensor would broadcast into a slower batched matmul).
        # (..., W, H) @ (H, out_h) -> (..., W, out_h): resize along H for every band at once.
        work = torch.matmul(work.transpose(-1, -2), weights_h.transpose(0, 1))
        # (..., out_h, W) @ (W, out_w) -> (..., out_h, out_w): then along W.
        work = torch.matmul(work.transpose(-1, -2), weights_w.transpose(0, 1))
    result = work.to(tensor.dtype)
    if is_numpy:
        return result.numpy()
    return result


def output_length(in_len: int, scale: float) -> int:
    """Return MATLAB's output length ``ceil(scale * in_len)`` for one axis (float64 product, as MATLAB)."""
    return int(math.ceil(scale * in_len))


def resize_weights(in_len: int, scale: float) -> np.ndarray:
    """Return the ``(out_len, in_len)`` float64 matrix that resizes one axis as MATLAB does.

    Row ``i`` holds the normalised kernel weights of output sample ``i``; mirrored taps that land
    on the same input sample are summed. ``resize_weights(n, s) @ v`` resizes a vector ``v``.

    Args:
        in_len: length of the input axis (at least 1).
        scale: positive resize factor, used exactly as given.

    Returns:
        A float64 numpy array of shape ``(ceil(scale * in_len), in_len)`` whose rows sum to 1.

    Raises:
        ConfigError: ``scale`` is not a positive finite number, or too small for ``in_len``.
        DataError: ``in_len`` is less than 1.
    """
    scale = _check_scale(scale)
    if in_len < 1:
        raise DataError(f"imresize: cannot resize an axis of length {in_len}; expected at least 1 sample.")
    return _weights_float64(int(in_len), scale).copy()


def clear_weight_cache() -> None:
    """Empty the LRU caches of weight matrices (for cold-start benchmarks, or to free GPU memory)."""
    _weights_float64.cache_clear()
    _cached_weights.cache_clear()


def imresize_reference(x: np.ndarray, scale: float) -> np.ndarray:
    """Resize like :func:`imresize` with plain Python loops: a slow oracle for tests and benchmarks.

    A line-by-line transcription of MATLAB's documented ``contributions`` (kernel, antialiasing,
    mirror indexing, normalisation) followed by a per-pixel weighted sum, rows first then columns.
    It shares no code with the vectorised path. Seconds per 512 x 512 band: do not use it for work.

    Args:
        x: numpy array ``(H, W)``, ``(L, H, W)`` or ``(B, L, H, W)``; computed in float64.
        scale: positive resize factor.

    Returns:
        A float64 numpy array with the last two axes resized.
    """
    array = np.asarray(x, dtype=np.float64)
    if array.ndim not in (2, 3, 4):
        raise DataError(f"imresize_reference: expected (H, W), (L, H, W) or (B, L, H, W), got shape {array.shape}.")
    height, width = array.shape[-2:]
    rows_contrib = _reference_contributions(height, scale)
    cols_contrib = _reference_contributions(width, scale)
    planes = array.reshape(-1, height, width)  # (B*L, H, W): every band is resized on its own
    out = np.empty((planes.shape[0], len(rows_contrib), len(cols_contrib)))
    for p, plane in enumerate(planes):
        image = plane.tolist()
        # Rows (H) first, as MATLAB does for equal scales: tall[i][c] = sum_k w_k * image[idx_k][c].
        tall = [[sum(w * image[r][c] for r, w in taps) for c in range(width)] for taps in rows_contrib]
        for i, row in enumerate(tall):
            for j, taps in enumerate(cols_contrib):
                out[p, i, j] = sum(w * row[c] for c, w in taps)
    return out.reshape(array.shape[:-2] + out.shape[-2:])


# ----------------------------------------------------------------------------------------------
# Vectorised weights


def _keys_cubic(t: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), elementwise."""
    a = np.abs(t)
    a2, a3 = a * a, a * a * a
    near = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1.0)
    far = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1.0) & (a <= 2.0))
    return near + far


@lru_cache(maxsize=32)
def _weights_float64(in_len: int, scale: float) -> np.ndarray:
    """Dense ``(out_len, in_len)`` float64 weights of one axis (cached; callers must not mutate)."""
    out_len = output_length(in_len, scale)
    antialias = scale < 1.0
    width = KERNEL_WIDTH / scale if antialias else KERNEL_WIDTH
    taps = int(math.ceil(width)) + 2
    if out_len * taps > _MAX_TAP_ENTRIES:
        raise ConfigError(
            f"imresize: scale {scale!r} is too small for an axis of {in_len} samples: the antialiasing "
            f"kernel would need {taps} taps for each of {out_len} outputs. Use a scale of at least "
            f"{4.0 / in_len:.3g} or resize in several steps.")
    centres = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)  # (out,)
    left = np.floor(centres - width / 2.0)  # (out,) first tap, 1-based as in MATLAB
    indices = left[:, None] + np.arange(taps)[None, :]  # (out, taps)
    distance = centres[:, None] - indices  # (out, taps)
    # Antialiasing widens the kernel: h(x) = scale * k(scale * x). The factor `scale` cancels in
    # the normalisation below but is kept to mirror MATLAB's formula term by term.
    weights = scale * _keys_cubic(scale * distance) if antialias else _keys_cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    # MATLAB's mirror: aux = [1:n, n:-1:1]; idx = aux(mod(idx - 1, 2n) + 1); here made 0-based.
    period = np.mod(indices.astype(np.int64) - 1, 2 * in_len)  # (out, taps) in [0, 2n)
    mirrored = np.where(period < in_len, period, 2 * in_len - 1 - period)  # (out, taps) in [0, n)
    dense = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_len)[:, None], mirrored.shape)  # (out, taps)
    np.add.at(dense, (rows, mirrored), weights)  # sum taps that mirror onto the same sample
    dense.flags.writeable = False
    return dense


@lru_cache(maxsize=32)
def _cached_weights(in_len: int, scale: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    """The weights of ``_weights_float64`` as a tensor of ``dtype`` on ``device`` (cached)."""
    dense = torch.from_numpy(np.array(_weights_float64(in_len, scale)))  # writable copy for torch
    return dense.to(device=device, dtype=dtype)


@contextlib.contextmanager
def _exact_float32_matmul(tensor: torch.Tensor) -> Iterator[None]:
    """Force full-precision float32 matmuls on CUDA for the duration of the resize.

    A training loop may call ``torch.set_float32_matmul_precision("high")`` (TF32 on recent GPUs,
    ~1e-3 relative error); the degradation must not change with it.
    """
    if tensor.device.type != "cuda" or tensor.dtype != torch.float32:
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


# ----------------------------------------------------------------------------------------------
# Input checks


def _check_scale(scale: object) -> float:
    """Return ``scale`` as a positive finite float, or raise ``ConfigError`` saying what was wrong."""
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        scale = scale.item()
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
        raise ConfigError(f"imresize: scale must be a positive number such as 0.25 or 4, got {scale!r} "
                          f"of type {type(scale).__name__}.")
    value = float(scale)
    if not math.isfinite(value) or value <= 0.0:
        raise ConfigError(f"imresize: scale must be a positive finite number (e.g. 1/4 to shrink, 4 to "
                          f"enlarge), got {value!r}.")
    return value


def _to_tensor(x: object, check_finite: bool = True) -> tuple[torch.Tensor, bool]:
    """Validate ``x`` and return it as a tensor sharing memory where possible, plus ``is_numpy``."""
    if isinstance(x, np.ndarray):
        is_numpy = True
        if not np.issubdtype(x.dtype, np.floating) or x.dtype == np.longdouble:
            raise DataError(_dtype_message(x.dtype))
        if not x.dtype.isnative:  # e.g. big-endian arrays read from a .mat file
            x = x.astype(x.dtype.newbyteorder("="))
        if not x.flags.writeable:  # e.g. np.load(..., mmap_mode="r"); torch warns on read-only memory
            x = np.array(x)
        tensor = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        is_numpy = False
        if x.dtype not in _FLOAT_DTYPES:
            raise DataError(_dtype_message(x.dtype))
        tensor = x
    else:
        raise DataError(f"imresize: expected a numpy array or torch tensor, got {type(x).__name__}.")
    if tensor.ndim not in (2, 3, 4):
        raise DataError(f"imresize: expected an array shaped (H, W), (L, H, W) or (B, L, H, W), got "
                        f"{tensor.ndim} axes with shape {tuple(tensor.shape)}.")
    if tensor.numel() == 0:
        raise DataError(f"imresize: cannot resize an empty array of shape {tuple(tensor.shape)}; every "
                        f"axis needs at least one sample.")
    if not check_finite:
        return tensor, is_numpy
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise DataError(f"imresize: the input holds {bad} NaN or Inf value(s) out of {tensor.numel()}; "
                        f"expected finite values. Replace them (e.g. numpy.nan_to_num) before resizing.")
    return tensor, is_numpy


def _dtype_message(dtype: object) -> str:
    return (f"imresize: expected a float32 or float64 array, got dtype {dtype}. Convert and normalise it "
            f"first, e.g. x.astype(numpy.float32) / 65535 for 16-bit data.")


# ----------------------------------------------------------------------------------------------
# Slow reference (pure Python loops)


def _reference_contributions(in_len: int, scale: float) -> list[list[tuple[int, float]]]:
    """For each output sample, the list of (0-based input index, weight) pairs, MATLAB-style, in loops."""
    out_len = int(math.ceil(scale * in_len))
    antialias = scale < 1
    width = 4.0 / scale if antialias else 4.0
    n_taps = int(math.ceil(width)) + 2
    aux = list(range(1, in_len + 1)) + list(range(in_len, 0, -1))  # MATLAB's [1:n, n:-1:1]
    contributions = []
    for i in range(1, out_len + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = []
        for k in range(n_taps):
            index = left + k
            t = u - index
            if antialias:
                t = t * scale
            a = abs(t)
            if a <= 1:
                w = 1.5 * a ** 3 - 2.5 * a ** 2 + 1
            elif a <= 2:
                w = -0.5 * a ** 3 + 2.5 * a ** 2 - 4 * a + 2
            else:
                w = 0.0
            if antialias:
                w = w * scale
            # Python's % is a true modulo like MATLAB's mod (non-negative for a positive divisor).
            taps.append((aux[(index - 1) % len(aux)] - 1, w))
        total = sum(w for _, w in taps)
        contributions.append([(index, w / total) for index, w in taps])
    return contributions
