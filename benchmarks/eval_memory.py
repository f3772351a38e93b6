"""Memory and time of the image IW-NLL evaluation at several (eval.batch_size, eval.iw_chunk) settings.

What is measured is the code path of ``vaelab evaluate``: the run folder is loaded with ``vaelab.run.load_run``
(the settings given as overrides, as ``vaelab evaluate DIR eval.batch_size=B eval.iw_chunk=C`` does) and scored by
``vaelab.evaluation.Evaluator.evaluate`` at the seed offset of ``vaelab evaluate``, which draws the K importance
samples of each batch ``eval.iw_chunk`` at a time (:func:`vaelab.metrics.likelihood.iw_log_likelihood_from_posterior`).
Nothing is written to the run folder.

The run: the MNIST-shaped MLP VAE (784-512-256-32, Bernoulli decoder) trained ``--train-steps`` Adam steps on
statically binarised MNIST read through ``vaelab.data`` (the packaged files; nothing is downloaded), in a
temporary folder; or a run of ``--config`` (with ``--set`` overrides: e.g. the text VAE of
configs/ptb_vae_small.yaml); or ``--run DIR``, an existing run folder, read only. ``data.eval_size`` caps the test
split.

Each setting runs in a fresh child process, so that its peak resident memory (``ru_maxrss`` of the child, read
with ``resource.getrusage``; tracemalloc does not see torch's allocations) is its own. The child reports its peak
before the evaluation (imports, model, data) and after, its wall time and user / system CPU time of the
evaluation alone, and the IW-NLL (nats per example). The settings run interleaved (A B C A B C ...) ``--repeats``
times and the table shows medians, with the time ratio to the first setting: on a shared machine the ratios within
one run are what counts. Thread count and load average are printed.

Same seed, same samples: for every setting the K draws of a batch come from one stream seeded by (seed, batch),
and a chunk of c samples of B examples draws c * B * D normals; when every chunk but the last draws a multiple of
16 normals (torch's CPU sampler fills 16 at a time) the draws are those of one big draw, so settings with the same
batch size give the same estimate up to float rounding. Another batch size reseeds differently: then the estimates
agree within Monte Carlo error (the printed standard error).

    OMP_NUM_THREADS=1 python benchmarks/eval_memory.py                        # defaults: K = 500, 1000 images
    OMP_NUM_THREADS=1 python benchmarks/eval_memory.py --settings 500x500 100x100 500x100 500xauto --repeats 3
    OMP_NUM_THREADS=1 python benchmarks/eval_memory.py --config configs/ptb_vae_small.yaml --eval-size 20 \
        --train-steps 30 --set data.train_size=2000 --settings 100x100 100x500 100xauto     # the text path
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_SETTINGS = ["500x500", "100x100", "500x100", "250x100", "500x50", "100x500", "500xauto"]


def child(run_dir: str, batch: str, chunk: str, k: int, checkpoint: str) -> None:
    """Evaluate once at (batch, chunk) and print one JSON line."""
    import torch

    from vaelab.evaluation import EVALUATE_OFFSET, Evaluator
    from vaelab.run import load_run

    overrides = [f"eval.batch_size={batch}", f"eval.iw_chunk={chunk}"]
    run = load_run(run_dir, checkpoint, overrides=overrides)  # type: ignore[arg-type]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    result = Evaluator(run).evaluate(run.config.eval.final_split, iw_samples=k, seed_offset=EVALUATE_OFFSET)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    resolved = None
    try:  # the chunk "auto" resolves to for the first batch (versions before "auto": the number given)
        from vaelab.metrics.likelihood import resolve_iw_chunk

        x0 = next(iter(run.eval_loader(run.config.eval.final_split).epoch(0))).x
        d = run.config.model.latent_dim
        resolved = resolve_iw_chunk(run.config.eval.iw_chunk, x0, len(x0), k, latent_dim=d)
    except ImportError:
        pass
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "rss_before_kib": rss_before,
                "rss_peak_kib": r1.ru_maxrss,
                "wall": wall,
                "user": r1.ru_utime - r0.ru_utime,
                "sys": r1.ru_stime - r0.ru_stime,
                "nll_iw": result["nll_iw"],
                "nll_iw_se": result["nll_iw_se"],
                "n": result["n"],
                "chunk_resolved": resolved,
            }
        )
    )


def train_run(out: Path, args: argparse.Namespace) -> None:
    """A short vaelab run into ``out``: the MNIST MLP VAE, or ``--config`` with ``--set`` overrides."""
    from vaelab.config import apply_overrides, read_yaml, run_config
    from vaelab.training.trainer import Trainer

    if args.config:
        data = read_yaml(args.config)
    else:
        data = {
            "name": "eval_memory",
            "seed": 0,
            "data": {"name": "binarized_mnist"},
            "model": {"type": "mlp", "latent_dim": 32, "hidden": [512, 256]},
            "train": {"lr": 1e-3, "batch_size": 100},
        }
    fixed = [
        f"data.eval_size={args.eval_size}",
        "train.epochs=1",
        f"train.max_steps={args.train_steps}",
        "train.progress=false",
        "eval.iw_samples=0",
    ]
    Trainer(run_config(apply_overrides(data, fixed + list(args.set))), out).fit()


def run_child(run_dir: str, setting: str, k: int, checkpoint: str) -> dict[str, Any]:
    batch, _, chunk = setting.partition("x")
    cmd = [sys.executable, __file__, "--child", run_dir, batch, chunk, str(k), checkpoint]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if proc.returncode != 0:
        raise SystemExit(f"setting {setting} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1], argv[2], argv[3], int(argv[4]), argv[5])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, help="BATCHxCHUNK (CHUNK may be auto)")
    p.add_argument("--k", type=int, default=500, help="importance samples K (default 500)")
    p.add_argument("--eval-size", type=int, default=1000, help="test images scored (data.eval_size; default 1000)")
    p.add_argument("--train-steps", type=int, default=300, help="Adam steps of the temporary run (default 300)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats; medians are shown (default 3)")
    p.add_argument("--config", default=None, help="train the temporary run from this config instead")
    p.add_argument("--set", nargs="*", default=[], help="key=value overrides of the temporary run's config")
    p.add_argument("--run", default=None, help="an existing run folder to evaluate (read only) instead")
    p.add_argument("--checkpoint", default="last", choices=["best", "last"])
    args = p.parse_args(argv)

    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={threads}, K={args.k}, {args.repeats} interleaved repeats, load {os.getloadavg()}"
    )
    with tempfile.TemporaryDirectory(prefix="vaelab_eval_memory_") as tmp:
        run_dir = args.run
        if run_dir is None:
            run_dir = str(Path(tmp) / "run")
            t0 = time.perf_counter()
            train_run(Path(run_dir), args)
            print(f"# trained {args.train_steps} steps into a temporary run in {time.perf_counter() - t0:.0f} s")
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in args.settings}
        loads: list[float] = []
        for r in range(args.repeats):
            for s in args.settings:
                loads.append(os.getloadavg()[0])
                runs[s].append(run_child(run_dir, s, args.k, args.checkpoint))
                m = runs[s][-1]
                print(
                    f"#   repeat {r + 1} {s:>9}: wall {m['wall']:6.2f} s, peak {m['rss_peak_kib'] / 2**20:5.2f} GiB, "
                    f"load {loads[-1]:.2f}",
                    flush=True,
                )
    first = args.settings[0]
    base_wall = statistics.median(m["wall"] for m in runs[first])
    n = runs[first][0]["n"]
    print(
        f"\n{n} test images, K = {args.k}, {runs[first][0]['threads']} torch thread(s), "
        f"load average during the runs {min(loads):.2f}-{max(loads):.2f}; medians of {args.repeats}"
    )
    header = (
        "| batch x chunk | chunk used | peak RSS (GiB) | of which evaluation (GiB) | wall (s) | wall / "
        f"{first} | user (s) | sys (s) | IW-NLL (nats) | se |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for s in args.settings:
        ms = runs[s]

        def med(key: str, ms: list[dict[str, Any]] = ms) -> float:
            return statistics.median(m[key] for m in ms)

        peak = med("rss_peak_kib") / 2**20
        before = med("rss_before_kib") / 2**20
        nlls = sorted({round(m["nll_iw"], 4) for m in ms})
        chunk_used = ms[0]["chunk_resolved"] or s.partition("x")[2]
        print(
            f"| {s} | {chunk_used} | {peak:.2f} | {peak - before:.2f} | {med('wall'):.2f} | "
            f"{med('wall') / base_wall:.2f} | {med('user'):.2f} | {med('sys'):.2f} | "
            f"{', '.join(f'{v:.4f}' for v in nlls)} | {ms[0]['nll_iw_se']:.3f} |"
        )


if __name__ == "__main__":
    main()
