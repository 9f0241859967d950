"""The operating point chosen for the user: each keyword's detection threshold, set at export on a long
validation-split stream for a target false-alarm rate, and written into the manifest's postprocess section
(so `edge run`, `edge eval` and the firmware's generated settings header all use it).

Measurement: `build_long_stream` over the *validation* split (its keyword and `_unknown_` clips planted over
its part of the background noise), its front-end frames once through the int8 TFLite model with the
report's runtime (`export.report.detection.posteriors_tflite`: the interpreter and kernels `edge run` uses);
detection is the report's `fast_detect` (event-for-event equal to `edge.postprocess.Detector`), scored with
`score_events`.

Rule (`choose_limits`), for a target of T false alarms per hour and K keywords:

* Budget: the keywords together may have N = floor(T * H) false alarms on a stream of H hours
  (`allowed_false_alarms`); a false alarm of a keyword is an event with its label that matches no planted
  instance of it. One false alarm on the stream is 3600 / seconds FA/h (the resolution): a stream shorter than
  1 / T hours gives N = 0, i.e. "no false alarm of any keyword on N minutes of stream".
* Grid: thresholds are integer limits L on the detector's window sum of (q - zero_point), written as
  `grid_threshold(L)`, which `integer_threshold` maps back to exactly L (Python and firmware agree).
* Ladder, per keyword, on its own detections (the detector with only that keyword armed): for n = 0 .. N, the
  lowest L >= 1 such that L and every higher limit give at most n false alarms (`ladder`). Events change only
  where L passes a window sum the stream attains, so only those are tried, from the top down; the limit for n is
  one above the highest attained sum at which the keyword has more than n false alarms (1 if there is none).
* Share (`share_budget`): each keyword gets n_k false alarms, sum n_k <= N, chosen to leave as few keywords as
  possible without a hit, then to detect the most planted words, then to use the fewest false alarms (ties:
  the first found). Equal shares of floor(N / K) are one of the candidates, so the pooled budget never leaves
  more keywords without a hit than equal shares would, nor, at as many, detects less. It matters where N < K
  (1 FA/h, 10 keywords, an hour of stream: the one false alarm goes to the keyword that gains most, e.g. one
  whose only false alarm reaches the int8 posterior's ceiling and would otherwise get no threshold with any
  recall).
* Together (the detector `edge run` builds, all keywords armed): the refractory period and the choice among
  labels over their limits couple the keywords, so a keyword can (rarely) gain a false alarm there. Any
  keyword that exceeds its n_k is raised past its next attained sum until none does (`interaction_steps`
  counts the raises). The recall and FA/h recorded are this detector's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from edge.datasets import Dataset
from edge.errors import UserError
from edge.frontend import FrontendConfig
from edge.manifest import Manifest
from edge.postprocess import Event, PostprocessConfig, grid_threshold, keyword_labels
from export.longstream import Planted, Scored, score_by_label, score_events
from export.report.detection import (StreamPosteriors, build_stream, fast_detect, make_detector, posteriors_tflite,
                                     window_sums)
from export.report.settings import VARIANTS

DEFAULT_TARGET_FA_PER_HOUR = 1.0
#: 60 minutes: one false alarm = 1 FA/h, the default target's own resolution. Measured on the 2-core build machine
#: (GRU-32, reference kernels): 14 s in all (stream 8 s, int8 model 4 s for 360,000 frames, search 1 s), peak
#: memory 2.6 GB; 20 minutes take 4 s.
DEFAULT_MINUTES = 60.0
CALIBRATION_SPLIT = "validation"
CALIBRATION_SEED = 4242  # not the report's test-stream seed; a different split anyway
RULE = ("all keywords together: at most floor(target * hours) false alarms on the validation stream, shared "
        "among the keywords to leave the fewest without a hit, then detect the most; per keyword the lowest "
        "integer window-sum limit at and above which it alone stays within its share, raised where all "
        "keywords together exceed a share")


@dataclass(frozen=True)
class CalibrationOptions:
    target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR
    minutes: float = DEFAULT_MINUTES
    seed: int = CALIBRATION_SEED


@dataclass(frozen=True)
class Calibration:
    postprocess: PostprocessConfig  # the manifest's postprocess with the chosen per-keyword thresholds
    section: dict[str, Any]  # manifest["operating_point"]


def allowed_false_alarms(target_fa_per_hour: float, seconds: float) -> int:
    """False alarms all keywords together may have on `seconds` of stream: floor(target * hours)."""
    return int(math.floor(target_fa_per_hour * seconds / 3600.0 + 1e-9))


def with_limits(base: PostprocessConfig, limits: Mapping[str, int], scale: float) -> PostprocessConfig:
    """`base` with a per-label threshold on the integer grid for each label in `limits`."""
    return PostprocessConfig(base.window, base.threshold,
                             {l: grid_threshold(L, base.window, scale) for l, L in limits.items()}, base.refractory)


def scores_by_label(events: list[Event], planted: list[Planted], labels: list[str], seconds: float) -> dict[str, Scored]:
    """Each label's events scored against its own planted instances (`score_by_label`)."""
    return score_by_label([(e.label, e.time_s) for e in events], planted, labels, seconds)


