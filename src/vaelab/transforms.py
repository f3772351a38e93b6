"""Semantics-preserving random transformations t(x) on batches, for consistency regularisation.

Consistency regularisation (Sinha & Dieng, "Consistency Regularization for Variational Auto-Encoders", NeurIPS
2021) asks the encoder to give a transformed example t(x) nearly the posterior of x, for transformations t that do
not change what x means. This module supplies such t as **policies**: callables ``t(x, generator) -> x'`` on a
whole batch, every random draw taken from the ``torch.Generator`` passed in (CPU generator; the parameters are
moved to the batch's device), so a policy is deterministic under a seed.

Image policies act on float tensors (B, C, H, W) through batched affine grids (``F.affine_grid`` /
``F.grid_sample``; no PIL, no torchvision):

- ``simple``: random affine, rotation U(-15, 15) degrees, translation U(-5, 5) % of the width/height on each axis,
  isotropic scale U(0.9, 1.1) (the paper's "simple" augmentation);
- ``large``: rotation ±30 degrees, translation ±10 %, scale U(0.75, 1.25) (the paper's "large" one);
- ``affine``: the same with your own ``rotation`` (degrees), ``translation`` (fraction) and ``scale`` ranges;
- ``crop_shift``: pad by ``max_shift`` pixels and crop back at a random offset, i.e. a whole-pixel translation by
  U{-max_shift..max_shift} on each axis (exact: pixels are moved, never interpolated);
- ``pixel_flip``: flip each pixel of a binary image with probability ``p`` (salt-and-pepper noise);
- ``compose``: ``policies: [...]`` applied in order;
- ``identity``: t(x) = x (the known-answer case: the consistency KL is exactly 0).

Binary data. Bilinear interpolation of a 0/1 image gives grey levels, and a Bernoulli decoder scores a grey image
as a (non-normalised) continuous cross-entropy, not as a binary image. So with ``rebinarize="auto"`` (default) a
batch whose values are all 0 or 1 is re-binarised after interpolation by thresholding at 0.5 (deterministic; keeps
stroke width); ``"bernoulli"`` draws x' ~ Bernoulli(interpolated value) from the generator instead, ``"threshold"``
always thresholds, ``"none"`` never re-binarises. ``interpolation="nearest"`` keeps 0/1 values without
re-binarisation. Non-binary data are never re-binarised under ``"auto"``. Pixels moved in from outside the image
are 0 (``padding="zeros"``, right for MNIST-like black backgrounds) or copies of the border (``"border"``).

Text policies act on the token batches of :mod:`vaelab.data.text` (:class:`~vaelab.data.text.TokenBatch`:
``<s> w_1 .. w_n </s> <pad>..``); the functions :func:`word_dropout` and :func:`word_swap` work on bare
(token ids, lengths) tensors too. ``<s>``, ``</s>`` and ``<pad>`` are never touched, so lengths do not change:

- ``word_dropout``: each word becomes ``<unk>`` with probability ``p`` (default 0.1);
- ``word_swap``: adjacent words are swapped with probability ``p`` per pair (non-overlapping, left to right);
- ``text``: word dropout then word swap, 0.1 each.

These are much weaker than the image policies: a word replaced or two words swapped can change a sentence's
meaning (negation, agreement), and the paper evaluates consistency regularisation on images only. Treat text
results as exploratory.

Select a policy by name (``"simple"``) or by a mapping with options (``{name: affine, rotation: 20}``); see
:func:`build_transform`. Unknown names and options raise errors that name the config key and the valid choices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from vaelab.data.text import UNK_ID, TokenBatch
from vaelab.errors import ConfigError, UserError
from vaelab.options import Options, setting
from vaelab.registry import Registry
from vaelab.rules import MAX_UNITS, Int, Items, Num

Rebinarize = Literal["auto", "threshold", "bernoulli", "none"]
REBINARIZE_MODES: tuple[str, ...] = ("auto", "threshold", "bernoulli", "none")
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "nearest")
PADDINGS: tuple[str, ...] = ("zeros", "border")


class Transform(Protocol):
    """A random transformation of a whole batch; every random draw comes from ``generator``."""

    def __call__(self, x: Any, generator: torch.Generator) -> Any: ...


TRANSFORMS: Registry[Callable[..., Transform]] = Registry("transformation policy")


# --------------------------------------------------------------------------------------------------------
# helpers


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """n draws of U(low, high), float32 on the CPU, from ``generator``."""
    return low + (high - low) * torch.rand(n, generator=generator)


def _require_images(x: Any, policy: str) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
        got = type(x).__name__ if not isinstance(x, Tensor) else f"a {x.dtype} tensor of shape {tuple(x.shape)}"
        hint = " (for text token batches use word_dropout, word_swap or text)" if isinstance(x, TokenBatch) else ""
        raise TypeError(f"transformation policy {policy!r} needs float image tensors (B, C, H, W); got {got}{hint}")
    return x


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: {value!r} is not a valid choice; valid choices: {', '.join(choices)}")


def is_binary_batch(x: Tensor) -> bool:
    """Whether every value of ``x`` is exactly 0 or 1."""
    return bool(((x == 0) | (x == 1)).all())


def rebinarize(x: Tensor, mode: str, generator: torch.Generator | None = None, *, was_binary: bool = True) -> Tensor:
    """Map interpolated grey levels back to {0, 1}: ``threshold`` (x >= 0.5), ``bernoulli`` (x' ~ Bernoulli(x),
    draws from ``generator``), ``none`` (unchanged), ``auto`` (threshold when the input ``was_binary``)."""
    if mode not in REBINARIZE_MODES:
        raise ConfigError(f"rebinarize: {mode!r} is not a valid choice; valid choices: {', '.join(REBINARIZE_MODES)}")
    if mode == "none" or (mode == "auto" and not was_binary):
        return x
    if mode == "bernoulli":
        u = torch.rand(x.shape, generator=generator).to(x.device)
        return (u < x.clamp(0.0, 1.0)).to(x.dtype)
    return (x >= 0.5).to(x.dtype)


# --------------------------------------------------------------------------------------------------------
# affine maps of image batches


def affine_theta(angle_deg: Tensor, translate_px: Tensor, scale: Tensor, height: int, width: int) -> Tensor:
    """The (B, 2, 3) matrices ``F.affine_grid`` needs (``align_corners=False``) for the forward map

        p' = s R(angle) p + t        (pixel units, origin at the image centre, u to the right, v down)

    which rotates the content **counter-clockwise as displayed** by ``angle_deg`` about the image centre, scales it
    by ``scale`` and then moves it by ``translate_px`` = (right, down) pixels. ``F.grid_sample`` needs the inverse
    map, output -> input: p = R^T (p' - t) / s, written in normalised coordinates x_n = u / (W / 2),
    y_n = v / (H / 2), i.e. A = D^-1 R^T D / s and b = -D^-1 R^T t / s with D = diag(W / 2, H / 2).
    Displayed counter-clockwise rotation in (u, v-down) coordinates is R = [[cos, sin], [-sin, cos]].
    """
    a = torch.deg2rad(angle_deg.to(torch.float64))
    c, s = torch.cos(a), torch.sin(a)
    sc = scale.to(torch.float64)
    t = translate_px.to(torch.float64)
    hw, hh = width / 2.0, height / 2.0
    # R^T = [[c, -s], [s, c]]; A = D^-1 R^T D / s
    a00 = c / sc
    a01 = -s * hh / hw / sc
    a10 = s * hw / hh / sc
    a11 = c / sc
    # b = -D^-1 R^T t / s
    b0 = -(c * t[:, 0] - s * t[:, 1]) / hw / sc
    b1 = -(s * t[:, 0] + c * t[:, 1]) / hh / sc
    theta = torch.stack([torch.stack([a00, a01, b0], -1), torch.stack([a10, a11, b1], -1)], -2)
    return theta


def affine_images(
    x: Tensor,
    angle_deg: Tensor,
    translate_px: Tensor,
    scale: Tensor,
    *,
    interpolation: str = "bilinear",
    padding: str = "zeros",
) -> Tensor:
    """Apply one affine map per example to a batch (B, C, H, W) (see :func:`affine_theta` for the conventions):
    ``angle_deg`` (B,) degrees counter-clockwise, ``translate_px`` (B, 2) pixels (right, down), ``scale`` (B,).
    No re-binarisation here (see :func:`rebinarize`)."""
    _check_choice("interpolation", interpolation, INTERPOLATIONS)
    _check_choice("padding", padding, PADDINGS)
    b, _, h, w = x.shape
    theta = affine_theta(angle_deg.reshape(b), translate_px.reshape(b, 2), scale.reshape(b), h, w)
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode=interpolation, padding_mode=padding, align_corners=False)


@dataclass(frozen=True)
class AffineParams:
    """One draw of a random affine policy: ``angle`` (B,) degrees, ``translate`` (B, 2) fractions of (W, H),
    ``scale`` (B,)."""

    angle: Tensor
    translate: Tensor
    scale: Tensor


def _check_range(name: str, value: Sequence[float], low: float, high: float) -> tuple[float, float]:
    if len(value) != 2 or not low <= float(value[0]) <= float(value[1]) <= high:
        raise ConfigError(f"{name} must be [min, max] with {low} <= min <= max <= {high}, got {list(value)}")
    return float(value[0]), float(value[1])


class RandomAffine:
    """Random rotation, translation and isotropic scale, drawn independently per example (uniform on each range).

    ``rotation``: max |angle| in degrees; ``translation``: max |shift| as a fraction of the width (x) and height
    (y), drawn independently; ``scale``: [min, max]. ``interpolation``, ``padding``, ``rebinarize``: see the
    module docstring.
    """

    def __init__(
        self,
        rotation: float = 15.0,
        translation: float = 0.05,
        scale: Sequence[float] = (0.9, 1.1),
        *,
        interpolation: str = "bilinear",
        padding: str = "zeros",
        rebinarize: Rebinarize = "auto",
    ) -> None:
        if not 0.0 <= rotation <= 180.0:
            raise ConfigError(f"rotation must be a maximum angle in [0, 180] degrees, got {rotation}")
        if not 0.0 <= translation <= 1.0:
            raise ConfigError(f"translation must be a fraction of the image size in [0, 1], got {translation}")
        _check_choice("interpolation", interpolation, INTERPOLATIONS)
        _check_choice("padding", padding, PADDINGS)
        if rebinarize not in REBINARIZE_MODES:
            raise ConfigError(
                f"rebinarize: {rebinarize!r} is not a valid choice; valid choices: {', '.join(REBINARIZE_MODES)}"
            )
        self.rotation = float(rotation)
        self.translation = float(translation)
        self.scale = _check_range("scale", scale, 1e-3, 1e3)
        self.interpolation = interpolation
        self.padding = padding
        self.rebinarize = rebinarize

    def sample_params(self, batch: int, generator: torch.Generator) -> AffineParams:
        """Draw angles, translations (fractions) and scales for ``batch`` examples, in that order."""
        angle = _uniform(batch, -self.rotation, self.rotation, generator)
        translate = _uniform(2 * batch, -self.translation, self.translation, generator).view(batch, 2)
        scale = _uniform(batch, self.scale[0], self.scale[1], generator)
        return AffineParams(angle, translate, scale)

    def __call__(self, x: Any, generator: torch.Generator) -> Tensor:
        x = _require_images(x, "affine")
        p = self.sample_params(x.shape[0], generator)
        h, w = x.shape[-2:]
        shift = p.translate * torch.tensor([float(w), float(h)])
        out = affine_images(x, p.angle, shift, p.scale, interpolation=self.interpolation, padding=self.padding)
        return rebinarize(out, self.rebinarize, generator, was_binary=is_binary_batch(x))

    def __repr__(self) -> str:
        return (
            f"RandomAffine(rotation={self.rotation}, translation={self.translation}, scale={list(self.scale)}, "
            f"interpolation={self.interpolation!r}, rebinarize={self.rebinarize!r})"
        )


@TRANSFORMS.register("affine")
def affine_policy(**options: Any) -> Transform:
    """``affine``: :class:`RandomAffine` with the given ranges (defaults: the paper's "simple" ranges)."""
    return RandomAffine(**options)


@TRANSFORMS.register("simple")
def simple_policy(**options: Any) -> Transform:
    """The paper's "simple" augmentation: rotation ±15°, translation ±5 %, scale 0.9–1.1 (Sinha & Dieng 2021)."""
    return RandomAffine(15.0, 0.05, (0.9, 1.1), **options)


@TRANSFORMS.register("large")
def large_policy(**options: Any) -> Transform:
    """The paper's "large" augmentation: rotation ±30°, translation ±10 %, scale 0.75–1.25."""
    return RandomAffine(30.0, 0.10, (0.75, 1.25), **options)


class CropShift:
    """Pad by ``max_shift`` pixels and crop back at a random offset: a whole-pixel translation by independent
    U{-max_shift, ..., max_shift} steps along each axis. Pixels move exactly (binary data stay binary)."""

    def __init__(self, max_shift: int = 2, padding: str = "zeros") -> None:
        if int(max_shift) != max_shift or max_shift < 0:
            raise ConfigError(f"max_shift must be a non-negative integer number of pixels, got {max_shift}")
        _check_choice("padding", padding, PADDINGS)
        self.max_shift = int(max_shift)
        self.padding = padding

    def sample_shifts(self, batch: int, generator: torch.Generator) -> Tensor:
        """(B, 2) integer shifts (right, down) in pixels."""
        return torch.randint(-self.max_shift, self.max_shift + 1, (batch, 2), generator=generator)

    def __call__(self, x: Any, generator: torch.Generator) -> Tensor:
        x = _require_images(x, "crop_shift")
        shifts = self.sample_shifts(x.shape[0], generator)
        return shift_images(x, shifts, padding=self.padding)


def shift_images(x: Tensor, shifts: Tensor, padding: str = "zeros") -> Tensor:
    """Move each image (B, C, H, W) by whole pixels ``shifts`` (B, 2) = (right, down), by indexing (exact)."""
    b, _, h, w = x.shape
    mode = "constant" if padding == "zeros" else "replicate"
    m = int(shifts.abs().max()) if shifts.numel() else 0
    if m == 0:
        return x.clone()
    padded = F.pad(x, (m, m, m, m), mode=mode)
    rows = torch.arange(h).view(1, h) + m - shifts[:, 1].view(b, 1)  # (B, H): source row of each output row
    cols = torch.arange(w).view(1, w) + m - shifts[:, 0].view(b, 1)  # (B, W)
    rows, cols = rows.to(x.device), cols.to(x.device)
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[bi, rows.view(b, h, 1), cols.view(b, 1, w)]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


@TRANSFORMS.register("crop_shift")
def crop_shift_policy(**options: Any) -> Transform:
    """``crop_shift``: :class:`CropShift` (default ±2 pixels, 7 % of a 28-pixel digit)."""
    return CropShift(**options)


class PixelFlip:
    """Flip each pixel of a binary image independently with probability ``p`` (0 <-> 1)."""

    def __init__(self, p: float = 0.01) -> None:
        if not 0.0 <= p <= 0.5:
            raise ConfigError(f"p must be a flip probability in [0, 0.5], got {p}")
        self.p = float(p)

    def __call__(self, x: Any, generator: torch.Generator) -> Tensor:
        x = _require_images(x, "pixel_flip")
        if not is_binary_batch(x):
            raise UserError("transformation policy 'pixel_flip' needs binary (0/1) images")
        flip = (torch.rand(x.shape, generator=generator) < self.p).to(x.device)
        return torch.where(flip, 1.0 - x, x)


@TRANSFORMS.register("pixel_flip")
def pixel_flip_policy(**options: Any) -> Transform:
    """``pixel_flip``: :class:`PixelFlip` (default p = 0.01)."""
    return PixelFlip(**options)


class Identity:
    """t(x) = x."""

    def __call__(self, x: Any, generator: torch.Generator) -> Any:
        return x


@TRANSFORMS.register("identity")
def identity_policy() -> Transform:
    """``identity``: no transformation (testing; the consistency KL is then exactly 0)."""
    return Identity()


class Compose:
    """Apply ``policies`` in order, all drawing from the same generator."""

    def __init__(self, policies: Sequence[Transform]) -> None:
        self.policies = list(policies)

    def __call__(self, x: Any, generator: torch.Generator) -> Any:
        for t in self.policies:
            x = t(x, generator)
        return x


@TRANSFORMS.register("compose")
def compose_policy(policies: Sequence[Any] = ()) -> Transform:
    """``compose``: ``policies: [crop_shift, {name: pixel_flip, p: 0.02}]`` applied in order."""
    if not policies:
        raise ConfigError("compose needs a non-empty list 'policies'")
    return Compose([build_transform(p, key=f"policies[{i}]") for i, p in enumerate(policies)])


# --------------------------------------------------------------------------------------------------------
# text


def _word_mask(tokens: Tensor, lengths: Tensor) -> Tensor:
    """bool (B, L): positions 1 .. n of the words (between ``<s>`` at 0 and ``</s>`` at length - 1)."""
    pos = torch.arange(tokens.shape[1], device=tokens.device).view(1, -1)
    return (pos >= 1) & (pos < lengths.view(-1, 1) - 1)


def word_dropout(tokens: Tensor, lengths: Tensor, p: float, generator: torch.Generator, unk_id: int = UNK_ID) -> Tensor:
    """Replace each word of ``tokens`` (B, L) (``<s> w_1 .. w_n </s> <pad>..``; ``lengths`` (B,) = n + 2) by
    ``unk_id`` with probability ``p``. Markers and padding are never replaced. Returns new token ids (B, L)."""
    u = torch.rand(tokens.shape, generator=generator).to(tokens.device)
    drop = _word_mask(tokens, lengths) & (u < p)
    return torch.where(drop, torch.full_like(tokens, unk_id), tokens)


def word_swap(tokens: Tensor, lengths: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """Swap adjacent words with probability ``p`` per pair: scanning left to right, the pair (i, i + 1) of two
    words is swapped with probability p unless word i was just moved by the swap (i - 1, i) (swaps never
    overlap). Returns new token ids (B, L); lengths, markers and padding are unchanged."""
    b, length = tokens.shape
    words = _word_mask(tokens, lengths)
    pair = torch.zeros_like(words)
    pair[:, :-1] = words[:, :-1] & words[:, 1:]  # i and i + 1 are both words
    u = torch.rand(tokens.shape, generator=generator).to(tokens.device)
    want = pair & (u < p)
    swap = torch.zeros_like(want)
    prev = torch.zeros(b, dtype=torch.bool, device=tokens.device)
    for i in range(length):
        cur = want[:, i] & ~prev
        swap[:, i] = cur
        prev = cur
    src = torch.arange(length, device=tokens.device).expand(b, length).clone()
    src = torch.where(swap, src + 1, src)  # position i takes word i + 1
    moved_right = torch.zeros_like(swap)
    moved_right[:, 1:] = swap[:, :-1]
    src = torch.where(moved_right, src - 1, src)  # position i + 1 takes word i
    return tokens.gather(1, src)


def _require_tokens(x: Any, policy: str) -> TokenBatch:
    if not isinstance(x, TokenBatch):
        raise TypeError(
            f"transformation policy {policy!r} needs a text TokenBatch; got {type(x).__name__} "
            "(for images use simple, large, affine, crop_shift, pixel_flip)"
        )
    return x


def _replace_tokens(x: TokenBatch, tokens: Tensor) -> TokenBatch:
    return TokenBatch(tokens, x.lengths, x.noise, x.seeds)


class WordDropout:
    """Each word becomes ``<unk>`` with probability ``p`` (see :func:`word_dropout`)."""

    def __init__(self, p: float = 0.1) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"p must be a probability in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: Any, generator: torch.Generator) -> TokenBatch:
        x = _require_tokens(x, "word_dropout")
        return _replace_tokens(x, word_dropout(x.tokens, x.lengths, self.p, generator))


class WordSwap:
    """Adjacent words swapped with probability ``p`` per pair (see :func:`word_swap`)."""

    def __init__(self, p: float = 0.1) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"p must be a probability in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: Any, generator: torch.Generator) -> TokenBatch:
        x = _require_tokens(x, "word_swap")
        return _replace_tokens(x, word_swap(x.tokens, x.lengths, self.p, generator))


@TRANSFORMS.register("word_dropout")
def word_dropout_policy(**options: Any) -> Transform:
    """``word_dropout``: :class:`WordDropout` (default p = 0.1)."""
    return WordDropout(**options)


@TRANSFORMS.register("word_swap")
def word_swap_policy(**options: Any) -> Transform:
    """``word_swap``: :class:`WordSwap` (default p = 0.1)."""
    return WordSwap(**options)


@TRANSFORMS.register("text")
def text_policy(dropout: float = 0.1, swap: float = 0.1) -> Transform:
    """``text``: word dropout (``dropout``) then adjacent-word swaps (``swap``). Weaker than the image policies
    (see the module docstring)."""
    return Compose([WordDropout(dropout), WordSwap(swap)])


# --------------------------------------------------------------------------------------------------------
# declared options and modality of each policy (checked when the config is loaded)


@dataclass
class ImagePolicyOptions(Options):
    """The options of ``simple`` and ``large`` (fixed ranges): how pixels are resampled."""

    interpolation: Literal["bilinear", "nearest"] = "bilinear"
    padding: Literal["zeros", "border"] = "zeros"
    rebinarize: Literal["auto", "threshold", "bernoulli", "none"] = "auto"


SCALE_RANGE = Items(item=Num(lo=1e-3, hi=1e3), min_len=2, max_len=2)
"""The rule of ``affine``'s ``scale``: [min, max] (that min <= max is checked by :class:`RandomAffine`)."""


@dataclass
class AffineOptions(ImagePolicyOptions):
    """The options of ``affine``: its ranges, and how pixels are resampled."""

    rotation: float = setting(15.0, Num(lo=0, hi=180))
    translation: float = setting(0.05, Num(lo=0, hi=1))
    scale: list[float] | None = setting(None, SCALE_RANGE)  # noqa: RUF009 (a field(), default None)

    def validate(self, key: str) -> None:
        super().validate(key)
        if self.scale is not None and self.scale[0] > self.scale[1]:
            raise ConfigError(f"{key}.scale must be [min, max] with min <= max, got {self.scale!r}")


@dataclass
class CropShiftOptions(Options):
    """The options of ``crop_shift``."""

    max_shift: int = setting(2, Int(0, MAX_UNITS))  # an image side is at most MAX_UNITS (data.image_shape)
    padding: Literal["zeros", "border"] = "zeros"


@dataclass
class PixelFlipOptions(Options):
    """The options of ``pixel_flip``."""

    p: float = setting(0.01, Num(lo=0, hi=0.5))


@dataclass
class ComposeOptions(Options):
    """The options of ``compose``: the non-empty list ``policies``."""

    policies: list[Any] | None = None

    def validate(self, key: str) -> None:
        super().validate(key)
        if not self.policies:
            raise ConfigError(
                f"{key}.policies must be a non-empty list of policies (names or {{name: ..., options}}), got "
                f"{self.policies!r}"
            )


@dataclass
class WordOptions(Options):
    """The options of ``word_dropout`` and ``word_swap``."""

    p: float = setting(0.1, Num(lo=0, hi=1))


@dataclass
class TextPolicyOptions(Options):
    """The options of ``text``."""

    dropout: float = setting(0.1, Num(lo=0, hi=1))
    swap: float = setting(0.1, Num(lo=0, hi=1))


POLICY_OPTIONS: dict[str, type[Options]] = {
    "simple": ImagePolicyOptions,
    "large": ImagePolicyOptions,
    "affine": AffineOptions,
    "crop_shift": CropShiftOptions,
    "pixel_flip": PixelFlipOptions,
    "identity": Options,
    "compose": ComposeOptions,
    "word_dropout": WordOptions,
    "word_swap": WordOptions,
    "text": TextPolicyOptions,
}
"""The declared options of each built-in policy (:class:`vaelab.options.Options`)."""

POLICY_MODALITY: dict[str, str] = {
    **{n: "image" for n in ("simple", "large", "affine", "crop_shift", "pixel_flip")},
    **{n: "text" for n in ("word_dropout", "word_swap", "text")},
}
"""The data modality each built-in policy transforms (``identity`` and ``compose`` take any: a compose takes
those of its policies)."""

_OWNER_HINT = {
    "simple": " (fixed ranges: use name: affine to set rotation, translation or scale)",
    "large": " (fixed ranges: use name: affine to set rotation, translation or scale)",
}


# --------------------------------------------------------------------------------------------------------
# building from a config


def transform_spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, options) of a policy given as a name or a mapping ``{name: NAME, ...options}``."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        opts = dict(spec)
        return opts.pop("name"), opts
    raise ConfigError(f"a transformation policy is a name or a mapping with a 'name' key; got {spec!r}")


def build_transform(spec: str | Mapping[str, Any], key: str = "transform") -> Transform:
    """The policy ``spec`` describes: a registered name (``"simple"``) or ``{name: NAME, ...options}``.

    ``key`` (the config path) is named in every error, with the valid choices for an unknown name.
    """
    try:
        name, opts = transform_spec(spec)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None
    factory = TRANSFORMS.get(name, key=f"{key}" if isinstance(spec, str) else f"{key}.name")
    declared = POLICY_OPTIONS.get(name)
    if declared is not None:  # keys, types and ranges, each error naming KEY.OPTION
        parsed = declared.parse(opts, key, f"transformation policy {name!r}{_OWNER_HINT.get(name, '')}")
        # an option given as null whose default is null is unset (Options.validate): not passed to the policy
        unset = {f.name for f in dataclasses.fields(declared) if f.default is None}
        opts = {k: v for k, v in parsed.as_kwargs().items() if k in opts and not (v is None and k in unset)}
        if name == "compose":  # the inner policies' errors name their full key
            return Compose([build_transform(p, key=f"{key}.policies[{i}]") for i, p in enumerate(opts["policies"])])
    try:
        return factory(**opts)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key} ({name}): {e}") from None


def policy_modalities(spec: str | Mapping[str, Any]) -> set[str]:
    """The data modalities (``image``, ``text``) the policy ``spec`` needs: a compose needs those of its
    policies; ``identity`` and policies registered without a modality need none."""
    name, opts = transform_spec(spec)
    if name == "compose":
        inner = opts.get("policies")
        out: set[str] = set()
        for p in inner if isinstance(inner, list | tuple) else []:
            out |= policy_modalities(p)
        return out
    return {POLICY_MODALITY[name]} if name in POLICY_MODALITY else set()


def _crop_shifts(spec: str | Mapping[str, Any], path: str = "") -> list[tuple[str, int]]:
    """(key suffix, ``max_shift``) of every ``crop_shift`` in ``spec`` (inside composes too: ``.policies[0]``)."""
    name, opts = transform_spec(spec)
    if name == "compose":
        inner = opts.get("policies")
        items = inner if isinstance(inner, list | tuple) else []
        return [m for i, p in enumerate(items) for m in _crop_shifts(p, f"{path}.policies[{i}]")]
    return [(f"{path}.max_shift", int(opts.get("max_shift", 2)))] if name == "crop_shift" else []


def check_transform_data(
    spec: str | Mapping[str, Any],
    key: str,
    data: str,
    modality: str,
    image_shape: Sequence[int] | None = None,
) -> None:
    """Refuse, in one line naming ``key``, a policy of another modality than the data (``data`` its
    ``data.name``), and a ``crop_shift`` whose ``max_shift`` is at least the image's height or width (every t(x)
    would be moved out of the frame). Call after :func:`build_transform` accepted ``spec``."""
    wrong = sorted(policy_modalities(spec) - {modality})
    if wrong:
        fits = sorted(n for n, m in POLICY_MODALITY.items() if m == modality)
        raise ConfigError(
            f"{key}: transformation policy {describe(spec)} transforms {' and '.join(wrong)} data, but "
            f"data.name={data} holds {modality} data; for {modality} data use {', '.join(fits)} (or a compose of them)"
        )
    if image_shape is not None and len(image_shape) == 3:
        h, w = int(image_shape[1]), int(image_shape[2])
        for where, m in _crop_shifts(spec):
            if m >= min(h, w):
                raise ConfigError(
                    f"{key}{where}={m} (crop_shift) is at least the size of the {h}x{w} images of data.name={data} "
                    f"(shifts up to {m} pixels move whole images out of the frame); use max_shift < {min(h, w)}"
                )


def describe(spec: str | Mapping[str, Any]) -> str:
    """A short stable text for a policy spec (for logs and result files), e.g. ``affine(rotation=20)``."""
    name, opts = transform_spec(spec)
    if not opts:
        return name
    return f"{name}(" + ", ".join(f"{k}={opts[k]!r}" for k in sorted(opts)) + ")"


__all__ = [
    "TRANSFORMS",
    "AffineParams",
    "Compose",
    "CropShift",
    "Identity",
    "PixelFlip",
    "RandomAffine",
    "Transform",
    "WordDropout",
    "WordSwap",
    "affine_images",
    "affine_theta",
    "build_transform",
    "check_transform_data",
    "describe",
    "is_binary_batch",
    "policy_modalities",
    "rebinarize",
    "shift_images",
    "transform_spec",
    "word_dropout",
    "word_swap",
]
