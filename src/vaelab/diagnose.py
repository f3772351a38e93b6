"""``vaelab diagnose DIR``: has this VAE collapsed, how, and what to try, in plain words from measured numbers.

The diagnosis reads the per-unit rate KL_d = E_x KL(q(z_d|x) || p(z_d)) and activity A_d = Var_x E_q[z_d|x]
(Burda et al. 2016), the mutual information I_q(x; z) against its ceiling ln(pool), the marginal KL
R - I_q = KL(q(z) || p(z)) (Hoffman & Johnson 2016; Bozkurt et al. 2021) and the hole metrics of Zhang et al.
(NeurIPS 2022). All numbers are nats per example. Thresholds (module constants) follow the conventions of the
field: a unit is active when A_d >= 0.01 (Burda et al.), it carries no information when KL_d < 0.01 nats.

Verdicts (:func:`diagnose_metrics`):

- ``collapsed``: I_q < 0.05 nats (I_q read as min(MI estimate, rate): I_q <= rate) or no active unit: q(z|x)
  does not depend on x, the decoder ignores z;
- ``partial``: some units active, more than a quarter of them inactive; or the active units carry together less
  than 0.01 nats each (means that vary without carrying information: "close to collapse");
- ``healthy``: (almost) every unit active and I_q clearly above zero (at least 0.01 nats per active unit).

The recommendation is chosen from the measured pattern (see :func:`recommend`) and names the vaelab setting.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vaelab.checkpoint import atomic_write_text
from vaelab.errors import UserError
from vaelab.runfolder import (
    EVALUATION_FILES,
    checkpoint_record,
    not_a_run_folder,
    read_json_object,
    read_jsonl,
    read_metrics_file,
    stale_evaluation,
)

if TYPE_CHECKING:
    from vaelab.run import Run

MI_COLLAPSED = 0.05
"""Nats: below this I_q(x; z) the posterior carries (almost) no information about x."""
UNIT_KL_DEAD = 0.01
"""Nats: a unit whose rate is below this matches the prior for every x."""
MI_CEILING_FRACTION = 0.9
"""MI above this fraction of ln(pool) is saturated: the estimator cannot see higher values."""
HOLE_FRACTION = 0.3
"""Marginal KL above this fraction of the rate (and above 1 nat): q(z) leaves holes under p(z)."""

AUTOREGRESSIVE = ("lstm_vae", "pixelcnn")
"""Model types whose decoder can model x without z (the setting of He et al. 2019)."""


@dataclass
class Diagnosis:
    """The verdict, the findings (sentences with numbers) and the recommendations (remedy + why)."""

    verdict: str
    headline: str
    findings: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"verdict: {self.verdict.upper()} - {self.headline}", "", "findings:"]
        lines += [f"  - {f}" for f in self.findings]
        lines += ["", "what to try:"]
        lines += [f"  - {r}" for r in self.recommendations]
        return "\n".join(lines)

    def markdown(self, title: str = "Diagnosis") -> str:
        lines = [f"# {title}", "", f"**Verdict: {self.verdict}** - {self.headline}", "", "## Findings", ""]
        lines += [f"- {f}" for f in self.findings]
        lines += ["", "## What to try", ""]
        lines += [f"- {r}" for r in self.recommendations]
        return "\n".join(lines) + "\n"


def _f(x: float) -> str:
    """A number for a sentence: 3 significant figures; |x| < 1e-3 is written 0 (small negative MI or KL values
    are estimator noise)."""
    if abs(x) < 1e-3:
        return "0"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.1f}"


def unit_table(metrics: dict[str, Any], au_threshold: float = 0.01) -> list[dict[str, Any]]:
    """Per unit: index, rate KL_d (nats), activity A_d, active (A_d >= threshold), share of the total rate."""
    kl = [float(v) for v in metrics.get("kl_per_dim") or []]
    act = [float(v) for v in metrics.get("activity_per_dim") or []]
    total = sum(kl) or 1.0
    rows = []
    for d, k in enumerate(kl):
        a = act[d] if d < len(act) else None
        rows.append(
            {"unit": d, "kl": k, "activity": a, "active": None if a is None else a >= au_threshold, "share": k / total}
        )
    return rows


def diagnose_metrics(metrics: dict[str, Any], *, model_type: str | None = None, beta: float | None = None) -> Diagnosis:
    """Diagnose collapse from one evaluation's metrics (the dict of ``summary.json`` / ``eval.json``).

    Needs ``rate`` and ``kl_per_dim``; uses ``mi`` and ``mi_pool``, ``au`` and ``activity_per_dim``,
    ``marginal_kl``, ``hole_kl`` and ``cu_0.03`` when present. ``model_type``: the config's ``model.type``
    (autoregressive decoders change the advice); ``beta``: the final beta of the objective, if known.
    """
    if "rate" not in metrics or not metrics.get("kl_per_dim"):
        raise UserError("diagnosis needs the evaluation's 'rate' and 'kl_per_dim' (run `vaelab evaluate DIR`)")
    kl = [float(v) for v in metrics["kl_per_dim"]]
    d = len(kl)
    rate = float(metrics["rate"])
    for key, values in (("rate", [rate]), ("kl_per_dim", kl), ("mi", [metrics.get("mi")])):
        if any(v is not None and not math.isfinite(float(v)) for v in values):  # NaN compares false to every rule
            raise UserError(
                f"diagnosis: {key} is not finite ({values[0] if len(values) == 1 else values}); a NaN "
                "or infinite evaluation cannot be diagnosed: evaluate the run again"
            )
    threshold = float(metrics.get("au_threshold", 0.01))
    au = int(metrics["au"]) if metrics.get("au") is not None else None
    mi = float(metrics["mi"]) if metrics.get("mi") is not None else None
    pool = metrics.get("mi_pool")
    ceiling = math.log(pool) if isinstance(pool, int | float) and pool > 1 else None
    marginal = float(metrics["marginal_kl"]) if metrics.get("marginal_kl") is not None else None
    dead = [i for i, k in enumerate(kl) if k < UNIT_KL_DEAD]
    units = unit_table(metrics, threshold)
    inactive = [u["unit"] for u in units if u["active"] is False]
    ar = model_type in AUTOREGRESSIVE
    numbers: dict[str, Any] = {
        "latent_dim": d,
        "rate": rate,
        "mi": mi,
        "mi_pool": pool,
        "mi_ceiling": ceiling,
        "marginal_kl": marginal,
        "au": au,
        "dead_units": len(dead),
        "model_type": model_type,
        "beta": beta,
    }
    for key in ("nll_iw", "distortion", "hole_kl", "cu_0.03"):
        if metrics.get(key) is not None:
            numbers[key] = metrics[key]

    findings = [
        f"rate (KL) {_f(rate)} nats over {d} latent units; {d - len(dead)} units carry more than "
        f"{UNIT_KL_DEAD} nats, {len(dead)} carry less (they match the prior for every x)."
    ]
    if au is not None:
        findings.append(f"active units (Var_x E[z_d|x] >= {threshold:g}): {au} of {d}.")
    if units and d - len(dead) > 0:
        top = sorted(units, key=lambda u: -u["kl"])[: min(3, d - len(dead))]
        findings.append(
            "the rate sits in units "
            + ", ".join(f"{u['unit']} ({_f(u['kl'])} nats, {100 * u['share']:.0f}%)" for u in top)
            + "."
        )
    if mi is not None:
        text = f"mutual information I(x; z) {_f(mi)} nats"
        if ceiling is not None:
            text += f" (pool {pool}: ceiling ln {pool} = {ceiling:.2f} nats, {max(0.0, 100 * mi / ceiling):.0f}% of it)"
        findings.append(text + ".")
        if ceiling is not None and mi >= MI_CEILING_FRACTION * ceiling:
            findings.append(
                f"MI is at its ceiling: the estimator cannot resolve values above ln {pool}; compare runs by the "
                "IW-NLL, the rate and AU, or measure with a larger pool (eval.mi_pool=all on a larger split)."
            )
    if marginal is not None and marginal < 0:
        findings.append(
            f"rate - MI = {_f(marginal)} nats, below 0, which KL(q(z) || p(z)) cannot be: the MI estimate exceeds "
            "the rate by its sampling error (MI <= rate always), so the information is read as the rate, "
            f"{_f(rate)} nats, and the mismatch as about 0."
        )
    elif marginal is not None:
        findings.append(
            f"rate - MI = KL(q(z) || p(z)) = {_f(marginal)} nats: the part of the rate that buys no information "
            "about x, spent on a mismatch between the aggregate posterior and the prior."
        )
    if metrics.get("hole_kl") is not None:
        cu = metrics.get("cu_0.03")
        findings.append(
            f"hole KL(p(z) || q(z)) = {_f(float(metrics['hole_kl']))} nats"
            + (f"; {cu} of {d} units have a per-unit hole KL below 0.03 (CU)" if cu is not None else "")
            + "."
        )
    if beta is not None and beta > 1:
        findings.append(f"the objective's beta is {beta:g} > 1: it pays for less rate, which favours collapse.")

    info = min(mi, rate) if mi is not None else None  # I(x; z) <= rate: an estimate above it is sampling error
    collapsed = (info is not None and info < MI_COLLAPSED) or au == 0 or len(dead) == d
    n_active = au if au is not None else d - len(dead)
    # units whose posterior means vary (AU counts them) while all of them together carry less than a dead unit's
    # 0.01 nats each: a mean that moves by 0.1 prior sd carries ~0.005 nats, which no decoder can use
    weak = info if info is not None else rate
    weak_latent = not collapsed and n_active > 0 and weak < UNIT_KL_DEAD * n_active
    holes = marginal is not None and marginal > 1.0 and marginal > HOLE_FRACTION * max(rate, 1e-12)
    if collapsed:
        verdict = "collapsed"
        headline = (
            f"posterior collapse: q(z|x) hardly depends on x (MI {_f(info) if info is not None else 'n/a'} nats, "
            f"AU {n_active}/{d}, rate {_f(rate)} nats); the decoder models the data without z."
        )
    elif weak_latent:
        verdict = "partial"
        headline = (
            f"close to collapse: {n_active} of {d} latent units vary with x, but together they carry only "
            f"{_f(weak)} nats, under {UNIT_KL_DEAD} per unit; the decoder can hardly use z."
        )
    elif n_active < 0.75 * d:
        verdict = "partial"
        headline = (
            f"partial collapse: {d - n_active} of {d} latent units are inactive; the other {n_active} carry "
            f"{_f(info) if info is not None else _f(rate)} nats of information."
        )
    else:
        verdict = "healthy"
        headline = f"no collapse: {n_active} of {d} units active, MI {_f(info) if info is not None else 'n/a'} nats."
    numbers["verdict"] = verdict
    numbers["inactive_units"] = inactive
    numbers["weak_latent"] = weak_latent
    numbers["holes"] = holes
    return Diagnosis(verdict, headline, findings, recommend(verdict, numbers, ar, holes), numbers)


def recommend(verdict: str, n: dict[str, Any], autoregressive: bool, holes: bool) -> list[str]:
    """Remedies for the measured pattern, each with its reason and its vaelab setting."""
    out: list[str] = []
    d = n["latent_dim"]
    if verdict == "collapsed":
        if autoregressive:
            out.append(
                "aggressive inference-network training (He et al., ICLR 2019; train.strategy=aggressive): with an "
                f"autoregressive decoder ({n['model_type']}) the encoder lags behind the true posterior early in "
                "training and the decoder learns to ignore z; updating the encoder until MI stops improving fixes "
                "the cause without changing the model."
            )
        out.append(
            "KL annealing or cyclical annealing (objective.beta={type: linear, start: 0.1, value: 1.0, "
            "warmup_epochs: 10} or type: cyclical): a small beta early lets the encoder carry information before "
            "the KL price is paid in full."
        )
        out.append(
            "free bits (objective.regulariser=free_bits_batch objective.free_bits=0.25): the first 0.25 nats per "
            "unit are free, so the optimum cannot sit at rate 0."
        )
        if n.get("beta") is not None and n["beta"] > 1:
            out.insert(0, f"lower beta (now {n['beta']:g}): beta > 1 makes collapse the optimum for weak signals.")
    elif verdict == "partial" and n.get("weak_latent"):
        out.append(
            "treat it as collapse in the making: free bits (objective.regulariser=free_bits_batch "
            "objective.free_bits=0.25) make the first 0.25 nats per unit free, so the units can carry what their "
            "varying means hint at; KL annealing (objective.beta={type: linear, start: 0.1, value: 1.0, "
            "warmup_epochs: 10}) lets the encoder carry information before the KL price is paid in full."
        )
        if autoregressive:
            out.append("aggressive training (train.strategy=aggressive): the encoder may be lagging the decoder.")
    elif verdict == "partial":
        out.append(
            f"if the data need fewer than {d} dimensions, the inactive units are superfluous rather than lost "
            "(Ichikawa & Hukushima 2024: units whose signal is below the noise scale set by beta switch off); "
            "check the IW-NLL against a run with model.latent_dim equal to the active count."
        )
        out.append(
            "to make every unit carry information: free bits per unit (objective.regulariser=free_bits_batch), "
            "the density-gap regulariser (objective.regulariser=density_gap; Zhang et al. 2022: AU = D), or "
            "BN-VAE (model.posterior=bn), which bound each unit's rate from below."
        )
        if autoregressive:
            out.append("aggressive training (train.strategy=aggressive) if the active count falls during training.")
    else:
        out.append("no remedy needed for collapse; compare remedies by IW-NLL at equal K if the likelihood matters.")
    if holes:
        out.append(
            f"the aggregate posterior misses the prior (rate - MI = {_f(n['marginal_kl'])} nats): prior samples "
            "land in holes where the decoder was never trained. The density-gap regulariser (Zhang et al., NeurIPS "
            "2022; objective.regulariser=density_gap) matches q(z) to p(z) directly."
        )
    ceiling = n.get("mi_ceiling")
    if ceiling is not None and n.get("mi") is not None and n["mi"] >= MI_CEILING_FRACTION * ceiling:
        out.append("measure MI on a larger pool before concluding from it (it is saturated).")
    return out


# ------------------------------------------------------------------------------------------------------------
# a run folder


def run_metrics(run_dir: str | Path, *, evaluate: bool | None = None, split: str = "test") -> tuple[dict, str]:
    """The metrics a diagnosis reads and where they came from.

    ``evaluate``: True re-evaluates the best checkpoint on ``split`` with the hole metrics (no IW-NLL); False only
    reads files (eval.json, eval_<split>.json, summary.json); None (default) reads files and evaluates when they
    lack the per-unit activity or the hole metrics.
    """
    root = Path(run_dir)
    if not (root / "config.yaml").is_file():
        raise FileNotFoundError(not_a_run_folder(root))
    sources = [root / "diagnosis_eval.json", root / "eval.json", root / f"eval_{split}.json", root / "summary.json"]
    found = [(p, read_metrics_file(p)) for p in sources if p.is_file()]  # a damaged one is named, not skipped
    found = [(p, m) for p, m in found if m and m.get("kl_per_dim") and m.get("split", split) == split]
    stale = [(p, why) for p, m in found if p.name in EVALUATION_FILES and (why := stale_evaluation(p, m))]
    if stale and evaluate is False:
        raise UserError(f"{stale[0][1]}; run `vaelab evaluate {root}` again, or diagnose without --no-evaluate")
    found = [(p, m) for p, m in found if p not in {s for s, _ in stale}]  # re-evaluated below when needed
    complete = [(p, m) for p, m in found if m.get("activity_per_dim") and "hole_kl" in m]
    if evaluate is False or (evaluate is None and complete):
        pick = complete[0] if complete else (found[0] if found else None)
        if pick is None:
            raise FileNotFoundError(
                f"{root}: no evaluation with per-unit KL on the {split} split (looked for "
                f"{', '.join(p.name for p in sources)}); run without --no-evaluate"
            )
        return pick[1], str(pick[0])
    return _evaluate(root, split), str(root / "diagnosis_eval.json")


def _evaluate(root: Path, split: str) -> dict[str, Any]:
    from vaelab.run import load_run

    return evaluate_for_diagnosis(load_run(root), split)


def evaluate_for_diagnosis(run: Run, split: str = "test") -> dict[str, Any]:
    """The metrics a diagnosis needs, of a loaded run (:func:`vaelab.run.load_run`) on ``split``: the evaluation
    with the hole metrics added to ``eval.extra_metrics`` (at most 32,000 prior samples) and no IW-NLL, seed
    offset :data:`~vaelab.evaluation.DIAGNOSE_OFFSET`; written to the run folder's diagnosis_eval.json."""
    from vaelab.evaluation import DIAGNOSE_OFFSET, Evaluator

    ev = run.config.eval
    ev.extra_metrics = [*dict.fromkeys([*ev.extra_metrics, "holes"])]
    ev.hole_prior_samples = min(ev.hole_prior_samples, 32_000)
    checkpoint = run.checkpoint.stem if run.checkpoint is not None else None
    evaluation = Evaluator(run).evaluate(split, seed_offset=DIAGNOSE_OFFSET, extras=True)
    result = {"split": split, "checkpoint": checkpoint, **checkpoint_record(run.checkpoint), **evaluation}
    if run.folder is not None:
        run.folder.write_json("diagnosis_eval.json", result)
    return result


