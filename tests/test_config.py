"""Configs: TOML protocols, method defaults, experiment expansion, overrides and their errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hsisr_bench import config
from hsisr_bench.errors import ConfigError, MethodError


def test_lists_name_the_shipped_files():
    assert config.list_protocols() == ["paper", "quick", "smoke"]
    assert config.list_experiments() == ["table1_loss", "table2_ablation", "table3_block", "table4_depth", "table5"]


def test_paper_protocol_is_protocol_md_section_4():
    p = config.load_protocol("paper")
    assert (p.epochs, p.batch_size, p.lr_patch, p.hr_patch, p.patches_per_image) == (200, 16, 32, 0, 24)
    assert p.rescales == (1.0, 0.75, 0.5) and p.augment is True
    assert (p.lr_step_epochs, p.lr_gamma, p.test_region, p.steps_per_epoch) == (35, 0.5, 512, 0)
    run = config.plan_runs(methods="ssrnet", datasets=["cave"], scales=[2], profile="paper")[0]
    assert run.effective_lr() == 1e-4 and run.method.loss == "l1"
    assert run.method.optimizer["betas"] == (0.9, 0.999)


def test_method_defaults_follow_their_papers():
    assert config.default_method_config("gdrrn").loss == "gdrrn"
    assert config.default_method_config("gdrrn").optimizer["weight_decay"] == 1e-4
    assert config.default_method_config("fcnn3d").loss == "mse"
    assert config.default_method_config("edsr").loss == "l1"


@pytest.mark.parametrize("name, cells", [("table5", 45), ("table1_loss", 3), ("table2_ablation", 4),
                                         ("table3_block", 2), ("table4_depth", 4)])
def test_experiments_expand_to_their_grids(name, cells):
    runs = config.plan_runs(experiment=name, profile="paper")
    assert len(runs) == cells
    # every cell lands in its own run folder
    assert len({(r.dataset.name, r.scale, r.label, r.seed) for r in runs}) == cells
    assert all(r.experiment == name for r in runs)


def test_experiment_cells_carry_losses_and_variants():
    table1 = config.plan_runs(experiment="table1_loss", profile="paper")
    assert [r.method.loss for r in table1] == ["l1", "mse", "mse_sam"]
    assert [r.label for r in table1] == ["ssrnet", "ssrnet+loss-mse", "ssrnet+loss-mse_sam"]
    table4 = config.plan_runs(experiment="table4_depth", profile="paper")
    assert [r.effective_options().get("n_modules", 3) for r in table4] == [2, 3, 4, 5]
    table5 = config.plan_runs(experiment="table5", profile="paper")
    assert {r.dataset.name for r in table5} == {"cave", "harvard", "foster"} and {r.scale for r in table5} == {2, 3, 4}


def test_command_line_replaces_experiment_datasets_and_scales():
    runs = config.plan_runs(experiment="table2_ablation", profile="smoke", datasets=["synthetic"], scales=[3, 4])
    assert len(runs) == 8 and {r.dataset.name for r in runs} == {"synthetic"}


def test_overrides_change_fields_and_keep_types():
    run = config.plan_runs(methods="ssrnet", datasets=["synthetic"], scales=[2], profile="smoke",
                           overrides=["protocol.epochs=3", "protocol.rescales=[1, 0.5]", "method.loss=mse",
                                      "method.options.n_feats=8", "method.optimizer.lr=2e-4", "dataset.size=48",
                                      "seed=5"])[0]
    assert run.protocol.epochs == 3 and run.protocol.rescales == (1.0, 0.5)
    assert run.method.loss == "mse" and run.effective_options() == {"n_feats": 8}
    assert run.recorded_options()["n_feats"] == 8 and run.recorded_options()["block"] == "separable"
    assert run.effective_lr() == 2e-4 and run.dataset.size == 48 and run.seed == 5
    json.dumps(run.to_dict())  # the resolved config is plain JSON


def test_per_method_overrides_touch_only_that_method():
    runs = config.plan_runs(methods="bicubic,ssrnet", datasets=["synthetic"], scales=[2], profile="smoke",
                            overrides=["method.ssrnet.options.n_feats=8"])
    assert runs[0].effective_options() == {} and runs[1].effective_options() == {"n_feats": 8}


def test_variants_win_over_method_file_defaults_and_explicit_options_win_over_variants():
    full, paper = config.plan_runs(methods="fcnn3d+full,edsr+paper", datasets=["synthetic"], scales=[2],
                                   profile="smoke")
    assert full.effective_options() == {"padding": "reflect"}  # fcnn3d.toml says padding = "valid"
    assert paper.effective_options()["size"] == "paper"
    explicit = config.plan_runs(methods="edsr+paper", datasets=["synthetic"], scales=[2], profile="smoke",
                                overrides=["method.options.size=baseline"])[0]
    assert explicit.effective_options()["size"] == "baseline"


@pytest.mark.parametrize("override, message", [
    ("protocol.epoch=3", "Did you mean 'protocol.epochs'"),
    ("protocl.epochs=3", "Did you mean 'protocol.epochs'"),
    ("protocol.epochs=three", "expected a value of type int"),
    ("protocol.epochs=0", "at least 1"),
    ("method.options.n_feat=8", "Did you mean 'n_feats'"),
    ("method.loss=l2", "Unknown loss 'l2'"),
    ("amp=fp8", "amp must be one of"),
    ("epochs", "expected key=value"),
])
def test_bad_overrides_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        config.plan_runs(methods="ssrnet", datasets=["synthetic"], scales=[2], profile="smoke", overrides=[override])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"methods": "ssrnett"}, MethodError, "Did you mean 'ssrnet'"),
    ({"methods": "ssrnet+nolf"}, MethodError, "Did you mean 'nolff'"),
    ({"datasets": ["cav"]}, ConfigError, "Did you mean 'cave'"),
    ({"profile": "quik"}, ConfigError, "Did you mean 'quick'"),
    ({"experiment": "table2_ablaton"}, ConfigError, "Did you mean 'table2_ablation'"),
    ({"scales": [1]}, ConfigError, "at least 2"),
])
def test_unknown_names_get_did_you_mean(kwargs, error, message):
    arguments = {"methods": "ssrnet", "datasets": ["synthetic"], "scales": [2], "profile": "smoke", **kwargs}
    with pytest.raises(error, match=message):
        config.plan_runs(**arguments)


@pytest.mark.parametrize("text, message", [("1", "below 2"), ("2.5", "not an integer"), ("x", "not an integer")])
def test_parse_scales_rejects_bad_scales(text, message):
    with pytest.raises(ConfigError, match=message):
        config.parse_scales(text)
    assert config.parse_scales("2,3, 4") == [2, 3, 4]


def test_configs_are_frozen():
    run = config.plan_runs(methods="edsr", datasets=["synthetic"], scales=[2], profile="smoke")[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.scale = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.protocol.epochs = 3


def test_metric_conventions_are_overridable_and_checked():
    run = config.plan_runs(methods="bicubic", datasets=["synthetic"], scales=[2], profile="smoke")[0]
    assert run.conventions().to_dict()["sam_zero"] == "paper"  # the paper's conventions by default
    changed = config.apply_overrides(run, ["metrics.sam_zero=exclude", "metrics.ssim_window=uniform"])
    assert changed.conventions().sam_zero == "exclude" and changed.conventions().ssim_window == "uniform"
    assert changed.to_dict()["metrics"] == {"sam_zero": "exclude", "ssim_window": "uniform"}
    with pytest.raises(ConfigError, match="sam_zero"):
        config.apply_overrides(run, ["metrics.sam_zeros=exclude"])  # unknown key: did-you-mean
    with pytest.raises(ConfigError, match="metrics.sam_unit"):
        config.apply_overrides(run, ["metrics.sam_unit=grad"])  # invalid value


def test_names_in_any_case_are_accepted_and_near_misses_suggested():
    """``--dataset CAVE`` and ``--methods SSRNet`` (as the README and the paper write them) just work."""
    runs = config.plan_runs(methods="SSRNet,Bicubic", datasets=["Synthetic"], scales=[2], profile="smoke")
    assert [run.method.name for run in runs] == ["ssrnet", "bicubic"]
    assert {run.dataset.name for run in runs} == {"synthetic"}
    assert config.parse_methods("SSRNET+NOLFF") == [("ssrnet", "nolff")]
    assert config.parse_methods("ALL") == config.parse_methods("all")
    with pytest.raises(MethodError, match=r"Unknown method 'SSRNt'.*Did you mean 'ssrnet'"):
        config.parse_methods("SSRNt")
    with pytest.raises(ConfigError, match=r"Unknown dataset 'CAEV'.*Did you mean 'cave'"):
        config.plan_runs(methods="bicubic", datasets=["CAEV"], scales=[2], profile="smoke")
    assert config.plan_runs(methods="bicubic", datasets=["CAVE31"], scales=[2], profile="smoke")[0].dataset.name \
        == "cave31"


def test_dataset_key_and_restrict_split_overrides():
    """The options the data-layer messages advise are accepted by --set, with their types checked."""
    run = config.plan_runs(methods="bicubic", datasets=["harvard"], scales=[2], profile="smoke",
                           overrides=["dataset.key=cube", "dataset.restrict_split=true"])[0]
    assert run.dataset.key == "cube" and run.dataset.restrict_split is True
    with pytest.raises(ConfigError, match=r"--set dataset.restrict_split: expected a value of type bool"):
        config.plan_runs(methods="bicubic", datasets=["harvard"], scales=[2], profile="smoke",
                         overrides=["dataset.restrict_split=yes"])
    with pytest.raises(ConfigError, match=r"--set dataset.kye: unknown key. Did you mean 'dataset.key'"):
        config.plan_runs(methods="bicubic", datasets=["harvard"], scales=[2], profile="smoke",
                         overrides=["dataset.kye=cube"])


def test_every_override_section_has_a_handler_and_per_method_keys_ignore_case():
    from hsisr_bench.config.overrides import _HANDLERS

    sections = {key.rpartition(".")[0] for key in config.valid_override_keys(config.default_method_config("ssrnet"))}
    assert sections == set(_HANDLERS)
    runs = config.plan_runs(methods="ssrnet,edsr", datasets=["synthetic"], scales=[2], profile="smoke",
                            overrides=["method.SSRNet.options.n_feats=8"])
    assert [run.method.options.get("n_feats") for run in runs] == [8, None]
    with pytest.raises(ConfigError, match=r"--set protocol.a.b: unknown key"):
        config.plan_runs(methods="ssrnet", datasets=["synthetic"], scales=[2], profile="smoke",
                         overrides=["protocol.a.b=1"])


def test_a_methods_defaults_live_in_its_registration_and_toml_files_only_override():
    """One source of truth: a configs/methods file that restates the registration's loss or optimiser is a
    second copy that can drift; it may only change them."""
    import sys

    from hsisr_bench import CONFIG_DIR
    from hsisr_bench.registry import get_method_info

    tomllib = __import__("tomllib" if sys.version_info >= (3, 11) else "tomli")
    for path in sorted((CONFIG_DIR / "methods").glob("*.toml")):
        data = tomllib.loads(path.read_text())
        info = get_method_info(path.stem)
        assert data.get("loss", None) != info.loss, f"{path} restates the registration's loss"
        for key, value in data.get("optimizer", {}).items():
            assert info.optimizer.get(key) != value, f"{path} restates optimizer.{key}"


@pytest.mark.parametrize("override, message", [
    ("protocol.lr=nan", r"lr must be a finite number"),
    ("protocol.lr=inf", r"lr must be a finite number"),
    ("method.optimizer.betas=[2.0,0.9]", r"betas\[0\] must be in \[0, 1\)"),
    ("method.optimizer.betas=[0.9]", r"betas must be two numbers"),
    ("method.optimizer.eps=-1.0", r"eps must be 0 or more"),
    ("method.optimizer.weight_decay=nan", r"weight_decay must be a finite number"),
    ("method.optimizer.lr=-1e-3", r"optimizer.lr must be 0 or more"),
    ("method.optimizer.name=sgd", r"optimizer 'sgd' is not supported"),
])
def test_optimizer_and_protocol_numbers_are_checked_when_the_config_is_planned(override, message):
    # These used to pass planning and crash in torch.optim.Adam after config.json was written.
    with pytest.raises(ConfigError, match=message):
        config.plan_runs(methods="edsr", datasets=["synthetic"], scales=[2], profile="smoke", overrides=[override])


def test_a_bad_optimizer_value_leaves_no_run_folder(tmp_path):
    from click.testing import CliRunner

    from hsisr_bench.cli import main

    result = CliRunner().invoke(main, ["run", "--methods", "edsr", "--dataset", "synthetic", "--scale", "2",
                                       "--profile", "smoke", "--device", "cpu", "--out", str(tmp_path / "out"),
                                       "--set", "method.optimizer.eps=-1.0"])
    assert result.exit_code == 2 and result.output.startswith("Error:") and "eps must be 0 or more" in result.output
    assert not list(tmp_path.rglob("config.json"))
