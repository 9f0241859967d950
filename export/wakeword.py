"""Wake-word figures on real recordings: recall on a folder of positive recordings, false alarms per hour on a
folder of negative audio (`python -m export wakeword ART --positives DIR --negatives DIR`, and the report's
`--positives/--negatives` section).

Every file is streamed on its own from a reset state (front end, recurrent state, smoothing), one frame per
interpreter call, exactly as `python -m edge run --wav FILE` does; the events come from the same
post-processing (`fast_detect` is `Detector.update`'s decision rule over the whole file at once).

- **Recall**: the share of positive files in which the keyword fires at least once.
- **False alarms**: every event (any keyword) in the negative files, per hour of negative audio.
- **Sweep**: the same at one threshold for every keyword over a grid, and the lowest threshold whose false
  alarms on *these* negatives stay within a target. That point is chosen on the measurement data itself, so
  it is an upper bound of what a threshold chosen elsewhere (the manifest's, set on the validation split at
  export) can reach: both are printed, and only the manifest's is an honest estimate.
- **Calibrated on other negatives** (`--calibration-negatives DIR`): the threshold set on audio of the place the
  device will listen (its own talk, television, hours of it), without the keyword and apart from `--negatives`:
  the lowest threshold of a 0.01 grid at which DIR, and every higher threshold, stays within the target (the
  export's rule: floor(target x hours) false alarms allowed), then measured on the positives and negatives. An
  honest estimate of what a threshold set on real speech gives, where the manifest's is set on the validation
  stream.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from edge.args import Parser, finite_number
from edge.audio import load_wav
from edge.datasets import AUDIO_SUFFIXES
from edge.errors import UserError, run_cli
from edge.frontend import FrontendConfig, StreamingFrontend
from edge.manifest import Manifest, load_manifest
from edge.postprocess import Detector, PostprocessConfig, integer_threshold, keyword_labels
from export.report.detection import StreamPosteriors, fast_detect, step_posteriors, window_sums

#: thresholds of the sweep (one for every keyword); the int8 grid is 1/256 per frame, so these are all distinct
SWEEP = tuple(float(t) for t in np.round(np.concatenate([np.arange(0.05, 0.9, 0.05), np.arange(0.9, 1.0, 0.01)]), 4))
DEFAULT_TARGET_FA_PER_HOUR = 1.0
#: thresholds tried when the threshold is set on calibration negatives: every 0.01 of the detector's range
CALIBRATION_GRID = tuple(float(t) for t in np.round(np.arange(0.01, 1.0, 0.01), 2))


@dataclass
class FolderPosteriors:
    """Frame posteriors (detector units) of every audio file of one folder, each streamed from a reset state."""

    folder: Path
    files: list[str]
    units: list[np.ndarray]
    seconds: float
    scale: float
    integer: bool


def folder_audio(folder: Path) -> list[Path]:
    """WAV/FLAC/Ogg files under `folder` (recursively), sorted; a clear error when there are none."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"{folder}: no WAV, FLAC or Ogg files")
    return files


Posteriors = Callable[[np.ndarray], StreamPosteriors]


def folder_posteriors(folder: Path, fe: FrontendConfig, posteriors: Posteriors, progress: bool,
                      desc: str, files: list[Path] | None = None, tail_s: float = 0.0) -> FolderPosteriors:
    """`tail_s`: seconds of silence (zeros) appended to each file before streaming (`--tail`)."""
    units, names, samples = [], [], 0
    scale, integer = 1.0, False
    tail = np.zeros(int(round(tail_s * fe.sample_rate)), np.int16)
    for path in tqdm(files or folder_audio(folder), desc=desc, unit="file", disable=not progress, leave=False):
        pcm = np.concatenate([load_wav(path, fe.sample_rate), tail])
        feats = StreamingFrontend(fe).process(pcm)
        post = posteriors(feats)
        units.append(post.units)
        scale, integer = post.scale, post.integer
        names.append(str(path.relative_to(folder)))
        samples += len(pcm)
    return FolderPosteriors(folder, names, units, samples / fe.sample_rate, scale, integer)


def tflite_posteriors(manifest: Manifest, variant: str) -> Posteriors:
    """One interpreter (one invoke per frame, state carried), reset before each file."""
    from edge.detector import StreamingDetector

    det = StreamingDetector(manifest, variant)

    def run(feats: np.ndarray) -> StreamPosteriors:
        det.model.reset()
        return step_posteriors(det, feats)

    return run


def folder_detector(labels: list[str], config: PostprocessConfig, data: FolderPosteriors,
                    fe: FrontendConfig) -> Detector:
    """The runtime's detector in the units of `data`'s posteriors (also `export.falsealarms`)."""
    return Detector(labels, config, scale=data.scale, integer=data.integer, hop_s=fe.hop_ms / 1000,
                    window_s=fe.window_ms / 1000)


def at_threshold(base: PostprocessConfig, threshold: float) -> PostprocessConfig:
    """`base` with one threshold for every keyword (as `edge run --threshold` sets)."""
    return PostprocessConfig(base.window, float(threshold), {}, base.refractory)


