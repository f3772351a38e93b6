"""Aggressive inference-network training (He, Spokoyny, Neubig & Berg-Kirkpatrick, ICLR 2019).

Posterior collapse starts when the encoder lags behind the moving true posterior early in training. The remedy is
a training strategy, not a model: before every decoder update, the encoder is optimised "aggressively" on the
same objective until it stops improving; once the mutual information I_q(x; z) on validation data stops growing,
training falls back to ordinary joint steps.

For each training minibatch X while aggressive:

1. inner loop, at most ``max_inner_steps`` encoder-only steps: the first on X, later ones on fresh random
   minibatches; every ``window`` steps the mean loss of the last window is compared with the previous window's and
   the loop stops as soon as it did not decrease;
2. one decoder-only step on X.

Switch-off, checked after each validation with its MI (pool: ``eval.mi_pool``; He et al. pool over minibatches):
``rule="first_decrease"`` (text, the paper's rule: the first time MI decreases) or ``rule="patience"`` (images: after
``patience`` epochs that fail to beat the best MI so far).

Two options bound the cost, which the paper leaves at whole epochs of 20-100 encoder steps per decoder step:
``check_every_steps`` = N applies the same rule every N outer steps, to MI measured by the encoder alone on the
validation split (``patience`` then counts checks, not epochs), so the aggressive phase can end within the first
epoch; ``max_aggressive_steps`` switches off after that many aggressive outer steps whatever MI does, and
``min_aggressive_steps`` keeps the rule from switching off before that many (MI near 0 early on is noise, and a
"decrease" of noise would end the phase before the encoder has caught up; the paper's per-epoch checks give the
same guarantee of at least one epoch).

Cost is reported without reference to hardware: ``grad_evals_per_step`` counts loss evaluations with a backward
pass per outer step (1.0 for a plain VAE), so the cost ratio to a plain run is read off the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from vaelab.distributed import all_reduce_sum
from vaelab.errors import ConfigError
from vaelab.models.base import batch_size
from vaelab.options import Options, setting
from vaelab.rules import COUNT
from vaelab.training.strategies import STRATEGIES, StepContext, Strategy, gradient_step


@dataclass
class AggressiveOptions(Options):
    """``train.strategy_options`` of ``aggressive`` (see :class:`AggressiveStrategy`)."""

    window: int = setting(10, COUNT)
    max_inner_steps: int = setting(100, COUNT)
    rule: Literal["first_decrease", "patience"] = "patience"
    patience: int = setting(5, COUNT)
    check_every_steps: int | None = setting(None, COUNT)
    max_aggressive_steps: int | None = setting(None, COUNT)
    min_aggressive_steps: int | None = setting(None, COUNT)
    monitor_every_steps: int | None = setting(None, COUNT)
    clip_scope: Literal["stepped", "model"] = "stepped"

    def validate(self, key: str) -> None:
        super().validate(key)
        low, high = self.min_aggressive_steps, self.max_aggressive_steps
        if low and high and low > high:
            raise ConfigError(f"{key}.min_aggressive_steps={low} exceeds max_aggressive_steps={high}")


@STRATEGIES.register("aggressive")
class AggressiveStrategy(Strategy):
    """He et al. (2019)'s aggressive encoder updates, then plain joint steps once MI stops improving.

    Options (``train.strategy_options``): ``window`` (K: 15 text, 10 images), ``max_inner_steps`` (100),
    ``rule`` (``first_decrease`` | ``patience``), ``patience`` (5), ``check_every_steps`` (None: the rule runs
    once per epoch on the validation MI, as in the paper; N: every N outer steps on an encoder-only validation MI),
    ``max_aggressive_steps`` (None: no cap), ``min_aggressive_steps`` (None: the rule may fire at the first
    check), ``monitor_every_steps`` (N: measure and log the validation MI every N outer steps while aggressive,
    without acting on it), ``clip_scope`` (``stepped``: clip the norm of the stepped parameters' gradient;
    ``model``: clip by the norm of the whole model's gradient as He et al.'s code does, so a large decoder gradient
    scales an encoder step down, at the cost of the decoder's weight gradients). The trainer builds one optimiser
    per parameter group (encoder, decoder), both from ``train``.
    """

    name = "aggressive"

    Options = AggressiveOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # window, max_inner_steps, rule, ... (AggressiveOptions) become attributes
        self.aggressive = True
        self.stopped_epoch: int | None = None
        self.stopped_step: int | None = None
        self.aggressive_steps = 0
        self.mi_checks: list[dict[str, float]] = []  # checks since the last metrics record
        self.best_mi = float("-inf")
        self.prev_mi: float | None = None
        self.bad_epochs = 0
        self._epoch_outer = 0
        self._epoch_inner = 0
        self._total_evals = 0
        self._total_outer = 0

    def param_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"encoder": model.encoder_parameters(), "decoder": model.decoder_parameters()}

    def _clip_names(self, stepped: list[str]) -> list[str]:
        return ["encoder", "decoder"] if self.clip_scope == "model" else stepped

    def inner_loop(self, ctx: StepContext, x: Any, step: int) -> int:
        """Encoder-only steps until the windowed loss stops decreasing; returns the number of steps taken.

        The window's loss is its summed loss divided by its data units (predicted tokens for text, examples
        otherwise), summed over processes so that every process takes the same decision: text batches differ in
        length, and a per-sentence mean would compare windows of long and short sentences rather than the
        encoder's progress (He et al. compare per-word losses)."""
        loss_sum = units = 0.0
        prev_window: float | None = None
        batch = x
        for i in range(self.max_inner_steps):
            if i > 0:
                batch = ctx.random_batch()
            out = gradient_step(ctx, batch, step, ["encoder"], sub=i, clip_names=self._clip_names(["encoder"]))
            n = batch_size(batch)
            loss_sum += float(out.stats["loss"]) * n
            units += float(getattr(batch, "num_tokens", n))
            if (i + 1) % self.window == 0:
                totals = all_reduce_sum({"loss": loss_sum, "units": units}, ctx.dist)
                cur = totals["loss"] / max(totals["units"], 1.0)
                if prev_window is not None and cur >= prev_window:
                    return i + 1
                prev_window = cur
                loss_sum = units = 0.0
        return self.max_inner_steps

    def train_step(self, ctx: StepContext, x: Any, step: int) -> dict[str, float]:
        if not self.aggressive:
            out = gradient_step(ctx, x, step, ["encoder", "decoder"])
            inner = 0
        else:
            inner = self.inner_loop(ctx, x, step)
            out = gradient_step(ctx, x, step, ["decoder"], clip_names=self._clip_names(["decoder"]))
            self.aggressive_steps += 1
        self._epoch_outer += 1
        self._epoch_inner += inner
        self._total_outer += 1
        self._total_evals += inner + 1
        stats = {k: float(v) for k, v in out.stats.items()}
        stats["inner_steps"] = float(inner)
        every = self.check_every_steps or self.monitor_every_steps
        if self.aggressive and every and (step + 1) % every == 0:
            m = ctx.valid_mi()
            self.mi_checks.append({"step": step + 1, "mi": float(m["mi"]), "au": float(m["au"])})
            if self.check_every_steps:
                self._apply_rule(float(m["mi"]))
            self.say(
                f"step {step + 1}: validation MI {m['mi']:.3f} (pool {int(m['mi_pool'])}), AU {int(m['au'])}"
                + ("" if self.aggressive else f" -> aggressive training off ({self.rule} rule)")
            )
        if self.aggressive and self.max_aggressive_steps and self.aggressive_steps >= self.max_aggressive_steps:
            self._switch_off()
            self.say(f"step {step + 1}: aggressive training off (max_aggressive_steps = {self.max_aggressive_steps})")
        return stats

    def on_validation(self, epoch: int, metrics: dict[str, Any]) -> None:
        if self.check_every_steps is None:
            was = self.aggressive
            self._apply_rule(float(metrics["mi"]))
            if was and not self.aggressive:
                self.say(
                    f"epoch {epoch + 1}: aggressive training off ({self.rule} rule, validation MI {metrics['mi']:.3f})"
                )
        if self.stopped_step is not None and self.stopped_epoch is None:
            self.stopped_epoch = epoch + 1  # 1-based: the epoch at whose end (or within which) it stopped

    def _apply_rule(self, mi: float) -> None:
        """One MI check: ``first_decrease`` switches off the first time MI falls below the previous check's;
        ``patience`` after ``patience`` checks in a row that do not beat the best MI so far. Before
        ``min_aggressive_steps`` aggressive steps a check only records MI (it neither switches off nor counts as a
        failed check)."""
        below_floor = bool(self.min_aggressive_steps) and self.aggressive_steps < self.min_aggressive_steps
        if self.aggressive and not below_floor:
            if self.rule == "first_decrease":
                if self.prev_mi is not None and mi < self.prev_mi:
                    self._switch_off()
            elif mi > self.best_mi:
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs >= self.patience:
                    self._switch_off()
        self.best_mi = max(self.best_mi, mi)
        self.prev_mi = mi

    def _switch_off(self) -> None:
        self.aggressive = False
        self.stopped_step = self._total_outer

    def log_fields(self) -> dict[str, Any]:
        per_step = self._epoch_inner / self._epoch_outer if self._epoch_outer else 0.0
        fields = {
            "aggressive": self.aggressive,
            "aggressive_stopped_epoch": self.stopped_epoch,
            "aggressive_stopped_step": self.stopped_step,
            "aggressive_steps": self.aggressive_steps,
            "inner_steps_per_step": per_step,
            "grad_evals_per_step": self._total_evals / self._total_outer if self._total_outer else 0.0,
        }
        if self.check_every_steps or self.monitor_every_steps:
            fields["mi_checks"], self.mi_checks = self.mi_checks, []
        self._epoch_inner = self._epoch_outer = 0
        return fields

    def state_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "aggressive",
                "stopped_epoch",
                "stopped_step",
                "aggressive_steps",
                "mi_checks",
                "best_mi",
                "prev_mi",
                "bad_epochs",
                "_epoch_outer",
                "_epoch_inner",
                "_total_evals",
                "_total_outer",
            )
        }
