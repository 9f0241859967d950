"""`python -m export soak ART --minutes 60`: an hour of audio through the on-device runner, state never reset.

The stream is deterministic and never held in memory whole: it is generated and streamed one piece (at most
one minute, `build_long_stream` over the test split with the piece's own seed) at a time, the planted
keywords offset to stream time. It is fed to `StreamingDetector` (int8 by default) in one-second chunks, frame
by frame as `StreamingDetector.process` does, so the recurrent state can be inspected after every frame.

The stream is cut into blocks: 10 minutes each (runs of 20 minutes or more, in whole 10-minute blocks), else
two halves. **The last block replays the first block's audio exactly** (same piece seeds), so a difference
between the first and the last block can only come from what the carried state accumulated in between, not
from different words being harder.

Checks (all must hold for PASS; exit status 1 on FAIL):

1. recall drift: |recall(last block) - recall(first block)| <= 1 percentage point, or one keyword where a
   block holds fewer than 100 (the last block starts from a carried state, the first from zero, so a keyword
   near its threshold at the block's start may flip once; drift is a decline beyond that). Keywords are scored with
   the rule of `export.longstream.score_events` over the whole stream (a hit is a detection with the planted
   label within [start, end + 1 s]); a keyword belongs to the block it starts in.
2. false alarms: false alarms in the last block <= those in the first block + 1 (on 10-minute blocks one
   false alarm is 6 FA/h; both FA/h are reported). A false alarm belongs to the block it fires in.
3. state saturation (quantized variants): share of recurrent-state values pinned at the integer limits, over
   every frame of a block. It must not grow: last block <= first block + 1 percentage point. And values that
   may be clipped must stay rare: every block <= 5 %, counted over the state tensors whose integer range does
   not cover every value the tensor can take. The hidden state h of a GRU, LSTM or Elman RNN is bounded,
   |h| <= 1 (a tanh, o * tanh(c), or a convex mix of a tanh and the previous h); when its quantized range
   covers [-1, 1] to within one step, a pinned h is a saturated unit represented as well as int8 can, not a
   clip (a trained float GRU-64 has about 3 % of its h values at |h| >= 0.996). A Jordan network's state y is
   its softmax posterior, 0 <= y <= 1, quantized like the softmax output (int8: 0 to 255/256); a pinned y is a
   probability below 1/512 (exactly 0) or above 255/256, not a clip, and most of a posterior's values are near
   0, so its pinned share is large by design: what must not happen is that it grows. An LSTM's cell state c is
   unbounded, so a pinned c is a clip.
4. memory: resident set size sampled after every minute of audio; the largest sample in the last block may
   exceed the largest in the first block by at most 10 MiB. 10 MiB over the 50 minutes between them is a leak
   of about 35 bytes per frame: even one leaked posterior per frame would fail.

`--reset-every S` is an opt-in reset policy (state, front end and smoothing reset every S seconds of audio);
by default the state is never reset.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from edge.args import Parser, finite_number
from edge.spotter import VARIANTS
from edge.detector import StreamingDetector
from edge.errors import UserError
from edge.interpreters import Runtime, parse_runtime
from edge.manifest import load_manifest
from edge.quant import limits
from export.longstream import Planted, build_long_stream
from export.report import load_eval_dataset, resolve_data_dir
from train.config import STATE_BOUNDS, state_prefix

BLOCK_SECONDS = 600.0
PIECE_SECONDS = 60.0
CHUNK_SECONDS = 1.0
#: Pieces generated once and discarded before measuring: glibc raises its mmap threshold after the first large
#: frees, so the heap settles at its working size only after a couple of pieces (measured: +33 MiB, then flat).
WARM_UP_PIECES = 3
SOAK_SEED = 4242
TOLERANCE_S = 1.0  # as export.longstream.score_events
#: Check limits (see the module docstring for why each is what it is).
MAX_RECALL_DRIFT_PP = 1.0
MAX_EXTRA_FALSE_ALARMS = 1
MAX_SATURATION = 0.05
MAX_SATURATION_GROWTH_PP = 1.0
MAX_RSS_GROWTH_MB = 10.0


# ----------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Piece:
    block: int
    start_s: float
    seconds: float
    seed: int


def plan(minutes: float, seed: int) -> tuple[float, list[Piece]]:
    """(block length in seconds, pieces in stream order). The last block reuses block 0's seeds."""
    if minutes < 2:
        raise UserError("--minutes must be at least 2 (the first and last blocks must not overlap)")
    if minutes >= 20:
        if abs(minutes / 10 - round(minutes / 10)) > 1e-9:
            raise UserError("--minutes must be a whole number of 10-minute blocks from 20 minutes up")
        block_s, blocks = BLOCK_SECONDS, int(round(minutes / 10))
    else:
        block_s, blocks = minutes * 60.0 / 2, 2
    pieces = []
    n_full = int(block_s // PIECE_SECONDS)
    lengths = [PIECE_SECONDS] * n_full + ([block_s - n_full * PIECE_SECONDS] if block_s - n_full * PIECE_SECONDS > 1e-6 else [])
    for b in range(blocks):
        source = 0 if b == blocks - 1 else b
        t = b * block_s
        for j, length in enumerate(lengths):
            pieces.append(Piece(b, t, length, seed + 1000 * source + j))
            t += length
    return block_s, pieces


# ----------------------------------------------------------------------------- scoring
def match(detections: list[tuple[str, float]], planted: list[Planted], tolerance_s: float = TOLERANCE_S
          ) -> tuple[list[bool], list[bool]]:
    """(hit per planted keyword, false alarm per detection) under `score_events`' rule, so that outcomes can be
    attributed to blocks: detections in time order, each matched to the first unused planted keyword with its
    label whose [start, end + tolerance] window contains it; unmatched detections are false alarms."""
    order = sorted(range(len(detections)), key=lambda i: detections[i][1])
    used = [False] * len(planted)
    false_alarm = [True] * len(detections)
    for i in order:
        label, t = detections[i]
        for k, p in enumerate(planted):
            if not used[k] and p.label == label and p.start_s <= t <= p.end_s + tolerance_s:
                used[k] = True
                false_alarm[i] = False
                break
    return used, false_alarm


# ----------------------------------------------------------------------------- measurement
def rss_mb() -> float:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class BlockStats:
    frames: int = 0
    pinned: int = 0  # state values at the integer limits, all tensors
    state_values: int = 0
    clip_pinned: int = 0  # the same, over tensors whose range does not cover all their values (may be clips)
    clip_values: int = 0
    rss: list[float] = field(default_factory=list)


#: State tensors bounded by construction, by name prefix: (lowest, highest) real value (`train.config.STATE_BOUNDS`:
#: the hidden state h of the GRU, LSTM and Elman RNN in [-1, 1], a Jordan network's posterior y in [0, 1]).
BOUNDED_STATES: dict[str, tuple[float, float]] = {state_prefix(kind): bounds for kind, bounds in STATE_BOUNDS.items()}


def covers_bounds(name: str, lo: int, hi: int, scale: float, zero_point: int) -> bool:
    """Whether state `name` is bounded and its integer range [lo, hi] covers its bounds to within one step."""
    bounds = next((b for prefix, b in BOUNDED_STATES.items() if name.startswith(prefix)), None)
    if bounds is None:
        return False
    return (lo - zero_point) * scale <= bounds[0] + scale and (hi - zero_point) * scale >= bounds[1] - scale


@dataclass(frozen=True)
class StateLimits:
    name: str
    lo: int
    hi: int
    may_clip: bool


def state_limits(det: StreamingDetector) -> list[StateLimits]:
    """Integer limits of each quantized state tensor, and whether a value at them may be a clip."""
    out = []
    for name, t in det.model.state.tensors.items():
        if t.dtype.name not in ("int8", "int16"):
            continue
        lo, hi = limits(t.dtype.name)
        spec = det.model.spec.input(name)
        scale, zp = float(spec["scale"]), int(spec["zero_point"] or 0)
        out.append(StateLimits(name, lo, hi, not covers_bounds(name, lo, hi, scale, zp)))
    return out


@dataclass
class SoakState:
    detections: list[tuple[str, float]] = field(default_factory=list)
    planted: list[Planted] = field(default_factory=list)
    blocks: dict[int, BlockStats] = field(default_factory=dict)
    rss_samples: list[dict[str, float]] = field(default_factory=list)
    resets: int = 0


class Streamer:
    """Feeds chunks to a `StreamingDetector` frame by frame, applying the optional reset policy."""

    def __init__(self, det: StreamingDetector, reset_every_s: float) -> None:
        self.det = det
        self.rate = det.sample_rate
        self.reset_limit = int(round(reset_every_s * self.rate)) if reset_every_s > 0 else 0
        self.since_reset = 0
        self.samples = 0
        self.offset_s = 0.0  # stream time of the last reset
        self.limits = state_limits(det)

    def feed(self, chunk: np.ndarray, stats: BlockStats, out: SoakState) -> None:
        # reset once S seconds have been heard and more audio arrives (no reset at the very end of a stream)
        while self.reset_limit and self.since_reset + len(chunk) > self.reset_limit:
            take = self.reset_limit - self.since_reset
            self._frames(chunk[:take], stats, out)
            chunk = chunk[take:]
            self.det.reset()
            out.resets += 1
            self.offset_s = self.samples / self.rate
            self.since_reset = 0
        self._frames(chunk, stats, out)
        self.since_reset += len(chunk)

    def _frames(self, pcm: np.ndarray, stats: BlockStats, out: SoakState) -> None:
        det = self.det
        for frame in det.frontend.process(pcm):
            event = det.process_frame(frame)
            if event is not None:
                out.detections.append((event.label, self.offset_s + event.time_s))
            stats.frames += 1
            for lim in self.limits:
                t = det.model.state.tensors[lim.name]
                pinned = int(np.count_nonzero((t == lim.lo) | (t == lim.hi)))
                stats.pinned += pinned
                stats.state_values += t.size
                if lim.may_clip:
                    stats.clip_pinned += pinned
                    stats.clip_values += t.size
        self.samples += len(pcm)


def _chunks(pcm: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, len(pcm), size):
        yield pcm[i : i + size]


def run_soak(artifacts: Path, minutes: float, variant: str, runtime: Runtime, data: Path | None,
             reset_every_s: float, seed: int, progress: bool) -> dict[str, Any]:
    manifest = load_manifest(artifacts)
    if variant not in manifest.variants:
        raise UserError(f"{artifacts}: no {variant!r} model (has: {', '.join(manifest.variants)})")
    data_dir = resolve_data_dir(manifest, data)
    _, dataset = load_eval_dataset(manifest.labels, data_dir)
    if not dataset.split("test"):
        raise UserError(f"{' '.join(map(str, data_dir))}: no test split to build the soak stream from")
    block_s, pieces = plan(minutes, seed)
    det = StreamingDetector(manifest, variant, runtime)
    rate = det.sample_rate
    streamer = Streamer(det, reset_every_s)
    out = SoakState()
    for piece in pieces[:WARM_UP_PIECES]:
        build_long_stream(dataset, "test", piece.seconds, piece.seed, rate=rate)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    bar = tqdm(total=round(minutes * 60), desc=f"soak {variant}", unit="s", disable=not progress)
    for piece in pieces:
        stats = out.blocks.setdefault(piece.block, BlockStats())
        long = build_long_stream(dataset, "test", piece.seconds, piece.seed, rate=rate)
        out.planted += [Planted(e.label, e.start_s + piece.start_s, e.end_s + piece.start_s) for e in long.events]
        for chunk in _chunks(long.pcm, int(CHUNK_SECONDS * rate)):
            streamer.feed(chunk, stats, out)
            bar.update(len(chunk) / rate)
        del long
        sample = rss_mb()
        stats.rss.append(sample)
        out.rss_samples.append({"minute": round(streamer.samples / rate / 60, 3), "rss_mb": round(sample, 2)})
    bar.close()
    wall = time.perf_counter() - t0
    return summarize(out, block_s, {
        "artifacts": str(artifacts), "variant": variant, "runtime": det.model.runtime.value, "minutes": minutes,
        "block_minutes": block_s / 60, "seed": seed, "data": [str(d) for d in data_dir],
        "reset_every_s": reset_every_s or None, "resets": out.resets,
        "frames": sum(b.frames for b in out.blocks.values()), "audio_seconds": streamer.samples / rate,
        "wall_seconds": round(wall, 2), "real_time_factor": wall / (streamer.samples / rate),
        "state_tensors": [{"name": s.name, "may_clip": s.may_clip} for s in streamer.limits],
        "rss_start_mb": round(rss0, 2), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    })


# ----------------------------------------------------------------------------- checks
def block_rows(out: SoakState, block_s: float) -> list[dict[str, Any]]:
    hits, false_alarm = match(out.detections, out.planted)
    rows = []
    for b in sorted(out.blocks):
        lo, hi = b * block_s, (b + 1) * block_s
        mine = [k for k, p in enumerate(out.planted) if lo <= p.start_s < hi]
        fa = sum(1 for (_, t), f in zip(out.detections, false_alarm) if f and lo <= t < hi)
        n_hit = sum(hits[k] for k in mine)
        st = out.blocks[b]
        rows.append({
            "block": b + 1, "start_min": lo / 60, "end_min": hi / 60, "keywords": len(mine), "hits": n_hit,
            "recall": n_hit / len(mine) if mine else None, "false_alarms": fa, "fa_per_hour": fa / (block_s / 3600),
            "frames": st.frames,
            "saturation": st.pinned / st.state_values if st.state_values else None,
            "clip_saturation": st.clip_pinned / st.clip_values if st.clip_values else None,
            "rss_max_mb": max(st.rss) if st.rss else None,
        })
    return rows


def _check(value: Any, limit: str, passed: bool, definition: str) -> dict[str, Any]:
    return {"value": value, "limit": limit, "passed": bool(passed), "definition": definition}


def checks(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    first, last = rows[0], rows[-1]
    out = {}
    if first["recall"] is None or last["recall"] is None:
        out["recall_drift"] = _check(None, f"<= {MAX_RECALL_DRIFT_PP} pp", False,
                                     "no keywords planted in the first or last block")
    else:
        drift = 100 * abs(last["recall"] - first["recall"])
        limit = max(MAX_RECALL_DRIFT_PP, 100.0 / max(1, first["keywords"]))  # one keyword of the block
        out["recall_drift"] = _check(round(drift, 3), f"<= {limit:.3g} pp", drift <= limit + 1e-9,
                                     f"|recall(last block) - recall(first block)| in percentage points, same audio "
                                     f"(limit: {MAX_RECALL_DRIFT_PP} pp or one of the block's keywords)")
    extra = last["false_alarms"] - first["false_alarms"]
    out["false_alarms"] = _check(extra, f"<= +{MAX_EXTRA_FALSE_ALARMS}", extra <= MAX_EXTRA_FALSE_ALARMS,
                                 f"false alarms in the last block minus the first ({first['fa_per_hour']:.1f} -> "
                                 f"{last['fa_per_hour']:.1f} FA/h)")
    out["saturation"] = saturation_check(rows)
    if first["rss_max_mb"] is None or last["rss_max_mb"] is None:
        out["memory"] = _check(None, f"<= {MAX_RSS_GROWTH_MB} MiB", False, "no RSS samples")
    else:
        growth_mb = last["rss_max_mb"] - first["rss_max_mb"]
        out["memory"] = _check(round(growth_mb, 2), f"<= {MAX_RSS_GROWTH_MB} MiB", growth_mb <= MAX_RSS_GROWTH_MB,
                               "largest RSS sample (one per minute of audio) in the last block minus in the first")
    return out


def saturation_check(rows: list[dict[str, Any]]) -> dict[str, Any]:
    sats = [r["saturation"] for r in rows]
    if any(s is None for s in sats):
        return _check(None, "n/a", True, "float state: no integer limits")
    growth = 100 * (sats[-1] - sats[0])
    clips = [r["clip_saturation"] for r in rows if r["clip_saturation"] is not None]
    worst_clip = max(clips) if clips else None
    ok = growth <= MAX_SATURATION_GROWTH_PP + 1e-9 and (worst_clip is None or worst_clip <= MAX_SATURATION)
    return _check({"max": max(sats), "growth_pp": round(growth, 4), "max_may_clip": worst_clip},
                  f"growth <= {MAX_SATURATION_GROWTH_PP} pp; may-clip share <= {MAX_SATURATION:.0%} per block",
                  ok, "share of state values at the integer limits per block, last minus first block; and the share "
                  "over state tensors whose range does not cover all their values (n/a: none, e.g. GRU h in [-1, 1], "
                  "a Jordan network's posterior in [0, 1])")


def summarize(out: SoakState, block_s: float, info: dict[str, Any]) -> dict[str, Any]:
    rows = block_rows(out, block_s)
    hits, false_alarm = match(out.detections, out.planted)
    result = dict(info)
    result.update({
        "keywords": len(out.planted), "hits": sum(hits), "false_alarms": sum(false_alarm),
        "recall": sum(hits) / len(out.planted) if out.planted else None,
        "fa_per_hour": sum(false_alarm) / (info["audio_seconds"] / 3600) if info["audio_seconds"] else None,
        "blocks": rows, "rss_samples": out.rss_samples,
    })
    result["checks"] = checks(rows)
    result["passed"] = all(c["passed"] for c in result["checks"].values())
    return result


# ----------------------------------------------------------------------------- output
def _fmt(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else fmt.format(x)


def print_table(r: dict[str, Any]) -> None:
    print(f"soak: {r['artifacts']} {r['variant']} on {r['runtime']}, {r['minutes']:g} min in {r['block_minutes']:g}-minute "
          f"blocks (last block replays the first), state {'reset every %g s' % r['reset_every_s'] if r['reset_every_s'] else 'never reset'}")
    print(f"{'block':>5} {'minutes':>11} {'keywords':>8} {'hits':>5} {'recall':>8} {'FA':>4} {'FA/h':>7} "
          f"{'pinned':>8} {'may clip':>8} {'RSS MiB':>8}")
    for b in r["blocks"]:
        print(f"{b['block']:>5} {b['start_min']:>5.1f}-{b['end_min']:<5.1f} {b['keywords']:>8} {b['hits']:>5} "
              f"{_fmt(b['recall'], '{:.2%}'):>8} {b['false_alarms']:>4} {b['fa_per_hour']:>7.1f} "
              f"{_fmt(b['saturation'], '{:.3%}'):>8} {_fmt(b['clip_saturation'], '{:.3%}'):>8} "
              f"{_fmt(b['rss_max_mb'], '{:.1f}'):>8}")
    print(f"whole stream: {r['hits']}/{r['keywords']} keywords ({_fmt(r['recall'], '{:.2%}')}), {r['false_alarms']} false "
          f"alarms ({_fmt(r['fa_per_hour'], '{:.1f}')} FA/h); {r['frames']} frames in {r['wall_seconds']:.0f} s "
          f"(real-time factor {r['real_time_factor']:.3f}); peak RSS {r['peak_rss_mb']:.0f} MiB")
    for name, c in r["checks"].items():
        print(f"  {name:<13} {'PASS' if c['passed'] else 'FAIL'}  {c['value']} ({c['limit']}): {c['definition']}")
    print("soak: " + ("PASS" if r["passed"] else "FAIL"))


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m export soak",
                                description="Hour-long streaming test: detection drift, state saturation, memory.")
    p.add_argument("artifacts", type=Path, help="artifacts folder")
    p.add_argument("--minutes", type=finite_number(), default=60.0,
                   help="stream length (default 60; whole 10-minute blocks from 20 up; at least 2)")
    p.add_argument("--variant", default="int8", choices=VARIANTS, help="model variant (default int8)")
    p.add_argument("--runtime", default="auto", help="auto | litert | tflite-runtime | tf-lite | tflm")
    p.add_argument("--data", type=Path, nargs="+", default=None, metavar="DIR",
                   help="dataset folder(s) (default: the ones the model was trained on)")
    p.add_argument("--reset-every", type=finite_number(0), default=0.0, metavar="SECONDS",
                   help="opt-in reset policy: reset the state every N seconds of audio (default: never)")
    p.add_argument("--seed", type=int, default=SOAK_SEED, help="seed of the stream")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    plan(args.minutes, args.seed)  # validate before loading anything
    r = run_soak(args.artifacts, args.minutes, args.variant, parse_runtime(args.runtime), args.data,
                 args.reset_every, args.seed, progress=not (args.quiet or args.json))
    if args.json:
        print(json.dumps(r))
    else:
        print_table(r)
    return 0 if r["passed"] else 1
