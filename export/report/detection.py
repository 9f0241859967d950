"""The report's long stream and detection figures: the stream's front-end frames, every variant's frame
posteriors over it in the units of the device's post-processing, and the detection sweep (`fast_detect`: the
arithmetic of `edge.postprocess.Detector`, vectorised) scored against the planted keywords."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from edge.datasets import Dataset
from edge.detector import StreamingDetector
from edge.frontend import FrontendConfig, StreamingFrontend, features_to_float
from edge.interpreters import Runtime
from edge.manifest import Manifest
from edge.postprocess import Detector, Event, PostprocessConfig, keyword_labels
from export.longstream import Planted, Scored, build_long_stream, score_by_label, score_events
from export.report.settings import SPLIT, VariantDef


@dataclass
class Stream:
    """The report's long stream: its front-end frames and the keywords planted in it."""

    feats: np.ndarray  # uint16 front-end frames [T, F] of the whole stream
    events: list[Planted]
    seconds: float
    seed: int


@dataclass
class StreamPosteriors:
    """Frame posteriors in the units the device's post-processing uses (q - zero_point, or floats)."""

    units: np.ndarray  # [T, C] int64 for quantized models, float64 for float ones
    scale: float
    integer: bool
    runtime: str
    wall_s: float

    @property
    def argmax(self) -> np.ndarray:
        return self.units.argmax(axis=1)


def stream_features(pcm: np.ndarray, fe: FrontendConfig, progress: bool) -> np.ndarray:
    """The front end over a whole stream, fed in one-second chunks (the output is chunking-independent)."""
    frontend = StreamingFrontend(fe)
    rate = fe.sample_rate
    parts = [frontend.process(pcm[i : i + rate])
             for i in tqdm(range(0, len(pcm), rate), desc="front end", unit="s", disable=not progress, leave=False)]
    return np.concatenate(parts) if parts else np.zeros((0, fe.num_channels), dtype=np.uint16)


def build_stream(dataset: Dataset, minutes: float, seed: int, fe: FrontendConfig, progress: bool,
                 split: str = SPLIT) -> Stream:
    """The long stream of `split` (the report's test split; the export's threshold calibration: validation)."""
    long = build_long_stream(dataset, split, minutes * 60.0, seed, rate=fe.sample_rate)
    return Stream(stream_features(long.pcm, fe, progress), long.events, long.seconds, seed)


def posteriors_tflite(manifest: Manifest, vdef: VariantDef, feats: np.ndarray, progress: bool) -> StreamPosteriors:
    """One interpreter invoke per frame with the state carried, exactly as `StreamingDetector` does."""
    det = StreamingDetector(manifest, vdef.tflite or "", vdef.runtime or Runtime.AUTO)
    return step_posteriors(det, feats, progress, f"stream {vdef.title}")


def step_posteriors(det: StreamingDetector, feats: np.ndarray, progress: bool = False, desc: str = "") -> StreamPosteriors:
    """`det`'s model stepped over `feats` from its current state, in the detector's units."""
    t0 = time.perf_counter()
    q = det.model.posterior_scale
    units = np.zeros((len(feats), len(det.labels)), dtype=np.int64 if q else np.float64)
    for i, f in enumerate(tqdm(feats, desc=desc, unit="frame", disable=not progress, leave=False, mininterval=1.0)):
        raw = det.model.step_raw(f)
        units[i] = raw.astype(np.int64) - q[1] if q else raw.astype(np.float64)
    return StreamPosteriors(units, q[0] if q else 1.0, q is not None, det.model.runtime.value, time.perf_counter() - t0)


def posteriors_pytorch(run: Any, feats: np.ndarray) -> StreamPosteriors:
    """`forward` over the whole stream in one call (tests prove it equal to stepping)."""
    import torch

    t0 = time.perf_counter()
    with torch.no_grad():
        logits, _ = run.model(torch.from_numpy(features_to_float(feats))[None])
        probs = torch.softmax(logits[0], dim=-1).numpy()
    return StreamPosteriors(probs.astype(np.float64), 1.0, False, "pytorch", time.perf_counter() - t0)


