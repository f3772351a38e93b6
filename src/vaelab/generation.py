"""Sentences from a trained text VAE: samples from the prior, reconstructions, interpolations.

    vaelab sample DIR [-n 10] [--greedy] [--temperature 1.0]            z ~ p(z), decode
    vaelab reconstruct DIR [--file F | "sentence" ...] [--sample]       z = posterior mean (or z ~ q(z|x)), decode
    vaelab interpolate DIR "sentence a" "sentence b" [--steps 5]         decode (1 - t) mu_a + t mu_b

Decoding is greedy (the most probable word at each step, an approximation of the mode of p(x|z)) or ancestral
sampling from softmax(logits / temperature), until ``</s>`` or ``--max-length`` words (Bowman et al. 2016 show
such samples and homotopies between sentences; He et al. 2019 reconstructions). A run folder is decoded without
its corpus: the vocabulary is saved with the model weights (the decoder's extra state) and the model's sizes in
the run's config.yaml (``_meta.data.model_info``).

For an ``lstm_lm`` run, z is ignored: prior samples are ordinary LM samples (greedy ones are all the same
sentence), and reconstructions and interpolations do not depend on the input.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from vaelab.data import load_dataset
from vaelab.data.text import RESERVED, TextDataset, TokenBatch, Vocabulary
from vaelab.data.text_parse import label_and_text, split_words
from vaelab.errors import ConfigError, UserError
from vaelab.models import VAE, build_model
from vaelab.models.text import LSTMDecoder
from vaelab.rules import SEED, Device, Int, Num, check_device_available, option

if TYPE_CHECKING:
    from vaelab.run import Run


@dataclass
class TextRun:
    """A text model loaded from a run folder, with its vocabulary and tokenisation settings."""

    model: VAE
    vocab: Vocabulary
    lowercase: bool
    max_length: int
    """Longest training sentence in words (the default cap for decoding is a bit more than this)."""
    data_format: str = "plain"
    """The corpus's ``data.format``: a ``label_tab`` run reads a sentence's leading ``LABEL<TAB>`` as its label."""
    labels_as_words: bool = False
    """The corpus's ``data.labels_as_words``: a plain run then reads a leading ``LABEL<TAB>`` as a word."""

    @classmethod
    def from_data(cls, model: VAE, dataset: TextDataset, *, labels_as_words: bool = False) -> TextRun:
        """A text model with the text data set it was trained on (its vocabulary and tokenisation)."""
        info = dataset.model_info()
        fmt = str(dataset.info.get("format", "plain"))
        return cls(model, dataset.vocab, bool(dataset.lowercase), int(info.get("max_length", 80)), fmt, labels_as_words)

    @classmethod
    def from_run(cls, run: Run) -> TextRun:
        """A loaded text run (:func:`vaelab.run.load_run`), decoded on its device."""
        if not isinstance(run.dataset, TextDataset) or not isinstance(run.model.decoder, LSTMDecoder):
            raise UserError(f"{run.path} is not a text run (model.type={run.config.model.type!r})")
        return cls.from_data(run.model, run.dataset, labels_as_words=run.config.data.labels_as_words)

    @property
    def decoder(self) -> LSTMDecoder:
        return self.model.decoder  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def tokenize(self, sentence: str) -> list[str]:
        """The words of a raw sentence as the corpus's lines were read (:func:`~vaelab.data.text_parse.split_words`:
        whitespace, invisible format characters dropped), lower-cased if the corpus was; a label_tab run drops a
        leading ``LABEL<TAB>``."""
        labelled = label_and_text(sentence)
        if labelled is not None and self.data_format == "label_tab":
            sentence = labelled[1]
        elif labelled is not None and not self.labels_as_words:  # as training refuses a plain file of such lines
            raise UserError(
                f"sentence {sentence[:40]!r} looks like LABEL<TAB>sentence, but the run was trained on "
                "data.format=plain text, which would read the label as a word; give the sentence without its label"
            )
        words = split_words(sentence)
        return [w.lower() for w in words] if self.lowercase else words

    def batch(self, sentences: Sequence[str]) -> TokenBatch:
        """Encode raw sentences (unknown words -> <unk>) into a token batch on the model's device."""
        ids = []
        for s in sentences:
            words = self.tokenize(s)
            if not words:
                raise UserError(f"empty sentence {s!r}")
            if "\x00" in s:
                raise UserError(f"sentence {s[:40]!r} holds a NUL character; give plain text")
            if reserved := RESERVED.intersection(words):
                raise UserError(
                    f"sentence {s[:40]!r}: the word {sorted(reserved)[0]!r} is one of vaelab's own tokens (<pad>, "
                    "<s>, </s>), so it would not be read as a word; remove it"
                )
            ids.append(self.vocab.encode(words))
        return TokenBatch.from_sentences(ids, device=self.device)

    def text(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab.decode(ids))

    def decode(
        self,
        z: torch.Tensor,
        *,
        greedy: bool,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        max_length: int | None = None,
    ) -> list[str]:
        """One sentence per row of z (N, D)."""
        cap = max_length if max_length is not None else self.max_length + 20
        ids = self.decoder.sample(
            z.to(self.device), mean=greedy, max_length=cap, temperature=temperature, generator=generator
        )
        return [self.text(s) for s in ids]


