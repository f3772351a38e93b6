"""vaelab: variational autoencoders that do not collapse.

Train VAEs with the published remedies against posterior collapse, measure collapse honestly
(rate, distortion, IW-NLL, mutual information with its pool, active units, hole metrics) and
compare remedies side by side. All quantities are in nats per example unless stated otherwise.
"""

__version__ = "0.1.0"