def run_context(run_dir: str | Path) -> tuple[str | None, float | None]:
    """(model.type, final beta) of a run folder's config."""
    from vaelab.config import load_saved_config

    cfg = load_saved_config(Path(run_dir) / "config.yaml")
    beta_cfg = cfg.objective.beta
    beta = float(beta_cfg) if isinstance(beta_cfg, int | float) else float(getattr(beta_cfg, "value", 1.0))
    return cfg.model.type, beta


def unfinished_run(root: Path) -> str | None:
    """A sentence saying that the run in ``root`` has not finished (no summary.json, or one that does not say
    completed: killed, still training, failed) with its last epoch and step, or None for a finished run."""
    summary = root / "summary.json"
    status = None
    if summary.is_file():
        try:
            status = read_json_object(summary).get("status")
        except (UserError, OSError, ValueError):
            status = "unreadable"
        if status == "completed":
            return None
    records = [r for r in _metrics_records(root) if isinstance(r, dict)]
    where = f" (its last logged epoch is {records[-1].get('epoch')}, step {records[-1].get('step')})" if records else ""
    why = "has no summary.json" if status is None else f"has a summary.json with status {status}"
    return (
        f"The run has not finished: it {why}{where}, so this describes its best checkpoint so far, not a trained "
        f"model; finish it with `vaelab resume {root}` and diagnose it again."
    )


