"""The ``vaelab`` command line.

    vaelab train CONFIG.yaml [key=value ...] [--out DIR]     train a run into DIR
    vaelab resume DIR [eval.KEY=value ...]                    continue a killed or interrupted run
    vaelab evaluate DIR [--split test] [--iw-samples K] [data.eval_size=N ...]
                                                              metrics table on stdout + DIR/eval.json
    vaelab theory linear-vae ...                              linear-VAE learning dynamics (figures + numbers)
    vaelab study collapse --data DATA [--methods ...]         compare collapse remedies: table + report
    vaelab diagnose DIR                                       has the run collapsed, how, what to try
    vaelab report DIR                                         self-contained HTML report (run, sweep, study)

Errors a user can act on (a bad key or value, a bad option, missing or malformed data files, a damaged checkpoint,
a folder that cannot be written, a full disk, a device that is not there) are printed as one line without a
traceback and exit with status 2; a run that failed (a NaN loss) exits with status 1. Every value is checked
before any work starts (:mod:`vaelab.checks`). Those errors are raised as :class:`~vaelab.errors.UserError`
(:class:`~vaelab.errors.ConfigError` for a bad key or value), :class:`~vaelab.data.DataError`, an unknown
registered name or an OS error; any other exception, a plain ``ValueError`` included, is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from vaelab import __version__


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``vaelab train: error: MESSAGE (see vaelab train --help)``, status 2.
    Sub-command parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _out_dir(args: argparse.Namespace, cfg: Any) -> Path:
    if args.out:
        return Path(args.out)
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train(args: argparse.Namespace) -> int:
    from vaelab.checks import check_device_available
    from vaelab.config import load_config
    from vaelab.oserrors import check_output_folder
    from vaelab.runlock import check_unlocked
    from vaelab.training.trainer import Trainer

    cfg = load_config(args.config, args.overrides)
    out = _out_dir(args, cfg)
    check_output_folder(out)
    check_device_available(cfg.train.device)
    check_unlocked(out)  # a live writer is named at once (the trainer takes the lock itself)
    trainer = Trainer(cfg, out)
    summary = trainer.fit()
    if trainer.run.dist.is_main:
        _print_table(summary, title=f"{cfg.name}: {summary['split']} split (best epoch {summary['best_epoch']})")
        print(f"\nrun folder: {out}\n{_how_to_read(out, summary)}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from vaelab.checks import RESUME_KEYS, check_device_available, check_extras_every_epoch, check_override_keys
    from vaelab.config import ConfigError, load_saved_config
    from vaelab.oserrors import check_output_folder
    from vaelab.run import check_trained_data_content
    from vaelab.runconfig import expand_overrides
    from vaelab.runfolder import RunFolder, not_a_run_folder
    from vaelab.runlock import check_unlocked
    from vaelab.training.trainer import Trainer

    check_override_keys(args.overrides, RESUME_KEYS, "vaelab resume")
    folder = RunFolder(args.dir)
    if not folder.config.is_file():
        raise FileNotFoundError(not_a_run_folder(folder.root))
    wrong = folder.checkpoint_not_a_file(folder.last)
    if wrong:
        raise FileNotFoundError(wrong)
    if not folder.last.is_file():
        if folder.has_records():  # not "never reached its first checkpoint": `train --out` would refuse it
            raise FileNotFoundError(
                f"{folder.last} does not exist but the run logged evaluations, so it cannot be resumed; put last.pt "
                "back if it was moved, or train the run again with another --out"
            )
        raise FileNotFoundError(
            f"{folder.last} does not exist: the run never reached its first checkpoint; train it again"
        )
    cfg = load_saved_config(folder.config, args.overrides)
    if any(
        o.split("=", 1)[0].strip() in ("eval.extras_every_epoch", "eval.extra_metrics")
        for o in expand_overrides(args.overrides)
    ):
        check_extras_every_epoch(cfg)
    for read in (folder.read_metrics, folder.read_steps):  # a damaged log is refused now, before "resuming ..."
        read()
    check_output_folder(folder.root, flag="run folder")
    check_device_available(cfg.train.device)
    check_unlocked(folder.root)
    trainer = Trainer(cfg, folder.root, resume=True)
    check_trained_data_content(folder.config, trainer.run.dataset)  # the data it was trained on, not other data
    trainer.resume_overrides = tuple(args.overrides)
    if trainer.state["done"] and folder.summary.is_file():
        if args.overrides:  # nothing is left to run, so they would change nothing
            raise ConfigError(
                f"{folder.root} already finished, so the overrides {' '.join(args.overrides)} would change nothing "
                "(resume's overrides apply to what is left of a run); to evaluate it again with other settings use "
                f"`vaelab evaluate {folder.root} eval.KEY=value ...`"
            )
        print(f"{folder.root} already finished; see {folder.summary}")
        return 0
    print(
        f"resuming {folder.root} at epoch {trainer.state['epoch']}, step {trainer.state['step']}",
        file=sys.stderr,
    )
    summary = trainer.fit()
    if trainer.run.dist.is_main:
        _print_table(summary, title=f"{cfg.name}: {summary['split']} split")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vaelab.evaluation import check_evaluate_overrides, evaluate_run
    from vaelab.oserrors import check_output_folder

    check_evaluate_overrides(args.overrides, args.split, args.iw_samples)
    if Path(args.dir).is_dir():
        check_output_folder(args.dir, flag="run folder")
    result = evaluate_run(
        args.dir, split=args.split, iw_samples=args.iw_samples, checkpoint=args.checkpoint, overrides=args.overrides
    )
    _print_table(result, title=f"{args.dir}: {args.split} split, checkpoint {args.checkpoint}")
    print(f"\nwritten: {Path(args.dir) / 'eval.json'}")
    return 0


_ORDER = [
    ("nll_iw", "IW-NLL (nats)"),
    ("iw_samples", "IW samples K"),
    ("elbo", "ELBO (nats)"),
    ("distortion", "distortion (nats)"),
    ("rate", "rate / KL (nats)"),
    ("mi", "MI (nats)"),
    ("mi_pool", "MI pool size"),
    ("au", "active units"),
    ("bpd", "bits/dim"),
    ("ppl_elbo", "PPL (ELBO)"),
    ("ppl_iw", "PPL (IW)"),
    ("n", "examples"),
]


def _print_table(d: dict[str, Any], title: str) -> None:
    print(title)
    width = max(len(label) for _, label in _ORDER)
    for key, label in _ORDER:
        if key in d and d[key] is not None:
            v = d[key]
            s = f"{v:.4f}" if isinstance(v, float) else str(v)
            print(f"  {label:<{width}}  {s}")


SUGGESTED_IW_SAMPLES = 5000


def iw_time_estimate(summary: dict[str, Any], k: int = SUGGESTED_IW_SAMPLES) -> str:
    """How long ``vaelab evaluate --iw-samples k`` would take here, from the final evaluation's time and K (the
    IW-NLL's cost grows linearly with K), e.g. ``about 4.1 h``; "" when the summary does not say."""
    t, k0 = summary.get("eval_time"), summary.get("iw_samples")
    if not isinstance(t, int | float) or not isinstance(k0, int) or k0 < 1 or t <= 0:
        return ""
    seconds = t * k / k0
    if seconds < 10:
        return f"about {seconds:.1f} s"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def _how_to_read(out: Path, summary: dict[str, Any] | None = None) -> str:
    k = SUGGESTED_IW_SAMPLES
    estimate = iw_time_estimate(summary or {}, k)
    cost = (
        f"{estimate} here (the final evaluation with K={summary['iw_samples']} took {summary['eval_time']:.1f} s)"
        if estimate and summary
        else "its time grows linearly with K"
    )
    split = (summary or {}).get("split", "test")
    return (
        "how to read it:\n"
        f"  {out}/summary.json   final {split} metrics (IW-NLL with K samples, ELBO, KL, MI with its pool, AU)\n"
        f"  {out}/metrics.jsonl  one JSON line per epoch and split (elbo, rate, distortion, mi, au, beta, wall_time)\n"
        f"  {out}/config.yaml    the full resolved config, seed, versions and hardware\n"
        f"  vaelab evaluate {out} --iw-samples {k}   re-evaluate the best checkpoint with K={k}: {cost}"
    )


