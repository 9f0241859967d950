"""Native libraries that write to file descriptor 2 themselves, bypassing Python's sys.stderr: their known
chatter is dropped so that an error stays one line and a note one note (TensorFlow's start-up lines in
export/tf_quiet.py, libmpg123's warnings when libsndfile opens a truncated MP3 in edge/audio.py)."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from typing import Callable, Iterator

_FD2 = threading.RLock()  # fd 2 is one per process: one redirection at a time (nesting is fine)


@contextlib.contextmanager
def filtered_fd2(is_noise: Callable[[str], bool]) -> Iterator[None]:
    """Within the block fd 2 points at a temporary file; afterwards every captured line that is not `is_noise`
    is written to stderr, so real messages still show."""
    with _FD2:
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to protect
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                lines = capture.read().decode(errors="replace").splitlines(keepends=True)
                kept = [line for line in lines if not is_noise(line)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
