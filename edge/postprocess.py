"""Posterior smoothing, per-label thresholds, refractory period and clip decisions: the device's
(`clip_decision`) and the standard protocol's (`clip_argmax`), scored with `summarize`.

Shared by training evaluation, the Raspberry Pi runner and (as a specification) the firmware. For
quantized models the arithmetic runs on the integer posteriors (q - zero_point) so that Python and C
give identical decisions: a label fires when the sum of its last `window` posteriors reaches
`ceil(threshold * window / scale)`; for float models the same rule runs on floats with scale 1.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

BACKGROUND_LABELS = ("_silence_", "_unknown_")


def keyword_labels(labels: Sequence[str]) -> list[str]:
    """The labels that may raise an event (all but the background classes), in label order."""
    return [l for l in labels if l not in BACKGROUND_LABELS]


@dataclass(frozen=True)
class PostprocessConfig:
    """Detection settings; they travel in the manifest and the firmware's settings header."""

    #: Moving-average window over frame posteriors, in frames (10 ms each).
    window: int = 10
    #: Default threshold on the smoothed posterior of a keyword.
    threshold: float = 0.6
    #: Per-label overrides of `threshold`.
    thresholds: Mapping[str, float] = field(default_factory=dict)
    #: After an event, no label fires for this many frames.
    refractory: int = 100

    def __post_init__(self) -> None:
        if self.window < 1 or self.refractory < 0:
            raise ValueError("window must be >= 1 and refractory >= 0")
        for v in [self.threshold, *self.thresholds.values()]:
            if not 0.0 < v <= 1.0:
                raise ValueError(f"thresholds must be in (0, 1], got {v}")

    def threshold_of(self, label: str) -> float:
        return float(self.thresholds.get(label, self.threshold))

    def check_labels(self, labels: Sequence[str]) -> None:
        """Refuse per-label thresholds that name a label the model does not have (a typo would otherwise
        silently leave that keyword at the default threshold)."""
        unknown = sorted(set(self.thresholds) - set(labels))
        if unknown:
            raise ValueError(f"per-label thresholds name labels the model does not have: {', '.join(unknown)} "
                             f"(labels: {', '.join(labels)})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "threshold": self.threshold,
            "thresholds": dict(self.thresholds),
            "refractory": self.refractory,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PostprocessConfig":
        return cls(
            window=int(d["window"]),
            threshold=float(d["threshold"]),
            thresholds={str(k): float(v) for k, v in dict(d.get("thresholds", {})).items()},
            refractory=int(d["refractory"]),
        )


def integer_threshold(threshold: float, window: int, scale: float) -> int:
    """Smallest integer window sum that reaches `threshold` (with a guard against float noise)."""
    return int(math.ceil(threshold * window / scale - 1e-9))


def grid_threshold(limit: int, window: int, scale: float) -> float:
    """The threshold whose integer window-sum limit is exactly `limit` (`integer_threshold`'s inverse on its
    grid: integer_threshold(grid_threshold(L, w, s), w, s) == L), so a threshold chosen on integer limits
    means the same window sum in Python and in the firmware."""
    return limit * scale / window


@dataclass(frozen=True)
class Event:
    """One keyword detection; `to_dict()` is the `python -m edge run --json` line without `source`."""

    label: str
    frame: int  # index of the frame at which it fired
    time_s: float  # end of that frame's analysis window, seconds from the start of the stream
    score: float  # smoothed posterior when it fired

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "frame": self.frame, "time": round(self.time_s, 4), "score": round(self.score, 4)}


class Detector:
    """Streaming detection over posteriors, frame by frame, with explicit state and `reset()`.

    `scale` is the posterior's quantization step (1/256 for int8 softmax; 1.0 for float posteriors
    given as floats). `update()` takes posteriors as the model outputs them: raw integers `q` (with
    `zero_point`) in integer mode, floats otherwise. The window sum is kept in those raw units; the zero
    point is folded into the integer limits (sum(q - zp) >= L  <=>  sum(q) >= L + window*zp), so the
    decisions are exactly those on `q - zero_point`.
    """

    def __init__(
        self,
        labels: list[str],
        config: PostprocessConfig,
        scale: float = 1.0,
        integer: bool = False,
        hop_s: float = 0.01,
        window_s: float = 0.03,
        zero_point: int = 0,
    ) -> None:
        config.check_labels(labels)
        self.labels = list(labels)
        self.config = config
        self.scale = scale
        self.integer = integer
        self.zero_point = int(zero_point) if integer else 0
        self.hop_s, self.window_s = hop_s, window_s
        self.fires = np.array([l not in BACKGROUND_LABELS for l in self.labels])
        w = config.window
        if integer:
            limits = np.array([integer_threshold(config.threshold_of(l), w, scale) for l in self.labels], dtype=np.int64)
            #: limits on the raw window sum; labels that never fire can never reach theirs
            self.limits = np.where(self.fires, limits + w * self.zero_point, np.iinfo(np.int64).max)
        else:
            limits = np.array([config.threshold_of(l) * w for l in self.labels])
            self.limits = np.where(self.fires, limits, np.inf)
        self._limit_list = self.limits.tolist()
        self.reset()

    def reset(self) -> None:
        # Plain Python lists: for a dozen labels, list arithmetic costs half of numpy's per-call overhead
        # (measured: 3 us vs 6.5 us per frame); integers stay exact, floats add in the same order.
        w, n = self.config.window, len(self.labels)
        zero = self.zero_point if self.integer else 0.0
        self._ring = [[zero] * n for _ in range(w)]
        self._sum = [zero * w] * n
        self._pos = 0
        self._frame = 0
        self._quiet_until = 0

    def update(self, posterior: np.ndarray) -> Event | None:
        p = np.asarray(posterior).reshape(-1).tolist()
        pos = self._pos
        old = self._ring[pos]
        self._ring[pos] = p
        self._sum = s = [a + b - c for a, b, c in zip(self._sum, p, old)]
        self._pos = pos + 1 if pos + 1 < self.config.window else 0
        frame = self._frame
        self._frame += 1
        if frame < self._quiet_until or not any(map(operator.ge, s, self._limit_list)):
            return None
        smoothed = self.smoothed()
        over = np.asarray(s) >= self.limits
        best = int(np.argmax(np.where(over, smoothed, -np.inf)))
        self._quiet_until = frame + 1 + self.config.refractory
        return Event(self.labels[best], frame, frame * self.hop_s + self.window_s, float(smoothed[best]))

    def smoothed(self) -> np.ndarray:
        total = np.asarray(self._sum, dtype=np.float64)
        units = total - self.config.window * self.zero_point if self.integer else total
        return units * (self.scale / self.config.window)


