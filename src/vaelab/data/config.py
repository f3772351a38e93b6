"""The ``data:`` section of a run config.

Every field is a plain type (str, int, float, bool, list, dict, ``Literal``) so that the config loader can
validate it from the type hints and name the valid choices of a closed field in its error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BinarizeMode = Literal["dynamic", "static", "threshold", "none"]
"""How pixel intensities in [0, 1] become the observations x the decoder models.

- ``dynamic``: x ~ Bernoulli(intensity), resampled every time a training batch is drawn (Salakhutdinov &
  Murray 2008; the protocol of Burda et al. 2016). Evaluation splits are binarised once with a fixed seed.
- ``static``: the data are already 0/1 (e.g. Larochelle & Murray 2011's binarized MNIST); used as they are.
- ``threshold``: x = 1[intensity > 0.5].
- ``none``: grey levels in [0, 1] (real values for ``synthetic_gaussian``), for Gaussian or other continuous
  likelihoods.
"""

BINARIZE_MODES: tuple[str, ...] = ("dynamic", "static", "threshold", "none")


@dataclass
class DataConfig:
    """Which data set, where its files are, how it is split and binarised.

    Split conventions (see :mod:`vaelab.data.base`): every subset is chosen by a fixed permutation seeded by
    ``split_seed`` (never by the run seed), so every run with the same data config sees the same examples.
    """

    name: str = "mnist"
    """Registry name: mnist, fashion_mnist, binarized_mnist, omniglot, idx, npz, synthetic_blobs,
    synthetic_gaussian, tetrominoes, text, ptb, synthetic_text (``vaelab.data.DATASETS.names()``)."""

    root: str | None = None
    """Data folder. None: ``$VAELAB_DATA``, else ``../shared/data`` relative to the working directory when
    that exists, else ``~/.vaelab/data`` (see :func:`vaelab.data.resolve_data_root`)."""

    binarize: BinarizeMode | None = None
    """None: the data set's default (dynamic for MNIST, Fashion-MNIST and Omniglot; static for binarized_mnist
    and synthetic_blobs; none for synthetic_gaussian; for idx/npz: static when the data are 0/1, else
    dynamic)."""

    valid_size: int = 10000
    """Training examples held out as the validation split, for data sets without an official one (MNIST,
    Fashion-MNIST, idx/npz without a validation file). 0 = no validation split (train on all, as Burda et al.
    2016 do on MNIST). Ignored where the split is fixed by the data set (binarized_mnist; Omniglot, whose
    validation split is drawer 14, or empty when this is 0) and by the synthetic sets."""

    train_size: int | None = None
    """Use only n training examples: the first n of a fixed permutation (so smaller sizes are subsets of
    larger ones), for data-size sweeps and quick runs. Must not exceed the training split."""

    eval_size: int | None = None
    """Cap the validation and test splits at this many examples (a fixed random subset), for quick runs. For
    the synthetic sets: the size of their validation and test splits (default ``num_examples // 4``)."""

    split_seed: int = 0
    """Seed of the fixed permutations that choose the validation split and the train/eval subsets, and of the
    generation of the synthetic sets. Independent of the run seed."""

    path: str | None = None
    """idx: folder holding the IDX files (default: the data folder). npz: the .npz file (relative paths are
    relative to the data folder). mnist / fashion_mnist: optional folder of IDX files to use. text / ptb: the
    folder holding the corpus files (relative paths are relative to the data folder; ptb default: <data>/ptb)."""

    files: dict[str, str] | None = None
    """idx: role -> file name, roles ``train_images, train_labels, valid_images, valid_labels, test_images,
    test_labels`` (default: the MNIST names train-images-idx3-ubyte[.gz], ...). npz: role -> array key, roles
    ``train, valid, test, train_labels, valid_labels, test_labels`` (default keys train/valid/test,
    x_train/x_valid/x_test, y_train/...). Labels and the validation split are optional. text / ptb: role -> file
    name for roles ``train, valid, test`` (ptb default: ptb.train.txt, ptb.valid.txt, ptb.test.txt); without a
    ``valid`` file, ``valid_size`` training sentences are held out."""

    image_shape: list[int] | None = None
    """Shape of one example as [C, H, W], [H, W] or [D]; needed when files hold flat (N, D) rows (default for
    flat rows: square single-channel images), and the size of the synthetic examples (default [1, 8, 8] for
    blobs, [1, 4, 4] for gaussian)."""

    num_examples: int = 1000
    """Synthetic sets (synthetic_text included): number of training examples."""

    latent_dim: int = 2
    """synthetic_gaussian: dimension k of the latent z in x = W z + b + s * eps."""

    noise: float = 0.1
    """synthetic_blobs: probability that a pixel is flipped from its template; synthetic_gaussian: the
    observation noise standard deviation s; synthetic_text: probability that a content word comes from the shared
    lists instead of its sentence's topic (in [0, 1))."""

    num_templates: int = 4
    """synthetic_blobs: number of templates (= number of classes); synthetic_text: number of topics (= classes)."""

    verify_checksum: bool = True
    """Check files against their published sha256 where one is known (hashed once per process)."""

    # ---- generated sets with factor labels (data.name: tetrominoes; see vaelab.data.tetrominoes) ----

    split_kind: Literal["random", "checkerboard"] = "random"
    """tetrominoes: ``random`` = a random half of the images is the test split (in-distribution);
    ``checkerboard`` = an image is a test image iff the sum of its 5 factor bin indices is odd (out-of-distribution:
    combinatorial generalisation, Bozkurt et al. 2021)."""

    cache_dir: str | None = None
    """tetrominoes: folder of the rendered cache file (``tetrominoes_v1.npz``). None: ``<data folder>/tetrominoes``
    when the data folder is writable, else ``$XDG_CACHE_HOME/vaelab`` (``~/.cache/vaelab``)."""

    # ---- text corpora (data.name: text, ptb; see vaelab.data.text) ----

    format: Literal["plain", "label_tab"] = "plain"
    """Text: ``plain`` = one tokenised sentence per line (PTB); ``label_tab`` = ``LABEL<TAB>sentence`` per line
    with an integer label >= 0 (Yelp/Yahoo style), kept as ``y`` for probes."""

    vocab_size: int | None = None
    """Text: size of the vocabulary INCLUDING the 4 special tokens <pad>, <s>, </s>, <unk> (= the softmax size);
    the most frequent training words are kept (ties broken alphabetically), the rest become <unk>. None: every
    word type of the training file."""

    vocab_file: str | None = None
    """Text: read the vocabulary from this file (one token per line, most useful first; relative paths are
    relative to the corpus folder) instead of counting the training split. Specials are added in front."""

    max_length: int | None = None
    """Text: longest sentence kept, in words (without <s> and </s>); longer ones are truncated or dropped
    (``length_policy``), counted per split in the data info. Applies to every split, so dropping changes the
    test set: leave it null for numbers comparable with published ones. None: no limit."""

    min_length: int = 1
    """Text: sentences with fewer words are dropped (counted per split)."""

    length_policy: Literal["truncate", "drop"] = "drop"
    """Text: what happens to sentences longer than ``max_length``."""

    unk_token: str | None = None
    """Text: the corpus's own unknown-word token (e.g. Yahoo's ``_UNK``); every occurrence is read as vaelab's
    ``<unk>``, so it counts in the reported unknown rate and never becomes a vocabulary word. PTB's ``<unk>`` is
    vaelab's already. None: no such token."""

    labels_as_words: bool = False
    """Text, ``format: plain``: a file whose lines mostly look like ``LABEL<TAB>sentence`` (an integer, then a TAB)
    is refused, since read as plain text its labels would become words; ``true`` reads such leading numbers as
    ordinary words (the file really is plain text whose sentences start with a number and a TAB)."""

    lowercase: bool = False
    """Text: lower-case every word before the vocabulary lookup (PTB is already lower-case)."""

    skip_malformed: bool = False
    """Text: skip (and count) empty lines and lines with a bad label instead of raising a DataError that names
    the file and line."""

    bucketing: Literal["pool", "exact", "none"] = "pool"
    """Text training batches: ``pool`` sorts by length within random pools of 50 batches, then shuffles the
    batches (every batch full but the last); ``exact`` groups sentences of exactly equal length (He et al.
    2019), so there is no padding at all but tail batches of each length are smaller; ``none`` cuts a random
    order into batches, so every batch is a uniform sample of the corpus (more padding; BN-VAE's batch
    statistics need it: length-sorted batches let its encoder hide information between batches)."""
