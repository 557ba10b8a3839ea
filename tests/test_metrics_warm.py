"""The kernels' shared first compilation (harness.metrics.warm): it covers what scoring calls, and
two processes warming at once on an empty cache compile each kernel once between them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SNAPSHOT = textwrap.dedent("""
    import json
    from numba.core.dispatcher import Dispatcher
    from harness.metrics import kernels

    def overloads():
        return {(name, str(sig)) for name, d in vars(kernels).items() if isinstance(d, Dispatcher)
                for sig in d.overloads}
""")


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=600)


def test_warm_leaves_nothing_to_compile_for_scoring(osie_dir):
    # a fresh process: warm, then score real OSIE stimuli every way an evaluation does (a model's
    # map, a constant map, the human ceiling; both metric profiles): no kernel signature is added
    code = SNAPSHOT + textwrap.dedent(f"""
        import numpy as np
        from harness.data import load_gaze_dataset
        from harness.data.density import sigma_px
        from harness.evaluation.ceiling import ceiling_scores
        from harness.evaluation.context import DatasetContext
        from harness.evaluation.scoring import score
        from harness.metrics.warm import warm

        warm("suite", "ceiling")
        before = overloads()
        gaze, ds = load_gaze_dataset("osie", data_dir={str(osie_dir.parent)!r})
        ctx = DatasetContext(gaze, ds, 3, sigma_px(gaze))
        rng = np.random.default_rng(0)
        for profile in ("mit", "pysaliency"):
            for i in range(3):
                w, h = ctx.sizes[i]
                score(rng.random((h, w)) ** 4, ctx.fixations[i], ctx, i, profile, 0)
                score(np.full((h, w), 0.5), ctx.fixations[i], ctx, i, profile, 0)
                ceiling_scores(ctx, i, profile, 0)
        print("NEW " + json.dumps(sorted(overloads() - before)))
        print("WARMED " + str(len(before)))
    """)
    r = _python(code)
    assert r.returncode == 0, r.stderr[-3000:]
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if line.startswith(("NEW ", "WARMED ")))
    assert int(out["WARMED"]) >= 14
    assert json.loads(out["NEW"]) == [], "scoring compiled kernels warm() does not list (add them to warm._examples)"


def test_two_processes_warming_at_once_compile_each_kernel_once(tmp_path):
    # an empty kernel cache, as on a fresh machine; two processes warm together
    code = textwrap.dedent("""
        import json
        from harness.metrics import kernels, warm as w
        w.warm("suite", "ceiling")
        done = {}
        for tier in w._examples().values():
            for name, args in tier:
                d, sig = getattr(kernels, name), w._signature(args)
                done[name + " " + str(sig)] = [d._cache_misses[sig], d._cache_hits[sig], sig in d.overloads]
        print("DONE " + json.dumps(done))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    done = [json.loads(next(line for line in out.splitlines() if line.startswith("DONE "))[5:]) for out, _ in outs]
    assert len(done[0]) >= 14 and done[0].keys() == done[1].keys()
    for k in done[0]:
        (miss0, hit0, ready0), (miss1, hit1, ready1) = done[0][k], done[1][k]
        # each compiled by exactly one of them, and loaded from the cache by the other
        assert ready0 and ready1 and miss0 + miss1 == 1 and hit0 + hit1 == 1, (k, done[0][k], done[1][k])
    # the locks sit beside numba's cache
    assert list((tmp_path / "numba").rglob("*.compile.lock"))
