"""False alarms per hour on a folder of audio without any keyword, for a model of any number of keywords
(`python -m export falsealarms ART --negatives DIR [--threshold X ...]`).

A device listens without pause: by default the folder's files (sorted, recursively) are streamed **back to back
as one stream** — front end, recurrent state and smoothing carried from one file into the next, never reset —
exactly as `edge.detector.StreamingDetector.process` (and so `edge run`, `edge.spotter.KeywordSpotter`) does when
it is fed the files one after the other. `--reset-per-file` streams each file from a reset state instead, as
`python -m export wakeword` does. Every event is a false alarm; they are counted per keyword, at the manifest's
thresholds and at each `--threshold` given (one threshold for every keyword, as `edge run --threshold` sets).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from edge.args import Parser, finite_number
from edge.audio import load_wav
from edge.errors import UserError, run_cli
from edge.manifest import Manifest, load_manifest
from edge.postprocess import PostprocessConfig, keyword_labels
from export.report.detection import fast_detect, step_posteriors, window_sums
from export.wakeword import (FolderPosteriors, at_threshold, folder_audio, folder_detector, folder_posteriors,
                             tflite_posteriors)


def carried_posteriors(folder: Path, manifest: Manifest, variant: str, progress: bool) -> FolderPosteriors:
    """The folder's files as one stream: one front end and one interpreter state for all of them, in file order.
    The posteriors come back as one array (`units[0]`), so that the detector's window runs across file ends."""
    from edge.detector import StreamingDetector

    fe = manifest.frontend
    files = folder_audio(folder)
    det = StreamingDetector(manifest, variant)
    parts, samples = [], 0
    scale, integer = 1.0, False
    for path in tqdm(files, desc="negatives (one stream)", unit="file", disable=not progress, leave=False):
        pcm = load_wav(path, fe.sample_rate)
        post = step_posteriors(det, det.frontend.process(pcm))
        parts.append(post.units)
        scale, integer = post.scale, post.integer
        samples += len(pcm)
    units = np.concatenate(parts) if parts else np.zeros((0, len(manifest.labels)))
    return FolderPosteriors(folder, [str(p.relative_to(folder)) for p in files], [units], samples / fe.sample_rate,
                            scale, integer)


def events_by_keyword(data: FolderPosteriors, labels: list[str], config: PostprocessConfig, manifest: Manifest
                      ) -> dict[str, int]:
    """Events per keyword under `config` (every keyword listed, zeros included), over every stream of `data`."""
    det = folder_detector(labels, config, data, manifest.frontend)
    counts = {k: 0 for k in keyword_labels(labels)}
    for units in data.units:
        for event in fast_detect(window_sums(units, config.window), det) if len(units) else []:
            counts[event.label] += 1
    return counts


def point(data: FolderPosteriors, labels: list[str], config: PostprocessConfig, manifest: Manifest,
          threshold: float | None) -> dict[str, Any]:
    counts = events_by_keyword(data, labels, config, manifest)
    n, hours = sum(counts.values()), data.seconds / 3600.0
    return {"threshold": threshold, "false_alarms": n, "fa_per_hour": n / hours if hours else 0.0,
            "by_keyword": counts}


def evaluate(manifest: Manifest, negatives: Path, variant: str, thresholds: Sequence[float], reset_per_file: bool,
             progress: bool) -> dict[str, Any]:
    """False alarms on `negatives` at the manifest's thresholds (`threshold` None) and at each of `thresholds`."""
    if variant not in manifest.variants:
        raise UserError(f"variant {variant!r} not in {manifest.root} (has {', '.join(manifest.variants)})")
    if reset_per_file:
        data = folder_posteriors(negatives, manifest.frontend, tflite_posteriors(manifest, variant), progress,
                                 "negatives", folder_audio(negatives))
    else:
        data = carried_posteriors(negatives, manifest, variant, progress)
    labels, base = manifest.labels, manifest.postprocess
    points = [point(data, labels, base, manifest, None)]
    points += [point(data, labels, at_threshold(base, t), manifest, float(t)) for t in thresholds]
    return {"artifacts": str(manifest.root), "variant": variant,
            "negatives": {"folder": str(negatives), "files": len(data.files), "seconds": round(data.seconds, 1),
                          "one_stream": not reset_per_file},
            "manifest_thresholds": {k: base.threshold_of(k) for k in keyword_labels(labels)},
            "points": points}


def text_lines(r: dict[str, Any]) -> list[str]:
    neg = r["negatives"]
    hours = neg["seconds"] / 3600
    how = "as one stream, state carried from file to file" if neg["one_stream"] else "each file from a reset state"
    lines = [f"{r['artifacts']} ({r['variant']}): {neg['files']} files of {neg['folder']}, {hours:.2f} h, {how}"
             f"{f'; one false alarm = {1 / hours:.2f} FA/h' if hours else ''}"]
    for p in r["points"]:
        where = "the manifest thresholds" if p["threshold"] is None else f"threshold {p['threshold']:g}"
        worst = sorted(((n, k) for k, n in p["by_keyword"].items() if n), key=lambda nk: (-nk[0], nk[1]))
        lines.append(f"  at {where}: {p['false_alarms']} false alarms = {p['fa_per_hour']:.1f} FA/h"
                     + (f" ({', '.join(f'{k} {n}' for n, k in worst)})" if worst else ""))
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m export falsealarms",
               description="False alarms per hour, per keyword, on a folder of audio without any keyword, streamed "
                           "as a device hears it: the files back to back as one stream (state never reset).")
    p.add_argument("artifacts", type=Path, nargs="+", help="artifacts folder(s)")
    p.add_argument("--negatives", type=Path, required=True,
                   help="folder of audio without any keyword (WAV/FLAC/Ogg, recursive; sorted by path)")
    p.add_argument("--threshold", type=finite_number(0, 1, above=True), action="append", default=[], metavar="X",
                   help="also count at this threshold for every keyword (repeatable); the manifest's thresholds "
                        "are always counted")
    p.add_argument("--reset-per-file", action="store_true",
                   help="stream each file from a reset state (as `export wakeword`) instead of one stream")
    p.add_argument("--variant", default="int8", help="exported variant (default int8)")
    p.add_argument("--json", action="store_true", help="one JSON object per artifacts folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        folder_audio(args.negatives)  # a missing or empty folder: one line, before any model is loaded
        for art in args.artifacts:
            r = evaluate(load_manifest(art), args.negatives, args.variant, args.threshold, args.reset_per_file,
                         progress=not (args.quiet or args.json))
            print(json.dumps(r) if args.json else "\n".join(text_lines(r)), flush=True)
        return 0

    return run_cli(body)
