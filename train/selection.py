"""Choosing the epoch of a wake-word run by what a user lives with: keyword recall at a false-alarm budget on
real running speech, instead of clip accuracy on validation clips.

Why: for a synthetic wake word, validation clip accuracy is 95-97 % for every epoch of every run, yet the
recall on real recordings at <= 1 false alarm per hour of real speech differs by tens of points between epochs
and seeds (README, "A custom wake word from text"). False alarms come from ordinary talk, which isolated
validation words do not look like; words run together do.

The measurement (`WakeSelection.score`), from validation data only (never the measurement folders):
- *negatives*: running speech built from validation `_unknown_` clips of the held-out real speech (speech trimmed,
  20-150 ms gaps, -30..-15 dBFS, a faint noise floor), cut into `FILE_SECONDS` pseudo-files, each streamed from a
  reset state like a recording;
- *positives*: the validation keyword clips, each from a reset state;
- per keyword: the lowest threshold on the smoothed posterior (the detector's moving average) at which the
  keyword raises at most `allowed` events on the negatives (events separated by the detector's refractory
  period), and the share of positive clips whose smoothed peak reaches it. The score is the mean over the
  `budgets` (FA/h) and the keywords: one budget alone hangs on one or two peaks of one hour of speech.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge.postprocess import smooth
from train.streams import speech_bounds

class Selection(str, enum.Enum):
    """What picks the epoch a run keeps."""

    CLIP_ACCURACY = "clip-accuracy"  # validation clip accuracy (every recipe with recorded keywords)
    WAKE_RECALL = "wake-recall"  # `WakeSelection.score` (the synthetic wake-word recipe)


FILE_SECONDS = 10.0
#: minutes of running speech the score is measured on (at 1 FA/h, one false alarm is allowed in an hour)
RUNNING_MINUTES = 60.0
RUNNING_SEED = 0x5E1
#: false-alarm budgets (per hour of running speech) the score averages over
BUDGETS = (1.0, 2.0, 4.0, 8.0)
GAP_S = (0.02, 0.15)
LEVEL_DBFS = (-30.0, -15.0)
NOISE_DBFS = -55.0
SEARCH_STEPS = 40  # bisection steps on the threshold: resolution 2^-40, finer than any float32 posterior gap


def running_speech(clips: Sequence[np.ndarray], seconds: float, rate: int, seed: int,
                   file_seconds: float = FILE_SECONDS) -> list[np.ndarray]:
    """int16 pseudo-recordings of words run together: `clips` (cycled in a seeded order) trimmed to their
    speech, at random levels with short gaps, `file_seconds` each, `seconds` in all."""
    if not clips:
        return []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    files, total, k = [], 0, 0
    noise_rms = 10 ** (NOISE_DBFS / 20) * 32768
    while total < seconds * rate:
        parts, n = [], 0
        while n < file_seconds * rate:
            pcm = clips[order[k % len(clips)]]
            k += 1
            a, b = speech_bounds(pcm, rate // 100)
            seg = pcm[max(0, a - rate // 20) : b + rate // 20].astype(np.float64)
            seg *= 10 ** (rng.uniform(*LEVEL_DBFS) / 20) * 32768 / (np.sqrt(np.mean(seg**2)) + 1e-9)
            gap = np.zeros(int(rng.uniform(*GAP_S) * rate))
            parts += [seg, gap]
            n += len(seg) + len(gap)
        x = np.concatenate(parts) + rng.normal(0.0, noise_rms, n)
        files.append(np.clip(np.rint(x), -32768, 32767).astype(np.int16))
        total += n
    return files


def event_count(track: np.ndarray, threshold: float, refractory: int) -> int:
    """Events of one keyword's smoothed track at `threshold`: a frame at or above it fires unless within
    `refractory` frames after the previous event (the detector's rule with that keyword alone armed)."""
    idx = np.flatnonzero(track >= threshold)
    count, i = 0, 0
    while i < len(idx):
        count += 1
        i = int(np.searchsorted(idx, idx[i] + refractory + 1))
    return count


def lowest_threshold(track: np.ndarray, allowed: int, refractory: int) -> float:
    """The lowest threshold in (0, 1] with at most `allowed` events on `track` (bisection; the count falls as
    the threshold rises)."""
    lo, hi = 0.0, 1.0 + 1e-9
    if event_count(track, hi, refractory) > allowed:
        return hi
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi) / 2
        if event_count(track, mid, refractory) > allowed:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(frozen=True)
class WakeSelection:
    """The validation material of the score; `keyword_ids` index the model's outputs."""

    keyword_ids: tuple[int, ...]
    positive_truth: tuple[int, ...]  # label index per positive clip
    window: int
    refractory: int
    negative_seconds: float
    budgets: tuple[float, ...] = BUDGETS

    def score(self, positive_posteriors: Sequence[np.ndarray], negative_posteriors: Sequence[np.ndarray]) -> dict:
        """{"score": mean recall over budgets and keywords, "recall": {budget: mean over keywords}}."""
        gap = np.full((self.refractory + 1, 1), -np.inf)
        per_budget: dict[float, list[float]] = {b: [] for b in self.budgets}
        hours = self.negative_seconds / 3600.0
        truth = np.asarray(self.positive_truth)
        for k in self.keyword_ids:
            track = np.concatenate([np.concatenate([smooth(p[:, [k]], self.window), gap]) for p in negative_posteriors])[:, 0]
            peaks = np.array([smooth(p[:, [k]], self.window).max() if len(p) else 0.0
                              for p, t in zip(positive_posteriors, truth) if t == k])
            for b in self.budgets:
                t = lowest_threshold(track, int(np.floor(b * hours + 1e-9)), self.refractory)
                per_budget[b].append(float(np.mean(peaks >= t)) if len(peaks) else 0.0)
        recall = {b: float(np.mean(v)) for b, v in per_budget.items()}
        return {"score": float(np.mean(list(recall.values()))), "recall": recall}
