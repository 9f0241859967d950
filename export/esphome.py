"""`python -m export esphome RUN --keyword WORD --out DIR` and `python -m export esphome-check MODEL [MANIFEST]`.

The export writes, for ESPHome's `micro_wake_word` component (contract: `export.esphome_contract`):

* `<word>.tflite`: the run's recurrent model with its state in resource variables (`export.esphome_graph`), full
  int8 with the converter's variable quantization, the input fixed to ESPHome's feature quantization, one uint8
  output: the wake word's probability;
* `<word>.json`: the version-2 manifest, nothing else in it (ESPHome's schema rejects unknown keys), with the
  tensor arena measured in the `tflite-micro` interpreter and a `probability_cutoff` set, like `export.calibrate`
  does, for <= target false alarms per hour of a validation-split stream, under ESPHome's own sliding-window rule;
* `<word>.export.json`: what was measured: the contract check, arena, flash, agreement with our explicit-state
  int8 model on held-out test speech, recall and false alarms at the cutoff.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edge.args import Parser, finite_number
from edge.errors import UserError
from edge.frontend import features_to_float
from edge.interpreters import ModelRunner, Runtime
from edge.postprocess import BACKGROUND_LABELS
from export import esphome_contract as contract
from export.calibrate import (CALIBRATION_SEED, CALIBRATION_SPLIT, DEFAULT_MINUTES, DEFAULT_TARGET_FA_PER_HOUR,
                              allowed_false_alarms)
from export.longstream import Planted, Scored, score_events

#: The held-out stream of the agreement check and the test-split figures (the report's split).
VERIFY_SPLIT = "test"
VERIFY_SEED = 1234
DEFAULT_VERIFY_SECONDS = 180.0
#: Training-split audio whose frames, in order (the state carried), calibrate the int8 ranges.
DEFAULT_CALIBRATION_SECONDS = 120.0


@dataclass(frozen=True)
class EsphomeOptions:
    keyword: str
    author: str = "rnn-kws-edge"
    languages: tuple[str, ...] = ("en",)
    target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR
    threshold_minutes: float = DEFAULT_MINUTES
    verify_seconds: float = DEFAULT_VERIFY_SECONDS
    calibration_seconds: float = DEFAULT_CALIBRATION_SECONDS
    seed: int = VERIFY_SEED


# ----------------------------------------------------------------------------- refusals
def check_exportable(run: Any, keyword: str) -> int:
    """The keyword's label index; a UserError for anything the component cannot run the way we trained it."""
    from train.models import Cell

    keywords = [l for l in run.labels if l not in BACKGROUND_LABELS]
    if not keyword and len(keywords) != 1:
        raise UserError(f"the run has {len(keywords)} keywords ({', '.join(keywords)}): name the wake word with --keyword")
    if not keyword:
        keyword = keywords[0]
    if keyword not in keywords:
        raise UserError(f"--keyword {keyword!r} is not one of the run's keywords: {', '.join(keywords)}")
    diffs = contract.frontend_differences(run.frontend)
    if diffs:
        raise UserError("the run's front end differs from the one ESPHome computes on the device ("
                        + "; ".join(diffs) + "): retrain with ESPHome's settings (our FrontendConfig defaults)")
    cfg = run.model.config
    if cfg.cell is Cell.JORDAN:
        raise UserError("a Jordan network feeds back its softmax posterior, which ESPHome's op set (no SOFTMAX, "
                        "no EXP) cannot compute; export a GRU, LSTM or Elman RNN")
    if cfg.bidirectional:
        raise UserError("cannot export a bidirectional model for streaming: it needs future frames")
    return run.labels.index(keyword)


# ----------------------------------------------------------------------------- conversion
def _calibration_frames(run: Any, dataset: Any, opts: EsphomeOptions) -> np.ndarray:
    from edge.frontend import StreamingFrontend
    from export.longstream import build_long_stream

    stream = build_long_stream(dataset, "train", opts.calibration_seconds, seed=opts.seed)
    return StreamingFrontend(run.frontend).process(stream.pcm)


def _representative(feats: np.ndarray) -> Callable[[], Iterable[dict[str, np.ndarray]]]:
    """The frames in stream order, as ESPHome's int8 grid represents them (the variables' ranges come from
    the state trajectory the calibrator runs through)."""
    x = esphome_grid_features(feats)

    def gen():
        for f in x:
            yield {"features": f[None, None, :]}
    return gen


