"""Per-frame latency of the on-device pipeline (`python -m edge bench`, the report's latency figures): front end,
model step and post-processing timed on every hop of seeded random audio; the naive re-run-the-window baseline;
with `compare`, the other kernel set and each front-end backend on the same audio."""

from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.detector import StreamingDetector
from edge.frontend import FrontendBackend, FrontendConfigError, StreamingFrontend
from edge.interpreters import Kernels, ModelRunner, Runtime

#: `bench --seconds` range: percentiles over at least 50 frames; at most ~0.5 GB of generated test audio.
BENCH_SECONDS = (0.5, 3600.0)


def _pct(values: list[float]) -> dict[str, float]:
    """p50, p90 and p99 of durations in seconds, in microseconds."""
    a = np.asarray(values) * 1e6
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99))}


def _time_stream(det: StreamingDetector, pcm: np.ndarray) -> tuple[dict[str, list[float]], np.ndarray]:
    """Per-hop wall time of each stage, and the raw posteriors (to compare kernel sets)."""
    hop = det.manifest.frontend.hop_samples
    t_fe, t_model, t_post, raws = [], [], [], []
    clock = time.perf_counter
    for i in range(0, len(pcm) - hop + 1, hop):
        a = clock()
        frames = det.frontend.process(pcm[i : i + hop])
        b = clock()
        for f in frames:
            raw = det.model.step_raw(f)
            c = clock()
            det.detector.update(raw)
            d = clock()
            t_fe.append(b - a)
            t_model.append(c - b)
            t_post.append(d - c)
            raws.append(raw)
    return {"frontend": t_fe, "model": t_model, "postprocess": t_post}, np.asarray(raws)


def _time_baseline(det: StreamingDetector, variant: str, threads: int, kernels: Kernels) -> dict[str, Any] | None:
    """The naive baseline's cost per hop: the non-streaming model over the last window, None without one."""
    base = det.manifest.data.get("baseline", {}).get("variants", {})
    bname = variant if variant in base else ("float32" if "float32" in base else None)
    if not bname:
        return None
    spec = det.manifest.variant(bname, section="baseline")
    runner = ModelRunner(spec.path.read_bytes(), det.model.runtime, num_threads=threads, kernels=kernels)
    inp = spec.input("features")
    x = np.zeros(inp["shape"], dtype=np.dtype(inp["dtype"]))
    times = []
    for _ in range(200):
        a = time.perf_counter()
        runner.set_input(inp["position"], x)
        runner.invoke()
        times.append(time.perf_counter() - a)
    return {"variant": bname, "window_frames": det.manifest.data["baseline"]["window_frames"],
            "model_us": _pct(times),
            "method": "the non-streaming model re-run over the last 1 s window every hop (200 timed invokes)"}


def _time_frontends(det: StreamingDetector, pcm: np.ndarray) -> dict[str, Any]:
    """The front end's per-hop time with each available backend, and whether their features are equal."""
    hop = det.manifest.frontend.hop_samples
    result: dict[str, Any] = {}
    features = {}
    for backend in (FrontendBackend.LIBRARY, FrontendBackend.PYMICRO):
        try:
            fe = StreamingFrontend(det.manifest.frontend, backend)
        except FrontendConfigError as exc:
            result[backend.value] = {"available": False, "why": str(exc)}
            continue
        fe.process(pcm[: det.sample_rate // 2])
        fe.reset()
        times, frames = [], []
        for i in range(0, len(pcm) - hop + 1, hop):
            a = time.perf_counter()
            frames.append(fe.process(pcm[i : i + hop]))
            times.append(time.perf_counter() - a)
        features[backend] = np.concatenate(frames)
        result[backend.value] = {"available": True, "frontend_us": _pct(times)}
    if len(features) == 2:
        a, b = features.values()
        result["identical_features"] = bool(a.shape == b.shape and np.array_equal(a, b))
    return result


def bench(model_dir: Path, variant: str, runtime: Runtime, seconds: float, threads: int,
          kernels: Kernels = Kernels.REFERENCE, compare: bool = True,
          frontend: FrontendBackend = FrontendBackend.AUTO) -> dict[str, Any]:
    """Per-frame latency of front end, model and post-processing with `kernels`; with `compare`, the model
    step of the other kernel set too (time and largest raw-output difference on the same audio) and the
    front end of each backend."""
    det = StreamingDetector(model_dir, variant, runtime, num_threads=threads, kernels=kernels, frontend=frontend)
    rate = det.sample_rate
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(int(seconds * rate)) * 2000).astype(np.int16)
    _time_stream(det, pcm[: rate // 2])  # warm-up: first invokes allocate and fault in pages
    det.reset()
    t, raws = _time_stream(det, pcm)
    total = [x + y + z for x, y, z in zip(t["frontend"], t["model"], t["postprocess"])]
    out: dict[str, Any] = {
        "variant": variant, "runtime": det.model.runtime.value, "kernels": kernels.value, "threads": threads,
        "frontend": det.frontend.backend.value,
        "frames": len(total), "hop_ms": det.manifest.frontend.hop_ms,
        **{f"{k}_us": _pct(v) for k, v in t.items()}, "total_us": _pct(total),
        "real_time_factor": float(np.sum(total) / (len(total) * det.manifest.frontend.hop_ms / 1000)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "method": ("time.perf_counter around each stage for every 10 ms hop of seeded random audio "
                   f"({seconds:g} s after a 0.5 s warm-up), one process, {threads} interpreter thread(s), "
                   f"{kernels.value} kernels; percentiles over frames"),
    }
    baseline = _time_baseline(det, variant, threads, kernels)
    if baseline:
        out["baseline"] = baseline
        out["baseline_cost_ratio"] = baseline["model_us"]["p50"] / out["model_us"]["p50"]
    if compare and det.model.runtime is not Runtime.TFLM:
        other = Kernels.OPTIMIZED if kernels is Kernels.REFERENCE else Kernels.REFERENCE
        det2 = StreamingDetector(det.manifest, variant, runtime, num_threads=threads, kernels=other)
        _time_stream(det2, pcm[: rate // 2])
        det2.reset()
        t2, raws2 = _time_stream(det2, pcm)
        diff = np.abs(raws.astype(np.float64) - raws2.astype(np.float64))
        out["kernels_comparison"] = {
            "kernels": other.value, "model_us": _pct(t2["model"]),
            "max_abs_output_difference": float(diff.max()) if diff.size else 0.0,
            "frame_argmax_agreement": float(np.mean(raws.argmax(1) == raws2.argmax(1))) if len(raws) else 1.0,
        }
        b2 = _time_baseline(det2, variant, threads, other)
        if b2:
            out["kernels_comparison"]["baseline_model_us"] = b2["model_us"]
    if compare:
        out["frontend_comparison"] = _time_frontends(det, pcm)
    return out
