"""Tests of hsisr_bench.metrics: scikit-image parity, hand-computed cases, properties, real CAVE data, bad input."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hsisr_bench import metrics
from hsisr_bench.data import imresize, load_scene
from hsisr_bench.errors import HsiBenchError
from hsisr_bench.metrics import (
    METRICS, Conventions, MetricError, cc, ergas, evaluate, mpsnr, psnr, rmse, sam, ssim,
)

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
SCALAR_KEYS = ("psnr", "ssim", "sam", "ergas", "rmse", "cc", "mpsnr")


def image_pair(bands: int = 4, height: int = 40, width: int = 48, noise: float = 0.03, seed: int = 0):
    """A smooth random cube in [0, 1] and a noisy copy of it (float64 numpy, (L, H, W))."""
    rng = np.random.default_rng(seed)
    hr = gaussian_filter(rng.random((bands, height, width)), sigma=(0, 2, 2))
    hr = (hr - hr.min()) / (hr.max() - hr.min())
    sr = np.clip(hr + noise * rng.standard_normal(hr.shape), 0, 1)
    return sr, hr


def authors_sam(pred: np.ndarray, gt: np.ndarray) -> float:
    """The SSRNet authors' SAM (MCNet family eval code) transcribed formula by formula, float32."""
    eps = 2.2204e-16
    pred, gt = pred.astype(np.float32).copy(), gt.astype(np.float32).copy()
    pred[pred == 0] = eps
    gt[gt == 0] = eps
    nom = sum(pred * gt)  # built-in sum over the band axis, as theirs
    denom1 = sum(pred * pred) ** 0.5
    denom2 = sum(gt * gt) ** 0.5
    with np.errstate(invalid="ignore"):
        angles = np.real(np.arccos(nom.astype(np.float32) / (denom1 * denom2 + eps)))
    angles[np.isnan(angles)] = 0
    return float(np.mean(angles.astype(np.float64))) * 180 / np.pi


