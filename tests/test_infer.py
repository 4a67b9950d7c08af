"""Tiled inference (``hsisr_bench.engine.infer``): stitching, margins, memory-driven tiles, inputs, mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from hsisr_bench.data.imresize import imresize
from hsisr_bench.engine.infer import measure_receptive_field, plan_axis, probe_model, super_resolve
from hsisr_bench.errors import ConfigError, DataError, MethodError
from hsisr_bench.registry import MethodInfo, OutputCrop, create_method, get_method_info

BANDS = 10


def _lr(shape, seed=0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _build(name, scale, **options) -> nn.Module:
    torch.manual_seed(0)
    return create_method(name, bands=BANDS, scale=scale, **options)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


# ------------------------------------------------------------------------------------------ geometry


def _axis_cases():
    for n_in in (1, 5, 13, 24):
        for factor, crop in ((1, 0), (1, 6), (2, 0), (3, 0), (4, 2)):
            for radius, core in ((0, 1), (2, 3), (6, 2), (9, 100)):
                # Skip shapes with no output, and crops larger than the field (impossible for a conv net).
                if factor * n_in - 2 * crop > 0 and radius * factor >= crop:
                    yield n_in, factor, crop, radius, core


@pytest.mark.parametrize("n_in,factor,crop,radius,core", list(_axis_cases()))
def test_plan_axis_partitions_the_output_and_covers_each_field(n_in, factor, crop, radius, core):
    n_out = factor * n_in - 2 * crop
    tiles = plan_axis(n_in, factor=factor, crop=crop, radius=radius, core=core)
    assert tiles[0].out_start == 0 and tiles[-1].out_stop == n_out
    for before, after in zip(tiles, tiles[1:]):
        assert before.out_stop == after.out_start  # contiguous, no overlap: every pixel pasted once
    for t in tiles:
        assert 0 <= t.in_start < t.in_stop <= n_in
        assert t.local_start == t.out_start - factor * t.in_start >= 0
        assert t.local_start + (t.out_stop - t.out_start) <= factor * (t.in_stop - t.in_start) - 2 * crop
        for o in (t.out_start, t.out_stop - 1):  # each core pixel's field lies in the tile or off the image
            centre = (o + crop) // factor
            assert t.in_start <= max(0, centre - radius) and min(n_in, centre + radius + 1) <= t.in_stop


# ------------------------------------------------------------------------------------------ equality


@pytest.mark.parametrize(
    "name,scale,options,lr_shape,tile",
    [
        ("gdrrn", 3, {"recursions": 1, "features": 8}, (2, BANDS, 13, 11), 2),  # upsampled, odd sizes
        ("edsr", 2, {"n_resblocks": 1, "n_feats": 8}, (1, BANDS, 17, 15), 3),  # LR input
        ("edsr", 3, {"n_resblocks": 1, "n_feats": 8}, (1, BANDS, 14, 19), 2),
        ("ssrnet", 3, {"n_modules": 1, "n_feats": 4}, (1, BANDS, 26, 23), 4),  # 3D, spectral axis untiled
        ("fcnn3d", 2, {}, (1, BANDS, 15, 13), 2),  # cropping: output smaller than the input
        ("fcnn3d", 3, {"padding": "reflect"}, (1, BANDS, 9, 10), 3),
        ("bicubic", 4, {}, (2, BANDS, 11, 9), 2),
    ],
)
def test_tiled_equals_untiled(name, scale, options, lr_shape, tile):
    model = _build(name, scale, **options)
    lr = _lr(lr_shape)
    mean = torch.linspace(0.3, 0.5, BANDS)
    untiled = super_resolve(model, lr, scale=scale, band_mean=mean, progress=False)
    tiled = super_resolve(model, lr, scale=scale, band_mean=mean, tile=tile, progress=False)
    assert _max_diff(tiled, untiled) <= 1e-5
    # The cases are sized so that some tiles really are partial (core + margins smaller than the image).
    upsampled = get_method_info(name).input == "upsampled"
    crop = getattr(model, "output_crop", OutputCrop()).pixels
    radius = probe_model(model, bands=BANDS, scale=scale, input_kind="upsampled" if upsampled else "lr",
                         crop=crop).radius
    lr_radius = -(-radius // scale) if upsampled else radius
    assert tile + 2 * lr_radius < max(lr_shape[-2:]), "test case too small to have partial tiles"


@pytest.mark.parametrize(
    "name,scale,options",
    [
        ("gdrrn", 2, {"recursions": 2, "features": 8}),
        ("edsr", 2, {"n_resblocks": 2, "n_feats": 8}),
        ("edsr", 3, {"n_resblocks": 2, "n_feats": 8}),
        ("edsr", 4, {"n_resblocks": 2, "n_feats": 8}),
        ("fcnn3d", 2, {}),
        ("fcnn3d", 2, {"padding": "reflect"}),
        ("bicubic", 3, {}),
    ],
)
def test_declared_receptive_field_covers_the_probe(name, scale, options):
    model = _build(name, scale, **options).eval()
    factor = 1 if get_method_info(name).input == "upsampled" else scale
    probed = measure_receptive_field(model, bands=BANDS, factor=factor, crop=model.output_crop.pixels)
    assert probed <= model.receptive_field <= probed + 1


def test_probe_sees_functional_convolutions():
    """SSRNet's fast path calls F.conv* directly (no module hooks): the probe still sees its field."""
    model = _build("ssrnet", 2, n_modules=1, n_feats=4).eval()
    # head 1 + one SSRM (7 blocks with one spatial 3x3 each) + transposed conv and tail, about 1 each.
    assert 8 <= measure_receptive_field(model, bands=BANDS, factor=2, crop=0) <= 11