def count_events(data: FolderPosteriors, labels: list[str], config: PostprocessConfig, fe: FrontendConfig,
                 keyword: str | None = None) -> list[int]:
    """Events per file (of `keyword` only, if given) under `config`."""
    det = folder_detector(labels, config, data, fe)
    out = []
    for u in data.units:
        events = fast_detect(window_sums(u, config.window), det) if len(u) else []
        out.append(sum(1 for e in events if keyword is None or e.label == keyword))
    return out


def figures(pos: FolderPosteriors, neg: FolderPosteriors, labels: list[str], config: PostprocessConfig,
            fe: FrontendConfig, keyword: str) -> dict[str, Any]:
    hits = count_events(pos, labels, config, fe, keyword)
    fas = count_events(neg, labels, config, fe)
    hours = neg.seconds / 3600.0
    return {"threshold": config.threshold_of(keyword), "recall": float(np.mean([h > 0 for h in hits])),
            "detected": int(sum(h > 0 for h in hits)), "positives": len(hits),
            "false_alarms": int(sum(fas)), "fa_per_hour": float(sum(fas) / hours) if hours else 0.0}


def sweep(pos: FolderPosteriors, neg: FolderPosteriors, labels: list[str], base: PostprocessConfig,
          fe: FrontendConfig, keyword: str, thresholds: Sequence[float] = SWEEP) -> list[dict[str, Any]]:
    """One point per threshold, the same threshold for every keyword (as `edge run --threshold` sets)."""
    out = []
    for t in thresholds:
        out.append(figures(pos, neg, labels, at_threshold(base, t), fe, keyword))
    return out