def _metrics_records(root: Path) -> list[Any]:
    """metrics.jsonl's records, [] when it is missing or unreadable (a diagnosis does not need them)."""
    try:
        return read_jsonl(root / "metrics.jsonl")
    except (UserError, OSError, ValueError):
        return []


def diagnose_run(run_dir: str | Path, *, evaluate: bool | None = None, split: str = "test") -> Diagnosis:
    """Diagnose a run folder and write ``DIR/diagnosis.json`` and ``DIR/diagnosis.md``."""
    metrics, source = run_metrics(run_dir, evaluate=evaluate, split=split)
    model_type, beta = run_context(run_dir)
    diag = diagnose_metrics(metrics, model_type=model_type, beta=beta)
    diag.numbers["source"] = source
    diag.numbers["split"] = split
    root = Path(run_dir)
    if unfinished := unfinished_run(root):  # the verdict is about the best model so far: say so first
        diag.findings.insert(0, unfinished)
        diag.numbers["unfinished"] = True
    atomic_write_text(root / "diagnosis.json", json.dumps(asdict(diag), indent=2) + "\n")
    atomic_write_text(root / "diagnosis.md", diag.markdown(f"Diagnosis of {root.name}"))
    return diag


def cmd_diagnose(args: argparse.Namespace) -> int:
    evaluate = True if args.evaluate else (False if args.no_evaluate else None)
    diag = diagnose_run(args.dir, evaluate=evaluate, split=args.split)
    print(f"{args.dir} ({args.split} split; numbers from {diag.numbers['source']})\n")
    print(diag.text())
    print(f"\nwritten: {Path(args.dir) / 'diagnosis.md'}, {Path(args.dir) / 'diagnosis.json'}")
    return 0


def add_diagnose_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "diagnose",
        help="say whether and how a trained run collapsed, and what to try",
        description="Read a run folder's evaluation (per-unit KL and activity, MI and its ceiling, rate - MI, "
        "hole metrics) and state in plain words whether and how it collapsed, with a recommendation.",
    )
    p.add_argument("dir", help="run folder (from vaelab train, a sweep point or a study point)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--evaluate", action="store_true", help="always re-evaluate the best checkpoint (with holes)")
    g.add_argument("--no-evaluate", action="store_true", help="only read the run's files, never evaluate")
    p.set_defaults(func=cmd_diagnose)
