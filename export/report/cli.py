"""`python -m export report ART [ART ...] --out DIR`: the command line (see `export.report`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

from edge.args import Parser, finite_number
from edge.bench import BENCH_SECONDS
from edge.errors import UserError
from export.report.evaluation import make_report
from export.report.output import MARKER, check_out_dir, write_report
from export.report.settings import DEFAULT_THRESHOLDS, ReportOptions


def build_parser() -> argparse.ArgumentParser:
    """The arguments of `python -m export report`."""
    p = Parser(prog="python -m export report",
               description="Accuracy, false alarms and cost of each model variant, as on a device.")
    p.add_argument("artifacts", nargs="+", type=Path, help="artifacts folder(s); several are compared")
    p.add_argument("--out", type=Path, required=True,
                   help="report folder to write: new, empty, or an earlier report's (then --force is needed)")
    p.add_argument("--force", action="store_true",
                   help=f"replace an earlier report in --out (only a folder with the report's {MARKER} marker "
                        "and nothing but the files it lists)")
    p.add_argument("--minutes", type=finite_number(0, above=True), default=ReportOptions.minutes,
                   help=f"length of the false-alarm stream (default {ReportOptions.minutes:g})")
    p.add_argument("--data", type=Path, nargs="+", default=None, metavar="DIR",
                   help="dataset folder(s) (default: the ones the model was trained on)")
    p.add_argument("--thresholds", type=finite_number(0, 1, above=True), nargs="+", default=None,
                   help="detection thresholds to sweep (default 0.05..0.9 in 0.05 steps, 0.91..0.99 in 0.01 steps, "
                        "0.992..0.998, 0.999, 1.0)")
    p.add_argument("--seed", type=int, default=ReportOptions.seed, help="seed of the long stream")
    p.add_argument("--limit", type=finite_number(0, integer=True), default=ReportOptions.limit,
                   help="evaluate at most N clips (0 = all), as `edge eval --limit`")
    p.add_argument("--tflm-minutes", type=finite_number(0, above=True), default=None,
                   help="run TFLite Micro on the first N minutes of the stream only (default: all of it)")
    p.add_argument("--bench-seconds", type=finite_number(0, BENCH_SECONDS[1]), default=ReportOptions.bench_seconds,
                   help=f"audio per latency benchmark, 0 (skip) or {BENCH_SECONDS[0]:g}-{BENCH_SECONDS[1]:g} "
                        f"(default {ReportOptions.bench_seconds:g})")
    p.add_argument("--positives", type=Path, default=None, metavar="DIR",
                   help="real recordings of a keyword: recall per file (with --negatives; see `export wakeword`)")
    p.add_argument("--negatives", type=Path, default=None, metavar="DIR",
                   help="audio without keywords: FA/h per keyword, the files as one stream (see `export falsealarms`)")
    p.add_argument("--keyword", default=None, help="the keyword of --positives (default: the model's only one)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def options_from_args(args: argparse.Namespace) -> ReportOptions:
    """The checked options of one report run."""
    if 0 < args.bench_seconds < BENCH_SECONDS[0]:
        raise UserError(f"--bench-seconds must be 0 (skip) or at least {BENCH_SECONDS[0]:g}, got {args.bench_seconds:g}")
    thresholds = tuple(sorted(set(args.thresholds))) if args.thresholds else DEFAULT_THRESHOLDS
    if args.positives is not None and args.negatives is None:
        raise UserError("--positives needs --negatives (audio without the keyword, for the false alarms)")
    return ReportOptions(minutes=args.minutes, data=args.data, thresholds=thresholds, seed=args.seed,
                         limit=args.limit, tflm_minutes=args.tflm_minutes, bench_seconds=args.bench_seconds,
                         progress=not args.quiet, positives=args.positives, negatives=args.negatives,
                         keyword=args.keyword)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m export report`; returns the exit status (user errors: `export.cli.main`)."""
    args = build_parser().parse_args(argv)
    opts = options_from_args(args)
    check_out_dir(args.out, args.force)  # before the evaluation, which takes minutes
    t0 = time.perf_counter()
    report = make_report(args.artifacts, opts)
    write_report(report, opts, args.out, args.force)
    for m in report["models"]:
        print(f"{m['name']}: {m['summary']}")
    print(f"report written to {args.out}/report.md (and report.html, report.json) in {time.perf_counter() - t0:.0f} s")
    return 0
