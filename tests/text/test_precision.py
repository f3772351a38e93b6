"""Mixed precision (train.precision) and the shared-work IW-NLL of text models, on tiny LSTM VAEs trained in the test.

Tolerances (measured on the tiny corpus, 40-60 SGD steps; bf16 = bfloat16 autocast on a CPU):
- shared-work IW-NLL vs the reference (every row through nn.LSTM), float32, same draws: 1e-7 relative measured,
  1e-5 asserted;
- bf16 vs float32 IW-NLL of the same trained model, same draws: 0.003 nats per sentence at most and 0.0006 on the
  mean measured; 0.02 and 0.005 asserted;
- bf16 vs float32 training from the same initialisation and batches (120 SGD steps, lr 1): final test ELBO within
  0.03-0.31 nats of about -7.6 (seeds 5, 6, 7; at most 4 %) measured, while float32 runs of those seeds span 0.28
  nats; 6 % asserted on the ELBO and the IW-NLL.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import TINY_TEXT_RUN, write_corpus
from vaelab.config import ConfigError, RunConfig, from_dict
from vaelab.metrics import collect, iw_log_likelihood
from vaelab.precision import Precision
from vaelab.training.trainer import Trainer


def _config(corpus: Path, **train: object) -> RunConfig:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TEXT_RUN.items()}
    data["data"] = {"name": "text", "path": str(corpus)}
    data["train"].update({"epochs": 12, "checkpoint_every_steps": None, **train})
    data["eval"].update({"iw_samples": 20, "iw_chunk": 20})
    return from_dict(RunConfig, data)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def runs(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Trainer, dict]]:
    """The tiny text VAE trained for 120 steps in float32 and in bf16 (same seed: same initialisation and batches)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for precision in ("fp32", "bf16"):
            trainer = Trainer(_config(corpus, precision=precision), tmp_path_factory.mktemp(precision) / "run")
            out[precision] = (trainer, trainer.fit())
    finally:
        torch.set_num_threads(before)
    return out


def _test_batch(trainer: Trainer):
    return next(iter(trainer.run.dataset.loader("test", 40, seed=0).epoch(0))).x


def test_shared_work_iw_nll_equals_the_reference_computation(runs):
    trainer, _ = runs["fp32"]
    model, x = trainer.run.model.eval(), _test_batch(trainer)
    values = {}
    for shared in (True, False):
        model.decoder.share_sentence_work = shared
        g = torch.Generator().manual_seed(3)
        values[shared] = iw_log_likelihood(model, x, 60, chunk_size=25, eps_generator=g)
    model.decoder.share_sentence_work = True
    assert torch.allclose(values[True], values[False], rtol=1e-5, atol=0.0)


def test_bf16_iw_nll_equals_the_float32_one_within_tolerance(runs):
    trainer, _ = runs["fp32"]
    model, x = trainer.run.model.eval(), _test_batch(trainer)
    values = {}
    for precision in ("fp32", "bf16"):
        g = torch.Generator().manual_seed(3)
        with Precision(precision).autocast():
            values[precision] = iw_log_likelihood(model, x, 100, chunk_size=50, eps_generator=g)
        assert values[precision].dtype == torch.float32
    diff = values["bf16"] - values["fp32"]
    assert float(diff.abs().max()) < 0.02 and abs(float(diff.mean())) < 0.005


def test_metrics_stay_float32_under_bf16(runs):
    trainer, _ = runs["bf16"]
    with Precision("bf16").autocast():
        col = collect(trainer.run.model, [_test_batch(trainer)], iw_samples=4, iw_chunk=2)
    for t in (col.elbo, col.rate, col.distortion, col.nll_iw, col.mu, col.logvar):
        assert t is not None and t.dtype == torch.float32 and torch.isfinite(t).all()


def test_bf16_training_converges_like_float32(runs):
    (_, s32), (_, s16) = runs["fp32"], runs["bf16"]
    assert s16["status"] == s32["status"] == "completed" and s16["steps"] == s32["steps"] == 120
    assert abs(s16["elbo"] - s32["elbo"]) < 0.06 * abs(s32["elbo"])
    assert abs(s16["nll_iw"] - s32["nll_iw"]) < 0.06 * s32["nll_iw"]


