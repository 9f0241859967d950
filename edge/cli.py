"""`kws-edge` / `python -m edge run | eval | bench` — the on-device commands (numpy, front end, TFLite
interpreter only). `run` is a thin layer over `edge.KeywordSpotter`: inputs (files, stdin, a microphone)
converted to the model's rate, events printed and handed to the `--on-detect` hook."""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from edge.args import Parser, finite_number, output_file
from edge.atomic import NpyRowWriter
from edge.audio import PcmConverter, iter_wav_chunks, wav_info
from edge.datasets import (AudioCache, Recipe, auto_recipe, evaluation_clips, load_dataset, noise_segments, reuse_by_name,
                           standard_clips, synthetic_noise)
from edge.detector import StreamingDetector
from edge.errors import EXIT_USER_ERROR, UserError
from edge.frontend import FrontendBackend, FrontendConfigError, StreamingFrontend, backend_note, parse_frontend_backend
from edge.hook import DEFAULT_QUEUE, DEFAULT_TIMEOUT, DetectionHook, parse_command
from edge.interpreters import Kernels, ModelRunner, Runtime, parse_kernels, parse_runtime
from edge.manifest import Manifest
from edge.mic import input_devices, mic_chunks
from edge.postprocess import Event, clip_decision, standard_summary, summarize
from edge.spotter import VARIANTS, KeywordSpotter

#: `bench --seconds` range: percentiles over at least 50 frames; at most ~0.5 GB of generated test audio.
BENCH_SECONDS = (0.5, 3600.0)


def _common(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    p.add_argument("--model", required=model_required, type=Path, help="artifacts folder from `make export`")
    p.add_argument("--variant", default="int8", choices=VARIANTS, help="which exported model (default int8)")
    p.add_argument("--runtime", default="auto", help="auto | litert | tflite-runtime | tf-lite | tflm")
    p.add_argument("--kernels", default="reference", help="reference (default: identical on x86 and ARM; "
                   "TFLite Micro differs by rare one-step FC roundings) | optimized (XNNPACK: faster, may differ "
                   "by an int8 step between ISAs)")
    p.add_argument("--frontend", default="auto", help="auto (default: the front-end library when built, "
                   "else pymicro-features) | library (make frontend-lib) | pymicro-features")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def program_name() -> str:
    """`kws-edge` when started by the console command, else `python -m edge`."""
    return "kws-edge" if Path(sys.argv[0]).name == "kws-edge" else "python -m edge"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=program_name(), description="Streaming keyword spotting on the device.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="detect keywords in WAV files, raw stdin audio or a microphone")
    _common(run, model_required=False)
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", nargs="+", type=Path, help="WAV files (each starts from a reset state)")
    src.add_argument("--stdin", action="store_true", help="raw s16le mono audio at the model's sample rate")
    src.add_argument("--mic", action="store_true", help="live microphone at its own rate and channel count, "
                     "converted like a file (needs the sounddevice package)")
    src.add_argument("--list-devices", action="store_true",
                     help="print the audio input devices (index, name, channels, default rate) and exit")
    run.add_argument("--device", default=None, help="microphone device index or name (with --mic)")
    run.add_argument("--probs", type=output_file(".npy"), help="write frame posteriors [frames, labels] to this .npy "
                     "file (streamed to disk; complete up to the last frame after Ctrl-C or the end of stdin)")
    run.add_argument("--threshold", action="append", metavar="[LABEL=]VALUE",
                     help="detection threshold in (0, 1]: VALUE for every keyword (replaces the calibrated ones), "
                     "LABEL=VALUE for one keyword; repeatable")
    run.add_argument("--reset-every", type=finite_number(0), default=0.0, metavar="SECONDS",
                     help="optional reset policy: reset the state every N seconds (default: never)")
    run.add_argument("--seconds", type=float, default=0.0, help="with --mic: stop after this long (0 = until Ctrl-C)")
    run.add_argument("--on-detect", metavar="CMD", help="run CMD for each event, without a shell and without "
                     "blocking detection: arguments LABEL SCORE TIME SOURCE appended, also in KWS_LABEL, KWS_SCORE, "
                     "KWS_TIME, KWS_SOURCE")
    run.add_argument("--hook-queue", type=int, default=None, metavar="N",
                     help=f"events that may wait for a busy --on-detect hook before new ones are dropped "
                     f"(default {DEFAULT_QUEUE})")
    run.add_argument("--hook-timeout", type=float, default=None, metavar="SECONDS",
                     help=f"kill an --on-detect hook that runs longer (default {DEFAULT_TIMEOUT:g})")
    ev = sub.add_parser("eval", help="clip accuracy on a labelled folder, streamed as on a device")
    _common(ev)
    ev.add_argument("--data", required=True, type=Path, nargs="+", metavar="DIR",
                    help="dataset folder(s), merged by label")
    ev.add_argument("--recipe", default="auto", help="auto | " + " | ".join(r.value for r in Recipe))
    ev.add_argument("--split", default="test", choices=("train", "validation", "test"))
    ev.add_argument("--carry-state", action="store_true",
                    help="never reset: clips separated by background audio in one stream")
    ev.add_argument("--limit", type=finite_number(0, integer=True), default=0,
                    help="evaluate at most N clips (0 = all)")
    be = sub.add_parser("bench", help="per-frame latency, real-time factor, memory; vs the naive window baseline")
    _common(be)
    be.add_argument("--seconds", type=finite_number(*BENCH_SECONDS), default=20.0,
                    help=f"audio to stream, {BENCH_SECONDS[0]:g}-{BENCH_SECONDS[1]:g} s (default 20 s)")
    be.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1: one core)")
    return parser


