"""Which records belong in which table: Table V, an ablation experiment, the paper table it reproduces."""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional, Sequence

from hsisr_bench.errors import HsiBenchError
from hsisr_bench.report import method_key


def is_table_v_experiment(name: Any) -> bool:
    """Whether an experiment name means Table V (``table5``, ``table_v_cave``; ``None`` too: a plain run)."""
    return name is None or bool(re.fullmatch(r"table_?(5|v)([_-].*)?", str(name).lower()))


def experiment_names(record: Mapping[str, Any]) -> list[str]:
    """The experiment names a record carries (none, one, or a list)."""
    value = record.get("experiment")
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def table_v_records(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """The records that belong in Table V: default networks with default losses, and runs of no ablation.

    A run made by an ablation experiment (a variant or a non-default loss) goes to its ablation table.
    """
    chosen = []
    for record in records:
        plain = method_key(record) == str(record["method"])
        experiments = experiment_names(record)
        if plain or not experiments or any(is_table_v_experiment(e) for e in experiments):
            chosen.append(dict(record))
    return chosen


def report_experiments(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ablation experiments the records name (Table V experiments excluded), sorted."""
    return sorted({e for r in records for e in experiment_names(r) if not is_table_v_experiment(e)})


def paper_table_of(experiment: str) -> Optional[str]:
    """Which of the paper's ablation tables (``"I"``..``"IV"``) an experiment reproduces, from its name.

    ``table1_loss`` -> ``"I"``, ``table2_ablation`` -> ``"II"``, ``table3_block`` -> ``"III"``,
    ``table4_depth`` -> ``"IV"``; ``None`` when the name says nothing.
    """
    name = str(experiment).lower()
    match = re.match(r"table_?([1-4]|iv|iii|ii|i)(?![0-9a-z])", name)
    if match:
        token = match.group(1)
        return {"1": "I", "2": "II", "3": "III", "4": "IV"}.get(token, token.upper())
    for pattern, table in (("loss", "I"), ("lff|grl", "II"), ("block", "III"), ("depth", "IV")):
        if re.search(pattern, name):
            return table
    return None


def _experiment_grid(experiment: str) -> Optional[tuple[set, set]]:
    """The grid of ``configs/experiments/<experiment>.toml``, if that file exists.

    Returns:
        ``(settings, places)``: the ``(method, variant, loss)`` settings and the ``(dataset, scale)``
        places it names, or ``None``.
    """
    from hsisr_bench.config import default_method_config, list_experiments, load_experiment

    try:
        if experiment not in list_experiments():
            return None
        exp = load_experiment(experiment)
        settings = set()
        for method in exp.methods:
            default_loss = default_method_config(method).loss
            for variant in exp.variants:
                for loss in exp.losses:
                    settings.add((str(method), None if variant in (None, "", "default") else str(variant),
                                  default_loss if loss == "default" else str(loss)))
        places = {(str(d), int(s)) for d in exp.datasets for s in exp.scales}
        return settings, places
    except HsiBenchError:
        return None


def record_loss(record: Mapping[str, Any]) -> Optional[str]:
    """The training loss of a record: its own ``loss``, else the method's default loss, else ``None``."""
    loss = record.get("loss")
    if isinstance(loss, Mapping):
        loss = loss.get("name")
    if loss is not None:
        return str(loss)
    try:
        from hsisr_bench.config import default_method_config

        return default_method_config(str(record["method"])).loss
    except HsiBenchError:  # a method this version does not know
        return None


def experiment_records(records: Sequence[Mapping[str, Any]], experiment: str) -> list[dict]:
    """The records of one experiment: those that name it, plus any run of a cell of its grid.

    A cell shared with another experiment (SSRNet's default network serves Tables II–V) is stored
    once and keeps the experiment name of whichever run wrote it; reading the grid from
    ``configs/experiments/<experiment>.toml`` finds it anyway. The grid's places are its datasets
    and scales plus those where runs naming the experiment exist (``hsibench run --experiment
    table2_ablation --dataset synthetic`` moves the grid to another dataset).
    """
    named = [r for r in records if experiment in experiment_names(r)]
    grid = _experiment_grid(experiment)
    if grid is None:
        return [dict(r) for r in named]
    settings, places = grid
    places = places | {(str(r["dataset"]), int(r["scale"])) for r in named}
    named_ids = {id(r) for r in named}
    chosen = []
    for record in records:
        setting = (str(record["method"]), record.get("variant") or None, record_loss(record))
        if id(record) in named_ids or ((str(record["dataset"]), int(record["scale"])) in places and setting in settings):
            chosen.append(dict(record))
    return chosen


def effective_options(record: Mapping[str, Any]) -> dict:
    """A run's full factory options: the method's defaults, then its variant's, then the explicit ones.

    Uses the registry (``resolve_options``) when the method is registered; otherwise the record's
    own ``options``.
    """
    explicit = dict(record.get("options") or {})
    try:
        from hsisr_bench.registry import get_method_info, resolve_options

        info = get_method_info(str(record["method"]))
        merged = dict(info.options)
        merged.update(resolve_options(str(record["method"]), explicit, record.get("variant") or None))
        return merged
    except HsiBenchError:  # unregistered method or unknown variant
        return explicit
