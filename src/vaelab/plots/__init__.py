"""Figures of trained runs: :mod:`vaelab.plots.latent` (``vaelab latent-plot``: latent space, aggregated posterior
against the prior, holes)."""
