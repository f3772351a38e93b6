"""``vaelab sweep``, ``vaelab sweep-aggregate`` and ``vaelab plot-sweep``.

vaelab sweep SWEEP.yaml [--out DIR] [--workers N] [--backend local|ray] [--address ADDR]
vaelab sweep SWEEP.yaml --index I [--out DIR]      one point (a job-array task; SLURM_ARRAY_TASK_ID by default)
vaelab sweep SWEEP.yaml --list [--out DIR]         the points, their folders and states
vaelab sweep-aggregate DIR                         DIR/results.csv (+ .parquet with pyarrow), cells.csv, results.md
vaelab plot-sweep DIR                              DIR/plots/*.png
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from vaelab.oserrors import check_output_folder
from vaelab.sweep.aggregate import RESULTS_CSV, read_results, status_counts, write_results, write_summary
from vaelab.sweep.runner import (
    WORKERS_PER_CORE,
    RunOptions,
    check_same_sweep,
    display_state,
    listed_point_dirs,
    max_workers,
    run_sweep,
    workers_option,
)
from vaelab.sweep.spec import SweepError, load_sweep
from vaelab.sweep.stopping import step_cap_line

MAX_INDICES = 10**6
"""The most indices ``--index`` (and ``study --seeds``) may name: a range is checked before it is expanded (a
typo such as ``0-99999999999`` took 23 GB)."""


def parse_indices(text: str, limit: int = MAX_INDICES, flag: str = "--index") -> list[int]:
    """``"3"``, ``"0,4,7"``, ``"10-19"`` or combinations (``"0-3,8"``) -> sorted point indices; at most ``limit``
    of them."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:  # "0,,1" or "0,": a typo, refused rather than guessed
            raise SweepError(f"--index {text!r}: expected I, I,J,K or A-B (non-negative integers, no empty items)")
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ValueError
                if hi - lo + 1 > limit:
                    raise SweepError(f"{flag} {text!r}: {part} names {hi - lo + 1} indices, more than {limit}")
                out.update(range(lo, hi + 1))
            else:
                out.add(int(part))
            if len(out) > limit:
                raise SweepError(f"{flag} {text!r}: names more than {limit} indices")
        except SweepError:
            raise
        except ValueError:
            raise SweepError(f"--index {text!r}: expected I, I,J,K or A-B (non-negative integers)") from None
    if not out or min(out) < 0:
        raise SweepError(f"--index {text!r}: expected I, I,J,K or A-B (non-negative integers)")
    return sorted(out)


def _default_out(name: str) -> Path:
    return Path("runs") / "sweeps" / name


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = load_sweep(args.sweep)
    out = Path(args.out) if args.out else _default_out(spec.name)
    if args.list:
        stored = check_same_sweep(spec, out)  # the states of another sweep's points would be listed as this one's
        folders = listed_point_dirs(spec, out, stored)  # appended seeds: the stored folders, not yet renamed
        try:
            shape = f"seeds x variants x zip x grid = {spec.shape}"
            print(f"# sweep {spec.name}: {len(spec)} points ({shape}); {out}")
            for p in spec.points():
                folder = folders[p.index]
                print(f"{p.index}\t{folder.name}\t{display_state(folder)}\t{' '.join(p.overrides)}")
            sys.stdout.flush()
        except BrokenPipeError:  # `vaelab sweep S.yaml --list | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

    check_output_folder(out)
    index_text = args.index
    slurm = os.environ.get("SLURM_ARRAY_TASK_ID") if index_text is None and not args.all else None
    if slurm:
        index_text = slurm
    try:
        indices = parse_indices(index_text) if index_text is not None else None
        for i in indices or ():
            spec.point(i)  # out of range: refused here, before any point runs
    except SweepError as e:
        if slurm:  # the index came from the environment: name it (one line)
            raise SweepError(f"SLURM_ARRAY_TASK_ID={slurm!r}: {e} (unset it, or pass --index or --all)") from None
        raise
    if slurm:
        print(f"vaelab sweep: point {index_text} from SLURM_ARRAY_TASK_ID (--all runs every point)", file=sys.stderr)
    options = RunOptions(retry_failed=args.retry_failed, ignore_locks=args.ignore_locks)
    try:
        results = run_sweep(
            spec,
            out,
            indices=indices,
            workers=args.workers,
            backend=args.backend,
            address=args.address,
            options=options,
            reuse=list(args.reuse or []),
        )
    except KeyboardInterrupt:
        print(
            f"vaelab sweep: interrupted; the same command continues (completed points are skipped, interrupted ones "
            f"resume from their last checkpoint): vaelab sweep {args.sweep} --out {out}",
            file=sys.stderr,
        )
        return 130
    aggregate = args.aggregate if args.aggregate is not None else indices is None
    if aggregate:
        path = write_results(out)

        rows = read_results(path)
        counts = status_counts(rows)
        print(f"results: {path} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})")
        written = write_summary(out)
        print(f"{step_cap_line(rows)}; per cell (mean ± 95% CI over seeds): {written[1]}")
        if len(written) > 2:
            print(f"claims of Bozkurt et al. decided from the cells: {written[2]}")
    else:
        print(f"sweep folder: {out} (aggregate with `vaelab sweep-aggregate {out}` when every task has finished)")
    bad = [r for r in results if r.status in ("failed", "not_run", "locked")]
    for r in bad:
        print(f"point {r.index}: {r.status}{': ' + r.error if r.error else ''}", file=sys.stderr)
    return 1 if bad else 0


