"""Finite-N online SGD of the linear VAE against autograd, between backends, and against the ODE.

Ichikawa & Hukushima (AISTATS 2024); the setting is ``shared/docs/linear-vae.md``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaelab.theory.linear_vae import (
    AUTHORS_INIT,
    AUTHORS_SGD_EPS_G,
    AUTHORS_TIMES,
    LinearVAESetting,
    OrderParams,
    Trajectory,
    initial_weights,
    make_beta_schedule,
    make_teacher,
    random_initial_params,
    simulate_sgd,
    solve_ode,
    weights_from_order_params,
)

FIELDS = ("m", "d", "Q", "E", "R", "D")


def _max_dev(sgd: Trajectory, ode: Trajectory) -> np.ndarray:
    """Per seed: max over time and over all order parameters of |SGD - ODE|."""
    n = sgd.params.batch_shape[0]
    return np.max(
        [np.abs(getattr(sgd.params, f) - getattr(ode.params, f)).reshape(n, -1).max(1) for f in FIELDS],
        axis=0,
    )


# ----------------------------------------------------------------------------------------------------------
# exactness of the update
# ------------------------------------------------------------------------------------------------------------


def test_weights_backend_steps_are_the_exact_gradient_steps() -> None:
    """Three SGD steps of the 'weights' backend equal autograd steps on the loss of the spec."""
    torch = pytest.importorskip("torch")
    N, seed, n_steps = 24, 5, 3
    s = LinearVAESetting(M=2, M_star=2, rho=1.3, eta=0.7, T=np.diag([1.5, 0.5]), lam=0.3, tau=0.2, beta=0.8)
    run = simulate_sgd(
        s,
        N,
        n_steps / N,
        n_seeds=2,
        t_record=np.arange(n_steps + 1) / N,
        seed=seed,
        backend="weights",
        init_overlap=0.4,
    )
    assert isinstance(run, Trajectory)

    # replay the simulator's random stream (documented order: teacher, initial weights, c, n)
    rng = np.random.Generator(np.random.SFC64(seed))
    W_star = make_teacher(N, s.T_matrix, np.random.default_rng([seed, 7]))
    W_enc, W_dec_t = initial_weights(s, W_star, 2, rng, 0.4)
    c = rng.standard_normal((2, n_steps, 2))
    noise = rng.standard_normal((n_steps, 2, N))

    for b in range(2):
        enc = torch.tensor(W_enc[b], dtype=torch.float64, requires_grad=True)
        dec = torch.tensor(W_dec_t[b].T.copy(), dtype=torch.float64, requires_grad=True)
        D = torch.ones(2, dtype=torch.float64, requires_grad=True)
        for k in range(n_steps):
            x_np = math.sqrt(s.eta) * noise[k, b] + math.sqrt(s.rho / N) * W_star @ c[b, k]
            x = torch.tensor(x_np)
            mu = enc @ x / math.sqrt(N)
            Q = dec.T @ dec / N
            loss = 0.5 * (-2 * x @ dec @ mu / math.sqrt(N) + mu @ Q @ mu + torch.trace(Q * D))
            loss = loss + s.beta / 2 * torch.sum(mu**2 + D - torch.log(D))
            loss = loss + s.lam / (2 * N) * (torch.sum(dec**2) + torch.sum(enc**2))
            g_enc, g_dec, g_D = torch.autograd.grad(loss, (enc, dec, D))
            with torch.no_grad():
                enc = (enc - s.tau * g_enc).requires_grad_(True)
                dec = (dec - s.tau * g_dec).requires_grad_(True)
                D = (D - s.tau / N * g_D).requires_grad_(True)
            e, w = enc.detach().numpy(), dec.detach().numpy()
            np.testing.assert_allclose(run.params.Q[b, k + 1], w.T @ w / N, rtol=1e-10)
            np.testing.assert_allclose(run.params.E[b, k + 1], e @ e.T / N, rtol=1e-10)
            np.testing.assert_allclose(run.params.R[b, k + 1], w.T @ e.T / N, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(run.params.m[b, k + 1], w.T @ W_star / N, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(run.params.d[b, k + 1], e @ W_star / N, rtol=1e-10, atol=1e-13)
            np.testing.assert_allclose(run.params.D[b, k + 1], D.detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    ("setting", "N"),
    [
        (LinearVAESetting(beta=0.5, lam=0.2, tau=0.6), 16),
        (LinearVAESetting(M=2, M_star=2, T=np.diag([1.5, 0.5]), beta=0.7, tau=0.4), 24),
    ],
)
def test_reduced_backend_has_the_law_of_the_weights_backend(setting: LinearVAESetting, N: int) -> None:
    """The exact reduction reproduces the finite-N statistics (mean and spread over 400 runs) at small N.

    Small N and a large tau make the finite-size and tau^2 effects big, so that bookkeeping errors in the reduced
    coordinates (e.g. the chi^2 degrees of freedom of the fresh noise direction) are detected.
    """
    kw = {"n_seeds": 400, "t_record": np.array([0.0, 4.0, 12.0]), "init_overlap": 0.5, "block": 8}
    red = simulate_sgd(setting, N, 12.0, seed=1, backend="reduced", **kw)
    wts = simulate_sgd(setting, N, 12.0, seed=2, backend="weights", **kw)
    assert isinstance(red, Trajectory) and isinstance(wts, Trajectory)
    finite_n_effect = 0.0
    for f in ("m", "Q", "E", "R", "D"):
        a, b = getattr(red.params, f)[:, 1:], getattr(wts.params, f)[:, 1:]
        se = np.sqrt(a.var(0) / a.shape[0] + b.var(0) / b.shape[0]) + 1e-12
        z = np.abs(a.mean(0) - b.mean(0)) / se
        assert z.max() < 4.5, f"{f}: backends differ by {z.max():.1f} standard errors"
        np.testing.assert_allclose(a.std(0), b.std(0), rtol=0.2, atol=1e-3)
        finite_n_effect = max(finite_n_effect, float(np.abs(a.std(0)).max()))
    # the test is only meaningful if N is small enough for visible finite-size fluctuations
    assert finite_n_effect > 0.02


def test_sgd_approaches_the_ode_like_one_over_sqrt_n() -> None:
    """max_t |SGD - ODE| over all order parameters shrinks ~ N^{-1/2} (macroscopic-overlap start)."""
    s = LinearVAESetting(beta=0.5)
    devs = []
    for N in (100, 400):
        run = simulate_sgd(s, N, 50.0, n_seeds=12, n_record=11, seed=N, init_overlap=0.5)
        assert isinstance(run, Trajectory)
        ode = solve_ode(s, run.params[:, 0], 50.0, t_eval=run.t)
        devs.append(float(np.sqrt(np.mean(_max_dev(run, ode) ** 2))))
    assert devs[1] < 0.7 * devs[0]
    assert devs[0] * math.sqrt(100) < 0.3 and devs[1] * math.sqrt(400) < 0.3


def test_sgd_matches_ode_for_general_m_t_and_weight_decay() -> None:
    """M = 3 latents, M* = 2 correlated factors, lambda > 0: every order parameter follows the ODE."""
    T = np.array([[1.5, 0.3], [0.3, 0.5]])
    s = LinearVAESetting(M=3, M_star=2, T=T, rho=1.2, eta=0.8, lam=0.1, beta=0.6)
    devs = []
    for N in (100, 800):
        run = simulate_sgd(s, N, 40.0, n_seeds=6, n_record=9, seed=N, init_overlap=0.5)
        assert isinstance(run, Trajectory)
        ode = solve_ode(s, run.params[:, 0], 40.0, t_eval=run.t)
        devs.append(float(np.sqrt(np.mean(_max_dev(run, ode) ** 2))))
    assert devs[1] < 0.6 * devs[0]
    assert devs[1] * math.sqrt(800) < 0.4


@pytest.mark.slow
def test_sgd_approaches_the_ode_at_large_n() -> None:
    s = LinearVAESetting(beta=0.5)
    devs = {}
    for N in (400, 3200):
        run = simulate_sgd(s, N, 100.0, n_seeds=8, n_record=11, seed=N, init_overlap=0.5)
        assert isinstance(run, Trajectory)
        ode = solve_ode(s, run.params[:, 0], 100.0, t_eval=run.t)
        devs[N] = float(np.sqrt(np.mean(_max_dev(run, ode) ** 2)))
    ratio = devs[3200] / devs[400]
    assert 0.2 < ratio < 0.55  # sqrt(1/8) = 0.35


def test_batched_settings_and_schedules_follow_their_own_ode() -> None:
    """Settings with different beta (one annealed, one above beta_c) batched in one run."""
    settings = [
        LinearVAESetting(beta=0.5),
        LinearVAESetting(beta=make_beta_schedule("tanh", 1.5, gamma=0.02)),
        LinearVAESetting(beta=2.5),
    ]
    runs = simulate_sgd(settings, 400, 60.0, n_seeds=4, n_record=7, seed=3, init_overlap=0.6)
    assert isinstance(runs, list) and len(runs) == 3
    finals = []
    for s, run in zip(settings, runs, strict=True):
        assert run.setting is s
        ode = solve_ode(s, run.params[:, 0], 60.0, t_eval=run.t)
        assert np.sqrt(np.mean(_max_dev(run, ode) ** 2)) < 0.03
        finals.append(float(run.params.D[:, -1].mean()))
    # D follows its own beta: D -> beta / (Q + beta) is ordered with beta
    assert finals[0] < finals[1] < finals[2]


# ----------------------------------------------------------------------------------------------------------
# reproduction of the authors' simulation and of the superfluous-latent effect by SGD (slow)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sgd_reproduces_the_authors_run() -> None:
    """N = 200 from the authors' initial order parameters, mean of 20 runs, vs their published mean of 5."""
    s = LinearVAESetting(beta=1.0)
    run = simulate_sgd(s, 200, 1490.0, n_seeds=20, t_record=AUTHORS_TIMES, seed=11, init=AUTHORS_INIT)
    assert isinstance(run, Trajectory)
    np.testing.assert_allclose(run.eps_g.mean(0), AUTHORS_SGD_EPS_G, atol=0.015)


