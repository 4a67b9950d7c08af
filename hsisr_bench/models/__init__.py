"""The paper's network, SSRNet (registered as ``ssrnet``); the baselines live in ``baselines/``."""

from hsisr_bench.models.ssrnet import SSRNet, build_ssrnet

__all__ = ["SSRNet", "build_ssrnet"]
