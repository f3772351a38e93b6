"""vaelab: variational autoencoders that do not collapse.

Train VAEs with the published remedies against posterior collapse, measure collapse honestly
(rate, distortion, IW-NLL, mutual information with its pool, active units, hole metrics) and
compare remedies side by side. All quantities are in nats per example unless stated otherwise.

The Python API (:mod:`vaelab.api`, docs/api.md) is available from the package itself and loaded on first use:
``vaelab.train`` (your own encoder and decoder on your own data, into a run folder every command reads),
``vaelab.load_run``, the metrics ``vaelab.evaluate``, ``iw_nll``, ``elbo``, ``mutual_information``,
``active_units``, ``kl_per_dim``, ``hole_metrics``, ``probe``, and ``vaelab.diagnosis`` / ``vaelab.write_report``;
``vaelab.tune_allocator()`` (:mod:`vaelab.allocator`) keeps glibc from mapping each large tensor afresh: the
``vaelab`` command calls it, ``import vaelab`` does not.
"""

from typing import Any

__version__ = "0.1.0"

_API = (
    "ContractError",
    "ContractTypeError",
    "Decoder",
    "Encoder",
    "LoadedRun",
    "MIEstimate",
    "Run",
    "TOKEN_OFFSET",
    "UserData",
    "active_units",
    "as_vae",
    "diagnosis",
    "elbo",
    "evaluate",
    "hole_metrics",
    "iw_nll",
    "kl_per_dim",
    "load_run",
    "mutual_information",
    "posteriors",
    "probe",
    "write_report",
    "tensor_data",
    "token_batch",
    "token_data",
    "train",
)
"""Names of :mod:`vaelab.api` served as ``vaelab.NAME`` (imported lazily, so ``import vaelab`` and the CLI stay
light and import no training code)."""

__all__ = ["__version__", *_API, "tune_allocator"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from vaelab import api

        return getattr(api, name)
    if name == "tune_allocator":  # glibc's allocator for large tensors (vaelab.allocator); never called on import
        from vaelab.allocator import tune_allocator

        return tune_allocator
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API, "tune_allocator"])