def test_fp16_on_a_cpu_is_a_one_line_error(corpus: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match=r"train\.precision: fp16 needs a CUDA device") as err:
        Precision("fp16", "cpu")
    assert "\n" not in str(err.value) and "bf16" in str(err.value)
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Trainer(_config(corpus, precision="fp16", device="cpu"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("skip, init_from_z", [(False, False), (True, True)])
def test_shared_work_variants_skip_and_zero_initial_state(skip: bool, init_from_z: bool):
    """The shared-work decoder with a skip-VAE output layer or a zero initial state, float32 and bf16."""
    from vaelab.data.text import TokenBatch
    from vaelab.models.text import LSTMDecoder

    torch.manual_seed(0)
    dec = LSTMDecoder(40, 8, 12, 3, skip=skip, init_from_z=init_from_z).eval()
    for p in dec.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = TokenBatch.from_sentences([[4, 5, 6], [7], [8, 9, 10, 11, 12, 13], [5, 5]])
    z = torch.randn(5, 4, 3)
    with torch.no_grad():
        shared = dec.log_prob(x, z)
        with Precision("bf16").autocast():
            low = dec.log_prob(x, z)
        dec.share_sentence_work = False
        reference = dec.log_prob(x, z)
    assert torch.allclose(shared, reference, rtol=1e-5, atol=0.0)
    # measured: 0.005 / 0.008 nats on log-likelihoods of up to 29 nats (weights N(0, 0.3^2), large logits)
    assert low.dtype == torch.float32 and float((low - reference).abs().max()) < 0.05


def test_activation_budget_follows_free_memory_in_powers_of_two(monkeypatch: pytest.MonkeyPatch):
    from vaelab.models import text

    cpu = torch.device("cpu")
    monkeypatch.setattr(text, "_available_host_bytes", lambda: 64 << 30)
    assert text.activation_budget(cpu) == text.DEFAULT_MAX_ACTIVATION_ELEMENTS
    monkeypatch.setattr(text, "_available_host_bytes", lambda: (256 << 20) + 12345)  # 256 MiB: 1/16 of it, floats
    assert text.activation_budget(cpu) == (256 << 20) // 64 < text.DEFAULT_MAX_ACTIVATION_ELEMENTS
    monkeypatch.setattr(text, "_available_host_bytes", lambda: 1 << 20)
    assert text.activation_budget(cpu) == 1 << 20  # the floor


def test_bf16_resume_after_a_crash_matches_an_uninterrupted_run(corpus: Path, tmp_path: Path):
    """Bit-exact resume holds under bf16 on a CPU (autocast's products are deterministic there)."""
    from conftest import crash_at_step
    from vaelab.cli import main

    cfg = _config(corpus, precision="bf16", epochs=2, checkpoint_every_steps=4)
    full = Trainer(cfg, tmp_path / "full").fit()
    crash_at_step(Trainer(cfg, tmp_path / "crash"), 14)
    assert main(["resume", str(tmp_path / "crash")]) == 0
    resumed = json.loads((tmp_path / "crash" / "summary.json").read_text())
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi", "au"):
        assert resumed[k] == full[k], k


@pytest.mark.slow
def test_bf16_two_process_gloo_matches_one_process(corpus: Path, tmp_path: Path, cli_env: dict[str, str]):
    """2-process data parallelism under bf16 reproduces the 1-process run up to bf16 rounding: each process's
    weight-gradient products round their half-batch sums to bfloat16 before the average. Measured after 20 steps:
    ELBO -19.2114 vs -19.2193 (4e-4 relative; float32 runs match to 1e-4 and better); 2e-3 asserted."""
    import os
    import subprocess
    import sys

    import yaml

    cfg = tmp_path / "bf16.yaml"
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_TEXT_RUN.items()}
    data["data"] = {"name": "text", "path": str(corpus)}
    data["train"].update({"epochs": 2, "precision": "bf16"})
    cfg.write_text(yaml.safe_dump(data))
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run(
        [sys.executable, "-m", "vaelab", "train", str(cfg), "--out", str(one)],
        env=cli_env,
        capture_output=True,
        text=True,
    )
    assert r1.returncode == 0, r1.stderr[-3000:]
    port = str(29500 + (os.getpid() + 11) % 1000)
    r2 = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"),
            *("--master_port", port, "-m", "vaelab", "train", str(cfg), "--out", str(two)),
        ],
        env={**cli_env, "MASTER_ADDR": "127.0.0.1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r2.returncode == 0, r2.stderr[-3000:]
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    for k in ("elbo", "rate", "distortion", "nll_iw", "mi"):
        assert s2[k] == pytest.approx(s1[k], rel=2e-3, abs=1e-4), k


@pytest.mark.parametrize("block", [0, 3, 256])
def test_fused_inference_softmax_matches_cross_entropy(block: int):
    """The no-gradient output layer (:meth:`LSTMDecoder._inference_nll`, IW-NLL and validation): in float32 the
    numbers of ``F.cross_entropy`` on the logits, bit for bit, whatever the block; under bf16 float32 results close to
    them, and with a zero weight (logits = the bias) those of the bias rounded once to bf16: the bias enters the
    product as its bf16 rounding plus the remainder, so the sum h W + b is rounded once, at the end. (Rounding the
    bias itself before the sum moved PTB IW-NLL by +0.008 nats per sentence on average, 0.052 at most over 30
    sentences; with the remainder -0.0005 and 0.0135: ``benchmarks/text_speed.py --accuracy-steps 120``.)"""
    from vaelab.models.text import LSTMDecoder, softmax_nll

    torch.manual_seed(0)
    dec = LSTMDecoder(50, 8, 12, 3).eval()
    dec.softmax_block_tokens = block
    hidden, target = torch.randn(7, 12), torch.randint(0, 50, (7,))
    with torch.no_grad():
        torch.nn.init.normal_(dec.out.weight, std=0.5)
        torch.nn.init.normal_(dec.out.bias, std=3.0)
        exact = softmax_nll(dec._logits(hidden, None), target)
        assert torch.equal(dec._inference_nll(hidden, target, None), exact)
        with Precision("bf16").autocast():
            low = dec._inference_nll(hidden, target, None)
        assert low.dtype == torch.float32 and float((low - exact).abs().max()) < 0.1
        dec.out.weight.zero_()
        with Precision("bf16").autocast():
            low = dec._inference_nll(hidden, target, None)
        rounded = softmax_nll(dec.out.bias.bfloat16().float().expand(7, -1), target)
        torch.testing.assert_close(low, rounded, rtol=1e-6, atol=1e-5)


def _output_layer_grads(dec, hidden, target, upstream, precision: str, fused: bool = True):
    """nll and the gradients of (nll * upstream).sum() w.r.t. hidden, the output weight and bias, through
    :meth:`LSTMDecoder._score`'s training path (grad enabled) at ``precision``."""
    dec.fused_training_softmax = fused
    dec.zero_grad(set_to_none=True)
    h = hidden.clone().requires_grad_(True)
    with Precision(precision).autocast():
        x = h.bfloat16() if precision == "bf16" else h
        # each token a row of its own (one predicted token: length 2 with the markers), so that the upstream
        # gradient can vary by token
        lp = dec._score(x.unsqueeze(1), target.unsqueeze(1), torch.full((target.shape[0],), 2), None)
    (-lp * upstream).sum().backward()
    return -lp.detach(), h.grad, dec.out.weight.grad, dec.out.bias.grad


@pytest.mark.parametrize(("block", "rows"), [(0, 32), (5, 32), (256, 2)])
def test_fused_training_output_layer_matches_autocast_cross_entropy(block: int, rows: int, monkeypatch):
    """The output layer and cross-entropy fused for bf16 training (``_ReducedOutputNLL``): the loss within float32
    rounding of the same logits, and the gradients of hidden states, weight and bias within bf16 rounding of
    autocast's ``F.cross_entropy(linear(h).float())`` and of the float32 gradients, for an upstream gradient that
    varies by token; float32's fused path (``_OutputNLL``) within float32 rounding of ``F.cross_entropy``."""
    import vaelab.models.text as text
    from vaelab.models.text import LSTMDecoder

    monkeypatch.setattr(text, "_CACHE_ROWS", rows)
    torch.manual_seed(0)
    dec = LSTMDecoder(300, 8, 16, 3)
    dec.softmax_block_tokens = block
    with torch.no_grad():
        torch.nn.init.normal_(dec.out.weight, std=0.5)
        torch.nn.init.normal_(dec.out.bias, std=2.0)
    hidden, target, upstream = torch.randn(23, 16), torch.randint(0, 300, (23,)), torch.rand(23) + 0.5
    exact = _output_layer_grads(dec, hidden, target, upstream, "fp32", fused=False)
    fused32 = _output_layer_grads(dec, hidden, target, upstream, "fp32", fused=True)
    for a, b in zip(fused32, exact, strict=True):  # float32's fused path (_OutputNLL): float32 rounding apart
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    fused = _output_layer_grads(dec, hidden, target, upstream, "bf16", fused=True)
    autocast = _output_layer_grads(dec, hidden, target, upstream, "bf16", fused=False)
    assert fused[0].dtype == torch.float32
    for name, f, a, e in zip(("nll", "hidden", "weight", "bias"), fused, autocast, exact, strict=True):
        scale = float(e.float().norm())
        assert float((f.float() - e.float()).norm()) < 2e-2 * scale, name  # bf16 vs float32
        assert float((f.float() - a.float()).norm()) < 2e-2 * scale, name  # fused vs autocast's path
    # the loss from the same bf16 logits: a zero weight makes them the bias rounded once to bf16
    with torch.no_grad():
        dec.out.weight.zero_()
    zero = _output_layer_grads(dec, hidden, target, upstream, "bf16")[0]
    logits = dec.out.bias.detach().bfloat16().float().expand(23, -1)
    torch.testing.assert_close(
        zero, torch.nn.functional.cross_entropy(logits, target, reduction="none"), rtol=1e-6, atol=1e-5
    )


def test_fused_training_output_layer_far_targets_and_frozen_weights():
    """A target 150 nats below the best word (its softmax underflows float32) keeps its exact loss (the normaliser
    comes from the largest probability, 1/S, never from the target's); with the output layer frozen (aggressive
    training's encoder-only step) only the hidden states get a gradient."""
    from vaelab.models.text import LSTMDecoder

    torch.manual_seed(0)
    dec = LSTMDecoder(40, 8, 16, 3)
    with torch.no_grad():
        dec.out.weight.zero_()
        dec.out.bias.zero_()
        dec.out.bias[7] = -150.0
    target = torch.tensor([7, 3, 7])
    nll = _output_layer_grads(dec, torch.randn(3, 16), target, torch.ones(3), "bf16")[0]
    expected = torch.tensor([150.0 + math.log(39 + math.exp(-150.0)), math.log(39), 150.0 + math.log(39)])
    torch.testing.assert_close(nll, expected, rtol=1e-6, atol=1e-5)
    nll32 = _output_layer_grads(dec, torch.randn(3, 16), target, torch.ones(3), "fp32")[0]  # float32's fused path
    torch.testing.assert_close(nll32, expected, rtol=1e-6, atol=1e-5)
    dec.out.requires_grad_(False)
    for precision in ("bf16", "fp32"):
        _, grad_h, grad_w, grad_b = _output_layer_grads(dec, torch.randn(3, 16), target, torch.ones(3), precision)
        assert grad_h is not None and grad_w is None and grad_b is None


@pytest.mark.parametrize("block", [0, 5, 256])
def test_float32_fused_output_layer_matches_float64(block: int):
    """float32 training's fused output layer (``_OutputNLL``, the default): the loss and the gradients of the hidden
    states, weight and bias agree with a float64 ``F.cross_entropy(F.linear(h, W, b))`` to float32 rounding, for an
    upstream gradient that varies by token and in blocks that do not divide the tokens; the switch off gives
    ``F.cross_entropy`` in float32 blocks, the same numbers to float32 rounding."""
    from vaelab.models.text import LSTMDecoder

    torch.manual_seed(1)
    dec = LSTMDecoder(500, 8, 16, 3)
    dec.softmax_block_tokens = block
    with torch.no_grad():
        torch.nn.init.normal_(dec.out.weight, std=0.5)
        torch.nn.init.normal_(dec.out.bias, std=2.0)
    hidden, target, upstream = torch.randn(41, 16), torch.randint(0, 500, (41,)), torch.rand(41) + 0.5
    h64 = hidden.double().requires_grad_(True)
    w64 = dec.out.weight.detach().double().requires_grad_(True)
    b64 = dec.out.bias.detach().double().requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h64, w64, b64), target, reduction="none")
    (ref * upstream.double()).sum().backward()
    for fused in (True, False):
        got = _output_layer_grads(dec, hidden, target, upstream, "fp32", fused=fused)
        assert all(t.dtype == torch.float32 for t in got)
        for g, r in zip(got, (ref.detach(), h64.grad, w64.grad, b64.grad), strict=True):
            torch.testing.assert_close(g.double(), r, rtol=2e-5, atol=2e-5)


