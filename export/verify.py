"""Fidelity of exported models, measured on real held-out audio streamed with the state carried.

PyTorch float vs TFLite float32 / int8 / int16x8 (ai-edge-litert or the best available interpreter), and
TFLite int8 vs the TFLite Micro interpreter, each model free-running on its own state, as on a device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.datasets import Dataset
from edge.frontend import StreamingFrontend
from edge.interpreters import Runtime
from edge.manifest import load_manifest
from edge.model import StreamingModel
from export.longstream import build_long_stream
from export.trajectory import float_trajectory, split_state
from train.trainer import Run

#: PyTorch float vs TFLite float32: both float32, different op order; 1e-4 absolute on probabilities.
FLOAT_TOLERANCE = 1e-4


def run_variant(artifacts: Path, variant: str, feats: np.ndarray, runtime: Runtime = Runtime.AUTO,
                progress: bool = False) -> dict[str, np.ndarray]:
    """Stream frames through one exported variant: raw outputs, probabilities and dequantized states."""
    model = StreamingModel(load_manifest(artifacts), variant, runtime)
    raw, probs, states, state_q = [], [], [], []
    for f in tqdm(feats, desc=f"{variant} ({model.runtime.value})", disable=not progress, leave=False, unit="frame"):
        r = model.step_raw(f)
        raw.append(r)
        probs.append(model.to_probabilities(r))
        states.append(np.concatenate([v.reshape(-1) for v in model.dequantized_state().values()]))
        state_q.append(np.concatenate([v.reshape(-1) for v in model.state.tensors.values()]))
    return {"raw": np.asarray(raw), "probs": np.asarray(probs), "state": np.asarray(states),
            "state_q": np.asarray(state_q), "runtime": model.runtime.value,
            "state_names": list(model.dequantized_state())}


def _drift(err: np.ndarray) -> dict[str, float]:
    """Mean |state error| in the first and last tenth of the stream, and their difference."""
    n = max(1, len(err) // 10)
    first, last = float(err[:n].mean()), float(err[-n:].mean())
    return {"first_tenth": first, "last_tenth": last, "growth": last - first}


def _saturation(state_q: np.ndarray, dtype: str) -> float:
    lo, hi = (-128, 127) if dtype == "int8" else (-32768, 32767)
    return float(np.mean((state_q == lo) | (state_q == hi)))


def verify_artifacts(artifacts: Path, run: Run, dataset: Dataset, seconds: float, seed: int,
                     progress: bool = True) -> dict[str, Any]:
    stream = build_long_stream(dataset, "test", seconds, seed=seed + 7)
    feats = StreamingFrontend(run.frontend).process(stream.pcm)
    ref_probs, ref_states = float_trajectory(run.model, feats)
    ref_after = np.asarray(ref_states[1:] + [ref_states[-1]])[: len(feats) - 1]
    ref_arg = ref_probs.argmax(1)
    manifest = load_manifest(artifacts)
    out: dict[str, Any] = {"audio_seconds": round(stream.seconds, 1), "frames": int(len(feats)),
                           "source": "test split clips over test-split background noise"}
    results = {}
    ref_ordered: np.ndarray | None = None
    for variant in manifest.variants:
        res = run_variant(artifacts, variant, feats, progress=progress)
        results[variant] = res
        dp = np.abs(res["probs"] - ref_probs)
        entry = {
            "runtime": res["runtime"],
            "frame_argmax_agreement": float(np.mean(res["probs"].argmax(1) == ref_arg)),
            "max_abs_prob_diff": float(dp.max()),
            "mean_abs_prob_diff": float(dp.mean()),
        }
        if ref_ordered is None:  # once: the torch state is flattened kind-major (h0 h1 c0 c1), the model's in
            # manifest order (h0 c0 h1 c1), the same for every variant
            ref_ordered = np.asarray([np.concatenate([named[n].reshape(-1) for n in res["state_names"]])
                                      for named in (split_state(s, run.model.config) for s in ref_after)])
        err = np.abs(res["state"][:-1] - ref_ordered).mean(axis=1)
        entry["state_error"] = _drift(err)
        if variant == "float32":
            entry["within_tolerance"] = bool(dp.max() <= FLOAT_TOLERANCE)
            entry["tolerance"] = FLOAT_TOLERANCE
        else:
            entry["state_saturation_share"] = _saturation(res["state_q"], manifest.variant(variant).input("features")["dtype"])
        out[variant] = entry
    if "int8" in results:
        try:
            tflm = run_variant(artifacts, "int8", feats, Runtime.TFLM, progress=progress)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal: TFLM is optional on some hosts
            out["tflm_int8"] = {"error": str(exc).splitlines()[0]}
        else:
            ref = results["int8"]
            d = np.abs(tflm["raw"].astype(int) - ref["raw"].astype(int))
            ds = np.abs(tflm["state_q"].astype(int) - ref["state_q"].astype(int))
            out["tflm_int8"] = {
                "runtime": "tflm",
                "frame_argmax_agreement_vs_int8": float(np.mean(tflm["raw"].argmax(1) == ref["raw"].argmax(1))),
                "frame_argmax_agreement_vs_float": float(np.mean(tflm["probs"].argmax(1) == ref_arg)),
                "prob_values_differing_share": float(np.mean(d > 0)),
                "max_prob_step_diff": int(d.max()),
                "state_values_differing_share": float(np.mean(ds > 0)),
                "max_state_step_diff": int(ds.max()),
            }
    return out
