"""The claims of Bozkurt et al. (AISTATS 2021) decided from a beta sweep's cells: ``DIR/claims.md``.

A sweep whose grid varies ``objective.beta.value`` and whose points were measured with the IW-NLL (``cells.csv``,
one row per cell: mean and 95% t-interval over seeds) is read as *groups* (the cells that share every parameter
but beta: a capacity, a training-set size, a split) and three statements are computed, with the numbers that
decide them (nats per example throughout):

1. **Lowering beta improves test IW-NLL** (the paper: "in most settings"). For each pair of neighbouring betas
   b_hi > b_lo of a group, delta = NLL_test(b_lo) - NLL_test(b_hi). It counts as better (worse) when delta < 0
   (> 0) and abs(delta) exceeds sqrt(h_hi^2 + h_lo^2), h the two cells' interval half-widths (a conservative
   approximate 95% test of the difference of two means); otherwise "within the intervals". Plus the beta that
   minimises the mean test IW-NLL of each group.
2. **MI saturates at ln N while the test NLL keeps changing.** A cell is *saturated* when ln N - MI < ``tol``
   (default 0.1 nats) on the test split (MI pooled over the split; ln N its cap). Over the saturated cells of each
   group: the span (max - min) of the mean test IW-NLL, and Spearman's rho between the test IW-NLL and the gap on
   the bound R - MI = KL(q(z) || p(z)).
3. **Low MI underfits.** For each cell whose *training-split* MI is short of its ln N by at least ``tol``, compared
   with the saturated cell of its group with the best training IW-NLL: the difference of training IW-NLL and of
   training distortion (positive = worse fit of the training data).

Cells whose MI is further below ln N than at the next larger beta of their group (MI should fall as beta rises)
are listed as anomalies with their best epoch: model selection on the validation ELBO can pick an early,
low-rate model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vaelab.checkpoint import atomic_write_text

BETA_KEY = "objective.beta.value"
CLAIMS_MD = "claims.md"
SATURATION_TOL = 0.1
"""Nats: a split's MI counts as saturated when ln N - MI is below this."""


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def is_beta_sweep(cells: Sequence[dict[str, Any]], keys: Sequence[str]) -> bool:
    """True when the cells vary beta and carry a test IW-NLL."""
    return BETA_KEY in keys and any(_num(c.get("test_nll_iw_mean")) is not None for c in cells)