# --------------------------------------------------------------------------------------------------
# scikit-image parity
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_ssim_gaussian_equals_skimage_paper_settings(seed):
    sr, hr = image_pair(seed=seed)
    expected = np.mean([
        structural_similarity(hr[b], sr[b], data_range=1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for b in range(hr.shape[0])
    ])
    assert ssim(sr, hr) == pytest.approx(expected, abs=1e-6)


def test_ssim_gaussian_equals_skimage_on_bright_flat_bands():
    # Bright, nearly flat bands are where float32 E[x^2] - E[x]^2 loses digits without the offset.
    rng = np.random.default_rng(3)
    hr = 0.9 + 1e-3 * rng.standard_normal((3, 32, 32))
    sr = hr + 1e-3 * rng.standard_normal(hr.shape)
    expected = np.mean([
        structural_similarity(hr[b], sr[b], data_range=1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for b in range(3)
    ])
    assert ssim(sr, hr) == pytest.approx(expected, abs=1e-6)


def test_ssim_uniform_equals_skimage_defaults():
    sr, hr = image_pair(seed=2)
    expected = np.mean([structural_similarity(hr[b], sr[b], data_range=1) for b in range(hr.shape[0])])
    assert ssim(sr, hr, window="uniform") == pytest.approx(expected, abs=1e-6)


def test_ssim_with_other_data_range_equals_skimage():
    sr, hr = image_pair(seed=4)
    sr, hr = sr * 255, hr * 255
    expected = np.mean([
        structural_similarity(hr[b], sr[b], data_range=255, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for b in range(hr.shape[0])
    ])
    assert ssim(sr, hr, data_range=255) == pytest.approx(expected, abs=1e-6)


def test_psnr_band_equals_mean_of_skimage_per_band_psnr():
    sr, hr = image_pair(seed=5)
    expected = np.mean([peak_signal_noise_ratio(hr[b], sr[b], data_range=1) for b in range(hr.shape[0])])
    assert psnr(sr, hr, reduction="band") == pytest.approx(expected, abs=1e-9)
    assert mpsnr(sr, hr) == psnr(sr, hr, reduction="band")


def test_psnr_cube_equals_skimage_on_the_whole_cube():
    sr, hr = image_pair(seed=6)
    assert psnr(sr, hr) == pytest.approx(peak_signal_noise_ratio(hr, sr, data_range=1), abs=1e-9)


def test_psnr_quantised_to_8_bits_equals_skimage_on_uint8():
    sr, hr = image_pair(seed=8)
    sr = sr * 1.05 - 0.02  # values outside [0, 1] are clipped before rounding
    sr8, hr8 = (np.floor(np.clip(c, 0, 1) * 255 + 0.5).astype(np.uint8) for c in (sr, hr))
    assert psnr(sr, hr, quantise=8) == pytest.approx(peak_signal_noise_ratio(hr8, sr8, data_range=255), abs=1e-9)
    expected_band = np.mean([peak_signal_noise_ratio(hr8[b], sr8[b], data_range=255) for b in range(4)])
    assert mpsnr(sr, hr, quantise=8) == pytest.approx(expected_band, abs=1e-9)
    assert psnr(sr, hr, quantise=8) != pytest.approx(psnr(sr, hr), abs=1e-3)  # rounding matters


def test_ssim_in_band_chunks_equals_ssim_in_one_call(monkeypatch):
    # 7 bands in chunks of 2 bands: several chunks and a short last one (stale channels ignored).
    sr, hr = image_pair(bands=7, seed=7)
    whole = metrics._ssim_per_band(*metrics._prepare(sr, hr))
    stats_whole = metrics._band_stats(*metrics._prepare(sr, hr), with_cc=True)
    monkeypatch.setattr(metrics, "_SSIM_CHUNK_BYTES", 2 * 4 * 40 * 48 * 4)
    monkeypatch.setattr(metrics, "_STATS_CHUNK_BYTES", 3 * 40 * 48 * 8)
    assert len(metrics._band_chunks(7, 4 * 40 * 48 * 4, metrics._SSIM_CHUNK_BYTES)) == 4
    chunked = metrics._ssim_per_band(*metrics._prepare(sr, hr))
    stats_chunked = metrics._band_stats(*metrics._prepare(sr, hr), with_cc=True)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-12)
    for name in ("mse", "hr_mean", "cc"):
        torch.testing.assert_close(getattr(stats_chunked, name), getattr(stats_whole, name), rtol=0, atol=1e-15)


# --------------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------------


def test_psnr_of_known_mse():
    hr = np.full((3, 8, 8), 0.5)
    assert psnr(hr + 0.1, hr) == pytest.approx(20.0, abs=1e-9)  # MSE 0.01
    assert psnr(hr * 255 + 25.5, hr * 255, data_range=255) == pytest.approx(20.0, abs=1e-9)
    # Band errors 0.1 and 0.01: band PSNRs 20 and 40 dB; one MSE (0.01 + 0.0001) / 2 over the cube.
    hr2 = np.full((2, 8, 8), 0.5)
    sr2 = hr2 + np.array([0.1, 0.01]).reshape(2, 1, 1)
    assert mpsnr(sr2, hr2) == pytest.approx(30.0, abs=1e-9)
    assert psnr(sr2, hr2) == pytest.approx(10 * math.log10(1 / 0.00505), abs=1e-9)
    assert rmse(sr2, hr2) == pytest.approx(math.sqrt(0.00505), abs=1e-12)


def test_identical_cubes():
    _, hr = image_pair()
    assert psnr(hr, hr) == math.inf
    assert mpsnr(hr, hr) == math.inf
    assert ssim(hr, hr) == pytest.approx(1.0, abs=1e-7)
    assert ssim(hr, hr, window="uniform") == pytest.approx(1.0, abs=1e-7)
    assert rmse(hr, hr) == 0.0
    assert ergas(hr, hr, scale=2) == 0.0
    assert cc(hr, hr) == pytest.approx(1.0, abs=1e-12)
    assert sam(hr, hr, zero="exclude") == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("zero", ["paper", "exclude", "as_zero"])
def test_sam_orthogonal_and_proportional_spectra(zero):
    hr = np.zeros((4, 1, 2))
    sr = np.zeros((4, 1, 2))
    hr[:2, 0, 0], sr[2:, 0, 0] = 0.5, 0.7  # pixel 0: disjoint supports, orthogonal
    hr[:, 0, 1] = [0.1, 0.2, 0.3, 0.4]
    sr[:, 0, 1] = [0.25, 0.5, 0.75, 1.0]  # pixel 1: 2.5 x hr, parallel
    orthogonal, parallel = sr[:, :, :1], sr[:, :, 1:]
    assert sam(orthogonal, hr[:, :, :1], zero=zero) == pytest.approx(90.0, abs=1e-5)
    assert sam(orthogonal, hr[:, :, :1], zero=zero, unit="rad") == pytest.approx(math.pi / 2, abs=1e-7)
    # The paper convention works in float32: a cosine one ulp below 1 is already 0.02 deg.
    tolerance = 0.03 if zero == "paper" else 1e-5
    assert sam(parallel, hr[:, :, 1:], zero=zero) == pytest.approx(0.0, abs=tolerance)
    assert sam(sr, hr, zero=zero) == pytest.approx(45.0, abs=tolerance / 2)


def test_sam_known_angle():
    # Spectra (1, 0) and (1, 1): 45 deg; (1, 0) and (1, sqrt(3)): 60 deg. Mean 52.5 deg.
    hr = np.array([[[1.0, 1.0]], [[1e-9, 1e-9]]])
    sr = np.array([[[1.0, 1.0]], [[1.0, math.sqrt(3)]]])
    assert sam(sr, hr, zero="exclude") == pytest.approx(52.5, abs=1e-5)
    assert sam(sr, hr) == pytest.approx(52.5, abs=1e-4)


def crafted_zero_cube():
    """4 bands, 3x3 pixels: (0, 0) all-zero in both cubes, (0, 1) all-zero in sr only."""
    rng = np.random.default_rng(11)
    hr = rng.uniform(0.1, 1.0, (4, 3, 3))
    sr = rng.uniform(0.1, 1.0, (4, 3, 3))
    hr[:, 0, 0] = 0
    sr[:, 0, 0] = 0
    sr[:, 0, 1] = 0
    return sr, hr


def exact_angles(sr, hr):
    dot = (sr * hr).sum(axis=0)
    norms = np.linalg.norm(sr, axis=0) * np.linalg.norm(hr, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.degrees(np.arccos(np.clip(dot / norms, -1, 1)))


def test_sam_zero_pixel_policies():
    sr, hr = crafted_zero_cube()
    angles = exact_angles(sr, hr)
    others = np.ones((3, 3), dtype=bool)
    others[0, 0] = others[0, 1] = False

    # paper: the all-zero pixel scores 90 deg and is counted; the one-sided zero pixel gets
    # cos = sum(hr) / (sqrt(L) |hr| + 1) (the + eps of the authors' denominator, divided by eps).
    one_sided = math.degrees(math.acos(hr[:, 0, 1].sum() / (2 * np.linalg.norm(hr[:, 0, 1]) + 1)))
    expected_paper = (90.0 + one_sided + angles[others].sum()) / 9
    assert sam(sr, hr) == pytest.approx(expected_paper, abs=1e-3)
    assert sam(sr, hr) == pytest.approx(authors_sam(sr, hr), abs=1e-5)
    assert sam(sr[:, :1, :1], hr[:, :1, :1]) == pytest.approx(90.0, abs=1e-5)  # the all-zero pixel alone

    # exclude: both zero pixels skipped; as_zero: both counted as 0.
    assert sam(sr, hr, zero="exclude") == pytest.approx(angles[others].mean(), abs=1e-9)
    assert sam(sr, hr, zero="as_zero") == pytest.approx(angles[others].sum() / 9, abs=1e-9)
    assert math.isnan(sam(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)), zero="exclude"))


def test_sam_paper_equals_authors_code_on_cube_with_zeros():
    sr, hr = image_pair(bands=31, height=24, width=24, seed=12)
    sr = np.where(sr < 0.15, 0.0, sr)  # exact zeros in some bands and pixels
    hr = np.where(hr < 0.1, 0.0, hr)
    hr[:, 0, :3] = 0  # whole-spectrum zeros in HR
    sr[:, 0, :2] = 0  # ... and in both at two pixels
    assert sam(sr, hr) == pytest.approx(authors_sam(sr, hr), abs=1e-5)
    assert sam(sr, hr, unit="rad") == pytest.approx(math.radians(authors_sam(sr, hr)), abs=1e-7)


def test_ergas_of_constant_error_cube():
    # Reference bands constant at 0.25 and 0.5, error 0.05 everywhere (MSE 0.0025 per band):
    # ERGAS = 100/4 * sqrt((0.0025/0.0625 + 0.0025/0.25) / 2) = 25 * sqrt(0.025).
    hr = np.stack([np.full((6, 6), 0.25), np.full((6, 6), 0.5)])
    assert ergas(hr + 0.05, hr, scale=4) == pytest.approx(25 * math.sqrt(0.025), rel=1e-12)
    assert ergas(hr + 0.05, hr, scale=2) == pytest.approx(50 * math.sqrt(0.025), rel=1e-12)


def test_cc_of_linear_transforms():
    sr, hr = image_pair(seed=13)
    assert cc(2.0 * hr + 0.1, hr) == pytest.approx(1.0, abs=1e-12)
    assert cc(0.2 - 0.5 * hr, hr) == pytest.approx(-1.0, abs=1e-12)
    expected = np.mean([np.corrcoef(sr[b].ravel(), hr[b].ravel())[0, 1] for b in range(hr.shape[0])])
    assert cc(sr, hr) == pytest.approx(expected, abs=1e-12)
    # A constant band has no correlation: it is skipped, not counted as 0.
    flat = hr.copy()
    flat[0] = 0.3
    assert cc(2.0 * flat, flat) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------


def scalar_part(result: dict) -> dict:
    return {key: result[key] for key in SCALAR_KEYS}


def test_numpy_and_torch_inputs_agree():
    sr, hr = image_pair(seed=14)
    from_numpy = evaluate(sr, hr, scale=3)
    from_torch = evaluate(torch.from_numpy(sr), torch.from_numpy(hr), scale=3)
    mixed = evaluate(sr, torch.from_numpy(hr), scale=3)
    assert from_torch == from_numpy
    assert mixed == from_numpy


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inputs_are_not_modified(dtype):
    sr, hr = image_pair(seed=23)
    sr, hr = sr.astype(dtype), hr.astype(dtype)
    sr[:, 0, 0] = 0  # SAM's paper convention replaces zeros: in its own copy
    sr_copy, hr_copy = sr.copy(), hr.copy()
    for conventions in ({}, {"sam_zero": "exclude", "ssim_window": "uniform"}):
        evaluate(sr, hr, scale=2, conventions=conventions)
        evaluate(torch.from_numpy(sr), torch.from_numpy(hr), scale=2, conventions=conventions)
    for fn in (psnr, mpsnr, ssim, sam, rmse, cc):
        fn(sr, hr)
    np.testing.assert_array_equal(sr, sr_copy)
    np.testing.assert_array_equal(hr, hr_copy)


def test_float32_and_float64_agree():
    sr, hr = image_pair(seed=15)
    r64 = evaluate(sr, hr, scale=4)
    r32 = evaluate(sr.astype(np.float32), hr.astype(np.float32), scale=4)
    for key in SCALAR_KEYS:
        assert r32[key] == pytest.approx(r64[key], rel=1e-5), key
    for key in ("psnr_per_band", "ssim_per_band"):
        np.testing.assert_allclose(r32[key], r64[key], rtol=1e-5)


def test_half_and_integer_inputs():
    sr, hr = image_pair(seed=16)
    sr8, hr8 = np.round(sr * 255).astype(np.uint8), np.round(hr * 255).astype(np.uint8)
    assert psnr(sr8, hr8, data_range=255) == pytest.approx(peak_signal_noise_ratio(hr8, sr8, data_range=255))
    half = torch.from_numpy(sr).half()
    assert psnr(half, hr) == pytest.approx(psnr(half.float().numpy(), hr), abs=1e-12)


@pytest.mark.parametrize("name, fn", [
    ("psnr", psnr), ("mpsnr", mpsnr), ("rmse", rmse), ("cc", cc), ("ssim", ssim),
    ("ssim uniform", lambda a, b: ssim(a, b, window="uniform")),
    ("sam paper", sam), ("sam exclude", lambda a, b: sam(a, b, zero="exclude")),
    ("sam as_zero", lambda a, b: sam(a, b, zero="as_zero")),
])
def test_symmetric_metrics(name, fn):
    sr, hr = image_pair(seed=17)
    sr[:, :2, :2] = 0  # include zero pixels for SAM's zero policies
    assert fn(sr, hr) == pytest.approx(fn(hr, sr), abs=1e-10)


def test_ergas_is_not_symmetric_but_uses_the_reference_means():
    sr, hr = image_pair(seed=18)
    assert ergas(sr, hr, scale=2) != pytest.approx(ergas(hr, sr, scale=2), rel=1e-6)


def test_ssim_is_at_most_one_and_drops_with_noise():
    sr_low, hr = image_pair(noise=0.01, seed=19)
    sr_high, _ = image_pair(noise=0.1, seed=19)
    assert 1.0 >= ssim(sr_low, hr) > ssim(sr_high, hr) > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    sr, hr = image_pair(seed=20)
    cpu = evaluate(torch.from_numpy(sr), torch.from_numpy(hr), scale=2)
    gpu = evaluate(torch.from_numpy(sr).cuda(), torch.from_numpy(hr).cuda(), scale=2)
    for key in SCALAR_KEYS:
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-6, abs=1e-6), key