def test_weights_with_prescribed_order_parameters() -> None:
    rng = np.random.default_rng(0)
    T = np.diag([1.5, 0.5])
    W_star = make_teacher(60, T, rng)
    p = random_initial_params(LinearVAESetting(M=3, M_star=2, T=T), 60, seed=1)
    W_enc, W_dec_t = weights_from_order_params(p, W_star, 2, rng)
    q = OrderParams.from_weights(W_enc, np.swapaxes(W_dec_t, 1, 2), np.ones((2, 3)), W_star)
    for f in ("m", "d", "Q", "E", "R"):
        np.testing.assert_allclose(getattr(q, f), np.broadcast_to(getattr(p, f), getattr(q, f).shape), atol=1e-12)
    assert np.abs(W_enc[0] - W_enc[1]).max() > 0.1  # random orientation per sample
    # a collapsed decoder (Q = m = R = 0) is realisable, an overlap larger than the norms allows is not
    zero = OrderParams.scalar(m=0.0, d=0.5, Q=0.0, E=1.0, R=0.0)
    W_enc, W_dec_t = weights_from_order_params(zero, make_teacher(60, np.eye(1)), 1, rng)
    assert np.abs(W_dec_t).max() < 1e-12
    with pytest.raises(ValueError, match="not realisable"):
        weights_from_order_params(
            OrderParams.scalar(m=2.0, d=0.0, Q=1.0, E=1.0, R=0.0), make_teacher(60, np.eye(1)), 1, rng
        )
    with pytest.raises(ValueError, match="either init or init_overlap"):
        simulate_sgd(LinearVAESetting(), 100, 1.0, init=AUTHORS_INIT, init_overlap=0.5)


