"""Objectives: rate/distortion terms, regularisers (free bits, ...), coefficient schedules."""

from vaelab.objectives import consistency  # noqa: F401  (registers the consistency-regularisation terms)
from vaelab.objectives.density_gap import DensityGap
from vaelab.objectives.objective import (
    EXTRA_TERMS,
    NonFiniteLossError,
    Objective,
    ObjectiveConfig,
    ObjectiveOutput,
    build_objective,
)
from vaelab.objectives.schedules import SCHEDULES, Schedule, ScheduleConfig, build_schedule
from vaelab.objectives.terms import REGULARISERS, BatchFreeBits, FineFreeBits, ForwardPass, Rate, Term

__all__ = [
    "EXTRA_TERMS",
    "REGULARISERS",
    "SCHEDULES",
    "BatchFreeBits",
    "DensityGap",
    "FineFreeBits",
    "ForwardPass",
    "NonFiniteLossError",
    "Objective",
    "ObjectiveConfig",
    "ObjectiveOutput",
    "Rate",
    "Schedule",
    "ScheduleConfig",
    "Term",
    "build_objective",
    "build_schedule",
]
