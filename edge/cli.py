"""`kws-edge` / `python -m edge run | eval | bench` — the on-device commands (numpy, front end, TFLite
interpreter only): argument parsing and printing. `run` is a thin layer over `edge.KeywordSpotter`: inputs
(files, stdin, a microphone) converted to the model's rate, events printed and handed to the `--on-detect`
hook; `eval` prints `edge.evaluation.evaluate_folder`, `bench` prints `edge.bench.bench`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from edge.args import Parser, finite_number, output_file
from edge.atomic import NpyRowWriter
from edge.audio import PcmConverter, iter_wav_chunks, wav_info
from edge.bench import BENCH_SECONDS, bench
from edge.datasets import Recipe, auto_recipe
from edge.detector import StreamingDetector
from edge.errors import UserError, run_cli
from edge.evaluation import evaluate_folder
from edge.frontend import FrontendBackend, backend_note, parse_frontend_backend
from edge.hook import DEFAULT_QUEUE, DEFAULT_TIMEOUT, DetectionHook, parse_command
from edge.interpreters import parse_kernels, parse_runtime
from edge.manifest import Manifest
from edge.mic import input_devices, mic_chunks
from edge.postprocess import Event
from edge.spotter import VARIANTS, KeywordSpotter

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


def cmd_eval(args: argparse.Namespace) -> int:
    det = _detector(args, args.model)
    for d in args.data:
        if not d.is_dir():
            raise UserError(f"{d}: no such data folder")
    recipe = auto_recipe(args.data) if args.recipe == "auto" else Recipe(args.recipe) if args.recipe in {r.value for r in Recipe} else None
    if recipe is None:
        raise UserError(f"unknown recipe {args.recipe!r}")
    result = evaluate_folder(det, args.variant, args.data, recipe, args.split, args.limit, args.carry_state)
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


# ----------------------------------------------------------------------------- bench
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

    def body() -> int:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)

    return run_cli(body, broken_pipe_status=0)