@pytest.mark.slow
def test_sgd_superfluous_latent_fits_noise() -> None:
    settings = [LinearVAESetting(M=2, M_star=1, beta=b) for b in (0.5, 1.5)]
    runs = simulate_sgd(settings, 300, 2500.0, n_seeds=3, n_record=6, seed=4, init_overlap=0.3)
    assert isinstance(runs, list)
    q_sup = [run.params.Q[:, -1, 1, 1].mean() for run in runs]  # latent 2 has no initial overlap
    assert q_sup[0] == pytest.approx(0.5, abs=0.06)  # eta - beta
    assert q_sup[1] < 0.02


# ----------------------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------------------------


def test_simulate_bad_arguments() -> None:
    s = LinearVAESetting()
    with pytest.raises(ValueError, match="valid choices: reduced, weights"):
        simulate_sgd(s, 100, 1.0, backend="gpu")
    with pytest.raises(ValueError, match="share M, M\\* and T"):
        simulate_sgd([s, LinearVAESetting(M=2)], 100, 1.0)
    with pytest.raises(ValueError, match="N must be an integer"):
        simulate_sgd(s, 3, 1.0)
    with pytest.raises(ValueError, match="t_record"):
        simulate_sgd(s, 100, 1.0, t_record=np.array([2.0]))


def test_recording_grid_and_initial_order_parameters() -> None:
    s = LinearVAESetting(M=2, M_star=1)
    run = simulate_sgd(s, 500, 2.0, n_seeds=3, t_record=np.array([0.0, 0.5, 2.0]), seed=0)
    assert isinstance(run, Trajectory)
    np.testing.assert_allclose(run.t, [0.0, 0.5, 2.0])
    assert run.params.batch_shape == (3, 3)
    p0 = run.params[:, 0]
    # random initialisation: Q, E ~ I, m, d ~ N^{-1/2}, D = 1
    np.testing.assert_allclose(np.diagonal(p0.Q, axis1=1, axis2=2), 1.0, atol=0.2)
    assert np.abs(p0.m).max() < 5 / math.sqrt(500)
    np.testing.assert_allclose(p0.D, 1.0)
