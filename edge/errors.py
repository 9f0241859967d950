"""Errors that are the user's to fix: the CLIs print them as one line and exit with status 2 (`run_cli`)."""

from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Bad input, bad arguments or a refused artifact. The message is the whole explanation."""


class AudioError(UserError):
    """An audio file that cannot be read or used."""


class ManifestError(UserError):
    """An artifacts folder whose manifest or model cannot be trusted or used."""


EXIT_USER_ERROR = 2
#: Exit status after Ctrl-C (128 + SIGINT), without a traceback.
EXIT_INTERRUPTED = 130


def run_cli(body: Callable[[], int], *, broken_pipe_status: int | None = None) -> int:
    """Run a command line's body and return its exit status: a `UserError` becomes the one line `error: MESSAGE` on
    stderr and EXIT_USER_ERROR, Ctrl-C EXIT_INTERRUPTED. With `broken_pipe_status`, a closed stdout (`... | head`)
    ends quietly with that status; without, BrokenPipeError propagates like any other exception."""
    try:
        return body()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        if broken_pipe_status is None:
            raise
        return broken_pipe_status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
