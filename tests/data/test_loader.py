"""BatchLoader: dynamic binarisation, determinism, resuming, DDP-style sharding, evaluation binarisation."""

from __future__ import annotations

import pytest
import torch

from vaelab.data import Batch, BatchLoader, Split
from vaelab.data.loader import binarize_once, shard_bounds


@pytest.fixture(scope="module")
def grey() -> Split:
    """200 grey-level 1x6x6 images (uint8) with labels."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (200, 1, 6, 6), generator=g, dtype=torch.uint8)
    return Split(x, torch.arange(200) % 7)


def _collect(loader: BatchLoader, epoch: int, start: int = 0) -> list[Batch]:
    return list(loader.epoch(epoch, start_batch=start))


def _same(a: list[Batch], b: list[Batch]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(p.x, q.x) and torch.equal(p.index, q.index) and torch.equal(p.y, q.y)
        for p, q in zip(a, b, strict=True)
    )


def test_len_and_drop_last(grey: Split) -> None:
    assert len(BatchLoader(grey, 64, shuffle=True, binarize="none", seed=0)) == 4
    assert len(BatchLoader(grey, 64, shuffle=True, binarize="none", seed=0, drop_last=True)) == 3
    batches = _collect(BatchLoader(grey, 64, shuffle=False, binarize="none", seed=0), 0)
    assert [len(b) for b in batches] == [64, 64, 64, 8]
    assert torch.equal(torch.cat([b.index for b in batches]), torch.arange(200))
    b = batches[0]
    assert b.x.dtype == torch.float32 and b.x.shape == (64, 1, 6, 6) and b.y.dtype == torch.int64
    assert torch.allclose(b.x, grey.x[:64].float() / 255)


def test_shuffle_is_a_permutation_per_epoch(grey: Split) -> None:
    loader = BatchLoader(grey, 32, shuffle=True, binarize="none", seed=3)
    idx0 = torch.cat([b.index for b in loader.epoch(0)])
    idx1 = torch.cat([b.index for b in loader.epoch(1)])
    assert sorted(idx0.tolist()) == list(range(200)) and not torch.equal(idx0, idx1)
    assert torch.equal(idx0, torch.cat([b.index for b in loader.epoch(0)]))
    for b in loader.epoch(0):
        assert torch.equal(b.y, grey.y[b.index])


def test_dynamic_binarisation_statistics_and_determinism(grey: Split) -> None:
    loader = BatchLoader(grey, 50, shuffle=True, binarize="dynamic", seed=11)
    e0, e0_again, e1 = _collect(loader, 0), _collect(loader, 0), _collect(loader, 1)
    assert _same(e0, e0_again)
    for b in e0:
        assert set(b.x.unique().tolist()) <= {0.0, 1.0}
    # mean over many epochs approaches the intensity of each pixel
    n_epochs = 60
    acc = torch.zeros(grey.x.shape)
    for e in range(n_epochs):
        for b in loader.epoch(e):
            acc[b.index] += b.x
    p = grey.x.float() / 255
    assert abs(acc.mean() / n_epochs - p.mean()) < 0.01
    assert (acc / n_epochs - p).abs().max() < 0.3
    # different epochs resample different pixels (same images compared)
    x0 = torch.zeros(grey.x.shape)
    x1 = torch.zeros(grey.x.shape)
    for b in e0:
        x0[b.index] = b.x
    for b in e1:
        x1[b.index] = b.x
    assert (x0 != x1).float().mean() > 0.2
    # another seed, another sample
    other = _collect(BatchLoader(grey, 50, shuffle=True, binarize="dynamic", seed=12), 0)
    assert not _same(e0, other)


def test_threshold_static_none(grey: Split) -> None:
    b = next(BatchLoader(grey, 200, shuffle=False, binarize="threshold", seed=0).epoch(0))
    assert torch.equal(b.x, (grey.x.float() / 255 > 0.5).float())
    with pytest.raises(ValueError, match="binarize='static' needs a split whose values are already 0/1"):
        BatchLoader(grey, 10, shuffle=False, binarize="static", seed=0)
    binary = Split((grey.x > 127).to(torch.uint8) * 255, grey.y)
    b = next(BatchLoader(binary, 200, shuffle=False, binarize="static", seed=0).epoch(0))
    assert torch.equal(b.x, (grey.x > 127).float())
    with pytest.raises(ValueError, match="unknown binarize 'bernoulli'; valid choices: dynamic, static"):
        BatchLoader(grey, 10, shuffle=False, binarize="bernoulli", seed=0)


@pytest.mark.parametrize("binarize", ["dynamic", "none"])
@pytest.mark.parametrize(("batch_size", "world_size", "drop_last"), [(32, 2, False), (30, 4, False), (64, 3, True)])
def test_ddp_shards_union_equals_single_process(
    grey: Split, binarize: str, batch_size: int, world_size: int, drop_last: bool
) -> None:
    kw = dict(shuffle=True, binarize=binarize, seed=5, drop_last=drop_last)
    single = _collect(BatchLoader(grey, batch_size, **kw), 2)
    ranks = [_collect(BatchLoader(grey, batch_size, rank=r, world_size=world_size, **kw), 2) for r in range(world_size)]
    assert all(len(r) == len(single) for r in ranks)
    for i, whole in enumerate(single):
        parts = [r[i] for r in ranks]
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
        assert torch.equal(torch.cat([p.index for p in parts]), whole.index)
        assert torch.equal(torch.cat([p.x for p in parts]), whole.x)
        assert torch.equal(torch.cat([p.y for p in parts]), whole.y)


def test_shard_bounds_match_tensor_split() -> None:
    for n in range(0, 12):
        for ws in range(1, 5):
            chunks = torch.tensor_split(torch.arange(n), ws)
            for r in range(ws):
                lo, hi = shard_bounds(n, r, ws)
                assert torch.equal(torch.arange(lo, hi), chunks[r])


@pytest.mark.parametrize("binarize", ["dynamic", "none"])
def test_resume_equals_tail(grey: Split, binarize: str) -> None:
    for world_size in (1, 2):
        for rank in range(world_size):
            loader = BatchLoader(grey, 24, shuffle=True, binarize=binarize, seed=9, rank=rank, world_size=world_size)
            full = _collect(loader, 4)
            for k in (0, 3, len(loader) - 1, len(loader)):
                assert _same(_collect(loader, 4, start=k), full[k:])


def test_eval_binarisation_fixed_across_epochs_and_seeds(grey: Split) -> None:
    def mk(seed: int) -> BatchLoader:
        return BatchLoader(grey, 64, shuffle=False, binarize="dynamic", seed=seed, eval_binarize_seed=7)

    a, b, c = _collect(mk(0), 0), _collect(mk(0), 5), _collect(mk(123), 0)
    xa, xb, xc = (torch.cat([q.x for q in r]) for r in (a, b, c))
    assert torch.equal(xa, xb) and torch.equal(xa, xc)
    assert set(xa.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(xa, binarize_once(grey.x, 7).float() / 255)
    assert not torch.equal(binarize_once(grey.x, 7), binarize_once(grey.x, 8))
    assert abs(xa.mean() - grey.x.float().mean() / 255) < 0.02
    # sharded evaluation sees the same fixed binarisation
    r1 = BatchLoader(grey, 64, shuffle=False, binarize="dynamic", seed=0, eval_binarize_seed=7, rank=1, world_size=2)
    first = next(r1.epoch(0))
    assert torch.equal(first.x, a[0].x[32:])


def test_float_split_and_small_last_batch(grey: Split) -> None:
    fl = Split(grey.x[:5].float() / 255, None)
    loaders = [BatchLoader(fl, 4, shuffle=False, binarize="dynamic", seed=0, rank=r, world_size=3) for r in range(3)]
    last = [list(lo.epoch(0))[-1] for lo in loaders]
    assert [len(b) for b in last] == [1, 0, 0] and last[0].y is None
    assert last[1].x.shape == (0, 1, 6, 6)
    with pytest.raises(ValueError, match="intensities in"):
        BatchLoader(Split(fl.x * 2, None), 4, shuffle=False, binarize="dynamic", seed=0)


def test_argument_checks(grey: Split) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(grey, 0, shuffle=False, binarize="none", seed=0)
    with pytest.raises(ValueError, match="rank"):
        BatchLoader(grey, 4, shuffle=False, binarize="none", seed=0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="non-negative"):
        BatchLoader(grey, 4, shuffle=False, binarize="none", seed=-1)
