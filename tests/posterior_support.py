"""Hand-made integer posterior streams shared by the detector, report and calibration tests (not a test file)."""

from __future__ import annotations

import numpy as np

from edge.frontend import FrontendConfig

LABELS = ["_silence_", "_unknown_", "yes", "no"]
FE = FrontendConfig()  # 10 ms hop, 30 ms window: an event at frame f is at f * 0.01 + 0.03 s
SCALE = 1 / 256  # int8 softmax output step: units are q - zero_point in 0..255


def burst_stream(frames: int, bursts: list[tuple[str, int, int, int]]) -> np.ndarray:
    """Integer posteriors: `_silence_` at 255 units, except bursts (label, first frame, length, level)."""
    u = np.zeros((frames, len(LABELS)), dtype=np.int64)
    u[:, 0] = 255
    for label, start, length, level in bursts:
        u[start : start + length, 0] = 255 - level
        u[start : start + length, LABELS.index(label)] = level
    return u
