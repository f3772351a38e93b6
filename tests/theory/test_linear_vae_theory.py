"""ODE, fixed points and theory helpers of the linear VAE (Ichikawa & Hukushima, AISTATS 2024).

Every test compares numbers against the published curve or against closed-form theory from
``shared/docs/linear-vae.md``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vaelab.theory.linear_vae import (
    AUTHORS_INIT,
    AUTHORS_ODE_EPS_G,
    AUTHORS_SGD_EPS_G,
    AUTHORS_TIMES,
    BETA_SCHEDULES,
    LinearVAESetting,
    OrderParams,
    StateLayout,
    beta_c,
    collapse_stability,
    convergence_time,
    eps_g_star,
    escape_time,
    find_fixed_point,
    generalisation_error,
    learning_fixed_point,
    make_beta_schedule,
    ode_rhs,
    plateau_escape_rate,
    ppca_collapse,
    predicted_plateau_length,
    random_initial_params,
    solve_ode,
    typical_initial_params,
)

# -----------------------------------------------------------------------------------------------------------
# the authors' published run
# ------------------------------------------------------------------------------------------------------------


def test_ode_reproduces_authors_published_curve() -> None:
    s = LinearVAESetting(rho=1.0, eta=1.0, tau=0.01, beta=1.0, lam=0.0)
    ode = solve_ode(s, AUTHORS_INIT, 1490.0, t_eval=AUTHORS_TIMES)
    # within 0.01 of the published SGD numbers (N = 200, mean of 5 runs) at every listed time
    np.testing.assert_array_less(np.abs(ode.eps_g - AUTHORS_SGD_EPS_G), 0.01)
    # and the ODE numbers stated in the spec to 4 decimals
    np.testing.assert_allclose(ode.eps_g, AUTHORS_ODE_EPS_G, atol=1e-4)


def test_drift_only_ode_misses_the_late_time_floor() -> None:
    s = LinearVAESetting(beta=1.0)
    drift = solve_ode(s, AUTHORS_INIT, 1490.0, t_eval=AUTHORS_TIMES, noise_terms=False)
    assert drift.eps_g[-1] == pytest.approx(0.0008, abs=1e-4)
    # the tau^2 terms make the difference at t = 1490: 0.0049 vs 0.0008 (published SGD: 0.0047)
    assert AUTHORS_SGD_EPS_G[-1] - drift.eps_g[-1] > 0.003


def test_noisy_fixed_point_sets_the_floor() -> None:
    s = LinearVAESetting(beta=1.0)
    fp = find_fixed_point(s, noise_terms=True)
    fp0 = find_fixed_point(s, noise_terms=False)
    assert float(fp0.eps_g(1.0)) == pytest.approx(0.0, abs=1e-10)  # eps_g* = 0 at beta = eta
    floor = float(fp.eps_g(1.0))
    assert 0.003 < floor < 0.0047  # below the published value at t = 1490, which is still decreasing
    late = solve_ode(s, AUTHORS_INIT, 20000.0, t_eval=np.array([20000.0]))
    assert float(late.eps_g[-1]) == pytest.approx(floor, abs=1e-5)


# ----------------------------------------------------------------------------------------------------------
# fixed points and threshold
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.3, 1.0, 1.5, 1.9])
def test_learning_fixed_point_is_a_zero_of_the_drift(beta: float) -> None:
    s = LinearVAESetting(beta=beta)
    fp = learning_fixed_point(beta)
    rhs = ode_rhs(s, noise_terms=False)
    y = StateLayout(1, 1).pack(fp)
    np.testing.assert_allclose(rhs(0.0, y), 0.0, atol=1e-14)
    assert float(fp.eps_g(1.0)) == pytest.approx((1 - math.sqrt(2 - beta)) ** 2, abs=1e-12)
    assert float(eps_g_star(beta)) == pytest.approx((1 - math.sqrt(2 - beta)) ** 2, abs=1e-12)


def test_eps_g_star_shape() -> None:
    assert float(eps_g_star(1.0)) == 0.0  # minimum at beta = eta
    assert float(eps_g_star(2.5)) == 1.0  # collapsed: eps_g = rho
    assert float(eps_g_star(0.5, M=2)) == pytest.approx((1 - math.sqrt(1.5)) ** 2 + 0.5)
    # two factors, M = 1: the weaker factor is left out entirely
    T = np.diag([1.5, 0.5])
    assert float(eps_g_star(1.0, T=T, M=1)) == pytest.approx((math.sqrt(1.5) - math.sqrt(1.5)) ** 2 + 0.5)
    with pytest.raises(ValueError, match="diagonal"):
        eps_g_star(1.0, T=np.array([[1.0, 0.2], [0.2, 1.0]]))


@pytest.mark.parametrize(("rho", "eta"), [(1.0, 1.0), (2.0, 0.5)])
def test_beta_just_below_and_above_beta_c(rho: float, eta: float) -> None:
    bc = beta_c(rho, eta)
    assert bc == pytest.approx(rho + eta)
    t = 60000.0
    below = solve_ode(LinearVAESetting(rho=rho, eta=eta, beta=0.95 * bc), AUTHORS_INIT, t, n_eval=3)
    above = solve_ode(LinearVAESetting(rho=rho, eta=eta, beta=1.05 * bc), AUTHORS_INIT, t, n_eval=3)
    # learning: the overlap reaches sqrt(rho + eta - beta) and eps_g the (finite-tau) fixed point
    assert abs(below.params.m[-1, 0, 0]) == pytest.approx(math.sqrt(0.05 * bc), rel=0.02)
    assert float(below.eps_g[-1]) == pytest.approx(float(eps_g_star(0.95 * bc, rho, eta)), abs=0.01)
    # collapse: m -> 0, eps_g -> rho, D -> 1
    assert abs(above.params.m[-1, 0, 0]) < 1e-3
    assert float(above.eps_g[-1]) == pytest.approx(rho, abs=1e-3)
    assert above.params.D[-1, 0] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("beta", [1.0, 1.5, 1.99, 2.01, 2.5])
def test_collapse_stability_eigenvalue_is_the_escape_rate(beta: float) -> None:
    res = collapse_stability(LinearVAESetting(beta=beta))
    lam_plus = float(plateau_escape_rate(beta))
    assert res.max_real == pytest.approx(lam_plus, rel=1e-6, abs=1e-12)
    assert res.stable == (beta > 2.0)


def test_escape_rate_formula_values() -> None:
    # a = 2, b = max(beta, 1): at beta = 1.5 lambda_+ = tau (-4 + sqrt(4 + 16)) / 2
    assert float(plateau_escape_rate(1.5)) == pytest.approx(0.01 * (-4 + math.sqrt(20)) / 2)
    assert float(plateau_escape_rate(0.3)) == pytest.approx(float(plateau_escape_rate(1.0)))  # b = eta below eta
    assert float(plateau_escape_rate(2.0)) == pytest.approx(0.0, abs=1e-15)
    assert math.isinf(float(predicted_plateau_length(2.2, 1000)))
    assert float(predicted_plateau_length(1.5, 1000)) == pytest.approx(0.5 * math.log(1000) / 0.002360679775)


@pytest.mark.parametrize(("beta", "rel"), [(1.6, 0.01), (0.7, 0.03)])
def test_plateau_growth_rate_of_m_matches_lambda_plus(beta: float, rel: float) -> None:
    s = LinearVAESetting(beta=beta)
    ode = solve_ode(
        s,
        typical_initial_params(s, 10**8),
        1200.0,
        t_eval=np.array([800.0, 1000.0, 1200.0]),
        noise_terms=False,
    )
    log_m = np.log(np.abs(ode.params.m[:, 0, 0]))
    slope = (log_m[2] - log_m[0]) / 400.0
    assert slope == pytest.approx(float(plateau_escape_rate(beta)), rel=rel)


def test_plateau_length_grows_towards_beta_c() -> None:
    times = []
    for beta in (1.2, 1.6, 1.9):
        s = LinearVAESetting(beta=beta)
        ode = solve_ode(s, typical_initial_params(s, 1000), 30000.0, n_eval=30001)
        times.append(escape_time(ode.t, ode.eps_g, 0.5 * (1.0 + float(eps_g_star(beta)))))
    pred = predicted_plateau_length(np.array([1.2, 1.6, 1.9]), 1000)
    assert times[0] < times[1] < times[2]
    # the measured/predicted ratio stays O(1) while the plateau length grows by a factor > 5
    assert times[2] / times[0] > 5
    ratio = np.asarray(times) / pred
    assert np.all((ratio > 0.2) & (ratio < 1.2))


# ----------------------------------------------------------------------------------------------------------
# superfluous latent, pPCA, entanglement
# ------------------------------------------------------------------------------------------------------------


def test_superfluous_latent_fits_noise_below_eta() -> None:
    init = random_initial_params(LinearVAESetting(M=2), 1000, seed=3)
    t_eval = np.array([0.0, 300.0, 1000.0, 3000.0, 20000.0])
    res = {}
    for beta in (0.5, 1.5):
        s = LinearVAESetting(M=2, M_star=1, beta=beta)
        for noise in (True, False):
            ode = solve_ode(s, init, 20000.0, t_eval=t_eval, noise_terms=noise)
            sup = int(np.argmin(np.abs(ode.params.m[-1, :, 0])))
            res[beta, noise] = (ode, sup)
    ode, sup = res[0.5, False]
    assert ode.params.Q[-1, sup, sup] == pytest.approx(1.0 - 0.5, abs=1e-3)  # eta - beta
    assert float(ode.eps_g[-1]) == pytest.approx(float(eps_g_star(0.5, M=2)), abs=2e-3)
    ode, sup = res[0.5, True]
    assert ode.params.Q[-1, sup, sup] == pytest.approx(0.5, abs=0.02)
    ode, sup = res[1.5, True]
    assert ode.params.Q[-1, sup, sup] < 1e-4  # beta > eta: no noise fitting
    # non-monotone eps_g below eta: it undershoots its final value
    ode, _ = res[0.5, True]
    fine = solve_ode(ode.setting, init, 20000.0, n_eval=2001)
    assert fine.eps_g.min() < fine.eps_g[-1] - 0.03


def test_superfluous_latent_decays_only_algebraically_at_beta_eta() -> None:
    s = LinearVAESetting(M=2, M_star=1, beta=1.0)
    init = random_initial_params(s, 1000, seed=3)
    ode = solve_ode(s, init, 40000.0, t_eval=np.array([5000.0, 10000.0, 20000.0, 40000.0]), noise_terms=False)
    sup = int(np.argmin(np.abs(ode.params.m[-1, :, 0])))
    q = ode.params.Q[:, sup, sup]
    # algebraic ~ 1/t: doubling t roughly halves Q_22 (an exponential decay would shrink it much faster)
    ratios = q[1:] / q[:-1]
    assert np.all((ratios > 0.4) & (ratios < 0.7))


def test_ppca_prediction_on_a_covariance_matrix() -> None:
    rng = np.random.default_rng(0)
    N = 40
    U, _ = np.linalg.qr(rng.standard_normal((N, 2)))
    W_star = math.sqrt(N) * U @ np.diag(np.sqrt([1.5, 0.5]))
    cov = W_star @ W_star.T / N + 1.0 * np.eye(N)  # rho = eta = 1, T = diag(1.5, 0.5)
    pred = ppca_collapse(cov, beta=2.0, n_latents=2)
    np.testing.assert_allclose(pred.eigenvalues[:3], [2.5, 1.5, 1.0], atol=1e-10)
    assert pred.n_active == 1
    np.testing.assert_allclose(pred.latent_variances, [0.5, 0.0], atol=1e-10)
    np.testing.assert_allclose(pred.encoder_variances, [0.8, 1.0], atol=1e-10)
    assert ppca_collapse(cov, beta=1.0).n_active == 2  # noise eigenvalues 1.0 <= beta sigma^2 collapse
    assert ppca_collapse([3.0, 2.0, 1.0], beta=1.0, decoder_variance=2.5).n_active == 1
    with pytest.raises(ValueError, match="symmetric"):
        ppca_collapse(np.array([[1.0, 2.0], [0.0, 1.0]]))


def test_ppca_prediction_matches_the_ode_with_two_factors() -> None:
    T = np.diag([1.5, 0.5])
    s = LinearVAESetting(M=2, M_star=2, T=T, beta=2.0)
    init = random_initial_params(s, 1000, seed=1)
    ode = solve_ode(s, init, 30000.0, n_eval=3, noise_terms=False)
    q = np.sort(np.diag(ode.params.Q[-1]))[::-1]
    pred = ppca_collapse(np.array([1.0 * 1.5 + 1.0, 1.0 * 0.5 + 1.0]), beta=2.0, n_latents=2)
    np.testing.assert_allclose(q, pred.latent_variances, atol=2e-3)
    assert beta_c(1.0, 1.0, T) == pytest.approx(2.5)


def test_entangled_then_disentangled_with_unequal_factors() -> None:
    s = LinearVAESetting(M=2, M_star=2, T=np.diag([1.5, 0.5]), beta=0.5)
    init = random_initial_params(s, 1000, seed=0)
    t_eval = np.unique(np.r_[np.linspace(0, 3000, 301), np.geomspace(10, 1e5, 200)])
    ode = solve_ode(s, init, 1e5, t_eval=t_eval)
    m = np.abs(ode.params.m)
    S = ode.params.latent_mean_covariance(1.0, 1.0)
    corr = np.abs(S[:, 0, 1] / np.sqrt(S[:, 0, 0] * S[:, 1, 1]))
    i_pk = int(np.argmax(corr))
    # entangled phase: both latents carry the strong factor (column 0), latent means correlated
    assert corr[i_pk] > 0.2
    assert m[i_pk, 0, 0] > 0.3 and m[i_pk, 1, 0] > 0.3
    # at the end m is diagonal up to permutation: one latent per factor, |m| = sqrt(T_jj) sqrt(rho T_jj + eta - beta)
    final = m[-1]
    perm = np.argmax(final[:, 0])
    strong, weak = final[perm], final[1 - perm]
    assert strong[0] == pytest.approx(math.sqrt(1.5 * 2.0), rel=0.01) and strong[1] < 1e-3
    assert weak[1] == pytest.approx(math.sqrt(0.5 * 1.0), rel=0.01) and weak[0] < 1e-3
    # ... and disentangling takes much longer than entangling
    off = np.minimum(m[:, 0, 1] + m[:, 1, 0], m[:, 0, 0] + m[:, 1, 1]) / m.sum(axis=(1, 2))
    t_dis = ode.t[np.nonzero(off > 0.05)[0][-1] + 1]
    assert t_dis / ode.t[i_pk] > 10


def test_isotropic_factors_only_decorrelate() -> None:
    s = LinearVAESetting(M=2, M_star=2, beta=0.5)
    ode = solve_ode(s, random_initial_params(s, 1000, seed=0), 20000.0, n_eval=3)
    S = ode.params.latent_mean_covariance(1.0, 1.0)[-1]
    assert abs(S[0, 1]) < 1e-4  # decorrelated latent means
    # but the basis is rotated: m is not diagonal up to permutation, and m m^T = (rho + eta - beta) I
    m = ode.params.m[-1]
    assert np.min(np.abs(m)) > 0.05
    np.testing.assert_allclose(m @ m.T, 1.5 * np.eye(2), atol=0.02)


# ----------------------------------------------------------------------------------------------------------
# KL annealing
# ------------------------------------------------------------------------------------------------------------


def test_kl_annealing_speeds_up_then_slows_down() -> None:
    s = LinearVAESetting(beta=1.5)
    init = typical_initial_params(s, 1000)
    t_eval = np.linspace(0.0, 20000.0, 20001)
    const = solve_ode(s, init, 20000.0, t_eval=t_eval)
    target = float(const.eps_g[-1])
    t_const = convergence_time(const.t, const.eps_g, target, 0.01)
    speed = {}
    for gamma in (5e-4, 2e-3):
        ann = solve_ode(s.with_(beta=make_beta_schedule("tanh", 1.5, gamma=gamma)), init, 20000.0, t_eval=t_eval)
        speed[gamma] = t_const / convergence_time(ann.t, ann.eps_g, target, 0.01)
    assert 1.7 < speed[2e-3] < 2.4  # "about 2x at beta_f = 1.5 for gamma near 2e-3"
    assert speed[5e-4] < 0.8  # too slow an annealing delays convergence


# ----------------------------------------------------------------------------------------------------------
# order parameters, eps_g, schedules, validation
# ------------------------------------------------------------------------------------------------------------


def test_generalisation_error_symmetries() -> None:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 2))
    Q = np.eye(3) * 2.0
    e = float(generalisation_error(m, Q, 1.0))
    # invariant under latent permutations and sign flips
    perm = np.array([2, 0, 1])
    flipped = (m * np.array([[1.0], [-1.0], [1.0]]))[perm]
    assert float(generalisation_error(flipped, Q, 1.0)) == pytest.approx(e)
    # brute force over assignments of the 2 factors to distinct latents
    best = max(abs(m[i, 0]) + abs(m[j, 1]) for i in range(3) for j in range(3) if i != j)
    assert e == pytest.approx(2.0 - 2.0 * best + 6.0)
    # the scalar formula: rho - 2 sqrt(rho) |m| + Q
    assert float(generalisation_error(np.array([[-0.3]]), np.array([[0.5]]), 2.0)) == pytest.approx(
        2.0 - 2 * math.sqrt(2.0) * 0.3 + 0.5
    )


def test_trajectory_helpers() -> None:
    s = LinearVAESetting(M=2)
    run = solve_ode(s, random_initial_params(s, 500, n_samples=3, seed=0), 100.0, n_eval=11)
    assert run.params.batch_shape == (3, 11)
    p = run.at(49.0)  # nearest recorded time: 50
    assert p.batch_shape == (3,)
    np.testing.assert_allclose(p.Q, run.params.Q[:, 5])
    one = run.seed(1)
    assert one.params.batch_shape == (11,)
    np.testing.assert_allclose(one.at(100.0).m, run.params.m[1, -1])
    cols = one.columns()
    assert set(cols) >= {"t", "eps_g", "m_2_1", "Q_1_2", "D_2"} and cols["t"].shape == (11,)
    aligned = run.aligned()
    assert np.all(aligned.params.m[:, -1].sum(-1) >= 0)
    np.testing.assert_allclose(aligned.eps_g, run.eps_g)


def test_order_params_flip_signs_and_packing_roundtrip() -> None:
    p = random_initial_params(LinearVAESetting(M=3, M_star=2), 200, seed=0)
    layout = StateLayout(3, 2)
    q = layout.unpack(layout.pack(p))
    for f in ("m", "d", "R", "D"):
        np.testing.assert_allclose(getattr(q, f), getattr(p, f))
    np.testing.assert_allclose(q.Q, 0.5 * (p.Q + p.Q.T))
    f = p.flip_signs(np.array([1.0, -1.0, 1.0]))
    assert f.m[1, 0] == -p.m[1, 0] and f.Q[0, 1] == -p.Q[0, 1] and f.Q[1, 1] == p.Q[1, 1]
    assert float(f.eps_g(1.0)) == pytest.approx(float(p.eps_g(1.0)))


def test_beta_schedules() -> None:
    t = np.array([0.0, 100.0, 1000.0])
    np.testing.assert_allclose(make_beta_schedule("constant", 1.5)(t), 1.5)
    np.testing.assert_allclose(make_beta_schedule("tanh", 1.5, gamma=2e-3)(t), 1.5 * np.tanh(2e-3 * t))
    np.testing.assert_allclose(make_beta_schedule("linear", 2.0, t_ramp=500.0)(t), [0.0, 0.4, 2.0])
    assert BETA_SCHEDULES == ("constant", "tanh", "linear")
    with pytest.raises(ValueError, match="valid choices: constant, tanh, linear"):
        make_beta_schedule("cyclical", 1.0)
    with pytest.raises(ValueError, match="gamma"):
        make_beta_schedule("tanh", 1.0)
    s = LinearVAESetting(beta=make_beta_schedule("linear", 2.0, t_ramp=500.0))
    assert s.beta_final == 2.0
    np.testing.assert_allclose(s.beta_at(t), [0.0, 0.4, 2.0])


def test_linear_schedule_in_the_ode_matches_constant_after_the_ramp() -> None:
    # after the ramp the schedule is constant, so both runs converge to the same fixed point
    s = LinearVAESetting(beta=1.5)
    ramp = s.with_(beta=make_beta_schedule("linear", 1.5, t_ramp=300.0))
    a = solve_ode(s, AUTHORS_INIT, 15000.0, n_eval=2)
    b = solve_ode(ramp, AUTHORS_INIT, 15000.0, n_eval=2)
    assert float(b.eps_g[-1]) == pytest.approx(float(a.eps_g[-1]), abs=1e-6)
    assert b.params.D[-1, 0] == pytest.approx(1.5 / 2.0, abs=0.01)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"T must be an M\* x M\* matrix"):
        LinearVAESetting(M_star=2, T=np.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        LinearVAESetting(M_star=2, T=np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive definite"):
        LinearVAESetting(M_star=2, T=np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="tau"):
        LinearVAESetting(tau=0.0)
    with pytest.raises(ValueError, match="M must be a positive integer"):
        LinearVAESetting(M=0)
    with pytest.raises(ValueError, match="beta"):
        LinearVAESetting(beta=-1.0)
    with pytest.raises(TypeError, match="make_beta_schedule"):
        LinearVAESetting(beta="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="M, M\\* = 1, 1"):
        solve_ode(LinearVAESetting(M=2), AUTHORS_INIT, 10.0)
    with pytest.raises(ValueError, match="shape"):
        OrderParams(
            np.zeros((1, 1)),
            np.zeros((1, 1)),
            np.zeros((2, 2)),
            np.zeros((1, 1)),
            np.zeros((1, 1)),
            np.ones(1),
        )
