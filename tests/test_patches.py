"""Tests of the training patch bank and the band mean (hsisr_bench.data.patches)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hsisr_bench.data.imresize import imresize
from hsisr_bench.data.patches import AUGMENTATIONS, PRECOMPUTE_LR_BYTES, PatchBank, band_mean
from hsisr_bench.data.scene import Scene
from hsisr_bench.data.synthetic import make_synthetic_scenes
from hsisr_bench.errors import ConfigError, DataError

BANDS = 8
SMALL = dict(lr_patch=8, patches_per_image=2)  # small banks: 3 scenes x 3 factors x 2 patches x 5 copies


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Thousands of tiny resizes: threads only add contention on the shared 2-core test machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def scenes():
    return make_synthetic_scenes(n_scenes=3, size=64, bands=BANDS, seed=0)


@pytest.fixture(scope="module")
def bank(scenes):
    return PatchBank(scenes, scale=2, **SMALL)


def _items(bank):
    return [bank[i] for i in range(len(bank))]


def test_length_and_item_order(bank, scenes):
    assert len(bank) == 3 * 3 * 2 * 5
    assert len(PatchBank(scenes, scale=2, augment=False, precompute_lr=False, **SMALL)) == 3 * 3 * 2
    infos = [bank.patch_info(i) for i in range(len(bank))]
    assert [info.copy for info in infos[:5]] == list(AUGMENTATIONS)
    assert infos[0].scene == "synth_00" and infos[-1].scene == "synth_02"
    assert [infos[i].rescale for i in (0, 10, 20, 30)] == [1.0, 0.75, 0.5, 1.0]
    assert infos[30].scene == "synth_01"
    assert bank.patch_info(-1) == infos[-1]
    with pytest.raises(IndexError):
        bank[len(bank)]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shapes_and_dtypes(scenes, scale):
    bank = PatchBank(scenes, scale=scale, precompute_lr=False, **SMALL)
    lr, hr = bank[7]
    assert isinstance(lr, torch.Tensor) and lr.dtype == torch.float32 and hr.dtype == torch.float32
    assert tuple(lr.shape) == (BANDS, 8, 8)
    assert tuple(hr.shape) == (BANDS, 8 * scale, 8 * scale)


def test_hr_patch_option(scenes):
    bank = PatchBank(scenes, scale=3, hr_patch=24, patches_per_image=2)
    assert (bank.hr_patch, bank.lr_patch) == (24, 8)
    assert tuple(bank[0][0].shape) == (BANDS, 8, 8)
    with pytest.raises(ConfigError, match="not divisible by the scale 3"):
        PatchBank(scenes, scale=3, hr_patch=25)


@pytest.mark.parametrize("precompute", [True, False])
def test_lr_is_matlab_bicubic_of_the_hr_patch(scenes, precompute):
    bank = PatchBank(scenes, scale=3, precompute_lr=precompute, **SMALL)
    assert bank.lr_precomputed is precompute
    for index in np.random.default_rng(0).choice(len(bank), size=8, replace=False):
        lr, hr = bank[int(index)]
        np.testing.assert_array_equal(lr.numpy(), imresize(hr.numpy(), 1 / 3))


def test_precomputed_and_on_the_fly_lr_are_identical(scenes):
    a = PatchBank(scenes, scale=2, precompute_lr=True, **SMALL)
    b = PatchBank(scenes, scale=2, precompute_lr=False, **SMALL)
    for (lr_a, hr_a), (lr_b, hr_b) in zip(_items(a), _items(b)):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)


def test_hr_patches_are_cut_from_the_rescaled_scenes(bank, scenes):
    for index in (0, 15, 25):  # identity copies at factors 1, 0.75 and 0.5
        info = bank.patch_info(index)
        assert info.copy == "identity"
        cube = scenes[0].cube if info.rescale == 1.0 else imresize(scenes[0].cube, info.rescale)
        expected = cube[:, info.y:info.y + 16, info.x:info.x + 16]
        np.testing.assert_array_equal(bank[index][1].numpy(), expected)
        assert 0 <= info.y <= cube.shape[1] - 16 and 0 <= info.x <= cube.shape[2] - 16


def test_five_copies_are_rotations_and_flip_of_one_patch(bank):
    for start in (0, 5 * 7):
        base_lr, base_hr = (t.numpy() for t in bank[start])
        copies = [bank[start + c] for c in range(5)]
        expected = [base_hr] + [np.rot90(base_hr, k, axes=(1, 2)) for k in (1, 2, 3)] + [base_hr[:, :, ::-1]]
        for (lr, hr), want in zip(copies, expected):
            np.testing.assert_array_equal(hr.numpy(), want)
        # The LR of a copy is the same copy of the LR (MATLAB bicubic is symmetric), up to rounding.
        want_lr = [np.rot90(base_lr, k, axes=(1, 2)) for k in (1, 2, 3)] + [base_lr[:, :, ::-1]]
        for (lr, _), want in zip(copies[1:], want_lr):
            np.testing.assert_allclose(lr.numpy(), want, atol=1e-6, rtol=0)
        assert not np.array_equal(copies[1][1].numpy(), base_hr)


def test_items_do_not_share_memory_with_the_scenes(scenes):
    bank = PatchBank(scenes, scale=2, lr_patch=32, patches_per_image=1, rescales=(1.0,))
    lr, hr = bank[0]  # the HR patch is the whole 64 x 64 scene
    hr.zero_()
    lr.zero_()
    assert scenes[0].cube.max() > 0 and bank[0][1].max() > 0 and bank[0][0].max() > 0


def test_same_seed_same_patches_other_seed_other_patches(scenes, bank):
    again = PatchBank(scenes, scale=2, **SMALL)
    for (lr_a, hr_a), (lr_b, hr_b) in zip(_items(bank), _items(again)):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
    other = PatchBank(scenes, scale=2, seed=1, precompute_lr=False, **SMALL)
    assert [bank.patch_info(i) for i in range(len(bank))] != [other.patch_info(i) for i in range(len(other))]


def test_patches_do_not_depend_on_the_scene_order(scenes, bank):
    reversed_bank = PatchBank(scenes[::-1], scale=2, precompute_lr=False, **SMALL)
    by_key = {}
    for i in range(len(reversed_bank)):
        info = reversed_bank.patch_info(i)
        by_key[(info.scene, info.rescale, info.copy, info.y, info.x)] = i
    for i in range(0, len(bank), 7):
        info = bank.patch_info(i)
        j = by_key[(info.scene, info.rescale, info.copy, info.y, info.x)]
        assert all(torch.equal(a, b) for a, b in zip(bank[i], reversed_bank[j]))


def test_cache_is_reused_and_changes_nothing(scenes, bank, tmp_path):
    first = PatchBank(scenes, scale=2, cache_dir=tmp_path, **SMALL)
    files = sorted(p for p in (tmp_path / "synthetic").iterdir())
    # 3 scenes x 3 factors (the factor 1 too: the scene itself, memory-mapped), plus the bank's LR patches.
    assert (first.cache_writes, first.cache_hits) == (10, 0) and len(files) == 10
    assert first.lr_precomputed and isinstance(first._lr, np.memmap)
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    second = PatchBank(scenes, scale=2, cache_dir=tmp_path, **SMALL)
    assert (second.cache_writes, second.cache_hits) == (0, 10)
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    for (lr_a, hr_a), (lr_b, hr_b), (lr_c, hr_c) in zip(_items(bank), _items(first), _items(second)):
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
        assert torch.equal(lr_a, lr_c) and torch.equal(hr_a, hr_c)
    # Another scale reuses the rescaled scenes and adds only its own LR file.
    third = PatchBank(scenes, scale=4, cache_dir=tmp_path, **SMALL)
    assert (third.cache_writes, third.cache_hits) == (1, 9)
    assert not [p for p in (tmp_path / "synthetic").iterdir() if p.name.endswith(".tmp")]


def test_pickled_bank_refers_to_the_cache_files_by_path(scenes, tmp_path):
    bank = PatchBank(scenes, scale=2, cache_dir=tmp_path, **SMALL)
    data = pickle.dumps(bank)
    # Every scene (factor 1 included: spawned DataLoader workers would otherwise each get a copy of
    # the training cubes), the rescaled scenes and the LR patches travel by file path: a few KB.
    sizes = bank.stored_bytes()
    assert len(data) < 20_000 < sizes["scenes"] // 10, (len(data), sizes)
    clone = pickle.loads(data)
    assert isinstance(clone._lr, np.memmap)
    assert all(isinstance(image, np.memmap) for images in clone._images for image in images)
    for i in (0, 33, len(bank) - 1):
        assert all(torch.equal(a, b) for a, b in zip(bank[i], clone[i]))


def test_cache_never_serves_other_content_and_repairs_bad_files(scenes, tmp_path):
    PatchBank(scenes, scale=2, cache_dir=tmp_path, **SMALL)
    before = set((tmp_path / "synthetic").iterdir())
    other = make_synthetic_scenes(n_scenes=3, size=64, bands=BANDS, seed=1)  # same names, other bytes
    bank = PatchBank(other, scale=2, cache_dir=tmp_path, **SMALL)
    assert (bank.cache_writes, bank.cache_hits) == (10, 0)
    victim = next(p for p in set((tmp_path / "synthetic").iterdir()) - before if p.name.startswith("lr__"))
    victim.unlink()  # a new file: truncating the one `bank` has memory-mapped would crash it (SIGBUS)
    victim.write_bytes(b"truncated")
    repaired = PatchBank(other, scale=2, cache_dir=tmp_path, **SMALL)
    assert (repaired.cache_writes, repaired.cache_hits) == (1, 9)
    assert torch.equal(repaired[11][0], bank[11][0])


def test_band_mean():
    a = Scene("a", np.ones((2, 1, 1), dtype=np.float32))
    b = Scene("b", np.stack([np.zeros((1, 3)), np.full((1, 3), 0.5)]).astype(np.float32))
    mean = band_mean([a, b])  # every pixel weighs the same: (1 + 0 + 0 + 0) / 4, (1 + 3 * 0.5) / 4
    assert mean.shape == (2,) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, [0.25, 0.625], rtol=1e-7)
    with pytest.raises(DataError, match="same number of bands"):
        band_mean([a, Scene("c", np.ones((3, 1, 1), dtype=np.float32))])
    with pytest.raises(DataError, match="No training scenes"):
        band_mean([])


def test_band_mean_of_synthetic_scenes(scenes):
    stacked = np.concatenate([s.cube.reshape(BANDS, -1) for s in scenes], axis=1).astype(np.float64)
    np.testing.assert_allclose(band_mean(scenes), stacked.mean(axis=1), rtol=1e-6)


def test_scene_smaller_than_the_patch_is_a_data_error(scenes):
    with pytest.raises(DataError) as info:
        PatchBank(scenes, scale=4, lr_patch=16)
    message = str(info.value)
    for fragment in ("synth_00", "48x48", "rescaling by 0.75", "64x64 HR patch", "lr_patch", "at most 8"):
        assert fragment in message
    PatchBank(scenes, scale=4, lr_patch=16, rescales=(1.0,), patches_per_image=1)  # fits without rescaling


@pytest.mark.parametrize("kwargs, error", [
    ({"scale": 1}, ConfigError), ({"scale": 2.5}, ConfigError), ({"lr_patch": 0}, ConfigError),
    ({"patches_per_image": 0}, ConfigError), ({"rescales": (1.0, 1.5)}, ConfigError),
    ({"rescales": (1.0, 1.0)}, ConfigError), ({"seed": -1}, ConfigError),
])
def test_invalid_options(scenes, kwargs, error):
    options = {"scale": 2, **SMALL, **kwargs}
    with pytest.raises(error):
        PatchBank(scenes, **options)


def test_invalid_scenes(scenes):
    with pytest.raises(DataError, match="No training scenes"):
        PatchBank([], scale=2)
    with pytest.raises(DataError, match="unique"):
        PatchBank([scenes[0], scenes[0]], scale=2, **SMALL)
    odd = Scene("odd", np.zeros((BANDS + 1, 64, 64), dtype=np.float32))
    with pytest.raises(DataError, match="same number of bands"):
        PatchBank([scenes[0], odd], scale=2, **SMALL)


def test_memory_estimate_matches_the_bank(scenes, bank, tmp_path):
    shapes = [s.cube.shape for s in scenes]
    assert bank.stored_bytes() == PatchBank.estimate_bytes(shapes, 2, **SMALL)
    on_the_fly = PatchBank(scenes, scale=3, precompute_lr=False, **SMALL)
    assert on_the_fly.stored_bytes() == PatchBank.estimate_bytes(shapes, 3, precompute_lr=False, **SMALL)
    assert on_the_fly.stored_bytes()["lr"] == 0
    cached = PatchBank(scenes, scale=2, cache_dir=tmp_path, **SMALL)
    assert cached.stored_bytes() == PatchBank.estimate_bytes(shapes, 2, cached=True, **SMALL)


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("cached", [False, True])
def test_full_cave_bank_fits_in_4_gb(scale, cached):
    # The paper protocol on CAVE: 26 training scenes of 31 x 512 x 512, LR patch 32, 24 patches, 5 copies.
    sizes = PatchBank.estimate_bytes([(31, 512, 512)] * 26, scale, cached=cached)
    scenes = 26 * 31 * 512 * 512 * 4
    rescaled = 26 * 31 * (384 * 384 + 256 * 256) * 4
    lr = 26 * 3 * 24 * 5 * 31 * 32 * 32 * 4  # 9,360 LR patches
    assert sizes["scenes"] == scenes and sizes["rescaled"] == rescaled
    assert sizes["lr"] == (lr if cached else 0)  # 1.19 GB: memory-mapped from the cache, else computed on read
    assert lr > PRECOMPUTE_LR_BYTES
    assert sizes["corners"] < 100_000
    assert sum(sizes.values()) < 4 * 2 ** 30


def test_dataloader_batches(bank):
    lr, hr = next(iter(DataLoader(bank, batch_size=4, shuffle=False)))
    assert tuple(lr.shape) == (4, BANDS, 8, 8) and tuple(hr.shape) == (4, BANDS, 16, 16)
    assert torch.equal(lr[2], bank[2][0])


def test_cache_file_names_are_keyed_by_dataset(scenes, tmp_path):
    PatchBank(scenes[:1], scale=2, cache_dir=tmp_path, patches_per_image=1, lr_patch=8, rescales=(1.0, 0.5))
    names = sorted(os.listdir(tmp_path / "synthetic"))
    assert len(names) == 3
    assert names[0].startswith("lr__") and all(name.startswith("synth_00__") for name in names[1:])
    assert sorted(name.rsplit("__", 1)[1] for name in names[1:]) == ["r0.5.npy", "r1.npy"]