def single_scores(sums: np.ndarray, label: str, limit: int, post: StreamPosteriors, base: PostprocessConfig,
                  planted: list[Planted], seconds: float, fe: FrontendConfig) -> Scored:
    """`label`'s hits and false alarms with only it armed at `limit` (`sums`: its window sums, [T, 1])."""
    det = make_detector([label], with_limits(base, {label: limit}, post.scale), post, fe)
    return scores_by_label(fast_detect(sums, det), planted, [label], seconds)[label]


def single_false_alarms(sums: np.ndarray, label: str, limit: int, post: StreamPosteriors, base: PostprocessConfig,
                        planted: list[Planted], seconds: float, fe: FrontendConfig) -> int:
    """False alarms of `label` with only it armed at `limit` (`sums`: its window sums, [T, 1])."""
    return single_scores(sums, label, limit, post, base, planted, seconds, fe).false_alarms


@dataclass(frozen=True)
class Rung:
    """One step of a keyword's ladder: the lowest limit for at most `allowed` false alarms, alone."""

    allowed: int
    limit: int
    hits: int
    false_alarms: int


def ladder(sums: np.ndarray, label: str, budget: int, post: StreamPosteriors, base: PostprocessConfig,
           planted: list[Planted], seconds: float, fe: FrontendConfig) -> list[Rung]:
    """For n = 0 .. `budget`: the lowest limit L >= 1 such that L and every higher limit give `label` alone at
    most n false alarms, with its hits and false alarms there (`sums`: its window sums, [T, 1])."""
    limits: list[int | None] = [None] * (budget + 1)
    for value in np.unique(sums[sums >= 1])[::-1]:
        fa = single_false_alarms(sums, label, int(value), post, base, planted, seconds, fe)
        for n in range(min(fa, budget + 1)):
            if limits[n] is None:
                limits[n] = int(value) + 1
        if limits[budget] is not None:
            break
    rungs = []
    for n, limit in enumerate(1 if L is None else L for L in limits):
        s = single_scores(sums, label, limit, post, base, planted, seconds, fe)
        rungs.append(Rung(n, limit, s.hits, s.false_alarms))
    return rungs


def share_budget(ladders: Mapping[str, list[Rung]], budget: int) -> dict[str, int]:
    """n_k per keyword with sum n_k <= `budget`: the fewest keywords without a hit, then the most hits, then
    the fewest false alarms allowed (an exact search over the shares; ties keep the first found, so the result
    is deterministic)."""
    # best[b]: (score, shares) over the keywords so far, with b false alarms given out; score compares as a tuple
    best: dict[int, tuple[tuple[int, int, int], dict[str, int]]] = {0: ((0, 0, 0), {})}
    for k, rungs in ladders.items():
        grown: dict[int, tuple[tuple[int, int, int], dict[str, int]]] = {}
        for used, (score, shares) in best.items():
            for rung in rungs[: budget - used + 1]:
                s = (score[0] - (rung.hits == 0), score[1] + rung.hits, score[2] - rung.allowed)
                b = used + rung.allowed
                if b not in grown or s > grown[b][0]:
                    grown[b] = (s, {**shares, k: rung.allowed})
        best = grown
    return max(best.values(), key=lambda entry: entry[0])[1]


def joint_events(sums: np.ndarray, labels: list[str], limits: Mapping[str, int], post: StreamPosteriors,
                 base: PostprocessConfig, fe: FrontendConfig) -> list[Event]:
    """The full detector's events (every keyword armed at its limit), as `edge run` detects."""
    return fast_detect(sums, make_detector(labels, with_limits(base, limits, post.scale), post, fe))


def choose_limits(post: StreamPosteriors, labels: list[str], base: PostprocessConfig, planted: list[Planted],
                  seconds: float, fe: FrontendConfig, budget: int
                  ) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """The rule of this module's docstring, for `budget` false alarms in all: (limit per keyword, false alarms
    allowed per keyword, interaction raises per keyword)."""
    if not post.integer:
        raise UserError("thresholds are calibrated on an int8 model's integer posteriors")
    sums = window_sums(post.units, base.window)
    keywords = keyword_labels(labels)
    col = {k: sums[:, [labels.index(k)]] for k in keywords}
    ladders = {k: ladder(col[k], k, budget, post, base, planted, seconds, fe) for k in keywords}
    shares = share_budget(ladders, budget)
    limits = {k: ladders[k][shares[k]].limit for k in keywords}
    steps = dict.fromkeys(keywords, 0)
    while True:
        scores = scores_by_label(joint_events(sums, labels, limits, post, base, fe), planted, keywords, seconds)
        over = [k for k in keywords if scores[k].false_alarms > shares[k]]
        if not over:
            return limits, shares, steps
        for k in over:  # it fired, so some attained sum is >= its limit
            limits[k] = int(col[k][col[k] >= limits[k]].min()) + 1
            steps[k] += 1


