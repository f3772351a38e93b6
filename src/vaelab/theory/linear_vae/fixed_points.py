"""Fixed points, collapse threshold, plateau escape and pPCA collapse prediction for the linear VAE.

Closed forms from Ichikawa & Hukushima (AISTATS 2024) for ``M = M* = 1``, ``T = 1``, ``lambda = 0``, ``tau -> 0``
(see ``shared/docs/linear-vae.md``), generalised where the structure allows (diagonal ``T``, any ``M``), plus
numerical tools that work for any setting (fixed points of the full ODE, Jacobian spectra) and the
probabilistic-PCA rule (Lucas et al. 2019) that a data direction with covariance eigenvalue ``lambda_i``
collapses iff ``lambda_i <= beta sigma^2``. Time is SGD steps / N, rates are per unit of that time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import root

from vaelab.theory.linear_vae.ode import StateLayout, ode_rhs
from vaelab.theory.linear_vae.setting import LinearVAESetting, OrderParams

__all__ = [
    "PPCAPrediction",
    "StabilityResult",
    "beta_c",
    "collapse_stability",
    "collapsed_fixed_point",
    "convergence_time",
    "eps_g_star",
    "escape_time",
    "find_fixed_point",
    "jacobian",
    "learning_fixed_point",
    "plateau_escape_rate",
    "ppca_collapse",
    "predicted_plateau_length",
    "superfluous_latent_variance",
    "typical_initial_params",
]


def beta_c(rho: float = 1.0, eta: float = 1.0, T: np.ndarray | None = None, decoder_variance: float = 1.0) -> float:
    """Collapse threshold: posterior collapse is inevitable for ``beta > beta_c``.

    ``beta_c`` is the largest data-covariance eigenvalue over the decoder variance,
    ``lambda_max(rho T + eta I) / sigma^2`` (``= rho + eta`` for one factor with ``T = 1``, ``sigma^2 = 1``).
    """
    if decoder_variance <= 0:
        raise ValueError(f"decoder_variance must be > 0, got {decoder_variance!r}")
    T_arr = np.eye(1) if T is None else np.atleast_2d(np.asarray(T, dtype=float))
    lam_max = float(np.linalg.eigvalsh(rho * T_arr + eta * np.eye(T_arr.shape[0])).max())
    return lam_max / decoder_variance


def learning_fixed_point(beta: float, rho: float = 1.0, eta: float = 1.0) -> OrderParams:
    """Learning fixed point (``M = M* = 1``, ``T = 1``, ``lambda = 0``, ``tau -> 0``).

    ``Q = m^2 = rho + eta - beta``, ``d = m / (rho + eta)``, ``E = d^2``, ``R = m d``, ``D = beta / (rho + eta)``.
    For ``beta >= rho + eta`` the collapsed fixed point is returned (the learning one no longer exists).
    """
    a = rho + eta
    if beta >= a:
        return collapsed_fixed_point()
    m = math.sqrt(a - beta)
    d = m / a
    return OrderParams.scalar(m=m, d=d, Q=m * m, E=d * d, R=m * d, D=beta / a)


def collapsed_fixed_point(M: int = 1, M_star: int = 1) -> OrderParams:
    """The collapsed state ``m = d = Q = E = R = 0``, ``D = 1`` (``eps_g = rho tr T``)."""
    z = np.zeros((M, M_star))
    zz = np.zeros((M, M))
    return OrderParams(z, z.copy(), zz, zz.copy(), zz.copy(), np.ones(M))


def superfluous_latent_variance(beta: np.ndarray | float, eta: float = 1.0) -> np.ndarray:
    """``Q_kk`` a superfluous latent reaches by fitting background noise: ``max(eta - beta, 0)``."""
    return np.maximum(eta - np.asarray(beta, dtype=float), 0.0)


def eps_g_star(
    beta: np.ndarray | float,
    rho: float = 1.0,
    eta: float = 1.0,
    T: np.ndarray | None = None,
    M: int | None = None,
) -> np.ndarray:
    """Generalisation error at the stable ``tau -> 0`` fixed point, as a function of ``beta``.

    For each factor ``j`` matched to a latent: ``(sqrt(rho T_jj) - sqrt(max(rho T_jj + eta - beta, 0)))^2``;
    unmatched factors (``M < M*``; the weakest ones) contribute ``rho T_jj``; each superfluous latent
    (``M > M*``) fits background noise and contributes ``max(eta - beta, 0)``. For ``M = M* = 1`` this is
    ``(sqrt(rho) - sqrt(rho + eta - beta))^2`` (0 at ``beta = eta``) below ``beta_c = rho + eta`` and ``rho``
    above. ``T`` must be diagonal (with a degenerate ``T`` the latent basis is not identifiable and the
    assignment-based ``eps_g`` of a rotated solution is larger).
    """
    b = np.asarray(beta, dtype=float)
    T_arr = np.eye(1) if T is None else np.atleast_2d(np.asarray(T, dtype=float))
    if not np.allclose(T_arr, np.diag(np.diag(T_arr))):
        raise ValueError("eps_g_star needs a diagonal T (factors along orthogonal teacher directions)")
    strengths = np.sort(np.diag(T_arr))[::-1]
    m_star = strengths.size
    M = m_star if M is None else int(M)
    total = np.zeros_like(b)
    for j, tj in enumerate(strengths):
        if j < M:
            total = total + (math.sqrt(rho * tj) - np.sqrt(np.maximum(rho * tj + eta - b, 0.0))) ** 2
        else:
            total = total + rho * tj
    return total + max(M - m_star, 0) * superfluous_latent_variance(b, eta)


def plateau_escape_rate(beta: np.ndarray | float, rho: float = 1.0, eta: float = 1.0, tau: float = 0.01) -> np.ndarray:
    """Growth rate ``lambda_+`` of the overlap on the plateau near the collapsed state.

    With ``a = rho + eta`` and ``b = max(beta, eta)`` (for ``beta < eta`` the latent's norm has already fitted
    noise, ``Q ~ eta - beta``, so the effective ``Q + beta`` is ``eta``)::

        lambda_+ = tau [-(1 + a b) + sqrt((1 - a b)^2 + 4 a^2)] / 2

    Positive iff ``beta < beta_c = a``; it is the unstable eigenvalue of the linearised ``(m, d)`` dynamics.
    """
    a = rho + eta
    b = np.maximum(np.asarray(beta, dtype=float), eta)
    return tau * (-(1.0 + a * b) + np.sqrt((1.0 - a * b) ** 2 + 4.0 * a * a)) / 2.0


def predicted_plateau_length(
    beta: np.ndarray | float, N: int, rho: float = 1.0, eta: float = 1.0, tau: float = 0.01
) -> np.ndarray:
    """Plateau length ``ln(N) / (2 lambda_+)``: the time for ``m`` to grow from ``N^{-1/2}`` to ``O(1)``.

    Infinite for ``beta >= beta_c`` (the plateau never ends: collapse). The measured escape time of the ODE
    differs by an ``O(1)`` factor that depends on where the growth stops (the fixed-point overlap shrinks
    near ``beta_c``), the scaling ``~ ln N / lambda_+`` and the divergence at ``beta_c`` are the content.
    """
    lp = plateau_escape_rate(beta, rho, eta, tau)
    with np.errstate(divide="ignore"):
        return np.where(lp > 0, 0.5 * math.log(N) / np.where(lp > 0, lp, 1.0), np.inf)


def typical_initial_params(setting: LinearVAESetting, N: int) -> OrderParams:
    """Deterministic stand-in for the random initialisation at size ``N``.

    ``Q = E = I``, ``R = 0``, ``D = 1`` and ``m_kj = d_kj = sqrt(T_jj / N)`` (the typical ``O(N^{-1/2})``
    overlap with a common sign, so there is no transient sign alignment). For ``M > 1`` all latents would be
    identical; use :func:`vaelab.theory.linear_vae.simulate.random_initial_params` there.
    """
    M, Ms = setting.M, setting.M_star
    m0 = np.broadcast_to(np.sqrt(np.diag(setting.T_matrix) / N), (M, Ms)).copy()
    return OrderParams(m0, m0.copy(), np.eye(M), np.eye(M), np.zeros((M, M)), np.ones(M))


# ----------------------------------------------------------------------------------------------------------
# numerical fixed points and stability (any M, M*, T, lambda)
# ------------------------------------------------------------------------------------------------------------


def _constant_beta_setting(setting: LinearVAESetting) -> LinearVAESetting:
    return setting.with_(beta=setting.beta_final)


def jacobian(
    setting: LinearVAESetting, point: OrderParams, noise_terms: bool = False, step: float = 1e-6
) -> np.ndarray:
    """Jacobian of the order-parameter ODE (packed state of :class:`StateLayout`) by central differences.

    Uses the final value of ``beta`` for annealing schedules. Units: 1/t.
    """
    rhs = ode_rhs(_constant_beta_setting(setting), noise_terms=noise_terms)
    layout = StateLayout(setting.M, setting.M_star)
    y0 = layout.pack(point)
    n = y0.size
    J = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = step
        J[:, i] = (rhs(0.0, y0 + e) - rhs(0.0, y0 - e)) / (2 * step)
    return J


@dataclass(frozen=True)
class StabilityResult:
    """Linear stability of a fixed point: Jacobian eigenvalues (1/t) and whether all decay."""

    eigenvalues: np.ndarray
    max_real: float
    stable: bool


def collapse_stability(setting: LinearVAESetting, noise_terms: bool = False) -> StabilityResult:
    """Linear stability of the collapsed state ``m = d = Q = E = R = 0``, ``D = 1``.

    For ``M = M* = 1``, ``lambda = 0`` and ``beta >= eta`` the largest eigenvalue is :func:`plateau_escape_rate`,
    so the collapsed state is stable exactly when ``beta > beta_c = rho + eta``. (For ``beta < eta`` it is also
    unstable along ``Q, E, R``: the latent fits background noise.)
    """
    J = jacobian(setting, collapsed_fixed_point(setting.M, setting.M_star), noise_terms=noise_terms)
    ev = np.linalg.eigvals(J)
    max_real = float(ev.real.max())
    return StabilityResult(eigenvalues=ev, max_real=max_real, stable=max_real < 0)


def find_fixed_point(
    setting: LinearVAESetting, guess: OrderParams | None = None, noise_terms: bool = True, tol: float = 1e-12
) -> OrderParams:
    """Solve ``d(order parameters)/dt = 0`` numerically (any ``M``, ``M*``, ``T``, ``lambda``, finite ``tau``).

    With ``noise_terms=True`` this is the finite-learning-rate fixed point whose ``eps_g`` is the late-time floor
    of SGD; the default guess is the ``tau -> 0`` learning fixed point (``M = M* = 1``).
    """
    s = _constant_beta_setting(setting)
    if guess is None:
        if (s.M, s.M_star) != (1, 1):
            raise ValueError("give a guess for M, M* != 1 (e.g. the end of an ODE trajectory)")
        T11 = float(s.T_matrix[0, 0])
        guess = learning_fixed_point(s.beta_final, s.rho * T11, s.eta)
    rhs = ode_rhs(s, noise_terms=noise_terms)
    layout = StateLayout(s.M, s.M_star)
    sol = root(lambda y: rhs(0.0, y), layout.pack(guess), method="hybr", tol=tol)
    if not sol.success:
        raise RuntimeError(f"fixed-point search failed: {sol.message}")
    return layout.unpack(sol.x)


# ----------------------------------------------------------------------------------------------------------
# measurements on trajectories
# ------------------------------------------------------------------------------------------------------------


def escape_time(t: np.ndarray, eps_g: np.ndarray, threshold: float) -> float:
    """First time ``eps_g(t) <= threshold`` (linear interpolation between samples; ``inf`` if never)."""
    t = np.asarray(t, dtype=float)
    e = np.asarray(eps_g, dtype=float)
    below = np.nonzero(e <= threshold)[0]
    if below.size == 0:
        return math.inf
    i = int(below[0])
    if i == 0:
        return float(t[0])
    t0, t1, e0, e1 = t[i - 1], t[i], e[i - 1], e[i]
    return float(t0 + (t1 - t0) * (e0 - threshold) / (e0 - e1))


def convergence_time(t: np.ndarray, eps_g: np.ndarray, target: float, tol: float = 0.01) -> float:
    """Time after which ``|eps_g - target| <= tol`` for good (``inf`` if not reached by the last sample)."""
    t = np.asarray(t, dtype=float)
    outside = np.nonzero(np.abs(np.asarray(eps_g, dtype=float) - target) > tol)[0]
    if outside.size == 0:
        return float(t[0])
    last = int(outside[-1])
    return math.inf if last + 1 >= t.size else float(t[last + 1])


# ----------------------------------------------------------------------------------------------------------
# probabilistic PCA
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PPCAPrediction:
    """Which latent directions of a linear (beta-)VAE collapse, from the data covariance spectrum.

    Attributes:
        eigenvalues: covariance eigenvalues, descending.
        collapsed: boolean mask over ``eigenvalues``: ``lambda_i <= beta sigma^2``.
        n_active: number of directions that do not collapse.
        latent_variances: for the top ``n_latents`` directions, the decoder column norm ``Q_kk``
            ``= max(lambda_i - beta sigma^2, 0)`` of the latent that takes that direction.
        encoder_variances: the matching encoder variances ``D_k = min(beta sigma^2 / lambda_i, 1)``.
    """

    eigenvalues: np.ndarray
    collapsed: np.ndarray
    n_active: int
    latent_variances: np.ndarray
    encoder_variances: np.ndarray


def ppca_collapse(
    covariance: np.ndarray,
    beta: float = 1.0,
    decoder_variance: float = 1.0,
    n_latents: int | None = None,
) -> PPCAPrediction:
    """pPCA / linear-VAE prediction of collapsed directions for any data covariance.

    Args:
        covariance: a symmetric ``(D, D)`` covariance matrix, or a 1-D array of its eigenvalues.
        beta: KL weight.
        decoder_variance: the (fixed) decoder variance ``sigma^2``.
        n_latents: number of latents (default: all directions).

    A direction with eigenvalue ``lambda_i`` collapses iff ``lambda_i <= beta sigma^2`` (up to a relative
    rounding tolerance of 1e-9; Lucas et al. 2019;
    Ichikawa & Hukushima 2024 give ``beta_c = lambda_max / sigma^2`` as the threshold of total collapse).
    """
    cov = np.asarray(covariance, dtype=float)
    if cov.ndim == 2:
        if cov.shape[0] != cov.shape[1] or not np.allclose(cov, cov.T, atol=1e-10 * max(1.0, np.abs(cov).max())):
            raise ValueError(f"covariance must be a symmetric square matrix, got shape {cov.shape}")
        eig = np.linalg.eigvalsh(cov)
    elif cov.ndim == 1:
        eig = cov.copy()
    else:
        raise ValueError(f"covariance must be a matrix or a 1-D array of eigenvalues, got ndim={cov.ndim}")
    if np.any(eig < -1e-10 * max(1.0, float(np.abs(eig).max()))):
        raise ValueError("covariance must be positive semi-definite")
    if beta < 0 or decoder_variance <= 0:
        raise ValueError("need beta >= 0 and decoder_variance > 0")
    eig = np.sort(np.clip(eig, 0.0, None))[::-1]
    thr = beta * decoder_variance
    collapsed = eig <= thr * (1.0 + 1e-9) + 1e-12  # eigenvalues equal to beta sigma^2 up to rounding collapse
    k = eig.size if n_latents is None else int(n_latents)
    top = np.zeros(k)
    top[: min(k, eig.size)] = eig[:k]
    q = np.where(top <= thr * (1.0 + 1e-9) + 1e-12, 0.0, top - thr)
    with np.errstate(divide="ignore", invalid="ignore"):
        enc = np.where(q > 0, thr / np.where(top > 0, top, 1.0), 1.0)
    return PPCAPrediction(eig, collapsed, int((~collapsed).sum()), q, enc)
