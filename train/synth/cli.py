"""`synth --words yes,no --out DIR ...` (also `python -m train synth`): a synthetic dataset from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.errors import EXIT_USER_ERROR, UserError
from train.synth.dataset import generate_dataset
from train.synth.settings import SynthConfig, SynthError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + message)
        raise SynthError(message)


def _word_list(value: str) -> list[str]:
    return [w for w in (s.strip() for s in value.split(",")) if w]


def build_parser(prog: str = "synth") -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Generate a synthetic keyword dataset with espeak-ng (offline).")
    p.add_argument("--words", required=True, type=_word_list, help="comma-separated keywords, e.g. yes,no")
    p.add_argument("--out", required=True, type=Path, help="output folder (must be new or empty)")
    p.add_argument("--per-word", type=int, default=100, help="clips per keyword (default 100)")
    p.add_argument(
        "--negatives",
        type=_word_list,
        default=None,
        help="comma-separated non-keywords (default: built-in list)",
    )
    p.add_argument(
        "--per-negative", type=int, default=None, help="clips per non-keyword (default per-word // 3)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-seconds", type=float, default=SynthConfig().noise_seconds,
                   help="length of each background-noise file")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="worker processes")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it holds an earlier synthetic dataset"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "synth") -> int:
    """CLI: `synth --words yes,no --out DIR [--per-word N] [--seed S]`. Returns the exit status."""
    try:
        args = build_parser(prog).parse_args(argv)
        summary = generate_dataset(
            args.out,
            args.words,
            args.negatives,
            args.per_word,
            args.seed,
            n_per_negative=args.per_negative,
            config=SynthConfig(noise_seconds=args.noise_seconds),
            force=args.force,
            workers=args.workers,
            progress=not args.quiet,
        )
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(f"{prog}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USER_ERROR
    counts = ", ".join(f"{k} {v}" for k, v in summary.split_counts.items())
    print(
        f"wrote {summary.clips} clips ({counts}) of {len(summary.words)} words from "
        f"{summary.speakers_used} speakers to {summary.out_dir} in {summary.seconds:.1f} s"
    )
    return 0
