"""Deterministic ``N -> infinity`` dynamics of the linear VAE order parameters.

Implements the ODE of Ichikawa & Hukushima (AISTATS 2024) for any number of latents ``M``, factors ``M*``,
teacher Gram matrix ``T``, weight decay ``lambda`` and beta schedule ``beta(t)``, with or without the
``tau^2`` (SGD-noise) terms. With ``K = rho T + eta I``, ``S_ss = rho m m^T + eta Q``,
``S_mm = rho d d^T + eta E``, ``S_sm = rho m d^T + eta R``, ``A = S_mm + diag(D) + lambda I``, ``B = Q + beta I``,
``G = S_mm B - S_sm^T`` and ``H = B S_mm B - B S_sm^T - S_sm B + S_ss``::

    dm/dt = tau (d K - A m)
    dd/dt = tau (m K - B d K - lambda d)
    dQ/dt = tau (S_sm + S_sm^T - Q A - A Q)              + tau^2 eta S_mm
    dE/dt = -tau (G + G^T + 2 lambda E)                   + tau^2 eta H
    dR/dt = tau (S_mm - A R - S_sm B + S_ss - lambda R)   - tau^2 eta G
    dD_k/dt = -(tau/2) (Q_kk + beta (1 - 1/D_k))

Time ``t`` is SGD steps / N. ``Q`` and ``E`` are stored by their upper triangles, so they stay exactly symmetric.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from vaelab.errors import UserError
from vaelab.theory.linear_vae.setting import (
    ConstantBeta,
    LinearVAESetting,
    OrderParams,
    Trajectory,
    _as_schedule,
)

__all__ = [
    "AUTHORS_INIT",
    "AUTHORS_ODE_EPS_G",
    "AUTHORS_SGD_EPS_G",
    "AUTHORS_TIMES",
    "DivergenceError",
    "StateLayout",
    "ode_rhs",
    "solve_ode",
]

#: Initial order parameters of the authors' published run (N = 200, tau = 0.01, beta = rho = eta = 1, mean of
#: 5 runs; from linear-vae.md).
AUTHORS_INIT = OrderParams.scalar(m=0.00978, d=0.1217, Q=1.1068, E=0.8613, R=-0.1078, D=1.0)
#: Times and eps_g of the authors' published SGD curve and of the ODE started from :data:`AUTHORS_INIT`.
AUTHORS_TIMES = np.array([0.0, 300.0, 600.0, 900.0, 1200.0, 1490.0])
AUTHORS_SGD_EPS_G = np.array([2.0872, 0.8974, 0.3581, 0.0600, 0.0114, 0.0047])
AUTHORS_ODE_EPS_G = np.array([2.0872, 0.8921, 0.3542, 0.0600, 0.0107, 0.0049])


@dataclass(frozen=True)
class StateLayout:
    """Packing of :class:`OrderParams` into a flat vector: ``m, d, triu(Q), triu(E), R, D``."""

    M: int
    M_star: int

    @property
    def size(self) -> int:
        M, Ms = self.M, self.M_star
        return 2 * M * Ms + M * (M + 1) + M * M + M

    def _triu(self) -> tuple[np.ndarray, np.ndarray]:
        return np.triu_indices(self.M)

    def pack(self, p: OrderParams) -> np.ndarray:
        """Flatten (last axes) a possibly batched :class:`OrderParams` into ``(..., size)``."""
        if (p.M, p.M_star) != (self.M, self.M_star):
            raise ValueError(f"order parameters have M, M* = {p.M}, {p.M_star}, expected {self.M}, {self.M_star}")
        iu = self._triu()
        Qs = 0.5 * (p.Q + np.swapaxes(p.Q, -1, -2))
        Es = 0.5 * (p.E + np.swapaxes(p.E, -1, -2))
        b = p.batch_shape
        return np.concatenate(
            [
                p.m.reshape(*b, -1),
                p.d.reshape(*b, -1),
                Qs[..., iu[0], iu[1]],
                Es[..., iu[0], iu[1]],
                p.R.reshape(*b, -1),
                p.D,
            ],
            axis=-1,
        )

    def unpack(self, y: np.ndarray) -> OrderParams:
        """Inverse of :meth:`pack` (batch axes first, state axis last)."""
        M, Ms = self.M, self.M_star
        y = np.asarray(y, dtype=float)
        b = y.shape[:-1]
        n_mm, n_tri = M * Ms, M * (M + 1) // 2
        o = np.cumsum([0, n_mm, n_mm, n_tri, n_tri, M * M, M])
        iu = self._triu()

        def sym(v: np.ndarray) -> np.ndarray:
            S = np.zeros((*b, M, M))
            S[..., iu[0], iu[1]] = v
            S[..., iu[1], iu[0]] = v
            return S

        return OrderParams(
            m=y[..., o[0] : o[1]].reshape(*b, M, Ms),
            d=y[..., o[1] : o[2]].reshape(*b, M, Ms),
            Q=sym(y[..., o[2] : o[3]]),
            E=sym(y[..., o[3] : o[4]]),
            R=y[..., o[4] : o[5]].reshape(*b, M, M),
            D=y[..., o[5] : o[6]],
        )


def ode_rhs(
    setting: LinearVAESetting, noise_terms: bool = True, beta_fn: Callable[[float], float] | None = None
) -> Callable[[float, np.ndarray], np.ndarray]:
    """Right-hand side ``f(t, y)`` of the order-parameter ODE on the packed state of :class:`StateLayout`.

    Args:
        setting: the problem (``M``, ``M*``, ``rho``, ``eta``, ``T``, ``lam``, ``tau``, ``beta``).
        noise_terms: include the ``tau^2 eta`` SGD-noise terms (they set the late-time floor of ``eps_g``).
        beta_fn: optional override of ``setting.beta`` as a function of ``t``.
    """
    M, Ms = setting.M, setting.M_star
    rho, eta, lam, tau = setting.rho, setting.eta, setting.lam, setting.tau
    K = setting.K
    I_M = np.eye(M)
    sched = _as_schedule(setting.beta) if beta_fn is None else beta_fn
    const_beta = sched.beta if isinstance(sched, ConstantBeta) else None
    noise = tau * tau * eta if noise_terms else 0.0
    layout = StateLayout(M, Ms)
    n_mm, n_tri = M * Ms, M * (M + 1) // 2
    o = np.cumsum([0, n_mm, n_mm, n_tri, n_tri, M * M, M])
    iu0, iu1 = np.triu_indices(M)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        beta = const_beta if const_beta is not None else float(sched(t))
        m = y[o[0] : o[1]].reshape(M, Ms)
        d = y[o[1] : o[2]].reshape(M, Ms)
        Q = np.empty((M, M))
        Q[iu0, iu1] = y[o[2] : o[3]]
        Q[iu1, iu0] = y[o[2] : o[3]]
        E = np.empty((M, M))
        E[iu0, iu1] = y[o[3] : o[4]]
        E[iu1, iu0] = y[o[3] : o[4]]
        R = y[o[4] : o[5]].reshape(M, M)
        D = y[o[5] : o[6]]

        S_ss = rho * (m @ m.T) + eta * Q
        S_mm = rho * (d @ d.T) + eta * E
        S_sm = rho * (m @ d.T) + eta * R
        A = S_mm + np.diag(D) + lam * I_M
        B = Q + beta * I_M
        G = S_mm @ B - S_sm.T
        dm = tau * (d @ K - A @ m)
        dd = tau * (m @ K - B @ d @ K - lam * d)
        QA = Q @ A
        dQ = tau * (S_sm + S_sm.T - QA - QA.T)
        dE = -tau * (G + G.T + 2.0 * lam * E)
        dR = tau * (S_mm - A @ R - S_sm @ B + S_ss - lam * R)
        if noise:
            BSsm = B @ S_sm.T
            H = B @ S_mm @ B - BSsm - BSsm.T + S_ss
            dQ = dQ + noise * S_mm
            dE = dE + noise * H
            dR = dR - noise * G
        dD = -0.5 * tau * (np.diag(Q) + beta * (1.0 - 1.0 / D))
        return np.concatenate([dm.ravel(), dd.ravel(), dQ[iu0, iu1], dE[iu0, iu1], dR.ravel(), dD])

    rhs.layout = layout  # type: ignore[attr-defined]
    return rhs


class DivergenceError(UserError):
    """SGD or its ODE diverged: the learning rate ``tau`` is too large for the setting (``beta``, ``rho``,
    ``eta``), so the order parameters grow without bound instead of learning."""


DIVERGENCE_HINT = (
    "the learning rate tau is too large for this setting (the larger beta, rho and eta, the smaller tau must be: "
    "about tau * beta * eta < 2 for one factor); use a smaller tau"
)
"""What a :class:`DivergenceError` tells to do."""

BLOW_UP = 1e3
"""An order parameter beyond ``BLOW_UP * (1 + rho + eta)`` in magnitude (or not finite) stops the ODE as diverged:
the order parameters of a run that learns or collapses stay of the order of ``rho + eta`` (and of their start),
while a diverging flow grows exponentially, taking ever smaller steps long before it overflows (tau = 0.99 at
beta = 2.5: E = 1e5 at t = 4, one more unit of t taking minutes)."""


def _blow_up(limit: float) -> Callable[[float, np.ndarray], float]:
    """The ODE's terminal event: crosses zero when an order parameter reaches ``limit`` or is not finite."""

    def event(t: float, y: np.ndarray) -> float:
        size = float(np.max(np.abs(y)))
        return limit - size if math.isfinite(size) else -1.0

    event.terminal = True  # type: ignore[attr-defined]
    return event


