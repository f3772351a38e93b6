"""Evaluation metrics for VAEs and posterior collapse, all in nats per example unless a name says otherwise.

Where each metric lives:

- :mod:`vaelab.metrics.likelihood`: IW log-likelihood / IW-NLL (Burda et al., ICLR 2016), the ELBO with its
  rate and distortion, bits per dimension, perplexity;
- :mod:`vaelab.metrics.information`: mutual information I_q(x; z) with an explicit pool (Hoffman & Johnson
  2016; He et al., ICLR 2019);
- :mod:`vaelab.metrics.units`: active units (Burda et al. 2016) and the per-dimension rate;
- :mod:`vaelab.metrics.collect`: per-example collection over an evaluation loader (gatherable across
  data-parallel processes) and the set-level summary.
"""

import vaelab.metrics.holes  # noqa: F401  (registers the hole metrics, Zhang et al. 2022)
from vaelab.metrics import consistency, probe  # noqa: F401  (register the probe and consistency metrics)
from vaelab.metrics.collect import EvalCollection, collect, eval_mode, summarise
from vaelab.metrics.information import (
    MIEstimate,
    mutual_information,
    mutual_information_minibatches,
    mutual_information_terms,
)
from vaelab.metrics.likelihood import (
    DEFAULT_IW_CHUNK,
    bits_per_dim,
    elbo_terms,
    elbo_terms_from_posterior,
    iw_log_likelihood,
    iw_log_likelihood_from_posterior,
    iw_nll,
    perplexity,
)
from vaelab.metrics.units import active_units, kl_per_dim

__all__ = [
    "DEFAULT_IW_CHUNK",
    "EvalCollection",
    "MIEstimate",
    "active_units",
    "bits_per_dim",
    "collect",
    "elbo_terms",
    "elbo_terms_from_posterior",
    "eval_mode",
    "iw_log_likelihood",
    "iw_log_likelihood_from_posterior",
    "iw_nll",
    "kl_per_dim",
    "mutual_information",
    "mutual_information_minibatches",
    "mutual_information_terms",
    "perplexity",
    "summarise",
]
