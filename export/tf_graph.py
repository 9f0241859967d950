"""The PyTorch cell math rebuilt in TensorFlow from the checkpoint's weights.

Only matmul (-> FULLY_CONNECTED), add, sub, mul, sigmoid (-> LOGISTIC), tanh and a final softmax are
used, so the converted model runs on ai-edge-litert, tflite-runtime, tf.lite and TFLite Micro alike.
Per-gate matrices are kept separate (no SPLIT/STRIDED_SLICE ops) and each gate gets its own quantization
range. Feature normalisation is folded into the first layer, so the model consumes raw front-end features.

Streaming form: inputs `features [1,F]` and one `[1,H]` tensor per recurrent state (`state_h<l>`, and
`state_c<l>` for LSTM); outputs `probs [1,C]` and the new states (`<state>_out`). A Jordan network's state is
its own posterior: one input `state_y0 [1,C]`, fed from the `probs` output itself (`state_pairs`), so in the
int8 model it has the softmax output's fixed quantization (scale 1/256, zero point -128) on both sides.
Window form (the non-streaming baseline): `features [1,T,F]` from a zero state -> `probs [1,C]` of the
last frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from export.tf_quiet import import_tensorflow
from train.models import Cell, ModelConfig, RecurrentKWS, state_name

tf = import_tensorflow()

#: The posterior output of the streaming model (and the state output of a Jordan network).
POSTERIOR_OUTPUT = "probs"


@dataclass
class LayerWeights:
    wx: dict[str, np.ndarray]  # gate -> [in, H] (x @ W form)
    bx: dict[str, np.ndarray]  # gate -> [H]: input-side bias plus hidden-side bias where they simply add
    wh: dict[str, np.ndarray]  # gate -> [S, H] from the state (S = H; a Jordan network's layer 0: S = classes)
    bh_n: np.ndarray | None  # GRU only: hidden-side bias of the candidate, inside r * (...)


@dataclass
class FoldedWeights:
    config: ModelConfig
    proj: tuple[np.ndarray, np.ndarray] | None
    layers: list[LayerWeights]
    head: tuple[np.ndarray, np.ndarray]

    def state_names(self) -> list[str]:
        return [state_name(k, l) for l in range(self.config.state_layers) for k in self.config.cell.state_names]

    def state_pairs(self) -> list[tuple[str, str]]:
        """(state input, the output that feeds it): `<state>_out`, or the posterior for a Jordan network."""
        feeds_back = self.config.cell.feeds_back_output
        return [(n, POSTERIOR_OUTPUT if feeds_back else f"{n}_out") for n in self.state_names()]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def fold_weights(model: RecurrentKWS) -> FoldedWeights:
    """Extract weights in export form, folding (x - mean) / std into the first linear map."""
    cfg = model.config
    if cfg.bidirectional:
        raise ValueError("bidirectional models need future frames and cannot be exported for streaming")
    mean, std = _np(model.feat_mean), _np(model.feat_std)

    def fold(w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # W (x - m)/s + b = (W/s) x + (b - W m / s); returned in x @ W form
        ws = w / std[None, :]
        return ws.T.copy(), b - ws @ mean

    proj = None
    if model.proj is not None:
        proj = fold(_np(model.proj.weight), _np(model.proj.bias))

    def input_side(l: int, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # the first layer sees the raw features unless a projection does: normalisation folded in there
        return fold(w, b) if l == 0 and proj is None else (w.T.copy(), b)

    layers = []
    for l in range(cfg.layers):
        w = {k: _np(v) for k, v in model.layer_weights(l).items()}
        if cfg.cell is Cell.JORDAN:  # one pre-activation; layer 0 also reads the fed-back posterior
            wx, bx = input_side(l, w["wx_a"], w["bx_a"])
            layers.append(LayerWeights({"a": wx}, {"a": bx}, {"a": w["wy_a"].T.copy()} if "wy_a" in w else {}, None))
            continue
        lw = LayerWeights({}, {}, {}, None)
        for g in cfg.cell.gate_names:
            bx = w[f"bx_{g}"] + (w[f"bh_{g}"] if not (cfg.cell is Cell.GRU and g == "n") else 0.0)
            lw.wx[g], lw.bx[g] = input_side(l, w[f"wx_{g}"], bx)
            lw.wh[g] = w[f"wh_{g}"].T.copy()
        if cfg.cell is Cell.GRU:
            lw.bh_n = w["bh_n"]
        complement = {Cell.GRU: "z", Cell.LSTM: "f"}.get(cfg.cell)
        if complement:  # sigmoid(-a) = 1 - sigmoid(a): export the gate's complement (see _cell_step)
            lw.wx[complement], lw.bx[complement], lw.wh[complement] = (
                -lw.wx[complement], -lw.bx[complement], -lw.wh[complement])
        layers.append(lw)
    head = (_np(model.head.weight).T.copy(), _np(model.head.bias))
    return FoldedWeights(cfg, proj, layers, head)


class _Consts:
    """float32 tf constants for the folded weights."""

    def __init__(self, fw: FoldedWeights) -> None:
        c = lambda a: tf.constant(np.asarray(a, dtype=np.float32))  # noqa: E731
        self.proj = (c(fw.proj[0]), c(fw.proj[1])) if fw.proj else None
        self.layers = [
            (
                {g: c(v) for g, v in lw.wx.items()},
                {g: c(v) for g, v in lw.bx.items()},
                {g: c(v) for g, v in lw.wh.items()},
                c(lw.bh_n) if lw.bh_n is not None else None,
            )
            for lw in fw.layers
        ]
        self.head = (c(fw.head[0]), c(fw.head[1]))


def _cell_step(cell: Cell, k: _Consts, layer: int, x, states: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    wx, bx, wh, bh_n = k.layers[layer]
    h = states["h"]
    pre = {g: tf.matmul(x, wx[g]) + bx[g] for g in wx}
    if cell is Cell.GRU:
        r = tf.sigmoid(pre["r"] + tf.matmul(h, wh["r"]))
        # u = 1 - z = sigmoid(-(pre_z)): the update gate's weights were negated in fold_weights, so u is
        # computed directly. int8 LOGISTIC outputs cannot reach 1.0 (max 255/256), so z*(h - n) would leak
        # 0.4 % of the state per step; u rounding to exactly 0 instead holds the state perfectly.
        u = tf.sigmoid(pre["z"] + tf.matmul(h, wh["z"]))
        n = tf.tanh(pre["n"] + r * (tf.matmul(h, wh["n"]) + bh_n))
        return {"h": h + u * (n - h)}
    if cell is Cell.RNN:
        return {"h": tf.tanh(pre["a"] + tf.matmul(h, wh["a"]))}
    i = tf.sigmoid(pre["i"] + tf.matmul(h, wh["i"]))
    # forget complement fbar = 1 - f (weights negated in fold_weights), for the same reason as GRU's u
    fbar = tf.sigmoid(pre["f"] + tf.matmul(h, wh["f"]))
    g = tf.tanh(pre["g"] + tf.matmul(h, wh["g"]))
    o = tf.sigmoid(pre["o"] + tf.matmul(h, wh["o"]))
    c = states["c"]
    c_new = c + (i * g - fbar * c)
    return {"h": o * tf.tanh(c_new), "c": c_new}


def _jordan_frame(k: _Consts, x, y) -> tf.Tensor:
    """h = tanh(x Wx + b + y Wy) in layer 0 (y: the previous posterior), tanh(h Wx + b) above; the posterior."""
    for wx, bx, wh, _ in k.layers:
        pre = tf.matmul(x, wx["a"]) + bx["a"]
        x = tf.tanh((pre + tf.matmul(y, wh["a"])) if wh else pre)
    return tf.nn.softmax(tf.matmul(x, k.head[0]) + k.head[1])


def _forward_frame(fw: FoldedWeights, k: _Consts, x, states: list[tf.Tensor]) -> tuple[tf.Tensor, list[tf.Tensor]]:
    cfg = fw.config
    if k.proj is not None:
        x = tf.nn.relu(tf.matmul(x, k.proj[0]) + k.proj[1])
    if cfg.cell is Cell.JORDAN:
        probs = _jordan_frame(k, x, states[0])
        return probs, [probs]
    names = cfg.cell.state_names
    new_states: list[tf.Tensor] = []
    for l in range(cfg.layers):
        st = {n: states[l * len(names) + j] for j, n in enumerate(names)}
        out = _cell_step(cfg.cell, k, l, x, st)
        new_states.extend(out[n] for n in names)
        x = out["h"]
    probs = tf.nn.softmax(tf.matmul(x, k.head[0]) + k.head[1])
    return probs, new_states


def step_function(fw: FoldedWeights) -> tuple[Callable, list[str]]:
    """Concrete tf.function for one streaming step, and the ordered state names."""
    k = _Consts(fw)
    names = fw.state_names()
    pairs = fw.state_pairs()
    F = fw.config.input_dim
    S = fw.config.state_width
    sig = [tf.TensorSpec([1, F], tf.float32, name="features")] + [tf.TensorSpec([1, S], tf.float32, name=n) for n in names]

    @tf.function(input_signature=sig)
    def step(features, *states):
        probs, new_states = _forward_frame(fw, k, features, list(states))
        out = {POSTERIOR_OUTPUT: probs}
        # a state fed from the posterior (Jordan network) is that output itself, not a second one
        out.update({o: s for (_, o), s in zip(pairs, new_states) if o != POSTERIOR_OUTPUT})
        return out

    return step.get_concrete_function(), names


def window_function(fw: FoldedWeights, frames: int) -> Callable:
    """Concrete tf.function scoring a whole window of `frames` frames from a zero state (unrolled)."""
    k = _Consts(fw)
    names = fw.state_names()
    F = fw.config.input_dim
    S = fw.config.state_width

    @tf.function(input_signature=[tf.TensorSpec([1, frames, F], tf.float32, name="features")])
    def window(features):
        states = [tf.zeros([1, S]) for _ in names]
        probs = None
        for t in range(frames):
            probs, states = _forward_frame(fw, k, features[:, t, :], states)
        return {POSTERIOR_OUTPUT: probs}

    return window.get_concrete_function()