def convert_esphome(fw: Any, keyword_index: int, feats: np.ndarray) -> bytes:
    """The ESPHome-form .tflite: variables, full int8, uint8 output, ESPHome's input quantization."""
    from export.convert import set_input_quantization
    from export.esphome_graph import EsphomeModule, esphome_function, tf

    module = EsphomeModule(fw, keyword_index)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([esphome_function(module)], module)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _representative(feats)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.uint8
    conv._experimental_variable_quantization = True  # int8 variables: no DEQUANTIZE/QUANTIZE on the state path
    scale, zp = contract.esphome_input_quantization()
    return set_input_quantization(conv.convert(), "features", scale, zp)


def convert_explicit(run: Any, dataset: Any, fw: Any) -> bytes:
    """Our explicit-state int8 model, built as `python -m export` builds `model_int8.tflite`."""
    from export.convert import Variant, convert, match_state_quantization
    from export.pipeline import ExportOptions, _rep, calibration_set
    from export.tf_graph import step_function

    fn, _ = step_function(fw)
    data = convert(fn, Variant.INT8, _rep(calibration_set(run, dataset, ExportOptions())))
    return match_state_quantization(data, fw.state_pairs())


# ----------------------------------------------------------------------------- running both models
def esphome_probabilities(model: bytes, feats: np.ndarray, runtime: Runtime = Runtime.TFLM) -> np.ndarray:
    """The uint8 outputs of the ESPHome-form model over a stream from a fresh interpreter (the variables' zero
    state), fed ESPHome's integer features."""
    runner = ModelRunner(model, runtime)
    q = contract.esphome_features(feats)
    out = np.zeros(len(q), dtype=np.uint8)
    for i, frame in enumerate(q):
        runner.set_input(0, frame[None, None, :])
        runner.invoke()
        out[i] = runner.get_output(0).reshape(-1)[0]
    return out


def explicit_probabilities(model: bytes, pairs: list[tuple[str, str]], keyword_index: int, x: np.ndarray,
                           runtime: Runtime = Runtime.TFLM) -> np.ndarray:
    """Our explicit-state int8 model over float features `x` [T, F] (quantized with its own feature quantizer,
    the state fed back raw, as `edge` does): the keyword's posterior as a float."""
    from edge.quant import limits
    from export.convert import describe_io

    io = describe_io(model)
    pos = {d["name"]: d["position"] for d in io["inputs"]}
    outs = {d["name"]: d for d in io["outputs"]}
    feat, probs = next(d for d in io["inputs"] if d["name"] == "features"), outs["probs"]
    runner = ModelRunner(model, runtime)
    state = {d["name"]: np.full(d["shape"], d["zero_point"], np.int8) for d in io["inputs"] if d["name"] != "features"}
    q = np.clip(np.round(x.astype(np.float32) / np.float32(feat["scale"])) + feat["zero_point"], *limits("int8"))
    out = np.zeros(len(q))
    for i, frame in enumerate(q.astype(np.int8)):
        runner.set_input(pos["features"], frame[None, :])
        for n, s in state.items():
            runner.set_input(pos[n], s)
        runner.invoke()
        raw = {name: runner.get_output(d["position"]) for name, d in outs.items()}
        state = {n: raw[o].copy() for n, o in pairs}
        out[i] = (int(raw["probs"].reshape(-1)[keyword_index]) - probs["zero_point"]) * probs["scale"]
    return out


def esphome_grid_features(feats: np.ndarray) -> np.ndarray:
    """The float features ESPHome's int8 features stand for: what our model sees on the device's input grid."""
    scale, zp = contract.esphome_input_quantization()
    return (contract.esphome_features(feats).astype(np.float32) - zp) * np.float32(scale)


# ----------------------------------------------------------------------------- cutoff and figures
def detection_scores(probs_u8: np.ndarray, cutoff: int, window: int, keyword: str, planted: list[Planted],
                     seconds: float, hop_s: float) -> tuple[Scored, set[int]]:
    """ESPHome's rule over a stream scored against the keyword's planted instances; also which planted ones hit."""
    mine = [p for p in planted if p.label == keyword]
    times = [(i + 1) * hop_s for i in contract.esphome_detections(probs_u8, cutoff, window)]
    hit = {j for t in times for j, p in enumerate(mine) if p.start_s <= t <= p.end_s + 1.0}
    return score_events([(keyword, t) for t in times], mine, seconds), hit


def choose_cutoff(probs_u8: np.ndarray, window: int, keyword: str, planted: list[Planted], seconds: float,
                  hop_s: float, allowed: int) -> int:
    """The lowest uint8 cutoff at and above which ESPHome's rule gives at most `allowed` false alarms (the rule of
    `export.calibrate`, on ESPHome's detector): scanned from the top down."""
    for c in range(254, 0, -1):
        scored, _ = detection_scores(probs_u8, c, window, keyword, planted, seconds, hop_s)
        if scored.false_alarms > allowed:
            return c + 1
    return 1