def test_tiles_smaller_than_the_margin_still_stitch():
    model = _build("gdrrn", 2, recursions=2, features=8)  # radius 6 HR pixels, far larger than 2-pixel cores
    lr = _lr((1, BANDS, 16, 14))
    untiled = super_resolve(model, lr, scale=2, progress=False)
    assert _max_diff(super_resolve(model, lr, scale=2, tile=1, progress=False), untiled) <= 1e-5


def test_a_margin_below_the_receptive_field_is_detected():
    """The equality tests can fail: declare a receptive field too small and the stitching breaks."""
    model = _build("edsr", 2, n_resblocks=2, n_feats=8)
    lr = _lr((1, BANDS, 20, 20))
    untiled = super_resolve(model, lr, scale=2, progress=False)
    assert measure_receptive_field(model, bands=BANDS, factor=2, crop=0) == 8  # 7 LR convs + the HR tail
    model.receptive_field = 2  # a declared attribute overrides the probe
    assert _max_diff(super_resolve(model, lr, scale=2, tile=4, progress=False), untiled) > 1e-4


# ------------------------------------------------------------------------------------------ memory


class _Recorder(nn.Module):
    """Nearest-neighbour x2 upsampling times 2 that records the shape of every input it gets."""

    receptive_field = 0
    output_crop = OutputCrop()

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return 2 * x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # (B, L, 2h, 2w)


RECORDER_INFO = MethodInfo(name="recorder", factory=_Recorder, title="Recorder", input="lr")


def test_max_memory_chooses_tiles_within_the_budget():
    model = _build("edsr", 2, n_resblocks=1, n_feats=8)
    lr = _lr((2, BANDS, 40, 36))
    untiled = super_resolve(model, lr, scale=2, progress=False)
    probe = probe_model(model, bands=BANDS, scale=2, input_kind="lr", crop=0)
    budget = 2 * probe.bytes_per_pixel * 24 * 24  # batch 2, room for a 24 x 24 LR tile with its margins
    shapes = []
    hook = model.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    tiled = super_resolve(model, lr, scale=2, max_memory=budget, progress=False)
    hook.remove()
    assert _max_diff(tiled, untiled) <= 1e-5
    assert len(shapes) > 1, "the budget should force several tiles"
    assert all(2 * probe.bytes_per_pixel * h * w <= budget for _, _, h, w in shapes)
    with pytest.raises(ConfigError, match="max_memory=.* is too small"):
        super_resolve(model, lr, scale=2, max_memory=1000, progress=False)


def test_bytes_per_pixel_grows_with_the_scale_and_the_width():
    small = probe_model(_build("edsr", 2, n_resblocks=1, n_feats=8), bands=BANDS, scale=2, input_kind="lr")
    wide = probe_model(_build("edsr", 2, n_resblocks=1, n_feats=32), bands=BANDS, scale=2, input_kind="lr")
    larger = probe_model(_build("edsr", 4, n_resblocks=1, n_feats=8), bands=BANDS, scale=4, input_kind="lr")
    assert wide.bytes_per_pixel > 2 * small.bytes_per_pixel
    assert larger.bytes_per_pixel > 2 * small.bytes_per_pixel
    # At least the HR output in float32 (4 bytes x 4 HR pixels per LR pixel x bands) is counted.
    assert small.bytes_per_pixel > 4 * 4 * BANDS


# ------------------------------------------------------------------------------------------ inputs and mean


def test_numpy_input_and_single_cube():
    model = _build("edsr", 2, n_resblocks=1, n_feats=8)
    lr = _lr((BANDS, 9, 8))
    from_torch = super_resolve(model, lr, scale=2, progress=False)
    from_numpy = super_resolve(model, lr.numpy().astype(np.float64), scale=2, band_mean=np.full(BANDS, 0.4),
                               tile=3, progress=False)
    assert from_torch.shape == from_numpy.shape == (1, BANDS, 18, 16)
    assert from_numpy.dtype == torch.float32 and from_numpy.device.type == "cpu"
    with torch.no_grad():
        expected = model(lr[None] - 0.4) + 0.4
    assert _max_diff(from_numpy, expected) <= 1e-5