# Subcommands defined next to the code they drive: "module:function", each function adding its parsers to the
# `vaelab` subparsers (and setting ``func``). Adding a command is one line here.
SUBCOMMAND_PLUGINS: list[str] = [
    "vaelab.theory.cli:add_theory_parser",
    "vaelab.generation:add_generation_parsers",
    "vaelab.plots.latent:add_latent_parser",
    "vaelab.lag:add_lag_parser",
    "vaelab.sweep.cli:add_sweep_parsers",
    "vaelab.study.cli:add_study_parser",
    "vaelab.diagnose:add_diagnose_parser",
    "vaelab.report:add_report_parser",
]


def build_parser() -> argparse.ArgumentParser:
    from vaelab.checks import RULES, option

    p = Parser(prog="vaelab", description="Variational autoencoders that do not collapse.")
    p.add_argument("--version", action="version", version=f"vaelab {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a VAE from a YAML config")
    t.add_argument("config", help="YAML config file (see configs/)")
    t.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.latent_dim=16 train.epochs=5")
    t.add_argument("--out", help="run folder (default runs/NAME-TIMESTAMP)")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("resume", help="continue a run from its last checkpoint")
    r.add_argument("dir", help="run folder")
    r.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides of settings that do not change the trained model only: eval.*, "
        "train.log_every_steps, train.progress, train.device, train.tensorboard (saved in DIR/config.yaml)",
    )
    r.set_defaults(func=cmd_resume)

    e = sub.add_parser("evaluate", help="evaluate a trained run; writes DIR/eval.json")
    e.add_argument("dir", help="run folder")
    e.add_argument("--split", default="test", choices=["train", "valid", "test"])
    e.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides of eval.*, data.eval_size (the evaluation subset) and train.device",
    )
    e.add_argument(
        "--iw-samples",
        type=option(RULES["eval.iw_samples"], "--iw-samples"),
        default=None,
        help="K for IW-NLL (default: the run's eval.iw_samples; 0 = none)",
    )
    e.add_argument("--checkpoint", default="best", choices=["best", "last"])
    e.set_defaults(func=cmd_evaluate)

    for spec in SUBCOMMAND_PLUGINS:
        module, _, func = spec.partition(":")
        getattr(importlib.import_module(module), func)(sub)
    return p