def probability_cutoff(c: int) -> float:
    """A manifest float that `to_code` turns back into exactly `c` (int(x * 255) truncates)."""
    value = round((c + 0.5) / 255, 6)
    assert contract.cutoff_u8(value) == c
    return value


def _figures(s: Scored) -> dict[str, Any]:
    return {"hits": s.hits, "planted": s.keywords, "recall": s.recall if s.keywords else None,
            "false_alarms": s.false_alarms, "fa_per_hour": s.fa_per_hour, "hours": s.hours}


def agreement(p_esphome: np.ndarray, p_ours: np.ndarray, out_scale: float) -> dict[str, Any]:
    """Frame-by-frame difference of the two wake-word probabilities, in probability and in output steps."""
    d = np.abs(p_esphome - p_ours)
    steps = d / out_scale
    return {"frames": int(len(d)), "max_abs_diff": float(d.max()), "mean_abs_diff": float(d.mean()),
            "p99_abs_diff": float(np.quantile(d, 0.99)), "max_steps": float(steps.max()),
            "share_within_1_step": float((steps <= 1.0 + 1e-9).mean()),
            "share_within_2_steps": float((steps <= 2.0 + 1e-9).mean())}


# ----------------------------------------------------------------------------- the command
def measure(model: bytes, explicit: bytes, pairs: list[tuple[str, str]], k: int, keyword: str, cutoff: int,
            window: int, dataset: Any, run: Any, opts: EsphomeOptions, say: Callable[..., None]) -> dict[str, Any]:
    """Agreement with our explicit-state int8 model and both models' detections on the held-out test stream, both
    in the `tflite-micro` interpreter; and the ESPHome form in ai-edge-litert against it (identical?)."""
    from export.report.detection import build_stream

    stream = build_stream(dataset, opts.verify_seconds / 60.0, opts.seed, run.frontend, False, split=VERIFY_SPLIT)
    say(f"comparing with the explicit-state int8 model on {stream.seconds:.0f} s of {VERIFY_SPLIT}-split audio "
        f"(tflite-micro) ...", flush=True)
    from export.convert import describe_io

    out_scale = describe_io(model)["outputs"][0]["scale"]
    q_esp = esphome_probabilities(model, stream.feats)
    q_lite = esphome_probabilities(model, stream.feats, Runtime.AUTO)
    p_ours = explicit_probabilities(explicit, pairs, k, features_to_float(stream.feats))
    p_grid = explicit_probabilities(explicit, pairs, k, esphome_grid_features(stream.feats))
    q_ours = np.clip(np.rint(p_ours / out_scale), 0, 255).astype(np.uint8)  # ours on the same uint8 grid
    hop = run.frontend.hop_ms / 1000.0
    esp, hit_esp = detection_scores(q_esp, cutoff, window, keyword, stream.events, stream.seconds, hop)
    ours, hit_ours = detection_scores(q_ours, cutoff, window, keyword, stream.events, stream.seconds, hop)
    return {"split": VERIFY_SPLIT, "seconds": round(stream.seconds, 2), "seed": opts.seed,
            "agreement_vs_explicit_int8": agreement(q_esp * out_scale, p_ours, out_scale),
            # the two causes apart: ESPHome's input grid alone (our model fed the features ESPHome's int8 stands
            # for), and the graph rewrites + variable quantization alone (both models on ESPHome's grid)
            "explicit_int8_own_grid_vs_esphome_grid": agreement(p_grid, p_ours, out_scale),
            "esphome_form_vs_explicit_int8_on_esphome_grid": agreement(q_esp * out_scale, p_grid, out_scale),
            "tflm_vs_litert": {"frames_differing": int((q_esp != q_lite).sum()),
                               "max_steps": int(np.abs(q_esp.astype(int) - q_lite.astype(int)).max())},
            "detections": {"esphome_form": _figures(esp), "explicit_int8": _figures(ours),
                           "same_keywords_hit": hit_esp == hit_ours,
                           "hit_only_by_esphome_form": len(hit_esp - hit_ours),
                           "hit_only_by_explicit_int8": len(hit_ours - hit_esp)}}


