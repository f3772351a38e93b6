"""Theory of VAE training: exactly solvable models of learning dynamics and posterior collapse.

* :mod:`vaelab.theory.linear_vae` -- online SGD and its ODE limit for the linear VAE of Ichikawa & Hukushima
  (AISTATS 2024): collapse threshold ``beta_c``, superfluous latents, KL annealing, entangled-then-disentangled
  learning.
* :mod:`vaelab.theory.cli` -- the ``vaelab theory ...`` command line.
"""
