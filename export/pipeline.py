"""`python -m export RUN --out DIR`: a trained run -> verified device artifacts."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from edge.errors import UserError
from edge.frontend import FEATURE_SCALE, FrontendConfig, StreamingFrontend, features_to_float
from edge.manifest import MANIFEST, SCHEMA_VERSION, load_manifest, sha256_file
from edge.quant import FEATURE_QUANTIZATION_RULE
from export.calibrate import CalibrationOptions, calibrate
from export.convert import Variant, convert, describe_io, match_state_quantization, operator_names
from export.longstream import build_long_stream
from export.options import ExportOptions
from export.tflm_arena import tflm_arena_bytes
from export.tf_graph import POSTERIOR_OUTPUT, FoldedWeights, fold_weights, step_function, window_function
from export.trajectory import float_trajectory, split_state
from export.verify import verify_artifacts
from edge.datasets import Dataset, Recipe, load_dataset, recorded_data_dirs
from train.models import RecurrentKWS, state_name
from train.trainer import Run, load_run

#: The non-streaming baseline model's window: one second of audio (98 frames with the default front end).
WINDOW_SECONDS = 1.0
VARIANT_FILES = {Variant.FLOAT32: "model_float32.tflite", Variant.INT8: "model_int8.tflite", Variant.INT16X8: "model_int16x8.tflite"}
BASELINE_FILES = {Variant.FLOAT32: "window_float32.tflite", Variant.INT8: "window_int8.tflite"}


def run_dataset(run: Run, data_override: Sequence[str] | str | None = None) -> Dataset:
    tc = run.meta["train_config"]
    dirs = recorded_data_dirs(data_override or tc["data"])
    missing = [str(d) for d in dirs if not d.is_dir()]
    if not dirs or missing:
        raise UserError(f"the run's data folder {' '.join(missing) or '(none)'} is not available; pass --data DIR")
    return load_dataset(Recipe(tc["recipe"]), dirs, tuple(tc.get("keywords") or ()) or None,
                        recorded_data_dirs(tc.get("negative_data")))


# ----------------------------------------------------------------------------- calibration
def calibration_set(run: Run, dataset: Dataset, opts: ExportOptions) -> list[dict[str, np.ndarray]]:
    stream = build_long_stream(dataset, "train", opts.calibration_seconds, seed=opts.seed)
    feats = StreamingFrontend(run.frontend).process(stream.pcm)
    _, states = float_trajectory(run.model, feats)
    idx = np.linspace(0, len(feats) - 1, min(opts.calibration_samples, len(feats))).astype(int)
    ffeat = features_to_float(feats)
    return [{"features": ffeat[i : i + 1], **split_state(states[i], run.model.config)} for i in idx]


def window_frames(frontend: FrontendConfig) -> int:
    """Frames of the baseline's window: those the front end emits for `WINDOW_SECONDS` of audio."""
    return frontend.frames_in(WINDOW_SECONDS)


def window_calibration(run: Run, dataset: Dataset, opts: ExportOptions) -> list[dict[str, np.ndarray]]:
    stream = build_long_stream(dataset, "train", 60.0, seed=opts.seed + 1)
    feats = features_to_float(StreamingFrontend(run.frontend).process(stream.pcm))
    frames = window_frames(run.frontend)
    starts = np.linspace(0, len(feats) - frames, 200).astype(int)
    return [{"features": feats[s : s + frames][None]} for s in starts]


def _rep(samples: list[dict[str, np.ndarray]]) -> Callable[[], Iterable[dict[str, np.ndarray]]]:
    def gen():
        for s in samples:
            yield s
    return gen


# ----------------------------------------------------------------------------- measurements
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "tensorflow-cpu", "tensorflow", "ai-edge-litert", "tflite-micro", "pymicro-features", "numpy", "onnx", "onnxruntime"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


# ----------------------------------------------------------------------------- ONNX
class _OnnxStep(torch.nn.Module):
    """`step` with the export's interface: inputs `features` and the states in `pairs` order (by name), outputs
    the posterior and every state output that is not the posterior itself."""

    def __init__(self, model: RecurrentKWS, pairs: list[tuple[str, str]]) -> None:
        super().__init__()
        self.model = model
        cfg = model.config
        position = {name: i for i, (name, _) in enumerate(pairs)}
        #: slots[kind][layer]: where torch state `kind` of `layer` sits among the state inputs
        self.slots = [[position[state_name(k, l)] for l in range(cfg.state_layers)] for k in cfg.cell.state_names]
        self.extra_outputs = [i for i, (_, out) in enumerate(pairs) if out != POSTERIOR_OUTPUT]

    def forward(self, features, *states):
        st = tuple(torch.stack([states[i] for i in slots]) for slots in self.slots)
        logits, new = self.model.step(features, st)
        by_slot = {i: new[k][l] for k, slots in enumerate(self.slots) for l, i in enumerate(slots)}
        return (torch.softmax(logits, -1), *[by_slot[i] for i in self.extra_outputs])


