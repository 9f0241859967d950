"""The smallest TFLite Micro arena a model allocates in, found by probing the `tflite-micro` interpreter.

A probe with too small an arena should fail with an error, but the Python interpreter of `tflite-micro`
sometimes crashes the process instead (measured: a Jordan network with 320 hidden units, whose FULLY_CONNECTED
prepare runs out of arena, ends in "All temp buffers must be freed before calling ResetTempAllocations()" and
a segmentation fault). So the probing runs in a child process: the search reports every size it tries before
trying it, and a crash counts as "does not fit" for that size; the search then resumes in a new child.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

#: arena sizes are searched in steps of this many bytes (TFLM aligns its allocations to 16 bytes)
STEP = 16
#: the search starts with this upper bound and doubles it up to MAX_ARENA
START = 1 << 16
MAX_ARENA = 1 << 26

_CHILD = r"""
import sys
from tflite_micro.python.tflite_micro import runtime

model = open(sys.argv[1], "rb").read()
lo, hi, step, top = (int(v) for v in sys.argv[2:6])

def fits(n):
    print("try", n, flush=True)
    try:
        runtime.Interpreter.from_bytes(model, arena_size=n)
        ok = True
    except (RuntimeError, ValueError):
        ok = False
    print("fits" if ok else "fails", n, flush=True)
    return ok

while not fits(hi):
    lo, hi = hi, hi * 2
    if hi > top:
        print("none", flush=True)
        sys.exit(0)
while hi - lo > step:
    mid = (lo + hi) // 2 // step * step
    lo, hi = (lo, mid) if fits(mid) else (mid, hi)
print("result", hi, flush=True)
"""


def available() -> bool:
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        return False
    return True


def tflm_arena_bytes(model_bytes: bytes) -> int | None:
    """Smallest arena (STEP-byte steps) with which the TFLite Micro interpreter allocates the model; None when
    `tflite-micro` is not installed or no arena up to MAX_ARENA is enough."""
    if not available():
        return None
    with tempfile.TemporaryDirectory(prefix="tflm-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        lo, hi = STEP, START
        while True:
            outcome, lo, hi = _search(path, lo, hi)
            if outcome != "crashed":
                return outcome


def _search(path: Path, lo: int, hi: int) -> tuple[int | None | str, int, int]:
    """One child search from (lo, hi]: (result or None, ...), or ("crashed", new lo, new hi) after a crash."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(lo), str(hi), str(STEP), str(MAX_ARENA)],
                          capture_output=True, text=True)
    tried: int | None = None
    for line in proc.stdout.splitlines():
        word, _, value = line.partition(" ")
        if word == "result":
            return int(value), lo, hi
        if word == "none":
            return None, lo, hi
        if word == "try":
            tried = int(value)
        elif word in ("fits", "fails"):
            n, tried = int(value), None
            if word == "fits":
                hi = n
            else:
                lo, hi = (n, hi) if n < hi else (n, n * 2)
    if tried is None:  # the child failed before or after probing: not a probe's crash
        raise RuntimeError(f"TFLite Micro arena search failed: {proc.stderr.strip()[-300:]}")
    # the probe of `tried` bytes crashed the interpreter: too small
    lo, hi = (tried, hi) if tried < hi else (tried, tried * 2)
    if hi > MAX_ARENA:
        return None, lo, hi
    return "crashed", lo, hi