def cmd_aggregate(args: argparse.Namespace) -> int:
    path = write_results(args.dir)
    rows = read_results(path)
    counts = status_counts(rows)
    print(f"written: {path} ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})")
    for extra in write_summary(args.dir):
        print(f"written: {extra}")
    print(step_cap_line(rows))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from vaelab.sweep.plots import plot_sweep

    if args.aggregate or not (Path(args.dir) / RESULTS_CSV).is_file():
        write_results(args.dir)
    for path in plot_sweep(args.dir, beta_key=args.beta_key, plots_dir=args.plots_dir, error=args.error_bars):
        print(f"written: {path}")
    return 0


def add_sweep_parsers(subparsers: Any) -> None:
    """Add ``sweep``, ``sweep-aggregate`` and ``plot-sweep`` to the ``vaelab`` command line."""
    s = subparsers.add_parser(
        "sweep",
        help="run a sweep (grid/variants x seeds) of runs, each point in its own run folder",
        description="Run the points of a sweep file; re-running continues a killed sweep (see docs/sweeps.md).",
    )
    s.add_argument("sweep", help="sweep file (YAML: base, fixed, variants, zip, grid, seeds, measure)")
    s.add_argument("--out", help="sweep folder (default runs/sweeps/NAME)")
    s.add_argument(
        "--index",
        help="run only these points: I, I,J,K or A-B (default: $SLURM_ARRAY_TASK_ID when set, else every point)",
    )
    s.add_argument("--all", action="store_true", help="run every point even when SLURM_ARRAY_TASK_ID is set")
    s.add_argument("--list", action="store_true", help="print the points (index, folder, state, overrides) and exit")
    s.add_argument(
        "--workers",
        type=workers_option("--workers"),
        default=None,
        help=f"parallel worker processes (default: one per core; at most {WORKERS_PER_CORE} per core, "
        f"{max_workers()} here)",
    )
    s.add_argument("--backend", default="local", choices=["local", "ray"], help="local processes or Ray tasks")
    s.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    s.add_argument("--retry-failed", action="store_true", help="run points recorded as failed again")
    s.add_argument(
        "--reuse",
        nargs="+",  # at least one: an empty list is an unset shell variable, not a request
        action="extend",
        metavar="DIR",
        help="other sweep or study folders: a point there with the same run config (seed included) is copied in, "
        "not trained again; may be repeated",
    )
    s.add_argument("--ignore-locks", action="store_true", help="run points even if another process holds them")
    s.add_argument(
        "--aggregate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write DIR/results.csv at the end (default: yes, except with --index)",
    )
    s.set_defaults(func=cmd_sweep)

    a = subparsers.add_parser(
        "sweep-aggregate",
        help="collect a sweep folder's points into DIR/results.csv; mean ± CI over seeds into cells.csv, results.md",
    )
    a.add_argument("dir", help="sweep folder")
    a.set_defaults(func=cmd_aggregate)

    p = subparsers.add_parser("plot-sweep", help="rate-distortion, generalisation and MI figures into DIR/plots")
    p.add_argument("dir", help="sweep folder")
    p.add_argument("--beta-key", help="parameter column of beta (default objective.beta)")
    p.add_argument("--plots-dir", help="where the PNGs go (default DIR/plots)")
    p.add_argument("--aggregate", action="store_true", help="re-aggregate results.csv first")
    p.add_argument(
        "--error-bars",
        default="ci",
        choices=["ci", "range"],
        help="over seeds: the 95%% Student-t confidence interval of the mean (default) or the range",
    )
    p.set_defaults(func=cmd_plot)
