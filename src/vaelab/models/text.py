"""Text VAEs: the LSTM VAE of Bowman et al. (2016) as configured by Kim et al. (2018) and He et al. (2019), and
the LSTM language model it is compared with.

Architecture (methods.md section 2, "reference architecture (text)"):

- encoder: word embeddings -> one-layer LSTM over ``<s> w_1 .. w_n </s>``; its hidden state after ``</s>`` ->
  one linear layer -> (mu, logvar), each (B, D);
- decoder: one-layer LSTM whose input at step t is [embedding(w_t); z] (z fed at *every* step) and whose initial
  cell state is a linear map of z, c_0 = W z + b, with h_0 = tanh(c_0); dropout on the input embeddings and on the
  LSTM outputs; a linear softmax layer over the vocabulary. Optional word dropout (Bowman et al. 2016): in
  training, each decoder input word is replaced by ``<unk>`` with probability ``word_dropout``;
- initialisation: every weight U(-0.01, 0.01), embeddings U(-0.1, 0.1) (He et al. 2019).

log p(x|z) is the sum over the *predicted* tokens w_1 .. w_n, ``</s>`` of log softmax probabilities, in nats per
sentence (the start token is given, not predicted). Padding never contributes: the LSTM is causal, so the states
at a sentence's real positions do not depend on the pad tokens after it, and the softmax is evaluated only at
real positions. For z of shape (S, B, D) (importance sampling with S samples per sentence) the S * B sequences are
run through the LSTM together, in row chunks whose activations stay within a memory budget and which are cut to
their longest sentence, never one sample at a time. In eval mode (IW-NLL) the per-sentence work is done once for
its S samples: the embedding part of the LSTM's input projection, W_e e_t, once per sentence and the z part,
W_z z, once per sample instead of once per sample and token (the input weight split into its column blocks).

``lstm_lm`` is the same decoder without a latent: it ignores z, and its encoder returns the prior N(0, I)
exactly (mu = 0, logvar = 0). So the rate is 0, MI and active units are 0, the ELBO is the exact log-likelihood
and the IW estimate equals it for every K: the LM's perplexity comes out of the same metrics code as the VAE's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vaelab.errors import ConfigError, UserError
from vaelab.models.base import Decoder, Encoder
from vaelab.rules import Num, check
from vaelab.seeds import GOLDEN, hashed_uniform
from vaelab.tokens import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TokenBatch

WORD_DROPOUT = Num(lo=0, hi=1)
"""The rule of ``model.word_dropout``: the probability of replacing a decoder input word by <unk>."""

DEFAULT_MAX_ACTIVATION_ELEMENTS = 1 << 24
"""On a CPU, rows of (S * B) sequences are decoded in chunks of at most this many activation floats (64 MiB; less
when the host has less than 16 times that available), which bounds the memory of IW-NLL with K = 500 whatever the
batch size; larger chunks gain nothing there, the matrix products are already large."""

CUDA_MAX_ACTIVATION_ELEMENTS = 1 << 28
"""On a CUDA device the chunk budget is a quarter of its free memory, at most this many floats (1 GiB)."""


def activation_budget(device: torch.device) -> int:
    """Floats of activations a decoder may hold at once on ``device``: on CUDA a quarter of the free memory (at most
    :data:`CUDA_MAX_ACTIVATION_ELEMENTS`), on a CPU 1/16 of the host's available memory (``MemAvailable``), at most
    :data:`DEFAULT_MAX_ACTIVATION_ELEMENTS`. At least 2**20, and a power of two, so that small changes of the free
    memory do not move the chunk boundaries (on a host with 4 GiB or more available it is the constant cap)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = min(CUDA_MAX_ACTIVATION_ELEMENTS, free // 16)
    else:
        budget = min(DEFAULT_MAX_ACTIVATION_ELEMENTS, _available_host_bytes() // 64)
    return 1 << (max(1 << 20, budget).bit_length() - 1)


def _available_host_bytes() -> int:
    """MemAvailable of /proc/meminfo in bytes (Linux); elsewhere 16 GiB is assumed."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 16 << 30


_SAMPLE_STRIDE = GOLDEN
"""Odd multiplier that keeps (sentence seed, sample index) pairs distinct when the samples' seeds are derived."""

_CACHE_ROWS = 32
"""Rows of float32 logits (32 x V floats: 1.3 MB at V = 10,002) that the fused output layers pass through the
log-softmax at once after a block's product: they stay in a core's cache through every pass."""

DEFAULT_SOFTMAX_BLOCK_TOKENS = 256
"""The softmax layer is applied to at most this many token positions at once (0: all of a row chunk at once)."""


def softmax_nll(logits: Tensor, target: Tensor) -> Tensor:
    """-log softmax(logits)[target] per row (N,), the log-softmax in float32 whatever the logits' precision. (A
    custom backward that skips cross_entropy's zero-filled NLL gradient measured no faster in a training step.)"""
    return F.cross_entropy(logits.float(), target, reduction="none")


def _nll_and_grad_(logits: Tensor, target: Tensor) -> Tensor:
    """In place: rows of ``logits`` (k x V) become softmax - one-hot(``target``, k x 1), the cross-entropy's gradient
    with respect to them; returns each row's negative log-likelihood (k,), from the same pass:
    nll = m + log S - x_t with m the row's largest logit and log S = -log p_max (S = sum exp(x - m) = 1 / p_max)."""
    top = logits.amax(1, keepdim=True)
    x_t = logits.gather(1, target)
    torch.softmax(logits, 1, out=logits)
    torch.sub(top, x_t, out=x_t).sub_(logits.amax(1, keepdim=True).log_())
    logits.scatter_add_(1, target, torch.full_like(x_t, -1.0))
    return x_t.squeeze(1)


class _ReducedOutputNLL(torch.autograd.Function):
    """-log softmax(h W^T + b)[target] (N,) with its gradient, for training under bf16/fp16 autocast: the output layer
    and the cross-entropy fused (:meth:`LSTMDecoder._score`). Arguments: hidden (N, H) in any dtype, weight (V, H),
    bias (V,) and target (N,), the reduced ``dtype`` and the ``block`` of tokens per pass.

    Forward, block by block: the product in ``dtype``, with the bias riding in it as its rounding plus the remainder
    (as in :meth:`LSTMDecoder._inference_nll`: h W + b rounded once); then, 32 rows at a time on a CPU
    (:data:`_CACHE_ROWS`: they stay in cache through every pass), the logits cast to float32, the softmax in float32
    in place, and from the same pass the loss nll = m + log S - x_target, with m the row's largest logit and
    log S = -log p_m (the largest probability is 1 / S exactly, at least 1 / V, so it never underflows, however far
    below the target is). The only (N, V) tensor kept is dL/dlogits for a unit upstream gradient, P - onehot(target),
    stored in ``dtype`` in the product's output buffer (autocast's backward rounds that gradient to bf16 as well).

    Backward, with the upstream gradient g (N,): the input gradient (P - Y) W scaled by g per row after the product,
    the weight gradient (P - Y)^T [g h] and the bias gradient (P - Y)^T g in one product (g rides as one more column
    of the scaled hidden states); never a zero-filled (N, V) gradient, a log-softmax backward pass or a float32
    gradient block. About the same numbers as autocast's ``F.cross_entropy(linear(h).float())`` (the forward within
    float32 rounding of the same logits; the logits and the gradients within bf16 rounding)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, dtype, block):
        with torch.autocast(hidden.device.type, enabled=False):  # every dtype below is explicit
            return _ReducedOutputNLL._forward(ctx, hidden, weight, bias, target, dtype, block)

    @staticmethod
    def _forward(ctx, hidden, weight, bias, target, dtype, block):
        n, hdim = hidden.shape
        v = weight.shape[0]
        dev = hidden.device
        # (V, H + 2): [W, b rounded, the remainder], cast once; the forward reads it transposed, the input gradient
        # its first H columns as they are
        w_ext = torch.empty(v, hdim + 2, dtype=dtype, device=dev)
        w_ext[:, :hdim].copy_(weight.detach())
        w_ext[:, hdim].copy_(bias.detach())
        w_ext[:, hdim + 1].copy_(bias.detach().float() - w_ext[:, hdim].float())
        w_lo = w_ext[:, :hdim]
        x_ext = torch.ones(n, hdim + 2, dtype=dtype, device=dev)  # [h, 1, 1]
        x_ext[:, :hdim].copy_(hidden.detach())
        block = block if 0 < block < n else n
        sub = min(block, _CACHE_ROWS) if dev.type == "cpu" else block
        full = torch.empty(sub, v, dtype=torch.float32, device=dev)
        grad_logits = torch.empty(n, v, dtype=dtype, device=dev)  # the logits, then P - Y for a unit upstream gradient
        nll = torch.empty(n, dtype=torch.float32, device=dev)
        for i in range(0, n, block):
            m = min(block, n - i)
            torch.mm(x_ext[i : i + m], w_ext.t(), out=grad_logits[i : i + m])
            for j in range(i, i + m, sub):  # rows of float32 logits that stay in cache through every pass
                k = min(sub, i + m - j)
                lg, lf, tgt = grad_logits[j : j + k], full[:k], target[j : j + k].unsqueeze(1)
                lf.copy_(lg)
                nll[j : j + k] = _nll_and_grad_(lf, tgt)
                lg.copy_(lf)
        ctx.save_for_backward(x_ext, w_lo, grad_logits)
        ctx.hidden_dtype = hidden.dtype
        return nll

    @staticmethod
    def backward(ctx, g):
        x_ext, w_lo, grad_logits = ctx.saved_tensors
        hdim = w_lo.shape[1]
        g = g.float()
        grad_h = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_h = torch.mm(grad_logits, w_lo).float().mul_(g.unsqueeze(1)).to(ctx.hidden_dtype)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            xg = x_ext[:, : hdim + 1].float().mul_(g.unsqueeze(1)).to(x_ext.dtype)  # [g h, g]
            both = torch.mm(grad_logits.t(), xg)  # (V, H + 1)
            grad_w, grad_b = both[:, :hdim].float(), both[:, hdim].float()
        return grad_h, grad_w, grad_b, None, None, None


def _storage_use_count(t: Tensor) -> int | None:
    """References to ``t``'s storage (tensors and views holding it), or None where torch does not tell."""
    count = getattr(torch._C, "_storage_Use_Count", None)
    if count is None:
        return None
    try:
        return int(count(t.untyped_storage()._cdata))
    except (AttributeError, RuntimeError, TypeError):
        return None


class _ReusedBuffer:
    """One CPU buffer that the fused float32 training output layer (:class:`_OutputNLL`) takes anew at every step:
    its (N, V) dL/dlogits block (32 MB for 810 tokens at V = 10,002), which glibc would otherwise map and fault in
    afresh at each step (3,600 minor page faults and 8 ms of system time per step measured, issue 18).

    :meth:`take` hands out the buffer again only when nothing but this holder references its storage (the backward
    pass released its saved tensors, or the graph was freed); otherwise, or when it is too small, a new buffer (with
    1/8 more room) replaces it. A graph kept for a second backward (``retain_graph=True``) keeps its block: a later
    forward gets another. Copies and pickles of a model start empty (:meth:`__deepcopy__`, :meth:`__reduce__`)."""

    def __init__(self) -> None:
        self._buf: Tensor | None = None
        self._free: int | None = None

    def take(self, numel: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        buf = self._buf
        if (
            buf is not None
            and buf.dtype == dtype
            and buf.device == device
            and buf.numel() >= numel
            and _storage_use_count(buf) == self._free
        ):
            return buf[:numel]
        buf = torch.empty(numel + numel // 8, dtype=dtype, device=device)
        self._free = _storage_use_count(buf)
        self._buf = buf if self._free is not None else None
        return buf[:numel]

    def __deepcopy__(self, memo: dict[int, Any]) -> _ReusedBuffer:
        return _ReusedBuffer()

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (_ReusedBuffer, ())


class _OutputNLL(torch.autograd.Function):
    """-log softmax(h W^T + b)[target] (N,) with its gradient, for float32 training: the output layer and the
    cross-entropy fused (:meth:`LSTMDecoder._score`). Arguments: hidden (N, H), weight (V, H), bias (V,), target
    (N,), all float32 but the target, and the ``block`` of tokens per product.

    Forward, block by block: the product with the bias, as ``F.linear`` computes it (``addmm``), into one (N, V)
    buffer; then, 32 rows at a time on a CPU (:data:`_CACHE_ROWS`: they stay in cache through every pass), the
    softmax in place and the loss nll = m + log S - x_target from the same pass (m the row's largest logit,
    log S = -log p_m, as in :class:`_ReducedOutputNLL`), and P - onehot(target) written over the probabilities:
    dL/dlogits for a unit upstream gradient, the only (N, V) tensor kept for the backward.

    Backward, with the upstream gradient g (N,): the input gradient (P - Y) W scaled by g per row after the
    product; the weight gradient (P - Y)^T (g h) as one product over all N tokens (not one per block, summed); the
    bias gradient (P - Y)^T g. Against ``F.cross_entropy(F.linear(h, W, b))`` in blocks, this skips the
    log-softmax's output tensor and its backward pass, the zero-filled (N, V) NLL gradient, the per-block weight
    gradients and their sums: the same numbers up to float32 rounding (tested)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, target, block, pool):
        n = hidden.shape[0]
        v = weight.shape[0]
        dev = hidden.device
        h, w, b = hidden.detach(), weight.detach(), bias.detach()
        block = block if 0 < block < n else n
        sub = min(block, _CACHE_ROWS) if dev.type == "cpu" else block
        # the logits, then P - Y; on a CPU the block of the last step again when it is free (_ReusedBuffer)
        if pool is not None and dev.type == "cpu":
            grad_logits = pool.take(n * v, w.dtype, dev).view(n, v)
        else:
            grad_logits = torch.empty(n, v, dtype=w.dtype, device=dev)
        nll = torch.empty(n, dtype=w.dtype, device=dev)
        for i in range(0, n, block):
            m = min(block, n - i)
            torch.addmm(b, h[i : i + m], w.t(), out=grad_logits[i : i + m])
            for j in range(i, i + m, sub):  # rows that stay in cache through every pass
                k = min(sub, i + m - j)
                lf, tgt = grad_logits[j : j + k], target[j : j + k].unsqueeze(1)
                nll[j : j + k] = _nll_and_grad_(lf, tgt)
        ctx.save_for_backward(hidden, weight, grad_logits)
        return nll

    @staticmethod
    def backward(ctx, g):
        hidden, weight, grad_logits = ctx.saved_tensors
        grad_h = grad_w = grad_b = None
        gc = g.unsqueeze(1)
        if ctx.needs_input_grad[0]:
            grad_h = torch.mm(grad_logits, weight.detach()).mul_(gc)
        if ctx.needs_input_grad[1]:
            grad_w = torch.mm(grad_logits.t(), hidden.detach() * gc)
        if ctx.needs_input_grad[2]:
            grad_b = torch.mv(grad_logits.t(), g)
        return grad_h, grad_w, grad_b, None, None, None


def _tanh_by_sigmoid(x: Tensor) -> Tensor:
    """tanh(x) = 2 sigmoid(2x) - 1, computed in x's dtype (float32 here): 3x faster than ``torch.tanh`` on this
    project's CPU, within 2e-7 of it."""
    return torch.sigmoid(x * 2).mul_(2).sub_(1)


def _uniform_(module: nn.Module, init_range: float, emb_init_range: float) -> None:
    """He et al. (2019): every parameter U(-init_range, init_range), embeddings U(-emb_init_range, ...)."""
    for name, p in module.named_parameters():
        r = emb_init_range if name.startswith("embed.") else init_range
        nn.init.uniform_(p, -r, r)


def _check_tokens(x: Any) -> TokenBatch:
    if not isinstance(x, TokenBatch):
        raise TypeError(f"text models take a TokenBatch (vaelab.data.text), got {type(x).__name__}")
    return x


class LSTMEncoder(Encoder):
    """q(z|x): embeddings -> 1-layer LSTM -> last hidden state (after ``</s>``) -> linear -> (mu, logvar)."""

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        hidden_dim: int,
        latent_dim: int,
        *,
        init_range: float = 0.01,
        emb_init_range: float = 0.1,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=None)
        self.lstm = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.linear = nn.Linear(hidden_dim, 2 * latent_dim)
        _uniform_(self, init_range, emb_init_range)

    def forward(self, x: TokenBatch) -> tuple[Tensor, Tensor]:
        x = _check_tokens(x)
        out, _ = self.lstm(self.embed(x.tokens))  # (B, L, H); causal, so padding after a sentence is harmless
        last = out[torch.arange(x.batch_size, device=out.device), x.lengths - 1]  # state after </s>
        mu, logvar = self.linear(last).chunk(2, dim=-1)
        return mu, logvar


class PriorEncoder(Encoder):
    """The 'encoder' of a model without a latent: q(z|x) = p(z) = N(0, I) for every x (mu = 0, logvar = 0).

    It holds one empty parameter so that optimisers over "the encoder's parameters" (aggressive training) are
    valid, and so that the device of the model is known.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.dummy = nn.Parameter(torch.zeros(0))

    def forward(self, x: Any) -> tuple[Tensor, Tensor]:
        b = x.batch_size if not isinstance(x, Tensor) else x.shape[0]
        zeros = torch.zeros(b, self.latent_dim, device=self.dummy.device, dtype=self.dummy.dtype)
        return zeros, zeros.clone()


class LSTMDecoder(Decoder):
    """p(x|z): a 1-layer LSTM language model conditioned on z (He et al. 2019; Kim et al. 2018).

    Args:
        vocab_size, emb_dim, hidden_dim, latent_dim: sizes.
        use_z: feed z (False: an unconditional LSTM LM that ignores z, for ``lstm_lm``).
        init_from_z: initial cell state c_0 = linear(z), h_0 = tanh(c_0) (else zeros); only with ``use_z``.
        dropout_in, dropout_out: dropout on input embeddings and on LSTM outputs (training only).
        word_dropout: probability of replacing a decoder input word by ``<unk>`` in training (Bowman et al. 2016);
            ``<s>`` is never replaced. The uniform draws come from the batch (``TokenBatch.noise``, deterministic
            in (seed, epoch, batch)), else from the global RNG.
        vocab: optional list of words (id order), kept with the weights (``state_dict``'s extra state) so that a
            run folder can decode samples without the corpus.
        skip: skip-VAE (Dieng, Kim, Rush & Blei, AISTATS 2019): z also feeds the output layer, logits =
            W h_t + U z + b (a bias-free linear map U of z), besides the LSTM input at every step; only with ``use_z``.
        max_activation_elements: floats of activations per row chunk of a multi-sample ``log_prob``; None (default):
            chosen from the device's free memory at call time (:func:`activation_budget`).

    ``fused_training_softmax`` (attribute, default True): training (gradients on) runs the output layer and its
    cross-entropy fused, not with ``skip``: in float32 ``_OutputNLL`` (its (N, V) block reused across steps on a
    CPU, ``_ReusedBuffer``), under bf16/fp16 autocast ``_ReducedOutputNLL``; False: ``F.cross_entropy(linear(h))``
    in blocks of ``softmax_block_tokens`` tokens (under autocast, with the logits cast to float32).

    ``share_sentence_work`` (attribute, default True): in eval mode, a multi-sample ``log_prob`` does each sentence's
    work once (:meth:`_shared_log_prob`); False runs every (sentence, sample) row through ``nn.LSTM`` (the
    reference computation, same numbers up to float rounding).
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int,
        hidden_dim: int,
        latent_dim: int,
        *,
        use_z: bool = True,
        init_from_z: bool = True,
        dropout_in: float = 0.5,
        dropout_out: float = 0.5,
        word_dropout: float = 0.0,
        init_range: float = 0.01,
        emb_init_range: float = 0.1,
        vocab: Sequence[str] | None = None,
        max_activation_elements: int | None = None,
        skip: bool = False,
    ) -> None:
        super().__init__()
        check("model.word_dropout", word_dropout, WORD_DROPOUT)
        if vocab is not None and len(vocab) != vocab_size:
            raise ValueError(f"vocabulary of {len(vocab)} words for vocab_size {vocab_size}")
        self.latent_dim = latent_dim
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.use_z = use_z
        self.init_from_z = use_z and init_from_z
        self.word_dropout = float(word_dropout)
        self.max_activation_elements = None if max_activation_elements is None else int(max_activation_elements)
        self.share_sentence_work = True
        self.softmax_block_tokens = DEFAULT_SOFTMAX_BLOCK_TOKENS
        self.fused_training_softmax = True
        self._logits_buffer = _ReusedBuffer()  # float32 training's (N, V) block, reused across steps (CPU)
        self.vocab: list[str] | None = list(vocab) if vocab is not None else None
        self.embed = nn.Embedding(vocab_size, emb_dim)
        self.dropout_in = nn.Dropout(dropout_in)
        self.dropout_out = nn.Dropout(dropout_out)
        self.lstm = nn.LSTM(emb_dim + (latent_dim if use_z else 0), hidden_dim, batch_first=True)
        self.init_linear = nn.Linear(latent_dim, hidden_dim, bias=True) if self.init_from_z else None
        self.out = nn.Linear(hidden_dim, vocab_size)
        self.skip_out = nn.Linear(latent_dim, vocab_size, bias=False) if (use_z and skip) else None
        self._init_ranges = (float(init_range), float(emb_init_range))
        _uniform_(self, init_range, emb_init_range)

    def reset_parameters(self) -> None:
        """He et al. (2019)'s initialisation drawn afresh (global RNG): U(-0.01, 0.01), embeddings U(-0.1, 0.1)."""
        _uniform_(self, *self._init_ranges)

    # -- the vocabulary travels with the weights ------------------------------------------------------------

    def get_extra_state(self) -> dict[str, Any]:
        return {"vocab": self.vocab}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        vocab = state.get("vocab") if isinstance(state, dict) else None
        if vocab is None:
            return
        if self.vocab is not None and list(vocab) != self.vocab:
            raise UserError(
                "the checkpoint's vocabulary differs from this model's (the corpus or data.vocab_* settings changed)"
            )
        self.vocab = list(vocab)

    # -- the recurrent core ---------------------------------------------------------------------------------

    def _initial_state(self, z: Tensor | None) -> tuple[Tensor, Tensor] | None:
        """(h_0, c_0) = (tanh(c_0), linear(z)), each (1, R, H); None (zeros) without ``init_from_z``."""
        if self.init_linear is None or z is None:
            return None
        c0 = self.init_linear(z).unsqueeze(0)  # (1, R, H)
        return torch.tanh(c0), c0

    def _logits(self, hidden: Tensor, z: Tensor | None) -> Tensor:
        """The softmax layer's logits for hidden states (N, H); with skip, plus U z for the rows' z (N, D)."""
        logits = self.out(hidden)
        if self.skip_out is not None and z is not None:
            logits = logits + self.skip_out(z)
        return logits

    def _inference_nll(self, hidden: Tensor, target: Tensor, z_tok: Tensor | None) -> Tensor:
        """-log softmax(logits(hidden))[target] (N,), the log-softmax in float32 as :func:`softmax_nll`, without
        gradients (IW-NLL, validation), fused: blocks of ``softmax_block_tokens`` tokens go through buffers made once
        per call, never an (N, V) tensor and no allocation per block.

        Per block: the product with the output weight, transposed to (H, V) and cast once per call (a row-major
        product: about 15 % faster than the transposed one on a CPU); the log-softmax in float32, in place; the
        targets' log-probabilities read from the same logits that the normaliser summed. In float32 the bias is
        added in place and the numbers are those of ``F.cross_entropy`` on :meth:`_logits`, bit for bit. Under
        bf16/fp16 autocast the product runs in that dtype and the bias rides in it as two more input rows, its
        rounding to that dtype and the remainder (hidden states get two columns of ones), so that h W + b is rounded
        once, at the end, not the bias first (a bias rounded to bf16 moved PTB IW-NLL by +0.008 nats per sentence on
        average and 0.052 at most; with the remainder -0.0005 and 0.0135); the (block, V) logits are then cast to
        float32 in one pass for the log-softmax."""
        w, b = self.out.weight, self.out.bias
        dev = hidden.device
        dtype = torch.get_autocast_dtype(dev.type) if torch.is_autocast_enabled(dev.type) else w.dtype
        n, v, hdim = hidden.shape[0], w.shape[0], hidden.shape[1]
        block = self.softmax_block_tokens if 0 < self.softmax_block_tokens < n else n
        reduced = dtype != w.dtype  # bf16/fp16 autocast
        if reduced:
            w_t = torch.empty(hdim + 2, v, dtype=dtype, device=dev)  # [W^T; b rounded; the remainder], one pass
            w_t[:hdim].copy_(w.t())
            w_t[hdim].copy_(b)
            w_t[hdim + 1].copy_(b - w_t[hdim].float())
            inp = torch.ones(block, hdim + 2, dtype=dtype, device=dev)  # (block, H + 2): [h, 1, 1]
        else:
            w_t = w.t().contiguous()  # (H, V)
        logits = torch.empty(block, v, dtype=dtype, device=dev)
        full = logits if dtype == torch.float32 else torch.empty(block, v, dtype=torch.float32, device=dev)
        # in place on a CPU (the float32 block stays in cache); elsewhere a second buffer
        out = full if dev.type == "cpu" else torch.empty_like(full)
        nll = torch.empty(n, dtype=torch.float32, device=dev)
        for i in range(0, n, block):
            m = min(block, n - i)
            lg, lf, lo = logits[:m], full[:m], out[:m]
            if reduced:
                inp[:m, :hdim].copy_(hidden[i : i + m])
                torch.mm(inp[:m], w_t, out=lg)
                lf.copy_(lg)
            else:
                torch.mm(hidden[i : i + m].to(dtype), w_t, out=lg).add_(b)
                if lf is not lg:
                    lf.copy_(lg)
            if self.skip_out is not None and z_tok is not None:
                lf.add_(self.skip_out(z_tok[i : i + m]))
            torch.log_softmax(lf, 1, out=lo)
            torch.neg(lo.gather(1, target[i : i + m].unsqueeze(1)).squeeze(1), out=nll[i : i + m])
        return nll

    def drop_words(self, tokens: Tensor, noise: Tensor | None) -> Tensor:
        """Word dropout (Bowman et al. 2016) on decoder input tokens (R, T): in training, a word whose uniform draw
        in ``noise`` (R, T) is below ``word_dropout`` becomes ``<unk>`` (``<s>`` and ``<pad>`` never do); draws
        come from the global RNG when ``noise`` is None. Identity in eval mode or with ``word_dropout`` 0."""
        if not self.training or self.word_dropout <= 0.0:
            return tokens
        u = noise if noise is not None else torch.rand(tokens.shape, device=tokens.device)
        drop = (u < self.word_dropout) & (tokens != BOS_ID) & (tokens != PAD_ID)
        return tokens.masked_fill(drop, UNK_ID)

    def _dropout(self, x: Tensor, layer: nn.Dropout, seeds: Tensor | None, salt: int) -> Tensor:
        """Inverted dropout on (R, T, F) activations; with per-sentence ``seeds`` the mask of row r, position t,
        feature f is a function of (seeds[r], salt, t, f) only (:func:`~vaelab.seeds.hashed_uniform`), so it
        does not depend on the process, batch shard or row chunk a sentence is in. Without seeds: ``layer``."""
        if not self.training or layer.p <= 0.0:
            return x
        if seeds is None:
            return layer(x)
        r, t, f = x.shape
        keep = hashed_uniform(seeds, salt, t * f).view(r, t, f) >= layer.p
        return x * keep.to(x.dtype) / (1.0 - layer.p)

    def _inputs(self, tokens: Tensor, z: Tensor | None, noise: Tensor | None, seeds: Tensor | None = None) -> Tensor:
        """[dropout(embedding(w_t)); z] for the input tokens (R, T), after word dropout."""
        emb = self._dropout(self.embed(self.drop_words(tokens, noise)), self.dropout_in, seeds, 1)
        if z is None:
            return emb
        return torch.cat([emb, z.unsqueeze(1).expand(-1, tokens.shape[1], -1)], dim=-1)

    def _log_prob_rows(
        self, tokens: Tensor, lengths: Tensor, z: Tensor | None, noise: Tensor | None, seeds: Tensor | None
    ) -> Tensor:
        """log p(x|z) (R,) for R padded sentences ``tokens`` (R, L) and one z (R, D) each (None: no latent)."""
        inp, tgt = tokens[:, :-1], tokens[:, 1:]
        state = self._initial_state(z)
        h, _ = self.lstm(self._inputs(inp, z, noise, seeds), state)  # (R, T, H)
        h = self._dropout(h, self.dropout_out, seeds, 2)
        return self._score(h, tgt, lengths, z)

    def _score(self, h: Tensor, tgt: Tensor, lengths: Tensor, z: Tensor | None) -> Tensor:
        """sum_t log softmax(logits(h_t))[target_t] (R,) over the real positions of R rows: hidden states (R, T, H),
        targets (R, T), lengths (R,) with both markers; the log-softmax is taken in float32."""
        mask = torch.arange(1, tgt.shape[1] + 1, device=tgt.device).unsqueeze(0) < lengths.unsqueeze(1)
        hidden, target = h[mask], tgt[mask]  # only real positions: (N_tok, H), (N_tok,)
        row = torch.arange(tgt.shape[0], device=tgt.device).unsqueeze(1).expand_as(mask)[mask]
        z_tok = z[row] if (self.skip_out is not None and z is not None) else None  # skip-VAE: (N_tok, D)
        n, block = hidden.shape[0], self.softmax_block_tokens
        dev = hidden.device
        reduced = torch.is_autocast_enabled(dev.type) and torch.get_autocast_dtype(dev.type) != self.out.weight.dtype
        if not torch.is_grad_enabled():
            nll = self._inference_nll(hidden, target, z_tok)
        elif reduced and z_tok is None and self.fused_training_softmax:
            nll = _ReducedOutputNLL.apply(
                hidden, self.out.weight, self.out.bias, target, torch.get_autocast_dtype(dev.type), block
            )
        elif (
            z_tok is None
            and self.fused_training_softmax
            and not reduced
            and hidden.dtype == self.out.weight.dtype == torch.float32
        ):
            nll = _OutputNLL.apply(hidden, self.out.weight, self.out.bias, target, block, self._logits_buffer)
        else:
            if block <= 0 or n <= block:
                block = n
            # blocks of (block, V) logits stay in cache through the softmax's passes
            nll = torch.cat(
                [
                    softmax_nll(
                        self._logits(hidden[i : i + block], None if z_tok is None else z_tok[i : i + block]),
                        target[i : i + block],
                    )
                    for i in range(0, n, block)
                ]
            )
        lp = torch.zeros(tgt.shape[0], dtype=nll.dtype, device=tgt.device)
        return lp.index_add(0, row, -nll)

    def _chunks(self, lengths: Tensor, per_token: int | None = None) -> list[tuple[int, int]]:
        """Row ranges [lo, hi) holding at most ``budget / per_token`` predicted tokens each (default per token:
        max(V, 4H) floats; a longer sentence gets a chunk of its own), counted from the real lengths, not the padded
        width. The budget is ``max_activation_elements``, or when that is None one chosen from the free memory of
        the rows' device (:func:`activation_budget`)."""
        elements = self.max_activation_elements
        if elements is None:
            elements = activation_budget(lengths.device)
        budget = max(1, elements // (per_token or max(self.vocab_size, 4 * self.hidden_dim)))
        n = int(lengths.shape[0])
        if int((lengths - 1).sum()) <= budget:
            return [(0, n)]
        chunk = torch.div(torch.cumsum(lengths - 1, 0) - 1, budget, rounding_mode="floor").cpu()
        cuts = (torch.nonzero(chunk[1:] != chunk[:-1]).flatten() + 1).tolist()
        bounds = [0, *cuts, n]
        return list(itertools.pairwise(bounds))

    def log_prob(self, x: TokenBatch, z: Tensor) -> Tensor:
        """log p(x|z) in nats per sentence, summed over the predicted tokens (words and ``</s>``).

        z (B, D) -> (B,); z (S, B, D) -> (S, B). The S * B sequences are decoded together (sentence-major), in row
        chunks bounded by ``max_activation_elements``; a decoder that ignores z decodes the B sentences once.
        """
        x = _check_tokens(x)
        if z.dim() not in (2, 3) or z.shape[-2] != x.batch_size or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"z must be (B, D) or (S, B, D) with B={x.batch_size}, D={self.latent_dim}; got {tuple(z.shape)}"
            )
        if not self.use_z:
            lp = self._chunked(x.tokens, x.lengths, None, x.noise, x.seeds)
            return lp if z.dim() == 2 else lp.unsqueeze(0).expand(z.shape[0], -1)
        if z.dim() == 2:
            return self._chunked(x.tokens, x.lengths, z, x.noise, x.seeds)
        if not self.training and self.share_sentence_work:
            return self._shared_log_prob(x, z)
        s, b, d = z.shape
        # Sentence-major rows (row i * S + k is sentence i with sample k), so that a row chunk holds the samples of
        # one or a few sentences and is trimmed to their length: no LSTM steps are spent on padding.
        tokens = x.tokens.repeat_interleave(s, dim=0)
        lengths = x.lengths.repeat_interleave(s)
        noise = None if x.noise is None else x.noise.repeat_interleave(s, dim=0)
        seeds = None
        if x.seeds is not None:  # a different dropout mask for every sample of a sentence
            k = torch.arange(s, device=x.seeds.device).repeat(b)
            seeds = x.seeds.repeat_interleave(s) * _SAMPLE_STRIDE + k
        zz = z.transpose(0, 1).reshape(b * s, d)
        return self._chunked(tokens, lengths, zz, noise, seeds).view(b, s).t()

    def _shared_log_prob(self, x: TokenBatch, z: Tensor) -> Tensor:
        """Eval-mode log p(x|z) (S, B) for z (S, B, D) with the per-sentence work done once, not once per sample.

        The LSTM's input weight is split into its embedding and z column blocks, W_ih [e; z] = W_e e + W_z z
        (mathematically the same gates): W_e e_t + b (B, T, 4H) is computed once per sentence, W_z z and the
        initial state once per sample (not per token), and only the recurrence h_{t-1} -> h_t and the softmax layer
        run per sample and token. Rows are sentence-major and cut into chunks whose hidden states fit the
        activation budget (:meth:`_chunks`), each trimmed to its longest sentence. The gate sums and the cell state
        are float32 under autocast; the matrix products run in the autocast precision, and the hidden states are
        kept in it (the products round them to it anyway)."""
        s, b, d = z.shape
        lstm, hdim = self.lstm, self.hidden_dim
        e = self.embed.embedding_dim
        # gate rows reordered from nn.LSTM's (i, f, g, o) to (i, f, o, g): one sigmoid over 3H, one tanh over H
        order = torch.cat([torch.arange(2 * hdim), torch.arange(3 * hdim, 4 * hdim), torch.arange(2 * hdim, 3 * hdim)])
        order = order.to(z.device)
        w_ih, w_hh = lstm.weight_ih_l0[order], lstm.weight_hh_l0[order]
        dtype = torch.get_autocast_dtype(z.device.type) if torch.is_autocast_enabled(z.device.type) else z.dtype
        bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0)[order]
        # under bf16/fp16 the gates' tanh as 2 sigmoid(2x) - 1: 3x faster than torch.tanh on a CPU, within 2e-7 of it
        # (float32 keeps torch.tanh: its numbers stay those of earlier versions, bit for bit); the g gate's rows are
        # doubled (exact in binary floating point, in the products too), so one sigmoid over the 4H gates gives
        # sigmoid(i), sigmoid(f), sigmoid(o) and sigmoid(2 g)
        reduced = dtype in (torch.bfloat16, torch.float16)
        if reduced:
            two = torch.ones(4 * hdim, 1, device=z.device)
            two[3 * hdim :] = 2.0
            w_ih, w_hh, bias = w_ih * two, w_hh * two, bias * two.squeeze(1)
        w_hh_t = w_hh.t().to(dtype).contiguous()  # (H, 4H), cast once, not at every step
        emb = self.embed(x.tokens[:, :-1].t())  # (T, B, E): step-major, so that a step's rows are contiguous
        g_emb = F.linear(emb, w_ih[:, :e], bias).float()  # (T, B, 4H): once per sentence
        zz = z.transpose(0, 1).reshape(b * s, d)  # row i * S + k: sentence i, sample k
        g_z = F.linear(zz, w_ih[:, e:]).float()  # (B * S, 4H): once per sample
        lengths = x.lengths.repeat_interleave(s)
        sentence = torch.arange(b, device=z.device).repeat_interleave(s)
        parts = []
        for lo, hi in self._chunks(lengths, per_token=4 * hdim):
            rows = slice(lo, hi)
            steps = int(lengths[rows].max()) - 1
            if self.init_linear is not None:
                c = self.init_linear(zz[rows]).float()
                h = torch.tanh(c)
            else:
                h = c = g_z.new_zeros(hi - lo, hdim)
            sent, g_z_rows = sentence[rows], g_z[rows]
            # the hidden states stored once, in the products' dtype: the next step's product and the softmax layer
            # read them there (under bf16 no float32 copy of the (R, T, H) states, no cast per step)
            hidden = torch.empty(hi - lo, steps, hdim, dtype=dtype, device=z.device)
            h_low = h.to(dtype)
            for t in range(steps):
                gates = torch.index_select(g_emb[t], 0, sent).add_(g_z_rows)
                if reduced:  # lower-precision product, float32 sum; h_t written once, in the products' dtype
                    gates.add_(torch.mm(h_low, w_hh_t))
                    i, f, o, g2 = gates.sigmoid_().split(hdim, dim=1)
                    c = torch.addcmul(f * c, i, g2.mul_(2).sub_(1))
                    h_low = hidden[:, t]
                    h_low.copy_(o * _tanh_by_sigmoid(c))
                else:
                    if dtype == gates.dtype:
                        gates.addmm_(h, w_hh_t)
                    else:
                        gates.add_(torch.mm(h_low, w_hh_t))
                    i, f, o = torch.sigmoid(gates[:, : 3 * hdim]).chunk(3, dim=1)
                    c = torch.addcmul(f * c, i, torch.tanh(gates[:, 3 * hdim :]))
                    h = o * torch.tanh(c)
                    h_low = hidden[:, t]
                    h_low.copy_(h)
            parts.append(self._score(hidden, x.tokens[sentence[rows], 1 : steps + 1], lengths[rows], zz[rows]))
        return torch.cat(parts).view(b, s).t()

    def _chunked(
        self, tokens: Tensor, lengths: Tensor, z: Tensor | None, noise: Tensor | None, seeds: Tensor | None
    ) -> Tensor:
        """:meth:`_log_prob_rows` over row chunks of bounded size (:meth:`_chunks`), each cut to its longest
        sentence."""
        ranges = self._chunks(lengths)
        if len(ranges) == 1:
            return self._log_prob_rows(tokens, lengths, z, noise, seeds)
        parts = []
        for lo, hi in ranges:
            width = int(lengths[lo:hi].max())
            parts.append(
                self._log_prob_rows(
                    tokens[lo:hi, :width],
                    lengths[lo:hi],
                    None if z is None else z[lo:hi],
                    None if noise is None else noise[lo:hi, : width - 1],
                    None if seeds is None else seeds[lo:hi],
                )
            )
        return torch.cat(parts)

    # -- generation -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self,
        z: Tensor,
        mean: bool = False,
        *,
        max_length: int = 100,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Decode one sentence per row of z (N, D): greedy (``mean=True``: the most probable word at each step,
        an approximation of the mode) or ancestral sampling from softmax(logits / temperature). Stops at
        ``</s>`` or after ``max_length`` words. Returns word ids without markers; ``<pad>`` and ``<s>`` are
        never emitted. Uses eval-mode behaviour (no dropout) whatever the module's mode."""
        if temperature <= 0.0:
            raise ConfigError(f"temperature must be positive, got {temperature}")
        was_training = self.training
        self.eval()
        try:
            n = z.shape[0]
            device = z.device
            zz = z if self.use_z else None
            state = self._initial_state(zz)
            word = torch.full((n, 1), BOS_ID, dtype=torch.long, device=device)
            done = torch.zeros(n, dtype=torch.bool, device=device)
            out = torch.full((n, max_length), PAD_ID, dtype=torch.long, device=device)
            lengths = torch.full((n,), max_length, dtype=torch.long, device=device)
            banned = torch.tensor([PAD_ID, BOS_ID], device=device)
            for t in range(max_length):
                h, state = self.lstm(self._inputs(word, zz, None), state)
                logits = self._logits(h[:, -1], zz)
                logits[:, banned] = -float("inf")
                if mean:
                    nxt = logits.argmax(-1)
                else:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                ended = (nxt == EOS_ID) & ~done
                lengths[ended] = t
                done |= ended
                out[:, t] = torch.where(done, PAD_ID, nxt)
                if bool(done.all()):
                    break
                word = nxt.unsqueeze(1)
            return [row[: int(n_)] for row, n_ in zip(out.tolist(), lengths.tolist(), strict=True)]
        finally:
            self.train(was_training)


__all__ = ["DEFAULT_MAX_ACTIVATION_ELEMENTS", "LSTMDecoder", "LSTMEncoder", "PriorEncoder", "activation_budget"]
