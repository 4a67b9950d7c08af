"""Prediction and dataset files are checked by their declared shape and dtype before their data is read.

A 1.4 KB HDF5 file can declare a 2000x2000x31 float32 dataset (unwritten chunks read as the fill
value): reading it first took 785 MB before the shape check refused it.
"""

from __future__ import annotations

import tracemalloc

import h5py
import numpy as np
import pytest
import scipy.io

from hsisr_bench.errors import DataError
from hsisr_bench.external import read_prediction


def _huge_empty_h5(path, name="SR"):
    with h5py.File(path, "w") as handle:
        handle.create_dataset(name, shape=(31, 2000, 2000), dtype="f4", chunks=(1, 100, 100), compression="gzip")
    return path


def _peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("suffix", [".h5", ".mat"])
def test_a_tiny_hdf5_prediction_declaring_a_huge_cube_is_refused_before_reading(tmp_path, suffix):
    path = _huge_empty_h5(tmp_path / f"scene{suffix}")
    assert path.stat().st_size < 100_000

    def read():
        with pytest.raises(DataError, match=r"scene\.(h5|mat) has shape .*the test region is 31x8x8"):
            read_prediction(path, (31, 8, 8))

    assert _peak_bytes(read) < 20 * 2 ** 20  # was ~500 MB: the whole declared array


def test_a_v5_mat_and_npy_prediction_are_checked_from_their_headers(tmp_path):
    scipy.io.savemat(tmp_path / "big.mat", {"SR": np.zeros((300, 300, 31), np.float32)})
    np.save(tmp_path / "big.npy", np.zeros((31, 300, 300), np.float32))
    for name in ("big.mat", "big.npy"):
        def read():
            with pytest.raises(DataError, match="has shape"):
                read_prediction(tmp_path / name, (31, 8, 8))

        assert _peak_bytes(read) < 5 * 2 ** 20, name  # the 11 MB cube is never read
    good = np.random.default_rng(0).random((8, 8, 31)).astype(np.float32)
    scipy.io.savemat(tmp_path / "ok.mat", {"SR": good, "other": np.zeros(3)})
    assert np.array_equal(read_prediction(tmp_path / "ok.mat", (31, 8, 8)), good)


def test_a_dataset_scene_declaring_data_it_does_not_store_is_refused_before_reading(tmp_path):
    from hsisr_bench.data.readers import load_scene

    path = _huge_empty_h5(tmp_path / "scene.h5", name="cube")

    def read():
        with pytest.raises(DataError, match=r"scene\.h5: variable 'cube' declares a 31x2000x2000 float32 array "
                                            r"but the file stores none of its data"):
            load_scene(path)

    assert _peak_bytes(read) < 20 * 2 ** 20


def test_a_dataset_scene_with_a_non_numeric_hdf5_dtype_is_refused_from_its_header(tmp_path):
    from hsisr_bench.data.readers import load_scene

    with h5py.File(tmp_path / "strings.h5", "w") as handle:
        handle.create_dataset("cube", data=np.array([[[b"ab"] * 4] * 4] * 3))
    with pytest.raises(DataError, match="has dtype .*expected real numbers"):
        load_scene(tmp_path / "strings.h5")
