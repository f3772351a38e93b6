"""The panel of collapse remedies a study compares, each a set of config overrides of one base run config.

A method never changes the model's architecture or the data, only the objective (beta, its schedule, the
regulariser, extra terms), the posterior head or the training strategy, so every row of a study differs from the
plain VAE in the remedy alone (BN-VAE on text also draws its batches in random order, which its batch statistics
need). The
overrides may depend on the base config (text vs images) and on the budget (an annealing schedule spans half the
budget, whatever it is).

- ``plain``: the ELBO, beta = 1 (Kingma & Welling 2014).
- ``anneal``: beta linear 0.1 -> 1 over the first half of the budget (Bowman et al. 2016; He et al. 2019).
- ``cyclical``: 4 cycles, each a linear ramp 0 -> 1 over half the cycle (Fu et al., NAACL 2019).
- ``free_bits``: images: batch free bits, lambda = 0.25 nats per dimension (Kingma et al. 2016); text:
  per-example-per-dimension free bits, target 0.125 D nats per sentence (Li et al. 2019; 4 nats at D = 32, the
  smallest target of the density-gap authors' table, methods.md section 4b).
- ``beta_vae``: beta = 0.4 < 1 (Higgins et al. 2017; the beta < 1 baseline of He et al. 2019).
- ``aggressive``: aggressive inference-network training, window 15 on text and 10 on images, the paper's MI rule
  once per epoch, on text clipped by the whole model's gradient norm as the authors' code does (He et al., ICLR
  2019); ``aggressive_anneal`` adds the ``anneal`` schedule.
- ``consistency``: CR-VAE, ELBO(x) + ELBO(t(x)) - lambda KL(q(z|t(x)) || q(z|x)) (Sinha & Dieng, NeurIPS 2021).
- ``density_gap``: the density-gap regulariser, M = 32, chunks b = 32 on images and b = 4 on text (Zhang et al.,
  NeurIPS 2022).
- ``bn_vae``: batch-normalised posterior means, gamma 0.5 on images; on text gamma 0.7 with batches in random order
  (Zhu et al., EMNLP 2020).
- ``delta_vae``: posterior variance bounded away from the prior's, delta 0.1 nats per unit on images, 0.15 on text
  (Razavi et al., ICLR 2019).
- ``pretrain_fb``: the encoder pretrained as an autoencoder (beta = 0) for a quarter of the budget, the decoder
  re-initialised, then per-example-per-dimension free bits (0.125 D nats) with the KL weight 0 -> 1 (Li et al.,
  EMNLP 2019).

On text the regularised remedies (free bits, beta-VAE, density gap, BN-VAE, delta-VAE) anneal their KL weight from 0
to its value over the first half of the budget, as the density-gap authors' comparison does for every method
(methods.md section 4b; they anneal over the first 10 of 100 epochs); the plain VAE is never annealed.

Adding a remedy is one :func:`register` call (``vaelab study collapse --methods`` lists the registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vaelab.config import RunConfig
from vaelab.errors import ConfigError
from vaelab.registry import Registry

MAX_BUDGET = 10**6
"""The most epochs or steps of a study's budget (``--budget``)."""


