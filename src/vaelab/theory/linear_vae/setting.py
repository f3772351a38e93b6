"""Setting, beta schedules and order parameters of the linear VAE of Ichikawa & Hukushima (AISTATS 2024).

Model (see ``shared/docs/linear-vae.md``, the specification this package implements):

* data (spiked covariance) ``x = sqrt(rho/N) W* c + sqrt(eta) n`` with ``c ~ N(0, I_{M*})``, ``n ~ N(0, I_N)``
  and ``W*^T W* / N = T``;
* encoder mean ``mu = W~ x / sqrt(N)``, data-independent encoder variances ``D`` (length ``M``);
* decoder mean ``W z / sqrt(N)`` with decoder variance fixed at 1;
* the per-sample loss is the negative ELBO with the expectation over ``z`` in closed form, a KL weight ``beta``
  (possibly a schedule ``beta(t)``) and an L2 penalty ``lambda / (2N) (||W||^2 + ||W~||^2)``.

Time ``t`` is measured in SGD steps divided by ``N`` (one fresh sample per step). The order parameters are the
``N``-normalised overlaps ``m = W^T W*/N``, ``d = W~ W*/N``, ``Q = W^T W/N``, ``E = W~ W~^T/N``,
``R = W^T W~^T/N`` and the encoder variances ``D``; they are dimensionless.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "BETA_SCHEDULES",
    "BetaLike",
    "ConstantBeta",
    "LinearBeta",
    "LinearVAESetting",
    "OrderParams",
    "TanhBeta",
    "Trajectory",
    "generalisation_error",
    "make_beta_schedule",
    "make_teacher",
]

# -----------------------------------------------------------------------------------------------------------
# beta schedules
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConstantBeta:
    """``beta(t) = beta`` for all ``t``."""

    beta: float

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        return np.full(np.shape(t), float(self.beta))

    @property
    def final(self) -> float:
        """The value of the schedule as ``t -> infinity``."""
        return float(self.beta)


@dataclass(frozen=True)
class TanhBeta:
    """KL annealing ``beta(t) = beta_final * tanh(gamma t)`` (Ichikawa & Hukushima 2024, Sec. 5).

    ``gamma`` is a rate in units of 1/t (t = SGD steps / N).
    """

    beta_final: float
    gamma: float

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        return self.beta_final * np.tanh(self.gamma * np.asarray(t, dtype=float))

    @property
    def final(self) -> float:
        return float(self.beta_final)


@dataclass(frozen=True)
class LinearBeta:
    """Linear warm-up ``beta(t) = beta_initial + (beta_final - beta_initial) min(1, t / t_ramp)``."""

    beta_final: float
    t_ramp: float
    beta_initial: float = 0.0

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        frac = np.clip(np.asarray(t, dtype=float) / self.t_ramp, 0.0, 1.0)
        return self.beta_initial + (self.beta_final - self.beta_initial) * frac

    @property
    def final(self) -> float:
        return float(self.beta_final)


BetaSchedule = Union[ConstantBeta, TanhBeta, LinearBeta]  # noqa: UP007 (runtime alias)
BetaLike = Union[float, int, ConstantBeta, TanhBeta, LinearBeta, Callable[[np.ndarray], np.ndarray]]  # noqa: UP007
BETA_SCHEDULES: tuple[str, ...] = ("constant", "tanh", "linear")


def make_beta_schedule(
    kind: str,
    beta: float,
    *,
    gamma: float | None = None,
    t_ramp: float | None = None,
    beta_initial: float = 0.0,
) -> BetaSchedule:
    """Build a beta schedule by name.

    Args:
        kind: one of :data:`BETA_SCHEDULES` (``"constant"``, ``"tanh"``, ``"linear"``).
        beta: the constant value, or the final value ``beta_f`` of an annealing schedule.
        gamma: rate of the ``tanh`` schedule, ``beta(t) = beta_f tanh(gamma t)`` (1/t units).
        t_ramp: length of the ``linear`` warm-up, in t units.
        beta_initial: starting value of the ``linear`` warm-up.
    """
    if kind == "constant":
        return ConstantBeta(float(beta))
    if kind == "tanh":
        if gamma is None or not gamma > 0:
            raise ValueError(f"the 'tanh' beta schedule needs gamma > 0, got gamma={gamma!r}")
        return TanhBeta(float(beta), float(gamma))
    if kind == "linear":
        if t_ramp is None or not t_ramp > 0:
            raise ValueError(f"the 'linear' beta schedule needs t_ramp > 0, got t_ramp={t_ramp!r}")
        return LinearBeta(float(beta), float(t_ramp), float(beta_initial))
    raise ValueError(f"unknown beta schedule {kind!r}; valid choices: {', '.join(BETA_SCHEDULES)}")


def _as_schedule(beta: BetaLike) -> Callable[[np.ndarray], np.ndarray]:
    if isinstance(beta, bool):
        raise TypeError("beta must be a number or a schedule, not a bool")
    if isinstance(beta, int | float | np.floating | np.integer):
        if not math.isfinite(float(beta)) or float(beta) < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        return ConstantBeta(float(beta))
    if isinstance(beta, str):
        raise TypeError(
            f"beta={beta!r} is a string; build a schedule with make_beta_schedule(kind, ...) "
            f"with kind in {BETA_SCHEDULES}"
        )
    if callable(beta):
        return beta
    raise TypeError(f"beta must be a number or a callable schedule beta(t), got {type(beta).__name__}")


# ----------------------------------------------------------------------------------------------------------
# setting
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LinearVAESetting:
    """Hyper-parameters of the linear VAE learning-dynamics problem (Ichikawa & Hukushima, AISTATS 2024).

    Attributes:
        M: number of latent variables of the student VAE.
        M_star: number of generative factors of the data (teacher).
        rho: signal strength (the signal adds ``rho T_jj`` to the data variance along factor ``j``).
        eta: background-noise variance (per input dimension).
        T: ``M* x M*`` teacher Gram matrix ``W*^T W* / N`` (default identity). Must be symmetric positive definite.
        lam: L2 weight-decay strength ``lambda`` (the penalty is ``lambda/(2N)(||W||^2 + ||W~||^2)``).
        tau: SGD learning rate for ``W`` and ``W~`` (the variances ``D`` use ``tau / N``).
        beta: KL weight, a number or a schedule ``beta(t)`` (see :func:`make_beta_schedule`).
    """

    M: int = 1
    M_star: int = 1
    rho: float = 1.0
    eta: float = 1.0
    T: np.ndarray | None = None
    lam: float = 0.0
    tau: float = 0.01
    beta: BetaLike = 1.0
    _T: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("M", "M_star"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (math.isfinite(self.rho) and self.rho >= 0):
            raise ValueError(f"rho must be finite and >= 0, got {self.rho!r}")
        if not (math.isfinite(self.eta) and self.eta > 0):
            raise ValueError(f"eta must be finite and > 0, got {self.eta!r}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lam must be finite and >= 0, got {self.lam!r}")
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau must be finite and > 0, got {self.tau!r}")
        if self.T is None:
            T = np.eye(self.M_star)
        else:
            T = np.atleast_2d(np.asarray(self.T, dtype=float))
            if T.shape != (self.M_star, self.M_star):
                raise ValueError(
                    f"T must be an M* x M* matrix = ({self.M_star}, {self.M_star}) (W*^T W*/N), got shape {T.shape}"
                )
            if not np.allclose(T, T.T, atol=1e-12):
                raise ValueError("T must be symmetric (it is the Gram matrix W*^T W*/N)")
            if np.linalg.eigvalsh(T).min() <= 0:
                raise ValueError("T must be positive definite (W* must have full column rank)")
        object.__setattr__(self, "_T", T)
        _as_schedule(self.beta)  # validate

    @property
    def T_matrix(self) -> np.ndarray:
        """The teacher Gram matrix ``T`` as an ``(M*, M*)`` array."""
        return self._T.copy()

    @property
    def K(self) -> np.ndarray:
        """Covariance of the data projected on the teacher directions, ``K = rho T + eta I``."""
        return self.rho * self._T + self.eta * np.eye(self.M_star)

    def beta_at(self, t: np.ndarray | float) -> np.ndarray:
        """The KL weight ``beta(t)`` as a float array of the shape of ``t``."""
        return np.broadcast_to(np.asarray(_as_schedule(self.beta)(t), dtype=float), np.shape(t)).astype(float)

    @property
    def beta_final(self) -> float:
        """``beta`` for a constant schedule, the asymptotic value of an annealing schedule otherwise."""
        sched = _as_schedule(self.beta)
        final = getattr(sched, "final", None)
        return float(final) if final is not None else float(sched(np.asarray(1e12)))

    def with_(self, **changes: object) -> LinearVAESetting:
        """A copy with some fields changed (e.g. ``setting.with_(beta=1.5)``)."""
        if "T" not in changes:
            changes["T"] = self.T
        return replace(self, **changes)


def make_teacher(N: int, T: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Teacher weights ``W*`` of shape ``(N, M*)`` with ``W*^T W* / N = T`` exactly.

    For a single factor the authors' all-ones vector (times ``sqrt(T)``) is used; for several factors a random
    orthonormal frame scaled by ``sqrt(N)`` and multiplied by the Cholesky factor of ``T``.
    """
    T = np.atleast_2d(np.asarray(T, dtype=float))
    m_star = T.shape[0]
    if m_star >= N:
        raise ValueError(f"N={N} must exceed M*={m_star}")
    if m_star == 1:
        return np.full((N, 1), math.sqrt(float(T[0, 0])))
    rng = rng if rng is not None else np.random.default_rng(12345)
    U, _ = np.linalg.qr(rng.standard_normal((N, m_star)))
    return math.sqrt(N) * U @ np.linalg.cholesky(T).T


