"""Training: the loop, strategies, checkpoints, run folders and data parallelism."""