@dataclass(frozen=True)
class Budget:
    """The training budget every method of a study gets: ``epochs`` or ``steps`` (exactly one is set)."""

    epochs: int | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError("a budget is a number of epochs or a number of steps (exactly one)")
        value = self.epochs if self.epochs is not None else self.steps
        if value is None or value < 1 or value > MAX_BUDGET:  # a typo of 10**12 epochs would train for ever
            raise ConfigError(f"--budget must be an integer in [1, {MAX_BUDGET}], got {value}")

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
            raise ConfigError(
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


def _kl_warmup(budget: Budget, value: float = 1.0, delay: dict[str, Any] | None = None) -> dict[str, Any]:
    """The KL weight 0 -> ``value`` over the first half of the budget (after ``delay``): the text settings of the
    density-gap authors' comparison (Zhang et al. 2022), and of Li et al. (2019) after pretraining."""
    return {
        "objective.beta": {"type": "linear", "start": 0.0, "value": value, **budget.half_schedule(), **(delay or {})}
    }


TEXT_WINDOW = 15
"""He et al. (2019): the inner loop compares windows of 15 encoder steps on text and 10 on images."""


def _aggressive(is_text: bool) -> dict[str, Any]:
    # He et al. (2019): text stops at the first decrease of MI, images after 5 epochs without improvement, both
    # checked once per epoch on the validation MI (no cap, no step-wise checks: those are documented options).
    # Text also clips by the whole model's gradient norm, as the authors' code does (measured on PTB: MI 0.43-0.45
    # and AU 22-26 at steps 125-150 against 0.28-0.37 and 19-24 with the stepped parameters' norm; docs/text.md).
    if is_text:
        options = {"window": TEXT_WINDOW, "rule": "first_decrease", "clip_scope": "model"}
    else:
        options = {"window": 10, "rule": "patience", "patience": 5}
    return {"train.strategy": "aggressive", "train.strategy_options": {"max_inner_steps": 100, **options}}


TEXT_FREE_BITS_PER_UNIT = 0.125
"""The text free-bits target per latent unit (nats): 4 nats per sentence at D = 32, the smallest target of the
density-gap authors' comparison (Zhang et al. 2022; methods.md section 4b). Li et al.'s README example uses 8 nats
(0.25 per unit); in vaelab's PTB study (8 epochs) that target costs 1.1-1.3 nats of IW-NLL against the plain VAE,
4 nats costs none (docs/text.md)."""


def _fine_free_bits(base: RunConfig) -> dict[str, Any]:
    """Per-example-per-dimension free bits, :data:`TEXT_FREE_BITS_PER_UNIT` nats per unit (the target, D times
    that, is the regulariser's ``objective.free_bits``; Li et al. 2019)."""
    return {
        "objective.regulariser": "free_bits_fine",
        "objective.free_bits": TEXT_FREE_BITS_PER_UNIT * base.model.latent_dim,
    }


def _free_bits(budget: Budget, base: RunConfig, is_text: bool) -> dict[str, Any]:
    if not is_text:
        return {"objective.regulariser": "free_bits_batch", "objective.free_bits": 0.25}
    # text: the per-example-per-dimension mask the density-gap and Li et al. comparisons use
    return {**_fine_free_bits(base), **_kl_warmup(budget)}


def pretrain_phase(budget: Budget) -> dict[str, int]:
    """The autoencoder phase of ``pretrain_fb``: a quarter of the budget, at least one epoch (or step)."""
    if budget.epochs is not None:
        return {"pretrain_epochs": max(1, budget.epochs // 4)}
    return {"pretrain_steps": max(1, (budget.steps or 0) // 4)}


def _pretrain_fb(budget: Budget, base: RunConfig) -> dict[str, Any]:
    """Li et al. (2019): autoencoder phase, decoder reset, then fine free bits with the KL weight 0 -> 1 over the
    first half of the remaining budget."""
    phase = pretrain_phase(budget)
    if budget.epochs is not None:
        p = phase["pretrain_epochs"]
        rest, delay = Budget(epochs=max(1, budget.epochs - p)), {"delay_epochs": p}
    else:
        p = phase["pretrain_steps"]
        rest, delay = Budget(steps=max(1, (budget.steps or 0) - p)), {"delay_steps": p}
    return {
        "train.strategy": "pretrain_reset",
        "train.strategy_options": phase,
        **_fine_free_bits(base),
        **_kl_warmup(rest, delay=delay),
    }


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
        "free bits",
        "free bits: batch FB, 0.25 nats per latent dimension, on images (Kingma et al. 2016); on text "
        "per-example-per-dimension FB, 0.125 nats per dimension, with the KL weight 0 -> 1 (Li et al. 2019; "
        "Zhang et al. 2022)",
        lambda c, b, t: _free_bits(b, c, t),
    )
)
register(
    Method(
        "beta_vae",
        "beta-VAE (0.4)",
        "beta = 0.4 (Higgins et al. 2017; the beta < 1 baseline of He et al. 2019 and Zhang et al. 2022; on text "
        "annealed 0 -> 0.4)",
        lambda c, b, t: _kl_warmup(b, 0.4) if t else {"objective.beta": {"type": "constant", "value": 0.4}},
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
        "DG-VAE",
        "density-gap regulariser, 32 samples, chunks of 32 on images and 4 on text with the KL weight 0 -> 1 (Zhang "
        "et al., NeurIPS 2022: b = 4 is their text row with both MI and likelihood kept; b = 32 costs ~25 nats there)",
        lambda c, b, t: {
            "objective.regulariser": "density_gap",
            "objective.regulariser_options": {"chunk_size": 4 if t else 32, "samples": 32, "estimator": "sampled"},
            **(_kl_warmup(b) if t else {}),
        },
    )
)
register(
    Method(
        "bn_vae",
        "BN-VAE",
        "batch-normalised posterior means, gamma = 0.5 on images; on text gamma = 0.7 (the authors' default), batches "
        "in random order (BatchNorm needs batches that sample the corpus) and the KL weight 0 -> 1 (Zhu et al., EMNLP "
        "2020)",
        lambda c, b, t: (
            {"model.posterior": "bn", "model.bn_gamma": 0.7, "data.bucketing": "none", **_kl_warmup(b)}
            if t
            else {"model.posterior": "bn", "model.bn_gamma": 0.5}
        ),
    )
)
register(
    Method(
        "delta_vae",
        "delta-VAE",
        "posterior variance bounded away from the prior's, committed rate 0.1 nats per unit on images, 0.15 with the "
        "KL weight 0 -> 1 on text (Razavi et al., ICLR 2019; Zhang et al. 2022)",
        lambda c, b, t: (
            {"model.posterior": "delta", "model.delta_rate": 0.15, **_kl_warmup(b)}
            if t
            else {"model.posterior": "delta", "model.delta_rate": 0.1}
        ),
    )
)
register(
    Method(
        "pretrain_fb",
        "pretrain + FB",
        "the encoder pretrained as an autoencoder for a quarter of the budget, the decoder re-initialised, then "
        "per-example-per-dimension free bits (0.125 nats/unit) with the KL weight 0 -> 1 (Li et al., EMNLP 2019)",
        lambda c, b, t: _pretrain_fb(b, c),
    )
)

DEFAULT_PANEL = ("plain", "anneal", "cyclical", "free_bits", "beta_vae", "aggressive", "consistency", "density_gap")
"""The methods a study runs when ``--methods`` is not given (in table order)."""


def method_overrides(name: str, base: RunConfig, budget: Budget, is_text: bool) -> dict[str, Any]:
    """The dotted-key overrides of method ``name`` for the base config (the budget itself is
    :meth:`Budget.overrides`, common to every method)."""
    return METHODS.get(name, key="--methods").overrides(base, budget, is_text)
