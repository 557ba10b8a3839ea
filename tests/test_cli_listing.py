"""The listing commands: ``harness plugins|models|datasets|metrics|tasks|attention-methods``.

A plugin registered for the duration of each test provides one thing of every kind, so the
expected rows are known exactly whatever built-in plugins exist.
"""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from harness import __version__
from harness.cli import main
from harness.hookspecs import hookimpl
from harness.plugins import pm


class ListingPlugin:
    @hookimpl
    def register_models(self, register):
        register("listing-model", "listing_pkg.model:Model", tasks=("free-viewing", "classification"),
                 attention=("gradcam", "rollout"), description="a model for the listing test")

    @hookimpl
    def register_datasets(self, register):
        register("listing-data", "listing_pkg.data:Data", tasks=("free-viewing",), description="gaze data")

    @hookimpl
    def register_metrics(self, register):
        register("listing-metric", "listing_pkg.metrics:score", higher_is_better=False, description="lower wins")

    @hookimpl
    def register_tasks(self, register):
        register("listing-task", "listing_pkg.tasks:Task", requires=("label", "objects"), description="a task")

    @hookimpl
    def register_attention_methods(self, register):
        register("listing-attention", "listing_pkg.attention:run", description="an attention method")


@pytest.fixture
def listing_plugin():
    pm.register(ListingPlugin(), name="listing-plugin")
    yield
    pm.unregister(name="listing-plugin")


def run(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def row(text: str, name: str) -> list[str]:
    """The cells of the table row starting with ``name`` (tabulate separates cells by 2+ spaces)."""
    (line,) = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    return re.split(r"\s{2,}", line.strip())


EXPECTED = {
    "models": ("listing-model", {"tasks": ["free-viewing", "classification"], "attention": ["gradcam", "rollout"],
                                 "description": "a model for the listing test"}),
    "datasets": ("listing-data", {"tasks": ["free-viewing"], "description": "gaze data"}),
    "metrics": ("listing-metric", {"higher_is_better": False, "description": "lower wins"}),
    "tasks": ("listing-task", {"requires": ["label", "objects"], "description": "a task"}),
    "attention-methods": ("listing-attention", {"description": "an attention method"}),
}


@pytest.mark.parametrize("command", sorted(EXPECTED))
def test_listing_json(listing_plugin, command):
    name, fields = EXPECTED[command]
    rows = json.loads(run(command, "--json").stdout)
    assert [r["name"] for r in rows] == sorted(r["name"] for r in rows)
    (mine,) = [r for r in rows if r["name"] == name]
    assert mine == {"name": name, "plugin": "listing-plugin", **fields}


def test_listing_text(listing_plugin):
    assert row(run("models").stdout, "listing-model") == [
        "listing-model", "listing-plugin", "free-viewing, classification", "gradcam, rollout",
        "a model for the listing test",
    ]
    assert row(run("datasets").stdout, "listing-data") == ["listing-data", "listing-plugin", "free-viewing", "gaze data"]
    assert row(run("metrics").stdout, "listing-metric") == ["listing-metric", "listing-plugin", "False", "lower wins"]
    assert row(run("tasks").stdout, "listing-task") == ["listing-task", "listing-plugin", "label, objects", "a task"]
    assert row(run("attention-methods").stdout, "listing-attention") == [
        "listing-attention", "listing-plugin", "an attention method",
    ]
    header = run("models").stdout.splitlines()[0].split()
    assert header == ["name", "plugin", "tasks", "attention", "description"]


def test_plugins_listing(listing_plugin):
    report = json.loads(run("plugins", "--json").stdout)
    assert set(report) == {"plugins", "failed", "hook_failures", "conflicts"}
    (mine,) = [p for p in report["plugins"] if p["name"] == "listing-plugin"]
    assert mine == {
        "name": "listing-plugin", "version": "?", "source": "registered at run time",
        "hooks": ["register_attention_methods", "register_datasets", "register_metrics", "register_models",
                  "register_tasks"],
    }
    # built-ins first, then the rest, each group by name
    order = [(p["source"] != "built-in", p["name"]) for p in report["plugins"]]
    assert order == sorted(order)
    for p in report["plugins"]:
        if p["source"] == "built-in":
            assert p["version"] == __version__

    text = run("plugins").stdout
    assert text.splitlines()[0].split() == ["plugin", "version", "source", "hooks"]
    cells = row(text, "listing-plugin")
    assert cells[:3] == ["listing-plugin", "?", "registered at run time"]
    assert cells[3].split(", ") == mine["hooks"]


def test_listing_with_a_clash_still_lists_and_warns(listing_plugin):
    class Clash:
        @hookimpl
        def register_metrics(self, register):
            register("listing-metric", "elsewhere:score", higher_is_better=True)

    pm.register(Clash(), name="clash-plugin")
    try:
        warning = ("warning: metric 'listing-metric' is registered by two plugins, 'clash-plugin' and "
                   "'listing-plugin': uninstall or rename one; it is left out until then\n")
        for command in ("models", "datasets", "metrics", "tasks", "attention-methods"):
            # a clash breaks only the contested name: every listing still works, and says why
            result = CliRunner().invoke(main, [command])
            assert result.exit_code == 0, command
            assert "listing-metric" not in result.stdout
            assert warning in result.stderr and "Traceback" not in result.stderr
        assert "cc" in CliRunner().invoke(main, ["metrics"]).stdout
    finally:
        pm.unregister(name="clash-plugin")


def test_version():
    assert run("--version").stdout.strip() == f"harness, version {__version__}"
