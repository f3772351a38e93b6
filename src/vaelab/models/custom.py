"""The user's own encoder and decoder inside the VAE contract (``model.type: custom``).

The minimal contract a user's modules meet (checked on the first batch, with one-line errors):

- **encoder**: an ``nn.Module`` whose ``encoder(x)`` returns ``(mu, logvar)``, two float tensors of shape (B, D):
  the mean and log-variance of the Gaussian posterior q(z|x);
- **decoder**: an ``nn.Module`` with ``decoder.log_prob(x, z)`` returning log p(x|z) in nats, **one value per
  example** (summed over the data dimensions), shape (B,), for z of shape (B, D);
- optionally ``decoder.sample(z, mean=False)``: x ~ p(x|z) (or its mean), used by reports and generation only.

:class:`UserEncoder` and :class:`UserDecoder` wrap such modules as a vaelab :class:`~vaelab.models.base.Encoder`
and :class:`~vaelab.models.base.Decoder`: they give ``x`` the per-example shape the user's data had, check every
output's type and shape, and evaluate z of shape (S, B, D) (importance sampling) by repeating the batch, so the
user never handles a sample dimension.

How a run folder rebuilds the model: ``model.factory`` in config.yaml names a **factory**, a module-level function
that returns ``(encoder, decoder)`` (or a whole :class:`~vaelab.models.base.VAE`), called with the keyword
arguments ``model.factory_kwargs``. It is written ``package.module:function`` (imported like any module: installed
or on ``PYTHONPATH``) or ``/path/to/file.py:function`` (that file is imported). Loading a run folder of a custom
model imports exactly that one recorded module and nothing else; the weights come from checkpoints read with
``torch.load(weights_only=True)``, which never runs code. As with any code, only load run folders you trust.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vaelab.errors import ConfigError, UserError
from vaelab.models.base import VAE, Decoder, Encoder, batch_size
from vaelab.tokens import TokenBatch

MAX_ROWS_PER_CALL = 8192
"""The most rows (samples x examples) :class:`UserDecoder` passes to the user's ``log_prob`` in one call when it
evaluates z of shape (S, B, D); more samples are taken in groups."""


class ContractError(UserError):
    """A user's encoder or decoder does not meet the contract of :mod:`vaelab.models.custom`; the message says
    what was returned and what is expected (one line; ``vaelab`` commands print it with exit status 2)."""


class ContractTypeError(ContractError, TypeError):
    """A :class:`ContractError` about a wrong type (a module that is not an ``nn.Module``, an output that is not a
    tensor or not a pair); also a TypeError."""


# --------------------------------------------------------------------------------------------------------------
# factories: a callable <-> the string recorded in config.yaml


def factory_spec(factory: Callable[..., Any] | str) -> str:
    """The string that names ``factory`` in config.yaml: ``module:qualname`` for a function of a module importable
    from anywhere (installed, or on ``PYTHONPATH``), else ``/absolute/path/file.py:qualname`` (a script run as
    ``__main__``, a module next to it or in the working directory, a file imported by path). A string is checked
    for its form and returned. Lambdas, nested functions and functions defined interactively cannot be recorded
    (TypeError saying to define the factory at module level in a .py file)."""
    if isinstance(factory, str):
        _split_spec(factory)
        return factory
    if not callable(factory):
        raise TypeError(f"the model factory must be a function or a 'module:function' string, got {factory!r}")
    qual = getattr(factory, "__qualname__", None)
    modname = getattr(factory, "__module__", None)
    if not qual or not modname or "<" in qual:
        raise TypeError(
            f"the model factory {factory!r} is not a module-level function (lambda or nested): define it with "
            "`def` at the top level of a .py file so that the run folder can rebuild the model"
        )
    module = sys.modules.get(modname)
    file = getattr(module, "__file__", None)
    if modname != "__main__" and _importable(modname, file):
        return f"{modname}:{qual}"
    if not file:
        raise TypeError(
            f"the model factory {qual} was defined interactively (module {modname}): define it in a .py file so "
            "that the run folder can rebuild the model"
        )
    return f"{Path(file).resolve()}:{qual}"


def _importable(modname: str, file: str | None) -> bool:
    """Whether ``import modname`` finds ``file`` from any working directory: an entry of sys.path other than the
    working directory and the running script's folder (which another process, e.g. ``vaelab evaluate`` run
    elsewhere, would not have) holds it."""
    if not file:
        return False
    target = Path(file).resolve()
    rel = Path(*modname.split("."))
    local = {Path.cwd().resolve()}
    if sys.argv and sys.argv[0]:
        local.add(Path(sys.argv[0]).resolve().parent)
    for entry in sys.path:
        base = Path(entry or ".").resolve()
        if base in local:
            continue
        for candidate in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
            if candidate == target:
                return True
    return False


def _split_spec(spec: str) -> tuple[str, str]:
    """(module or file, qualified name) of a ``model.factory`` string; a one-line ConfigError."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name or not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError(
            f"model.factory must be 'package.module:function' or '/path/to/file.py:function', got {spec!r}"
        )
    return where, name


