"""TextLoader: every sentence once, few pads, determinism, resume, data-parallel shards, word-dropout noise."""

from __future__ import annotations

import pytest
import torch

from vaelab.data.text import PAD_ID, TextLoader, TextSplit


@pytest.fixture(scope="module")
def split() -> TextSplit:
    """500 sentences of 1..30 words with labels."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 31, (500,), generator=g).tolist()
    sents = [torch.randint(4, 100, (n,), generator=g).tolist() for n in lengths]
    return TextSplit.from_sentences(sents, y=[i % 3 for i in range(500)])


def _batches(loader: TextLoader, epoch: int, start: int = 0):
    return list(loader.epoch(epoch, start_batch=start))


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(p.x.tokens, q.x.tokens)
        and torch.equal(p.x.lengths, q.x.lengths)
        and torch.equal(p.index, q.index)
        and torch.equal(p.y, q.y)
        and p.global_size == q.global_size
        and ((p.x.noise is None and q.x.noise is None) or torch.equal(p.x.noise, q.x.noise))
        for p, q in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("bucketing", ["pool", "exact", "none"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_each_sentence_once_and_tokens_right(split, bucketing, shuffle):
    loader = TextLoader(split, 32, shuffle=shuffle, seed=1, bucketing=bucketing, pool_batches=3, word_noise=shuffle)
    batches = _batches(loader, 0)
    assert len(batches) == len(loader)
    idx = torch.cat([b.index for b in batches])
    assert sorted(idx.tolist()) == list(range(500))
    pads = 0
    for b in batches:
        assert b.global_size == len(b) <= 32
        assert torch.equal(b.y, split.y[b.index])
        assert b.x.sentences() == [split.sentence(int(i)) for i in b.index]
        assert b.x.max_len == int(b.x.lengths.max())  # padded to the batch's longest sentence only
        pads += int((b.x.tokens == PAD_ID).sum())
        if bucketing == "exact":
            assert len(set(b.x.lengths.tolist())) == 1  # He et al.: equal lengths, no padding at all
    if bucketing == "exact":
        assert pads == 0
    elif bucketing == "none" and shuffle:  # uniform random batches: each batch spreads over lengths like the split
        spread = torch.tensor([float(b.x.lengths.float().std()) for b in batches if len(b) > 1]).mean()
        assert spread > 0.7 * float(split.lengths.float().std())
    else:  # sorting within pools: far fewer pads than batches cut from a random order
        perm = torch.randperm(500, generator=torch.Generator().manual_seed(0))
        lens = split.lengths[perm]
        random_pads = sum(int((c.max() - c).sum()) for c in lens.split(32))
        assert pads < 0.5 * random_pads
    if not shuffle:
        assert torch.equal(idx, torch.sort(split.lengths, stable=True).indices)


def test_determinism_epochs_and_len(split):
    loader = TextLoader(split, 32, shuffle=True, seed=3, pool_batches=2, word_noise=True)
    e0, e0b, e1 = _batches(loader, 0), _batches(loader, 0), _batches(loader, 1)
    assert _same(e0, e0b) and not _same(e0, e1)
    assert len(e0) == len(e1) == len(loader) == 16  # ceil(500 / 32), whatever the epoch
    other_seed = _batches(TextLoader(split, 32, shuffle=True, seed=4, pool_batches=2, word_noise=True), 0)
    assert not _same(e0, other_seed)
    exact = TextLoader(split, 32, shuffle=True, seed=3, bucketing="exact")
    assert len(_batches(exact, 0)) == len(_batches(exact, 7)) == len(exact)


@pytest.mark.parametrize("bucketing", ["pool", "exact", "none"])
def test_start_batch_resume_is_the_tail(split, bucketing):
    loader = TextLoader(split, 32, shuffle=True, seed=3, bucketing=bucketing, word_noise=True)
    full = _batches(loader, 2)
    for start in (1, 5, len(full) - 1, len(full)):
        assert _same(_batches(loader, 2, start), full[start:])


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("bucketing", ["pool", "exact", "none"])
def test_shards_union_is_the_one_process_batch(split, world_size, bucketing):
    kw = {"shuffle": True, "seed": 9, "bucketing": bucketing, "word_noise": True}
    one = _batches(TextLoader(split, 30, **kw), 1)
    ranks = [_batches(TextLoader(split, 30, rank=r, world_size=world_size, **kw), 1) for r in range(world_size)]
    # global batches smaller than world_size are dropped so that no rank gets an empty shard
    kept = [b for b in one if len(b) >= world_size]
    assert all(len(r) == len(kept) for r in ranks)
    for b, parts in zip(kept, zip(*ranks, strict=True), strict=True):
        assert all(len(p) >= 1 and p.global_size == len(b) for p in parts)
        assert torch.equal(torch.cat([p.index for p in parts]), b.index)
        assert torch.equal(torch.cat([p.x.tokens for p in parts]), b.x.tokens)
        assert torch.equal(torch.cat([p.x.noise for p in parts]), b.x.noise)
        assert torch.equal(torch.cat([p.y for p in parts]), b.y)


def test_drop_last(split):
    assert len(TextLoader(split, 32, shuffle=True, seed=0, drop_last=True)) == 500 // 32
    exact = TextLoader(split, 32, shuffle=True, seed=0, bucketing="exact", drop_last=True)
    assert all(len(b) == 32 for b in exact.epoch(0))


def test_noise_only_when_asked(split):
    b = next(iter(TextLoader(split, 8, shuffle=False, seed=0).epoch(0)))
    assert b.x.noise is None
    b = next(iter(TextLoader(split, 8, shuffle=True, seed=0, word_noise=True).epoch(0)))
    assert b.x.noise.shape == (8, b.x.max_len - 1) and 0 <= float(b.x.noise.min()) < float(b.x.noise.max()) < 1


def test_bad_arguments(split):
    with pytest.raises(ValueError, match="batch_size"):
        TextLoader(split, 0, shuffle=True, seed=0)
    with pytest.raises(ValueError, match="rank"):
        TextLoader(split, 4, shuffle=True, seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="bucketing"):
        TextLoader(split, 4, shuffle=True, seed=0, bucketing="sorted")
