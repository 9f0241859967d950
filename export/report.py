"""`python -m export report ART [ART ...] --out DIR`: what quantization costs, measured as on a device.

For each variant of an artifacts folder — PyTorch float (the training run named in the manifest), TFLite
float32 / int8 / int16x8 (the Pi's interpreter) and TFLite Micro int8 (the firmware's reference
interpreter) — on the held-out test split:

* clip accuracy: every test clip streamed alone from a reset state and decided with `clip_decision`. The
  TFLite variants are streamed with `edge.cli.reset_posteriors`, which makes the figures those of
  `python -m edge eval --model ART --data DIR --variant V --json`.
* standard accuracy: the 12-class argmax protocol of published results (`edge.postprocess.clip_argmax`, no
  thresholds) on `edge.datasets.standard_clips` (command words as they are, `_unknown_` and `_silence_`
  sampled to the mean command class size), as `edge eval`'s "standard" figure.
* false rejections vs false alarms per hour on a deterministic long stream (`build_long_stream` over the
  test split, state never reset): frame posteriors are computed once per variant, then only the
  post-processing is re-run per threshold (`fast_detect`: the arithmetic of `edge.postprocess.Detector`,
  tested event-for-event equal to it) and scored with `score_events`.
* size, parameters, MACs, TFLM arena, per-frame latency (`edge.cli.bench`), and the firmware's figures
  when the manifest has a `firmware` section.

Several artifacts folders give one section each plus a comparison table and plot.

Outputs in DIR: report.md, report.html (self-contained: plots embedded as data URIs), report.json and
PNG plots, written into a temporary folder and renamed into place, plus the marker `.kws-report` (JSON: the
names of the files written). An existing DIR is replaced only when it is empty, or with --force when it holds
nothing but an earlier report (its marker and the plain files the marker lists); anything else is refused
before the evaluation starts.

report.json, schema_version 1 (fractions are in [0, 1]; "pp" in text means percentage points):

| key | type | meaning |
|---|---|---|
| schema_version | int | 1 |
| created_utc | str | ISO time of the report |
| settings | object | minutes, seed, thresholds [float], fa_targets [float], limit (0 = all clips), split, tflm_minutes (null = whole stream), bench_seconds, frr_at_fa_method (str) |
| models | list | one entry per artifacts folder, in command-line order (below) |
| comparison | list | one row per model: name, cell, hidden, layers, params, macs_per_frame, float_accuracy, int8_accuracy, int8_accuracy_cost_pp, float_standard_accuracy, int8_standard_accuracy, float_frr_at_1, int8_frr_at_1, int8_bytes, float32_bytes, tflm_arena_bytes, int8_model_us_p50 |
| comparison_plot | str or null | PNG file name of the comparison plot (null for a single model) |

models[i]:

| key | type | meaning |
|---|---|---|
| name, artifacts | str | manifest name, artifacts folder |
| run | str or null | training run used for PyTorch float (null when missing) |
| data, recipe, split | str | evaluation data folder, its recipe, split |
| labels | [str] | class labels |
| postprocess | object | the manifest's post-processing: window, threshold, thresholds (per-label), refractory |
| calibration | object or null | manifest["operating_point"]: how the export chose the per-keyword thresholds (target FA/h, validation stream, recall and FA/h measured there; export/calibrate.py) |
| model | object | cell, hidden, layers, params, macs_per_frame |
| reference | str | the float variant agreement is measured against: "pytorch_float", else "tflite_float32" |
| summary | str | "int8 costs X pp accuracy and Y pp FRR@1FA/h, saves Z KB, runs W µs/frame (...); standard accuracy A% int8, B% reference" |
| stream | object | seconds, frames, keywords, seed, fa_per_hour_resolution (FA/h of one false alarm) |
| variants | object | key -> variant entry (below); keys: pytorch_float, tflite_float32, tflite_int8, tflite_int16x8, tflm_int8 |
| firmware | object or null | manifest["firmware"] as written by the firmware build (flash_bytes, ram_bytes, ...) |
| plots | object | det, confusion_int8, confusion_float, size_accuracy -> PNG file name |

variants[key]:

| key | type | meaning |
|---|---|---|
| title, runtime | str | display name; interpreter ("pytorch", "litert", "tflm", ...) |
| clips | object | accuracy, clips, per_class {label: float or null}, confusion [[int]] (rows = truth), labels |
| standard | object | the standard figure, comparable with published ones: same fields as clips plus protocol (str); `clip_argmax` over `edge.datasets.standard_clips` (as `edge eval --json`'s "standard") |
| agreement | object | clip, frame_clips, frame_stream: share equal to the reference's decision / frame argmax (1.0 for the reference itself) |
| stream | object | seconds, frames, keywords (planted), shortened (bool: ran on a prefix of the stream) |
| operating_point | object | the manifest's own post-processing: threshold (default; per-label overrides apply), hits, misses, false_alarms, keywords, recall, frr, fa_per_hour; keywords {label: same fields, that label's threshold, its own planted words and false alarms} |
| det | [object] | one point per swept threshold: same fields as operating_point |
| frr_at_fa | object | "0.5", "1.0" -> {target, threshold, frr, fa_per_hour, false_alarms} or null when no threshold reaches it |
| size | object | file_bytes, tflm_arena_bytes (null where not applicable) |
| latency_us | object or null | edge.cli.bench percentiles: frontend, model, postprocess, total -> {p50, p90, p99}; real_time_factor |
| wall_seconds | object | clips, stream: time this report spent on the variant |
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import html
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from edge.args import Parser, finite_number
from edge.cli import BENCH_SECONDS, bench, evaluate_standard, reset_posteriors
from edge.datasets import (AudioCache, Dataset, Recipe, auto_recipe, evaluation_clips, load_dataset, recorded_data_dirs,
                           reuse_by_name, standard_clips)
from edge.detector import StreamingDetector
from edge.errors import UserError
from edge.frontend import FrontendConfig, StreamingFrontend, features_to_float
from edge.interpreters import Runtime
from edge.manifest import Manifest, load_manifest
from edge.postprocess import (Detector, Event, PostprocessConfig, clip_decision, keyword_labels, standard_summary,
                              summarize)
from export.longstream import Planted, Scored, build_long_stream, score_by_label, score_events

SCHEMA_VERSION = 1
REPORT_FILES = ("report.md", "report.html", "report.json")
FA_TARGETS = (0.5, 1.0)
#: Swept thresholds: 0.05 steps, then ever finer towards 1.0 where the low-false-alarm end of the curve lies (an
#: int8 posterior moves in 1/256 steps: with a 10-frame window the last reachable limit is 0.996).
DEFAULT_THRESHOLDS = (tuple(round(0.05 * i, 2) for i in range(1, 19)) + tuple(round(0.01 * i, 2) for i in range(91, 100))
                      + (0.992, 0.994, 0.996, 0.998, 0.999, 1.0))
FRR_AT_FA_METHOD = ("lowest FRR among the swept thresholds whose FA/h <= target (no interpolation); "
                    "null when no swept threshold reaches the target")
STREAM_SEED = 2024
SPLIT = "test"
REFERENCE_ORDER = ("pytorch_float", "tflite_float32")


@dataclass(frozen=True)
class VariantDef:
    key: str
    title: str
    tflite: str | None  # manifest variant name; None for PyTorch
    runtime: Runtime | None


VARIANTS = (
    VariantDef("pytorch_float", "PyTorch float", None, None),
    VariantDef("tflite_float32", "TFLite float32", "float32", Runtime.AUTO),
    VariantDef("tflite_int8", "TFLite int8", "int8", Runtime.AUTO),
    VariantDef("tflite_int16x8", "TFLite int16x8", "int16x8", Runtime.AUTO),
    VariantDef("tflm_int8", "TFLite Micro int8", "int8", Runtime.TFLM),
)


@dataclass(frozen=True)
class ReportOptions:
    minutes: float = 30.0
    data: Sequence[Path] | None = None
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    seed: int = STREAM_SEED
    limit: int = 0
    tflm_minutes: float | None = None  # None: the whole stream
    bench_seconds: float = 5.0
    progress: bool = True
    #: real recordings of a keyword and negative audio: the wake-word section (`export.wakeword`)
    positives: Path | None = None
    negatives: Path | None = None
    keyword: str | None = None


def _say(opts: ReportOptions, message: str) -> None:
    if opts.progress:
        print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data
@dataclass
class EvalData:
    data_dir: list[Path]
    recipe: Recipe
    dataset: Dataset
    pcm: list[np.ndarray]
    truth: list[int]
    names: list[str] = field(default_factory=list)  # clip names of pcm (`evaluation_clips`)
    #: (pcm, truth, names) of `edge.datasets.standard_clips`: the clips of the standard figure
    standard: tuple[list[np.ndarray], list[int], list[str]] = ([], [], [])


def resolve_data_dir(manifest: Manifest, data: Sequence[Path] | Path | None) -> list[Path]:
    """--data (one folder or several), else the data folders the run was trained on (from the manifest)."""
    if not data:
        dirs = recorded_data_dirs(manifest.data.get("training", {}).get("config", {}).get("data"))
        if not dirs:
            raise UserError(f"{manifest.root}: the manifest names no data folder; pass --data DIR")
    else:
        dirs = recorded_data_dirs(data)
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"data folder {d} does not exist; pass --data DIR")
    return dirs


def load_eval_dataset(labels: list[str], data_dir: Sequence[Path] | Path) -> tuple[Recipe, Dataset]:
    """The dataset exactly as `python -m edge eval --data DIR` loads it (recipe guessed from the folder)."""
    recipe = auto_recipe(data_dir)
    keywords = tuple(l for l in labels if not l.startswith("_")) if recipe in (Recipe.SPEECH_COMMANDS, Recipe.FOLDER) else None
    return recipe, load_dataset(recipe, data_dir, keywords)


def load_eval_data(manifest: Manifest, data_dir: list[Path], limit: int) -> EvalData:
    recipe, dataset = load_eval_dataset(manifest.labels, data_dir)
    cache = AudioCache(manifest.frontend.sample_rate)
    pcm, truth, names = evaluation_clips(dataset, SPLIT, cache, labels=manifest.labels)
    standard = standard_clips(dataset, SPLIT, cache, labels=manifest.labels)
    if limit:
        pcm, truth, names = pcm[:limit], truth[:limit], names[:limit]
        standard = (standard[0][:limit], standard[1][:limit], standard[2][:limit])
    if not pcm:
        raise UserError(f"{' '.join(map(str, data_dir))}: no clips in split {SPLIT!r}")
    return EvalData(data_dir, recipe, dataset, pcm, truth, names, standard)


# ----------------------------------------------------------------------------- clip accuracy
@dataclass
class ClipResult:
    summary: dict[str, Any]
    pred: list[int]
    frame_argmax: np.ndarray  # all clips' frames, concatenated
    wall_s: float
    standard: dict[str, Any] = field(default_factory=dict)  # standard figure (`standard_summary`) of data.standard


def clips_tflite(manifest: Manifest, vdef: VariantDef, data: EvalData, progress: bool) -> ClipResult:
    """Each clip streamed alone from a reset state (`edge.cli.reset_posteriors`) and decided with
    `clip_decision`, plus `edge.cli.evaluate_standard`: the figures `edge eval` gives."""
    t0 = time.perf_counter()
    det = StreamingDetector(manifest, vdef.tflite or "", vdef.runtime or Runtime.AUTO)
    post = reset_posteriors(det, tqdm(data.pcm, desc=f"clips {vdef.title}", unit="clip", disable=not progress, leave=False))
    pred = [clip_decision(p, manifest.labels, det.postprocess) for p in post]
    standard = evaluate_standard(det, data.standard, dict(zip(data.names, post)))
    return ClipResult(summarize(pred, data.truth, manifest.labels), pred, _concat([p.argmax(axis=1) for p in post]),
                      time.perf_counter() - t0, standard)


def clips_pytorch(run: Any, manifest: Manifest, data: EvalData) -> ClipResult:
    """PyTorch float posteriors of each clip from a zero state, decided like the device decides; and the
    standard figure of the standard clip set."""
    from train.trainer import clip_features, clip_posteriors

    t0 = time.perf_counter()
    post = clip_posteriors(run.model, clip_features(data.pcm, manifest.frontend))
    pred = [clip_decision(p, manifest.labels, manifest.postprocess) for p in post]
    frames = [p.argmax(axis=1) for p in post]
    spcm, struth, snames = data.standard
    spost = reuse_by_name(snames, spcm, dict(zip(data.names, post)),
                          lambda todo: clip_posteriors(run.model, clip_features(todo, manifest.frontend)))
    standard = standard_summary(spost, struth, manifest.labels, manifest.postprocess.window)
    return ClipResult(summarize(pred, data.truth, manifest.labels), pred, _concat(frames), time.perf_counter() - t0,
                      standard)


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


# ----------------------------------------------------------------------------- long stream
@dataclass
class Stream:
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


def frames_for_seconds(seconds: float, fe: FrontendConfig) -> int:
    """Frames the front end emits for `seconds` of audio."""
    samples = int(round(seconds * fe.sample_rate))
    return max(0, (samples - fe.window_samples) // fe.hop_samples + 1)


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
    return {"threshold": threshold, "hits": s.hits, "misses": s.misses, "false_alarms": s.false_alarms,
            "keywords": s.keywords, "recall": s.recall, "frr": s.frr, "fa_per_hour": s.fa_per_hour}


def make_detector(labels: list[str], config: PostprocessConfig, post: StreamPosteriors, fe: FrontendConfig) -> Detector:
    """The post-processing `StreamingDetector` builds for this variant, with `config`."""
    return Detector(labels, config, scale=post.scale, integer=post.integer,
                    hop_s=fe.hop_ms / 1000, window_s=fe.window_ms / 1000)


def score_detections(events: list[Event], planted: list[Planted], seconds: float) -> Scored:
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


# ----------------------------------------------------------------------------- one model
@dataclass
class ModelContext:
    artifacts: Path
    manifest: Manifest
    run: Any | None
    run_dir: str | None
    data: EvalData
    stream: Stream


def load_training_run(manifest: Manifest, say: Callable[[str], None]) -> tuple[Any | None, str | None]:
    """The run named in the manifest, or (None, None) with a warning when it is not available here."""
    from train.trainer import load_run

    run_dir = manifest.data.get("training", {}).get("run")
    if not run_dir or not Path(run_dir).is_dir():
        say(f"warning: training run {run_dir!r} not found; PyTorch float is left out and TFLite float32 is the reference")
        return None, None
    run = load_run(Path(run_dir))
    if list(run.labels) != list(manifest.labels):
        raise UserError(f"{run_dir}: the run's labels differ from {manifest.root}'s manifest")
    return run, str(run_dir)


def _size(manifest: Manifest, ctx_run_dir: str | None, vdef: VariantDef) -> dict[str, Any]:
    if vdef.tflite is None:
        ckpt = Path(ctx_run_dir) / "model.safetensors" if ctx_run_dir else None
        return {"file_bytes": ckpt.stat().st_size if ckpt and ckpt.is_file() else None, "tflm_arena_bytes": None}
    entry = manifest.data["variants"][vdef.tflite]
    return {"file_bytes": int(entry["bytes"]), "tflm_arena_bytes": entry.get("tflm_arena_bytes")}


def _latency(artifacts: Path, vdef: VariantDef, seconds: float, say: Callable[[str], None]) -> dict[str, Any] | None:
    if vdef.tflite is None or seconds <= 0:
        return None
    try:
        b = bench(artifacts, vdef.tflite, vdef.runtime or Runtime.AUTO, seconds, 1, compare=False)
    except Exception as exc:  # noqa: BLE001 - a benchmark failure is reported, not fatal
        say(f"warning: bench of {vdef.title} failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return None
    keep = ("frontend_us", "model_us", "postprocess_us", "total_us")
    out: dict[str, Any] = {k[:-3]: b[k] for k in keep}
    out["real_time_factor"] = b["real_time_factor"]
    if "baseline" in b:
        out["naive_window_model_p50"] = b["baseline"]["model_us"]["p50"]
    return out


def _agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    n = min(len(a), len(b))
    return float(np.mean(a[:n] == b[:n])) if n else None


def evaluate_model(ctx: ModelContext, opts: ReportOptions) -> dict[str, Any]:
    """Every figure of one artifacts folder (no plots)."""
    m, fe = ctx.manifest, ctx.manifest.frontend
    say = lambda s: _say(opts, s)  # noqa: E731
    stream = ctx.stream
    full_frames = len(stream.feats)
    variants: dict[str, Any] = {}
    clip_res: dict[str, ClipResult] = {}
    stream_res: dict[str, StreamPosteriors] = {}
    for vdef in VARIANTS:
        if vdef.tflite is None and ctx.run is None:
            continue
        if vdef.tflite is not None and vdef.tflite not in m.variants:
            say(f"warning: {m.root} has no {vdef.tflite} model; {vdef.title} left out")
            continue
        say(f"{m.data.get('name', m.root.name)}: {vdef.title} ...")
        if vdef.tflite is None:
            clip_res[vdef.key] = clips_pytorch(ctx.run, m, ctx.data)
        else:
            clip_res[vdef.key] = clips_tflite(m, vdef, ctx.data, opts.progress)
        frames = full_frames
        if vdef.runtime is Runtime.TFLM and opts.tflm_minutes is not None:
            frames = min(full_frames, frames_for_seconds(opts.tflm_minutes * 60.0, fe))
        if vdef.tflite is None:
            post = posteriors_pytorch(ctx.run, stream.feats)
        else:
            post = posteriors_tflite(m, vdef, stream.feats[:frames], opts.progress)
        stream_res[vdef.key] = post
        seconds = stream.seconds if frames == full_frames else (frames - 1) * fe.hop_ms / 1000 + fe.window_ms / 1000
        planted = stream.events if frames == full_frames else [e for e in stream.events if e.end_s <= seconds]
        det = sweep(post, m.labels, m.postprocess, opts.thresholds, planted, seconds, fe)
        variants[vdef.key] = {
            "title": vdef.title,
            "runtime": post.runtime,
            "clips": clip_res[vdef.key].summary,
            "standard": clip_res[vdef.key].standard,
            "stream": {"seconds": round(seconds, 3), "frames": int(frames), "keywords": len(planted),
                       "shortened": frames != full_frames},
            "operating_point": operating_point(post, m.labels, m.postprocess, planted, seconds, fe),
            "det": det,
            "frr_at_fa": {str(t): frr_at_fa(det, t) for t in FA_TARGETS},
            "size": _size(m, ctx.run_dir, vdef),
            "latency_us": _latency(ctx.artifacts, vdef, opts.bench_seconds, say),
            "wall_seconds": {"clips": round(clip_res[vdef.key].wall_s, 2), "stream": round(post.wall_s, 2)},
        }
    reference = next((k for k in REFERENCE_ORDER if k in variants), None)
    if reference is None:
        raise UserError(f"{m.root}: neither the PyTorch run nor a float32 model is available to compare with")
    for key, entry in variants.items():
        entry["agreement"] = {
            "clip": float(np.mean(np.asarray(clip_res[key].pred) == np.asarray(clip_res[reference].pred))),
            "frame_clips": _agreement(clip_res[key].frame_argmax, clip_res[reference].frame_argmax),
            "frame_stream": _agreement(stream_res[key].argmax, stream_res[reference].argmax),
        }
    mcfg = m.data.get("model", {})
    cfg = mcfg.get("config", {})
    result = {
        "name": str(m.data.get("name", m.root.name)),
        "artifacts": str(ctx.artifacts),
        "run": ctx.run_dir,
        "data": [str(d) for d in ctx.data.data_dir],
        "recipe": ctx.data.recipe.value,
        "split": SPLIT,
        "labels": list(m.labels),
        "postprocess": m.postprocess.to_dict(),
        "calibration": m.data.get("operating_point"),
        "model": {"cell": cfg.get("cell"), "hidden": cfg.get("hidden"), "layers": cfg.get("layers"),
                  "params": mcfg.get("params"), "macs_per_frame": mcfg.get("macs_per_frame")},
        "reference": reference,
        "stream": {"seconds": round(stream.seconds, 3), "frames": full_frames, "keywords": len(stream.events),
                   "seed": stream.seed, "fa_per_hour_resolution": 3600.0 / stream.seconds if stream.seconds else None},
        "variants": variants,
        "firmware": m.data.get("firmware"),
        "plots": {},
    }
    result["summary"] = summary_line(result)
    return result


def _frr1(entry: dict[str, Any] | None) -> float | None:
    if not entry:
        return None
    p = entry["frr_at_fa"].get("1.0")
    return None if p is None else p["frr"]


def summary_line(model: dict[str, Any]) -> str:
    """'int8 costs X pp accuracy and Y pp FRR@1FA/h, saves Z KB, runs W µs/frame' (vs the float reference),
    then both variants' standard accuracy."""
    v = model["variants"]
    ref, q, f32 = v.get(model["reference"]), v.get("tflite_int8"), v.get("tflite_float32")
    if q is None or ref is None:
        return "no int8 model to summarise"
    acc = 100 * (ref["clips"]["accuracy"] - q["clips"]["accuracy"])
    fr, fq = _frr1(ref), _frr1(q)
    frr = "n/a" if fr is None or fq is None else f"{100 * (fq - fr):.2f}"
    saved = "n/a" if f32 is None else f"{(f32['size']['file_bytes'] - q['size']['file_bytes']) / 1024:.1f}"
    lat = q["latency_us"]
    us = "n/a" if not lat else f"{lat['model']['p50']:.0f}"
    return (f"int8 costs {acc:.2f} pp accuracy and {frr} pp FRR@1FA/h, saves {saved} KB, runs {us} µs/frame "
            f"(vs {ref['title']}; KB vs TFLite float32; model step p50 on {q['runtime']}); standard accuracy "
            f"{100 * q['standard']['accuracy']:.2f}% int8, {100 * ref['standard']['accuracy']:.2f}% {ref['title']}")