# ----------------------------------------------------------------------------- run
#: `source` of events from stdin or a microphone.
STREAM_SOURCE = "-"


def parse_thresholds(values: Sequence[str] | None) -> tuple[float | None, dict[str, float]]:
    """`--threshold` values: (the one for every keyword or None, {keyword: value}); ranges are checked by
    `KeywordSpotter`."""
    default: float | None = None
    per_label: dict[str, float] = {}
    for text in values or ():
        label, sep, number = text.rpartition("=")
        try:
            value = float(number)
        except ValueError:
            raise UserError(f"--threshold {text!r}: expected VALUE or LABEL=VALUE with a number") from None
        if sep:
            per_label[label] = value
        else:
            default = value
    return default, per_label


class _Events:
    """Prints events (text or one JSON object per line, always with the same keys), hands them to the
    `--on-detect` hook and counts them."""

    def __init__(self, as_json: bool, hook: DetectionHook | None, show_source: bool) -> None:
        self.as_json, self.hook, self.show_source = as_json, hook, show_source
        self.count = 0

    def emit(self, events: list[Event], source: str, offset: float) -> None:
        """Events of `source`, their times shifted by `offset` seconds (audio before the last reset)."""
        for event in events:
            d = {**event.to_dict(), "source": source}
            d["time"] = round(d["time"] + offset, 4)
            if self.as_json:
                print(json.dumps(d), flush=True)
            else:
                prefix = f"{source}: " if self.show_source else ""
                print(f"{prefix}{d['time']:9.2f} s  {d['label']:<12} score {d['score']:.3f}", flush=True)
            if self.hook is not None:
                self.hook.submit(d)
            self.count += 1


def _stream(spotter: KeywordSpotter, chunks: Iterable[np.ndarray], source: str, out: _Events,
            reset_every: float, keep: Callable[[np.ndarray], None]) -> None:
    """Stream model-rate chunks through the spotter; with a reset policy, reset every `reset_every` seconds
    of audio. Event times count from the start of the source; after every chunk (and before every reset) the
    posteriors kept so far are handed to `keep` and cleared, so memory stays flat on endless streams."""
    rate = spotter.model_rate
    consumed = 0  # samples of this source already processed before the current segment
    since_reset = 0
    limit = int(reset_every * rate) if reset_every > 0 else 0
    for chunk in chunks:
        while limit and since_reset + len(chunk) >= limit:
            take = limit - since_reset
            out.emit(spotter.process(chunk[:take]), source, consumed / rate)
            chunk = chunk[take:]
            consumed += limit
            keep(spotter.posteriors(clear=True))
            spotter.reset()
            since_reset = 0
        out.emit(spotter.process(chunk), source, consumed / rate)
        keep(spotter.posteriors(clear=True))
        since_reset += len(chunk)