# --------------------------------------------------------------------------------------------------
# evaluate(), Conventions, METRICS
# --------------------------------------------------------------------------------------------------


def test_evaluate_matches_the_single_metrics_and_is_json_ready():
    sr, hr = image_pair(bands=5, seed=21)
    result = evaluate(sr, hr, scale=3)
    assert result["psnr"] == psnr(sr, hr)
    assert result["mpsnr"] == mpsnr(sr, hr)
    assert result["ssim"] == pytest.approx(ssim(sr, hr), abs=1e-15)
    assert result["sam"] == sam(sr, hr)
    assert result["ergas"] == ergas(sr, hr, scale=3)
    assert result["rmse"] == rmse(sr, hr)
    assert result["cc"] == cc(sr, hr)
    assert len(result["psnr_per_band"]) == len(result["ssim_per_band"]) == 5
    assert np.mean(result["psnr_per_band"]) == pytest.approx(result["mpsnr"], abs=1e-12)
    assert np.mean(result["ssim_per_band"]) == pytest.approx(result["ssim"], abs=1e-12)
    assert result["conventions"] == Conventions().to_dict()
    assert all(isinstance(result[key], float) for key in SCALAR_KEYS)
    json.dumps(result, allow_nan=False)


def test_evaluate_with_other_conventions():
    sr, hr = image_pair(seed=22)
    sr[:, 0, 0] = 0
    options = {"psnr_reduction": "band", "psnr_quantise": 8, "ssim_window": "uniform", "sam_zero": "exclude",
               "sam_unit": "rad"}
    result = evaluate(sr, hr, scale=2, conventions=options)
    assert result["psnr"] == psnr(sr, hr, reduction="band", quantise=8)
    assert result["mpsnr"] == mpsnr(sr, hr, quantise=8)
    assert result["rmse"] == rmse(sr, hr)  # quantising is PSNR's convention only
    assert result["ssim"] == pytest.approx(ssim(sr, hr, window="uniform"), abs=1e-15)
    assert result["sam"] == sam(sr, hr, zero="exclude", unit="rad")
    assert result["conventions"] == Conventions(**options).to_dict()
    assert evaluate(sr, hr, scale=2, conventions=Conventions(**options)) == result


