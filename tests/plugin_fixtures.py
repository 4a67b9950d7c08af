"""A fixture that restores the method registry and the plugin loader after a test that loads plugins."""

from __future__ import annotations

import sys

import pytest

from hsisr_bench import plugins, registry


@pytest.fixture
def clean_registry(monkeypatch):
    """Snapshot the registry, the loaded plugins and ``sys.modules``; put them back afterwards."""
    registry.list_methods()  # built-ins loaded before the snapshot
    monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    methods, loaded, modules = dict(registry._REGISTRY), dict(plugins._LOADED), set(sys.modules)
    auto = registry._AUTO_PLUGINS
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(methods)
    plugins._LOADED.clear()
    plugins._LOADED.update(loaded)
    registry._AUTO_PLUGINS = auto
    for name in set(sys.modules) - modules:
        if name.startswith("hsibench_plugin_") or name.startswith("hsibench_test_"):
            del sys.modules[name]
