"""The plugin system end to end: run-time plugins, real entry points from distributions on
``sys.path``, broken and clashing plugins, lazy factories, and the example in docs/plugins.md.

Distributions are real: a package plus a ``<dist>-<version>.dist-info`` folder with ``METADATA``
and ``entry_points.txt``, which is exactly what pip installs, so ``importlib.metadata`` finds them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import tomllib
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import harness.plugins as plugins_mod
from harness.cli import main
from harness.errors import HarnessError, PluginError
from harness.hookspecs import hookimpl
from harness.models import Prediction, load_model
from harness.plugins import get_registry, pm, reset_for_tests
from harness.results import load_runs
from plugins.datasets.osie import OSIE as OSIEForNames

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins.md"


# --------------------------------------------------------------------------------------------
# helpers


def write_dist(root: Path, dist: str, files: dict[str, str], entry_points: dict[str, str], version="0.1") -> Path:
    """Write package files and a dist-info folder (as pip would) under ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    eps = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[harness]\n{eps}")
    return root


def unique(prefix: str) -> str:
    """A fresh package name: modules a test imported stay in sys.modules."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def third_party(failed: list[dict]) -> list[dict]:
    """Load failures of distributions (broken built-ins are test_listing_does_not_import_torch's)."""
    return [f for f in failed if f["source"] != "built-in"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def invoke_json(*args: str):
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def run_cli(args: list[str], pythonpath: list[Path]) -> subprocess.CompletedProcess:
    """``harness ARGS`` in a fresh interpreter that sees ``pythonpath``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in pythonpath] + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["COLUMNS"] = "1000"  # full-width tables: these tests compare whole cells
    return subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def fresh(monkeypatch):
    """Entry points are read again in this test and forgotten after it (before monkeypatch takes
    the test's folders off sys.path), and test packages are dropped from sys.modules."""
    before = set(sys.modules)
    reset_for_tests()
    yield monkeypatch
    reset_for_tests()
    for name in set(sys.modules) - before:
        if name.startswith(("hpt_", "harness_mylab")):
            del sys.modules[name]


class CentreModel:
    """A real (if simple) free-viewing model: an isotropic Gaussian at the image centre."""

    name = "runtime-centre"
    tasks = ("free-viewing",)
    attention_methods = ("native",)

    def __init__(self, sigma: float = 0.25):
        self.sigma = sigma

    def provenance(self):
        return {"model_id": "runtime-centre", "weights_sha256": None}

    def predict(self, images, *, task="free-viewing", attention="native"):
        out = []
        for img in images:
            w, h = img.size
            ys, xs = np.mgrid[0:h, 0:w]
            d2 = ((xs - (w - 1) / 2) / w) ** 2 + ((ys - (h - 1) / 2) / h) ** 2
            out.append(Prediction(attention=np.exp(-d2 / (2 * self.sigma**2))))
        return out


def make_plugin(models=(), datasets=(), metrics=(), attention=(), tasks=()):
    """A plugin object whose hooks register the given ``(name, factory, metadata)`` triples."""

    def hook(entries):
        def impl(self, register):
            for name, factory, meta in entries:
                register(name, factory, **meta)

        return hookimpl(impl)

    body = {}
    for hook_name, entries in [
        ("register_models", models),
        ("register_datasets", datasets),
        ("register_metrics", metrics),
        ("register_attention_methods", attention),
        ("register_tasks", tasks),
    ]:
        if entries:
            body[hook_name] = hook(entries)
    return type("TestPlugin", (), body)()


# --------------------------------------------------------------------------------------------
# (1) a plugin registered for the duration of one test


def test_runtime_plugin_visible_then_gone():
    plugin = make_plugin(
        models=[("runtime-centre", CentreModel, {"tasks": ("free-viewing",), "attention": ("native",),
                                                  "description": "centre bias"})],
        datasets=[("runtime-gaze", dict, {"tasks": ("free-viewing",), "description": "test data"})],
    )
    pm.register(plugin, name="runtime-test")
    try:
        reg = get_registry()
        spec = reg.get("model", "runtime-centre")
        assert spec.plugin == "runtime-test"
        assert spec["tasks"] == ("free-viewing",)
        assert reg.get("dataset", "runtime-gaze").plugin == "runtime-test"

        model = load_model("runtime-centre", sigma=0.1)
        (pred,) = model.predict([Image.new("RGB", (40, 30))], task="free-viewing", attention="native")
        assert pred.attention.shape == (30, 40)
        assert np.unravel_index(pred.attention.argmax(), pred.attention.shape) in {(14, 19), (14, 20), (15, 19), (15, 20)}

        models = {r["name"]: r for r in invoke_json("models")}
        assert models["runtime-centre"] == {
            "name": "runtime-centre", "plugin": "runtime-test", "tasks": ["free-viewing"],
            "attention": ["native"], "description": "centre bias",
        }
        datasets = {r["name"]: r for r in invoke_json("datasets")}
        assert datasets["runtime-gaze"]["plugin"] == "runtime-test"
        listed = {p["name"]: p for p in invoke_json("plugins")["plugins"]}
        assert listed["runtime-test"]["hooks"] == ["register_datasets", "register_models"]
        assert listed["runtime-test"]["source"] == "registered at run time"
        assert "runtime-centre" in invoke("models").stdout
    finally:
        pm.unregister(name="runtime-test")

    reg = get_registry()
    assert ("model", "runtime-centre") not in reg
    assert ("dataset", "runtime-gaze") not in reg
    assert "runtime-centre" not in [r["name"] for r in invoke_json("models")]
    assert "runtime-test" not in [p["name"] for p in invoke_json("plugins")["plugins"]]


# --------------------------------------------------------------------------------------------
# (2) a real entry point from a distribution on sys.path

PLUGIN_SRC = """
    from harness.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register("{model}", "{pkg}.model:Flat", tasks=("free-viewing",), attention=("native",),
                 description="uniform map")

    @hookimpl
    def register_datasets(register):
        register("{dataset}", "{pkg}.model:Flat", tasks=("free-viewing",))
"""

MODEL_SRC = """
    import numpy as np
    from harness.models import Prediction

    class Flat:
        name = "flat"
        tasks = ("free-viewing",)
        attention_methods = ("native",)

        def provenance(self):
            return {"model_id": "flat"}

        def predict(self, images, *, task, attention):
            return [Prediction(attention=np.ones((im.size[1], im.size[0]))) for im in images]
"""


def flat_dist(root: Path, dist: str, pkg: str, model: str, dataset: str) -> Path:
    return write_dist(
        root,
        dist,
        {
            f"{pkg}/__init__.py": "",
            f"{pkg}/plugin.py": PLUGIN_SRC.format(pkg=pkg, model=model, dataset=dataset),
            f"{pkg}/model.py": MODEL_SRC,
        },
        {"flatplugin": f"{pkg}.plugin"},
    )


def test_entry_point_from_distribution(tmp_path, fresh):
    pkg = unique("hpt_flat")
    flat_dist(tmp_path, "harness-flat", pkg, "flat-model", "flat-data")
    fresh.syspath_prepend(str(tmp_path))
    reset_for_tests()

    report = invoke_json("plugins")
    listed = {p["name"]: p for p in report["plugins"]}
    assert listed["flatplugin"] == {
        "name": "flatplugin", "version": "0.1", "source": "distribution harness-flat",
        "hooks": ["register_datasets", "register_models"], "imports_when_loaded": [],
    }
    assert third_party(report["failed"]) == []
    text = invoke("plugins").stdout
    assert re.search(r"flatplugin\s+0\.1\s+distribution harness-flat\s+register_datasets, register_models", text)

    models = {r["name"]: r for r in invoke_json("models")}
    assert models["flat-model"]["plugin"] == "flatplugin"
    assert "flat-data" in [r["name"] for r in invoke_json("datasets")]
    assert pkg + ".model" not in sys.modules  # listing is lazy
    (pred,) = load_model("flat-model").predict([Image.new("RGB", (7, 5))], task="free-viewing", attention="native")
    assert pred.attention.shape == (5, 7)


def test_entry_point_discovered_in_fresh_interpreter(tmp_path):
    pkg = unique("hpt_sub")
    flat_dist(tmp_path, "harness-flat-sub", pkg, "flat-sub-model", "flat-sub-data")
    proc = run_cli(["plugins", "--json"], [tmp_path])
    assert proc.returncode == 0, proc.stderr
    listed = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    assert listed["flatplugin"]["source"] == "distribution harness-flat-sub"
    assert listed["flatplugin"]["version"] == "0.1"
    proc = run_cli(["models"], [tmp_path])
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"flat-sub-model\s+flatplugin\s+free-viewing\s+native\s+uniform map", proc.stdout)
    # and without the folder on the path the plugin is simply not there
    proc = run_cli(["models"], [])
    assert proc.returncode == 0 and "flat-sub-model" not in proc.stdout


def test_a_plugin_importing_torch_when_it_loads_is_named(tmp_path):
    """Nothing told an author that a torch import in the hooks module made every listing command
    take seconds (found by QA): `harness plugins` says which plugin, and what it imports."""
    pkg = unique("hpt_heavy")
    write_dist(tmp_path, "harness-heavy", {f"{pkg}/__init__.py": """
        import torch  # the mistake: at import time, not inside a function
        from harness.hookspecs import hookimpl

        @hookimpl
        def register_models(register):
            register("heavy-model", "x:y")
    """}, {"heavyplugin": pkg})
    proc = run_cli(["plugins"], [tmp_path])
    assert proc.returncode == 0, proc.stderr
    assert ("warning: plugin 'heavyplugin' (distribution harness-heavy) imports torch when it loads: every harness "
            "command, listings included, then waits for it; import it inside the functions that need it "
            "(docs/plugins.md)") in proc.stderr.splitlines(), proc.stderr
    listed = {p["name"]: p for p in json.loads(run_cli(["plugins", "--json"], [tmp_path]).stdout)["plugins"]}
    assert listed["heavyplugin"]["imports_when_loaded"] == ["torch"]
    assert all(p["imports_when_loaded"] == [] for name, p in listed.items() if name != "heavyplugin")


# --------------------------------------------------------------------------------------------
# (3) broken plugins are reported by name and skipped


def test_broken_plugins_reported_and_skipped(tmp_path, fresh):
    good, bad = unique("hpt_good"), unique("hpt_bad")
    flat_dist(tmp_path / "good", "harness-good", good, "good-model", "good-data")
    write_dist(
        tmp_path / "bad",
        "harness-bad",
        {
            f"{bad}/__init__.py": "",
            f"{bad}/plugin.py": "raise ImportError('needs libfoo >= 2')\n",
            f"{bad}/typo.py": """
                from harness.hookspecs import hookimpl

                @hookimpl
                def register_model(register):
                    register("never", "x:y")
            """,
            f"{bad}/badargs.py": """
                from harness.hookspecs import hookimpl

                @hookimpl
                def register_models(registry):
                    pass
            """,
            f"{bad}/unmarked.py": """
                def register_models(register):  # the @hookimpl forgotten: pluggy would skip it
                    register("never-either", "x:y")
            """,
        },
        {
            "importfails": f"{bad}.plugin",
            "typo": f"{bad}.typo",
            "badargs": f"{bad}.badargs",
            "unmarked": f"{bad}.unmarked",
            "missing": f"{bad}.nosuchmodule",
        },
    )
    fresh.syspath_prepend(str(tmp_path / "good"))
    fresh.syspath_prepend(str(tmp_path / "bad"))
    reset_for_tests()

    report = invoke_json("plugins")
    failed = {f["name"]: f for f in third_party(report["failed"])}
    assert set(failed) == {"importfails", "typo", "badargs", "unmarked", "missing"}
    assert all(f["source"] == "distribution harness-bad" for f in failed.values())
    assert failed["importfails"]["error"] == "ImportError: needs libfoo >= 2"
    assert failed["typo"]["error"].startswith(
        "PluginError: implements unknown hook 'register_model' (did you mean 'register_models'?)"
    )
    assert "ModuleNotFoundError" in failed["missing"]["error"] and "nosuchmodule" in failed["missing"]["error"]
    assert "registry" in failed["badargs"]["error"]
    assert failed["unmarked"]["error"] == ("PluginError: defines 'register_models' without @hookimpl (from "
                                           "harness.hookspecs import hookimpl), so it would never be called")
    assert all("\n" not in f["error"] for f in failed.values())
    listed = [p["name"] for p in report["plugins"]]
    assert "flatplugin" in listed and not set(failed) & set(listed)

    text = invoke("plugins")
    assert text.exit_code == 0
    assert "failed to load plugin 'importfails' (distribution harness-bad): ImportError: needs libfoo >= 2" in text.stderr
    models = invoke("models")
    assert models.exit_code == 0 and "good-model" in models.stdout and "never" not in models.stdout
    # the listings and a failed lookup say why an installed plugin's names are missing
    assert ("warning: plugin 'importfails' (distribution harness-bad) failed to load: "
            "ImportError: needs libfoo >= 2\n") in models.stderr
    assert json.loads(invoke("models", "--json").stdout)  # warnings stay off stdout
    with pytest.raises(HarnessError) as err:
        load_model("libfoo-model")
    assert "Plugin 'importfails' failed to load (ImportError: needs libfoo >= 2)." in str(err.value)
    assert "\n" not in str(err.value)


def test_plugin_name_taken_by_two_distributions(tmp_path, fresh):
    a, b = unique("hpt_a"), unique("hpt_b")
    flat_dist(tmp_path / "a", "harness-aaa", a, "aaa-model", "aaa-data")
    flat_dist(tmp_path / "b", "harness-bbb", b, "bbb-model", "bbb-data")
    fresh.syspath_prepend(str(tmp_path / "b"))
    fresh.syspath_prepend(str(tmp_path / "a"))  # first on sys.path: found first
    reset_for_tests()
    report = invoke_json("plugins")
    assert [p["source"] for p in report["plugins"] if p["name"] == "flatplugin"] == ["distribution harness-aaa"]
    assert third_party(report["failed"]) == [{
        "name": "flatplugin", "source": "distribution harness-bbb",
        "error": "PluginError: plugin name 'flatplugin' is already taken by plugin from distribution harness-aaa",
    }]


# --------------------------------------------------------------------------------------------
# (4) one name registered by two plugins, hooks that raise: the rest keeps working


def test_duplicate_model_name_names_both_plugins(fresh):
    first = make_plugin(models=[("dup-model", CentreModel, {}), ("first-only", CentreModel, {})])
    second = make_plugin(models=[("dup-model", "somewhere.else:Model", {})])
    pm.register(first, name="first-plugin")
    pm.register(second, name="second-plugin")
    try:
        reg = get_registry()
        with pytest.raises(PluginError) as err:
            reg.get("model", "dup-model")
        assert str(err.value) == ("model 'dup-model' is registered by two plugins, 'first-plugin' and "
                                  "'second-plugin': uninstall or rename one")
        with pytest.raises(PluginError, match=r"^model 'dup-model' is registered by two plugins"):
            load_model("dup-model")
        assert reg.get("model", "first-only").plugin == "first-plugin"
        result = CliRunner().invoke(main, ["models"])
        assert result.exit_code == 0 and "Traceback" not in result.output
        listed = [line.split()[0] for line in result.stdout.splitlines()[2:]]
        assert "first-only" in listed and "dup-model" not in listed and "uniform" in listed
        assert result.stderr.count("'second-plugin'") == 1
        assert ("warning: model 'dup-model' is registered by two plugins, 'first-plugin' and 'second-plugin': "
                "uninstall or rename one; it is left out until then\n") in result.stderr
    finally:
        pm.unregister(name="first-plugin")
        pm.unregister(name="second-plugin")
    assert invoke("models").stderr == ""


def test_contested_name_left_out_of_iteration(fresh):
    """A metric two plugins register is not handed out by in_order/all/names/in: an evaluation
    iterating the metrics must not score with either of the two at random."""
    builtin = [s.name for s in get_registry().in_order("metric")]
    assert "nss" in builtin
    for name in ("third-a", "third-b"):
        pm.register(make_plugin(metrics=[("nss", "elsewhere:nss", {"higher_is_better": True}),
                                         (f"{name}-metric", "elsewhere:m", {"higher_is_better": True})]), name=name)
    try:
        reg = get_registry()
        assert [s.name for s in reg.in_order("metric")] == [n for n in builtin if n != "nss"] + [
            "third-a-metric", "third-b-metric"]
        assert "nss" not in reg.names("metric") and "nss" not in [s.name for s in reg.all("metric")]
        assert ("metric", "nss") not in reg and ("metric", "third-a-metric") in reg
        (conflict,) = reg.conflicts()
        assert (conflict.kind, conflict.name) == ("metric", "nss")
        assert set(conflict.plugins) == {"saliency-metrics", "third-a", "third-b"}
        with pytest.raises(PluginError) as err:
            reg.get("metric", "nss")
        assert str(err.value) == ("metric 'nss' is registered by 3 plugins, 'saliency-metrics', 'third-a' and "
                                  "'third-b': uninstall or rename all but one")
        metrics = invoke("metrics")
        assert metrics.exit_code == 0 and "warning: metric 'nss' is registered by 3 plugins" in metrics.stderr
        assert "nss " not in metrics.stdout and "third-b-metric" in metrics.stdout
    finally:
        pm.unregister(name="third-a")
        pm.unregister(name="third-b")


def test_duplicate_across_distributions_in_fresh_interpreter(tmp_path):
    """Two third-party packages that register one dataset name: the rest is listed, exit 0, the
    clash is one warning line naming both; using the name is one error line naming both."""
    a, b = unique("hpt_da"), unique("hpt_db")
    write_dist(tmp_path, "harness-one", {f"{a}/__init__.py": "", f"{a}/plugin.py": PLUGIN_SRC.format(
        pkg=a, model="one-model", dataset="shared-data")}, {"one": f"{a}.plugin"})
    write_dist(tmp_path, "harness-two", {f"{b}/__init__.py": "", f"{b}/plugin.py": PLUGIN_SRC.format(
        pkg=b, model="two-model", dataset="shared-data")}, {"two": f"{b}.plugin"})
    proc = run_cli(["datasets"], [tmp_path])
    assert proc.returncode == 0, proc.stderr
    assert "shared-data" not in proc.stdout and "osie" in proc.stdout
    assert proc.stderr == ("warning: dataset 'shared-data' is registered by two plugins, 'one' and 'two': "
                           "uninstall or rename one; it is left out until then\n")
    proc = run_cli(["models"], [tmp_path])
    assert proc.returncode == 0 and "one-model" in proc.stdout and "two-model" in proc.stdout
    proc = run_cli(["datasets", "info", "shared-data"], [tmp_path])
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.endswith("Error: dataset 'shared-data' is registered by two plugins, 'one' and 'two': "
                                "uninstall or rename one\n")


CLASH_SRC = """
    from harness.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register("center-bias", "{pkg}.model:Mine", description="not the built-in")
        register("clash-own-model", "{pkg}.model:Mine", description="mine alone")
"""

RAISING_SRC = """
    from harness.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register("raiser-model", "{pkg}.model:Model", description="from the healthy hook")

    @hookimpl
    def register_datasets(register):
        register("raiser-partial", "{pkg}.data:Data")
        raise RuntimeError("config file missing")
"""


def bad_dists(root: Path) -> Path:
    """``clashing`` registers the built-in model name ``center-bias``; ``raising``'s
    register_datasets raises after registering one dataset."""
    c, r = unique("hpt_clash"), unique("hpt_raise")
    write_dist(root, "harness-clash", {f"{c}/__init__.py": "", f"{c}/plugin.py": CLASH_SRC.format(pkg=c)},
               {"clashing": f"{c}.plugin"})
    write_dist(root, "harness-raise", {f"{r}/__init__.py": "", f"{r}/plugin.py": RAISING_SRC.format(pkg=r)},
               {"raising": f"{r}.plugin"})
    return root


def test_bad_plugins_do_not_break_other_commands(tmp_path):
    """A plugin that clashes with a built-in and one whose hook raises: every command exits as it
    would without them, and stderr names each bad plugin once (``plugins --json``: in its output)."""
    bad = bad_dists(tmp_path / "site")
    (tmp_path / "runs").mkdir()
    commands = [["models"], ["datasets"], ["plugins"], ["plugins", "--json"],
                ["leaderboard", "show", "--results", str(tmp_path / "runs")],
                ["leaderboard", "show", "--results", str(tmp_path / "no-such-folder")]]
    for args in commands:
        clean, proc = run_cli(args, []), run_cli(args, [bad])
        assert proc.returncode == clean.returncode, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        if "no-such-folder" in args[-1]:  # fails before building the registry: the plugins play no part
            assert (proc.stdout, proc.stderr) == (clean.stdout, clean.stderr)
            continue
        once = 0 if "--json" in args else 1  # --json reports them in its output instead
        assert proc.stderr.count("'clashing'") == once, (args, proc.stderr)
        assert proc.stderr.count("'raising'") == once, (args, proc.stderr)
        if args[0] == "leaderboard":
            assert proc.stdout == clean.stdout
            # clean.stderr is the command's own error (no finished runs)
            assert proc.stderr.endswith(clean.stderr) and clean.stderr.startswith("Error: ")
        if args == ["datasets"]:
            assert proc.stdout == clean.stdout  # the raising hook's partial registration is gone
        if args == ["models"]:
            rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
            clean_rows = {line.split()[0]: line for line in clean.stdout.splitlines()[2:]}
            assert "center-bias" in clean_rows and "center-bias" not in rows
            assert {"clash-own-model", "raiser-model"} <= set(rows)
            assert set(rows) == set(clean_rows) - {"center-bias"} | {"clash-own-model", "raiser-model"}
        if args == ["plugins"]:
            def cells(text):  # tabulate's column widths follow the longest cell
                return {tuple(re.split(r"\s{2,}", line.strip())) for line in text.splitlines()[2:]}

            assert cells(clean.stdout) <= cells(proc.stdout)  # the healthy plugins' rows are unchanged
            assert re.search(r"^clashing\s+0\.1\s+distribution harness-clash\s+register_models$", proc.stdout, re.M)
            assert ("model 'center-bias' is registered by two plugins, 'baselines' and 'clashing': "
                    "uninstall or rename one; it is left out until then\n") in proc.stderr
            assert ("plugin 'raising' failed in register_datasets: RuntimeError: config file missing; "
                    "the datasets it registers are left out\n") in proc.stderr
        if args == ["plugins", "--json"]:
            report = json.loads(proc.stdout)
            assert report["conflicts"] == [{"kind": "model", "name": "center-bias", "plugins": ["baselines", "clashing"]}]
            assert report["hook_failures"] == [{"plugin": "raising", "hook": "register_datasets",
                                                "error": "RuntimeError: config file missing",
                                                "dropped": ["raiser-partial"]}]
            assert json.loads(clean.stdout)["conflicts"] == json.loads(clean.stdout)["hook_failures"] == []
            assert third_party(report["failed"]) == []


USE_BAD_NAMES = """
from harness.errors import HarnessError
from harness.models import load_model
from harness.plugins import get_registry

for _ in range(3):
    reg = get_registry()
print(reg.get("model", "clash-own-model").plugin, reg.get("model", "raiser-model").plugin)
for kind, name in [("model", "center-bias"), ("dataset", "raiser-partial")]:
    try:
        reg.get(kind, name)
    except HarnessError as exc:
        print(exc)
"""


def test_bad_plugins_reported_once_per_process_and_named_on_use(tmp_path):
    bad = bad_dists(tmp_path)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(bad), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", USE_BAD_NAMES], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "warning: model 'center-bias' is registered by two plugins, 'baselines' and 'clashing': "
        "uninstall or rename one; it is left out until then\n"
        "warning: plugin 'raising' failed in register_datasets: RuntimeError: config file missing; "
        "the datasets it registers are left out\n"
    )
    # the raising plugin's other hook still works; the names in trouble are one line naming the plugins
    assert proc.stdout.splitlines() == [
        "clashing raising",
        "model 'center-bias' is registered by two plugins, 'baselines' and 'clashing': uninstall or rename one",
        "dataset 'raiser-partial' is unavailable: plugin 'raising' failed in register_datasets: "
        "RuntimeError: config file missing",
    ]


def test_failed_hook_drops_only_that_hook(fresh):
    class Half:
        @hookimpl
        def register_models(self, register):
            register("half-model", CentreModel)

        @hookimpl
        def register_datasets(self, register):
            register("half-data", dict)
            register("half-data-2", dict)
            raise RuntimeError("config file missing")

    pm.register(Half(), name="half-plugin")
    try:
        reg = get_registry()
        assert reg.get("model", "half-model").plugin == "half-plugin"  # the healthy hook counts
        assert ("dataset", "half-data") not in reg and ("dataset", "half-data-2") not in reg
        assert ("dataset", "osie") in reg
        (failure,) = reg.hook_failures
        assert (failure.plugin, failure.hook, failure.error, failure.names) == (
            "half-plugin", "register_datasets", "RuntimeError: config file missing", ("half-data", "half-data-2"))
        with pytest.raises(PluginError) as err:
            reg.get("dataset", "half-data")
        assert str(err.value) == ("dataset 'half-data' is unavailable: plugin 'half-plugin' failed in "
                                  "register_datasets: RuntimeError: config file missing")
        # a name the hook never reached: unknown, and the failure is named as a likely reason
        with pytest.raises(HarnessError, match=r"unknown dataset 'half-data-3'.* Plugin 'half-plugin' failed in "
                                               r"register_datasets \(RuntimeError: config file missing\)\.$"):
            reg.get("dataset", "half-data-3")
        assert isinstance(load_model("half-model"), CentreModel)
        datasets = invoke("datasets")
        assert datasets.exit_code == 0 and "half-data" not in datasets.stdout and "osie" in datasets.stdout
        assert datasets.stderr == ("warning: plugin 'half-plugin' failed in register_datasets: RuntimeError: "
                                   "config file missing; the datasets it registers are left out\n")
    finally:
        pm.unregister(name="half-plugin")


# --------------------------------------------------------------------------------------------
# (5) unknown names suggest close matches


def test_unknown_names_suggest_close_matches():
    plugin = make_plugin(
        models=[("gazenet-small", CentreModel, {}), ("gazenet-large", CentreModel, {})],
        datasets=[("eyetrack-freeview", dict, {})],
    )
    pm.register(plugin, name="names-test")
    try:
        with pytest.raises(HarnessError, match=r"unknown model 'gazenet-smal'; did you mean 'gazenet-small'"):
            load_model("gazenet-smal")
        with pytest.raises(HarnessError) as err:
            load_model("gazenet")
        assert "did you mean" in str(err.value)
        assert {"'gazenet-small'", "'gazenet-large'"} <= set(re.findall(r"'[^']+'", str(err.value)))
        with pytest.raises(HarnessError, match=r"unknown dataset 'eyetrack-freeveiw'; did you mean 'eyetrack-freeview'"):
            get_registry().get("dataset", "eyetrack-freeveiw")
        # nothing close: the error lists what exists instead
        with pytest.raises(HarnessError) as err:
            get_registry().get("dataset", "zzzzzzzzzzzz")
        assert "; known:" in str(err.value) and "eyetrack-freeview" in str(err.value)
        assert "\n" not in str(err.value)
    finally:
        pm.unregister(name="names-test")


# --------------------------------------------------------------------------------------------
# (6) listing never imports torch or transformers (nor datasets), with every built-in plugin registered

LIGHT_CHECK = r"""
import sys, traceback

HEAVY = ("torch", "transformers", "datasets")
first_import = {}

class Spy:
    # records who imports a heavy module first, so a failure says which plugin is at fault
    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in first_import:
            frames = [f for f in traceback.format_stack()[:-1] if "<frozen" not in f]
            first_import[name] = "".join(frames[-12:])
        return None

sys.meta_path.insert(0, Spy())

from click.testing import CliRunner
from harness.cli import main
import harness.plugins

for args in (["plugins"], ["plugins", "--json"], ["models"], ["datasets"], ["metrics"], ["tasks"],
             ["attention-methods"]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, (args, result.output)
for name in HEAVY:
    assert name not in sys.modules, f"{name} imported by:\n{first_import.get(name)}"
failed = [(f.name, f.error) for f in harness.plugins.failures]
assert not failed, f"plugins failed to load: {failed}"
print(sorted(harness.plugins.pm.list_name_plugin()) and "ok")
"""


def test_listing_does_not_import_torch():
    catalogue = plugins_mod.builtin_catalogue()
    proc = subprocess.run([sys.executable, "-c", LIGHT_CHECK], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # every built-in in registry.yaml was really registered in that interpreter
    proc = subprocess.run(
        [sys.executable, "-c", "from harness.cli import main; main()", "plugins", "--json"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    listed = {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}
    for entry in catalogue:
        assert entry["name"] in listed, f"built-in plugin {entry['name']!r} not loaded"
        assert listed[entry["name"]]["source"] == "built-in"
        assert listed[entry["name"]]["hooks"], f"built-in plugin {entry['name']!r} implements no hook"


def builtin_modules() -> list[str]:
    root = REPO / "plugins"
    return sorted(".".join(("plugins", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
                  for p in root.rglob("*.py"))


def test_every_builtin_module_imports_light():
    """Also the modules in plugins/ that registry.yaml does not list (yet)."""
    modules = builtin_modules()
    code = LIGHT_CHECK.split("from click.testing")[0] + textwrap.dedent(f"""
        import importlib
        for module in {modules!r}:
            importlib.import_module(module)
            for name in HEAVY:
                assert name not in sys.modules, f"{{module}} imports {{name}}:\\n{{first_import.get(name)}}"
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _module_file(module: str) -> Path:
    path = REPO.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_every_builtin_module_with_hooks_is_in_registry_yaml():
    """A built-in written but not catalogued would silently be missing from every listing."""
    catalogued = {entry["module"] for entry in plugins_mod.builtin_catalogue()}
    with_hooks = [m for m in builtin_modules()
                  if re.search(r"^@hookimpl", _module_file(m).read_text(), re.M)]
    assert with_hooks
    missing = sorted(set(with_hooks) - catalogued)
    assert not missing, f"plugin modules with hooks but not in registry.yaml: {missing}"


# --------------------------------------------------------------------------------------------
# (7) factories: invalid strings and imports that fail at use time


@pytest.mark.parametrize("factory", ["no_colon_here", "module.only:", ":attr_only"])
def test_invalid_factory_string_names_plugin(factory, fresh):
    """An invalid spec drops that hook's registrations and is reported; it breaks nothing else, and
    using the name is one line naming the plugin and the factory."""
    pm.register(make_plugin(models=[("ok-before", CentreModel, {}), ("bad-factory", factory, {})],
                            datasets=[("bad-factory-data", dict, {})]), name="bad-factory-plugin")
    try:
        reg = get_registry()
        with pytest.raises(PluginError) as err:
            reg.get("model", "bad-factory")
        msg = str(err.value)
        assert "'bad-factory-plugin'" in msg and repr(factory) in msg and "'module:attr'" in msg
        assert "\n" not in msg
        assert ("model", "ok-before") not in reg  # none of the failed hook's registrations remain
        assert reg.get("dataset", "bad-factory-data").plugin == "bad-factory-plugin"
        result = CliRunner().invoke(main, ["models"])
        assert result.exit_code == 0 and "uniform" in result.stdout and "bad-factory" not in result.stdout
        assert result.stderr == (f"warning: plugin 'bad-factory-plugin' failed in register_models: PluginError: "
                                 f"registered model 'bad-factory' with factory {factory!r}, which is not "
                                 f"'module:attr'; the models it registers are left out\n")
    finally:
        pm.unregister(name="bad-factory-plugin")


class _ClassNamedOtherwise(OSIEForNames):
    """A dataset class whose ``name`` is not the name it is registered under."""
    name = "named-in-the-class"


def test_a_dataset_class_named_otherwise_than_registered_is_one_line(fresh, tmp_path):
    """The name picks the data folder and the cache: registered as one and named another, it looked
    for its data under the class's name and said only "data not found" there."""
    pm.register(make_plugin(datasets=[("registered-name", _ClassNamedOtherwise, {})]), name="names-plugin")
    try:
        r = CliRunner().invoke(main, ["datasets", "info", "registered-name", "--cache-dir", str(tmp_path)])
        assert r.exit_code == 1
        assert r.output.strip() == ("Error: dataset 'registered-name' from plugin 'names-plugin': its class "
                                    "_ClassNamedOtherwise is named 'named-in-the-class'; the class's name must "
                                    "be the registered one")
    finally:
        pm.unregister(name="names-plugin")


def test_invalid_spec_dropped_even_if_hook_catches_the_error(fresh):
    class Swallows:
        @hookimpl
        def register_tasks(self, register):
            register("fine-task", "elsewhere:Task")
            for bad in ["", None]:
                try:
                    register(bad, "elsewhere:Task")
                except Exception:
                    pass

    pm.register(Swallows(), name="swallowing-plugin")
    try:
        reg = get_registry()
        assert ("task", "fine-task") not in reg
        (failure,) = reg.hook_failures
        assert failure.error == "PluginError: registered a task without a name"
        with pytest.raises(PluginError, match=r"^task 'fine-task' is unavailable: plugin 'swallowing-plugin'"):
            reg.get("task", "fine-task")
    finally:
        pm.unregister(name="swallowing-plugin")


def test_factory_import_failure_at_use_time(tmp_path, fresh):
    pkg = unique("hpt_lazy")
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / pkg / "model.py").write_text("import harness_dependency_not_installed\n")
    fresh.syspath_prepend(str(tmp_path))
    pm.register(
        make_plugin(models=[
            ("lazy-broken", f"{pkg}.model:Model", {}),
            ("lazy-missing-attr", "harness.models:NoSuchFactory", {}),
        ]),
        name="lazy-plugin",
    )
    try:
        reg = get_registry()  # listing does not import factories, so it still works
        assert invoke("models").exit_code == 0
        with pytest.raises(PluginError) as err:
            load_model("lazy-broken")
        msg = str(err.value)
        assert "'lazy-plugin'" in msg and f"'{pkg}.model:Model'" in msg
        assert "ModuleNotFoundError" in msg and "harness_dependency_not_installed" in msg
        with pytest.raises(PluginError, match=r"'lazy-plugin'.*'harness.models:NoSuchFactory'.*AttributeError"):
            reg.get("model", "lazy-missing-attr").resolve()
    finally:
        pm.unregister(name="lazy-plugin")


class _NoTasks:
    """A model without ``tasks``."""

    name = "no-tasks"
    attention_methods = ("native",)
    provenance = CentreModel.provenance
    predict = CentreModel.predict


class _BadProvenance(CentreModel):
    def provenance(self):
        raise ValueError("weights file not found")


class _ListProvenance(CentreModel):
    def provenance(self):
        return ["not", "a", "dict"]


class _ObjectProvenance(CentreModel):
    def provenance(self):
        return {"model_id": "centre", "loaded": object()}


class _GeneratorPredictions(CentreModel):
    def predict(self, images, *, task="free-viewing", attention="native"):
        return iter(super().predict(images, task=task, attention=attention))


class _NonePredictions(CentreModel):
    def predict(self, images, *, task="free-viewing", attention="native"):
        return None


def _failing_factory():
    raise RuntimeError("CUDA out of memory")


def test_a_model_plugin_that_breaks_the_protocol_is_named_in_one_line(tmp_path, fresh, osie_dir):
    pm.register(make_plugin(models=[(name, factory, {"tasks": ("free-viewing",), "attention": ("native",)})
                                    for name, factory in [("fails-to-load", _failing_factory), ("no-tasks", _NoTasks),
                                                          ("bad-provenance", _BadProvenance),
                                                          ("list-provenance", _ListProvenance),
                                                          ("object-provenance", _ObjectProvenance),
                                                          ("generator", _GeneratorPredictions),
                                                          ("returns-none", _NonePredictions)]]),
                name="protocol-plugin")
    try:
        def run(model):
            return CliRunner().invoke(main, ["eval", "--model", model, "--dataset", "osie", "--limit", "2",
                                             "--data-dir", str(osie_dir), "--output", str(tmp_path / model),
                                             "--no-references", "--no-show"])

        expected = {
            "fails-to-load": "Error: model 'fails-to-load' from plugin 'protocol-plugin' failed to load: "
                             "RuntimeError: CUDA out of memory",
            "no-tasks": "Error: model 'no-tasks' (_NoTasks, plugin 'protocol-plugin') has no tasks: a model needs "
                        "tasks, attention_methods, predict() and provenance() (docs/plugins.md)",
            "bad-provenance": "Error: model 'bad-provenance' (_BadProvenance, plugin 'protocol-plugin'): provenance() "
                              "failed: ValueError: weights file not found",
            "list-provenance": "Error: model 'list-provenance' (_ListProvenance, plugin 'protocol-plugin'): "
                               "provenance() must return a dict (model_id, revision or weights_sha256), got list",
            # written with str(), an object's address would name a new run every time
            "object-provenance": "Error: model 'object-provenance' (_ObjectProvenance, plugin 'protocol-plugin'): "
                                 "provenance() must return plain JSON data (strings, numbers, lists, dicts): "
                                 "Object of type object is not JSON serializable",
        }
        for model, line in expected.items():
            r = run(model)
            assert r.exit_code == 1 and r.output.strip() == line, r.output
        # with the references (computed beside the model): the model is checked before they start
        out = tmp_path / "with-references"
        r = CliRunner().invoke(main, ["eval", "--model", "bad-provenance", "--dataset", "osie", "--limit", "2",
                                      "--data-dir", str(osie_dir), "--output", str(out), "--no-show"])
        assert r.exit_code == 1 and r.output.strip() == expected["bad-provenance"], r.output
        assert not out.exists() or not any(out.iterdir())
        r = run("generator")  # any iterable of predictions will do
        assert r.exit_code == 0, r.output
        (done,) = load_runs(tmp_path / "generator")
        assert done.summary["n_failed"] == 0 and done.summary["n_images"] == 2
        r = run("returns-none")  # the batch fails with its reason; the run goes on and says so
        # every stimulus failed: the run is kept, the command fails (a script or CI job must tell)
        assert r.exit_code == 1, r.output
        assert ": 2 images, 2 failed (the first, 1001: TypeError: 'NoneType' object is not iterable) -> " in r.output
        assert r.output.strip().splitlines()[-1] == (
            f"Error: every stimulus of returns-none failed (2 of 2; the first reason is above, all of them in "
            f"{load_runs(tmp_path / 'returns-none')[0].path}/summary.json)")
        (done,) = load_runs(tmp_path / "returns-none")
        assert done.summary["n_failed"] == 2
        assert done.summary["failures"][0]["error"] == "TypeError: 'NoneType' object is not iterable"
    finally:
        pm.unregister(name="protocol-plugin")


def test_a_registration_that_lists_what_the_model_does_not_offer_is_warned_about(tmp_path, fresh, osie_dir):
    """``harness models`` shows what a plugin registered, without importing it; eval uses what the
    object offers. A typo in the registration (a task, an attention method) misled in silence."""
    pm.register(make_plugin(models=[("listed-wrongly", CentreModel,
                                     {"tasks": ("freeviewing",), "attention": ("no-such-attn", "native")})]),
                name="listing-plugin")
    try:
        r = CliRunner().invoke(main, ["eval", "--model", "listed-wrongly", "--dataset", "osie", "--limit", "2",
                                      "--data-dir", str(osie_dir), "--output", str(tmp_path / "runs"),
                                      "--no-references", "--no-show"])
        assert r.exit_code == 0, r.output
        assert ("warning: model 'listed-wrongly' (plugin 'listing-plugin') is registered with tasks freeviewing, "
                "which its object does not offer (tasks: free-viewing); `harness models` lists it wrongly, and "
                "the object's are used") in r.output
        assert ("registered with attention no-such-attn, which its object does not offer (attention_methods: "
                "native)") in r.output
        pm.register(make_plugin(models=[("listed-rightly", CentreModel,
                                         {"tasks": ("free-viewing",), "attention": ("native",)})]),
                    name="listing-plugin-2")
        r = CliRunner().invoke(main, ["eval", "--model", "listed-rightly", "--dataset", "osie", "--limit", "2",
                                      "--data-dir", str(osie_dir), "--output", str(tmp_path / "runs"),
                                      "--no-references", "--no-show"])
        assert r.exit_code == 0 and "warning" not in r.output, r.output  # registered as it is: nothing said
    finally:
        pm.unregister(name="listing-plugin")
        if pm.has_plugin("listing-plugin-2"):
            pm.unregister(name="listing-plugin-2")


def test_hook_that_raises_names_plugin(fresh):
    class Raises:
        @hookimpl
        def register_metrics(self, register):
            register("half-registered", "elsewhere:metric", higher_is_better=True)
            raise RuntimeError("config file missing")

    pm.register(Raises(), name="raising-plugin")
    try:
        reg = get_registry()
        assert [f.message() for f in reg.hook_failures] == [
            "plugin 'raising-plugin' failed in register_metrics: RuntimeError: config file missing"]
        assert "half-registered" not in reg.names("metric") and "nss" in reg.names("metric")
        report = invoke_json("plugins")
        assert report["hook_failures"] == [{"plugin": "raising-plugin", "hook": "register_metrics",
                                            "error": "RuntimeError: config file missing",
                                            "dropped": ["half-registered"]}]
        assert report["conflicts"] == []
    finally:
        pm.unregister(name="raising-plugin")


def test_hookimpl_may_take_no_arguments():
    """pluggy lets an implementation accept a subset of the spec's arguments; it must not crash."""

    class NoArgs:
        @hookimpl
        def register_tasks(self):
            return None

    pm.register(NoArgs(), name="noargs-plugin")
    try:
        get_registry()
    finally:
        pm.unregister(name="noargs-plugin")


# --------------------------------------------------------------------------------------------
# the example in docs/plugins.md is real

FILE_MARK = re.compile(r"^# file: (\S+)\n")


def docs_files() -> dict[str, str]:
    """Code blocks in docs/plugins.md whose first line is ``# file: PATH``."""
    files = {}
    for block in re.findall(r"```[a-z]*\n(.*?)```", DOCS.read_text(), flags=re.S):
        mark = FILE_MARK.match(block)
        if mark:
            files[mark.group(1)] = block[mark.end():]
    return files


def install_docs_example(root: Path) -> tuple[str, dict]:
    """Lay the docs' files out under ``root`` and add the dist-info their pyproject.toml describes."""
    files = docs_files()
    (project,) = {p.split("/")[0] for p in files}
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    meta = tomllib.loads(files[f"{project}/pyproject.toml"])["project"]
    eps = meta["entry-points"]["harness"]
    write_dist(root / project / "src", meta["name"], {}, eps, version=meta["version"])
    return meta["name"], meta


def write_mylab_data(root: Path) -> Path:
    """A small data folder in the format the docs' dataset reads: two images, one CSV."""
    (root / "images").mkdir(parents=True)
    a = Image.new("RGB", (64, 48), "black")
    a.paste((255, 255, 255), (40, 10, 60, 40))
    a.save(root / "images" / "a.png")
    Image.new("RGB", (32, 24), (90, 90, 90)).save(root / "images" / "b.png")
    (root / "fixations.csv").write_text(
        "image,subject,x,y,duration_ms\n"
        "a.png,s1,40.0,10.0,210\n"
        "a.png,s1,59.0,39.5,180\n"
        "a.png,s2,0,0,300\n"
        "a.png,s2,64.0,20.0,100\n"  # x = width: outside the pixel-centre grid, dropped
        "b.png,s1,31,23,250\n"
        "gone.png,s1,3,3,100\n"  # no such image: skipped and counted
    )
    return root


def test_docs_example_plugin(tmp_path, fresh):
    dist, meta = install_docs_example(tmp_path / "project")
    src = tmp_path / "project" / dist / "src"
    assert (src / "harness_mylab" / "plugin.py").is_file()
    fresh.syspath_prepend(str(src))
    reset_for_tests()

    report = invoke_json("plugins")
    assert third_party(report["failed"]) == []
    (listed,) = [p for p in report["plugins"] if p["source"] == f"distribution {dist}"]
    assert listed["name"] == "mylab" and listed["version"] == meta["version"]
    assert listed["hooks"] == ["register_attention_methods", "register_datasets", "register_models"]

    models = {r["name"]: r for r in invoke_json("models")}
    assert models["mylab-edges"]["tasks"] == ["free-viewing"]
    assert models["mylab-edges"]["attention"] == ["edge-density"]
    from harness.models import copies_allowed

    assert copies_allowed("mylab-edges")  # declared with copies=True: several instances by default on CPU
    assert "mylab-gaze" in [r["name"] for r in invoke_json("datasets")]
    assert "edge-density" in [r["name"] for r in invoke_json("attention-methods")]
    assert "harness_mylab.model" not in sys.modules  # registering imported nothing
    assert "harness_mylab.dataset" not in sys.modules

    # the model: a map at stimulus resolution, high on the rectangle's contour
    model = load_model("mylab-edges")
    assert model.name == "mylab-edges" and model.provenance()["model_id"]
    img = Image.new("RGB", (64, 48), "black")
    img.paste((255, 255, 255), (40, 10, 60, 40))
    (pred,) = model.predict([img], task="free-viewing", attention=model.attention_methods[0])
    assert isinstance(pred, Prediction)
    assert pred.attention.shape == (48, 64) and pred.attention.dtype.kind == "f"
    assert (pred.attention >= 0).all()
    assert pred.attention[8:42, 38:62].mean() > 5 * pred.attention[:, :20].mean()
    with pytest.raises(HarnessError):
        model.predict([img], task="classification", attention="edge-density")
    method = get_registry().get("attention", "edge-density").resolve()
    np.testing.assert_array_equal(method(img), pred.attention)

    # the dataset: converted to the canonical schema through the real base class
    from harness.data import GazeDataset, get_gaze_dataset

    data = write_mylab_data(tmp_path / "mylab-gaze")
    gaze = get_gaze_dataset("mylab-gaze", data_dir=data, cache_dir=tmp_path / "cache")
    assert isinstance(gaze, GazeDataset)
    ds = gaze.load()
    assert ds["stimulus_id"] == ["a", "b"]
    assert [(r["width"], r["height"]) for r in ds] == [(64, 48), (32, 24)]
    fix_a = ds[0]["fixations"]
    assert [(f["subject"], f["x"], f["y"], f["duration_ms"]) for f in fix_a] == [
        ("s1", 40.0, 10.0, 210.0), ("s1", 59.0, 39.5, 180.0), ("s2", 0.0, 0.0, 300.0)]
    assert gaze.stats["dropped_out_of_bounds"] == 1
    assert gaze.stats["skipped_missing_image"] == 1
    (pred,) = model.predict([ds[0]["image"]], task="free-viewing", attention="edge-density")
    assert pred.attention.shape == (48, 64)

    bad = tmp_path / "bad-data"
    write_mylab_data(bad)
    (bad / "fixations.csv").write_text("image,subject,x,y,duration_ms\na.png,s1,12,oops,200\n")
    with pytest.raises(HarnessError, match=r"fixations.csv, line 2: expected image,subject,x,y,duration_ms"):
        get_gaze_dataset("mylab-gaze", data_dir=bad, cache_dir=tmp_path / "cache").load()


@pytest.mark.slow
def test_docs_example_installs_with_pip_and_evaluates(tmp_path):
    """``pip install`` the docs' project for real (its pyproject.toml builds, its entry point is
    declared right), then ``harness eval`` it on its own dataset in a fresh interpreter."""
    dist, _ = install_docs_example(tmp_path / "project")
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(tmp_path / "project" / dist)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(target.glob("harness_mylab-*.dist-info/entry_points.txt"))

    proc = run_cli(["plugins", "--json"], [target])
    assert proc.returncode == 0, proc.stderr
    (listed,) = [p for p in json.loads(proc.stdout)["plugins"] if p["name"] == "mylab"]
    assert listed["source"] == "distribution harness-mylab"

    data = write_mylab_data(tmp_path / "mylab-gaze")
    proc = run_cli(["eval", "--model", "mylab-edges", "--dataset", "mylab-gaze", "--data-dir", str(data),
                    "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "runs"),
                    "--no-references", "--no-show"], [target])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("summary.json")]
    (summary,) = summaries
    assert summary["model"] == "mylab-edges" and summary["attention"] == "edge-density"
    assert summary["n_images"] == 2 and summary["n_failed"] == 0
    # the plugin's version is part of the run's provenance and of its one environment
    (manifest,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("manifest.json")]
    (environment,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").rglob("environment.json")]
    version = next(target.glob("harness_mylab-*.dist-info")).name.split("-")[1].removesuffix(".dist")
    assert manifest["plugins"] == environment["plugins"] == {"mylab": version}
    assert environment["packages"] == manifest["packages"] and "torch" in environment["packages"]  # a model run


def test_docs_try_it_script_evaluates_the_plugin_uninstalled(tmp_path):
    """docs/plugins.md's try_it.py, run as the docs say, from the source folder of a plugin that is
    not installed (no dist-info anywhere): the model and dataset are found, the references too."""
    for rel, text in docs_files().items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert not list(tmp_path.rglob("*.dist-info"))
    data = write_mylab_data(tmp_path / "mylab-gaze")
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(tmp_path / "harness-mylab" / "try_it.py"), str(data)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"mylab-edges 2 NSS -?\d+\.\d{3}", line), line
    models = sorted(json.loads(p.read_text())["model"] for p in (tmp_path / "runs").glob("*/summary.json"))
    assert models == ["center-bias", "human-ceiling", "mylab-edges", "uniform"]


def test_registry_yaml_catalogue_is_complete():
    """Every built-in plugin states what the catalogue promises, and registers what its kind says."""
    from harness.plugins import builtin_catalogue, get_registry

    hook_of_kind = {"model": "model", "dataset": "dataset", "metric": "metric", "attention": "attention", "task": "task",
                    "alignment-loss": "alignment-loss"}
    reg = get_registry()
    for entry in builtin_catalogue():
        for key in ("name", "kind", "module", "tasks", "licence", "citation", "source"):
            assert entry.get(key) not in (None, ""), f"{entry.get('name')}: {key} missing"
        assert entry["kind"] in hook_of_kind, entry
        plugins_of_kind = {s.plugin for s in reg.all(hook_of_kind[entry["kind"]])}
        assert entry["name"] in plugins_of_kind, f"{entry['name']} registers no {entry['kind']}"


def test_registry_yaml_is_parsed_once_per_version_of_the_file(tmp_path, monkeypatch):
    # the Hugging Face plugin reads its aliases each time the registry is built
    path = tmp_path / "registry.yaml"
    path.write_text("plugins:\n  - {name: one, module: plugins.one}\n")
    monkeypatch.setattr(plugins_mod, "registry_yaml_path", lambda: path)
    parsed = []
    real = plugins_mod.yaml.safe_load
    monkeypatch.setattr(plugins_mod.yaml, "safe_load", lambda text: parsed.append(1) or real(text))
    first = plugins_mod.builtin_catalogue()
    first[0]["name"] = "changed by a caller"
    assert plugins_mod.builtin_catalogue() == [{"name": "one", "module": "plugins.one"}]
    assert len(parsed) == 1
    path.write_text("plugins:\n  - {name: two, module: plugins.two}\n  - {name: three, module: plugins.three}\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    assert [e["name"] for e in plugins_mod.builtin_catalogue()] == ["two", "three"]
    assert len(parsed) == 2


def _mean_value(saliency_map, fix_x, fix_y, **context):
    return float(np.mean(saliency_map))


def test_a_metric_cannot_take_a_row_column_and_a_reused_run_says_it_lacks_a_new_metric(tmp_path, fresh, osie_dir):
    """A metric named ``status`` overwrote every row's status; a metric plugin installed after a run
    was made left the reused run without its column, and eval said only "already complete, reused"."""
    def run():
        return CliRunner().invoke(main, ["eval", "--model", "uniform", "--dataset", "osie", "--limit", "2",
                                         "--data-dir", str(osie_dir), "--output", str(tmp_path / "runs"),
                                         "--no-references", "--no-show"])

    assert run().exit_code == 0
    pm.register(make_plugin(metrics=[("status", _mean_value, {})]), name="reserved-plugin")
    pm.register(make_plugin(metrics=[("mean_value", _mean_value, {})]), name="new-metric-plugin")
    try:
        reg = get_registry(warn=False)
        (failure,) = reg.hook_failures
        assert failure.message() == (
            "plugin 'reserved-plugin' failed in register_metrics: PluginError: registered metric 'status', a name "
            "the result rows use for a column of their own (stimulus_id, status, error, n_fixations, seconds, "
            "output, ll, ig_explained, task:*): its values would overwrite it")
        assert ("metric", "mean_value") in reg
        r = run()
        assert r.exit_code == 0, r.output
        assert ("already complete, reused without metric mean_value (installed since; evaluate into another "
                "--output to score it)") in r.output
    finally:
        pm.unregister(name="reserved-plugin")
        pm.unregister(name="new-metric-plugin")
    from harness.registry import RESERVED_METRIC_NAMES
    from harness.results.summary import ROW_COLUMNS

    assert set(ROW_COLUMNS) <= set(RESERVED_METRIC_NAMES)


def test_a_plugin_model_edited_without_a_new_version_is_noticed(tmp_path, fresh, osie_dir):
    """A plugin's version number does not change while its author edits it: a run resumed after an
    edit mixed two codes' numbers under one version, and a finished run was reused in silence after
    its model changed (found by a plugin author's QA). The plugin's code is hashed into the run's
    environment: a resume across an edit is refused, a finished run is reused with a note."""
    from harness.results.store import shard_files

    pkg = unique("hpt_code")
    site = tmp_path / "site"
    flat_dist(site, "harness-code", pkg, "code-model", "code-data")
    fresh.syspath_prepend(str(site))
    reset_for_tests()
    out = tmp_path / "runs"
    args = ["eval", "--model", "code-model", "--dataset", "osie", "--data-dir", str(osie_dir), "--limit", "4",
            "--batch-size", "2", "--output", str(out), "--no-references", "--no-show"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    (run,) = load_runs(out)
    env = json.loads((run.path / "environment.json").read_text())
    assert env["plugins"] == {"flatplugin": "0.1"} and list(env["plugin sources"]) == ["flatplugin"]
    r = CliRunner().invoke(main, args)  # nothing changed: reused without a word about plugins
    assert r.exit_code == 0 and "computed with" not in r.output, r.output

    model_py = site / pkg / "model.py"
    model_py.write_text(model_py.read_text() + "\n# tuned the map\n")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "reused as it is finished, but it was computed with plugin flatplugin's code sha256:" in r.output
    assert "(here sha256:" in r.output

    # the same run half done: its second shard lost, its summary withdrawn
    (run.path / "summary.json").unlink()
    shard_files(run.path)[-1].unlink()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    last = r.output.strip().splitlines()[-1]
    assert "rows were computed with plugin flatplugin's code sha256:" in last and "one run must not mix" in last


CODE_GAZE_SRC = '''
import csv

from harness.data import GazeDataset


class CodeGaze(GazeDataset):
    name = "code-gaze"
    pixels_per_degree = 32.0
    tasks = ("free-viewing",)
    converter_version = "1"

    def source_files(self, root):
        return [root / "fixations.csv", root / "a.png"]

    def convert(self, root):
        width, height = self.image_size(root / "a.png")
        with open(root / "fixations.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        x = [float(r["x"]) + SHIFT for r in rows]
        y = [float(r["y"]) for r in rows]
        yield {"stimulus_id": "a", "image": str(root / "a.png"), "width": width, "height": height,
               "fixations": self.fixation_list("s1", x, y, width=width, height=height)}


SHIFT = 0.0
'''


def test_a_third_party_converter_edited_without_a_bump_converts_again(tmp_path, fresh):
    """Two tables converted by two versions of a plugin's converter shared one fingerprint (and a
    cached table outlived the code that made it) when its author did not bump converter_version
    (found by a plugin author's QA): the source of a third-party dataset class is part of the
    fingerprint; the built-in datasets' is not (the harness bumps their versions itself)."""
    import importlib

    from harness.data import load_gaze_dataset

    pkg = unique("hpt_conv")
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
    module = tmp_path / pkg / "dataset.py"
    module.write_text(CODE_GAZE_SRC)
    data = tmp_path / "data"
    data.mkdir()
    Image.new("RGB", (40, 30)).save(data / "a.png")
    (data / "fixations.csv").write_text("x,y\n10,5\n20,15\n")
    fresh.syspath_prepend(str(tmp_path))
    pm.register(make_plugin(datasets=[("code-gaze", f"{pkg}.dataset:CodeGaze", {})]), name="conv-plugin")
    try:
        gaze, ds = load_gaze_dataset("code-gaze", data_dir=data, cache_dir=tmp_path / "cache")
        first = gaze.fingerprint()
        assert [f["x"] for f in ds[0]["fixations"]] == [10.0, 20.0]
        module.write_text(CODE_GAZE_SRC.replace("SHIFT = 0.0", "SHIFT = 5.0"))  # converter_version unchanged
        importlib.reload(sys.modules[f"{pkg}.dataset"])
        gaze, ds = load_gaze_dataset("code-gaze", data_dir=data, cache_dir=tmp_path / "cache")
        assert gaze.fingerprint() != first
        assert [f["x"] for f in ds[0]["fixations"]] == [15.0, 25.0]  # converted again, not the cached table
    finally:
        pm.unregister(name="conv-plugin")
    from harness.data.base import _converter_code
    from plugins.datasets.osie import OSIE

    assert _converter_code(OSIE) is None and _converter_code(type(gaze)) is not None


def test_models_warns_of_an_attention_name_no_plugin_registers(fresh):
    """A model registered with attention=("grad-cam", "mine-inputgrad") was listed without a word,
    and `harness eval --attention mine-inputgrad` then called it unknown (found by a plugin author's QA)."""
    pm.register(make_plugin(models=[("listed-model", CentreModel, {"tasks": ("free-viewing",),
                                                                   "attention": ("grad-cam", "mine-inputgrad")})]),
                name="listing-plugin")
    try:
        r = CliRunner().invoke(main, ["models"])
        assert r.exit_code == 0
        warnings = [line for line in r.output.splitlines() if line.startswith("warning:")]
        assert warnings == ["warning: model 'listed-model' (plugin 'listing-plugin') lists attention "
                            "'mine-inputgrad', which no plugin registers: `harness eval --attention` refuses it "
                            "(register it with register_attention_methods)"]
    finally:
        pm.unregister(name="listing-plugin")