def test_conventions_defaults_round_trip_and_freeze():
    conventions = Conventions()
    assert conventions.to_dict() == {"psnr_reduction": "cube", "psnr_quantise": None, "data_range": 1.0,
                                     "ssim_window": "gaussian", "sam_zero": "paper", "sam_unit": "deg"}
    assert Conventions.from_value(conventions.to_dict()) == conventions
    assert Conventions.from_value(None) == conventions
    with pytest.raises(dataclasses.FrozenInstanceError):
        conventions.sam_unit = "rad"  # type: ignore[misc]
    assert set(conventions.describe()) == set(SCALAR_KEYS)


def test_metrics_table_describes_every_scalar():
    assert set(METRICS) == set(SCALAR_KEYS)
    for key, info in METRICS.items():
        assert info.name == key and info.title and info.description and info.convention
    assert [key for key, info in METRICS.items() if info.higher_is_better] == ["psnr", "mpsnr", "ssim", "cc"]
    assert METRICS["psnr"].unit == "dB" and METRICS["sam"].unit == "deg"


# --------------------------------------------------------------------------------------------------
# Real data: a CAVE scene, bicubic x4 round trip
# --------------------------------------------------------------------------------------------------


def load_cave_scene(name: str) -> np.ndarray:
    folder = DATA_ROOT / "CAVE" / name
    if not folder.is_dir():
        pytest.skip(f"real CAVE data not found at {folder}")
    return load_scene(folder, "cave").cube


