"""``vaelab study collapse``: train a panel of collapse remedies under one budget, compare them, write a report.

vaelab study collapse --data mnist                                   the default panel, 2 epochs, seed 0
vaelab study collapse --data ptb --methods plain,anneal,aggressive,aggressive_anneal --budget 1ep
vaelab study collapse --data my_run.yaml --seeds 0,1,2 --workers 2   a run config as the plain VAE
vaelab study collapse --list-methods                                 the registered methods
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vaelab.checks import RULES, option
from vaelab.errors import ConfigError
from vaelab.oserrors import check_output_folder
from vaelab.study.collapse import StudyRequest, run_study, study_spec
from vaelab.study.methods import DEFAULT_PANEL, METHODS
from vaelab.sweep.runner import WORKERS_PER_CORE, max_workers, workers_option


def _csv_list(text: str, flag: str = "--methods") -> list[str]:
    """``a,b,c`` -> [a, b, c]; an empty list or item (``''``, ``a,,b``, ``a,``) is refused: it is a typo, not a
    request for the default."""
    items = [t.strip() for t in text.split(",")]
    if not all(items):
        raise ConfigError(f"{flag} {text!r}: expected NAME or NAME,NAME,... without empty items")
    return items


MAX_SEEDS = 1000
"""The most seeds of one study (``--seeds``)."""


def _seeds(text: str) -> list[int]:
    from vaelab.sweep.cli import parse_indices

    try:
        seeds = parse_indices(text, MAX_SEEDS, "--seeds")
        given = [s for part in text.split(",") for s in parse_indices(part, MAX_SEEDS, "--seeds")]
    except ConfigError as e:
        if "more than" in str(e):  # a range like 0-100000000: one study run per seed and method
            raise ConfigError(f"{e}; a study runs every method once per seed") from None
        raise ConfigError(f"--seeds {text!r}: expected S, S,T or A-B (non-negative integers)") from None
    if len(given) != len(seeds):  # `1,1`: a typo for 1,2? one seed would run where two were written
        twice = next(s for s in given if given.count(s) > 1)
        raise ConfigError(f"--seeds {text!r}: seed {twice} is given twice; give each seed once")
    return seeds


def cmd_study_collapse(args: argparse.Namespace) -> int:
    if args.list_methods:
        for name in METHODS.names():
            m = METHODS.get(name)
            mark = "*" if name in DEFAULT_PANEL else " "
            print(f"{mark} {name:<18} {m.description}")
        print("(* = in the default panel)")
        return 0
    if not args.data:
        raise ConfigError("--data is required: a data set name (mnist, fashion_mnist, ptb, ...) or a run config YAML")
    req = StudyRequest(
        data=args.data,
        methods=_csv_list(args.methods) if args.methods is not None else list(DEFAULT_PANEL),
        budget=args.budget,
        seeds=_seeds(args.seeds),
        iw_samples=args.iw_samples,
        overrides=list(args.set or []),
        method_overrides=list(args.method_set or []),
        name=args.name,
    )
    req.validate()
    data_name = Path(args.data).stem if args.data.endswith((".yaml", ".yml")) else args.data
    out = Path(args.out) if args.out else Path("runs") / "studies" / f"collapse_{data_name}"
    from vaelab.sweep import spec_from_dict
    from vaelab.sweep.runner import check_ray_address, check_reuse_folders, check_sweep_folder

    check_output_folder(out)
    check_ray_address(args.address, args.backend)
    check_reuse_folders(args.reuse or [], out)
    spec = spec_from_dict(study_spec(req), "study")
    spec.validate()  # every run's config, before anything is written
    check_sweep_folder(spec, out)  # a run folder, or a study of other methods or measurements: refused now
    print(
        f"study: {len(req.methods)} methods x {len(req.seeds)} seed(s) on {args.data}, budget {req.budget} each -> "
        f"{out}",
        file=sys.stderr,
    )
    try:
        table, md = run_study(
            req,
            out,
            workers=args.workers,
            backend=args.backend,
            address=args.address,
            retry_failed=args.retry_failed,
            reuse=list(args.reuse or []),
        )
    except KeyboardInterrupt:
        print(f"vaelab study: interrupted; the same command continues where it stopped (--out {out})", file=sys.stderr)
        return 130
    print(md.read_text())
    print(f"table: {md} and {out / 'study.csv'}")
    if args.report:
        from vaelab.report import write_report

        path = write_report(out)
        print(f"report: {path}")
    failed = [r for r in table if r["seeds_failed"]]
    return 1 if failed else 0


def add_study_parser(subparsers: Any) -> None:
    """Add ``vaelab study collapse`` to the command line."""
    s = subparsers.add_parser("study", help="compare methods on a data set (a panel of runs, one table, one report)")
    kinds = s.add_subparsers(dest="study", required=True)
    c = kinds.add_parser(
        "collapse",
        help="which posterior-collapse remedy works on a data set, at what cost",
        description="Train a panel of collapse remedies under the same budget and seeds, measure each on the test "
        "split (IW-NLL, KL, MI with its pool, AU, CU, a linear probe on z ~ q(z|x) where labels exist, wall time "
        "and its ratio to the plain VAE) and "
        "write study.md, study.csv and report.html. Re-running the same command continues a killed study.",
    )
    c.add_argument(
        "--data",
        help="data set name (mnist, fashion_mnist, binarized_mnist, omniglot, ptb, text, ...) "
        "or a run config YAML whose model is the plain VAE of the study",
    )
    c.add_argument("--methods", help="comma-separated methods (default: the default panel; see --list-methods)")
    c.add_argument("--budget", default="2ep", help="per method: epochs (2, 2ep) or steps (500steps); default 2ep")
    c.add_argument("--seeds", default="0", help="seeds: S, S,T or A-B (default 0)")
    c.add_argument(
        "--iw-samples",
        type=option(RULES["eval.iw_samples"], "--iw-samples"),
        default=100,
        help="K of the test IW-NLL (default 100; 0 = none)",
    )
    c.add_argument(
        "--set",
        nargs="+",  # at least one: an empty list is an unset shell variable, not a request
        action="extend",
        metavar="KEY=VALUE",
        help="overrides of the base config (data.train_size=...); may be repeated",
    )
    c.add_argument(
        "--method-set",
        nargs="+",  # at least one: an empty list is an unset shell variable, not a request
        action="extend",
        metavar="METHOD:KEY=VALUE",
        help="overrides for some methods only, e.g. aggressive,aggressive_anneal:train.strategy_options."
        "check_every_steps=50 (after the method's own settings)",
    )
    c.add_argument("--name", help="study name (default collapse_DATA)")
    c.add_argument("--out", help="study folder (default runs/studies/collapse_DATA)")
    c.add_argument(
        "--workers",
        type=workers_option("--workers"),
        default=1,
        help=f"runs at a time (default 1: comparable wall times; at most {WORKERS_PER_CORE} per core, "
        f"{max_workers()} here)",
    )
    c.add_argument("--backend", default="local", choices=["local", "ray"], help="local processes or Ray tasks")
    c.add_argument("--address", help="Ray cluster address (default: a local Ray instance)")
    c.add_argument("--retry-failed", action="store_true", help="run methods recorded as failed again")
    c.add_argument(
        "--reuse",
        nargs="+",  # at least one: an empty list is an unset shell variable, not a request
        action="extend",
        metavar="DIR",
        help="earlier study or sweep folders: a run there with the same config (seed included) is copied in, "
        "not trained again (extend a study by a method, or assemble one from earlier studies); may be repeated",
    )
    c.add_argument("--report", action=argparse.BooleanOptionalAction, default=True, help="write report.html")
    c.add_argument("--list-methods", action="store_true", help="list the registered methods and exit")
    c.set_defaults(func=cmd_study_collapse)
