"""Every figure of one artifacts folder: the evaluation data, clip accuracy and the standard figure of each
variant, its long-stream detection figures, size and latency, agreement with the float reference, the one-line
summary; and the whole report's JSON (`make_report`) with its comparison rows."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from edge.bench import bench
from edge.datasets import AudioCache, Dataset, Recipe, recorded_data_dirs, reuse_by_name
from edge.detector import StreamingDetector
from edge.errors import UserError
from edge.evaluation import ClipSet, evaluate_standard, load_eval_clips, load_eval_dataset, reset_posteriors
from edge.interpreters import Runtime
from edge.manifest import Manifest, load_manifest
from edge.postprocess import clip_decision, standard_summary, summarize
from export.report.detection import (Stream, StreamPosteriors, build_stream, frr_at_fa,
                                     operating_point, posteriors_pytorch, posteriors_tflite, sweep)
from export.report.settings import (FA_TARGETS, FALSE_ALARM_THRESHOLDS, FRR_AT_FA_METHOD, REFERENCE_ORDER,
                                    SCHEMA_VERSION, SPLIT, VARIANTS, ReportOptions, VariantDef)
from export.report.summary import comparison_rows, summary_line


def _say(opts: ReportOptions, message: str) -> None:
    """A progress line on stderr, unless `opts` asks for quiet."""
    if opts.progress:
        print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data
@dataclass
class EvalData:
    """The clips of the test split a model is evaluated on, and where they come from."""

    data_dir: list[Path]
    recipe: Recipe
    dataset: Dataset
    pcm: list[np.ndarray]
    truth: list[int]
    names: list[str] = field(default_factory=list)  # clip names of pcm (`evaluation_clips`)
    #: (pcm, truth, names) of `edge.datasets.standard_clips`: the clips of the standard figure
    standard: ClipSet = ([], [], [])


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


def load_eval_data(manifest: Manifest, data_dir: list[Path], limit: int) -> EvalData:
    """The test split's clips and standard clips, loaded as `python -m edge eval` loads them."""
    recipe, dataset = load_eval_dataset(manifest.labels, data_dir)
    clips = load_eval_clips(dataset, SPLIT, AudioCache(manifest.frontend.sample_rate), manifest.labels, limit, data_dir)
    return EvalData(data_dir, recipe, dataset, clips.pcm, clips.truth, clips.names, clips.standard)


# ----------------------------------------------------------------------------- clip accuracy
@dataclass
class ClipResult:
    """Clip accuracy of one variant: the summary, each clip's decision, every frame's argmax."""

    summary: dict[str, Any]
    pred: list[int]
    frame_argmax: np.ndarray  # all clips' frames, concatenated
    wall_s: float
    standard: dict[str, Any] = field(default_factory=dict)  # standard figure (`standard_summary`) of data.standard


def clips_tflite(manifest: Manifest, vdef: VariantDef, data: EvalData, progress: bool) -> ClipResult:
    """Each clip streamed alone from a reset state (`edge.evaluation.reset_posteriors`) and decided with
    `clip_decision`, plus `edge.evaluation.evaluate_standard`: the figures `edge eval` gives."""
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


# ----------------------------------------------------------------------------- one model
@dataclass
class ModelContext:
    """What `evaluate_model` measures one artifacts folder with."""

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
            frames = min(full_frames, fe.frames_in(opts.tflm_minutes * 60.0))
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


# ----------------------------------------------------------------------------- the whole report
def make_report(artifacts: Sequence[Path], opts: ReportOptions) -> dict[str, Any]:
    """report.json of `artifacts` (no plots yet): one long stream per data folder and rate, shared by the models
    evaluated on it; with `opts.negatives`, each model's false alarms on that audio as one stream
    (`export.falsealarms`), and with `opts.positives` too, its wake-word figures (`export.wakeword`)."""
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
        if opts.negatives is not None:
            from export import falsealarms

            say(f"false alarms on {opts.negatives} as one stream ...")
            model["falsealarms"] = falsealarms.evaluate(m, opts.negatives, "int8", FALSE_ALARM_THRESHOLDS, False,
                                                        opts.progress)
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
