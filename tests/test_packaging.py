"""The wheel: the baselines and configs inside the ``hsisr_bench`` namespace, every module shipped.

The wheel is built from a copy of the sources in a temporary folder (setuptools leaves ``build/``
behind, whose stale files would end up in later wheels), without build isolation, so the test needs
no package index: setuptools comes with the ``test`` extra.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hsisr_bench
from conftest import REPO_ROOT

#: What a wheel is built from (setup.py and setup.cfg name no other file).
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "hsisr_bench", "baselines", "configs")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory) -> set[str]:
    """The file names inside a wheel built from this checkout."""
    pytest.importorskip("setuptools", reason="building the wheel needs setuptools (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "--no-index", "-q", "-w", str(root / "dist"), str(source)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = list((root / "dist").glob("hsisr_bench-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as archive:
        return set(archive.namelist())


def test_wheel_installs_nothing_at_the_top_level_but_the_package(wheel_files):
    top = {name.split("/")[0] for name in wheel_files}
    assert "baselines" not in top and "configs" not in top
    assert top == {"hsisr_bench", f"hsisr_bench-{hsisr_bench.__version__}.dist-info"}


def test_wheel_holds_the_baselines_inside_the_namespace(wheel_files):
    expected = {f"hsisr_bench/baselines/{p.name}" for p in (REPO_ROOT / "baselines").glob("*.py")}
    assert "hsisr_bench/baselines/bicubic.py" in expected
    assert expected <= wheel_files, sorted(expected - wheel_files)


def test_wheel_holds_every_config(wheel_files):
    configs = REPO_ROOT / "configs"
    expected = {f"hsisr_bench/configs/{p.relative_to(configs).as_posix()}"
                for p in configs.rglob("*") if p.suffix in (".toml", ".json")}
    assert {"hsisr_bench/configs/protocols/paper.toml", "hsisr_bench/configs/splits/cave.json"} <= expected
    assert expected <= wheel_files, sorted(expected - wheel_files)


def test_wheel_holds_every_module_of_the_package(wheel_files):
    # A new sub-package that setup.cfg's explicit `packages` list misses would install without its code.
    package = REPO_ROOT / "hsisr_bench"
    expected = {f"hsisr_bench/{p.relative_to(package).as_posix()}" for p in package.rglob("*.py")
                if "__pycache__" not in p.parts}
    assert expected <= wheel_files, sorted(expected - wheel_files)


def test_config_dir_is_the_configs_package_folder():
    # In this (editable) checkout the package maps to the repository's configs/ folder.
    assert hsisr_bench.CONFIG_DIR.is_dir()
    assert (hsisr_bench.CONFIG_DIR / "protocols" / "paper.toml").is_file()
    assert hsisr_bench.CONFIG_DIR.resolve() == (REPO_ROOT / "configs").resolve()


def test_no_top_level_baselines_module_is_importable_from_outside(tmp_path):
    probe = ("import importlib.util, sys; import hsisr_bench.registry as r; r.list_methods(); "
             "sys.exit(1 if importlib.util.find_spec('baselines') or 'baselines' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
