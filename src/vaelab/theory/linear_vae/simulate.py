"""Finite-``N`` online SGD of the linear VAE of Ichikawa & Hukushima (AISTATS 2024).

One fresh sample ``x = sqrt(rho/N) W* c + sqrt(eta) n`` per step; the loss is the negative ELBO with the
expectation over ``z`` in closed form (no reparameterisation noise)::

    l(x) = 1/2 [-2 x^T W mu / sqrt(N) + mu^T Q mu + tr(Q diag D)] + beta/2 sum_k (mu_k^2 + D_k - ln D_k)
           + lambda/(2N) (||W||^2 + ||W~||^2),      mu = W~ x / sqrt(N),  Q = W^T W / N.

Its exact gradients give, with ``a = W^T x / sqrt(N)``, ``g = a - (Q + beta) mu`` and
``C = mu mu^T + diag(D) + lambda I``, the updates (learning rate ``tau`` for the weights, ``tau/N`` for ``D``)::

    W~ <- (1 - tau lambda / N) W~ + (tau / sqrt(N)) g x^T
    W  <- W (I - tau C / N) + (tau / sqrt(N)) x mu^T
    D_k <- D_k - (tau / 2N) (Q_kk + beta (1 - 1/D_k))

Time is ``t = steps / N``. Entries of ``W`` and ``W~`` start ``N(0, 1)``, ``D = 1``.

Two backends produce the same process:

* ``"weights"`` stores ``W``, ``W~`` in ``R^N`` and draws every ``x`` in full: ``O(N M)`` work and ``N`` Gaussian
  draws per step.
* ``"reduced"`` (default) is an exact reduction, not an approximation. The law of ``x`` is invariant under
  rotations of ``R^N`` that fix the teacher directions, and the updates are equivariant, so the joint law of
  all Gram matrices (hence of the order parameters and of the loss) depends only on the weights' coordinates in
  an orthonormal basis of their span. The backend stores those coordinates. A fresh ``n`` has i.i.d. ``N(0, 1)``
  coordinates on the current basis, and the rest of ``n`` has squared norm ``chi^2_{N - dim}`` along a new
  basis vector. Every ``block`` steps the coordinates are re-compressed to ``2M + M*`` dimensions by a QR
  decomposition. The cost per step does not depend on ``N`` (only the number of steps, ``t N``, does).

Seeds (and settings that share ``M``, ``M*``, ``T``) are batched along a leading array axis; the Python loop
runs once per SGD step for the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vaelab.theory.linear_vae.ode import DIVERGENCE_HINT, DivergenceError, _setting_text
from vaelab.theory.linear_vae.setting import (
    LinearVAESetting,
    OrderParams,
    Trajectory,
    _as_schedule,
    make_teacher,
)

__all__ = [
    "SGD_BACKENDS",
    "initial_weights",
    "order_params_gram",
    "random_initial_params",
    "simulate_sgd",
    "weights_from_order_params",
]

SGD_BACKENDS: tuple[str, ...] = ("reduced", "weights")


def initial_weights(
    setting: LinearVAESetting,
    W_star: np.ndarray,
    n: int,
    rng: np.random.Generator,
    overlap: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Initial encoder ``W~`` ``(n, M, N)`` and transposed decoder ``W^T`` ``(n, M, N)``, entries ``N(0, 1)``.

    ``overlap > 0`` adds ``overlap * W*_k`` to latent ``k``'s encoder and decoder weights for
    ``k < min(M, M*)``, giving macroscopic initial overlaps ``m_kk ~ d_kk ~ overlap * T_kk`` (useful to compare
    SGD with the ODE without the seed-to-seed spread of the plateau exit time).
    """
    N = W_star.shape[0]
    M = setting.M
    W_enc = rng.standard_normal((n, M, N))
    W_dec_t = rng.standard_normal((n, M, N))
    if overlap:
        k = min(M, setting.M_star)
        W_enc[:, :k, :] += overlap * W_star[:, :k].T
        W_dec_t[:, :k, :] += overlap * W_star[:, :k].T
    return W_enc, W_dec_t


