"""The Python API: ``harness.evaluate`` for a registered model, a plain torch module with a named
Grad-CAM layer, and a callable ``image -> map`` (real OSIE data, real runs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import harness
from harness.errors import HarnessError


@pytest.fixture
def data_dir(osie_dir):
    return osie_dir


def test_registered_model_matches_the_command_line(tmp_path, data_dir):
    from click.testing import CliRunner

    from harness.cli import main
    from harness.results import load_runs

    res = harness.evaluate("center-bias", dataset="osie", limit=8, output=tmp_path / "api", data_dir=data_dir)
    assert res.summary["model"] == "center-bias" and res.summary["n_images"] == 8
    assert len(res.per_stimulus) == 8 and {"stimulus_id", "status", "nss", "auc_judd"} <= set(res.per_stimulus)
    assert set(res.references) == {"human-ceiling", "uniform"}
    assert res.summary["metrics"]["nss"] == pytest.approx(res.per_stimulus["nss"].mean(), abs=1e-12)
    r = CliRunner().invoke(main, ["eval", "--model", "center-bias", "--dataset", "osie", "--limit", "8",
                                  "--data-dir", str(data_dir), "--output", str(tmp_path / "cli"), "--no-show"])
    assert r.exit_code == 0, r.output
    cli = next(x for x in load_runs(tmp_path / "cli") if x.summary["model"] == "center-bias")
    assert cli.run_id == res.run_dir.name  # the same run, whichever way it was asked for
    assert {k: v for k, v in cli.summary.items() if k != "finished_at"} == \
        {k: v for k, v in res.summary.items() if k != "finished_at"}


def test_a_callable_image_to_map(tmp_path, data_dir):
    from plugins.models.baselines import center_bias_map

    def my_center_bias(image):
        w, h = image.size
        return center_bias_map(h, w)

    res = harness.evaluate(my_center_bias, dataset="osie", limit=8, output=tmp_path, data_dir=data_dir)
    assert res.summary["model"] == "my_center_bias" and res.summary["kind"] == "model"
    # the same map as the built-in baseline gives the same numbers
    cb = harness.evaluate("center-bias", dataset="osie", limit=8, output=tmp_path, data_dir=data_dir)
    for metric in ("auc_judd", "nss", "cc", "kld"):
        assert res.summary["metrics"][metric] == pytest.approx(cb.summary["metrics"][metric], abs=1e-12)
    # a map of another size is resized to the stimulus; a non-map fails that stimulus with a reason
    small = harness.evaluate(lambda im: center_bias_map(60, 80), name="small-cb", dataset="osie", limit=4,
                             output=tmp_path, data_dir=data_dir, references=False)
    assert small.summary["metrics"]["nss"] > 0.5
    # every stimulus failing raises, as `harness eval` stops (a summary without metrics came back, and
    # res.summary["metrics"]["nss"] was a bare KeyError; found by QA)
    with pytest.raises(HarnessError, match=r"every stimulus of bad failed \(2 of 2\); the first reason: .*2-D map"):
        harness.evaluate(lambda im: np.zeros(5), name="bad", dataset="osie", limit=2, output=tmp_path,
                         data_dir=data_dir, references=False)
    # a map of the image's (width, height) was stretched to the image and scored, in silence
    with pytest.raises(HarnessError, match=r"returned a map of shape \(800, 600\), the image's \(width, height\); "
                                           r"a map is \(height, width\) = \(600, 800\)"):
        harness.evaluate(lambda im: center_bias_map(*im.size), name="turned", dataset="osie", limit=2,
                         output=tmp_path, data_dir=data_dir, references=False)


def test_a_torch_module_with_a_named_layer(tmp_path, data_dir):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential()
    net.add_module("features", torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=4, padding=1), torch.nn.ReLU()))
    net.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
    net.add_module("flat", torch.nn.Flatten())
    net.add_module("fc", torch.nn.Linear(8, 4))
    res = harness.evaluate(net, layer="features", name="tiny-net", input_size=64, dataset="osie", limit=4,
                           output=tmp_path, data_dir=data_dir, references=False)
    assert res.summary["model"] == "tiny-net" and res.summary["attention"] == "grad-cam"
    assert res.summary["n_images"] == 4
    settings = __import__("json").loads((res.run_dir / "settings.json").read_text())
    assert len(settings["model_provenance"]["weights_sha256"]) == 64
    # other weights: another run
    with torch.no_grad():
        net.fc.weight.add_(1.0)
    again = harness.evaluate(net, layer="features", name="tiny-net", input_size=64, dataset="osie", limit=4,
                             output=tmp_path, data_dir=data_dir, references=False)
    assert again.run_dir != res.run_dir
    with pytest.raises(HarnessError, match="no layer 'layer9'"):
        harness.evaluate(net, layer="layer9", dataset="osie", limit=2, output=tmp_path, data_dir=data_dir)
    with pytest.raises(HarnessError, match="needs layer="):
        harness.evaluate(net, dataset="osie", limit=2, output=tmp_path, data_dir=data_dir)
    with pytest.raises(HarnessError, match="unknown option"):
        harness.evaluate("center-bias", dataset="osie", limit=2, output=tmp_path, data_dir=data_dir, batchsize=3)
    # sigma_px won and sigma_deg was dropped without a word (the CLI refuses both; left by QA)
    with pytest.raises(HarnessError, match="sigma_deg and sigma_px are two ways to give the one blur"):
        harness.evaluate("center-bias", dataset="osie", limit=2, output=tmp_path, data_dir=data_dir, sigma_deg=2.0,
                         sigma_px=30)


def test_evaluate_leaves_the_callers_thread_counts_as_it_found_them(tmp_path, data_dir):
    # the evaluation runs its model on one thread and limits BLAS and numba; a notebook that
    # trains afterwards must get its own thread counts back, not one thread
    import numba
    import torch
    from threadpoolctl import threadpool_info

    def counts(libraries=None):  # the pools of the libraries loaded before (the eval may load more)
        pools = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
        return torch.get_num_threads(), numba.get_num_threads(), {k: pools[k] for k in (libraries or pools)}

    before_torch = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before = counts()
        res = harness.evaluate("efficientnet-lite0", dataset="osie", limit=4, references=False,
                               output=tmp_path / "runs", data_dir=data_dir)
        assert res.summary["n_images"] == 4
        assert counts(before[2]) == before
    finally:
        torch.set_num_threads(before_torch)


def _identity(fn):
    from harness.api import callable_identity

    return callable_identity(fn)


def test_a_callable_s_identity_follows_what_it_computes_with():
    """A function's identity (its run) hashed only its bytecode and the repr of its constants: one
    calling np.square instead of np.sqrt, or holding another threshold in a closure, a default or an
    attribute, reused the other's run; a comprehension inside gave a new run in every process (its
    code object's repr holds an address). Found by QA."""
    import functools
    import subprocess
    import sys

    def root(image):
        return np.sqrt(np.asarray(image))

    def square(image):
        return np.square(np.asarray(image))

    assert _identity(root) != _identity(square)
    assert _identity(root) == _identity(root)

    def closure(t):
        return lambda image: np.asarray(image) > t

    assert _identity(closure(0.5)) != _identity(closure(0.2)) and _identity(closure(0.5)) == _identity(closure(0.5))

    def defaults(image, t=0.5):
        return np.asarray(image) > t

    def defaults2(image, t=0.2):
        return np.asarray(image) > t

    assert _identity(defaults) != _identity(defaults2)

    def thresholded(image, t):
        return np.asarray(image) > t

    assert _identity(functools.partial(thresholded, t=0.5)) != _identity(functools.partial(thresholded, t=0.2))

    class Map:
        def __init__(self, t):
            self.t = t

        def __call__(self, image):
            return np.asarray(image) > self.t

    assert _identity(Map(0.5)) != _identity(Map(0.2)) and _identity(Map(0.5)) == _identity(Map(0.5))
    weights = np.arange(4.0)
    held = lambda image: weights  # noqa: E731 - an array the function holds is read by content
    before = _identity(held)
    weights[0] = 9.0
    assert _identity(held) != before

    # the same function in two processes: the same identity, comprehensions and sets included
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from harness.api import callable_identity\n"
            "def f(image):\n"
            "    return [x * 2 for x in image if x in {'a', 'b', 'c'}]\n"
            "print(callable_identity(f))\n") % str(Path(__file__).resolve().parent.parent)
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1 and len(runs.pop().strip()) == 64


