"""Per-baseline specifics (PROTOCOL.md section 6) beyond the registry-wide contract."""

from __future__ import annotations

import math

import pytest
import torch

from hsisr_bench.baselines.edsr import ResBlock
from hsisr_bench.baselines.fcnn3d import FCNN3D
from hsisr_bench.data.imresize import imresize
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import OutputCrop, count_parameters, create_method, get_method_info, resolve_options

# ------------------------------------------------------------------------------------------ Bicubic


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_is_matlab_imresize(scale):
    x = torch.rand(2, 5, 7, 6, generator=torch.Generator().manual_seed(scale))
    model = create_method("bicubic", bands=5, scale=scale)
    assert torch.equal(model(x), imresize(x, scale))
    assert count_parameters(model) == 0
    info = get_method_info("bicubic")
    assert (info.trainable, info.input, info.title) == (False, "lr", "Bicubic")


# ------------------------------------------------------------------------------------------ GDRRN


def test_gdrrn_init_std_and_no_biases():
    torch.manual_seed(0)
    model = create_method("gdrrn", bands=31, scale=2)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4  # input conv, the shared block's two grouped convs, output conv
    for conv in convs:
        assert conv.bias is None
        expected = math.sqrt(2.0 / (3 * 3 * conv.out_channels))
        assert conv.weight.std().item() == pytest.approx(expected, rel=0.03)
        assert abs(conv.weight.mean().item()) < 0.05 * expected
    assert [c.groups for c in convs] == [1, 2, 2, 1]
    assert count_parameters(model) == 218_880


def test_gdrrn_groups_and_recursions_options():
    # groups=4: each block conv has 128*32*9 weights instead of 128*64*9.
    assert count_parameters(create_method("gdrrn", bands=31, scale=2, groups=4)) == 2 * 35_712 + 2 * 128 * 32 * 9
    assert count_parameters(create_method("gdrrn", bands=31, scale=2, groups=1)) == 2 * 35_712 + 2 * 128 * 128 * 9
    # The recursion shares one block: more recursions, same parameters, different output.
    torch.manual_seed(0)
    three = create_method("gdrrn", bands=4, scale=2, recursions=3, features=8)
    torch.manual_seed(0)
    one = create_method("gdrrn", bands=4, scale=2, recursions=1, features=8)
    assert count_parameters(one) == count_parameters(three)
    x = torch.rand(1, 4, 10, 10)
    assert not torch.allclose(one(x), three(x))
    with pytest.raises(MethodError, match="groups=3 must divide features=128.*1, 2, 4, 8, 16, 32, 64, 128"):
        create_method("gdrrn", bands=31, scale=2, groups=3)
    with pytest.raises(MethodError, match="recursions must be a positive integer"):
        create_method("gdrrn", bands=31, scale=2, recursions=0)


def test_gdrrn_global_residual_and_leading_relu():
    torch.manual_seed(0)
    model = create_method("gdrrn", bands=5, scale=3, features=8)
    x = torch.randn(1, 5, 9, 9)
    with torch.no_grad():
        model.conv_out.weight.zero_()
        assert torch.equal(model(x), x)  # y = conv_out(...) + x
        torch.nn.init.normal_(model.conv_out.weight)
        # The first op is a ReLU: inputs that differ only in their negative part give the same residual.
        residual = model(x) - x
        clipped = x.clamp(min=0)
        assert torch.allclose(model(clipped) - clipped, residual, atol=1e-6)


def test_gdrrn_metadata():
    info = get_method_info("gdrrn")
    assert (info.input, info.loss, info.title) == ("upsampled", "gdrrn", "GDRRN")
    assert dict(info.optimizer) == {"name": "adam", "lr": 1e-4, "weight_decay": 1e-4}


# ------------------------------------------------------------------------------------------ 3D-FCNN


def _identity_fcnn3d(padding: str) -> FCNN3D:
    """3D-FCNN whose weights pass the centre tap of every kernel through channel 0: y = centre of x."""
    model = create_method("fcnn3d", bands=31, scale=2, padding=padding)
    with torch.no_grad():
        for conv in (model.conv1, model.conv2, model.conv3, model.conv4):
            conv.weight.zero_()
            conv.bias.zero_()
            kd, kh, kw = conv.kernel_size
            conv.weight[0, 0, kd // 2, kh // 2, kw // 2] = 1.0
    return model


def test_fcnn3d_alignment_with_a_delta_impulse():
    model = _identity_fcnn3d("valid")
    x = torch.zeros(1, 31, 30, 28)
    x[0, 10, 15, 9] = 1.0
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 23, 18, 16)
    # Output band j lies on input band j + 4, output pixel (i, j) on (i + 6, j + 6).
    assert torch.nonzero(y).tolist() == [[0, 10 - 4, 15 - 6, 9 - 6]]
    assert torch.equal(y, OutputCrop(bands=4, pixels=6).apply(x))