def resolve_factory(spec: str) -> Callable[..., Any]:
    """Import the factory that ``spec`` (:func:`factory_spec`) names: the module ``package.module`` (from
    sys.path) or the file ``path.py`` (executed once per process and kept in ``sys.modules`` under a name derived
    from its path), then the attribute path. Errors are one line naming ``model.factory``."""
    where, name = _split_spec(spec)
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.factory: file {path} does not exist (recorded as {spec!r})")
        key = f"_vaelab_factory_{path.stem}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]}"
        module = sys.modules.get(key)
        if module is None:
            loaded = importlib.util.spec_from_file_location(key, path)
            if loaded is None or loaded.loader is None:
                raise ConfigError(f"model.factory: cannot import {path} as Python code")
            module = importlib.util.module_from_spec(loaded)
            sys.modules[key] = module
            try:
                loaded.loader.exec_module(module)
            except BaseException:
                del sys.modules[key]
                raise
    else:
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as e:
            raise ConfigError(
                f"model.factory: cannot import module {where!r} ({e}); install it, add its folder to PYTHONPATH, "
                "or record the factory as '/path/to/file.py:function'"
            ) from None
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"model.factory: {where} has no attribute {name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"model.factory: {spec} is not a function")
    return obj


def _first_line(e: BaseException) -> str:
    """``"RuntimeError: <first line of its message>"``: an exception from inside the user's code, for a one-line
    error (the original stays chained)."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def call_factory(
    spec: str, kwargs: dict[str, Any], kwargs_name: str = "model.factory_kwargs"
) -> VAE | tuple[nn.Module, nn.Module]:
    """Call the factory with ``kwargs`` and check what it returned: a VAE, or (encoder, decoder) modules. An
    exception inside the factory (``nn.Linear(..., -4)`` from a negative latent_dim) is a one-line
    :class:`ContractError` naming the factory and ``kwargs_name`` (how the user gave the kwargs), chained to the
    original, as :func:`_call` does for the first batch."""
    factory = resolve_factory(spec)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as e:
        raise ContractTypeError(f"model.factory_kwargs do not fit {spec}: {e}") from None
    try:
        made = factory(**kwargs)
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as e:
        if isinstance(e, UserError):  # already one line of vaelab's
            raise
        raise ContractError(
            f"the model factory {spec} failed with {kwargs_name} {kwargs!r:.200}: {_first_line(e)} "
            f"(check {kwargs_name})"
        ) from e
    if isinstance(made, VAE):
        return made
    if not (isinstance(made, tuple | list) and len(made) == 2):
        raise ContractTypeError(
            f"the model factory {spec} must return (encoder, decoder) or a vaelab VAE, got {type(made).__name__}"
        )
    enc, dec = made
    check_modules(enc, dec)
    return enc, dec


# --------------------------------------------------------------------------------------------------------------
# the contract


def check_modules(encoder: Any, decoder: Any) -> None:
    """Type checks that need no data: both are ``nn.Module``; the decoder has a callable ``log_prob``."""
    if not isinstance(encoder, nn.Module):
        raise ContractTypeError(f"the encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    if not isinstance(decoder, nn.Module):
        raise ContractTypeError(f"the decoder must be a torch.nn.Module, got {type(decoder).__name__}")
    if not callable(getattr(decoder, "log_prob", None)):
        raise ContractTypeError(
            f"the decoder ({type(decoder).__name__}) needs a method log_prob(x, z) returning log p(x|z) per example "
            "(nats, shape (B,))"
        )


def check_posterior(out: Any, n: int, latent_dim: int | None, who: str = "encoder(x)") -> tuple[Tensor, Tensor]:
    """``(mu, logvar)`` from an encoder's output, checked: a pair of float tensors, each (n, D), D =
    ``latent_dim`` when given. One-line :class:`ContractError` (a ValueError) or TypeError otherwise."""
    if not (isinstance(out, tuple | list) and len(out) == 2 and all(isinstance(t, Tensor) for t in out)):
        got = type(out).__name__ + (f" of {len(out)}" if isinstance(out, tuple | list) else "")
        raise ContractTypeError(f"{who} must return a pair (mu, logvar) of tensors, got {got}")
    mu, logvar = out
    if not (mu.is_floating_point() and logvar.is_floating_point()):
        raise ContractTypeError(f"{who} must return float tensors (mu, logvar), got {mu.dtype} and {logvar.dtype}")
    if mu.dim() != 2 or mu.shape != logvar.shape or mu.shape[0] != n:
        raise ContractError(
            f"{who} must return mu and logvar of shape (B, D) = ({n}, D) each, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}; flatten the latent to one dimension per example"
        )
    if latent_dim is not None and mu.shape[1] != latent_dim:
        raise ContractError(
            f"{who} returned mu of shape {tuple(mu.shape)}, but model.latent_dim is {latent_dim}: set "
            f"model.latent_dim={mu.shape[1]} (or change the encoder)"
        )
    return mu, logvar


def check_log_prob(out: Any, n: int, who: str = "decoder.log_prob(x, z)") -> Tensor:
    """A decoder's log-likelihoods, checked: a float tensor of shape (n,) (one value per example)."""
    if not isinstance(out, Tensor):
        raise ContractTypeError(f"{who} must return a tensor of log p(x|z) per example, got {type(out).__name__}")
    if not out.is_floating_point():
        raise ContractTypeError(f"{who} must return a float tensor, got {out.dtype}")
    if tuple(out.shape) != (n,):
        hint = " (sum over the data dimensions: .flatten(1).sum(1))" if out.dim() > 1 and out.shape[0] == n else ""
        raise ContractError(
            f"{who} must return shape ({n},), one log-likelihood per example, got {tuple(out.shape)}{hint}"
        )
    return out