def _stdin_chunks(rate: int, block: int = 1600) -> Iterator[np.ndarray]:
    """Raw s16le mono from stdin at the model's rate, `block` samples at a time."""
    converter = PcmConverter(rate, rate, source="stdin")
    while data := sys.stdin.buffer.read(block * 2):
        yield converter.process_bytes(data)


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _sources(args: argparse.Namespace, rate: int, stats: dict[str, int]) -> Iterator[tuple[str, Iterable[np.ndarray]]]:
    """(source name, int16 mono chunks at `rate`) for each input the arguments name."""
    if args.wav:
        for path in args.wav:
            src_rate, channels, _, _ = wav_info(path)
            if src_rate != rate or channels != 1:
                _note(f"note: {path}: {src_rate} Hz, {channels} channel(s) -> resampled/mixed to {rate} Hz mono")
            yield str(path), iter_wav_chunks(path, rate)
    elif args.stdin:
        yield STREAM_SOURCE, _stdin_chunks(rate)
    else:
        yield STREAM_SOURCE, mic_chunks(rate, args.device, args.seconds, stats, notes=_note)


def _hook_command(args: argparse.Namespace) -> list[str] | None:
    """The checked `--on-detect` command line, or None without one."""
    if args.on_detect is None:
        if args.hook_queue is not None or args.hook_timeout is not None:
            raise UserError("--hook-queue and --hook-timeout need --on-detect")
        return None
    return parse_command(args.on_detect)


def cmd_list_devices(as_json: bool) -> int:
    """`run --list-devices`: one line per audio input, `*` marking the default."""
    devices = input_devices()
    if not as_json and devices:
        print(f"{'index':>5}  {'name':<40} {'channels':>8} {'default rate':>12}")
    for d in devices:
        if as_json:
            print(json.dumps(d.to_dict()))
        else:
            print(f"{d.index:>4}{'*' if d.default else ' '}  {d.name:<40} {d.channels:>8} {d.default_rate:>9} Hz")
    if not devices:
        _note("no audio input devices")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.list_devices:
        return cmd_list_devices(args.json)
    if args.model is None:
        raise UserError("the following arguments are required: --model")
    if args.probs and args.probs.suffix != ".npy":
        raise UserError("--probs must name a .npy file")
    hook_argv = _hook_command(args)
    threshold, per_label = parse_thresholds(args.threshold)
    spotter = KeywordSpotter(args.model, variant=args.variant, runtime=args.runtime, kernels=args.kernels,
                             frontend=args.frontend, threshold=threshold, thresholds=per_label,
                             keep_posteriors=bool(args.probs))
    if spotter.note:
        _note(spotter.note)
    if 0 < args.reset_every * spotter.model_rate < 1:
        raise UserError(f"--reset-every {args.reset_every:g} s is shorter than one sample at {spotter.model_rate} Hz")
    hook = None if hook_argv is None else DetectionHook(
        hook_argv, DEFAULT_QUEUE if args.hook_queue is None else args.hook_queue,
        DEFAULT_TIMEOUT if args.hook_timeout is None else args.hook_timeout)
    out = _Events(args.json, hook, show_source=bool(args.wav) and len(args.wav) > 1)
    stats = {"overflows": 0}
    try:
        _run_sources(args, spotter, out, stats)
    except KeyboardInterrupt:
        if not args.mic:
            raise  # exit status 130; the --probs file is complete up to the interruption
    finally:
        if hook is not None:
            hook.close()
    if args.mic:
        _note(f"microphone input overflows: {stats['overflows']}")
    _note(f"{out.count} event(s)")
    return 0


def _run_sources(args: argparse.Namespace, spotter: KeywordSpotter, out: _Events, stats: dict[str, int]) -> None:
    """Stream every source; with `--probs`, posteriors go to an `NpyRowWriter` as they come, which is completed
    on a normal end and on KeyboardInterrupt (then re-raised) and discarded on any other error."""
    writer = NpyRowWriter(args.probs, len(spotter.labels)) if args.probs else None
    keep: Callable[[np.ndarray], None] = writer.append if writer is not None else (lambda rows: None)
    with writer if writer is not None else contextlib.nullcontext():
        try:
            for source, chunks in _sources(args, spotter.model_rate, stats):
                spotter.reset()
                _stream(spotter, chunks, source, out, args.reset_every, keep)
        except KeyboardInterrupt:
            keep(spotter.posteriors(clear=True))  # the frames of the interrupted chunk
            raise


