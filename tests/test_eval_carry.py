"""`python -m edge eval --carry-state`: every clip is decided on its own frames, however long the stream
(a regression: after the kept posteriors were trimmed, later clips got empty slices and became `_silence_`)."""

from __future__ import annotations

import numpy as np

from edge.evaluation import evaluate
from edge.postprocess import PostprocessConfig

LABELS = ["_silence_", "_unknown_", "yes", "no"]
HOP = 160


class FakeDetector:
    """Duck-typed `StreamingDetector`: one frame per 160 samples, whose posterior is one-hot on the label
    indexed by the frame's first sample (silence, 0, for the gaps and tails), so a clip of constant value k
    is label k, and each frame's posterior depends on nothing else."""

    sample_rate = 16000

    def __init__(self) -> None:
        self.labels = list(LABELS)
        self.postprocess = PostprocessConfig()
        self.keep_posteriors = False
        self.resets = 0
        self.reset()

    def reset(self) -> None:
        self.resets += 1
        self.posteriors: list[np.ndarray] = []
        self.frames = 0
        self._pending = np.zeros(0, dtype=np.int16)

    def process(self, pcm: np.ndarray) -> list:
        pcm = np.concatenate([self._pending, np.asarray(pcm, dtype=np.int16)])
        n = len(pcm) // HOP
        if self.keep_posteriors:
            rows = np.eye(len(self.labels), dtype=np.float32)[pcm[: n * HOP : HOP]]
            self.posteriors.extend(rows)
        self.frames += n
        self._pending = pcm[n * HOP :]
        return []

    def posterior_array(self) -> np.ndarray:
        if not self.posteriors:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.stack(self.posteriors)


def test_carry_state_decides_every_clip_on_its_own_frames() -> None:
    """120 one-second clips carried in one stream: ~21,600 frames, past the point (10,000 kept rows) where
    the old code trimmed its posteriors and then sliced them with absolute frame numbers."""
    truth = [1 + i % 3 for i in range(120)]
    pcm = [np.full(16000, t, dtype=np.int16) for t in truth]
    det = FakeDetector()
    result = evaluate(det, pcm, truth, carry_state=True)  # type: ignore[arg-type]
    assert result["clips"] == 120
    assert result["accuracy"] == 1.0, result["confusion"]
    assert det.resets == 2  # the constructor's and evaluate's one: the state is carried across clips
    assert det.frames > 20000 and len(det.posteriors) < 200  # kept posteriors stay one clip's worth


def test_carry_state_matches_reset_per_clip_on_independent_frames() -> None:
    """With frames that do not depend on the past, carrying the state must give the per-clip decisions."""
    rng = np.random.default_rng(0)
    truth = rng.integers(1, 4, 150).tolist()
    pcm = [np.full(int(rng.integers(4000, 20000)), t, dtype=np.int16) for t in truth]
    carried = evaluate(FakeDetector(), pcm, truth, carry_state=True)  # type: ignore[arg-type]
    reset = evaluate(FakeDetector(), pcm, truth, carry_state=False)  # type: ignore[arg-type]
    assert carried["confusion"] == reset["confusion"] and carried["accuracy"] == 1.0
