"""The package list, the one part of the metadata that setup.cfg cannot declare (everything else is there).

setup.cfg's ``find:`` cannot be combined with extra packages, and two repository folders install
inside the namespace (``package_dir`` in setup.cfg): ``baselines/`` as ``hsisr_bench.baselines`` and
``configs/`` as ``hsisr_bench.configs``, so nothing installs a top-level ``baselines``. New
sub-packages of ``hsisr_bench/`` are found by themselves.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["hsisr_bench", "hsisr_bench.*"]) + ["hsisr_bench.baselines",
                                                                          "hsisr_bench.configs"])
