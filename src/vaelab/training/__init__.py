"""Training: the loop, strategies, checkpoints, run folders and data parallelism.

:mod:`vaelab.training.strategies` holds the strategy contract and its registry (:data:`STRATEGIES`, with
``joint``); the strategies defined in their own modules (:mod:`~vaelab.training.aggressive`,
:mod:`~vaelab.training.pretrain`) register themselves when imported here, so that every import of a module of
this package sees them all.
"""

from vaelab.training import aggressive as aggressive  # (registers the strategy)
from vaelab.training import pretrain as pretrain  # (registers the strategy)