def check_first_batch(encoder: nn.Module, decoder: nn.Module, x: Any, latent_dim: int | None = None) -> int:
    """Run the user's modules once on a batch ``x`` (training mode, gradients on) and check the whole contract
    before any training: output types and shapes, finite values, and that both outputs depend on the parameters
    (a ``.detach()`` or ``torch.no_grad`` inside would train nothing). Returns the latent dimension D."""
    check_modules(encoder, decoder)
    n = batch_size(x)
    with torch.enable_grad():
        mu, logvar = check_posterior(_call("encoder(x)", encoder, x), n, latent_dim)
        for name, t in (("mu", mu), ("logvar", logvar)):
            if not torch.isfinite(t).all():
                raise ContractError(f"encoder(x) returned non-finite values in {name} on the first batch")
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        lp = check_log_prob(_call("decoder.log_prob(x, z)", decoder.log_prob, x, z), n)
        if not torch.isfinite(lp).all():
            raise ContractError("decoder.log_prob(x, z) returned non-finite values on the first batch")
        if any(p.requires_grad for p in encoder.parameters()) and not mu.requires_grad:
            raise ContractError("encoder(x) returned mu without gradient: remove .detach() / torch.no_grad()")
        if any(p.requires_grad for p in decoder.parameters()) and not lp.requires_grad:
            raise ContractError("decoder.log_prob(x, z) returned values without gradient: remove .detach()")
    return int(mu.shape[1])


