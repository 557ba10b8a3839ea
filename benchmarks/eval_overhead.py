"""Benchmark: `harness eval` against the bare model work on the same OSIE stimuli, side by side.

Run:  .venv/bin/python benchmarks/eval_overhead.py [--limit 200] [--batch-size 8]
                                                    [--model efficientnet-lite0|vit-base-random]
                                                    [--repeat 1]

Each variant runs in a fresh process, one after the other, on the same stimuli, weights, batch
size and preprocessing; wall time and CPU time (user + system, the process and every child it
waited for: scoring and decoding workers included) are printed with their ratios to the bare loop.

- bare (default threads): decode, preprocess, forward and backward for Grad-CAM (EfficientNet-Lite)
  or forward with attentions (ViT) in one loop, torch's default thread count; nothing upsampled,
  scored or written. This is the "bare sequential loop".
- bare (1 thread): the same on one torch thread, the arithmetic `harness eval` uses by default.
- harness eval: `harness eval --no-references` with its default plan (on 2 cores: two copies of the
  model, each on one thread, running batches side by side, and scoring between their batches; on
  more cores scoring and decoding in worker processes too), writing a real run folder; and the same
  with one copy and scoring and decoding inline (one process, one thread).
Every variant is timed from before the dataset and the model are loaded to the end; torch is
imported before the timing in all of them (until this was so, harness eval's figures carried torch's
import, ~1.6 s here, and the bare loops' did not), and so are the dataset loader (``harness.data``:
datasets and pandas) and, for ViT, transformers' ViT classes, which the bare loops import before
their timing (until 2026-12-03 harness eval's figures carried those imports, ~0.6 s and ~2 s here,
and the bare loops' did not). What harness eval imports beyond them (numba, the metric kernels) is
its own cost and stays in its figures.

``--repeat N``: N rounds of the four variants, one round after the other, every round printed; each
variant's figures are from its fastest round (a shared machine's other tenants only add time).

`vit-base-random` is a randomly initialised ViT-Base/16 (transformers' default ViTConfig, 224 px)
saved with save_pretrained and evaluated as hf:<folder> with attention rollout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

RUSAGE = textwrap.dedent("""
    import json, resource, time
    def _report(wall):
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        print("RESULT " + json.dumps({"wall": wall, "cpu": s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime,
                                      "maxrss_mb": max(s.ru_maxrss, c.ru_maxrss) / 1024}))
""")

BARE_EFFNET = RUSAGE + textwrap.dedent("""
    import sys, time, torch
    threads = int(sys.argv[4])
    if threads:
        torch.set_num_threads(threads)
    from harness.data import load_gaze_dataset
    from harness.models import load_model
    from harness.attention.gradcam import grad_cam_with_logits
    from plugins.models.efficientnet_lite import preprocess
    t0 = time.perf_counter()  # like harness eval: the dataset and the model are loaded inside the timing
    gaze, ds = load_gaze_dataset("osie", data_dir=sys.argv[1])
    n, batch = int(sys.argv[2]), int(sys.argv[3])
    model = load_model("efficientnet-lite0")
    forward, layer = model._network()
    for start in range(0, n, batch):
        images = [r["image"].convert("RGB") for r in ds.select(range(start, min(start + batch, n)))]
        x = torch.from_numpy(preprocess(images, model.resolution))
        maps, targets, logits = grad_cam_with_logits(forward, layer, x, None)
    _report(time.perf_counter() - t0)
""")

BARE_VIT = RUSAGE + textwrap.dedent("""
    import sys, time, torch
    threads = int(sys.argv[4])
    if threads:
        torch.set_num_threads(threads)
    from transformers import ViTForImageClassification, ViTImageProcessorPil
    from harness.data import load_gaze_dataset
    t0 = time.perf_counter()  # like harness eval: the dataset and the model are loaded inside the timing
    gaze, ds = load_gaze_dataset("osie", data_dir=sys.argv[1])
    n, batch = int(sys.argv[2]), int(sys.argv[3])
    folder = sys.argv[5]
    model = ViTForImageClassification.from_pretrained(folder, attn_implementation="eager").eval()
    processor = ViTImageProcessorPil.from_pretrained(folder)
    with torch.no_grad():
        for start in range(0, n, batch):
            images = [r["image"].convert("RGB") for r in ds.select(range(start, min(start + batch, n)))]
            x = processor(images=images, return_tensors="pt")
            out = model(**x, output_attentions=True)
    _report(time.perf_counter() - t0)
