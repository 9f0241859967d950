"""Deterministic long test streams: held-out keyword clips at random times over background noise and
`_unknown_` speech, with the ground truth of where each word ends. Used by `export verify` (>= 60 s),
the report's false-alarm curves (>= 30 min) and `make soak` (60 min)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.datasets import SILENCE, UNKNOWN, AudioCache, Dataset, noise_segments, synthetic_noise
from train.streams import speech_bounds


@dataclass(frozen=True)
class Planted:
    label: str
    start_s: float
    end_s: float  # end of the speech in the clip


@dataclass
class LongStream:
    pcm: np.ndarray
    rate: int
    events: list[Planted]

    @property
    def seconds(self) -> float:
        return len(self.pcm) / self.rate


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-9)


def build_long_stream(
    dataset: Dataset,
    split: str,
    seconds: float,
    seed: int,
    keywords_per_minute: float = 6.0,
    unknown_per_minute: float = 6.0,
    snr_db: tuple[float, float] = (5.0, 25.0),
    speech_dbfs: tuple[float, float] = (-30.0, -15.0),
    rate: int = 16000,
) -> LongStream:
    """Place clips of `split` (cycled if the stream is longer than the split) at random non-overlapping
    times over a bed of that split's background noise."""
    rng = np.random.default_rng(seed)
    cache = AudioCache(rate)
    clips = dataset.split(split) or dataset.split("test")
    kw = [c for c in clips if c.label not in (SILENCE, UNKNOWN)]
    unk = [c for c in clips if c.label == UNKNOWN]
    n = int(seconds * rate)
    noise = [cache.get(p) for p in dataset.noise_files] or synthetic_noise(rate, 60.0, seed)
    segs = noise_segments(noise, split) or noise
    bed = np.zeros(n)
    pos = 0
    while pos < n:
        src = segs[rng.integers(len(segs))].astype(np.float64)
        length = min(n - pos, len(src), int(rng.integers(rate, 10 * rate)))
        start = int(rng.integers(0, len(src) - length + 1))
        seg = src[start : start + length]
        bed[pos : pos + length] = seg / _rms(seg)
        pos += length
    speech_level = 10 ** (np.mean(speech_dbfs) / 20) * 32768
    bed *= speech_level / 10 ** (np.mean(snr_db) / 20)

    n_kw = int(round(seconds / 60 * keywords_per_minute)) if kw else 0
    n_unk = int(round(seconds / 60 * unknown_per_minute)) if unk else 0
    kinds = [1] * n_kw + [0] * n_unk
    rng.shuffle(kinds)
    slot = n / max(1, len(kinds))
    kw_order, unk_order = rng.permutation(len(kw)) if kw else [], rng.permutation(len(unk)) if unk else []
    events: list[Planted] = []
    signal = np.zeros(n)
    ki = ui = 0
    for i, is_kw in enumerate(kinds):
        clip = kw[kw_order[ki % len(kw)]] if is_kw else unk[unk_order[ui % len(unk)]]
        ki, ui = ki + is_kw, ui + (1 - is_kw)
        pcm = cache.get(clip.path)
        a, b = speech_bounds(pcm, rate // 100)
        lo = int(i * slot + 0.2 * rate)
        hi = int((i + 1) * slot - len(pcm) - 0.2 * rate)
        if hi <= lo:
            continue
        at = int(rng.integers(lo, hi))
        level = 10 ** (rng.uniform(*speech_dbfs) / 20) * 32768
        signal[at : at + len(pcm)] += pcm / _rms(pcm[a:b]) * level
        if is_kw:
            events.append(Planted(clip.label, (at + a) / rate, (at + b) / rate))
    out = np.clip(np.rint(signal + bed), -32768, 32767).astype(np.int16)
    return LongStream(out, rate, events)


@dataclass
class Scored:
    hits: int
    misses: int
    false_alarms: int
    keywords: int
    hours: float
    #: of `false_alarms`, the wrong keywords fired over a planted keyword (confusions, `score_events`)
    substitutions: int = 0

    @property
    def recall(self) -> float:
        return self.hits / self.keywords if self.keywords else 0.0

    @property
    def frr(self) -> float:
        return 1.0 - self.recall

    @property
    def fa_per_hour(self) -> float:
        return self.false_alarms / self.hours if self.hours else 0.0


def _covers(p: Planted, t: float, tolerance_s: float) -> bool:
    """Whether a detection at `t` falls in planted keyword `p`'s window [start, end + tolerance_s]."""
    return p.start_s <= t <= p.end_s + tolerance_s


def score_events(
    detections: list[tuple[str, float]], planted: list[Planted], seconds: float, tolerance_s: float = 1.0,
    spans: list[Planted] | None = None,
) -> Scored:
    """Match detections (label, time) to planted keywords.

    A detection is a hit if it has the planted label and falls within [start, end + tolerance_s] of a
    planted keyword not matched before; every other detection (wrong label, outside any window, or a
    second detection of the same keyword) is a false alarm. Of those, the **substitutions** are the ones said
    over another keyword: inside the window of a keyword of `spans` (default: `planted`) with another label, and
    inside no window of its own label (a repeat of a keyword is a false alarm of its own)."""
    spans = planted if spans is None else spans
    used = [False] * len(planted)
    hits = fa = substitutions = 0
    for label, t in sorted(detections, key=lambda d: d[1]):
        match = None
        for i, p in enumerate(planted):
            if not used[i] and p.label == label and _covers(p, t, tolerance_s):
                match = i
                break
        if match is None:
            fa += 1
            over = {p.label for p in spans if _covers(p, t, tolerance_s)}
            substitutions += bool(over) and label not in over
        else:
            used[match] = True
            hits += 1
    return Scored(hits, len(planted) - hits, fa, len(planted), seconds / 3600, substitutions)


def score_by_label(
    detections: list[tuple[str, float]], planted: list[Planted], labels: list[str], seconds: float
) -> dict[str, Scored]:
    """`score_events` per label: each label's detections against its own planted keywords, so its false alarms
    are those attributed to it (its detections matching no planted instance of it), its substitutions those said
    over a planted keyword of another label. A detection only ever matches a keyword of its own label, so the
    counts add up to `score_events` over everything."""
    return {l: score_events([d for d in detections if d[0] == l], [p for p in planted if p.label == l], seconds,
                            spans=planted)
            for l in labels}
