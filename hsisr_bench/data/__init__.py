"""Data layer: readers, datasets, synthetic data, MATLAB-exact bicubic, splits and the patch bank."""

from hsisr_bench.data.scene import Scene
from hsisr_bench.data.imresize import imresize
from hsisr_bench.data.readers import load_scene

__all__ = ["Scene", "imresize", "load_scene"]
