"""The panel of collapse remedies a study compares, each a set of config overrides of one base run config.

A method never changes the model or the data, only the objective (beta, its schedule, the regulariser, extra
terms) or the training strategy, so every row of a study differs from the plain VAE in the remedy alone. The
overrides may depend on the base config (text vs images) and on the budget (an annealing schedule spans half the
budget, whatever it is).

| name | remedy | reference |
|---|---|---|
| ``plain`` | the ELBO, beta = 1 | Kingma & Welling (2014) |
| ``anneal`` | beta linear 0.1 -> 1 over the first half of the budget | Bowman et al. (2016); He et al. (2019) |
| ``cyclical`` | 4 cycles, each a linear ramp 0 -> 1 over half the cycle | Fu et al. (NAACL 2019) |
| ``free_bits`` | batch free bits, lambda = 0.25 nats per dimension | Kingma et al. (2016) |
| ``beta_vae`` | constant beta = 0.4 < 1 (He et al. 2019, Table 1; Zhang et al. 2022) | Higgins et al. (2017) |
| ``aggressive`` | aggressive inference-network training | He et al. (ICLR 2019) |
| ``aggressive_anneal`` | aggressive training + the ``anneal`` schedule | He et al. (ICLR 2019) |
| ``consistency`` | CR-VAE: ELBO(x) + ELBO(t(x)) - lambda KL(q(z|t(x)) || q(z|x)) | Sinha & Dieng (NeurIPS 2021) |
| ``density_gap`` | the density-gap regulariser (b = 32, M = 32) | Zhang et al. (NeurIPS 2022) |
| ``bn_vae`` | batch-normalised posterior means, gamma = 0.5 | Zhu et al. (EMNLP 2020) |
| ``delta_vae`` | posterior variance bounded away from the prior's (delta = 0.1 nats/unit) | Razavi et al. (ICLR 2019) |

Adding a remedy is one :func:`register` call (``vaelab study collapse --methods`` lists the registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vaelab.config import RunConfig
from vaelab.registry import Registry


@dataclass(frozen=True)
class Budget:
    """The training budget every method of a study gets: ``epochs`` or ``steps`` (exactly one is set)."""

    epochs: int | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError("a budget is a number of epochs or a number of steps (exactly one)")
        value = self.epochs if self.epochs is not None else self.steps
        if value is None or value < 1:
            raise ValueError(f"the budget must be at least 1 (got {value})")

    @classmethod
    def parse(cls, text: str | int) -> Budget:
        """``"3"``, ``"3ep"``, ``"3 epochs"`` -> 3 epochs; ``"500steps"``, ``"500 steps"`` -> 500 steps."""
        raw = str(text).strip().lower().replace(" ", "")
        for suffix, kind in (("epochs", "epochs"), ("epoch", "epochs"), ("ep", "epochs"), ("steps", "steps")):
            if raw.endswith(suffix):
                raw, unit = raw[: -len(suffix)], kind
                break
        else:
            unit = "epochs"
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(
                f"--budget {text!r}: expected a number of epochs (3, 3ep) or of steps (500steps)"
            ) from None
        return cls(**{unit: value})

    def overrides(self) -> dict[str, Any]:
        """The train.* keys that set the budget."""
        if self.epochs is not None:
            return {"train.epochs": self.epochs, "train.max_steps": None}
        return {"train.epochs": 10**6, "train.max_steps": self.steps}

    def half_schedule(self) -> dict[str, Any]:
        """Warm-up keys of a schedule that spans the first half of the budget."""
        if self.epochs is not None:
            return {"warmup_epochs": max(self.epochs / 2, 0.5)}
        return {"warmup_steps": max(self.steps // 2, 1)}  # type: ignore[operator]

    def __str__(self) -> str:
        return f"{self.epochs} epochs" if self.epochs is not None else f"{self.steps} steps"


Overrides = Callable[[RunConfig, Budget, bool], dict[str, Any]]
"""(base config, budget, is_text) -> dotted-key overrides."""


@dataclass(frozen=True)
class Method:
    """A remedy: a table label, a one-line description with its reference, and its overrides."""

    name: str
    label: str
    description: str
    overrides: Overrides


METHODS: Registry[Method] = Registry("study method")


def register(method: Method) -> Method:
    METHODS.register(method.name)(method)
    return method


def _anneal(budget: Budget) -> dict[str, Any]:
    return {"objective.beta": {"type": "linear", "start": 0.1, "value": 1.0, **budget.half_schedule()}}


def _aggressive(is_text: bool) -> dict[str, Any]:
    # He et al. (2019): text stops at the first decrease of MI, images after 5 epochs without improvement.
    rule = {"rule": "first_decrease"} if is_text else {"rule": "patience", "patience": 5}
    return {"train.strategy": "aggressive", "train.strategy_options": {"window": 10, "max_inner_steps": 100, **rule}}


register(Method("plain", "VAE", "the ELBO with beta = 1 (Kingma & Welling, 2014)", lambda c, b, t: {}))
register(
    Method(
        "anneal",
        "VAE + annealing",
        "beta linear 0.1 -> 1 over the first half of the budget (Bowman et al. 2016; He et al. 2019)",
        lambda c, b, t: _anneal(b),
    )
)
register(
    Method(
        "cyclical",
        "cyclical annealing",
        "4 cycles of a linear ramp 0 -> 1 over half a cycle, then beta = 1 (Fu et al., NAACL 2019)",
        lambda c, b, t: {"objective.beta": {"type": "cyclical", "value": 1.0, "cycles": 4, "ratio": 0.5}},
    )
)
register(
    Method(
        "free_bits",
        "free bits (0.25)",
        "batch free bits, lambda = 0.25 nats per latent dimension (Kingma et al. 2016)",
        lambda c, b, t: {"objective.regulariser": "free_bits_batch", "objective.free_bits": 0.25},
    )
)
register(
    Method(
        "beta_vae",
        "beta-VAE (0.4)",
        "constant beta = 0.4 (Higgins et al. 2017; the beta < 1 baseline of He et al. 2019 and Zhang et al. 2022)",
        lambda c, b, t: {"objective.beta": {"type": "constant", "value": 0.4}},
    )
)
register(
    Method(
        "aggressive",
        "aggressive",
        "aggressive inference-network training until MI stops improving (He et al., ICLR 2019)",
        lambda c, b, t: _aggressive(t),
    )
)
register(
    Method(
        "aggressive_anneal",
        "aggressive + annealing",
        "aggressive training with the anneal schedule (He et al., ICLR 2019)",
        lambda c, b, t: {**_aggressive(t), **_anneal(b)},
    )
)
register(
    Method(
        "consistency",
        "CR-VAE",
        "consistency regularisation, lambda = 1e-3 (Sinha & Dieng, NeurIPS 2021); image policy 'simple', text 'text'",
        lambda c, b, t: {
            "objective.terms": [
                {"type": "aug_distortion", "weight": 1.0, "transform": "text" if t else "simple"},
                {"type": "aug_rate", "weight": 1.0},
                {"type": "consistency_kl", "weight": 0.001},
            ]
        },
    )
)
register(
    Method(
        "density_gap",
        "DG-VAE (b=32)",
        "density-gap regulariser, chunks of 32, 32 samples (Zhang et al., NeurIPS 2022)",
        lambda c, b, t: {
            "objective.regulariser": "density_gap",
            "objective.regulariser_options": {"chunk_size": 32, "samples": 32, "estimator": "sampled"},
        },
    )
)
register(
    Method(
        "bn_vae",
        "BN-VAE (gamma 0.5)",
        "batch-normalised posterior means, gamma = 0.5 (Zhu et al., EMNLP 2020)",
        lambda c, b, t: {"model.posterior": "bn", "model.bn_gamma": 0.5},
    )
)
register(
    Method(
        "delta_vae",
        "delta-VAE",
        "posterior variance bounded away from the prior's, committed rate 0.1 nats per unit (Razavi et al., ICLR 2019)",
        lambda c, b, t: {"model.posterior": "delta", "model.delta_rate": 0.1},
    )
)

DEFAULT_PANEL = ("plain", "anneal", "cyclical", "free_bits", "beta_vae", "aggressive", "consistency", "density_gap")
"""The methods a study runs when ``--methods`` is not given (in table order)."""


def method_overrides(name: str, base: RunConfig, budget: Budget, is_text: bool) -> dict[str, Any]:
    """The dotted-key overrides of method ``name`` for the base config (the budget itself is
    :meth:`Budget.overrides`, common to every method)."""
    return METHODS.get(name, key="--methods").overrides(base, budget, is_text)