""")

EVAL = RUSAGE + textwrap.dedent("""
    import sys, time
    import torch  # imported before the timing, as the bare loops do (harness imports it on first use)
    from harness.data import load_gaze_dataset  # as the bare loops import it (datasets, pandas) before theirs
    if sys.argv[6:] == ["vit"]:  # and the model's library, as the bare ViT loop imports it before its timing
        from transformers import ViTForImageClassification, ViTImageProcessorPil
    from pathlib import Path
    from harness.evaluation import EvalConfig, run_eval
    cfg = EvalConfig(model=sys.argv[4], dataset="osie", limit=int(sys.argv[2]), batch_size=int(sys.argv[3]),
                     output=Path(sys.argv[5]), data_dir=Path(sys.argv[1]), progress=False)
    t0 = time.perf_counter()
    run_eval(cfg, references=False)
    _report(time.perf_counter() - t0)
""")


EVAL_INLINE = EVAL.replace("progress=False)", "progress=False, score_workers=0, loader_workers=0, model_copies=1)")


def _run(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def _vit_folder(root: Path) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessorPil

    folder = root / "vit-base-random"
    config = ViTConfig(num_labels=1000)  # ViT-Base/16 defaults: 12 layers, 768 wide, 224 px
    import torch

    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 224, "width": 224}).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR", str(REPO.parent / "shared" / "data")))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--model", choices=["efficientnet-lite0", "vit-base-random"], default="efficientnet-lite0")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; figures from each variant's fastest")
    args = parser.parse_args()
    from _machine import describe

    print(describe())
    osie = str(Path(args.data_dir) / "osie")
    n, b = str(args.limit), str(args.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "efficientnet-lite0":
            bare, extra, name, lib = BARE_EFFNET, [], "efficientnet-lite0", []
        else:
            folder = _vit_folder(Path(tmp))
            bare, extra, name, lib = BARE_VIT, [str(folder)], f"hf:{folder}", ["vit"]
        _run(EVAL, osie, "8", b, name, str(Path(tmp) / "warm"))  # dataset cache, numba cache, weights hash
        rounds = []
        for r in range(max(1, args.repeat)):
            rounds.append([("bare loop, default threads", _run(bare, osie, n, b, "0", *extra)),
                           ("bare loop, 1 thread", _run(bare, osie, n, b, "1", *extra)),
                           ("harness eval (default plan)",
                            _run(EVAL, osie, n, b, name, str(Path(tmp) / f"runs{r}"), *lib)),
                           ("harness eval, 1 copy, inline",
                            _run(EVAL_INLINE, osie, n, b, name, str(Path(tmp) / f"inline{r}"), *lib))])
            if args.repeat > 1:
                print(f"round {r + 1}: " + ", ".join(f"{label} {res['wall']:.2f} s (CPU {res['cpu']:.2f} s)"
                                                     for label, res in rounds[-1]), flush=True)
    rows = [(label, min((rnd[k][1] for rnd in rounds), key=lambda res: res["wall"]))
            for k, (label, _) in enumerate(rounds[0])]
    base = rows[0][1]
    which = f"; each variant's fastest of {len(rounds)} rounds" if len(rounds) > 1 else ""
    print(f"\n{args.model}, {args.limit} OSIE stimuli, batch {args.batch_size}{which}")
    print(f"{'variant':32s} {'wall s':>8s} {'CPU s':>8s} {'ms/stim wall':>13s} {'wall ratio':>11s} {'CPU ratio':>10s} {'peak MB':>8s}")
    for label, r in rows:
        print(f"{label:32s} {r['wall']:8.2f} {r['cpu']:8.2f} {1000 * r['wall'] / args.limit:13.1f} "
              f"{r['wall'] / base['wall']:11.2f} {r['cpu'] / base['cpu']:10.2f} {r['maxrss_mb']:8.0f}")
    print("\nratios are to the bare loop with default threads; harness eval also upsamples every map, "
          "scores it with the full metric suite and writes shards")


if __name__ == "__main__":
    main()