def export_onnx(model: RecurrentKWS, pairs: list[tuple[str, str]], path: Path) -> dict[str, Any]:
    """Float ONNX of the streaming step (opset 17, TorchScript exporter), with the TFLite models' input and
    output names, checked with onnxruntime over 200 steps with the state carried as `pairs` says."""
    import onnxruntime as ort

    S, F = model.config.state_width, model.config.input_dim
    names = [n for n, _ in pairs]
    wrapper = _OnnxStep(model, pairs).eval()
    outputs = [POSTERIOR_OUTPUT, *[pairs[i][1] for i in wrapper.extra_outputs]]
    args = (torch.zeros(1, F),) + tuple(torch.zeros(1, S) for _ in names)
    torch.onnx.export(wrapper, args, str(path), opset_version=17, dynamo=False,
                      input_names=["features", *names], output_names=outputs)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    state = [np.zeros((1, S), np.float32) for _ in names]
    for _ in range(200):
        x = rng.uniform(0, 25, (1, F)).astype(np.float32)
        outs = sess.run(outputs, {"features": x, **{n: s for n, s in zip(names, state)}})
        with torch.no_grad():
            ref = wrapper(torch.from_numpy(x), *[torch.from_numpy(s) for s in state])
        worst = max(worst, max(float(np.abs(o - r.numpy()).max()) for o, r in zip(outs, ref)))
        by_name = dict(zip(outputs, outs))
        state = [by_name[out] for _, out in pairs]
    if worst > 1e-4:
        raise UserError(f"ONNX export disagrees with PyTorch (max abs diff {worst:.2e} > 1e-4)")
    return {"file": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size, "opset": 17,
            "max_abs_diff_vs_pytorch": worst}


# ----------------------------------------------------------------------------- main
def _variant_entry(path: Path, data: bytes, variant: Variant) -> dict[str, Any]:
    io = describe_io(data)
    entry: dict[str, Any] = {
        "file": path.name, "sha256": sha256_file(path), "bytes": len(data),
        "inputs": io["inputs"], "outputs": io["outputs"], "ops": sorted(set(operator_names(data))),
        "feature_quantizer": None, "tflm_arena_bytes": None,
    }
    if variant is not Variant.FLOAT32:
        feat = next(d for d in io["inputs"] if d["name"] == "features")
        entry["feature_quantizer"] = {"scale": feat["scale"], "zero_point": feat["zero_point"],
                                      "dtype": variant.io_dtype, "rule": FEATURE_QUANTIZATION_RULE}
    return entry


def build_artifacts(run_dir: Path, out_dir: Path, opts: ExportOptions, force: bool = False,
                    data_override: str | None = None, progress: bool = True) -> dict[str, Any]:
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise UserError(f"{out_dir} already exists; pass --force to replace it")
    run = load_run(run_dir)
    if run.model.config.bidirectional:
        raise UserError("cannot export a bidirectional model for streaming: it needs future frames")
    dataset = run_dataset(run, data_override)
    fw: FoldedWeights = fold_weights(run.model)
    fn, _ = step_function(fw)
    pairs = fw.state_pairs()
    say = print if progress else (lambda *a, **k: None)
    say(f"calibrating on {opts.calibration_seconds:.0f} s of training-split audio ...", flush=True)
    calib = calibration_set(run, dataset, opts)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent if out_dir.parent.exists() else None))
    try:
        variants: dict[str, Any] = {}
        for variant in tqdm(list(Variant), desc="converting", disable=not progress, leave=False):
            data = convert(fn, variant, _rep(calib))
            data = match_state_quantization(data, pairs)
            path = tmp / VARIANT_FILES[variant]
            path.write_bytes(data)
            variants[variant.value] = _variant_entry(path, data, variant)
        variants["int8"]["tflm_arena_bytes"] = tflm_arena_bytes((tmp / VARIANT_FILES[Variant.INT8]).read_bytes())
        frames = window_frames(run.frontend)
        baseline: dict[str, Any] = {"window_frames": frames, "variants": {}}
        if opts.baseline:
            wfn = window_function(fw, frames)
            wcal = window_calibration(run, dataset, opts)
            for variant, fname in BASELINE_FILES.items():
                data = convert(wfn, variant, _rep(wcal))
                (tmp / fname).write_bytes(data)
                baseline["variants"][variant.value] = _variant_entry(tmp / fname, data, variant)
        onnx_entry = export_onnx(run.model, pairs, tmp / "model.onnx") if opts.onnx else None
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": out_dir.name,
            "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "labels": run.labels,
            "frontend": run.frontend.to_dict(),
            "feature_scale": FEATURE_SCALE,
            "postprocess": run.postprocess.to_dict(),
            "model": {"config": run.model.config.to_dict(), **run.meta["metrics"].get("size", {})},
            "state": {"design": "explicit-io", "tensors": [{"name": a, "output": b, "shape": [1, fw.config.state_width]} for a, b in pairs]},
            "variants": variants,
            "baseline": baseline,
            "onnx": onnx_entry,
            "training": {"run": str(Path(run_dir)), "config": run.meta["train_config"],
                         "metrics": {k: v for k, v in run.meta["metrics"].items() if k != "size"}},
            "versions": package_versions(),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        say(f"verifying fidelity on {opts.verify_seconds:.0f} s of held-out audio ...", flush=True)
        fidelity = verify_artifacts(tmp, run, dataset, opts.verify_seconds, opts.seed, progress)
        manifest["fidelity"] = fidelity
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        agreement = fidelity["int8"]["frame_argmax_agreement"]
        if agreement < opts.min_agreement:
            raise UserError(f"int8 model agrees with the float model on {agreement:.1%} of frames, below the "
                            f"required {opts.min_agreement:.1%}; artifacts not written")
        say(f"setting keyword thresholds for <= {opts.target_fa_per_hour:g} FA/h on {opts.threshold_minutes:g} min "
            f"of validation-split audio (int8) ...", flush=True)
        op = calibrate(load_manifest(tmp), dataset, CalibrationOptions(opts.target_fa_per_hour, opts.threshold_minutes),
                       progress)
        manifest["postprocess"] = op.postprocess.to_dict()
        manifest["operating_point"] = op.section
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out_dir.exists():
            say(f"replacing existing {out_dir} (--force)", flush=True)
            shutil.rmtree(out_dir)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest
