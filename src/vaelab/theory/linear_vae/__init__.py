"""Learning dynamics of the linear VAE (Ichikawa & Hukushima, "Learning dynamics in linear VAE: posterior
collapse threshold, superfluous latent space pitfalls, and speedup with KL annealing", AISTATS 2024).

Modules:

* :mod:`.setting` -- problem definition (:class:`LinearVAESetting`), beta schedules, order parameters, ``eps_g``;
* :mod:`.simulate` -- finite-``N`` online SGD (exact, vectorised over seeds; ``reduced`` and ``weights`` backends);
* :mod:`.ode` -- the ``N -> infinity`` ODE for the order parameters (any ``M``, ``M*``, ``T``, ``lambda``,
  ``beta(t)``, with or without the ``tau^2`` terms);
* :mod:`.fixed_points` -- fixed points, ``eps_g*``, ``beta_c``, plateau escape rate, stability, pPCA rule;
* :mod:`.figures` -- the six figures (imported lazily: it needs matplotlib).

Time is ``t = SGD steps / N`` throughout.
"""

from vaelab.theory.linear_vae.fixed_points import (
    PPCAPrediction,
    StabilityResult,
    beta_c,
    collapse_stability,
    collapsed_fixed_point,
    convergence_time,
    eps_g_star,
    escape_time,
    find_fixed_point,
    jacobian,
    learning_fixed_point,
    plateau_escape_rate,
    ppca_collapse,
    predicted_plateau_length,
    superfluous_latent_variance,
    typical_initial_params,
)
from vaelab.theory.linear_vae.ode import (
    AUTHORS_INIT,
    AUTHORS_ODE_EPS_G,
    AUTHORS_SGD_EPS_G,
    AUTHORS_TIMES,
    StateLayout,
    ode_rhs,
    solve_ode,
)
from vaelab.theory.linear_vae.setting import (
    BETA_SCHEDULES,
    ConstantBeta,
    LinearBeta,
    LinearVAESetting,
    OrderParams,
    TanhBeta,
    Trajectory,
    generalisation_error,
    make_beta_schedule,
    make_teacher,
)
from vaelab.theory.linear_vae.simulate import (
    SGD_BACKENDS,
    initial_weights,
    order_params_gram,
    random_initial_params,
    simulate_sgd,
    weights_from_order_params,
)

__all__ = [
    "AUTHORS_INIT",
    "AUTHORS_ODE_EPS_G",
    "AUTHORS_SGD_EPS_G",
    "AUTHORS_TIMES",
    "BETA_SCHEDULES",
    "SGD_BACKENDS",
    "ConstantBeta",
    "LinearBeta",
    "LinearVAESetting",
    "OrderParams",
    "PPCAPrediction",
    "StabilityResult",
    "StateLayout",
    "TanhBeta",
    "Trajectory",
    "beta_c",
    "collapse_stability",
    "collapsed_fixed_point",
    "convergence_time",
    "eps_g_star",
    "escape_time",
    "find_fixed_point",
    "generalisation_error",
    "initial_weights",
    "jacobian",
    "learning_fixed_point",
    "make_beta_schedule",
    "make_teacher",
    "ode_rhs",
    "order_params_gram",
    "plateau_escape_rate",
    "ppca_collapse",
    "predicted_plateau_length",
    "random_initial_params",
    "simulate_sgd",
    "solve_ode",
    "superfluous_latent_variance",
    "typical_initial_params",
    "weights_from_order_params",
]