def _read_run_yaml(config_path: Path) -> dict[str, Any]:
    data = yaml.safe_load(config_path.read_text()) or {}
    return data if isinstance(data, dict) else {}


def load_text_run(run_dir: str | Path, *, checkpoint: str = "best", device: str = "cpu") -> TextRun:
    """Load a text run folder's model (``checkpoints/best.pt`` or ``last.pt``) and vocabulary, in eval mode,
    without its corpus (:func:`vaelab.run.load_run` loads the corpus too; :meth:`TextRun.from_run` decodes such a
    run).

    The model sizes come from the run's config.yaml (``_meta.data.model_info``, written at training time); when
    that is missing (a config from elsewhere) the corpus is loaded again to get them.
    """
    from vaelab.checkpoint import load_model_state
    from vaelab.config import load_saved_config
    from vaelab.run import load_run_checkpoint, run_checkpoint

    folder, ckpt_path = run_checkpoint(run_dir, checkpoint)
    cfg = load_saved_config(folder.config)
    info = (_read_run_yaml(folder.config).get("_meta") or {}).get("data", {}).get("model_info")
    if info is None:
        dataset = load_dataset(cfg.data)
        if not isinstance(dataset, TextDataset):
            raise UserError(f"{folder.root} is not a text run (data.name={cfg.data.name!r})")
        info = dataset.model_info()
    if "vocab_size" not in info:
        raise UserError(f"{folder.root} is not a text run (model.type={cfg.model.type!r})")
    model = build_model(cfg.model, dict(info))
    if not isinstance(model.decoder, LSTMDecoder):
        raise UserError(f"{folder.root} is not a text run (model.type={cfg.model.type!r})")
    state = load_run_checkpoint(folder, ckpt_path, map_location="cpu")["model"]
    load_model_state(model, state, ckpt_path)
    words = model.decoder.vocab
    if words is None:
        raise UserError(f"{ckpt_path} holds no vocabulary (decoder extra state)")
    vocab = Vocabulary(words)
    if vocab.itos != list(words):
        raise UserError(f"{ckpt_path}: the saved vocabulary does not start with the special tokens")
    model.to(device).eval()
    lowercase, longest = bool(info.get("lowercase", False)), int(info.get("max_length", 80))
    return TextRun(model, vocab, lowercase, longest, cfg.data.format, bool(cfg.data.labels_as_words))


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is not None:
        g.manual_seed(seed)
    else:
        g.seed()
    return g


def sample_prior(
    run: TextRun,
    n: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    seed: int | None = 0,
    max_length: int | None = None,
) -> list[str]:
    """n sentences decoded from z ~ p(z) = N(0, I) (greedy or sampled)."""
    return list(iter_sample_prior(run, n, greedy=greedy, temperature=temperature, seed=seed, max_length=max_length))


SAMPLE_CHUNK = 500
"""Sentences decoded at once by :func:`iter_sample_prior` (so that ``vaelab sample -n 100000`` prints as it goes)."""


@torch.no_grad()
def iter_sample_prior(
    run: TextRun,
    n: int,
    *,
    greedy: bool = False,
    temperature: float = 1.0,
    seed: int | None = 0,
    max_length: int | None = None,
) -> Iterator[str]:
    """:func:`sample_prior`, yielding the sentences :data:`SAMPLE_CHUNK` at a time as they are decoded (one draw of
    all n z first, then the words of each chunk; up to SAMPLE_CHUNK sentences, the same as one batch)."""
    if n < 1:
        raise ConfigError(f"-n must be >= 1, got {n}")
    g = _generator(seed)
    z = torch.randn(n, run.model.latent_dim, generator=g)
    for start in range(0, n, SAMPLE_CHUNK):
        yield from run.decode(
            z[start : start + SAMPLE_CHUNK], greedy=greedy, temperature=temperature, generator=g, max_length=max_length
        )