def test_bicubic_round_trip_on_real_cave_scene():
    hr = load_cave_scene("balloons_ms")
    assert hr.shape == (31, 512, 512)
    sr = np.clip(imresize(imresize(hr, 1 / 4), 4), 0, 1)
    result = evaluate(sr, hr, scale=4)
    assert 30 < result["psnr"] < 45
    assert 0.8 < result["ssim"] < 1
    assert 1 < result["sam"] < 10
    # The same pair through scikit-image's SSIM on a few bands (the paper settings).
    for band in (0, 15, 30):
        expected = structural_similarity(hr[band].astype(np.float64), sr[band].astype(np.float64), data_range=1,
                                         gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert result["ssim_per_band"][band] == pytest.approx(expected, abs=1e-6)


# --------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------


def assert_metric_error(match: str, fn, *args, **kwargs) -> MetricError:
    with pytest.raises(MetricError, match=match) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, HsiBenchError) and isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize("fn", [psnr, ssim, sam, rmse, cc, lambda a, b: ergas(a, b, scale=2),
                                lambda a, b: evaluate(a, b, scale=2)])
def test_shape_mismatch(fn):
    error = assert_metric_error("same shape", fn, np.zeros((3, 16, 16)), np.zeros((3, 16, 17)))
    assert "(3, 16, 16)" in str(error) and "(3, 16, 17)" in str(error)