def _run(args: argparse.Namespace) -> int:
    """Run the command; under torchrun, wait for every process and leave the process group cleanly (letting it be
    torn down during interpreter exit can abort a gloo process with "terminate called without an active
    exception")."""
    from vaelab.distributed import shutdown_distributed

    ok = False
    try:
        code = int(args.func(args) or 0)
        ok = True
        return code
    finally:
        shutdown_distributed(wait=ok)


PATH_ARGUMENTS = {
    "config": "CONFIG",
    "dir": "DIR",
    "sweep": "SWEEP",
    "out": "--out",
    "file": "--file",
    "plots_dir": "--plots-dir",
    "data": "--data",
    "reuse": "--reuse",
}
"""Arguments that name a file or folder (argparse dest -> how the user wrote it): an empty one is refused (an unset
shell variable in ``--out "$OUT"`` would otherwise mean the default folder, or the working directory), and a
leading ``~`` or ``~user`` is expanded as a shell would (a quoted ``--out '~/x'`` would otherwise make a folder
named ``~`` in the working directory)."""


OUTPUT_ARGUMENTS = ("out", "plots_dir")
"""The arguments of :data:`PATH_ARGUMENTS` that name what vaelab creates: a name with a control character or a
leading or trailing space (a paste slip) is refused rather than made into a folder nobody can type."""


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, but ``key=value`` overrides, and the sentences of ``vaelab reconstruct``, may also
    follow the options (``vaelab evaluate DIR --iw-samples 50 eval.iw_chunk=10``: argparse alone stops collecting a
    list of positionals at the first option and calls the rest unrecognised); an empty file or folder argument is
    refused."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if isinstance(getattr(args, "overrides", None), list) and all(
            "=" in a and not a.startswith("-") for a in extra
        ):
            args.overrides = [*args.overrides, *extra]
        elif isinstance(getattr(args, "sentences", None), list) and not any(a.startswith("-") for a in extra):
            args.sentences = [*args.sentences, *extra]  # `reconstruct DIR --max-length 5 "a sentence"`
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if isinstance(getattr(args, "name", None), str) and not args.name.strip():  # an unset shell variable
        parser.error("--name is empty: give a name (or leave --name out for the default)")
    for dest, name in PATH_ARGUMENTS.items():
        if isinstance(getattr(args, dest, None), str) and not getattr(args, dest).strip():
            parser.error(f"{name} is empty: give a file or folder name")
        if dest in OUTPUT_ARGUMENTS and isinstance(written := getattr(args, dest, None), str):
            if any(ord(c) < 32 or ord(c) == 127 for c in written):  # a pasted newline or tab
                parser.error(f"{name} {written!r} holds a control character (a newline or tab?); give the name alone")
            if written != written.strip():
                parser.error(f"{name} {written!r} begins or ends with a space; give the name without it")
        value = getattr(args, dest, None)
        if isinstance(value, str):
            setattr(args, dest, os.path.expanduser(value))
        elif isinstance(value, list):
            setattr(args, dest, [os.path.expanduser(v) if isinstance(v, str) else v for v in value])
    from vaelab.errors import ConfigError
    from vaelab.runconfig import check_overrides_once

    try:
        check_overrides_once(getattr(args, "overrides", None) or [])
    except ConfigError as e:
        parser.error(str(e))
    return args