def test_fcnn3d_impulse_response_is_centred_on_the_aligned_voxel():
    # With positive weights and no bias every ReLU passes: the response of an impulse fills
    # exactly the receptive field, +-4 bands and +-6 pixels around the aligned voxel.
    torch.manual_seed(0)
    model = create_method("fcnn3d", bands=31, scale=2)
    with torch.no_grad():
        for conv in (model.conv1, model.conv2, model.conv3, model.conv4):
            conv.weight.abs_()
            conv.bias.zero_()
        x = torch.zeros(1, 31, 40, 40)
        x[0, 15, 20, 21] = 1.0
        support = torch.nonzero(model(x)[0])
    lo, hi = support.min(dim=0).values.tolist(), support.max(dim=0).values.tolist()
    centre = [(a + b) / 2 for a, b in zip(lo, hi)]
    assert centre == [15 - 4, 20 - 6, 21 - 6]
    assert [b - a for a, b in zip(lo, hi)] == [8, 12, 12]


def test_fcnn3d_full_variant_outputs_the_whole_cube():
    options = resolve_options("fcnn3d", variant="full")
    assert options == {"padding": "reflect"}
    model = _identity_fcnn3d(**options)
    assert model.output_crop == OutputCrop()
    assert get_method_info("fcnn3d").output_crop == OutputCrop(bands=4, pixels=6)
    x = torch.rand(2, 31, 20, 17)
    with torch.no_grad():
        assert torch.equal(model(x), x)  # reflect padding + centre taps: the input itself
    assert count_parameters(model) == 39_405


def test_fcnn3d_errors():
    with pytest.raises(MethodError, match="Did you mean 'reflect'"):
        create_method("fcnn3d", bands=31, scale=2, padding="reflct")
    with pytest.raises(MethodError, match="at least 9 bands"):
        create_method("fcnn3d", bands=8, scale=2)
    model = create_method("fcnn3d", bands=8, scale=2, padding="reflect")
    with pytest.raises(MethodError, match="more than 6 pixels"):
        model(torch.rand(1, 8, 6, 20))


# ------------------------------------------------------------------------------------------ EDSR


@pytest.mark.parametrize("scale,expected", [(2, 40_858_655), (3, 43_809_055), (4, 43_218_975)])
def test_edsr_paper_size_builds(scale, expected):
    with torch.device("meta"):  # 43M parameters: count them without allocating or running
        model = create_method("edsr", bands=31, scale=scale, **resolve_options("edsr", variant="paper"))
    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 32 and {b.res_scale for b in blocks} == {0.1}
    assert model.head.out_channels == 256
    assert count_parameters(model) == expected


def test_edsr_upsampler_stages_and_overrides():
    def stages(scale):
        return [m.upscale_factor for m in create_method("edsr", bands=3, scale=scale, n_feats=4).modules()
                if isinstance(m, torch.nn.PixelShuffle)]

    assert stages(2) == [2] and stages(3) == [3] and stages(4) == [2, 2] and stages(8) == [2, 2, 2]
    model = create_method("edsr", bands=31, scale=2, size="paper", n_resblocks=2, n_feats=16, res_scale=0.5)
    blocks = [m for m in model.modules() if isinstance(m, ResBlock)]
    assert len(blocks) == 2 and blocks[0].res_scale == 0.5
    conv = lambda cin, cout: 9 * cin * cout + cout  # noqa: E731
    assert count_parameters(model) == conv(31, 16) + 5 * conv(16, 16) + conv(16, 64) + conv(16, 31)
    with pytest.raises(MethodError, match="Did you mean 'paper'"):
        create_method("edsr", bands=31, scale=2, size="papers")
    with pytest.raises(MethodError, match="res_scale must be a positive number"):
        create_method("edsr", bands=31, scale=2, res_scale=0)


def test_edsr_residual_scaling():
    torch.manual_seed(0)
    block = ResBlock(4, 0.1)
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        expected = x + 0.1 * block.conv2(torch.relu(block.conv1(x)))
        assert torch.allclose(block(x), expected)
