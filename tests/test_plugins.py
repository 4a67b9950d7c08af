"""Outside methods (``hsisr_bench.plugins``): files, modules, ``HSIBENCH_PLUGINS``, entry points, bad plugins.

Every test writes its plugins into ``tmp_path`` and restores the registry afterwards
(``clean_registry``), so nothing leaks into the other test files.
"""

from __future__ import annotations

import importlib
import os
import textwrap

import pytest
from click.testing import CliRunner

from hsisr_bench import plugins, registry
from hsisr_bench.cli import main
from hsisr_bench.errors import MethodError
from hsisr_bench.registry import get_method_info, list_methods

from plugin_fixtures import clean_registry  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("clean_registry")


def method_source(name: str, *, counter=None, extra: str = "", **metadata) -> str:
    """A plugin file's text registering a one-layer method ``name`` (appending to ``counter`` when loaded)."""
    fields = "".join(f", {key}={value!r}" for key, value in metadata.items())
    count = f"open({str(counter)!r}, 'a').write('x')\n" if counter else ""
    return textwrap.dedent(f"""\
        import torch.nn as nn
        from hsisr_bench.registry import register_method
        {count}
        @register_method({name!r}, title={name.title()!r}{fields})
        def build(*, bands, scale, width: int = 4):
            return nn.Sequential(nn.Conv2d(bands, bands * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
        """) + extra


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def invoke(*args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


# ------------------------------------------------------------------------------------------ loading


def test_a_file_plugin_registers_its_method_with_its_source(tmp_path):
    path = write(tmp_path / "alpha.py", method_source("alpha"))
    record = plugins.load_plugin(str(path))
    assert record.methods == ("alpha",)
    info = get_method_info("alpha")
    assert info.source == f"plugin {path.resolve()}"
    assert info.title == "Alpha" and info.options == {"width": 4}
    assert "alpha" in list_methods()


def test_loading_is_idempotent_by_path_module_and_environment(tmp_path, monkeypatch):
    counter = tmp_path / "loads.txt"
    path = write(tmp_path / "pkgs" / "hsibench_test_beta.py", method_source("beta", counter=counter))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    importlib.invalidate_caches()
    monkeypatch.setenv(plugins.ENV_VAR, f"pkgs/hsibench_test_beta.py{os.pathsep}{path}")
    plugins.load_environment_plugins()  # the same file twice in the variable
    plugins.load_plugin("./pkgs/hsibench_test_beta.py")  # another spelling of the path
    plugins.load_plugin("hsibench_test_beta")  # the same file as a module name
    result = invoke("list", "--plugin", path, "--plugin", "hsibench_test_beta")  # env and flags at once
    assert result.exit_code == 0, result.output
    assert counter.read_text() == "x", "the plugin was executed more than once"
    assert "beta" in result.output and f"plugin {path.resolve()}" in result.output


def test_a_module_plugin_records_the_module_name(tmp_path, monkeypatch):
    write(tmp_path / "hsibench_test_gamma" / "__init__.py", method_source("gamma"))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    plugins.load_plugin("hsibench_test_gamma")
    assert get_method_info("gamma").source == "plugin hsibench_test_gamma"


def test_environment_plugins_load_on_the_registrys_first_use(tmp_path, monkeypatch):
    one = write(tmp_path / "one.py", method_source("one"))
    two = write(tmp_path / "two.py", method_source("two"))
    monkeypatch.setenv(plugins.ENV_VAR, f"{one},{two}")  # commas work as well as os.pathsep
    assert plugins.env_plugins() == [str(one), str(two)]
    assert plugins.env_plugins(f" {one}{os.pathsep}{os.pathsep}{two} ") == [str(one), str(two)]
    registry._AUTO_PLUGINS = "pending"  # as in a fresh process
    assert {"one", "two"} <= set(list_methods())
    assert get_method_info("two").source == f"plugin {two.resolve()}"


def test_entry_points_of_both_groups_are_loaded(tmp_path, monkeypatch):
    site = tmp_path / "site"
    write(site / "hsibench_test_epm" / "__init__.py", method_source("epmethod"))
    write(site / "hsibench_test_epd.py", "LOADED = True\n")  # a dataset plugin: loading it is enough
    dist = site / "hsibench_test_dist-0.3.dist-info"
    write(dist / "METADATA", "Metadata-Version: 2.1\nName: hsibench-test-dist\nVersion: 0.3\n")
    write(dist / "entry_points.txt", "[hsisr_bench.methods]\nepmethod = hsibench_test_epm\n\n"
                                     "[hsisr_bench.datasets]\nepdata = hsibench_test_epd\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    result = invoke("list")  # the list command loads the entry points (the registry's first use did already)
    assert result.exit_code == 0, result.output
    assert get_method_info("epmethod").source == "entry point epmethod (hsibench-test-dist 0.3)"
    assert "entry point epmethod (hsibench-test-dist 0.3)" in result.output
    import sys

    assert sys.modules["hsibench_test_epd"].LOADED is True
    sources = {record.source for record in plugins.loaded_plugins()}
    assert "entry point epdata (hsibench-test-dist 0.3)" in sources


# ------------------------------------------------------------------------------------------ bad plugins


def test_a_missing_plugin_file_is_an_error_with_exit_code_2(tmp_path):
    result = invoke("list", "--plugin", tmp_path / "nope.py")
    assert result.exit_code == 2
    assert "Error: Plugin" in result.output and "nope.py" in result.output and "not found" in result.output
    assert "Traceback" not in result.output


def test_a_missing_plugin_module_is_an_error():
    with pytest.raises(MethodError, match="Plugin module 'hsibench_test_absent' .*not found on the Python path"):
        plugins.load_plugin("hsibench_test_absent")


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "broken.py", "import torch\n\ndef build(:\n    pass\n")
    result = invoke("list", "--plugin", path)
    assert result.exit_code == 2
    assert f"Plugin {path.resolve()}" in result.output and "syntax error" in result.output
    assert "line 3" in result.output and "def build(:" in result.output


def test_a_failing_import_names_the_plugin_and_line(tmp_path):
    path = write(tmp_path / "needs.py", "import os\nimport hsibench_test_not_installed\n")
    with pytest.raises(MethodError, match=r"needs\.py .*failed to import \(needs\.py line 2\): ModuleNotFoundError"):
        plugins.load_plugin(str(path))


def test_any_exception_while_loading_names_the_plugin(tmp_path):
    path = write(tmp_path / "raises.py", "x = 1\nraise ValueError('bad config')\n")
    with pytest.raises(MethodError, match=r"raises\.py .*raised ValueError while loading \(raises\.py line 2\): bad"):
        plugins.load_plugin(str(path))


def test_a_builtin_name_is_rejected_and_the_builtin_kept(tmp_path):
    before = get_method_info("ssrnet")
    path = write(tmp_path / "clash.py", method_source("ssrnet"))
    result = invoke("list", "--plugin", path)
    assert result.exit_code == 2
    assert "Method 'ssrnet' is registered twice: first by built-in" in result.output
    assert f"again by plugin {path.resolve()}" in result.output
    assert get_method_info("ssrnet") is before


def test_a_name_registered_twice_rolls_the_whole_plugin_back(tmp_path):
    text = method_source("delta") + method_source("epsilon").split("\n", 2)[2] + method_source("delta").split("\n", 2)[2]
    path = write(tmp_path / "twice.py", text)
    with pytest.raises(MethodError, match="Method 'delta' is registered twice"):
        plugins.load_plugin(str(path))
    assert "delta" not in list_methods() and "epsilon" not in list_methods()
    # A failed plugin is not marked loaded: fixed, it loads.
    path.write_text(method_source("delta"))
    plugins.load_plugin(str(path))
    assert "delta" in list_methods()


def test_two_plugins_with_the_same_name(tmp_path):
    first = write(tmp_path / "a" / "first.py", method_source("zeta"))
    second = write(tmp_path / "b" / "second.py", method_source("zeta"))
    result = invoke("list", "--plugin", first, "--plugin", second)
    assert result.exit_code == 2
    assert f"first by plugin {first.resolve()}" in result.output and f"again by plugin {second.resolve()}" in result.output


@pytest.mark.parametrize("metadata,message", [
    ({"input": "hr"}, r"input must be one of 'lr', 'upsampled', 'lr\+upsampled', got 'hr'"),
    ({"trainable": "yes"}, "trainable must be True or False"),
    ({"variants": {"wide": {"widht": 8}}}, "variant 'wide' sets widht"),
    ({"param_counts": {(2, "wide"): 10}}, "param_counts keys must be"),
    ({"lsos": "l1"}, "unknown registration field.*Did you mean 'loss'"),
])
def test_a_registration_that_breaks_the_contract_names_the_plugin(tmp_path, metadata, message):
    path = write(tmp_path / "contract.py", method_source("eta", **metadata))
    with pytest.raises(MethodError, match=message) as error:
        plugins.load_plugin(str(path))
    assert f"plugin {path.resolve()}" in str(error.value)
    assert "eta" not in list_methods()


def test_a_factory_without_bands_and_scale_breaks_the_contract(tmp_path):
    text = ("import torch.nn as nn\nfrom hsisr_bench.registry import register_method\n"
            "@register_method('theta', title='Theta')\ndef build(size=3):\n    return nn.Identity()\n")
    path = write(tmp_path / "nokw.py", text)
    with pytest.raises(MethodError, match="must accept the keyword argument 'bands'"):
        plugins.load_plugin(str(path))


def test_a_bad_plugin_in_the_environment_fails_every_command_that_lists_methods(tmp_path):
    path = write(tmp_path / "envbad.py", "def (:\n")
    result = invoke("list", env={plugins.ENV_VAR: str(path)})
    assert result.exit_code == 2
    assert f"Plugin {path.resolve()} (from {plugins.ENV_VAR}) has a syntax error" in result.output


def test_variants_are_described_by_their_text_or_their_options(tmp_path):
    path = write(tmp_path / "variants.py", method_source(
        "iota", variants={"wide": {"width": 16}, "narrow": {"width": 2}},
        variant_descriptions={"wide": "four times the features"}))
    plugins.load_plugin(str(path))
    assert registry.describe_variant("iota", "wide") == "four times the features"
    assert registry.describe_variant("iota", "narrow") == "width=2 (default 4)"
    with pytest.raises(MethodError, match="Unknown variant 'wid' .*Did you mean 'wide'"):
        registry.describe_variant("iota", "wid")
    listing = invoke("list")
    assert listing.exit_code == 0, listing.output
    assert "iota+wide" in listing.output and "four times the features" in listing.output
    assert "iota+narrow" in listing.output and "width=2 (default 4)" in listing.output


# ------------------------------------------------------------------------------- failing plugin code


def test_a_plugin_calling_sys_exit_at_import_is_an_error_not_an_exit(tmp_path):
    path = write(tmp_path / "quits.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(MethodError, match=r"quits\.py .*called sys\.exit\(3\) while loading \(quits\.py line 2\)"):
        plugins.load_plugin(str(path))
    result = invoke("list", "--plugin", path)
    assert result.exit_code == 2 and result.output.startswith("Error:") and "sys.exit(3)" in result.output


@pytest.mark.parametrize("body, shown", [("raise KeyError('width')", "KeyError: 'width'"),
                                         ("import sys; sys.exit(3)", "called sys.exit(3)")])
def test_a_plugin_factory_that_fails_is_an_error_naming_the_method_and_plugin(tmp_path, body, shown):
    text = method_source("kappa").replace(
        "    return nn.Sequential(", f"    if width == 5:\n        {body}\n    return nn.Sequential(")
    path = write(tmp_path / "kappa_plugin.py", text)
    plugins.load_plugin(str(path))
    with pytest.raises(MethodError, match=r"method 'kappa' \(plugin .*kappa_plugin\.py\) failed to build its "
                                          r"network .*" + shown.replace("(", r"\(").replace(")", r"\)")):
        registry.create_method("kappa", bands=3, scale=2, width=5)