# ----------------------------------------------------------------------------------------------------------
# order parameters
# ------------------------------------------------------------------------------------------------------------

_FIELDS = ("m", "d", "Q", "E", "R", "D")


@dataclass(frozen=True)
class OrderParams:
    """Order parameters, possibly batched over leading axes (seeds, time points).

    Shapes: ``m, d: (..., M, M*)``; ``Q, E, R: (..., M, M)``; ``D: (..., M)``. See the module docstring for
    definitions (all ``N``-normalised, dimensionless).
    """

    m: np.ndarray
    d: np.ndarray
    Q: np.ndarray
    E: np.ndarray
    R: np.ndarray
    D: np.ndarray

    def __post_init__(self) -> None:
        m = np.asarray(self.m, dtype=float)
        if m.ndim < 2:
            raise ValueError(f"m must have shape (..., M, M*), got {m.shape}")
        M, m_star = m.shape[-2:]
        batch = m.shape[:-2]
        expected = {
            "m": (*batch, M, m_star),
            "d": (*batch, M, m_star),
            "Q": (*batch, M, M),
            "E": (*batch, M, M),
            "R": (*batch, M, M),
            "D": (*batch, M),
        }
        for name in _FIELDS:
            arr = np.asarray(getattr(self, name), dtype=float)
            if arr.shape != expected[name]:
                try:
                    arr = np.broadcast_to(arr, expected[name]).copy()
                except ValueError:
                    raise ValueError(
                        f"order parameter {name} must have shape {expected[name]}, got {arr.shape}"
                    ) from None
            object.__setattr__(self, name, arr)

    # ---- construction -----------------------------------------------------------------------------------------
    @classmethod
    def scalar(cls, m: float, d: float, Q: float, E: float, R: float, D: float = 1.0) -> OrderParams:
        """Order parameters for ``M = M* = 1`` from six numbers."""
        return cls(np.array([[m]]), np.array([[d]]), np.array([[Q]]), np.array([[E]]), np.array([[R]]), np.array([D]))

    @classmethod
    def from_weights(cls, W_enc: np.ndarray, W_dec: np.ndarray, D: np.ndarray, W_star: np.ndarray) -> OrderParams:
        """Order parameters of weights ``W~`` ``(..., M, N)``, ``W`` ``(..., N, M)``, teacher ``W*`` ``(N, M*)``."""
        N = W_star.shape[0]
        Wd_t = np.swapaxes(W_dec, -1, -2)
        return cls(
            m=Wd_t @ W_star / N,
            d=W_enc @ W_star / N,
            Q=Wd_t @ W_dec / N,
            E=W_enc @ np.swapaxes(W_enc, -1, -2) / N,
            R=Wd_t @ np.swapaxes(W_enc, -1, -2) / N,
            D=np.asarray(D, dtype=float),
        )

    # ---- shape helpers ----------------------------------------------------------------------------------------
    @property
    def M(self) -> int:
        return int(self.m.shape[-2])

    @property
    def M_star(self) -> int:
        return int(self.m.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.m.shape[:-2])

    def __getitem__(self, idx: object) -> OrderParams:
        if not isinstance(idx, tuple):
            idx = (idx,)
        if len(idx) > len(self.batch_shape):
            raise IndexError(f"too many indices for batch shape {self.batch_shape}")
        return OrderParams(*(getattr(self, f)[idx] for f in _FIELDS))

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> OrderParams:
        """Apply ``fn`` to every field array."""
        return OrderParams(*(fn(getattr(self, f)) for f in _FIELDS))

    def mean(self, axis: int = 0) -> OrderParams:
        """Mean over a batch axis (counted among the leading batch axes)."""
        if not 0 <= axis < len(self.batch_shape):
            raise ValueError(f"axis {axis} is not a batch axis of batch shape {self.batch_shape}")
        return self.map(lambda a: a.mean(axis=axis))

    def flip_signs(self, signs: np.ndarray) -> OrderParams:
        """Apply the latent sign symmetry ``(W_k, W~_k) -> s_k (W_k, W~_k)``, ``signs`` of shape ``(..., M)``."""
        s = np.asarray(signs, dtype=float)
        outer = s[..., :, None] * s[..., None, :]
        return OrderParams(
            s[..., :, None] * self.m,
            s[..., :, None] * self.d,
            outer * self.Q,
            outer * self.E,
            outer * self.R,
            self.D.copy(),
        )

    def eps_g(self, rho: float, T: np.ndarray | None = None) -> np.ndarray:
        """Generalisation error, see :func:`generalisation_error`."""
        return generalisation_error(self.m, self.Q, rho, T)

    def latent_mean_covariance(self, rho: float, eta: float) -> np.ndarray:
        """``S_mm = E[mu mu^T] = rho d d^T + eta E`` (shape ``(..., M, M)``)."""
        return rho * self.d @ np.swapaxes(self.d, -1, -2) + eta * self.E

    def columns(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Flatten into named columns (``m_1_1``, ``Q_1_2``, ``D_1``, ... 1-based) for CSV export."""
        cols: dict[str, np.ndarray] = {}
        for name in _FIELDS:
            arr = getattr(self, name)
            if name == "D":
                for k in range(self.M):
                    cols[f"{prefix}D_{k + 1}"] = arr[..., k]
                continue
            for i in range(arr.shape[-2]):
                for j in range(arr.shape[-1]):
                    cols[f"{prefix}{name}_{i + 1}_{j + 1}"] = arr[..., i, j]
        return cols


def generalisation_error(m: np.ndarray, Q: np.ndarray, rho: float, T: np.ndarray | None = None) -> np.ndarray:
    """Generalisation error ``eps_g = min_P ||sqrt(rho) W* - W P||_F^2 / N`` over signed assignments ``P``.

    Equals ``rho tr T - 2 sqrt(rho) max_assignment sum |m_kj| + tr Q`` (Ichikawa & Hukushima 2024, eq. for
    ``eps_g``; the absolute values implement the sign symmetry). Unmatched latents contribute their ``Q_kk``,
    unmatched factors ``rho T_jj``. ``m``: ``(..., M, M*)``, ``Q``: ``(..., M, M)``; returns shape ``(...)``.
    """
    m = np.asarray(m, dtype=float)
    Q = np.asarray(Q, dtype=float)
    M, m_star = m.shape[-2:]
    T_arr = np.eye(m_star) if T is None else np.atleast_2d(np.asarray(T, dtype=float))
    absm = np.abs(m)
    if M == 1 or m_star == 1:
        matched = absm.max(axis=(-2, -1)) if (M == 1 and m_star == 1) else _greedy_single(absm)
    else:
        flat = absm.reshape(-1, M, m_star)
        matched = np.empty(flat.shape[0])
        for i, a in enumerate(flat):
            rows, cols = linear_sum_assignment(a, maximize=True)
            matched[i] = a[rows, cols].sum()
        matched = matched.reshape(absm.shape[:-2])
    return rho * np.trace(T_arr) - 2.0 * math.sqrt(rho) * matched + np.trace(Q, axis1=-2, axis2=-1)


def _greedy_single(absm: np.ndarray) -> np.ndarray:
    # one latent or one factor: the optimal assignment takes the largest entry
    return absm.max(axis=(-2, -1))


# ----------------------------------------------------------------------------------------------------------
# trajectories
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trajectory:
    """Order parameters on a time grid (from the ODE or from SGD).

    Attributes:
        t: times, shape ``(n_t,)``, in SGD steps / N.
        params: :class:`OrderParams` with batch shape ``(..., n_t)`` (e.g. ``(n_seeds, n_t)`` for SGD).
        setting: the problem the trajectory belongs to.
        label: free-form description ("ode", "ode-drift", "sgd N=1000", ...).
    """

    t: np.ndarray
    params: OrderParams
    setting: LinearVAESetting
    label: str = ""

    @property
    def eps_g(self) -> np.ndarray:
        """Generalisation error along the trajectory, shape ``params.batch_shape``."""
        return self.params.eps_g(self.setting.rho, self.setting.T_matrix)

    def at(self, t: float) -> OrderParams:
        """Order parameters at the recorded time closest to ``t``."""
        i = int(np.argmin(np.abs(self.t - t)))
        lead = (slice(None),) * (len(self.params.batch_shape) - 1)
        return self.params[(*lead, i)]

    def seed(self, i: int) -> Trajectory:
        """The trajectory of one seed (for batched SGD results)."""
        if len(self.params.batch_shape) < 2:
            raise ValueError("this trajectory has no seed axis")
        return Trajectory(self.t, self.params[i], self.setting, f"{self.label} seed {i}")

    def aligned(self) -> Trajectory:
        """Fix the per-latent sign symmetry so that ``sum_j m_kj`` is >= 0 at the last time (per seed)."""
        last = self.params.m[..., -1, :, :].sum(axis=-1)
        signs = np.where(last >= 0, 1.0, -1.0)[..., None, :]  # broadcast over the time axis
        return Trajectory(self.t, self.params.flip_signs(signs), self.setting, self.label)

    def columns(self) -> dict[str, np.ndarray]:
        """Columns for CSV export (time, eps_g and all order parameters) of an unbatched trajectory."""
        if len(self.params.batch_shape) != 1:
            raise ValueError("columns() needs a trajectory with batch shape (n_t,); take .seed(i) or a mean")
        cols = {"t": self.t, "eps_g": self.eps_g}
        cols.update(self.params.columns())
        return cols