def main(argv: list[str] | None = None) -> int:
    from vaelab.allocator import opted_in, setting_error, tune_allocator
    from vaelab.errors import UserError
    from vaelab.registry import UnknownChoiceError

    if (message := setting_error()) is not None:
        print(f"vaelab: error: {message}", file=sys.stderr)
        return 2
    if opted_in():  # VAELAB_MALLOC_TUNING=1: glibc keeps large tensors' pages (docs/text.md); off by default
        tune_allocator()

    args = parse_args(build_parser(), argv)
    try:
        return _run(args)
    except (UserError, UnknownChoiceError, FileNotFoundError, FileExistsError) as e:
        from vaelab.oserrors import describe_os_error

        described = describe_os_error(e) if isinstance(e, OSError) and e.filename is not None else None
        print(f"vaelab: error: {described or _one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `vaelab sample RUN -n 1000 | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except Exception as e:
        from vaelab.data import DataError
        from vaelab.oserrors import describe_os_error, find_os_error
        from vaelab.training.trainer import TrainingFailed

        if isinstance(e, DataError):  # not a ValueError: a ValueError that is no UserError is a bug (traceback)
            print(f"vaelab: error: {_one_line(e)}", file=sys.stderr)
            return 2
        if isinstance(e, TrainingFailed):
            print(f"vaelab: {e}", file=sys.stderr)
            return 1
        os_error = find_os_error(e)
        message = describe_os_error(os_error) if os_error is not None else None
        if message is not None:
            print(f"vaelab: error: {message}", file=sys.stderr)
            return 2
        if _out_of_memory(e):  # the hardware's limit, not a bug: one line saying what to do
            what = _one_line(e).split(" (")[0][:200]
            print(
                f"vaelab: error: `vaelab {args.command}` ran out of memory ({what}); ask for less (smaller model "
                "sizes, batches or counts)",
                file=sys.stderr,
            )
            return 2
        raise
    except KeyboardInterrupt:
        if args.command in ("train", "resume"):
            where = args.dir if args.command == "resume" else (args.out or "DIR")
            print(f"vaelab: interrupted; `vaelab resume {where}` continues from the last checkpoint", file=sys.stderr)
        else:  # evaluate writes eval.json atomically: an interrupted evaluation leaves the previous one
            print(f"vaelab {args.command}: interrupted before it finished; run it again", file=sys.stderr)
        return 130


def _out_of_memory(e: BaseException) -> bool:
    """Whether ``e`` is an allocation failure (host or device memory)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None)
    if isinstance(e, MemoryError) or (oom is not None and isinstance(e, oom)):
        return True
    # torch's "Storage size calculation overflowed": a tensor larger than 2**63 bytes was asked for
    too_large = ("can't allocate memory", "out of memory", "Storage size calculation overflowed")
    return isinstance(e, RuntimeError) and any(t in str(e) for t in too_large)


def _one_line(e: BaseException) -> str:
    """An error's message on one line (a message that spans lines is joined with ' | ')."""
    return " | ".join(ln.strip() for ln in str(e).splitlines() if ln.strip())


if __name__ == "__main__":
    raise SystemExit(main())
