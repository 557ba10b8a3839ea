"""The Python API: ``harness.evaluate`` for a registered model, a plain torch module with a named
Grad-CAM layer, and a callable ``image -> map`` (real OSIE data, real runs)."""

from __future__ import annotations

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
    bad = harness.evaluate(lambda im: np.zeros(5), name="bad", dataset="osie", limit=2, output=tmp_path,
                           data_dir=data_dir, references=False)
    assert bad.summary["n_failed"] == 2 and "2-D map" in str(bad.per_stimulus["error"].iloc[0])
    # a map of the image's (width, height) was stretched to the image and scored, in silence
    turned = harness.evaluate(lambda im: center_bias_map(*im.size), name="turned", dataset="osie", limit=2,
                              output=tmp_path, data_dir=data_dir, references=False)
    assert turned.summary["n_failed"] == 2
    assert "returned a map of shape (800, 600), the image's (width, height); a map is (height, width) = (600, 800)" \
        in str(turned.per_stimulus["error"].iloc[0])


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