def _call(what: str, fn: Any, x: Any, *args: Any, batch: str = "first training batch") -> Any:
    """``fn(x, *args)`` on the first batch; an exception inside the user's code (a shape mismatch: the modules do
    not fit the data) becomes a one-line :class:`ContractError` naming the call and the batch's shape, chained to
    the original (``raise ... from``), so the user's traceback is kept. An AttributeError counts: a module given
    data of another kind (token ids to an image model: ``'TokenBatch' object has no attribute 'flatten'``)."""
    try:
        return fn(x, *args)
    except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as e:
        if isinstance(e, ContractError):
            raise
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ContractError(
            f"{what} failed on the {batch}, x of shape {shape}: {_first_line(e)} (do the modules fit the data's shape?)"
        ) from e


def check_runs_on(what: str, fn: Any, x: Any) -> Any:
    """``fn(x)`` on the first batch of the data a metric is computed on: an exception inside the user's modules is
    a one-line :class:`ContractError` (as :func:`check_first_batch` for training), chained to the original."""
    return _call(what, fn, x, batch="first batch of the data")


# --------------------------------------------------------------------------------------------------------------
# adapters


def _view(x: Any, shape: Sequence[int] | None) -> Any:
    """``x`` (B, C, H, W) as (B, *shape) when the user's data had that per-example shape; else unchanged."""
    if shape is None or not isinstance(x, Tensor) or tuple(x.shape[1:]) == tuple(shape):
        return x
    return x.reshape(x.shape[0], *shape)


def repeat_batch(x: Any, s: int) -> Any:
    """``x`` repeated ``s`` times along the batch (sample-major: row i * B + b is example b): image tensors and
    :class:`~vaelab.data.text.TokenBatch` (and anything with ``repeat_batch(s)``)."""
    if s == 1:
        return x
    if isinstance(x, Tensor):
        return x.repeat(s, *([1] * (x.dim() - 1)))
    if hasattr(x, "repeat_batch"):
        return x.repeat_batch(s)

    if isinstance(x, TokenBatch):
        return TokenBatch(
            x.tokens.repeat(s, 1),
            x.lengths.repeat(s),
            None if x.noise is None else x.noise.repeat(s, 1),
            None if x.seeds is None else x.seeds.repeat(s),
        )
    raise TypeError(f"cannot evaluate several z per example for a batch of type {type(x).__name__}")


