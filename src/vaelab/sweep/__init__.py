"""Sweeps: many runs from one base config, each point addressed by a deterministic index, then aggregation.

Three separate steps, each writing files (after disentanglement_lib's design):

1. run: :func:`run_sweep` / ``vaelab sweep SWEEP.yaml`` trains (or resumes) each point's run folder and measures
   it on train and test (:mod:`vaelab.sweep.measure`); ``--index I`` runs one point, for job arrays;
2. aggregate: :func:`write_results` / ``vaelab sweep-aggregate DIR`` -> ``DIR/results.csv``;
3. plot: :func:`plot_sweep` / ``vaelab plot-sweep DIR`` -> ``DIR/plots/*.png``.

The sweep file format and the index order: :mod:`vaelab.sweep.spec`; the folder layout and point states:
:mod:`vaelab.sweep.runner`. Guide: docs/sweeps.md.
"""

from __future__ import annotations

from vaelab.sweep.aggregate import collect_rows, read_results, write_results
from vaelab.sweep.measure import measure_run
from vaelab.sweep.runner import PointResult, RunOptions, point_state, run_point, run_sweep
from vaelab.sweep.spec import MeasureSpec, SweepError, SweepPoint, SweepSpec, load_sweep, spec_from_dict

__all__ = [
    "MeasureSpec",
    "PointResult",
    "RunOptions",
    "SweepError",
    "SweepPoint",
    "SweepSpec",
    "collect_rows",
    "load_sweep",
    "measure_run",
    "plot_sweep",
    "point_state",
    "read_results",
    "run_point",
    "run_sweep",
    "spec_from_dict",
    "write_results",
]


def plot_sweep(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Lazy alias of :func:`vaelab.sweep.plots.plot_sweep` (matplotlib is imported only when plotting)."""
    from vaelab.sweep.plots import plot_sweep as _plot

    return _plot(*args, **kwargs)
