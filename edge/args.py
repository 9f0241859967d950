"""Command-line values checked where they are parsed, for every CLI of the project.

`Parser` turns any argument error into a `UserError`: one `error:` line on stderr and exit status 2 from
the CLIs' `main` (argparse's own answer is a usage block, then the message). `finite_number` is the one
rule for "a finite number in range" (NaN, infinities and out-of-range values are refused before anything
runs); `output_file` refuses a file that could not be written, before any audio is processed for it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Callable, NoReturn

from edge.errors import UserError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser (sub-parsers included) whose errors are `UserError`s, which the CLIs print as one
    `error: ...` line with exit status 2 (argparse itself prints a usage block first)."""

    def error(self, message: str) -> NoReturn:
        # argparse's "argument --x: must be ..." reads as "--x must be ...", "argument --x: other" as "--x: other"
        raise UserError(re.sub(r"^argument (\S+): (must )?", lambda m: f"{m[1]} must " if m[2] else f"{m[1]}: ", message))


def describe_range(low: float, high: float, above: bool, integer: bool) -> str:
    """'a finite number above 0', 'a whole number of at least 1', 'a finite number from 0 to 1', ..."""
    kind = "a whole number" if integer else "a finite number"
    if not above and math.isfinite(low) and math.isfinite(high):
        return f"{kind} from {low:g} to {high:g}"
    lower = f"above {low:g}" if above else f"of at least {low:g}" if math.isfinite(low) else ""
    upper = f"at most {high:g}" if math.isfinite(high) else ""
    return " ".join([kind, " and ".join(b for b in (lower, upper) if b)]).rstrip()


def in_range(number: float, low: float, high: float, above: bool = False) -> bool:
    """Whether `number` is finite and within [low, high] (within (low, high] with `above`)."""
    return math.isfinite(number) and (number > low if above else number >= low) and number <= high


def finite_number(low: float = -math.inf, high: float = math.inf, *, above: bool = False,
                  integer: bool = False) -> Callable[[str], float]:
    """argparse `type=`: a finite number in [low, high], in (low, high] with `above`, an int with `integer`."""

    def parse(value: str) -> float:
        try:
            number: float = int(value) if integer else float(value)
        except ValueError:
            number = math.nan
        if not in_range(number, low, high, above):
            raise argparse.ArgumentTypeError(f"must be {describe_range(low, high, above, integer)}, got {value!r}")
        return number

    return parse


def output_file(suffix: str) -> Callable[[str], Path]:
    """argparse `type=`: a file to be written: named `*{suffix}`, not a folder, in an existing writable folder."""

    def parse(value: str) -> Path:
        path = Path(value)
        folder = path.parent
        if path.suffix != suffix:
            raise argparse.ArgumentTypeError(f"must name a {suffix} file, got {value!r}")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{value} is a folder, expected a {suffix} file to write")
        if not folder.is_dir():
            raise argparse.ArgumentTypeError(f"folder {folder} does not exist (for {value})")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise argparse.ArgumentTypeError(f"folder {folder} is not writable (for {value})")
        return path

    return parse