def test_a_module_s_identity_covers_its_code_buffers_and_preprocess():
    """Reused silently before (found by QA): another prepress= function, a redefined forward with
    the same weights, a buffer registered with persistent=False."""
    import torch

    from harness.api import ModuleModel

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.features = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(4, 2)
            self.register_buffer("scale", torch.ones(1), persistent=False)

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3))) * self.scale

    class Negated(Net):
        def forward(self, x):
            return -super().forward(x)

    def pre_a(images):
        return torch.zeros(len(images), 3, 8, 8)

    def pre_b(images):
        return torch.ones(len(images), 3, 8, 8)

    def prov(module, **kw):
        p = ModuleModel(module, "features", **kw).provenance()
        return p["weights_sha256"], p["code_sha256"], p.get("preprocess_sha256")

    net = Net()
    base = prov(net)
    assert prov(Net()) == base
    assert prov(Negated())[1] != base[1]
    net.scale.fill_(-5.0)
    assert prov(net)[0] != base[0]
    assert prov(net, preprocess=pre_a)[2] != prov(net, preprocess=pre_b)[2]


def test_evaluate_gives_the_module_back_as_it_was_and_takes_a_layer_object_and_float64(tmp_path, data_dir):
    """The module was left in eval mode (a notebook that trains on after it trained without its
    dropout); a layer given as the submodule itself was 'no layer Conv2d(...)'; a float64 network
    failed every stimulus (float32 inputs). Found by QA."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    net.train()
    net[2].eval()  # one submodule in another mode than its parent: each flag is put back
    res = harness.evaluate(net, layer=net[0], name="layer-object", input_size=32, dataset="osie", limit=2,
                           output=tmp_path, data_dir=data_dir, references=False)
    assert res.summary["n_failed"] == 0 and res.reused is False
    assert net.training and not net[2].training and net[0].training
    again = harness.evaluate(net, layer="0", name="layer-object", input_size=32, dataset="osie", limit=2,
                             output=tmp_path, data_dir=data_dir, references=False)
    assert again.run_dir == res.run_dir and again.reused is True
    wide = harness.evaluate(net.double(), layer="0", name="float64", input_size=32, dataset="osie", limit=2,
                            output=tmp_path, data_dir=data_dir, references=False)
    assert wide.summary["n_failed"] == 0
    with pytest.raises(HarnessError, match="is not a submodule of the model"):
        harness.evaluate(net, layer=torch.nn.Conv2d(3, 4, 3), dataset="osie", limit=2, output=tmp_path,
                         data_dir=data_dir)


@pytest.mark.parametrize("kwargs, message", [
    ({"limit": 0}, "limit must be a whole number >= 1 or None, got 0"),
    ({"limit": True}, "limit must be a whole number >= 1 or None, got True"),
    ({"limit": "5"}, "limit must be a whole number >= 1 or None, got '5'"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1, got 0"),
    ({"profile": "bogus"}, "unknown metric profile 'bogus'"),
    ({"references": "no"}, "references must be True or False, got 'no'"),
    ({"dataset": 123}, "dataset must be a registered dataset name"),
    ({"output": 123}, "output must be a folder"),
    ({"name": 5}, "name must be a string or None"),
    ({"input_size": 64.7}, "input_size must be a positive whole number"),
])
def test_bad_arguments_are_named_before_any_folder_is_made(tmp_path, data_dir, kwargs, message):
    """The command line's checks (click ranges and choices) were missing from the Python API:
    limit=0 wrote an empty run that the leaderboard called damaged, batch_size=0 a half-made folder,
    profile='bogus' a run with that profile, references='no' computed the references. Found by QA."""
    args = {"dataset": "osie", "limit": 2, "output": tmp_path / "runs", "data_dir": data_dir, **kwargs}
    with pytest.raises(HarnessError, match=re.escape(message)):
        harness.evaluate(lambda im: np.ones((4, 4)), **args)
    assert not (tmp_path / "runs").exists()


def test_two_threads_loading_the_plugins_at_once_both_see_them():
    """In a fresh process, a second thread saw an empty registry while the first loaded the plugins
    ("unknown dataset 'osie'" from one of two harness.evaluate calls; found by QA)."""
    import subprocess
    import sys

    code = ("import sys, threading; sys.path.insert(0, %r)\n"
            "from harness.plugins import get_registry\n"
            "seen = []\n"
            "def look():\n"
            "    seen.append(('dataset', 'osie') in get_registry(warn=False))\n"
            "threads = [threading.Thread(target=look) for _ in range(4)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print(seen)\n") % str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[True, True, True, True]", out.stdout + out.stderr


def test_a_preprocess_that_sets_train_mode_does_not_train_batchnorm(tmp_path, data_dir):
    """A prepress= that put the network in train mode made BatchNorm update its statistics during
    the evaluation (results then depended on the batch size; found by QA)."""
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=4), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def preprocess(images):
        net.train()
        return torch.rand(len(images), 3, 32, 32, generator=torch.Generator().manual_seed(len(images)))

    res = harness.evaluate(net, layer="0", preprocess=preprocess, name="bn", dataset="osie", limit=2,
                           output=tmp_path, data_dir=data_dir, references=False)
    assert res.summary["n_failed"] == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
