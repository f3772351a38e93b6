"""Transformation policies: exact geometry (rot90, whole-pixel shifts), ranges, determinism, text, errors."""

from __future__ import annotations

import pytest
import torch

from vaelab.data.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, TokenBatch
from vaelab.registry import UnknownChoiceError
from vaelab.transforms import (
    TRANSFORMS,
    CropShift,
    RandomAffine,
    affine_images,
    build_transform,
    describe,
    is_binary_batch,
    shift_images,
    word_dropout,
    word_swap,
)


def _asymmetric(h: int = 7, w: int = 7, c: int = 1) -> torch.Tensor:
    """An image with no rotational or mirror symmetry: an L shape plus an off-diagonal dot, per channel."""
    x = torch.zeros(1, c, h, w)
    x[:, :, 1:5, 1] = 1.0
    x[:, :, 4, 1:4] = 1.0
    x[:, :, 1, 4] = 0.5
    for k in range(c):
        x[:, k] *= k + 1
    return x


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(7, 7, 1), (6, 6, 2)], ids=["odd", "even_2ch"])
def test_rotation_by_90_degrees_equals_rot90(shape):
    x = _asymmetric(*shape)
    x = torch.cat([x, x.flip(-1)])  # two examples, different patterns
    ones = torch.ones(2)
    ccw = affine_images(x, torch.full((2,), 90.0), torch.zeros(2, 2), ones)
    cw = affine_images(x, torch.full((2,), -90.0), torch.zeros(2, 2), ones)
    half = affine_images(x, torch.full((2,), 180.0), torch.zeros(2, 2), ones)
    assert not torch.allclose(torch.rot90(x, 1, (2, 3)), x)  # the pattern is asymmetric: the test can fail
    torch.testing.assert_close(ccw, torch.rot90(x, 1, (2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(cw, torch.rot90(x, -1, (2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(half, torch.rot90(x, 2, (2, 3)), atol=1e-5, rtol=0)
    near = affine_images(x, torch.full((2,), 90.0), torch.zeros(2, 2), ones, interpolation="nearest")
    assert torch.equal(near, torch.rot90(x, 1, (2, 3)))


def test_identity_parameters_are_the_identity():
    x = torch.rand(3, 2, 5, 8)
    out = affine_images(x, torch.zeros(3), torch.zeros(3, 2), torch.ones(3))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_translation_by_a_whole_pixel_moves_a_single_pixel(interpolation):
    x = torch.zeros(2, 1, 6, 9)  # non-square on purpose
    x[:, 0, 2, 3] = 1.0
    shift = torch.tensor([[1.0, 0.0], [-2.0, 1.0]])  # (right, down)
    out = affine_images(x, torch.zeros(2), shift, torch.ones(2), interpolation=interpolation)
    expected = torch.zeros_like(x)
    expected[0, 0, 2, 4] = 1.0
    expected[1, 0, 3, 1] = 1.0
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    exact = shift_images(x, shift.long())
    assert torch.equal(exact, expected)


def test_scale_about_the_centre():
    # a 2x scale-up maps the pixel one to the right of the centre two to the right (odd size: centre is a pixel);
    # output pixels at odd offsets sample the input half-way between pixels (bilinear weights 0.5 per axis)
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 5] = 1.0
    out = affine_images(x, torch.zeros(1), torch.zeros(1, 2), torch.full((1,), 2.0))
    expected = torch.zeros(9, 9)
    kernel = torch.tensor([0.5, 1.0, 0.5])
    expected[3:6, 5:8] = kernel[:, None] * kernel[None, :]
    torch.testing.assert_close(out[0, 0], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("name", "rot", "trans", "scale"), [("simple", 15, 0.05, (0.9, 1.1)), ("large", 30, 0.10, (0.75, 1.25))]
)
def test_parameter_ranges_respected_and_covered(name, rot, trans, scale):
    policy = build_transform(name)
    assert isinstance(policy, RandomAffine)
    p = policy.sample_params(20_000, _gen(1))
    assert p.angle.abs().max() <= rot and p.angle.abs().max() > 0.99 * rot
    assert p.translate.abs().max() <= trans and p.translate.abs().max() > 0.99 * trans
    assert p.scale.min() >= scale[0] and p.scale.max() <= scale[1]
    assert p.scale.min() < scale[0] + 0.01 and p.scale.max() > scale[1] - 0.01
    assert abs(float(p.angle.mean())) < 0.05 * rot  # symmetric around 0
    # translations are fractions of the image size: a 28-pixel image moves by at most trans * 28 pixels
    assert torch.allclose(p.translate, p.translate.clamp(-trans, trans))


def test_crop_shift_moves_whole_pixels_within_range():
    x = torch.zeros(64, 1, 12, 12)
    x[:, 0, 5, 6] = 1.0
    policy = CropShift(max_shift=2)
    out = policy(x, _gen(2))
    assert is_binary_batch(out) and torch.equal(out.sum((1, 2, 3)), torch.ones(64))
    pos = out[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 12, pos % 12
    assert (rows - 5).abs().max() <= 2 and (cols - 6).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # the shifts vary


def _token_batch() -> TokenBatch:
    return TokenBatch.from_sentences([[10, 11, 12, 13, 14], [20, 21], [30]])


IMAGE_POLICIES = ["simple", "large", "affine", "crop_shift", "pixel_flip", "identity"]
TEXT_POLICIES = ["word_dropout", "word_swap", "text"]


def test_every_registered_policy_is_tested():
    assert sorted([*IMAGE_POLICIES, *TEXT_POLICIES, "compose"]) == TRANSFORMS.names()


@pytest.mark.parametrize("name", IMAGE_POLICIES + TEXT_POLICIES + ["compose"])
def test_deterministic_under_a_seed(name):
    spec = {"name": "compose", "policies": ["crop_shift", "simple"]} if name == "compose" else name
    policy = build_transform(spec)
    if name in TEXT_POLICIES:
        x = TokenBatch.from_sentences([list(range(10, 40))] * 8)
        a, b, c = (policy(x, _gen(s)).tokens for s in (5, 5, 6))
    else:
        x = (torch.rand(8, 1, 10, 10, generator=_gen(9)) < 0.4).float()
        a, b, c = (policy(x, _gen(s)) for s in (5, 5, 6))
    assert torch.equal(a, b)
    if name != "identity":
        assert not torch.equal(a, c)


@pytest.mark.parametrize("name", ["simple", "large"])
def test_binary_images_stay_binary_and_grey_images_are_not_rebinarised(name):
    binary = (torch.rand(16, 1, 14, 14, generator=_gen(3)) < 0.3).float()
    grey = torch.rand(16, 1, 14, 14, generator=_gen(4))
    policy = build_transform(name)
    assert is_binary_batch(policy(binary, _gen(0)))
    assert not is_binary_batch(policy(grey, _gen(0)))
    kept = build_transform({"name": name, "rebinarize": "none"})(binary, _gen(0))
    assert not is_binary_batch(kept)  # interpolation produced grey levels that "auto" removed
    bern = build_transform({"name": name, "rebinarize": "bernoulli"})(binary, _gen(0))
    assert is_binary_batch(bern)


def test_word_dropout_touches_words_only():
    x = _token_batch()
    all_unk = word_dropout(x.tokens, x.lengths, 1.0, _gen())
    words = torch.zeros_like(x.tokens, dtype=torch.bool)
    for i, n in enumerate(x.lengths.tolist()):
        words[i, 1 : n - 1] = True
    assert (all_unk[words] == UNK_ID).all()
    assert torch.equal(all_unk[~words], x.tokens[~words])  # <s>, </s>, <pad> untouched
    assert torch.equal(word_dropout(x.tokens, x.lengths, 0.0, _gen()), x.tokens)
    frac = (word_dropout(torch.full((200, 52), 7), torch.full((200,), 52), 0.3, _gen()) == UNK_ID).float().mean()
    assert abs(float(frac) - 0.3 * 50 / 52) < 0.02


def test_word_swap_swaps_adjacent_pairs_without_overlap():
    x = _token_batch()
    out = word_swap(x.tokens, x.lengths, 1.0, _gen())
    assert out[0].tolist() == [BOS_ID, 11, 10, 13, 12, 14, EOS_ID]
    assert out[1].tolist() == [BOS_ID, 21, 20, EOS_ID, PAD_ID, PAD_ID, PAD_ID]
    assert out[2].tolist() == x.tokens[2].tolist()  # one word: nothing to swap
    rnd = word_swap(torch.arange(100).repeat(30, 1), torch.full((30,), 100), 0.5, _gen())
    assert torch.equal(rnd.sort(1).values, torch.arange(100).repeat(30, 1))  # a permutation of each row
    assert ((rnd - torch.arange(100)).abs() <= 1).all()  # only adjacent moves
    assert torch.equal(rnd[:, [0, 99]], torch.tensor([[0, 99]]).repeat(30, 1))  # markers stay


def test_text_policy_keeps_the_batch_structure():
    x = _token_batch()
    x.noise = torch.rand(3, x.max_len - 1)
    out = build_transform("text")(x, _gen())
    assert isinstance(out, TokenBatch) and torch.equal(out.lengths, x.lengths) and out.noise is x.noise


def test_errors_name_the_key_and_the_choices():
    with pytest.raises(UnknownChoiceError, match=r"'rotate'.*cfg.transform.*valid choices: .*simple"):
        build_transform("rotate", key="cfg.transform")
    with pytest.raises(ValueError, match=r"cfg.transform.bogus: unknown option 'bogus'.*'affine'"):
        build_transform({"name": "affine", "bogus": 1}, key="cfg.transform")
    with pytest.raises(ValueError, match="scale"):
        build_transform({"name": "affine", "scale": [1.2, 0.8]})
    with pytest.raises(ValueError, match="rebinarize"):
        build_transform({"name": "simple", "rebinarize": "sometimes"})
    with pytest.raises(ValueError, match="mapping with a 'name'"):
        build_transform({"rotation": 3})
    with pytest.raises(TypeError, match="word_dropout, word_swap or text"):
        build_transform("simple")(_token_batch(), _gen())
    with pytest.raises(TypeError, match="TokenBatch"):
        build_transform("text")(torch.zeros(2, 1, 4, 4), _gen())
    assert describe({"name": "affine", "rotation": 20}) == "affine(rotation=20)"
