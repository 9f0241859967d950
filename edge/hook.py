"""`--on-detect CMD`: run a program for each keyword event without ever blocking the audio loop.

The command line is split once with `shlex.split` and run directly (never through a shell). For each
event the program gets the event as arguments appended to CMD — `LABEL SCORE TIME SOURCE` — and in the
environment as KWS_LABEL, KWS_SCORE, KWS_TIME (seconds from the start of the source) and KWS_SOURCE (the
file name, `-` for stdin and microphone). Its stdout and stderr go to our stderr, so stdout stays events
only. One worker thread runs the hooks in order from a bounded queue: when the queue is full the event
is dropped and counted; a failure (non-zero exit, timeout, a program that cannot start) is reported as a
`note:` line on stderr, and detection goes on.
"""

from __future__ import annotations

import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
from typing import Any, Mapping

from edge.errors import UserError

#: Events waiting for the hook before new ones are dropped (`--hook-queue`).
DEFAULT_QUEUE = 16
#: Seconds a hook may run before it is killed (`--hook-timeout`).
DEFAULT_TIMEOUT = 10.0


def hook_values(event: Mapping[str, Any]) -> list[str]:
    """The event as the hook receives it, in argument order: label, score, time, source."""
    return [str(event["label"]), str(event["score"]), str(event["time"]), str(event["source"])]


def hook_environment(event: Mapping[str, Any]) -> dict[str, str]:
    """KWS_LABEL, KWS_SCORE, KWS_TIME, KWS_SOURCE for one event."""
    return dict(zip(("KWS_LABEL", "KWS_SCORE", "KWS_TIME", "KWS_SOURCE"), hook_values(event)))


def parse_command(command: str) -> list[str]:
    """Split CMD once, shell-style quoting but no shell, and check that its program exists and can run."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UserError(f"--on-detect: cannot split {command!r}: {exc}") from exc
    if not argv:
        raise UserError("--on-detect: empty command")
    if shutil.which(argv[0]) is None:
        raise UserError(f"--on-detect: program {argv[0]!r} not found or not executable")
    return argv


def _note(text: str) -> None:
    print(f"note: --on-detect: {text}", file=sys.stderr, flush=True)


class DetectionHook:
    """Runs `argv + hook_values(event)` for each submitted event on a worker thread.

    `submit` never blocks: with `queue_size` events already waiting it drops the event, counts it in
    `dropped` and says so. `close` waits for the running and queued hooks (at most `queue_size + 1` runs of
    up to `timeout` seconds each) and reports how many events were dropped.
    """

    def __init__(self, argv: list[str], queue_size: int = DEFAULT_QUEUE, timeout: float = DEFAULT_TIMEOUT) -> None:
        if queue_size < 1:
            raise UserError(f"--hook-queue must be at least 1, got {queue_size}")
        if not timeout > 0:
            raise UserError(f"--hook-timeout must be positive, got {timeout:g}")
        self.argv, self.timeout, self.queue_size = list(argv), timeout, queue_size
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._worker = threading.Thread(target=self._work, name="kws-on-detect", daemon=True)
        self._worker.start()

    def submit(self, event: Mapping[str, Any]) -> bool:
        """Queue one event (a `python -m edge run --json` line as a dict); False if it was dropped."""
        try:
            self._queue.put_nowait(dict(event))
            return True
        except queue.Full:
            self.dropped += 1
            _note(f"busy, dropped {event['label']} at {event['time']} s ({self.dropped} dropped so far; "
                  f"queue of {self.queue_size} full)")
            return False

    def close(self) -> None:
        """Run what is queued, stop the worker, and report dropped events."""
        self._queue.put(None)
        self._worker.join()
        if self.dropped:
            _note(f"{self.dropped} event(s) dropped in all because the hook was busy (--hook-queue {self.queue_size})")

    def _work(self) -> None:
        while (event := self._queue.get()) is not None:
            self._run(event)

    def _run(self, event: dict[str, Any]) -> None:
        """One hook run; every failure becomes a note, never an exception."""
        what = f"{self.argv[0]} for {event['label']} at {event['time']} s"
        try:
            result = subprocess.run(self.argv + hook_values(event), env={**os.environ, **hook_environment(event)},
                                    stdin=subprocess.DEVNULL, stdout=2, timeout=self.timeout,
                                    check=False)
        except subprocess.TimeoutExpired:
            self.failed += 1
            _note(f"{what} timed out after {self.timeout:g} s and was killed")
        except OSError as exc:
            self.failed += 1
            _note(f"{what} could not run: {exc}")
        else:
            if result.returncode != 0:
                self.failed += 1
                _note(f"{what} exited with status {result.returncode}")
