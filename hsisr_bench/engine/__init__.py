"""The harness's engines: the training loop (``train``), tiled inference (``infer``), evaluation (``evaluate``).

Import from the submodules, e.g. ``from hsisr_bench.engine.infer import super_resolve``; this package
imports nothing itself, so loading one engine does not pull in the others.
"""
