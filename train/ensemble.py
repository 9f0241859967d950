"""Several trained models as one: `python -m train merge RUN RUN [RUN ...] --out DIR`.

Models of the same architecture trained with different seeds err on different inputs (measured on the synthetic
"jarvis" wake word: the mean of three seeds detects more real recordings than its best member; README, "The Pi size
and several seeds together"). `merge_models` builds one `RecurrentKWS` whose logits are exactly the mean of the
members' logits, so the ensemble streams, exports to int8 with its explicit state and runs on a device like any
other model:

- the recurrent layers sit side by side: hidden width N x H, every weight matrix block-diagonal per gate (member k
  owns hidden units k*H .. (k+1)*H of every gate), so no member sees another's state;
- each member's feature normalisation is folded into its own first layer (or input projection), relative to a
  shared normalisation, the mean of the members' (so the int8 input keeps the range the members had);
- the head averages: the members' head weights side by side, divided by N; the mean of their biases.

Averaging logits is a geometric mean of the posteriors, not their arithmetic mean; for the wake word both were
measured (README). The merged model's cost is that of a GRU of width N x H (dense in TFLite: the zero blocks are
multiplied too), so three `mcu` models make a Pi model, not an MCU one: the merged run is recorded as size `pi`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from edge.errors import UserError
from train.config import Cell, ModelConfig, ModelSize
from train.models import RecurrentKWS, build_model, model_size

#: gates stacked in PyTorch's fused recurrent weights (`weight_ih_l0` is [gates * hidden, input])
GATES = {Cell.GRU: 3, Cell.LSTM: 4, Cell.RNN: 1}
#: what members must share beyond the architecture: the labels, the front end and the detector
SHARED_META = ("labels", "frontend", "postprocess")


def merged_config(config: ModelConfig, members: int) -> ModelConfig:
    """The architecture of `members` models of `config` side by side (see the module docstring)."""
    if config.cell not in GATES:
        raise UserError(f"a {config.cell.value} network cannot be merged: its state is its own posterior, not a "
                        "hidden layer that can sit beside another's")
    if config.bidirectional:
        raise UserError("bidirectional models cannot be merged (they do not stream)")
    return replace(config, hidden=config.hidden * members, proj=config.proj * members, size=ModelSize.PI)


def _gate_rows(gate: int, member: int, hidden: int, total: int) -> slice:
    return slice(gate * total + member * hidden, gate * total + (member + 1) * hidden)


def _fold_normalisation(weight: torch.Tensor, bias: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                        shared_mean: torch.Tensor, shared_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W (x - m) / s as W' (x - m*) / s* + b': the member's normalisation (m, s) rewritten over the shared one."""
    w = weight * (shared_std / std)[None, :]
    b = bias + weight @ ((shared_mean - mean) / std)
    return w, b


def merge_models(models: Sequence[RecurrentKWS]) -> RecurrentKWS:
    """One model whose logits equal the mean of `models`' logits, frame by frame, for any state carried."""
    if len(models) < 2:
        raise UserError("merging needs at least two models")
    config = models[0].config
    if any(m.config != config for m in models[1:]):
        raise UserError("the models to merge must have the same architecture (cell, width, layers, projection, labels)")
    n, h, p = len(models), config.hidden, config.proj
    merged = build_model(merged_config(config, n))
    gates, total = GATES[config.cell], h * n
    shared_mean = torch.stack([m.feat_mean for m in models]).mean(0)
    shared_std = torch.stack([m.feat_std for m in models]).mean(0)
    params: dict[str, torch.Tensor] = {k: torch.zeros_like(v) for k, v in merged.state_dict().items()}
    params["feat_mean"], params["feat_std"] = shared_mean.clone(), shared_std.clone()
    with torch.no_grad():
        for k, m in enumerate(models):
            src = m.state_dict()
            first_w, first_b = ("proj.weight", "proj.bias") if p else ("rnn.weight_ih_l0", "rnn.bias_ih_l0")
            folded_w, folded_b = _fold_normalisation(src[first_w], src[first_b], m.feat_mean, m.feat_std,
                                                     shared_mean, shared_std)
            if p:
                rows = slice(k * p, (k + 1) * p)
                params["proj.weight"][rows] = folded_w
                params["proj.bias"][rows] = folded_b
            for layer in range(config.layers):
                for g in range(gates):
                    dst = _gate_rows(g, k, h, total)
                    own = slice(g * h, (g + 1) * h)
                    w_ih = folded_w if (layer == 0 and not p) else src[f"rnn.weight_ih_l{layer}"]
                    b_ih = folded_b if (layer == 0 and not p) else src[f"rnn.bias_ih_l{layer}"]
                    # the input side: the features (shared by all members) or the member's own units below
                    cols = slice(None) if (layer == 0 and not p) else slice(k * (p if layer == 0 else h),
                                                                            (k + 1) * (p if layer == 0 else h))
                    params[f"rnn.weight_ih_l{layer}"][dst, cols] = w_ih[own]
                    params[f"rnn.bias_ih_l{layer}"][dst] = b_ih[own]
                    params[f"rnn.weight_hh_l{layer}"][dst, k * h : (k + 1) * h] = src[f"rnn.weight_hh_l{layer}"][own]
                    params[f"rnn.bias_hh_l{layer}"][dst] = src[f"rnn.bias_hh_l{layer}"][own]
            params["head.weight"][:, k * h : (k + 1) * h] = src["head.weight"] / n
            params["head.bias"] += src["head.bias"] / n
    merged.load_state_dict(params)
    merged.eval()
    return merged