def _figures(s: Scored) -> dict[str, Any]:
    return {"hits": s.hits, "planted": s.keywords, "recall": s.recall if s.keywords else None,
            "false_alarms": s.false_alarms, "fa_per_hour": s.fa_per_hour}


def calibrate(manifest: Manifest, dataset: Dataset, opts: CalibrationOptions, progress: bool) -> Calibration:
    """Per-keyword thresholds of an artifacts folder's int8 model for `opts.target_fa_per_hour`."""
    labels, base, fe = manifest.labels, manifest.postprocess, manifest.frontend
    keywords = keyword_labels(labels)
    if not keywords:
        raise UserError("the model has no keyword labels to set thresholds for")
    if not dataset.split(CALIBRATION_SPLIT):
        raise UserError(f"the dataset has no {CALIBRATION_SPLIT}-split clips to set the detection thresholds on")
    t0 = time.perf_counter()
    stream = build_stream(dataset, opts.minutes, opts.seed, fe, progress, split=CALIBRATION_SPLIT)
    t1 = time.perf_counter()
    post = posteriors_tflite(manifest, next(v for v in VARIANTS if v.key == "tflite_int8"), stream.feats, progress)
    t2 = time.perf_counter()
    allowed = allowed_false_alarms(opts.target_fa_per_hour, stream.seconds)
    limits, shares, steps = choose_limits(post, labels, base, stream.events, stream.seconds, fe, allowed)
    chosen = with_limits(base, limits, post.scale)
    events = joint_events(window_sums(post.units, base.window), labels, limits, post, base, fe)
    scores = scores_by_label(events, stream.events, keywords, stream.seconds)
    total = score_events([(e.label, e.time_s) for e in events], stream.events, stream.seconds)
    section = {
        "target_fa_per_hour": opts.target_fa_per_hour,
        "rule": RULE,
        "split": CALIBRATION_SPLIT,
        "seed": opts.seed,
        "minutes": opts.minutes,
        "seconds": round(stream.seconds, 3),
        "frames": int(len(stream.feats)),
        "fa_per_hour_resolution": 3600.0 / stream.seconds,
        "allowed_false_alarms": allowed,
        "variant": "int8",
        "runtime": post.runtime,
        "keywords": {k: {"threshold": chosen.threshold_of(k), "limit": limits[k], "allowed_false_alarms": shares[k],
                         "interaction_steps": steps[k],
                         **_figures(scores[k])} for k in keywords},
        "total": _figures(total),
        "wall_seconds": {"stream": round(t1 - t0, 2), "model": round(t2 - t1, 2),
                         "search": round(time.perf_counter() - t2, 2)},
    }
    return Calibration(chosen, section)


def summary_line(section: Mapping[str, Any]) -> str:
    """One line: thresholds per keyword, then recall and FA/h on the calibration stream."""
    kw = section["keywords"]
    tot = section["total"]
    recall = "n/a" if tot["recall"] is None else f"{100 * tot['recall']:.1f}%"
    return (f"operating point for <= {section['target_fa_per_hour']:g} FA/h ({section['seconds'] / 60:.0f} min of "
            f"{section['split']} stream, at most {section['allowed_false_alarms']} false alarm(s) in all, "
            f"1 = {section['fa_per_hour_resolution']:.2f} FA/h): "
            + ", ".join(f"{k} {v['threshold']:.4f}" for k, v in kw.items())
            + f"; recall {recall}, {tot['fa_per_hour']:.2f} FA/h ({tot['false_alarms']} false alarms)"
            + _silenced_note(kw))


def silenced_keywords(keywords: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Keywords that detect none of their planted words at the chosen point: the target cost them all recall."""
    return [k for k, v in keywords.items() if v.get("planted") and not v.get("hits")]


def _silenced_note(keywords: Mapping[str, Mapping[str, Any]]) -> str:
    silenced = silenced_keywords(keywords)
    if not silenced:
        return ""
    return (f"; WARNING: {', '.join(silenced)} detect(s) nothing at this point (the target leaves no threshold with "
            f"recall): raise --target-fa-per-hour or improve the model")