@pytest.mark.parametrize("shape", [(16, 16), (1, 3, 16, 16), (3,)])
def test_wrong_number_of_dimensions(shape):
    error = assert_metric_error(r"\(L, H, W\)", psnr, np.zeros(shape), np.zeros(shape))
    assert str(shape) in str(error)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("which", ["sr", "hr"])
def test_nan_and_inf(bad, which):
    sr, hr = image_pair()
    (sr if which == "sr" else hr)[1, 2, 3] = bad
    error = assert_metric_error(f"{which} holds 1 NaN or Inf", evaluate, sr, hr, scale=2)
    assert "finite" in str(error)


def test_huge_finite_values_are_not_mistaken_for_inf():
    hr = np.full((2, 16, 16), 1e307)
    assert rmse(hr, hr) == 0.0  # the cube's sum overflows, the values are finite


def test_images_smaller_than_the_ssim_window():
    assert_metric_error("at least 11x11.*got 10x12", ssim, np.zeros((2, 10, 12)), np.zeros((2, 10, 12)))
    assert_metric_error("at least 7x7.*got 6x6", ssim, np.zeros((2, 6, 6)), np.zeros((2, 6, 6)), window="uniform")
    assert_metric_error("at least 11x11", evaluate, np.zeros((2, 8, 8)), np.zeros((2, 8, 8)), scale=2)
    assert ssim(np.zeros((1, 11, 11)), np.zeros((1, 11, 11))) == pytest.approx(1.0)  # exactly one window


def test_scale_is_required_for_ergas():
    sr, hr = image_pair()
    assert_metric_error("scale", ergas, sr, hr)
    assert_metric_error("scale", evaluate, sr, hr)
    assert_metric_error("positive", ergas, sr, hr, scale=0)


def test_unknown_conventions_and_options():
    sr, hr = image_pair()
    assert_metric_error("reduction='bands'.*Did you mean 'band'", psnr, sr, hr, reduction="bands")
    assert_metric_error("window='gauss'", ssim, sr, hr, window="gauss")
    assert_metric_error("zero='skip'", sam, sr, hr, zero="skip")
    assert_metric_error("unit='degrees'", sam, sr, hr, unit="degrees")
    assert_metric_error("Unknown metric convention 'sam_units'.*sam_unit", evaluate, sr, hr, scale=2,
                        conventions={"sam_units": "rad"})
    assert_metric_error("data_range", Conventions, data_range=0)
    assert_metric_error("data_range", psnr, sr, hr, data_range=-1)
    assert_metric_error("win_size", ssim, sr, hr, win_size=8)
    assert_metric_error("bit depth", psnr, sr, hr, quantise=0)
    assert_metric_error("bit depth", Conventions, psnr_quantise=8.0)


def test_unsupported_input_types():
    assert_metric_error("numpy array or a torch tensor", psnr, [[[0.0]]], np.zeros((1, 1, 1)))
    assert_metric_error("dtype", psnr, np.zeros((1, 2, 2), dtype=bool), np.zeros((1, 2, 2)))
    assert_metric_error("empty", psnr, np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))