def best_within(points: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """The point with the highest recall among those within `target` FA/h (ties: the higher threshold)."""
    ok = [p for p in points if p["fa_per_hour"] <= target + 1e-12]
    return max(ok, key=lambda p: (p["recall"], p["threshold"])) if ok else None


def calibrated_threshold(cal: FolderPosteriors, labels: list[str], base: PostprocessConfig, fe: FrontendConfig,
                         target: float) -> dict[str, Any]:
    """The lowest threshold of `CALIBRATION_GRID` at which the calibration audio, and every higher threshold,
    has at most floor(target x hours) false alarms (any keyword); threshold None when even the highest has more."""
    from export.calibrate import allowed_false_alarms

    allowed = allowed_false_alarms(target, cal.seconds)
    chosen, counts = None, {}
    for t in reversed(CALIBRATION_GRID):
        n = sum(count_events(cal, labels, at_threshold(base, t), fe))
        if n > allowed:
            break
        chosen, counts[t] = t, n
    return {"folder": str(cal.folder), "files": len(cal.files), "seconds": round(cal.seconds, 1),
            "allowed_false_alarms": allowed, "threshold": chosen,
            "false_alarms": None if chosen is None else counts[chosen]}


def evaluate(manifest: Manifest, positives: Path, negatives: Path, variant: str, keyword: str | None,
             target: float, progress: bool, posteriors: Posteriors | None = None, tail_s: float = 0.0,
             calibration: Path | None = None) -> dict[str, Any]:
    """Recall on `positives` (each file followed by `tail_s` seconds of silence), false alarms on `negatives`
    (as they are), at the manifest's thresholds and over the sweep; with `calibration` (a folder of negatives
    other than `negatives`), also at the threshold set on it (`calibrated_threshold`)."""
    labels = manifest.labels
    keywords = keyword_labels(labels)
    if keyword is None:
        if len(keywords) != 1:
            raise UserError(f"the model has {len(keywords)} keywords ({', '.join(keywords)}): name one with --keyword")
        keyword = keywords[0]
    if keyword not in keywords:
        raise UserError(f"--keyword {keyword!r} is not a keyword of this model ({', '.join(keywords)})")
    if variant not in manifest.variants:
        raise UserError(f"variant {variant!r} not in {manifest.root} (has {', '.join(manifest.variants)})")
    fe = manifest.frontend
    pos_files, neg_files = folder_audio(positives), folder_audio(negatives)  # checked before any work
    cal_files = None if calibration is None else folder_audio(calibration)
    if cal_files is not None and set(p.resolve() for p in cal_files) & set(p.resolve() for p in neg_files):
        raise UserError(f"--calibration-negatives {calibration} shares files with --negatives {negatives}: a threshold "
                        "set on the audio it is measured on is an upper bound (the sweep's best line), not an estimate")
    run = posteriors or tflite_posteriors(manifest, variant)
    pos = folder_posteriors(positives, fe, run, progress, "positives", pos_files, tail_s)
    neg = folder_posteriors(negatives, fe, run, progress, "negatives", neg_files)
    config = manifest.postprocess
    points = sweep(pos, neg, labels, config, fe, keyword)
    result = {
        "artifacts": str(manifest.root), "variant": variant, "keyword": keyword,
        "positives": {"folder": str(positives), "files": len(pos.files), "seconds": round(pos.seconds, 1),
                      "tail_s": tail_s},
        "negatives": {"folder": str(negatives), "files": len(neg.files), "seconds": round(neg.seconds, 1)},
        "manifest_point": figures(pos, neg, labels, config, fe, keyword),
        "target_fa_per_hour": target,
        "best_within_target": best_within(points, target),
        "sweep": points,
    }
    if pos.integer:
        result["manifest_point"]["limit"] = integer_threshold(config.threshold_of(keyword), config.window, pos.scale)
    if calibration is not None:
        cal = folder_posteriors(calibration, fe, run, progress, "calibration", cal_files)
        chosen = calibrated_threshold(cal, labels, config, fe, target)
        point = None if chosen["threshold"] is None else figures(pos, neg, labels, at_threshold(config, chosen["threshold"]),
                                                                 fe, keyword)
        result["calibrated_point"] = {"calibration": chosen, **(point or {})}
    return result


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def text_lines(r: dict[str, Any]) -> list[str]:
    m, b = r["manifest_point"], r["best_within_target"]
    neg_h = r["negatives"]["seconds"] / 3600
    tail = r["positives"].get("tail_s", 0.0)
    lines = [
        f"{r['artifacts']} ({r['variant']}), keyword {r['keyword']!r}: {r['positives']['files']} positive files"
        f"{f' (each followed by {tail:g} s of silence)' if tail else ''}, "
        f"{r['negatives']['files']} negative files ({neg_h:.2f} h; one false alarm = {1 / neg_h:.2f} FA/h)",
        f"  at the manifest threshold {m['threshold']:.4f}: recall {_pct(m['recall'])} ({m['detected']}/{m['positives']}), "
        f"{m['false_alarms']} false alarms = {m['fa_per_hour']:.1f} FA/h",
    ]
    if b is None:
        lines.append(f"  no threshold of the sweep stays within {r['target_fa_per_hour']:g} FA/h on these negatives")
    else:
        lines.append(f"  best threshold for <= {r['target_fa_per_hour']:g} FA/h chosen on these negatives (an upper bound, "
                     f"not an estimate): {b['threshold']:.2f}, recall {_pct(b['recall'])}, {b['fa_per_hour']:.1f} FA/h")
    c = r.get("calibrated_point")
    if c is not None:
        cal = c["calibration"]
        where = (f"set on {cal['folder']} ({cal['seconds'] / 3600:.2f} h, at most {cal['allowed_false_alarms']} false "
                 f"alarm(s) there)")
        lines.append(f"  no threshold {where}" if cal["threshold"] is None else
                     f"  at the threshold {where}: {c['threshold']:.2f}, recall {_pct(c['recall'])} "
                     f"({c['detected']}/{c['positives']}), {c['false_alarms']} false alarms = {c['fa_per_hour']:.1f} FA/h")
    lines.append("  threshold  recall   FA/h")
    lines += [f"  {p['threshold']:9.2f}  {100 * p['recall']:5.1f} %  {p['fa_per_hour']:6.1f}" for p in r["sweep"]]
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m export wakeword",
               description="Recall on a folder of real recordings of the wake word and false alarms per hour on "
                           "a folder of negative audio, each file streamed from a reset state.")
    p.add_argument("artifacts", type=Path, nargs="+", help="artifacts folder(s)")
    p.add_argument("--positives", type=Path, required=True, help="folder of recordings of the keyword (WAV/FLAC/Ogg)")
    p.add_argument("--negatives", type=Path, required=True, help="folder of audio without the keyword")
    p.add_argument("--keyword", default=None, help="which keyword the positives hold (default: the model's only one)")
    p.add_argument("--tail", type=finite_number(0), default=0.0, metavar="SECONDS",
                   help="silence appended to each positive file (default 0): for cut-outs that end where the word "
                        "ends, such as Speech Commands' 1-s clips, since a device keeps listening after the word "
                        "and the detector's window needs those frames")
    p.add_argument("--variant", default="int8", help="exported variant (default int8)")
    p.add_argument("--target-fa-per-hour", type=finite_number(0), default=DEFAULT_TARGET_FA_PER_HOUR, metavar="X",
                   help=f"for the best-threshold line (default {DEFAULT_TARGET_FA_PER_HOUR:g})")
    p.add_argument("--calibration-negatives", type=Path, default=None, metavar="DIR",
                   help="audio without the keyword from where the device will listen, apart from --negatives: the "
                        "threshold is also set on it (within --target-fa-per-hour) and measured on the positives and "
                        "negatives")
    p.add_argument("--json", action="store_true", help="one JSON object per artifacts folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        args = build_parser().parse_args(argv)
        for art in args.artifacts:
            r = evaluate(load_manifest(art), args.positives, args.negatives, args.variant, args.keyword,
                         args.target_fa_per_hour, progress=not (args.quiet or args.json), tail_s=args.tail,
                         calibration=args.calibration_negatives)
            print(json.dumps(r) if args.json else "\n".join(text_lines(r)), flush=True)
        return 0

    return run_cli(body)