class UserEncoder(Encoder):
    """A user's ``encoder(x) -> (mu, logvar)`` module as a vaelab :class:`Encoder` (outputs checked each call)."""

    def __init__(self, module: nn.Module, latent_dim: int, example_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.module = module
        self.latent_dim = int(latent_dim)
        self.example_shape = tuple(example_shape) if example_shape else None

    def forward(self, x: Any) -> tuple[Tensor, Tensor]:
        return check_posterior(self.module(_view(x, self.example_shape)), batch_size(x), self.latent_dim)


class UserDecoder(Decoder):
    """A user's decoder (``log_prob(x, z)`` for z (B, D), optional ``sample``) as a vaelab :class:`Decoder`.

    z of shape (S, B, D) is evaluated by repeating the batch (at most :data:`MAX_ROWS_PER_CALL` rows a call).
    ``sample`` outputs are reshaped to ``image_shape`` (N, C, H, W) for the reports when the data are arrays.
    """

    def __init__(
        self,
        module: nn.Module,
        latent_dim: int,
        example_shape: Sequence[int] | None = None,
        image_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.module = module
        self.latent_dim = int(latent_dim)
        self.example_shape = tuple(example_shape) if example_shape else None
        self.image_shape = tuple(image_shape) if image_shape else None

    def _log_prob(self, x: Any, z: Tensor) -> Tensor:
        return check_log_prob(self.module.log_prob(_view(x, self.example_shape), z), z.shape[0])

    def log_prob(self, x: Any, z: Tensor) -> Tensor:
        if z.dim() == 2:
            return self._log_prob(x, z)
        if z.dim() != 3:
            raise ValueError(f"z must be (B, D) or (S, B, D), got {tuple(z.shape)}")
        s, b, d = z.shape
        group = max(1, min(s, MAX_ROWS_PER_CALL // max(b, 1)))
        parts = []
        for start in range(0, s, group):
            g = min(group, s - start)
            xs = x if g == 1 else repeat_batch(x, g)
            parts.append(self._log_prob(xs, z[start : start + g].reshape(g * b, d)).view(g, b))
        return torch.cat(parts)

    def sample(self, z: Tensor, mean: bool = False) -> Any:
        fn = getattr(self.module, "sample", None)
        if not callable(fn):
            raise NotImplementedError(
                f"the decoder ({type(self.module).__name__}) has no sample(z, mean=False) method; define one to "
                "draw samples and reconstructions"
            )
        out = fn(z, mean=mean)
        if (
            isinstance(out, Tensor)
            and self.image_shape is not None
            and math.prod(out.shape[1:]) == math.prod(self.image_shape)
        ):
            out = out.reshape(out.shape[0], *self.image_shape)
        return out


def wrap_modules(
    encoder: nn.Module,
    decoder: nn.Module,
    latent_dim: int,
    *,
    example_shape: Sequence[int] | None = None,
    image_shape: Sequence[int] | None = None,
    prior: nn.Module | None = None,
) -> VAE:
    """A :class:`VAE` of the user's two modules (each wrapped, unless it already is a vaelab Encoder/Decoder)."""
    check_modules(encoder, decoder)
    enc = encoder if isinstance(encoder, Encoder) else UserEncoder(encoder, latent_dim, example_shape)
    dec = decoder if isinstance(decoder, Decoder) else UserDecoder(decoder, latent_dim, example_shape, image_shape)
    if isinstance(enc, Encoder) and not hasattr(enc, "latent_dim"):
        enc.latent_dim = latent_dim
    if isinstance(dec, Decoder) and not hasattr(dec, "latent_dim"):
        dec.latent_dim = latent_dim
    return VAE(enc, dec, prior)


def build_custom(factory: str | None, kwargs: dict[str, Any], latent_dim: int, info: dict[str, Any]) -> VAE:
    """The model of ``model.type: custom``: the recorded factory called with its kwargs, its modules wrapped for
    the data described by ``info`` (``example_shape`` and ``image_shape`` of array data)."""
    if not factory:
        raise ConfigError(
            "model.type=custom needs model.factory ('package.module:function' or '/path/file.py:function')"
        )
    made = call_factory(factory, dict(kwargs))
    if isinstance(made, VAE):
        if made.latent_dim != latent_dim:
            raise ContractError(
                f"the VAE from {factory} has latent_dim {made.latent_dim}, but model.latent_dim is {latent_dim}"
            )
        return made
    enc, dec = made
    return wrap_modules(
        enc, dec, latent_dim, example_shape=info.get("example_shape"), image_shape=info.get("image_shape")
    )


__all__ = [
    "MAX_ROWS_PER_CALL",
    "ContractError",
    "ContractTypeError",
    "UserDecoder",
    "UserEncoder",
    "build_custom",
    "call_factory",
    "check_first_batch",
    "check_log_prob",
    "check_modules",
    "check_posterior",
    "factory_spec",
    "repeat_batch",
    "resolve_factory",
    "wrap_modules",
]
