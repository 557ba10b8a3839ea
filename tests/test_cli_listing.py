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
        register("listing-data", "listing_pkg.data:Data", tasks=("free-viewing",), description="gaze data",
                 licence="CC-BY-4.0")

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
    "datasets": ("listing-data", {"tasks": ["free-viewing"], "licence": "CC-BY-4.0", "description": "gaze data"}),
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
    assert row(run("models", "--wide").stdout, "listing-model") == [
        "listing-model", "listing-plugin", "free-viewing, classification", "gradcam, rollout",
        "a model for the listing test",
    ]
    assert row(run("datasets", "--wide").stdout, "listing-data") == [
        "listing-data", "listing-plugin", "free-viewing", "CC-BY-4.0", "gaze data"]
    assert row(run("metrics", "--wide").stdout, "listing-metric") == [
        "listing-metric", "listing-plugin", "False", "lower wins"]
    assert row(run("tasks", "--wide").stdout, "listing-task") == ["listing-task", "listing-plugin", "label, objects",
                                                                  "a task"]
    assert row(run("attention-methods", "--wide").stdout, "listing-attention") == [
        "listing-attention", "listing-plugin", "an attention method",
    ]
    header = run("models", "--wide").stdout.splitlines()[0].split()
    assert header == ["name", "plugin", "tasks", "attention", "description"]
    assert run("datasets", "--wide").stdout.splitlines()[0].split() == ["name", "plugin", "tasks", "licence",
                                                                         "description"]


LISTINGS = ("plugins", "models", "datasets", "metrics", "tasks", "attention-methods")


@pytest.mark.parametrize("command", LISTINGS)
def test_listings_fit_80_columns(listing_plugin, monkeypatch, command):
    """COLUMNS=80: long text wraps and the description goes when it would be unreadable; every
    name is still listed; --wide prints everything on one line per entry."""
    monkeypatch.setenv("COLUMNS", "80")
    text = run(command).stdout
    assert max(len(line) for line in text.splitlines()) <= 80, text
    wide = run(command, "--wide").stdout
    names = [ln.split()[0] for ln in wide.splitlines()[2:] if ln.strip()]
    assert [ln.split()[0] for ln in text.splitlines()[2:] if ln[:1].strip()][:len(names)] == names
    if command == "models":  # ~300 columns in full
        assert max(len(line) for line in wide.splitlines()) > 200
        assert "description" not in text.splitlines()[0] and "description" in wide.splitlines()[0]
        assert text.rstrip().endswith("(description left out to fit 80 columns; --wide or --json shows it)")
        assert "a model for the listing test" in wide


def test_listing_width_without_a_terminal(listing_plugin, monkeypatch):
    """Not a terminal and no COLUMNS: 100 columns."""
    monkeypatch.delenv("COLUMNS", raising=False)
    for command in LISTINGS:
        text = run(command).stdout
        assert max(len(line) for line in text.splitlines()) <= 100, command


def test_dataset_licences(monkeypatch):
    """The licence a plugin registers, else its registry.yaml entry's; in the table and in --json."""
    from harness.cli import dataset_licence
    from harness.registry import Spec

    rows = {r["name"]: r for r in json.loads(run("datasets", "--json").stdout)}
    assert rows["osie"]["licence"] == "MIT"
    assert all(r["licence"] for r in rows.values())
    assert row(run("datasets", "--wide").stdout, "osie")[3] == "MIT"
    bare = Spec(kind="dataset", name="x", factory="m:f", plugin="osie", metadata={})
    assert dataset_licence(bare) == "MIT"  # from registry.yaml
    assert dataset_licence(Spec(kind="dataset", name="x", factory="m:f", plugin="nowhere", metadata={})) is None


def test_plugins_listing(listing_plugin):
    report = json.loads(run("plugins", "--json").stdout)
    assert set(report) == {"plugins", "failed", "hook_failures", "conflicts"}
    (mine,) = [p for p in report["plugins"] if p["name"] == "listing-plugin"]
    assert mine == {
        "name": "listing-plugin", "version": "?", "source": "registered at run time",
        "hooks": ["register_attention_methods", "register_datasets", "register_metrics", "register_models",
                  "register_tasks"], "imports_when_loaded": [],
    }
    # built-ins first, then the rest, each group by name
    order = [(p["source"] != "built-in", p["name"]) for p in report["plugins"]]
    assert order == sorted(order)
    for p in report["plugins"]:
        if p["source"] == "built-in":
            assert p["version"] == __version__

    text = run("plugins", "--wide").stdout
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