# ----------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


Curve = tuple[str, list[dict[str, Any]], str, str | None]  # label, DET points, line style, colour (None: next)


def _det_axes(ax: Any, curves: list[Curve]) -> None:
    for label, points, style, color in curves:
        pts = sorted(points, key=lambda p: -p["threshold"])  # traced in threshold order: the honest curve
        ax.plot([p["fa_per_hour"] for p in pts], [100 * p["frr"] for p in pts], style, marker="o", ms=3, label=label,
                color=color)
    for t in FA_TARGETS:
        ax.axvline(t, color="grey", ls=":", lw=0.8)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel("false alarms per hour (symlog)")
    ax.set_ylabel("false rejection rate (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def plot_det(model: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = []
    for key, v in model["variants"].items():
        note = f" ({v['stream']['seconds'] / 60:.0f} min)" if v["stream"]["shortened"] else ""
        curves.append((v["title"] + note, v["det"], "--" if "int" not in key else "-", None))
    _det_axes(ax, curves)
    ax.set_title(f"{model['name']}: DET curves on {model['stream']['seconds'] / 60:.0f} min of held-out audio")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(clips: dict[str, Any], title: str, path: Path) -> None:
    plt = _pyplot()
    conf = np.asarray(clips["confusion"], dtype=float)
    labels = clips["labels"]
    rows = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * len(labels), 0.8 + 0.5 * len(labels)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {100 * clips['accuracy']:.1f}% ({clips['clips']} clips)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_size_accuracy(model: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    keys = list(model["variants"])
    v = model["variants"]
    x = np.arange(len(keys))
    kb = [(v[k]["size"]["file_bytes"] or 0) / 1024 for k in keys]
    acc = [100 * v[k]["clips"]["accuracy"] for k in keys]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(x - 0.2, kb, 0.4, color="tab:blue", label="model file (KB)")
    ax.set_ylabel("model file (KB)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.bar(x + 0.2, acc, 0.4, color="tab:orange", label="clip accuracy (%)")
    ax2.set_ylabel("clip accuracy (%)", color="tab:orange")
    ax2.set_ylim(0, 100)
    for xi, a in zip(x, acc):
        ax2.text(xi + 0.2, a + 1, f"{a:.1f}", ha="center", fontsize=7)
    ax.set_xticks(x, [v[k]["title"] for k in keys], rotation=15, fontsize=8)
    ax.set_title(f"{model['name']}: accuracy vs size")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_comparison(models: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    curves = []
    for i, m in enumerate(models):
        v = m["variants"]
        color = f"C{i % 10}"  # one colour per model: int8 solid, float dashed
        if "tflite_int8" in v:
            curves.append((f"{m['name']} int8", v["tflite_int8"]["det"], "-", color))
        if m["reference"] in v:
            curves.append((f"{m['name']} float", v[m["reference"]]["det"], "--", color))
    _det_axes(ax, curves)
    ax.set_title("DET curves (int8 solid, float dashed)")
    rows = comparison_rows(models)
    x = np.arange(len(rows))
    bx.bar(x - 0.2, [100 * (r["float_accuracy"] or 0) for r in rows], 0.4, label="float")
    bx.bar(x + 0.2, [100 * (r["int8_accuracy"] or 0) for r in rows], 0.4, label="int8")
    names = [f"{r['name']}\n{r['cell']} h{r['hidden']}, {(r['int8_bytes'] or 0) / 1024:.0f} KB int8" for r in rows]
    bx.set_xticks(x, names, fontsize=8)
    bx.set_ylabel("clip accuracy (%)")
    bx.set_ylim(0, 100)
    bx.legend(fontsize=8)
    bx.set_title("clip accuracy per model")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(model: dict[str, Any], out: Path, slug: str) -> None:
    v = model["variants"]
    plots = {"det": f"{slug}_det.png", "size_accuracy": f"{slug}_size_accuracy.png"}
    plot_det(model, out / plots["det"])
    plot_size_accuracy(model, out / plots["size_accuracy"])
    if "tflite_int8" in v:
        plots["confusion_int8"] = f"{slug}_confusion_int8.png"
        plot_confusion(v["tflite_int8"]["clips"], f"{model['name']} TFLite int8", out / plots["confusion_int8"])
    ref = v[model["reference"]]
    plots["confusion_float"] = f"{slug}_confusion_float.png"
    plot_confusion(ref["clips"], f"{model['name']} {ref['title']}", out / plots["confusion_float"])
    model["plots"] = plots


# ----------------------------------------------------------------------------- comparison
def comparison_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for m in models:
        v = m["variants"]
        ref, q, f32 = v.get(m["reference"]), v.get("tflite_int8"), v.get("tflite_float32")
        fa, qa = (ref["clips"]["accuracy"] if ref else None), (q["clips"]["accuracy"] if q else None)
        rows.append({
            "name": m["name"], **{k: m["model"][k] for k in ("cell", "hidden", "layers", "params", "macs_per_frame")},
            "float_accuracy": fa, "int8_accuracy": qa,
            "int8_accuracy_cost_pp": None if fa is None or qa is None else 100 * (fa - qa),
            "float_standard_accuracy": ref["standard"]["accuracy"] if ref else None,
            "int8_standard_accuracy": q["standard"]["accuracy"] if q else None,
            "float_frr_at_1": _frr1(ref), "int8_frr_at_1": _frr1(q),
            "int8_bytes": q["size"]["file_bytes"] if q else None,
            "float32_bytes": f32["size"]["file_bytes"] if f32 else None,
            "tflm_arena_bytes": q["size"]["tflm_arena_bytes"] if q else None,
            "int8_model_us_p50": q["latency_us"]["model"]["p50"] if q and q["latency_us"] else None,
        })
    return rows


# ----------------------------------------------------------------------------- documents
@dataclass
class Doc:
    """Blocks rendered both as Markdown and as self-contained HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str, bold: bool = False) -> None:
        self.blocks.append(("b" if bold else "p", text))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", (headers, rows)))

    def image(self, file: str, alt: str) -> None:
        self.blocks.append(("img", (file, alt)))

    def markdown(self) -> str:
        out = []
        for kind, b in self.blocks:
            if kind == "h":
                out.append("#" * b[0] + " " + b[1])
            elif kind in ("p", "b"):
                out.append(f"**{b}**" if kind == "b" else b)
            elif kind == "table":
                headers, rows = b
                out.append("\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                                     + ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]))
            else:
                out.append(f"![{b[1]}]({b[0]})")
        return "\n\n".join(out) + "\n"

    def html(self, folder: Path, title: str) -> str:
        body = []
        for kind, b in self.blocks:
            if kind == "h":
                body.append(f"<h{b[0]}>{html.escape(b[1])}</h{b[0]}>")
            elif kind in ("p", "b"):
                text = html.escape(b)
                body.append(f"<p><b>{text}</b></p>" if kind == "b" else f"<p>{text}</p>")
            elif kind == "table":
                headers, rows = b
                head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                cells = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            else:
                data = base64.b64encode((folder / b[0]).read_bytes()).decode("ascii")
                body.append(f'<p><img alt="{html.escape(b[1])}" src="data:image/png;base64,{data}"></p>')
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
                 "text-align:right}th{background:#f3f3f3}img{max-width:100%}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _cell(c: Any) -> str:
    return "–" if c is None else str(c)


def _pct(x: float | None, digits: int = 2) -> str | None:
    return None if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, fmt: str = "{:.1f}") -> str | None:
    return None if x is None else fmt.format(x)


def calibration_section(doc: Doc, cal: dict[str, Any], op: dict[str, Any], stream: dict[str, Any]) -> None:
    """The operating point the export chose (manifest["operating_point"]) and what it gives on this test stream."""
    doc.h(3, "Operating point (chosen at export)")
    doc.p(f"Thresholds set for <= {cal['target_fa_per_hour']:g} FA/h in all ({cal['share_fa_per_hour']:.3g} per keyword) "
          f"on {cal['seconds'] / 60:.1f} min of {cal['split']}-split stream through int8: at most "
          f"{cal['allowed_false_alarms_per_keyword']} false alarm(s) per keyword there (one = "
          f"{cal['fa_per_hour_resolution']:.2f} FA/h). There: recall {_pct(cal['total']['recall'])}, "
          f"{cal['total']['fa_per_hour']:.2f} FA/h. On this test stream ({stream['seconds'] / 60:.1f} min), TFLite int8 at "
          f"these thresholds: recall {_pct(op['recall'])}, {op['fa_per_hour']:.2f} FA/h ({op['false_alarms']} false alarms).")
    rows = [[k, f"{c['threshold']:.4f}", _pct(c["recall"]), _num(c["fa_per_hour"], "{:.2f}"),
             _pct(op["keywords"][k]["recall"] if op["keywords"][k]["keywords"] else None),
             _num(op["keywords"][k]["fa_per_hour"], "{:.2f}")] for k, c in cal["keywords"].items() if k in op["keywords"]]
    doc.table(["keyword", "threshold", f"recall ({cal['split']})", f"FA/h ({cal['split']})", "recall (test, int8)",
               "FA/h (test, int8)"], rows)


def model_section(doc: Doc, m: dict[str, Any], opts: ReportOptions) -> None:
    v = m["variants"]
    s = m["stream"]
    doc.h(2, f"{m['name']} ({m['model']['cell']}, hidden {m['model']['hidden']}, {m['model']['layers']} layer(s))")
    doc.p(m["summary"], bold=True)
    doc.p(f"Artifacts {m['artifacts']}; training run {m['run'] or 'not available'}; data {m['data']} "
          f"({m['recipe']}, split {m['split']}); reference for agreement: {v[m['reference']]['title']}.")
    doc.h(3, "Clip accuracy (each clip streamed alone from a reset state)")
    doc.table(["variant", "runtime", "clips", "accuracy", "standard clips", "standard accuracy", "agreement (clips)",
               "agreement (frames, clips)", "agreement (frames, stream)"],
              [[e["title"], e["runtime"], e["clips"]["clips"], _pct(e["clips"]["accuracy"]), e["standard"]["clips"],
                _pct(e["standard"]["accuracy"]), _pct(e["agreement"]["clip"]), _pct(e["agreement"]["frame_clips"]),
                _pct(e["agreement"]["frame_stream"])]
               for e in v.values()])
    protocol = next(iter(v.values()))["standard"]["protocol"]
    doc.p("accuracy: the device's decision (`clip_decision`: smoothed peaks against the thresholds) on every clip "
          f"plus 10 % silence cuts; standard accuracy: {protocol} (`clip_argmax`, no thresholds), comparable "
          "with published results.")
    labels = m["labels"]
    doc.table(["label", *[e["title"] for e in v.values()], *[f"{e['title']} standard" for e in v.values()]],
              [[l, *[_pct(e["clips"]["per_class"][l], 1) for e in v.values()],
                *[_pct(e["standard"]["per_class"][l], 1) for e in v.values()]] for l in labels])
    doc.h(3, "False rejections vs false alarms (state never reset)")
    doc.p(f"Stream: {s['seconds'] / 60:.1f} min ({s['frames']} frames) of test-split keywords and unknown words "
          f"over test-split noise, {s['keywords']} keywords, seed {s['seed']}. One false alarm on this stream = "
          f"{s['fa_per_hour_resolution']:.2f} FA/h, so targets below that mean zero false alarms. "
          f"FRR at a target: {FRR_AT_FA_METHOD}.")
    rows = []
    for e in v.values():
        op = e["operating_point"]
        at = [e["frr_at_fa"][str(t)] for t in FA_TARGETS]
        rows.append([e["title"] + (f" (first {e['stream']['seconds'] / 60:.1f} min)" if e["stream"]["shortened"] else ""),
                     "per keyword" if m["postprocess"]["thresholds"] else f"{op['threshold']:g}",
                     _pct(op["recall"]), _num(op["fa_per_hour"]),
                     *[None if a is None else f"{100 * a['frr']:.2f}% (t={a['threshold']:g})" for a in at]])
    doc.table(["variant", "manifest threshold", "recall", "FA/h", *[f"FRR @ {t:g} FA/h" for t in FA_TARGETS]], rows)
    overrides = m["postprocess"]["thresholds"]
    doc.p(f"Manifest post-processing: window {m['postprocess']['window']} frames, refractory "
          f"{m['postprocess']['refractory']} frames" + (f", per-label thresholds {overrides}" if overrides else "")
          + ". The sweep sets one threshold for every keyword (as `edge run --threshold`).")
    if m.get("calibration") and "tflite_int8" in v:
        calibration_section(doc, m["calibration"], v["tflite_int8"]["operating_point"], s)
    if any(e["stream"]["shortened"] for e in v.values()):
        doc.p("TFLite Micro ran on the first part of the stream only (--tflm-minutes), keywords ending inside it.")
    doc.image(m["plots"]["det"], "DET curves")
    doc.h(3, "Cost")
    fw = m.get("firmware") or {}
    rows = []
    for e in v.values():
        lat = e["latency_us"] or {}
        rows.append([e["title"], _num(None if e["size"]["file_bytes"] is None else e["size"]["file_bytes"] / 1024),
                     e["size"]["tflm_arena_bytes"], _num(lat.get("model", {}).get("p50")),
                     _num(lat.get("total", {}).get("p50")), _num(lat.get("total", {}).get("p99")),
                     _num(e["wall_seconds"]["stream"])])
    if fw:
        rows.append(["firmware (Cortex-M4)", _num(fw["flash_bytes"] / 1024) if "flash_bytes" in fw else None,
                     fw.get("ram_bytes"), None, None, None, None])
    doc.table(["variant", "file KB", "TFLM arena bytes / RAM", "model µs p50", "total µs p50", "total µs p99",
               "stream wall s"], rows)
    doc.p(f"Parameters {m['model']['params']}, MACs per frame {m['model']['macs_per_frame']}. Latency: "
          f"`edge.cli.bench` on {opts.bench_seconds:g} s of audio, one thread, on this machine.")
    if fw:
        doc.table(["firmware figure", "value"], [[k, val] for k, val in fw.items() if not isinstance(val, (dict, list))])
    doc.image(m["plots"]["size_accuracy"], "accuracy vs size")
    if "confusion_int8" in m["plots"]:
        doc.image(m["plots"]["confusion_int8"], "confusion matrix int8")
    doc.image(m["plots"]["confusion_float"], "confusion matrix float")


def build_doc(report: dict[str, Any], opts: ReportOptions) -> Doc:
    doc = Doc()
    models = report["models"]
    doc.h(1, "Accuracy vs quantization")
    for m in models:
        doc.p(f"{m['name']}: {m['summary']}", bold=True)
    doc.p(f"Created {report['created_utc']}. Held-out {SPLIT} split; long stream {opts.minutes:g} min, seed "
          f"{opts.seed}; {len(opts.thresholds)} thresholds swept ({min(opts.thresholds):g}–{max(opts.thresholds):g}).")
    if len(models) > 1:
        doc.h(2, "Comparison")
        doc.table(["model", "cell", "hidden", "params", "MACs/frame", "float acc", "int8 acc", "int8 cost pp",
                   "float standard acc", "int8 standard acc",
                   "FRR@1FA/h float", "FRR@1FA/h int8", "int8 KB", "arena B", "int8 µs/frame"],
                  [[r["name"], r["cell"], r["hidden"], r["params"], r["macs_per_frame"], _pct(r["float_accuracy"]),
                    _pct(r["int8_accuracy"]), _num(r["int8_accuracy_cost_pp"], "{:.2f}"),
                    _pct(r["float_standard_accuracy"]), _pct(r["int8_standard_accuracy"]), _pct(r["float_frr_at_1"]),
                    _pct(r["int8_frr_at_1"]), _num(None if r["int8_bytes"] is None else r["int8_bytes"] / 1024),
                    r["tflm_arena_bytes"], _num(r["int8_model_us_p50"])] for r in report["comparison"]])
        doc.image(report["comparison_plot"], "comparison")
    for m in models:
        model_section(doc, m, opts)
        if m.get("wakeword"):
            wakeword_section(doc, m["wakeword"])
    return doc


def wakeword_section(doc: Doc, r: dict[str, Any]) -> None:
    """Recall on the real recordings of the keyword and FA/h on the negative audio (`export.wakeword`)."""
    from export.wakeword import text_lines

    doc.h(3, f"Real recordings: {r['keyword']!r}")
    lines = text_lines(r)
    doc.p(" ".join(line.strip() for line in lines[:3]))
    doc.table(["threshold", "recall", "FA/h"],
              [[f"{p['threshold']:.2f}", _pct(p["recall"], 1), f"{p['fa_per_hour']:.1f}"] for p in r["sweep"]])


# ----------------------------------------------------------------------------- output folder
MARKER = ".kws-report"  # written last into every report folder: {"written_by": MARKER_WRITER, "files": [names]}
MARKER_WRITER = "python -m export report"


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _marked_files(out: Path) -> list[str] | None:
    """The file names `out`'s marker lists, or None when `out` has no valid marker (a symlink is not one)."""
    marker = out / MARKER
    if not _plain_file(marker):
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) and data.get("written_by") == MARKER_WRITER else None
    return files if isinstance(files, list) and all(isinstance(f, str) for f in files) else None


def write_marker(folder: Path) -> None:
    """Mark a finished report folder as the report's, listing the files in it (written last)."""
    files = sorted(p.name for p in folder.iterdir())
    (folder / MARKER).write_text(json.dumps({"written_by": MARKER_WRITER, "files": files}) + "\n")


def check_out_dir(out: Path, force: bool = False) -> None:
    """Accept --out only if it is new, an empty folder, or (with --force) a folder holding nothing but an
    earlier report: its marker and the plain files the marker lists. Never `.`, `..`, the current or home
    folder or one holding them, nor a symbolic link."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise UserError(f"--out {out}: give the report folder by name")
    if out.is_symlink():
        raise UserError(f"--out {out} is a symbolic link; give the folder itself")
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    where = out.resolve()
    for what, keep in (("the current folder", Path.cwd()), ("the home folder", Path(os.path.expanduser("~")))):
        keep = keep.resolve()
        if where == keep or where in keep.parents:
            raise UserError(f"--out {out} is or holds {what}; refusing to replace it")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    listed = _marked_files(out)
    if listed is None:
        raise UserError(f"{out} exists and is not a report folder (no {MARKER}); refusing to replace it")
    foreign = [n for n in names if n != MARKER and (n not in listed or not _plain_file(out / n))]
    if foreign:
        raise UserError(f"{out} holds files the report did not write ({', '.join(foreign[:5])}); refusing to replace it")
    if not force:
        raise UserError(f"{out} holds an earlier report; pass --force to replace it")


def install_dir(tmp: Path, out: Path, force: bool = False) -> None:
    """Move a finished temporary folder into place, replacing an earlier report (said on stderr) only as
    `check_out_dir` allows. The old folder is renamed aside first and deleted (without following symbolic
    links) only once the new one is in place."""
    check_out_dir(out, force)
    old = None
    if out.exists() and any(out.iterdir()):
        print(f"replacing existing {out}", file=sys.stderr)
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        out.rename(old)  # onto the empty placeholder
    elif out.exists():
        out.rmdir()
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old)


def _slugs(models: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for m in models:
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in m["name"]) or "model"
        slug, n = base, 2
        while slug in out:
            slug, n = f"{base}-{n}", n + 1
        out.append(slug)
    return out


def write_report(report: dict[str, Any], opts: ReportOptions, out: Path, force: bool = False) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a report is meant to be read
    try:
        for m, slug in zip(report["models"], _slugs(report["models"])):
            write_plots(m, tmp, slug)
        if len(report["models"]) > 1:
            report["comparison_plot"] = "comparison.png"
            plot_comparison(report["models"], tmp / "comparison.png")
        doc = build_doc(report, opts)
        (tmp / "report.md").write_text(doc.markdown())
        (tmp / "report.html").write_text(doc.html(tmp, "Accuracy vs quantization"))
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        write_marker(tmp)
        install_dir(tmp, out, force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


# ----------------------------------------------------------------------------- main
def make_report(artifacts: Sequence[Path], opts: ReportOptions) -> dict[str, Any]:
    say = lambda s: _say(opts, s)  # noqa: E731
    manifests = [load_manifest(Path(a)) for a in artifacts]
    streams: dict[tuple[str, int], Stream] = {}
    models = []
    for art, m in zip(artifacts, manifests):
        data_dir = resolve_data_dir(m, opts.data)
        data = load_eval_data(m, data_dir, opts.limit)
        key = (tuple(str(d.resolve()) for d in data_dir), m.frontend.sample_rate)
        if key not in streams:
            say(f"building a {opts.minutes:g}-minute stream from {' '.join(map(str, data_dir))} (seed {opts.seed}) ...")
            streams[key] = build_stream(data.dataset, opts.minutes, opts.seed, m.frontend, opts.progress)
        run, run_dir = load_training_run(m, say)
        ctx = ModelContext(Path(art), m, run, run_dir, data, streams[key])
        model = evaluate_model(ctx, opts)
        if opts.positives is not None and opts.negatives is not None:
            from export import wakeword

            say(f"wake-word figures on {opts.positives} and {opts.negatives} ...")
            model["wakeword"] = wakeword.evaluate(m, opts.positives, opts.negatives, "int8", opts.keyword,
                                                  wakeword.DEFAULT_TARGET_FA_PER_HOUR, opts.progress)
        models.append(model)
    return {
        "schema_version": SCHEMA_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "settings": {"minutes": opts.minutes, "seed": opts.seed, "thresholds": list(opts.thresholds),
                     "fa_targets": list(FA_TARGETS), "limit": opts.limit, "split": SPLIT,
                     "tflm_minutes": opts.tflm_minutes, "bench_seconds": opts.bench_seconds,
                     "frr_at_fa_method": FRR_AT_FA_METHOD},
        "models": models,
        "comparison": comparison_rows(models),
        "comparison_plot": None,
    }


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m export report",
                                description="Accuracy, false alarms and cost of each model variant, as on a device.")
    p.add_argument("artifacts", nargs="+", type=Path, help="artifacts folder(s); several are compared")
    p.add_argument("--out", type=Path, required=True,
                   help="report folder to write: new, empty, or an earlier report's (then --force is needed)")
    p.add_argument("--force", action="store_true",
                   help=f"replace an earlier report in --out (only a folder with the report's {MARKER} marker "
                        "and nothing but the files it lists)")
    p.add_argument("--minutes", type=finite_number(0, above=True), default=30.0,
                   help="length of the false-alarm stream (default 30)")
    p.add_argument("--data", type=Path, nargs="+", default=None, metavar="DIR",
                   help="dataset folder(s) (default: the ones the model was trained on)")
    p.add_argument("--thresholds", type=finite_number(0, 1, above=True), nargs="+", default=None,
                   help="detection thresholds to sweep (default 0.05..0.9 in 0.05 steps, 0.91..0.99 in 0.01 steps, "
                        "0.992..0.998, 0.999, 1.0)")
    p.add_argument("--seed", type=int, default=STREAM_SEED, help="seed of the long stream")
    p.add_argument("--limit", type=finite_number(0, integer=True), default=0,
                   help="evaluate at most N clips (0 = all), as `edge eval --limit`")
    p.add_argument("--tflm-minutes", type=finite_number(0, above=True), default=None,
                   help="run TFLite Micro on the first N minutes of the stream only (default: all of it)")
    p.add_argument("--bench-seconds", type=finite_number(0, BENCH_SECONDS[1]), default=5.0,
                   help=f"audio per latency benchmark, 0 (skip) or {BENCH_SECONDS[0]:g}-{BENCH_SECONDS[1]:g} (default 5)")
    p.add_argument("--positives", type=Path, default=None, metavar="DIR",
                   help="real recordings of a keyword: recall per file (with --negatives; see `export wakeword`)")
    p.add_argument("--negatives", type=Path, default=None, metavar="DIR", help="audio without keywords: FA/h")
    p.add_argument("--keyword", default=None, help="the keyword of --positives (default: the model's only one)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def options_from_args(args: argparse.Namespace) -> ReportOptions:
    if 0 < args.bench_seconds < BENCH_SECONDS[0]:
        raise UserError(f"--bench-seconds must be 0 (skip) or at least {BENCH_SECONDS[0]:g}, got {args.bench_seconds:g}")
    thresholds = tuple(sorted(set(args.thresholds))) if args.thresholds else DEFAULT_THRESHOLDS
    if (args.positives is None) != (args.negatives is None):
        raise UserError("--positives and --negatives go together")
    return ReportOptions(minutes=args.minutes, data=args.data, thresholds=thresholds, seed=args.seed,
                         limit=args.limit, tflm_minutes=args.tflm_minutes, bench_seconds=args.bench_seconds,
                         progress=not args.quiet, positives=args.positives, negatives=args.negatives,
                         keyword=args.keyword)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = options_from_args(args)
    check_out_dir(args.out, args.force)  # before the evaluation, which takes minutes
    t0 = time.perf_counter()
    report = make_report(args.artifacts, opts)
    write_report(report, opts, args.out, args.force)
    for m in report["models"]:
        print(f"{m['name']}: {m['summary']}")
    print(f"report written to {args.out}/report.md (and report.html, report.json) in {time.perf_counter() - t0:.0f} s")
    return 0
