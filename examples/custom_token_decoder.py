"""A custom encoder and GRU decoder on token-id sequences, trained with free bits, then measured and diagnosed.

    python examples/custom_token_decoder.py             # ~1 min on 2 CPU cores
    python examples/custom_token_decoder.py --quick     # a few seconds (what tests/test_api.py runs)

The data are lists of token ids, as a tokenizer gives them: here a generated corpus of 4 topics (each sequence
draws its words from its topic's part of a 40-word vocabulary, so z has something to carry: the topic), with the
topic as a label for the probe.

vaelab pads them into :class:`vaelab.data.text.TokenBatch` batches: ``tokens`` (B, L) = ``<s> ids </s> <pad>..``
with your id t stored as t + 4 (``vaelab.TOKEN_OFFSET``; ids 0..3 are <pad>, <s>, </s>, <unk>), ``lengths`` (B,)
and ``target_mask()``, the positions the decoder predicts. The decoder below is a GRU language model whose initial
state is a function of z; its ``log_prob`` sums the log-probabilities of the predicted tokens (the words and
</s>), so it is log p(x|z) per sequence in nats, as the contract asks.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import vaelab


class GRUEncoder(nn.Module):
    """TokenBatch -> (mu, logvar) from the last GRU state of each sequence."""

    def __init__(self, vocab_size: int, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, x: Any) -> tuple[Tensor, Tensor]:
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(x.tokens), x.lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, h = self.gru(packed)
        mu, logvar = self.head(h[-1]).chunk(2, dim=-1)
        return mu, logvar


class GRUDecoder(nn.Module):
    """p(x|z): a GRU language model whose initial state is tanh(W z)."""

    def __init__(self, vocab_size: int, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.init = nn.Linear(latent_dim, hidden)
        self.embed = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def log_prob(self, x: Any, z: Tensor) -> Tensor:
        """Sum over each sequence's predicted tokens (words and </s>) of log p(token | previous tokens, z), nats."""
        h0 = torch.tanh(self.init(z)).unsqueeze(0)
        states, _ = self.gru(self.embed(x.tokens[:, :-1]), h0)
        logp = -F.cross_entropy(self.out(states).transpose(1, 2), x.tokens[:, 1:], reduction="none")
        return (logp * x.target_mask()).sum(1)

    @torch.no_grad()
    def sample(self, z: Tensor, mean: bool = False, max_len: int = 12) -> list[list[int]]:
        """Sequences (vaelab ids, without <s> and </s>) from z: greedy with ``mean``, else sampled."""
        h = torch.tanh(self.init(z)).unsqueeze(0)
        tok = torch.full((z.shape[0], 1), 1, dtype=torch.long, device=z.device)  # <s>
        out: list[list[int]] = [[] for _ in range(z.shape[0])]
        done = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
        for _ in range(max_len):
            s, h = self.gru(self.embed(tok), h)
            logits = self.out(s[:, -1])
            tok = logits.argmax(-1, keepdim=True) if mean else torch.multinomial(logits.softmax(-1), 1)
            done |= tok.squeeze(1) == 2  # </s>
            for i, t in enumerate(tok.squeeze(1).tolist()):
                if not done[i]:
                    out[i].append(t)
        return out


def build(vocab_size: int, latent_dim: int = 4, hidden: int = 64) -> tuple[nn.Module, nn.Module]:
    """The factory recorded in config.yaml; ``vocab_size`` is V + 4 (``UserData.model_vocab_size``)."""
    return GRUEncoder(vocab_size, latent_dim, hidden), GRUDecoder(vocab_size, latent_dim, hidden)


def make_corpus(n: int, seed: int = 0) -> tuple[list[list[int]], list[int], list[str]]:
    """n sequences of 6-10 ids over a 40-word vocabulary: 8 shared words and 8 words per topic (4 topics)."""
    g = torch.Generator().manual_seed(seed)
    vocab = [f"w{i}" for i in range(8)] + [f"t{k}_{i}" for k in range(4) for i in range(8)]
    seqs, labels = [], []
    for _ in range(n):
        k = int(torch.randint(0, 4, (1,), generator=g))
        length = int(torch.randint(6, 11, (1,), generator=g))
        topical = torch.rand(length, generator=g) < 0.7
        own = 8 + 8 * k + torch.randint(0, 8, (length,), generator=g)
        words = torch.where(topical, own, torch.randint(0, 8, (length,), generator=g))
        seqs.append(words.tolist())
        labels.append(k)
    return seqs, labels, vocab


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/example_token_decoder", help="run folder (must not hold another run)")
    p.add_argument("--quick", action="store_true", help="a tiny budget that runs in seconds (the test)")
    args = p.parse_args(argv)

    n, epochs, hidden, iw = (400, 2, 32, 10) if args.quick else (4000, 10, 64, 100)
    seqs, labels, vocab = make_corpus(n)
    data = vaelab.token_data((seqs, labels), vocab=vocab)
    print(f"data: {n} sequences, vocabulary {len(vocab)} (+4 specials = {data.model_vocab_size} ids in a batch)")

    run = vaelab.train(
        build,
        data,
        args.out,
        model_kwargs={"vocab_size": data.model_vocab_size, "latent_dim": 4, "hidden": hidden},
        config={
            "objective": {"regulariser": "free_bits_batch", "free_bits": 0.5},  # Kingma et al. (2016)
            "train": {"batch_size": 32, "epochs": epochs, "lr": 3e-3, "progress": False},
            "eval": {"iw_samples": iw, "extra_metrics": ["probe"]},
        },
    )
    s = run.summary
    print(
        f"test IW-NLL (K={s['iw_samples']}) {s['nll_iw']:.2f} nats/sequence (PPL {s['ppl_iw']:.1f}), "
        f"KL {s['rate']:.2f}, MI {s['mi']:.2f} (pool {s['mi_pool']}), AU {s['au']}/4, "
        f"probe {s['probe_accuracy']:.2f} (majority {s['probe_majority']:.2f})"
    )
    diagnosis = run.diagnose()
    print(f"verdict: {diagnosis.verdict} - {diagnosis.headline}")

    loaded = run.load()
    test = data.splits["test"][0]
    nll = vaelab.iw_nll(loaded, test, num_samples=iw)  # your token lists; vaelab pads and shifts them
    metrics = vaelab.evaluate(loaded, test, iw_samples=iw, mi_pool="all")
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    samples = loaded.model.decoder.sample(z, mean=True)
    words = [" ".join(loaded.dataset.vocab.decode(s)) for s in samples]
    print(f"functions: IW-NLL {nll.mean():.2f}, MI {metrics['mi']:.2f} (pool {metrics['mi_pool']}), AU {metrics['au']}")
    print("greedy decodings of z ~ p(z):", *words, sep="\n  ")
    print(f"run folder: {Path(args.out)} (try: vaelab diagnose {args.out})")
    return {"run": run, "summary": s, "diagnosis": diagnosis, "nll": nll, "metrics": metrics, "samples": words}


if __name__ == "__main__":
    main()
