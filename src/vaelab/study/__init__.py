"""Studies: a panel of methods trained and measured under one budget, compared in one table and one report.

``vaelab study collapse --data DATA`` (:mod:`vaelab.study.collapse`) compares the collapse remedies of
:mod:`vaelab.study.methods`.
"""

from __future__ import annotations

from vaelab.study.collapse import StudyRequest, base_config, run_study, study_spec, study_table, write_table
from vaelab.study.methods import DEFAULT_PANEL, METHODS, Budget, Method, method_overrides

__all__ = [
    "DEFAULT_PANEL",
    "METHODS",
    "Budget",
    "Method",
    "StudyRequest",
    "base_config",
    "method_overrides",
    "run_study",
    "study_spec",
    "study_table",
    "write_table",
]