def test_band_mean_is_subtracted_before_and_added_after():
    model = _Recorder()
    lr = _lr((1, BANDS, 6, 5))
    mean = torch.arange(BANDS, dtype=torch.float32)  # large values: the result is not clipped
    out = super_resolve(model, lr, scale=2, info=RECORDER_INFO, band_mean=mean, progress=False)
    nearest = lr.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert _max_diff(out, 2 * (nearest - mean.view(1, -1, 1, 1)) + mean.view(1, -1, 1, 1)) <= 1e-6
    assert out.max().item() > 1  # not clipped: the evaluator clips
    with pytest.raises(DataError, match="band_mean has 3 values, the LR cube has 10 bands"):
        super_resolve(model, lr, scale=2, info=RECORDER_INFO, band_mean=[0.1, 0.2, 0.3])


def test_upsampled_methods_get_the_whole_cube_upsampled_once():
    torch.manual_seed(0)
    model = create_method("gdrrn", bands=BANDS, scale=3, recursions=1, features=8)
    with torch.no_grad():
        model.conv_out.weight.zero_()  # GDRRN becomes the identity on its (upsampled) input
    lr = _lr((1, BANDS, 10, 7))
    out = super_resolve(model, lr, scale=3, band_mean=torch.full((BANDS,), 0.5), tile=2, progress=False)
    # imresize of tiles would differ at the tile borders; the upsampled whole cube does not.
    assert _max_diff(out, imresize(lr, 3)) <= 1e-6


def test_cropping_method_through_super_resolve():
    model = _build("fcnn3d", 2)
    lr = _lr((1, BANDS, 12, 11))
    mean = torch.linspace(0, 1, BANDS)
    out = super_resolve(model, lr, scale=2, band_mean=mean, tile=2, progress=False)
    with torch.no_grad():
        direct = model(imresize(lr, 2) - mean.view(1, -1, 1, 1)) + mean[4:-4].view(1, -1, 1, 1)
    assert out.shape == (1, BANDS - 8, 24 - 12, 22 - 12)
    assert _max_diff(out, direct) <= 1e-5


def test_model_mode_is_restored_and_info_is_found():
    model = _build("gdrrn", 2, recursions=1, features=8).train()
    out = super_resolve(model, _lr((BANDS, 5, 5)), scale=2, progress=False)  # info from the model's module
    assert model.training and out.shape == (1, BANDS, 10, 10)
    with pytest.raises(MethodError, match="cannot tell which method"):
        super_resolve(_Recorder(), _lr((BANDS, 5, 5)), scale=2)


def test_wrong_scale_is_reported():
    model = _build("edsr", 2, n_resblocks=1, n_feats=8)
    with pytest.raises(MethodError, match="expected .* check scale"):
        super_resolve(model, _lr((BANDS, 6, 6)), scale=3, progress=False)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"lr": np.zeros((6, 6))}, DataError, r"\(L, h, w\) or \(B, L, h, w\)"),
        ({"lr": np.zeros((BANDS, 6, 6), dtype=np.uint16)}, DataError, "normalise integer data"),
        ({"lr": [1, 2]}, DataError, "numpy array or torch tensor"),
        ({"tile": 0}, ConfigError, "tile must be a positive integer"),
        ({"max_memory": -1}, ConfigError, "max_memory must be a positive"),
        ({"amp": "bf61"}, ConfigError, "Did you mean 'bf16'"),
        ({"scale": 2.5}, ConfigError, "scale must be a positive integer"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"lr": _lr((BANDS, 6, 6)), "scale": 2, "info": RECORDER_INFO, **kwargs}
    with pytest.raises(error, match=match):
        super_resolve(_Recorder(), **arguments)


def test_progress_bar_can_be_forced(capsys):
    super_resolve(_Recorder(), _lr((BANDS, 6, 6)), scale=2, info=RECORDER_INFO, tile=2, progress=True)
    assert "tiles" in capsys.readouterr().err


def test_autocast_bf16_on_cpu_is_close():
    model = _build("edsr", 2, n_resblocks=1, n_feats=8)
    lr = _lr((1, BANDS, 8, 8))
    full = super_resolve(model, lr, scale=2, progress=False)
    half = super_resolve(model, lr, scale=2, amp="bf16", progress=False)
    assert half.dtype == torch.float32
    assert 0 < _max_diff(half, full) < 0.05


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    model = _build("edsr", 2, n_resblocks=1, n_feats=8)
    lr = _lr((1, BANDS, 16, 12))
    cpu = super_resolve(model, lr, scale=2, progress=False)
    gpu = super_resolve(model, lr, scale=2, tile=4, device="cuda", progress=False)
    assert gpu.device.type == "cpu" and _max_diff(gpu, cpu) <= 1e-4