def _setting_text(setting: LinearVAESetting) -> str:
    beta = setting.beta_final
    return f"tau = {setting.tau:g}, final beta = {beta:g}, rho = {setting.rho:g}, eta = {setting.eta:g}"


def solve_ode(
    setting: LinearVAESetting,
    init: OrderParams,
    t_max: float,
    *,
    t_eval: np.ndarray | None = None,
    n_eval: int = 301,
    noise_terms: bool = True,
    method: str = "DOP853",
    rtol: float = 1e-8,
    atol: float = 1e-11,
) -> Trajectory:
    """Integrate the order-parameter ODE from ``init``.

    Args:
        setting: the problem (any ``M``, ``M*``, ``T``, ``lambda``, beta schedule).
        init: initial order parameters, unbatched or batched (e.g. one per SGD seed, batch shape ``(S,)``);
            use :func:`vaelab.theory.linear_vae.simulate.random_initial_params` for the random initialisation or
            a simulation's own ``trajectory.params[..., 0]``.
        t_max: final time (SGD steps / N).
        t_eval: output times (default ``n_eval`` equally spaced points in ``[0, t_max]``).
        noise_terms: include the ``tau^2`` SGD-noise terms; ``False`` gives the drift-only (``tau -> 0``) flow.
        method, rtol, atol: passed to :func:`scipy.integrate.solve_ivp`.

    Returns:
        A :class:`Trajectory` whose ``params`` have batch shape ``init.batch_shape + (n_t,)``.
    """
    if (init.M, init.M_star) != (setting.M, setting.M_star):
        raise ValueError(
            f"initial order parameters have M, M* = {init.M}, {init.M_star} but the setting has "
            f"M, M* = {setting.M}, {setting.M_star}"
        )
    if np.any(init.D <= 0):
        raise ValueError("initial encoder variances D must be > 0")
    if not t_max > 0:
        raise ValueError(f"t_max must be > 0, got {t_max!r}")
    t_eval = np.linspace(0.0, t_max, n_eval) if t_eval is None else np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or t_eval.size == 0 or t_eval[0] < 0 or t_eval[-1] > t_max or np.any(np.diff(t_eval) < 0):
        raise ValueError("t_eval must be a non-empty increasing 1-D array within [0, t_max]")
    rhs = ode_rhs(setting, noise_terms=noise_terms)
    layout: StateLayout = rhs.layout  # type: ignore[attr-defined]
    y0 = layout.pack(init)
    batch = init.batch_shape
    flat0 = y0.reshape(-1, layout.size)
    out = np.empty((flat0.shape[0], t_eval.size, layout.size))
    limit = BLOW_UP * (1.0 + setting.rho + setting.eta + float(np.max(np.abs(flat0), initial=0.0)))
    for i, y in enumerate(flat0):
        sol = solve_ivp(
            rhs, (0.0, float(t_max)), y, method=method, t_eval=t_eval, rtol=rtol, atol=atol, events=_blow_up(limit)
        )
        if sol.status == 1:  # the blow-up event: the flow diverges (it would take ever smaller steps for ever)
            raise DivergenceError(
                f"the ODE diverged at t = {float(sol.t_events[0][0]):.4g}, {_setting_text(setting)}: {DIVERGENCE_HINT}"
            )
        if not sol.success:
            raise RuntimeError(f"ODE integration failed: {sol.message}")
        out[i] = sol.y.T
    params = layout.unpack(out.reshape(*batch, t_eval.size, layout.size))
    label = "ode" if noise_terms else "ode-drift"
    return Trajectory(t_eval, params, setting, label)