def smooth(posteriors: np.ndarray, window: int) -> np.ndarray:
    """Causal moving average (zeros before the start), [T, C] -> [T, C]."""
    c = np.cumsum(np.asarray(posteriors, dtype=np.float64), axis=0)
    shifted = np.zeros_like(c)
    shifted[window:] = c[:-window]
    return (c - shifted) / window


def clip_decision(posteriors: np.ndarray, labels: list[str], config: PostprocessConfig) -> int:
    """Label index for one clip streamed alone, as a device would decide.

    The peak of each label's smoothed posterior over the clip decides: among the labels other than
    `_silence_` whose peak reaches that label's own threshold (`config.threshold_of`, so per-label
    overrides count exactly as in `Detector`; `_unknown_` included), the highest peak wins; if none
    reaches its threshold, the clip is `_silence_`. Label sets without `_silence_`: the highest peak overall.
    """
    config.check_labels(labels)
    s = smooth(posteriors, config.window)
    silence = labels.index("_silence_") if "_silence_" in labels else None
    if len(s) == 0:
        return 0 if silence is None else silence
    peaks = s.max(axis=0)
    if silence is None:
        return int(np.argmax(peaks))
    reached = [i for i, l in enumerate(labels) if i != silence and peaks[i] >= config.threshold_of(l)]
    return max(reached, key=lambda i: peaks[i]) if reached else silence


#: What the standard accuracy figure (`clip_argmax` over `edge.datasets.standard_clips`) measures
#: ("12-class" for the Speech Commands task).
STANDARD_PROTOCOL = "{classes}-class argmax, _unknown_/_silence_ sampled to the mean command class size"


def clip_argmax(posteriors: np.ndarray, labels: list[str], window: int) -> int:
    """Label index for one clip by the standard protocol (as kws_streaming and MLPerf Tiny score the
    12-class Speech Commands task): argmax, `_silence_` a class like the others, no thresholds.

    For frame-posterior models: the posteriors are smoothed with the detector's moving average
    (`window` frames) and the frame-wise argmax is taken. A label "wins" a clip if it is the argmax on at
    least one frame; the prediction is the label other than `_silence_` with the highest smoothed peak
    among the winners, else `_silence_` (a clip whose every frame is argmax `_silence_`). So a keyword
    that never beats `_silence_` (or every other label) on any frame does not count, however high its
    peak. Label sets without `_silence_`: the winner with the highest peak. Empty clips are `_silence_`
    (or label 0).
    """
    s = smooth(posteriors, window)
    silence = labels.index("_silence_") if "_silence_" in labels else None
    if len(s) == 0:
        return 0 if silence is None else silence
    peaks = s.max(axis=0)
    winners = [int(i) for i in np.unique(s.argmax(axis=1)) if i != silence]
    if not winners:
        return 0 if silence is None else silence
    return max(winners, key=lambda i: peaks[i])


def summarize(pred: Sequence[int], truth: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per-class accuracy and confusion matrix (rows = truth) of clip predictions: the form of
    `python -m edge eval --json`, the report and the training metrics."""
    C = len(labels)
    conf = np.zeros((C, C), dtype=np.int64)
    for p, t in zip(pred, truth):
        conf[t, p] += 1
    total = int(conf.sum())
    return {
        "accuracy": float(np.trace(conf) / total) if total else 0.0,
        "clips": total,
        "per_class": {labels[c]: (float(conf[c, c] / conf[c].sum()) if conf[c].sum() else None) for c in range(C)},
        "confusion": conf.tolist(),
        "labels": list(labels),
    }


def standard_summary(posteriors: Sequence[np.ndarray], truth: Sequence[int], labels: list[str],
                     window: int) -> dict[str, Any]:
    """`summarize` of the `clip_argmax` predictions, tagged with the protocol. Meant for the clips of
    `edge.datasets.standard_clips`, each streamed alone from a reset state."""
    pred = [clip_argmax(p, labels, window) for p in posteriors]
    return {**summarize(pred, truth, labels), "protocol": STANDARD_PROTOCOL.format(classes=len(labels))}