def test_float32_output_layer_block_reused_only_when_free():
    """The fused float32 output layer's (N, V) block is taken again at the next step once the backward has released
    it (no fresh allocation per step); a graph kept for a second backward keeps its own block, so a forward in
    between cannot overwrite it (the second backward's gradients are those of the first); copies start empty."""
    import copy

    from vaelab.models.text import LSTMDecoder

    torch.manual_seed(0)
    dec = LSTMDecoder(200, 8, 16, 3)
    hidden, target, upstream = torch.randn(19, 16), torch.randint(0, 200, (19,)), torch.rand(19) + 0.5

    def step(retain: bool = False):
        h = hidden.clone().requires_grad_(True)
        lp = dec._score(h.unsqueeze(1), target.unsqueeze(1), torch.full((19,), 2), None)
        loss = (-lp * upstream).sum()
        loss.backward(retain_graph=retain)
        return loss, h.grad.clone()

    step()
    ptr = dec._logits_buffer._buf.data_ptr()
    step()
    assert dec._logits_buffer._buf.data_ptr() == ptr  # reused, not made anew
    kept, _ = step(retain=True)  # this graph still holds its block
    step()
    assert dec._logits_buffer._buf.data_ptr() != ptr  # the forward in between got another block
    dec.zero_grad(set_to_none=True)
    kept.backward()
    torch.testing.assert_close(dec.out.weight.grad, _output_layer_grads(dec, hidden, target, upstream, "fp32")[2])
    assert copy.deepcopy(dec)._logits_buffer._buf is None