@torch.no_grad()
def reconstruct(
    run: TextRun,
    sentences: Sequence[str],
    *,
    greedy: bool = True,
    posterior_sample: bool = False,
    samples: int = 1,
    temperature: float = 1.0,
    seed: int | None = 0,
    max_length: int | None = None,
) -> list[tuple[str, list[str]]]:
    """For each sentence: (the input as the model sees it, with <unk>; ``samples`` decodings of z), where z is the
    posterior mean, or z ~ q(z|x) with ``posterior_sample``."""
    if samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {samples}")
    x = run.batch(sentences)
    q = run.model.encode(x)
    g = _generator(seed)
    out: list[tuple[str, list[str]]] = []
    seen = [run.text(s) for s in x.sentences()]
    for i in range(x.batch_size):
        mu, std = q.mu[i].cpu(), torch.exp(0.5 * q.logvar[i]).cpu()
        z = mu.expand(samples, -1).clone()
        if posterior_sample:
            z = z + std * torch.randn(z.shape, generator=g)
        out.append((seen[i], run.decode(z, greedy=greedy, temperature=temperature, generator=g, max_length=max_length)))
    return out


@torch.no_grad()
def interpolate(
    run: TextRun,
    a: str,
    b: str,
    *,
    steps: int = 5,
    greedy: bool = True,
    temperature: float = 1.0,
    seed: int | None = 0,
    max_length: int | None = None,
) -> list[tuple[float, str]]:
    """Decode z_t = (1 - t) mu(a) + t mu(b) at ``steps`` evenly spaced t in [0, 1] (posterior means; Bowman et al.
    2016's homotopy)."""
    if steps < 2:
        raise ConfigError(f"--steps must be >= 2, got {steps}")
    mu = run.model.encode(run.batch([a, b])).mu.cpu()
    ts = torch.linspace(0.0, 1.0, steps)
    z = (1 - ts).unsqueeze(1) * mu[0] + ts.unsqueeze(1) * mu[1]
    sents = run.decode(z, greedy=greedy, temperature=temperature, generator=_generator(seed), max_length=max_length)
    return [(float(t), s) for t, s in zip(ts, sents, strict=True)]


# ------------------------------------------------------------------------------------------------------------
# command line


def _load(args: argparse.Namespace) -> TextRun:
    check_device_available(args.device, key="--device")
    return load_text_run(args.dir, checkpoint=args.checkpoint, device=args.device)