def calibrate_cutoff(model: bytes, keyword: str, window: int, dataset: Any, run: Any, opts: EsphomeOptions,
                     say: Callable[..., None]) -> tuple[int, dict[str, Any]]:
    """The cutoff for <= target FA/h on the validation stream, ESPHome's rule on the model's `tflite-micro` outputs."""
    from export.report.detection import build_stream

    if not dataset.split(CALIBRATION_SPLIT):
        raise UserError(f"the dataset has no {CALIBRATION_SPLIT}-split clips to set the probability cutoff on")
    stream = build_stream(dataset, opts.threshold_minutes, CALIBRATION_SEED, run.frontend, False, split=CALIBRATION_SPLIT)
    say(f"setting probability_cutoff for <= {opts.target_fa_per_hour:g} FA/h on {stream.seconds / 60:.0f} min of "
        f"{CALIBRATION_SPLIT}-split audio ...", flush=True)
    q = esphome_probabilities(model, stream.feats)
    allowed = allowed_false_alarms(opts.target_fa_per_hour, stream.seconds)
    hop = run.frontend.hop_ms / 1000.0
    c = choose_cutoff(q, window, keyword, stream.events, stream.seconds, hop, allowed)
    scored, _ = detection_scores(q, c, window, keyword, stream.events, stream.seconds, hop)
    return c, {"target_fa_per_hour": opts.target_fa_per_hour, "split": CALIBRATION_SPLIT, "seed": CALIBRATION_SEED,
               "seconds": round(stream.seconds, 2), "allowed_false_alarms": allowed, "cutoff_u8": c,
               "rule": "lowest uint8 cutoff at and above which ESPHome's sliding-window rule gives at most the "
                       "allowed false alarms", **_figures(scored)}


def manifest_v2(keyword: str, model_file: str, arena: int, cutoff: float, window: int, run: Any,
                opts: EsphomeOptions) -> dict[str, Any]:
    return {"type": "micro", "wake_word": keyword, "author": opts.author, "version": contract.MANIFEST_VERSION,
            "model": model_file, "trained_languages": list(opts.languages),
            "micro": {"feature_step_size": run.frontend.hop_ms, "tensor_arena_size": arena,
                      "probability_cutoff": cutoff, "sliding_window_size": window,
                      "minimum_esphome_version": contract.MINIMUM_ESPHOME_VERSION}}