def _psd_cholesky(G: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Lower-triangular ``F`` with ``F F^T = G`` for a positive semi-definite ``G`` (zero pivots allowed)."""
    n = G.shape[0]
    F = np.zeros_like(G)
    scale = max(1.0, float(np.abs(G).max()))
    for j in range(n):
        piv = G[j, j] - F[j, :j] @ F[j, :j]
        if piv < -tol * scale:
            raise ValueError("the initial order parameters are not realisable: their Gram matrix is not PSD")
        if piv <= tol * scale:
            rest = G[j + 1 :, j] - F[j + 1 :, :j] @ F[j, :j]
            if np.any(np.abs(rest) > 1e-7 * scale):
                raise ValueError("the initial order parameters are not realisable: their Gram matrix is not PSD")
            continue
        F[j, j] = math.sqrt(piv)
        F[j + 1 :, j] = (G[j + 1 :, j] - F[j + 1 :, :j] @ F[j, :j]) / F[j, j]
    return F


def order_params_gram(p: OrderParams, T: np.ndarray) -> np.ndarray:
    """Gram matrix ``V V^T / N`` of the rows ``V = [W*^T; W~; W^T]`` implied by order parameters ``p``."""
    return np.block([[T, p.d.T, p.m.T], [p.d, p.E, p.R.T], [p.m, p.R, p.Q]])


def weights_from_order_params(
    p: OrderParams, W_star: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``W~`` ``(n, M, N)`` and ``W^T`` ``(n, M, N)`` with exactly the given order parameters.

    The component orthogonal to the teacher directions has a uniformly random orientation (independent per
    sample). ``p`` must be unbatched; ``Q`` and ``E`` are symmetrised. Raises ``ValueError`` if the order
    parameters are not realisable (their joint Gram matrix with ``T = W*^T W*/N`` is not PSD).
    """
    N, Ms = W_star.shape
    if p.batch_shape:
        raise ValueError("weights_from_order_params needs unbatched order parameters")
    if p.M_star != Ms:
        raise ValueError(f"order parameters have M*={p.M_star} but the teacher has {Ms} columns")
    M = p.M
    T = W_star.T @ W_star / N
    G = order_params_gram(p, T)
    G = 0.5 * (G + G.T)  # symmetrises Q and E (the R blocks are already each other's transposes)
    F = _psd_cholesky(G)
    sqrt_n = math.sqrt(N)
    phi_t = np.linalg.solve(F[:Ms, :Ms], W_star.T / sqrt_n)  # (M*, N), orthonormal rows
    X = rng.standard_normal((n, N, 2 * M))
    X -= phi_t.T @ (phi_t @ X)
    phi_rest = np.swapaxes(np.linalg.qr(X)[0], 1, 2)  # (n, 2M, N), orthonormal and orthogonal to W*
    V = sqrt_n * (F[Ms:, :Ms] @ phi_t + F[Ms:, Ms:] @ phi_rest)  # (n, 2M, N)
    return V[:, :M].copy(), V[:, M:].copy()


def random_initial_params(
    setting: LinearVAESetting,
    N: int,
    n_samples: int | None = None,
    seed: int | np.random.Generator = 0,
    overlap: float = 0.0,
) -> OrderParams:
    """Order parameters of the random initialisation at finite ``N`` (sampled from actual weights).

    ``m`` and ``d`` are ``O(N^{-1/2})``, ``Q`` and ``E`` are close to the identity, ``D = 1``. Returns batch shape
    ``(n_samples,)``, or unbatched when ``n_samples`` is None.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    W_star = make_teacher(N, setting.T_matrix, rng)
    n = 1 if n_samples is None else int(n_samples)
    W_enc, W_dec_t = initial_weights(setting, W_star, n, rng, overlap)
    p = OrderParams.from_weights(W_enc, np.swapaxes(W_dec_t, -1, -2), np.ones((n, setting.M)), W_star)
    return p[0] if n_samples is None else p


def _check_settings(settings: Sequence[LinearVAESetting]) -> None:
    ref = settings[0]
    for s in settings[1:]:
        if (s.M, s.M_star) != (ref.M, ref.M_star) or not np.array_equal(s.T_matrix, ref.T_matrix):
            raise ValueError("settings simulated together must share M, M* and T (rho, eta, tau, lam, beta may differ)")


MAX_SGD_STEPS = 1e15
"""The most SGD steps of one run (``t_max * N``): beyond it the step counter loses whole steps (and far before, the
run would last for ever)."""


def simulate_sgd(
    settings: LinearVAESetting | Sequence[LinearVAESetting],
    N: int,
    t_max: float,
    *,
    n_seeds: int = 1,
    t_record: np.ndarray | None = None,
    n_record: int = 101,
    seed: int = 0,
    backend: str = "reduced",
    init_overlap: float = 0.0,
    init: OrderParams | None = None,
    block: int = 32,
) -> Trajectory | list[Trajectory]:
    """Run online SGD of the linear VAE and record the order parameters on a time grid.

    Args:
        settings: one setting, or several sharing ``M``, ``M*`` and ``T`` (they are batched together).
        N: input dimension.
        t_max: duration in units of ``t = steps / N`` (``round(t_max N)`` SGD steps).
        n_seeds: independent runs per setting (independent initial weights and samples).
        t_record: recording times (rounded to whole steps); default ``n_record`` points in ``[0, t_max]``.
        seed: seed of the random stream (one stream for the whole batch).
        backend: ``"reduced"`` (exact, cost independent of ``N``) or ``"weights"`` (explicit ``R^N`` weights);
            see the module docstring.
        init_overlap: macroscopic initial overlap, see :func:`initial_weights`.
        init: start every run from weights with exactly these (unbatched) order parameters instead of the
            random initialisation, e.g. the authors' :data:`~vaelab.theory.linear_vae.ode.AUTHORS_INIT`; the
            weights' orientation outside the teacher directions is random (see
            :func:`weights_from_order_params`). ``D`` is taken from ``init`` too.
        block: steps per block of pre-drawn samples (and, for ``"reduced"``, between re-compressions).

    Returns:
        A :class:`Trajectory` (batch shape ``(n_seeds, n_t)``) per setting; a single one if a single setting was
        given. The teacher is the authors' all-ones vector for ``M* = 1``.
    """
    single = isinstance(settings, LinearVAESetting)
    setting_list: list[LinearVAESetting] = [settings] if single else list(settings)  # type: ignore[list-item]
    if not setting_list:
        raise ValueError("no settings given")
    _check_settings(setting_list)
    if backend not in SGD_BACKENDS:
        raise ValueError(f"unknown SGD backend {backend!r}; valid choices: {', '.join(SGD_BACKENDS)}")
    ref = setting_list[0]
    M, Ms = ref.M, ref.M_star
    r = Ms + 2 * M
    if isinstance(N, bool) or not isinstance(N, int | np.integer) or r + 2 > N:
        raise ValueError(f"N must be an integer > 2M + M* + 1 = {r + 1}, got {N!r}")
    if n_seeds < 1:
        raise ValueError(f"n_seeds must be >= 1, got {n_seeds}")
    if not t_max > 0:
        raise ValueError(f"t_max must be > 0, got {t_max!r}")
    t_rec = np.linspace(0.0, t_max, n_record) if t_record is None else np.asarray(t_record, dtype=float)
    if t_rec.ndim != 1 or t_rec.size == 0 or np.any(t_rec < 0) or np.any(t_rec > t_max + 1e-12):
        raise ValueError("t_record must be a non-empty 1-D array within [0, t_max]")
    if not t_max * N <= MAX_SGD_STEPS:  # round(t N) would overflow the step counter (t_max = 1e300 / tau)
        raise ValueError(f"t_max * N = {t_max * N:.3g} SGD steps exceeds {MAX_SGD_STEPS:.0e}: a shorter t_max or N")
    rec_steps = np.unique(np.round(t_rec * N).astype(np.int64))
    n_steps = int(rec_steps[-1])
    n_set = len(setting_list)
    B = n_set * n_seeds
    which = np.repeat(np.arange(n_set), n_seeds)

    def per_batch(name: str) -> np.ndarray:
        return np.array([getattr(s, name) for s in setting_list], dtype=float)[which]

    rho, eta, tau, lam = per_batch("rho"), per_batch("eta"), per_batch("tau"), per_batch("lam")
    schedules = [_as_schedule(s.beta) for s in setting_list]

    rng = np.random.Generator(np.random.SFC64(seed))
    W_star = make_teacher(N, ref.T_matrix, np.random.default_rng([seed, 7]))
    if init is None:
        W_enc, W_dec_t = initial_weights(ref, W_star, B, rng, init_overlap)
        D = np.ones((B, M))
    else:
        if init_overlap:
            raise ValueError("give either init or init_overlap, not both")
        if (init.M, init.M_star) != (M, Ms):
            raise ValueError(f"init has M, M* = {init.M}, {init.M_star}, the settings have {M}, {Ms}")
        if np.any(init.D <= 0):
            raise ValueError("init.D must be > 0")
        W_enc, W_dec_t = weights_from_order_params(init, W_star, B, rng)
        D = np.broadcast_to(init.D, (B, M)).astype(float)

    # Internally the weights are stored divided by sqrt(N) ("hatted"), so that Q = W^_dec W^_dec^T and
    # mu = W^_enc x directly; rows of Z: [W~ / sqrt(N) (M rows); W^T / sqrt(N) (M rows); x (1 row)].
    inv_sqrt_n = 1.0 / math.sqrt(N)
    reduced = backend == "reduced"
    if reduced:
        K = int(max(1, min(block, N - r - 1)))
        dim = r + K
        V = np.concatenate([np.broadcast_to(W_star.T, (B, Ms, N)), W_enc, W_dec_t], axis=1) * inv_sqrt_n
        coords = np.swapaxes(np.linalg.qr(np.swapaxes(V, 1, 2), mode="r"), 1, 2)  # (B, r, r), V V^T preserved
        del V
        Vs = np.zeros((B, Ms, dim))
        Vs[:, :, :r] = coords[:, :Ms]
        Z = [np.zeros((B, 2 * M + 1, dim)), np.zeros((B, 2 * M + 1, dim))]
        Z[0][:, : 2 * M, :r] = coords[:, Ms:]
        # noise mask: at block step k the first r + k coordinates are in use, coordinate r + k gets the chi term
        kk = np.arange(K)[:, None]
        jj = np.arange(dim)[None, :]
        mask = (jj < r + kk).astype(float)[:, None, :]
        chi_df = (N - r - np.arange(K)).astype(float)
    else:
        K = int(max(1, min(block, (64 * 2**20) // (8 * B * N))))
        dim = N
        Vs = np.broadcast_to(W_star.T * inv_sqrt_n, (B, Ms, N))
        Z = [np.empty((B, 2 * M + 1, N)), np.empty((B, 2 * M + 1, N))]
        Z[0][:, :M] = W_enc * inv_sqrt_n
        Z[0][:, M : 2 * M] = W_dec_t * inv_sqrt_n
    del W_enc, W_dec_t

    c_x = (tau / N)[:, None]  # coefficient of the rank-one term x (in hatted units)
    c_n = (tau / N)[:, None, None]
    c_d = (tau / (2.0 * N))[:, None]
    lam_b = lam[:, None]
    sqrt_eta = np.sqrt(eta)[None, :, None]
    sqrt_rho = np.sqrt(rho)[:, None, None]
    eye_m = np.eye(M)
    Lv = np.zeros((B, 2 * M, 2 * M + 1))
    Lv[:, :M, :M] = (1.0 - tau * lam / N)[:, None, None] * eye_m
    diag_stride = M + 1

    n_rec = rec_steps.size
    rec = {
        name: np.empty((B, n_rec, *shape))
        for name, shape in (
            ("m", (M, Ms)),
            ("d", (M, Ms)),
            ("Q", (M, M)),
            ("E", (M, M)),
            ("R", (M, M)),
            ("D", (M,)),
        )
    }

    def record(i: int, Zc: np.ndarray) -> None:
        enc, dec = Zc[:, :M], Zc[:, M : 2 * M]
        vs_t = np.swapaxes(Vs, 1, 2)
        rec["m"][:, i] = dec @ vs_t
        rec["d"][:, i] = enc @ vs_t
        rec["Q"][:, i] = dec @ np.swapaxes(dec, 1, 2)
        rec["E"][:, i] = enc @ np.swapaxes(enc, 1, 2)
        rec["R"][:, i] = dec @ np.swapaxes(enc, 1, 2)
        rec["D"][:, i] = D

    cur = 0
    ri = 0
    step = 0
    while step < n_steps:
        kb = min(K, n_steps - step)
        times = (step + np.arange(kb)) / N
        betas = np.stack([np.broadcast_to(np.asarray(s(times), dtype=float), (kb,)) for s in schedules], axis=1)
        betas = betas[:, which, None]  # (kb, B, 1)
        c = rng.standard_normal((B, kb, Ms))
        X = rng.standard_normal((kb, B, dim))
        if reduced:
            X *= mask[:kb]
            X[np.arange(kb), :, r + np.arange(kb)] = np.sqrt(rng.chisquare(chi_df[:kb, None], size=(kb, B)))
        X *= sqrt_eta
        X += np.swapaxes(sqrt_rho * np.matmul(c, Vs), 0, 1)  # sqrt(rho/N) W* c in the current coordinates
        for k in range(kb):
            Za = Z[cur]
            if ri < n_rec and rec_steps[ri] == step:
                record(ri, Za)
                ri += 1
            x = X[k]
            beta_k = betas[k]
            Za[:, 2 * M] = x
            y = np.matmul(Za, x[:, :, None])[:, :, 0]  # [mu; a; |x|^2]
            mu = y[:, :M]
            dec = Za[:, M : 2 * M]
            Q = np.matmul(dec, np.swapaxes(dec, 1, 2))
            Lv[:, :M, 2 * M] = c_x * (y[:, M : 2 * M] - np.matmul(Q, mu[:, :, None])[:, :, 0] - beta_k * mu)
            Lv[:, M:, 2 * M] = c_x * mu
            C = mu[:, :, None] * mu[:, None, :]
            C.reshape(B, M * M)[:, ::diag_stride] += D + lam_b
            Lv[:, M:, M : 2 * M] = eye_m - c_n * C
            np.matmul(Lv, Za, out=Z[1 - cur][:, : 2 * M])
            D -= c_d * (Q.reshape(B, M * M)[:, ::diag_stride] + beta_k * (1.0 - 1.0 / D))
            cur = 1 - cur
            step += 1
        if not (np.isfinite(Z[cur][:, : 2 * M]).all() and np.isfinite(D).all()):
            bad = int(np.flatnonzero(~(np.isfinite(Z[cur][:, : 2 * M]).all(axis=(1, 2)) & np.isfinite(D).all(1)))[0])
            raise DivergenceError(
                f"SGD diverged by t = {step / N:.4g}, {_setting_text(setting_list[which[bad]])}: {DIVERGENCE_HINT}"
            )
        if reduced:
            Zc = Z[cur]
            V = np.concatenate([Vs, Zc[:, : 2 * M]], axis=1)  # (B, r, dim)
            coords = np.swapaxes(np.linalg.qr(np.swapaxes(V, 1, 2), mode="r"), 1, 2)
            Vs[:] = 0.0
            Vs[:, :, :r] = coords[:, :Ms]
            Zc[:, : 2 * M] = 0.0
            Zc[:, : 2 * M, :r] = coords[:, Ms:]
    if ri < n_rec and rec_steps[ri] == step:
        record(ri, Z[cur])
        ri += 1
    if ri != n_rec:  # pragma: no cover - defensive
        raise RuntimeError("internal error: not all recording times were reached")

    t_out = rec_steps / N
    out: list[Trajectory] = []
    for si, s in enumerate(setting_list):
        sl = slice(si * n_seeds, (si + 1) * n_seeds)
        params = OrderParams(*(rec[f][sl] for f in ("m", "d", "Q", "E", "R", "D")))
        out.append(Trajectory(t_out, params, s, f"sgd N={N} ({backend})"))
    return out[0] if single else out
