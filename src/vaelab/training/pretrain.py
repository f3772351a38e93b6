"""Pretraining the encoder as an autoencoder, then resetting the decoder (Li, He, Neubig, Berg-Kirkpatrick & Yang,
EMNLP 2019, "A Surprisingly Effective Fix for Deep Latent Variable Modeling of Text").

Posterior collapse on text sets in early, while the encoder still carries little information: the decoder learns
to ignore z and the KL term then pulls q(z|x) onto the prior. Li et al. first train the model with the
regulariser's weight at 0 (beta = 0: an autoencoder with the reparameterised noise, whose encoder learns to carry
information), then re-initialise the decoder, keep the encoder, and train the VAE with the KL weight annealed
0 -> 1 and per-dimension free bits (``objective.regulariser: free_bits_fine``) so that the encoder's information is
not pushed back to the prior before the new decoder learns to read it.

As a training strategy (``train.strategy: pretrain_reset``):

- for the first ``pretrain_epochs`` epochs (or ``pretrain_steps`` steps) every step is a joint step with beta fixed
  at 0 (whatever the schedule says; ``stats["beta"]`` logs 0);
- at the first step after them the decoder is re-initialised (:meth:`~vaelab.models.base.Decoder.reset_parameters`,
  global RNG, so it is deterministic and resumable) and the optimiser's state is cleared (momentum, Adam moments),
  while the encoder is kept as it is; ``reset_decoder: false`` keeps the pretrained decoder instead;
- model selection restarts at the reset: the first validation after it forgets the trainer's best model and
  plateau counters, so the selected model is one of the VAE phase (the autoencoder's validation ELBO, with its
  large rate, is not comparable), and validations during pretraining never count towards a plateau (no LR decay,
  reload of the best model or early stop while the autoencoder trains);
- afterwards, ordinary joint steps on the configured objective. The beta schedule is the config's: give its ramp a
  delay equal to the pretraining (``objective.beta.delay_epochs`` / ``delay_steps``) so that the annealing starts
  at the reset, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from vaelab.errors import ConfigError
from vaelab.options import Options, setting
from vaelab.rules import COUNT
from vaelab.training.strategies import STRATEGIES, StepContext, Strategy, gradient_step


@dataclass
class PretrainOptions(Options):
    """``train.strategy_options`` of ``pretrain_reset`` (see :class:`PretrainResetStrategy`)."""

    pretrain_epochs: int | None = setting(None, COUNT)
    pretrain_steps: int | None = setting(None, COUNT)
    reset_decoder: bool = True

    def validate(self, key: str) -> None:
        super().validate(key)
        if self.pretrain_epochs is not None and self.pretrain_steps is not None:
            raise ConfigError(f"{key}: give pretrain_epochs or pretrain_steps, not both")


@STRATEGIES.register("pretrain_reset")
class PretrainResetStrategy(Strategy):
    """Autoencoder pretraining, a decoder reset, then VAE training (Li et al. 2019).

    Options (``train.strategy_options``): ``pretrain_epochs`` (int >= 1) or ``pretrain_steps`` (int >= 1), the
    length of the autoencoder phase (default: 1 epoch); ``reset_decoder`` (True).
    """

    name = "pretrain_reset"

    Options = PretrainOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)  # pretrain_epochs, pretrain_steps, reset_decoder (PretrainOptions)
        if self.pretrain_epochs is None and self.pretrain_steps is None:
            self.pretrain_epochs = 1
        self.epochs_done = 0
        self.reset_step: int | None = None
        self._restart = False

    def check_budget(self, epochs: int, total_steps: int | None, steps_per_epoch: int | None = None) -> None:
        """The autoencoder phase must end before the training does: otherwise the run ends as an autoencoder
        (beta 0, the decoder never reset) reported as a completed VAE."""
        key = "train.strategy_options"
        if self.pretrain_epochs is not None:
            phase, what = self.pretrain_epochs, f"{key}.pretrain_epochs={self.pretrain_epochs}"
            budget, of = epochs, f"train.epochs={epochs}"
            if steps_per_epoch is not None and total_steps is not None and total_steps < epochs * steps_per_epoch:
                phase, budget = self.pretrain_epochs * steps_per_epoch, total_steps
                of = f"the {total_steps} steps of train.max_steps"
        else:
            phase, what = self.pretrain_steps or 0, f"{key}.pretrain_steps={self.pretrain_steps}"
            budget, of = total_steps, f"the run's {total_steps} steps"
        if budget is not None and phase >= budget:
            raise ConfigError(
                f"{what} (the autoencoder phase, 1 epoch unless set) fills {of}, so no VAE would be trained: "
                "train longer or shorten the pretraining"
            )

    def _pretraining(self, step: int) -> bool:
        if self.reset_step is not None:
            return False
        if self.pretrain_steps is not None:
            return step < self.pretrain_steps
        return self.epochs_done < (self.pretrain_epochs or 0)

    def param_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        return {"encoder": model.encoder_parameters(), "decoder": model.decoder_parameters()}

    def train_step(self, ctx: StepContext, x: Any, step: int) -> dict[str, float]:
        pretraining = self._pretraining(step)
        if pretraining:
            with ctx.objective.fixed_beta(0.0):
                out = gradient_step(ctx, x, step, ["encoder", "decoder"])
        else:
            if self.reset_step is None:
                self._reset(ctx, step)
            out = gradient_step(ctx, x, step, ["encoder", "decoder"])
        stats = {k: float(v) for k, v in out.stats.items()}
        stats["pretraining"] = float(pretraining)
        return stats

    def _reset(self, ctx: StepContext, step: int) -> None:
        """The end of pretraining: re-initialise the decoder (global RNG), clear the optimisers' state, keep the
        encoder; the next validation starts model selection afresh."""
        self.reset_step = step
        self._restart = True
        phase = f"{self.pretrain_steps} steps" if self.pretrain_steps is not None else f"{self.pretrain_epochs} epochs"
        if not self.reset_decoder:
            self.say(f"step {step}: autoencoder pretraining done ({phase}); decoder kept")
            return
        ctx.model.decoder.reset_parameters()
        for opt in ctx.optimizers.values():
            opt.state.clear()
        self.say(f"step {step}: autoencoder pretraining done ({phase}); decoder re-initialised, encoder kept")

    def on_validation(self, epoch: int, metrics: dict[str, Any]) -> None:
        self.epochs_done = epoch + 1

    def counts_plateaus(self) -> bool:
        return self.reset_step is not None  # a pretraining epoch's validation never decays the LR or stops the run

    def restart_selection(self) -> bool:
        restart, self._restart = self._restart, False
        return restart

    def log_fields(self) -> dict[str, Any]:
        return {"decoder_reset_step": self.reset_step}  # the steps' "pretraining" mean is the phase's share

    def state_dict(self) -> dict[str, Any]:
        return {"epochs_done": self.epochs_done, "reset_step": self.reset_step, "_restart": self._restart}
