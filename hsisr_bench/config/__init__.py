"""TOML configs -> frozen dataclasses: protocols, method defaults, experiments, overrides, run plans.

Three kinds of file live under ``configs/`` (``hsisr_bench.CONFIG_DIR``):

- ``protocols/<name>.toml``: the shared training/evaluation protocol (``paper``, ``quick``, ``smoke``),
  flat keys that map one to one onto :class:`Protocol`.
- ``methods/<name>.toml``: one method's factory options, and overrides of the loss and optimiser that
  its registration declares (the registration is the one source of those defaults).
- ``experiments/<name>.toml``: a grid (methods × variants × losses × datasets × scales × seeds) that
  :func:`plan_runs` expands into one :class:`RunConfig` per cell.

Any field can be overridden from the command line with ``--set key=value`` (see :func:`apply_overrides`);
an unknown key is a :class:`~hsisr_bench.errors.ConfigError` with a did-you-mean hint. The resolved config
of a run (:meth:`RunConfig.to_dict`) is saved with every run and hashed into its run id.

The package is split by job; every name is importable from here as before (``config.plan_runs``):

- :mod:`~hsisr_bench.config.schema`: the dataclasses and the mode tuples;
- :mod:`~hsisr_bench.config.files`: reading the TOML files;
- :mod:`~hsisr_bench.config.overrides`: ``--set`` (a table of handlers) and :func:`check_run`;
- :mod:`~hsisr_bench.config.planning`: ``--scale``/``--methods`` parsing and :func:`plan_runs`.
"""

# Every name the single-module config.py had, private helpers included, stays importable from here.
from hsisr_bench import CONFIG_DIR
from hsisr_bench.config.files import (
    _names, _read_toml, default_method_config, list_experiments, list_protocols, load_experiment, load_protocol,
    tomllib,
)
from hsisr_bench.config.overrides import (
    _DATASET_KEYS, _HANDLERS, _TOP_KEYS, _conventions_class, _unknown_key, apply_overrides, check_run,
    parse_override, valid_override_keys,
)
from hsisr_bench.config.planning import _check_dataset, _method_name, parse_methods, parse_scales, plan_runs
from hsisr_bench.config.schema import (
    AMP_MODES, DEVICES, TF32_MODES, DatasetConfig, Experiment, MethodConfig, Protocol, RunConfig, _coerce,
    _jsonable, _protocol_defaults,
)

__all__ = [
    "AMP_MODES", "CONFIG_DIR", "DEVICES", "TF32_MODES", "DatasetConfig", "Experiment", "MethodConfig", "Protocol",
    "RunConfig", "apply_overrides", "check_run", "default_method_config", "list_experiments", "list_protocols",
    "load_experiment", "load_protocol", "parse_methods", "parse_override", "parse_scales", "plan_runs",
    "valid_override_keys",
]