def _check_shared(metas: Sequence[dict[str, Any]], names: Sequence[str]) -> None:
    for key in SHARED_META:
        for meta, name in zip(metas[1:], names[1:]):
            if meta[key] != metas[0][key]:
                raise UserError(f"{name} has other {key} than {names[0]}: only models of one recipe can be merged")
    data = [(m["train_config"].get("recipe"), [Path(d).resolve() for d in m["train_config"].get("data") or []],
             m["train_config"].get("keywords")) for m in metas]
    if any(d != data[0] for d in data[1:]):
        raise UserError("the runs to merge were trained on different data (recipe, data folders or keywords); the "
                        "export checks and calibrates the merged model on that data, so it must be one")


def merge_runs(run_dirs: Sequence[Path], out: Path) -> dict[str, Any]:
    """Merge the run folders' models into a new run folder `out` (config.json, model.safetensors): the first run's
    training config with the merged architecture and `merged_from`, so `python -m export` treats it as any run."""
    from train.trainer import load_run

    runs = [load_run(Path(d)) for d in run_dirs]
    _check_shared([r.meta for r in runs], [str(d) for d in run_dirs])
    merged = merge_models([r.model for r in runs])
    # a self-check on features at the members' own scale: float32 rounding only (measured ~1e-6)
    rng = np.random.default_rng(0)
    probe = (merged.feat_mean.numpy() + merged.feat_std.numpy() * rng.standard_normal((200, merged.config.input_dim)))
    diff = max_logit_difference(merged, [r.model for r in runs], probe)
    if diff > 1e-4:
        raise RuntimeError(f"merged logits differ from the members' mean by {diff:.2e}: a bug in train.ensemble")
    meta = json.loads(json.dumps(runs[0].meta))
    meta["model"] = merged.config.to_dict()
    meta["train_config"]["model"] = merged.config.to_dict()
    meta["train_config"]["merged_from"] = [str(Path(d)) for d in run_dirs]
    meta["train_config"]["seed"] = [r.meta["train_config"].get("seed") for r in runs]
    meta["metrics"] = {"size": model_size(merged.config),
                       "members": [{"run": str(d), **{k: v for k, v in r.meta["metrics"].items() if k != "size"}}
                                   for d, r in zip(run_dirs, runs)]}
    _write_run(out, merged, meta)
    return meta


def _write_run(out: Path, model: RecurrentKWS, meta: dict[str, Any]) -> None:
    from safetensors.torch import save

    from edge.atomic import write_bytes_atomic, write_text_atomic
    from train.trainer import CHECKPOINT, CONFIG

    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out / CHECKPOINT, save({k: v.contiguous() for k, v in model.state_dict().items()}))
    write_text_atomic(out / CONFIG, json.dumps(meta, indent=2))


def max_logit_difference(merged: RecurrentKWS, models: Sequence[RecurrentKWS], features: np.ndarray) -> float:
    """Largest |merged logits - mean of the members' logits| over a feature sequence [T, F] (`merge_runs` checks it)."""
    x = torch.from_numpy(np.asarray(features, np.float32))[None]
    with torch.no_grad():
        want = torch.stack([m(x)[0] for m in models]).mean(0)
        got = merged(x)[0]
    return float((got - want).abs().max())
