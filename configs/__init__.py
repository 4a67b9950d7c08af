"""The shipped configs, installed as the package ``hsisr_bench.configs`` (data only, no code).

The folder stays at the repository root, where users look for it; setuptools maps it into the
namespace (``package_dir`` in setup.cfg) so that it is package data in a wheel and the same folder
in an editable install. Code reads it through :data:`hsisr_bench.CONFIG_DIR`.
"""
