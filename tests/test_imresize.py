"""Tests of the MATLAB-compatible bicubic resize (PROTOCOL.md section 3).

Oracles, from the most to the least independent:
1. weights derived by hand below from MATLAB's documented algorithm (Keys cubic, a = -0.5;
   antialiasing when shrinking; mirror borders ``aux = [1:n, n:-1:1]``);
2. ``imresize_reference``, a plain-Python-loop transcription of the same algorithm that shares no
   code with the vectorised path; it is itself checked against the hand weights first;
3. properties (constants, linearity, numpy/torch, dtypes, shapes, sizes).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hsisr_bench.data import imresize as public_imresize
from hsisr_bench.data.imresize import imresize, imresize_reference, output_length, resize_weights
from hsisr_bench.errors import ConfigError, DataError

SCALES = [1 / 2, 1 / 3, 1 / 4, 0.75, 0.5, 2, 3, 4]

# --------------------------------------------------------------------------------------------
# Hand-derived weights.
#
# Keys cubic, a = -0.5: k(t) = 1.5|t|^3 - 2.5|t|^2 + 1 (|t| <= 1), -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2
# (1 < |t| <= 2), 0 beyond. The values needed below:
#   k(0.25) = 0.0234375 - 0.15625 + 1              = 111/128
#   k(0.75) = 0.6328125 - 1.40625 + 1              =  29/128
#   k(1.25) = -0.9765625 + 3.90625 - 5 + 2         =  -9/128
#   k(1.75) = -2.6796875 + 7.65625 - 7 + 2         =  -3/128
#   k(t)    = 0 for |t| >= 2
#
# UPSCALE x2 of n = 4 samples (out = 8). Output i (1-based) sits at u = i/2 + 0.25, so
# u = 0.75, 1.25, ..., 4.25. Taps are the integers within distance 2 of u:
#   u = m + 0.25 -> samples m-1, m, m+1, m+2 at distances 1.25, 0.25, 0.75, 1.75 -> (-9, 111, 29, -3)/128
#   u = m + 0.75 -> samples m-1, m, m+1, m+2 at distances 1.75, 0.75, 0.25, 1.25 -> (-3, 29, 111, -9)/128
# (each set sums to 128/128, so normalisation changes nothing). Mirror borders: x(0) = x(1),
# x(-1) = x(2), x(5) = x(4), x(6) = x(3). Folding the mirrored taps onto samples 1..4:
#   i=1 u=0.75: x(-1),x(0),x(1),x(2) -> x2*-3 + x1*29 + x1*111 + x2*-9 = [140, -12,   0,   0]
#   i=2 u=1.25: x(0),x(1),x(2),x(3)  -> x1*-9 + x1*111 + x2*29 + x3*-3 = [102,  29,  -3,   0]
#   i=3 u=1.75: x(0),x(1),x(2),x(3)  -> x1*-3 + x1*29 + x2*111 + x3*-9 = [ 26, 111,  -9,   0]
#   i=4 u=2.25: x(1)..x(4)           -> (-9, 111, 29, -3)             = [ -9, 111,  29,  -3]
#   i=5..8 by the mirror symmetry of the problem (reverse rows and columns).
HAND_UP2_N4 = np.array([
    [140, -12, 0, 0],
    [102, 29, -3, 0],
    [26, 111, -9, 0],
    [-9, 111, 29, -3],
    [-3, 29, 111, -9],
    [0, -9, 111, 26],
    [0, -3, 29, 102],
    [0, 0, -12, 140],
]) / 128

# DOWNSCALE x1/2 of n = 4 samples (out = 2). Antialiasing: h(t) = 0.5 k(t/2), width 8, so the
# taps reach distance 4. Output i sits at u = 2i - 0.5: u = 1.5 and 3.5. For u = 1.5 the samples
# -2..5 are at distances 3.5, 2.5, 1.5, 0.5, 0.5, 1.5, 2.5, 3.5, i.e. k at 1.75, 1.25, 0.75, 0.25, ...
#   -> (-3, -9, 29, 111, 111, 29, -9, -3)/128 * 0.5; they sum to 256/256 after normalisation:
#   weights (-3, -9, 29, 111, 111, 29, -9, -3)/256 on x(-2), x(-1), x(0), x(1), x(2), x(3), x(4), x(5).
# Mirror: x(-2) = x(3), x(-1) = x(2), x(0) = x(1), x(5) = x(4):
#   i=1: x1: 29 + 111 = 140; x2: -9 + 111 = 102; x3: -3 + 29 = 26; x4: -9 - 3 = -12
#   i=2 (u = 3.5, samples 0..7, x(6) = x(3), x(7) = x(2)): the mirror image of row 1.
HAND_DOWN2_N4 = np.array([
    [140, 102, 26, -12],
    [-12, 26, 102, 140],
]) / 256


def _matrix_of(resize_1d, n: int) -> np.ndarray:
    """The (out, n) matrix of a linear 1-D resize, column j being the response to unit vector e_j."""
    return np.stack([resize_1d(np.eye(n)[j]) for j in range(n)], axis=1)


@pytest.mark.parametrize("scale, expected", [(2, HAND_UP2_N4), (0.5, HAND_DOWN2_N4), (1, np.eye(4))])
def test_weights_match_hand_derivation(scale, expected):
    np.testing.assert_allclose(resize_weights(4, scale), expected, rtol=0, atol=1e-15)
    # The slow oracle, run along W of a (1, n) image, must give the same matrix.
    reference = _matrix_of(lambda v: imresize_reference(v[None, :], scale)[0], 4)
    np.testing.assert_allclose(reference, expected, rtol=0, atol=1e-15)
    # And the vectorised resize along H of an (n, 1) image (W = 1 is resized to ceil(scale) columns,
    # all equal to the single input column because each row of weights sums to 1).
    vectorised = _matrix_of(lambda v: imresize(v[:, None], scale)[:, 0], 4)
    np.testing.assert_allclose(vectorised, expected, rtol=0, atol=1e-15)


def test_hand_values_on_a_signal():
    # [0, 0, 1, 1, 0] enlarged x2 along W: entries 1..9 follow from the hand rows above
    # (e.g. entry 2 = -3/128 from x3, entry 4 = (29 - 3)/128); entry 10 (u = 5.25) takes
    # x4*-9 + x5*111 + x(6)*29 + x(7)*-3 with x(6) = x5 = 0, x(7) = x4 = 1: -12/128.
    signal = np.array([[0, 0, 1, 1, 0]], dtype=np.float64)
    expected = np.array([0, -3, -9, 26, 102, 140, 140, 102, 26, -12]) / 128
    out = imresize(signal, 2)
    assert out.shape == (2, 10)
    np.testing.assert_allclose(out, np.stack([expected, expected]), rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------------
# Against the loop reference, on random non-square inputs with odd and even sizes


@pytest.mark.parametrize("shape", [(37, 26), (2, 24, 35)])
@pytest.mark.parametrize("scale", SCALES)
def test_matches_loop_reference(scale, shape):
    x = np.random.default_rng(7).random(shape)
    expected = imresize_reference(x, scale)
    got = imresize(x, scale)
    assert got.shape == expected.shape
    height, width = got.shape[-2:]
    # The borders (2 output pixels: where the mirror matters at every scale here) and the interior.
    border = np.zeros((height, width), dtype=bool)
    border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
    assert border.any() and (~border).any()
    np.testing.assert_allclose(got[..., border], expected[..., border], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[..., ~border], expected[..., ~border], rtol=0, atol=1e-12)


def test_scale_is_used_exactly_not_rounded_to_output_ratio():
    # MATLAB uses the given scale (1/3), not out/in (171/512); the two grids differ.
    assert output_length(512, 1 / 3) == 171
    exact, ratio = resize_weights(512, 1 / 3), resize_weights(512, 171 / 512)
    assert exact.shape == ratio.shape == (171, 512)
    assert np.abs(exact - ratio).max() > 1e-2


# --------------------------------------------------------------------------------------------
# Properties


@pytest.mark.parametrize("scale", SCALES)
def test_constants_preserved(scale):
    x = np.full((3, 19, 14), 0.37)
    np.testing.assert_allclose(imresize(x, scale), 0.37, rtol=0, atol=1e-14)


def test_linearity():
    rng = np.random.default_rng(1)
    x, y = rng.random((2, 21, 18)), rng.random((2, 21, 18))
    for scale in (1 / 3, 3):
        np.testing.assert_allclose(imresize(2.5 * x - 0.75 * y, scale),
                                   2.5 * imresize(x, scale) - 0.75 * imresize(y, scale), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 4, 0.75, 3])
def test_numpy_and_torch_agree_and_keep_kind_and_dtype(scale):
    x = np.random.default_rng(2).random((3, 20, 17)).astype(np.float32)
    out_np = imresize(x, scale)
    out_t = imresize(torch.from_numpy(x), scale)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32 and out_t.device.type == "cpu"
    np.testing.assert_array_equal(out_np, out_t.numpy())


@pytest.mark.parametrize("scale", SCALES)
def test_float32_close_to_float64(scale):
    x = np.random.default_rng(3).random((2, 33, 28))
    out64 = imresize(x, scale)
    out32 = imresize(x.astype(np.float32), scale)
    assert out64.dtype == np.float64 and out32.dtype == np.float32
    assert np.abs(out32.astype(np.float64) - out64).max() < 1e-5


def test_half_precision_is_computed_in_float32_and_cast_back():
    x = torch.rand(2, 16, 12, generator=torch.Generator().manual_seed(4))
    out = imresize(x.half(), 1 / 2)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, imresize(x.half().float(), 1 / 2).half(), rtol=0, atol=0)


def test_leading_shapes_and_bands_resized_independently():
    rng = np.random.default_rng(5)
    cube = rng.random((2, 3, 23, 16))  # (B, L, H, W)
    out4 = imresize(cube, 1 / 3)
    assert out4.shape == (2, 3, 8, 6)
    assert imresize(cube[0], 1 / 3).shape == (3, 8, 6)
    assert imresize(cube[0, 0], 1 / 3).shape == (8, 6)
    for b in range(2):
        for band in range(3):
            np.testing.assert_allclose(out4[b, band], imresize(cube[b, band], 1 / 3), rtol=0, atol=1e-14)


@pytest.mark.parametrize("scale, size", [(1 / 3, 171), (1 / 2, 256), (0.75, 384), (1 / 4, 128),
                                         (2, 1024), (3, 1536), (4, 2048)])
def test_output_sizes(scale, size):
    assert output_length(512, scale) == size


def test_output_size_of_a_real_call():
    out = imresize(np.zeros((512, 510), dtype=np.float32), 1 / 3)
    assert out.shape == (171, 170)  # 510 / 3 is 170 exactly in float64, as in MATLAB


def test_non_contiguous_and_big_endian_numpy_inputs():
    x = np.random.default_rng(6).random((15, 22))
    expected = imresize(np.ascontiguousarray(x.T), 1 / 2)
    np.testing.assert_array_equal(imresize(x.T, 1 / 2), expected)
    np.testing.assert_array_equal(imresize(x.T.astype(">f8"), 1 / 2), expected)


def test_read_only_numpy_input_is_not_modified_and_raises_no_warning():
    x = np.random.default_rng(10).random((12, 9))
    x.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = imresize(x, 2)
    np.testing.assert_array_equal(out, imresize(x.copy(), 2))


def test_public_name_is_the_same_function():
    assert public_imresize is imresize


def test_gradient_flows_through_torch_inputs():
    x = torch.rand(1, 2, 12, 10, dtype=torch.float64, requires_grad=True)
    imresize(x, 1 / 2).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


# --------------------------------------------------------------------------------------------
# Why not torch.nn.functional.interpolate


@pytest.mark.parametrize("scale", [1 / 2, 1 / 4])
def test_differs_from_torch_antialiased_bicubic_at_the_borders(scale):
    # torch's antialiased bicubic uses the same kernel, so the interior agrees, but it truncates and
    # renormalises the kernel at the borders instead of mirroring: the LR would differ there.
    x = torch.rand(1, 2, 64, 48, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ours = imresize(x, scale)
    theirs = F.interpolate(x, size=ours.shape[-2:], mode="bicubic", antialias=True, align_corners=False)
    assert (ours - theirs)[..., 2:-2, 2:-2].abs().max() < 1e-12
    assert (ours - theirs)[..., 0, :].abs().max() > 1e-2
    assert (ours - theirs)[..., :, 0].abs().max() > 1e-2


# --------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 4), dtype=np.uint16), "float32 or float64"),
    (torch.zeros(4, 4, dtype=torch.int64), "float32 or float64"),
    (np.zeros(5), "1 axes"),
    (np.zeros((1, 1, 1, 2, 2)), "5 axes"),
    (np.zeros((0, 4)), "empty"),
    (np.array([[0.0, np.nan], [1.0, 2.0]]), "1 NaN or Inf"),
    ([[0.0, 1.0], [1.0, 2.0]], "numpy array or torch tensor"),
])
def test_bad_arrays_raise_data_error(bad, match):
    with pytest.raises(DataError, match=match):
        imresize(bad, 2)


@pytest.mark.parametrize("scale", [0, -0.5, float("nan"), float("inf"), True, "2", None])
def test_bad_scales_raise_config_error(scale):
    with pytest.raises(ConfigError, match="scale"):
        imresize(np.zeros((4, 4)), scale)


def test_absurdly_small_scale_raises_config_error():
    with pytest.raises(ConfigError, match="too small"):
        imresize(np.zeros((4, 4)), 1e-9)


def test_cached_weights_cannot_be_corrupted_by_callers():
    x = np.random.default_rng(9).random((10, 10))
    before = imresize(x, 1 / 2)
    weights = resize_weights(10, 1 / 2)
    weights[:] = 0  # a copy: the cache is untouched
    np.testing.assert_array_equal(imresize(x, 1 / 2), before)


def test_check_finite_false_skips_the_host_read_and_the_default_still_refuses_nan(monkeypatch):
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    expected = imresize(x, 2)
    reads = {"n": 0}
    real_bool = torch.Tensor.__bool__

    def counted(self):
        reads["n"] += 1
        return real_bool(self)

    monkeypatch.setattr(torch.Tensor, "__bool__", counted)
    assert torch.equal(imresize(x, 2, check_finite=False), expected)  # the harness's call: no host read
    assert reads["n"] == 0
    imresize(x, 2)
    assert reads["n"] == 1  # the public call checks, with one read
    monkeypatch.undo()
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="1 NaN or Inf"):
        imresize(x, 2)