# ----------------------------------------------------------------------------- eval
def _detector(args: argparse.Namespace, model: Path | Manifest) -> StreamingDetector:
    """The detector the common options ask for; says once on stderr if its features may not be bit-exact."""
    det = StreamingDetector(model, args.variant, parse_runtime(args.runtime), kernels=parse_kernels(args.kernels),
                            frontend=parse_frontend_backend(args.frontend))
    note = backend_note(det.frontend.backend)
    if note:
        _note(note)
    return det


def reset_posteriors(det: StreamingDetector, pcm: Iterable[np.ndarray]) -> list[np.ndarray]:
    """Frame posteriors of each clip streamed alone from a reset state (float probabilities)."""
    det.keep_posteriors = True
    out = []
    for clip in pcm:
        det.reset()
        det.process(clip)
        out.append(det.posterior_array())
    return out


def evaluate(det: StreamingDetector, pcm: list[np.ndarray], truth: list[int], carry_state: bool,
             noise: list[np.ndarray] | None = None, progress: bool = False,
             posteriors: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Stream each clip through the detector and decide per clip with `clip_decision`. Without
    `carry_state`, `posteriors` (the clips' `reset_posteriors`, when already computed) saves streaming them."""
    det.keep_posteriors = True
    post = det.postprocess
    labels = det.labels
    if not carry_state:
        posteriors = reset_posteriors(det, pcm) if posteriors is None else posteriors
        return summarize([clip_decision(p, labels, post) for p in posteriors], truth, labels)
    pred = []
    rng = np.random.default_rng(0)
    tail_frames = 30
    det.reset()
    for clip in pcm:
        # background gap (0.5 s) then the clip; decide on the clip's frames and 0.3 s after it
        gap = np.zeros(det.sample_rate // 2, dtype=np.int16)
        if noise:
            src = noise[rng.integers(len(noise))]
            start = int(rng.integers(0, max(1, len(src) - len(gap))))
            gap = (src[start : start + len(gap)].astype(np.float64) * 0.1).astype(np.int16)
        det.process(gap)
        det.posteriors = []  # the state is carried, the kept posteriors are not: rows from this clip's first frame
        det.process(np.concatenate([clip, np.zeros(int(0.3 * det.sample_rate), dtype=np.int16)]))
        pred.append(clip_decision(det.posterior_array()[: len(clip) // 160 + tail_frames], labels, post))
    return summarize(pred, truth, labels)


def cmd_eval(args: argparse.Namespace) -> int:
    det = _detector(args, args.model)
    for d in args.data:
        if not d.is_dir():
            raise UserError(f"{d}: no such data folder")
    recipe = auto_recipe(args.data) if args.recipe == "auto" else Recipe(args.recipe) if args.recipe in {r.value for r in Recipe} else None
    if recipe is None:
        raise UserError(f"unknown recipe {args.recipe!r}")
    keywords = tuple(l for l in det.labels if not l.startswith("_")) if recipe in (Recipe.SPEECH_COMMANDS, Recipe.FOLDER) else None
    dataset = load_dataset(recipe, args.data, keywords)
    split = "test" if recipe is Recipe.SC_TEST_SET else args.split
    cache = AudioCache(det.sample_rate)
    pcm, truth, names = evaluation_clips(dataset, split, cache, labels=det.labels)
    standard = standard_clips(dataset, split, cache, labels=det.labels)
    if args.limit:
        pcm, truth, names = pcm[: args.limit], truth[: args.limit], names[: args.limit]
        standard = (standard[0][: args.limit], standard[1][: args.limit], standard[2][: args.limit])
    if not pcm:
        raise UserError(f"{' '.join(map(str, args.data))}: no clips in split {split!r}")
    noise = noise_segments([cache.get(p) for p in dataset.noise_files] or synthetic_noise(det.sample_rate, 60.0, 0), split)
    posteriors = None if args.carry_state else reset_posteriors(det, pcm)
    result = evaluate(det, pcm, truth, args.carry_state, noise, posteriors=posteriors)
    result["standard"] = evaluate_standard(det, standard, dict(zip(names, posteriors or [])))
    result.update({"variant": args.variant, "runtime": det.model.runtime.value, "split": split,
                   "recipe": recipe.value, "mode": "carry-state" if args.carry_state else "reset-per-clip"})
    if args.json:
        print(json.dumps(result))
    else:
        std = result["standard"]
        print(f"{result['clips']} clips, {result['mode']}, {args.variant} on {result['runtime']}: "
              f"accuracy {result['accuracy']:.4f} (the device's clip decision)")
        print(f"standard figure ({std['protocol']}; {std['clips']} clips, each from a reset state): "
              f"accuracy {std['accuracy']:.4f}")
        print(f"  {'label':<12} {'device':>8} {'standard':>9}")
        fmt = lambda acc: "n/a" if acc is None else f"{acc:.3f}"  # noqa: E731
        for label, acc in result["per_class"].items():
            print(f"  {label:<12} {fmt(acc):>8} {fmt(std['per_class'][label]):>9}")
    return 0


def evaluate_standard(det: StreamingDetector, clips: tuple[list[np.ndarray], list[int], list[str]],
                      known: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The standard accuracy figure (`edge.postprocess.standard_summary`) of a `standard_clips` set, each clip
    streamed alone from a reset state; clips in `known` (name -> `reset_posteriors`) are not streamed again."""
    pcm, truth, names = clips
    posteriors = reuse_by_name(names, pcm, known, lambda todo: reset_posteriors(det, todo))
    return standard_summary(posteriors, truth, det.labels, det.postprocess.window)


# ----------------------------------------------------------------------------- bench
def _pct(values: list[float]) -> dict[str, float]:
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


def cmd_bench(args: argparse.Namespace) -> int:
    r = bench(args.model, args.variant, parse_runtime(args.runtime), args.seconds, args.threads,
              parse_kernels(args.kernels), frontend=parse_frontend_backend(args.frontend))
    note = backend_note(FrontendBackend(r["frontend"]))
    if note:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps(r))
        return 0
    print(f"{r['variant']} on {r['runtime']} ({r['kernels']} kernels, {r['frontend']} front end), "
          f"{r['frames']} frames of {r['hop_ms']} ms")
    for k in ("frontend_us", "model_us", "postprocess_us", "total_us"):
        v = r[k]
        print(f"  {k[:-3]:<12} p50 {v['p50']:8.1f} us   p90 {v['p90']:8.1f} us   p99 {v['p99']:8.1f} us")
    print(f"  real-time factor {r['real_time_factor']:.4f}   peak RSS {r['peak_rss_mb']:.1f} MB")
    if "baseline" in r:
        b = r["baseline"]
        print(f"  naive baseline ({b['variant']} window of {b['window_frames']} frames every hop): "
              f"p50 {b['model_us']['p50']:.1f} us per hop -> streaming model is {r['baseline_cost_ratio']:.1f}x cheaper")
    if "kernels_comparison" in r:
        c = r["kernels_comparison"]
        extra = f", naive baseline p50 {c['baseline_model_us']['p50']:.1f} us" if "baseline_model_us" in c else ""
        print(f"  {c['kernels']} kernels: model p50 {c['model_us']['p50']:.1f} us{extra}; vs {r['kernels']}: "
              f"argmax agreement {c['frame_argmax_agreement']:.4f}, max output difference {c['max_abs_output_difference']:g}")
    for name, f in r.get("frontend_comparison", {}).items():
        if name == "identical_features":
            print(f"  front-end backends give identical features: {'yes' if f else 'NO'}")
        elif f["available"]:
            print(f"  {name} front end: p50 {f['frontend_us']['p50']:.1f} us")
        else:
            print(f"  {name} front end: not available ({f['why']})")
    print(f"  method: {r['method']}")
    return 0


COMMANDS = {"run": cmd_run, "eval": cmd_eval, "bench": cmd_bench}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m edge` and the `kws-edge` console command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
