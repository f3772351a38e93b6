"""Cost of aggressive inference-network training (He et al., ICLR 2019) against plain joint steps, printed.

Trains the same config for a fixed number of outer steps with ``train.strategy=joint`` and ``aggressive`` (and
aggressive with every gradient computed, i.e. without freezing the parameters a step does not update) and prints
seconds per outer step, the inner encoder steps per outer step and the ratios. The figures depend on the machine
and its load; run it on a quiet one.

    python benchmarks/aggressive_cost.py [--config configs/collapse_mnist_vae.yaml] [--steps 60] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vaelab.config import load_config
from vaelab.training import strategies
from vaelab.training.trainer import Trainer


def run(config: str, overrides: list[str], steps: int, freeze: bool) -> tuple[float, float]:
    """(seconds per outer step of the training loop, inner steps per outer step) of ``steps`` outer steps."""
    cfg = load_config(config, [*overrides, f"train.max_steps={steps}", "train.progress=false", "eval.iw_samples=0"])
    freezing = strategies.parameters_to_freeze
    if not freeze:  # every gradient computed
        strategies.parameters_to_freeze = lambda ctx, clip_names: []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run")
        t0 = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - t0
        rows = [json.loads(x) for x in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    strategies.parameters_to_freeze = freezing
    inner = [r.get("inner_steps_per_step", 0.0) for r in rows if r["split"] == "valid"]
    return seconds / steps, (sum(inner) / len(inner) if inner else 0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/collapse_mnist_vae.yaml")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    base = [*a.overrides, "eval.extra_metrics=[]"]
    agg = [*base, "train.strategy=aggressive"]
    plain, _ = run(a.config, base, a.steps, True)
    fast, inner = run(a.config, agg, a.steps, True)
    slow, _ = run(a.config, agg, a.steps, False)
    print(f"{a.config}, {a.steps} outer steps (validation and final evaluation included in the times)")
    print(f"  plain (joint)                     {plain:.4f} s/step")
    print(
        f"  aggressive, frozen other params   {fast:.4f} s/step   {fast / plain:.1f}x plain   {inner:.1f} inner/outer"
    )
    print(f"  aggressive, every gradient        {slow:.4f} s/step   {slow / plain:.1f}x plain")
    print(f"  freezing saves {100 * (1 - fast / slow):.0f}% of an aggressive step")


if __name__ == "__main__":
    main()