# ----------------------------------------------------------------------------- detection sweep
def window_sums(units: np.ndarray, window: int) -> np.ndarray:
    """`Detector`'s running window sum at every frame, [T, C].

    Same arithmetic as `Detector.update` (sum += p - p_leaving): exact for integers; for floats the same
    float64 operations in the same order, because `np.cumsum` accumulates sequentially.
    """
    u = np.asarray(units)
    u = u.astype(np.int64 if np.issubdtype(u.dtype, np.integer) else np.float64)
    delta = u.copy()
    delta[window:] -= u[:-window]
    return np.cumsum(delta, axis=0)


def fast_detect(sums: np.ndarray, detector: Detector) -> list[Event]:
    """The events `detector.update` would emit over the frames whose window sums are `sums`.

    Vectorized threshold test, then a walk over candidate frames only for the refractory period.
    """
    cfg = detector.config
    over = (sums >= detector.limits) & detector.fires
    candidates = np.flatnonzero(over.any(axis=1))
    events: list[Event] = []
    i = 0
    while i < len(candidates):
        frame = int(candidates[i])
        smoothed = sums[frame] * (detector.scale / cfg.window)
        best = int(np.argmax(np.where(over[frame], smoothed, -np.inf)))
        events.append(Event(detector.labels[best], frame, frame * detector.hop_s + detector.window_s, float(smoothed[best])))
        i = int(np.searchsorted(candidates, frame + 1 + cfg.refractory))
    return events


def point(threshold: float, s: Scored) -> dict[str, Any]:
    """One DET point of report.json: the scored detections at `threshold`."""
    return {"threshold": threshold, "hits": s.hits, "misses": s.misses, "false_alarms": s.false_alarms,
            "substitutions": s.substitutions, "keywords": s.keywords, "recall": s.recall, "frr": s.frr,
            "fa_per_hour": s.fa_per_hour}


def make_detector(labels: list[str], config: PostprocessConfig, post: StreamPosteriors, fe: FrontendConfig) -> Detector:
    """The post-processing `StreamingDetector` builds for this variant, with `config`."""
    return Detector(labels, config, scale=post.scale, integer=post.integer,
                    hop_s=fe.hop_ms / 1000, window_s=fe.window_ms / 1000)


def score_detections(events: list[Event], planted: list[Planted], seconds: float) -> Scored:
    """`score_events` of detector events against the planted keywords."""
    return score_events([(e.label, e.time_s) for e in events], planted, seconds)


def sweep(post: StreamPosteriors, labels: list[str], base: PostprocessConfig, thresholds: Sequence[float],
          planted: list[Planted], seconds: float, fe: FrontendConfig) -> list[dict[str, Any]]:
    """One DET point per threshold (one threshold for every keyword, as `edge run --threshold` sets)."""
    sums = window_sums(post.units, base.window)
    out = []
    for t in thresholds:
        cfg = PostprocessConfig(base.window, float(t), {}, base.refractory)
        events = fast_detect(sums, make_detector(labels, cfg, post, fe))
        out.append(point(float(t), score_detections(events, planted, seconds)))
    return out


def operating_point(post: StreamPosteriors, labels: list[str], config: PostprocessConfig,
                    planted: list[Planted], seconds: float, fe: FrontendConfig) -> dict[str, Any]:
    """The manifest's own post-processing (per-label thresholds included) on the stream: the overall point, and
    per keyword (`score_by_label`) the same figures with the keyword's own threshold."""
    events = fast_detect(window_sums(post.units, config.window), make_detector(labels, config, post, fe))
    per = score_by_label([(e.label, e.time_s) for e in events], planted, keyword_labels(labels), seconds)
    return {**point(config.threshold, score_detections(events, planted, seconds)),
            "keywords": {l: point(config.threshold_of(l), s) for l, s in per.items()}}


def frr_at_fa(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """Lowest FRR among the points with FA/h <= target (ties: the lower threshold); None if none qualifies."""
    ok = [p for p in points if p["fa_per_hour"] <= target + 1e-12]
    if not ok:
        return None
    best = min(ok, key=lambda p: (p["frr"], p["threshold"]))
    return {"target": target, "threshold": best["threshold"], "frr": best["frr"],
            "fa_per_hour": best["fa_per_hour"], "false_alarms": best["false_alarms"]}