def _read_sentences(path: Path) -> list[str]:
    """The non-empty lines of ``--file`` (UTF-8; a byte-order mark is dropped); errors name the file."""
    if path.is_dir():
        raise ConfigError(f"--file {path} is a folder; name a text file with one sentence per line")
    if path.exists() and not path.is_file():  # a FIFO or a device would block or read as nothing
        raise ConfigError(f"--file {path} is not a regular file (a pipe or a device); name a text file")
    if not path.is_file():
        raise FileNotFoundError(f"--file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"--file {path}:{line}: not UTF-8 text ({e.reason}); save the file as UTF-8") from None
    return [ln for ln in text.splitlines() if ln.strip()]


def _refuse_unused(args: argparse.Namespace, needs: dict[str, str]) -> None:
    """Refuse an option given where the chosen decoding mode does not read it (it would change nothing):
    ``needs`` maps the argparse dest to the sentence saying which mode it needs (the options default to None)."""
    for dest, why in needs.items():
        if getattr(args, dest) is not None:
            raise ConfigError(f"--{dest} {getattr(args, dest)} has no effect here: {why}")


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def cmd_sample(args: argparse.Namespace) -> int:
    if args.greedy:
        _refuse_unused(args, {"temperature": "--greedy takes the most probable word; drop --greedy to sample words"})
    run = _load(args)
    for s in iter_sample_prior(
        run,
        args.n,
        greedy=args.greedy,
        temperature=_or(args.temperature, 1.0),
        seed=_or(args.seed, 0),
        max_length=args.max_length,
    ):
        print(s, flush=True)
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    if args.file and args.sentences:
        raise ConfigError("give sentences or --file, not both")
    sentences = _read_sentences(Path(args.file)) if args.file else list(args.sentences)
    if not sentences:
        where = f"--file {args.file} holds no sentences" if args.file else "no sentences to reconstruct"
        raise ConfigError(f"{where} (give them as arguments or with --file, one a line)")
    if not args.sample:
        needs = {"temperature": "words are decoded greedily unless --sample is given; add --sample"}
        if not args.posterior_sample:
            needs["samples"] = (
                "without --sample or --posterior-sample every decoding is the same greedy decoding of the posterior "
                "mean; add --sample (sample words) or --posterior-sample (z ~ q(z|x))"
            )
            needs["seed"] = "nothing is random without --sample or --posterior-sample"
        _refuse_unused(args, needs)
    run = _load(args)
    for seen, outs in reconstruct(
        run,
        sentences,
        greedy=not args.sample,
        posterior_sample=args.posterior_sample,
        samples=_or(args.samples, 1),
        temperature=_or(args.temperature, 1.0),
        seed=_or(args.seed, 0),
        max_length=args.max_length,
    ):
        print(f"> {seen}")
        for s in outs:
            print(f"  {s}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    if not args.sample:
        why = "words are decoded greedily unless --sample is given; add --sample"
        _refuse_unused(args, {"temperature": why, "seed": f"nothing is random: {why}"})
    run = _load(args)
    for t, s in interpolate(
        run,
        args.a,
        args.b,
        steps=args.steps,
        greedy=not args.sample,
        temperature=_or(args.temperature, 1.0),
        seed=_or(args.seed, 0),
        max_length=args.max_length,
    ):
        print(f"{t:.2f}  {s}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="run folder of a text model (lstm_vae / lstm_lm)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])
    p.add_argument(
        "--temperature",
        type=option(Num(lo=1e-3, hi=1e3), "--temperature"),
        default=None,
        help="softmax temperature when sampling words (default 1; not with greedy decoding)",
    )
    p.add_argument(
        "--max-length",
        type=option(Int(1, 10_000), "--max-length"),
        default=None,
        help="most words per sentence (default: longest + 20)",
    )
    p.add_argument(
        "--seed",
        type=option(SEED, "--seed"),
        default=None,
        help="random seed of z and word sampling (default 0; only where something is random)",
    )
    p.add_argument(
        "--device", type=option(Device(), "--device"), default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)"
    )


def add_generation_parsers(subparsers: Any) -> None:
    """Add ``sample``, ``reconstruct`` and ``interpolate`` to the ``vaelab`` command line."""
    s = subparsers.add_parser("sample", help="sentences decoded from z ~ p(z) (text runs)")
    _common(s)
    s.add_argument("-n", type=option(Int(1, 100_000), "-n"), default=10, help="number of sentences (default 10)")
    s.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling words")
    s.set_defaults(func=cmd_sample)

    r = subparsers.add_parser("reconstruct", help="decode the posterior of given sentences (text runs)")
    _common(r)
    r.add_argument("sentences", nargs="*", help="sentences (quoted), or use --file")
    r.add_argument("--file", help="a file with one sentence per line")
    r.add_argument("--sample", action="store_true", help="sample words instead of greedy decoding")
    r.add_argument("--posterior-sample", action="store_true", help="z ~ q(z|x) instead of the posterior mean")
    r.add_argument(
        "--samples",
        type=option(Int(1, 1000), "--samples"),
        default=None,
        help="decodings per sentence (default 1; with --sample or --posterior-sample)",
    )
    r.set_defaults(func=cmd_reconstruct)

    i = subparsers.add_parser("interpolate", help="decode points between two sentences' posterior means (text runs)")
    _common(i)
    i.add_argument("a", help="first sentence")
    i.add_argument("b", help="second sentence")
    i.add_argument(
        "--steps",
        type=option(Int(2, 1000), "--steps"),
        default=5,
        help="number of points including both ends (default 5)",
    )
    i.add_argument("--sample", action="store_true", help="sample words instead of greedy decoding")
    i.set_defaults(func=cmd_interpolate)


__all__ = [
    "TextRun",
    "add_generation_parsers",
    "interpolate",
    "load_text_run",
    "reconstruct",
    "sample_prior",
]