def build_esphome(run_dir: Path, out_dir: Path, opts: EsphomeOptions, force: bool = False,
                  data_override: Sequence[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """The command: RUN -> DIR/<word>.tflite, <word>.json (manifest v2), <word>.export.json (measurements)."""
    from export.esphome_graph import softplus_tail_fit
    from export.pipeline import run_dataset
    from export.tf_graph import fold_weights
    from export.tflm_arena import tflm_arena_bytes
    from train.trainer import load_run

    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise UserError(f"{out_dir} already exists; pass --force to replace it")
    say = print if progress else (lambda *a, **k: None)
    run = load_run(run_dir)
    k = check_exportable(run, opts.keyword)
    keyword = run.labels[k]
    dataset = run_dataset(run, data_override)
    fw = fold_weights(run.model)
    say(f"converting (state in resource variables, {opts.calibration_seconds:.0f} s of training-split frames "
        f"in order) ...", flush=True)
    model = convert_esphome(fw, k, _calibration_frames(run, dataset, opts))
    problems = contract.check_model(model)
    if problems:
        raise UserError("the converted model breaks the ESPHome contract: " + "; ".join(problems))
    arena = tflm_arena_bytes(model)
    if arena is None:
        raise UserError("tflite-micro is not installed (pip install tflite-micro): the tensor arena cannot be measured")
    window = run.postprocess.window
    c, operating = calibrate_cutoff(model, keyword, window, dataset, run, opts, say)
    explicit = convert_explicit(run, dataset, fw)
    verify = measure(model, explicit, fw.state_pairs(), k, keyword, c, window, dataset, run, opts, say)
    name = keyword
    manifest = manifest_v2(name, f"{name}.tflite", arena, probability_cutoff(c), window, run, opts)
    beta, fit_error = softplus_tail_fit()
    report = {"run": str(run_dir), "keyword": keyword, "labels": run.labels, "tflite_bytes": len(model),
              "tensor_arena_size_measured": arena, "ops": sorted(set(contract.model_facts(model).ops)),
              "contract_violations": problems, "frontend": run.frontend.to_dict(),
              "feature_quantization": {"scale": contract.esphome_input_quantization()[0],
                                       "zero_point": contract.FEATURE_ZERO_POINT,
                                       "rule": "clip((u16 * 256 + 333) // 666 - 128, -128, 127)"},
              "softmax_rewrite": {"labels_reduced": len(run.labels) - 1, "beta": beta, "logit_error_bound": fit_error},
              "operating_point": operating, "verification": verify}
    _write(out_dir, {f"{name}.tflite": model, f"{name}.json": json.dumps(manifest, indent=2).encode(),
                     f"{name}.export.json": json.dumps(report, indent=2).encode()}, say)
    return report


def _write(out_dir: Path, files: dict[str, bytes], say: Callable[..., None]) -> None:
    """All files into a temporary sibling folder, then one rename (nothing half-written on failure)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if out_dir.exists():
            say(f"replacing existing {out_dir} (--force)", flush=True)
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def summary_lines(report: dict[str, Any], out_dir: Path) -> list[str]:
    v, op = report["verification"], report["operating_point"]
    a, det = v["agreement_vs_explicit_int8"], v["detections"]
    pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    return [
        f"ESPHome model written to {out_dir} (manifest {report['keyword']}.json)",
        f"  {report['tflite_bytes']} bytes, tensor arena {report['tensor_arena_size_measured']} bytes (tflite-micro), "
        f"contract OK, ops {', '.join(report['ops'])}",
        f"  probability_cutoff {op['cutoff_u8']}/255 for <= {op['target_fa_per_hour']:g} FA/h on {op['seconds'] / 60:.0f} "
        f"min of {op['split']} audio: recall {pct(op['recall'])}, {op['false_alarms']} false alarm(s)",
        f"  vs explicit-state int8 on {v['seconds']:.0f} s of {v['split']} audio: max |dp| {a['max_abs_diff']:.4f} "
        f"({a['max_steps']:.1f} output steps), mean {a['mean_abs_diff']:.4f}, {pct(a['share_within_1_step'])} of frames "
        f"within 1 step; tflite-micro vs ai-edge-litert: {v['tflm_vs_litert']['frames_differing']} frames differ",
        f"  detections at the cutoff: ESPHome form recall {pct(det['esphome_form']['recall'])} / "
        f"{det['esphome_form']['false_alarms']} FA, explicit int8 {pct(det['explicit_int8']['recall'])} / "
        f"{det['explicit_int8']['false_alarms']} FA; same keywords hit: {det['same_keywords_hit']}"]


# ----------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m export esphome", description="A wake-word model for ESPHome's micro_wake_word.")
    p.add_argument("run", type=Path, help="training run folder")
    p.add_argument("--keyword", default="", help="the wake word: one of the run's keyword labels (default: the "
                                                    "run's only keyword)")
    p.add_argument("--out", type=Path, required=True, help="folder to create (<word>.tflite, <word>.json, ...)")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.add_argument("--data", nargs="+", default=None, metavar="DIR", help="dataset folder(s), if not the run's")
    p.add_argument("--author", default=EsphomeOptions.author)
    p.add_argument("--language", nargs="+", default=list(EsphomeOptions.languages), help="trained_languages")
    p.add_argument("--target-fa-per-hour", type=finite_number(0, above=True), default=DEFAULT_TARGET_FA_PER_HOUR)
    p.add_argument("--threshold-minutes", type=finite_number(0, above=True), default=DEFAULT_MINUTES)
    p.add_argument("--verify-seconds", type=finite_number(10), default=DEFAULT_VERIFY_SECONDS)
    p.add_argument("--calibration-seconds", type=finite_number(10), default=DEFAULT_CALIBRATION_SECONDS)
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    opts = EsphomeOptions(args.keyword, args.author, tuple(args.language), args.target_fa_per_hour,
                          args.threshold_minutes, args.verify_seconds, args.calibration_seconds)
    report = build_esphome(args.run, args.out, opts, args.force, args.data, progress=not args.quiet)
    print("\n".join(summary_lines(report, args.out)))
    return 0


def check_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m export esphome-check",
               description="Check a .tflite (and its manifest) against ESPHome's micro_wake_word contract.")
    p.add_argument("model", type=Path, help=".tflite file")
    p.add_argument("manifest", type=Path, nargs="?", default=None, help="its manifest JSON (optional)")
    return p


def check_main(argv: Sequence[str]) -> int:
    """One line per violation, then a summary; exit 1 when there is any."""
    args = check_parser().parse_args(list(argv))
    for path in [args.model] + ([args.manifest] if args.manifest else []):
        if not path.is_file():
            raise UserError(f"{path}: no such file")
    try:
        problems = contract.check_files(args.model, args.manifest)
    except json.JSONDecodeError as exc:
        raise UserError(f"{args.manifest}: not JSON ({exc.msg}, line {exc.lineno})") from None
    except ValueError as exc:
        raise UserError(f"{args.model}: {exc}") from None
    for line in problems:
        print(line)
    print(contract.summary(problems))
    return 1 if problems else 0