def groups(cells: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(label, cells sorted by decreasing beta) per combination of the keys other than beta, in order of first
    appearance; cells without a test IW-NLL are left out."""
    others = [k for k in keys if k != BETA_KEY]
    out: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for c in cells:
        if _num(c.get(BETA_KEY)) is None or _num(c.get("test_nll_iw_mean")) is None:
            continue
        out.setdefault(tuple(c.get(k) for k in others), []).append(c)
    labelled = []
    for values, members in out.items():
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(others, values, strict=True)) or "all"
        labelled.append((label, sorted(members, key=lambda c: -float(c[BETA_KEY]))))
    return labelled


def compare(hi: dict[str, Any], lo: dict[str, Any], metric: str = "test_nll_iw") -> tuple[float, str]:
    """(delta = lo - hi, verdict) of one metric between two cells: "better" (delta < 0), "worse" or "within" (the
    difference does not exceed sqrt(h_hi^2 + h_lo^2); a missing half-width counts as 0)."""
    a, b = float(hi[f"{metric}_mean"]), float(lo[f"{metric}_mean"])
    ha, hb = _num(hi.get(f"{metric}_ci")) or 0.0, _num(lo.get(f"{metric}_ci")) or 0.0
    delta = b - a
    if abs(delta) <= math.hypot(ha, hb):
        return delta, "within"
    return delta, "better" if delta < 0 else "worse"


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None with fewer than 3 pairs or a constant side."""
    if len(x) != len(y) or len(x) < 3:
        return None

    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def _saturated(c: dict[str, Any], split: str, tol: float) -> bool | None:
    gap = _num(c.get(f"{split}_ln_n_minus_mi_mean"))
    return None if gap is None else gap < tol


def _b(c: dict[str, Any]) -> str:
    return f"{float(c[BETA_KEY]):g}"


def _span(values: Sequence[float]) -> str:
    return f"{min(values):.2f} to {max(values):.2f}" if values else "-"


def claims_markdown(cells: Sequence[dict[str, Any]], keys: Sequence[str], tol: float = SATURATION_TOL) -> str:
    """The three claims (module docstring) as Markdown, from cells (``seed_cells`` rows or ``cells.csv``)."""
    grouped = groups(cells, keys)
    lines = [
        "# Claims of Bozkurt et al. (2021), decided by this sweep",
        "",
        f"{len(grouped)} groups (cells sharing every parameter but beta), {sum(len(m) for _, m in grouped)} cells. "
        "Nats per example; a difference counts only when it exceeds sqrt(h1² + h2²) of the cells' 95% "
        f"half-widths; MI is saturated when ln N - MI < {tol:g} nats. Computed by `vaelab sweep-aggregate` "
        "(vaelab.sweep.claims).",
        "",
        "## 1. Does lowering beta improve the test IW-NLL?",
        "",
    ]
    pairs: dict[tuple[str, str], dict[str, list[float]]] = {}
    best: dict[str, list[str]] = {}
    per_group = []
    for label, members in grouped:
        for hi, lo in itertools.pairwise(members):
            delta, verdict = compare(hi, lo)
            pairs.setdefault((_b(hi), _b(lo)), {"better": [], "worse": [], "within": []})[verdict].append(delta)
        top = min(members, key=lambda c: float(c["test_nll_iw_mean"]))
        best.setdefault(_b(top), []).append(label)
        per_group.append((label, top, members))
    lines += [
        "| beta lowered | groups | better | worse | within the intervals | change of test IW-NLL |",
        "|---" * 6 + "|",
    ]
    for (hi, lo), v in pairs.items():
        all_d = [d for ds in v.values() for d in ds]
        lines.append(
            f"| {hi} → {lo} | {len(all_d)} | {len(v['better'])} | {len(v['worse'])} | {len(v['within'])} | "
            f"{_span(all_d)} |"
        )
    lines += ["", "Lowest mean test IW-NLL per group:", ""]
    for beta, labels in sorted(best.items(), key=lambda kv: -float(kv[0])):
        lines.append(f"- beta = {beta}: {len(labels)} of {len(grouped)} groups ({'; '.join(labels)})")
    lines += ["", "## 2. Does MI saturate at ln N while the test NLL keeps changing?", ""]
    lines += [
        "| group | saturated betas (test) | test IW-NLL span over them | R - MI over them "
        "| Spearman rho (NLL, R - MI) |",
        "|---|---|---|---|---|",
    ]
    n_sat = n_all = 0
    rhos: list[float] = []
    spans: list[float] = []
    for label, _, members in per_group:
        sat = [c for c in members if _saturated(c, "test", tol)]
        n_sat += len(sat)
        n_all += len(members)
        nll = [float(c["test_nll_iw_mean"]) for c in sat]
        mk = [_num(c.get("test_marginal_kl_mean")) for c in sat]
        rho = spearman(nll, [m for m in mk if m is not None]) if None not in mk else None
        if rho is not None:
            rhos.append(rho)
        if len(sat) >= 2:
            spans.append(max(nll) - min(nll))
        lines.append(
            f"| {label} | {', '.join(_b(c) for c in sat) or '-'} | "
            f"{f'{max(nll) - min(nll):.2f}' if len(sat) >= 2 else '-'} | "
            f"{_span([m for m in mk if m is not None])} | {f'{rho:.2f}' if rho is not None else '-'} |"
        )
    lines += [
        "",
        f"Test MI saturated in {n_sat} of {n_all} cells; across the saturated cells of a group the test IW-NLL spans "
        f"{_span(spans)} nats; Spearman rho between test IW-NLL and R - MI: {_span(rhos)} "
        f"({sum(r >= 0.8 for r in rhos)} of {len(rhos)} groups with rho >= 0.8).",
        "",
        "## 3. Does low MI underfit?",
        "",
        "| group | beta | ln N - MI (train) | train IW-NLL minus best saturated | train D minus that cell's "
        "| test IW-NLL minus best saturated |",
        "|---|---|---|---|---|---|",
    ]
    worse_fit = total = 0
    for label, _, members in per_group:
        sat = [c for c in members if _saturated(c, "train", tol)]
        low = [c for c in members if _saturated(c, "train", tol) is False]
        if not sat or not low:
            continue
        ref = min(sat, key=lambda c: float(c.get("train_nll_iw_mean") or math.inf))
        ref_test = min(float(c["test_nll_iw_mean"]) for c in sat)
        for c in low:
            d_nll = _num(c.get("train_nll_iw_mean"))
            r_nll = _num(ref.get("train_nll_iw_mean"))
            d_d, r_d = _num(c.get("train_distortion_mean")), _num(ref.get("train_distortion_mean"))
            if d_nll is None or r_nll is None:
                continue
            total += 1
            worse_fit += d_nll > r_nll
            lines.append(
                f"| {label} | {_b(c)} | {float(c['train_ln_n_minus_mi_mean']):.2f} | {d_nll - r_nll:+.2f} "
                f"(vs beta {_b(ref)}) | {f'{d_d - r_d:+.2f}' if d_d is not None and r_d is not None else '-'} | "
                f"{float(c['test_nll_iw_mean']) - ref_test:+.2f} |"
            )
    lines += ["", f"Unsaturated training MI with a worse training IW-NLL: {worse_fit} of {total} cells.", ""]
    anomalies = []
    for label, _, members in per_group:
        for hi, lo in itertools.pairwise(members):
            g_hi, g_lo = _num(hi.get("test_ln_n_minus_mi_mean")), _num(lo.get("test_ln_n_minus_mi_mean"))
            if g_hi is not None and g_lo is not None and g_lo > g_hi + tol:
                be = _num(lo.get("best_epoch_mean"))
                anomalies.append(
                    f"- {label}, beta = {_b(lo)}: ln N - MI = {g_lo:.2f} (beta {_b(hi)}: {g_hi:.2f}); "
                    f"best epoch {f'{be:.0f}' if be is not None else '-'} (mean over seeds)"
                )
    if anomalies:
        lines += ["## Anomalies: MI lower at a smaller beta", "", *anomalies, ""]
    return "\n".join(lines)


def write_claims(out: str | Path, cells: Sequence[dict[str, Any]], keys: Sequence[str]) -> Path | None:
    """Write ``DIR/claims.md`` when the sweep is a beta sweep with IW-NLL (:func:`is_beta_sweep`); else None."""
    if not is_beta_sweep(cells, keys):
        return None
    path = Path(out) / CLAIMS_MD
    atomic_write_text(path, claims_markdown(cells, keys))
    return path
