"""Pivot a sweep's cells.csv (``vaelab sweep-aggregate DIR``) into the Markdown tables of docs/sweeps.md: one row per
group (every parameter but beta), one column per beta, ``mean ± 95 % half-width [seeds]``; the best (lowest) value
of each row in bold for the IW-NLL tables.

    python sweeps/pivot.py runs/sweeps/tetrominoes_converged/cells.csv
"""

from __future__ import annotations

import csv
import math
import sys

BETA = "objective.beta.value"


def fmt(mean: str, ci: str, n: str, bold: bool) -> str:
    if not mean:
        return "-"
    text = f"{float(mean):,.0f}" + (f" ± {float(ci):,.0f}" if ci and not math.isnan(float(ci)) else "") + f" [{n}]"
    return f"**{text}**" if bold else text


def main(path: str) -> None:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    groups = [c for c in rows[0] if c in ("variant", "model.channels", "model.hidden", "data.train_size")]
    betas = sorted({float(r[BETA]) for r in rows})
    keyed: dict[tuple[str, ...], dict[float, dict[str, str]]] = {}
    for r in rows:
        keyed.setdefault(tuple(r[g] for g in groups), {})[float(r[BETA])] = r
    head = "| " + " | ".join(groups) + " | " + " | ".join(f"β = {b:g}" for b in betas) + " |"
    rule = "|" + "---|" * (len(groups) + len(betas))
    for metric in ("test_nll_iw", "train_nll_iw"):
        print(f"\n{metric} (mean ± 95 % half-width [seeds])\n\n{head}\n{rule}")
        for key, cells in keyed.items():
            means = [float(c[f"{metric}_mean"]) for c in cells.values() if c.get(f"{metric}_mean")]
            best = min(means) if means else None
            out = []
            for b in betas:
                c = cells.get(b, {})
                m = c.get(f"{metric}_mean", "")
                out.append(fmt(m, c.get(f"{metric}_ci", ""), c.get(f"{metric}_n", "0"), bool(m) and float(m) == best))
            print("| " + " | ".join(key) + " | " + " | ".join(out) + " |")
    print(f"\ntest R / R − MI (means)\n\n{head}\n{rule}")
    for key, cells in keyed.items():
        out = []
        for b in betas:
            c = cells.get(b, {})
            r, g = c.get("test_rate_mean", ""), c.get("test_marginal_kl_mean", "")
            out.append(f"{float(r):.1f} / {float(g):.1f}" if r and g else "-")
        print("| " + " | ".join(key) + " | " + " | ".join(out) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
