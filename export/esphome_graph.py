"""The recurrent model rebuilt for ESPHome's `micro_wake_word`: state in resource variables, one wake word's
probability out, and only the ops the component registers (`export.esphome_contract.ESPHOME_OPS`).

Same folded weights as `export.tf_graph` (feature normalisation folded in, gate complements), with three
rewrites, because the component registers no TANH, SUB or SOFTMAX:

* tanh(x) = 2 sigmoid(2x) - 1: the factor 2 is folded into the gate's weights and biases where x is a linear map
  (GRU candidate, Elman RNN, LSTM cell input); the LSTM's tanh(c) multiplies c by 2 (MUL).
* a - b = a + (-1) b (MUL by a constant, then ADD).
* softmax_k = sigmoid(-LSE_{j != k}(l_j - l_k)): the differences l_j - l_k are one FULLY_CONNECTED (weight columns
  subtracted offline); a two-label model needs no LSE at all. More labels are reduced pairwise with
  LSE(a, b) = max(a, b) + log(1 + exp(-|a - b|)), the max as MAX_POOL_2D, |a - b| = 2 max(a, b) - a - b, and
  log(1 + exp(-t)) ~ 2 ln2 sigmoid(-beta t) (`softplus_tail_fit`: beta fitted for the smallest worst-case error,
  0.015 in the logit, i.e. at most 0.004 in the probability per reduction step, ~1 uint8 step).

Streaming form: input `features [1, 1, F]` (one front-end frame; ESPHome calls the middle dimension the stride),
output `probability [1, 1]`. A Jordan network (its state is the full softmax posterior) is refused.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

from export.tf_graph import FoldedWeights
from export.tf_quiet import import_tensorflow
from train.models import Cell

tf = import_tensorflow()

#: The name of the model's only output.
PROBABILITY_OUTPUT = "probability"
#: Gates whose activation is tanh (computed as 2 sigmoid(2x) - 1: their weights are doubled).
_TANH_GATES = {Cell.GRU: "n", Cell.RNN: "a", Cell.LSTM: "g"}


@functools.lru_cache(maxsize=1)
def softplus_tail_fit() -> tuple[float, float]:
    """(beta, worst error) of log(1 + exp(-t)) ~ 2 ln2 sigmoid(-beta t) over t >= 0 (exact at t = 0), beta chosen
    on a grid for the smallest maximum absolute error."""
    t = np.linspace(0.0, 40.0, 4001)
    exact = np.log1p(np.exp(-t))
    betas = np.linspace(0.5, 2.5, 2001)
    errors = [float(np.abs(exact - 2 * math.log(2) / (1 + np.exp(b * t))).max()) for b in betas]
    i = int(np.argmin(errors))
    return float(betas[i]), errors[i]


def _c(a: np.ndarray | float):
    return tf.constant(np.asarray(a, dtype=np.float32))


def _neg(x):
    return tf.multiply(x, _c(-1.0))


def _tanh_from_doubled(x2):
    """tanh(x) given x2 = 2x: 2 sigmoid(x2) - 1."""
    return tf.add(tf.multiply(tf.sigmoid(x2), _c(2.0)), _c(-1.0))


class _Weights:
    """float32 constants of the folded weights, tanh gates doubled."""

    def __init__(self, fw: FoldedWeights, keyword_index: int) -> None:
        cell = fw.config.cell
        tg = _TANH_GATES[cell]
        k2 = lambda g: 2.0 if g == tg else 1.0  # noqa: E731
        self.proj = (_c(fw.proj[0]), _c(fw.proj[1])) if fw.proj else None
        self.layers = [({g: _c(k2(g) * v) for g, v in lw.wx.items()}, {g: _c(k2(g) * v) for g, v in lw.bx.items()},
                        {g: _c(k2(g) * v) for g, v in lw.wh.items()},
                        _c(2.0 * lw.bh_n) if lw.bh_n is not None else None) for lw in fw.layers]
        w, b = fw.head
        others = [j for j in range(w.shape[1]) if j != keyword_index]
        #: one [H, 1] map per other label: its logit minus the keyword's
        self.diffs = [(_c(w[:, [j]] - w[:, [keyword_index]]), _c(b[[j]] - b[[keyword_index]])) for j in others]


def _cell(cell: Cell, wt: _Weights, layer: int, x, st: dict) -> dict:
    wx, bx, wh, bh_n = wt.layers[layer]
    h = st["h"]
    pre = {g: tf.matmul(x, wx[g]) + bx[g] for g in wx}
    if cell is Cell.GRU:
        r = tf.sigmoid(pre["r"] + tf.matmul(h, wh["r"]))
        u = tf.sigmoid(pre["z"] + tf.matmul(h, wh["z"]))  # the update gate's complement (see export.tf_graph)
        n = _tanh_from_doubled(pre["n"] + r * (tf.matmul(h, wh["n"]) + bh_n))
        return {"h": h + u * (n + _neg(h))}
    if cell is Cell.RNN:
        return {"h": _tanh_from_doubled(pre["a"] + tf.matmul(h, wh["a"]))}
    i = tf.sigmoid(pre["i"] + tf.matmul(h, wh["i"]))
    fbar = tf.sigmoid(pre["f"] + tf.matmul(h, wh["f"]))  # forget complement
    g = _tanh_from_doubled(pre["g"] + tf.matmul(h, wh["g"]))
    o = tf.sigmoid(pre["o"] + tf.matmul(h, wh["o"]))
    c = st["c"]
    c_new = c + (i * g + _neg(fbar * c))
    return {"h": o * _tanh_from_doubled(tf.multiply(c_new, _c(2.0))), "c": c_new}


def _max2(a, b):
    """max(a, b) of two [1, 1] tensors as MAX_POOL_2D over both."""
    pair = tf.reshape(tf.concat([a, b], axis=1), [1, 1, 2, 1])
    return tf.reshape(tf.nn.max_pool2d(pair, ksize=[1, 2], strides=[1, 2], padding="VALID"), [1, 1])


def _lse2(a, b):
    """log(exp(a) + exp(b)) ~ m + 2 ln2 sigmoid(-beta (2m - a - b)), m = max(a, b)."""
    beta, _ = softplus_tail_fit()
    m = _max2(a, b)
    gap = tf.multiply(m, _c(2.0)) + _neg(a + b)
    return m + tf.multiply(tf.sigmoid(tf.multiply(gap, _c(-beta))), _c(2.0 * math.log(2.0)))


def _probability(wt: _Weights, h):
    """The keyword's softmax probability: sigmoid(-LSE over the other labels of (l_j - l_k))."""
    terms = [tf.matmul(h, w) + b for w, b in wt.diffs]
    while len(terms) > 1:  # pairwise reduction
        terms = [_lse2(terms[i], terms[i + 1]) if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return tf.sigmoid(_neg(terms[0]))


class EsphomeModule(tf.Module):
    """The streaming step with its state in `tf.Variable`s (zero-initialised: the model's reset state)."""

    def __init__(self, fw: FoldedWeights, keyword_index: int) -> None:
        super().__init__()
        cfg = fw.config
        if cfg.cell is Cell.JORDAN:
            raise ValueError("a Jordan network feeds back its full softmax posterior, which ESPHome's op set "
                             "(no SOFTMAX, no EXP) cannot compute")
        self.fw = fw
        self.wt = _Weights(fw, keyword_index)
        self.names = fw.state_names()
        self.states = [tf.Variable(tf.zeros([1, cfg.state_width]), name=n, trainable=False) for n in self.names]

    def step(self, features):
        cfg = self.fw.config
        x = tf.reshape(features, [1, cfg.input_dim])
        if self.wt.proj is not None:  # the converter fuses the ReLU into FULLY_CONNECTED (no RELU op)
            x = tf.nn.relu(tf.matmul(x, self.wt.proj[0]) + self.wt.proj[1])
        kinds = cfg.cell.state_names
        for l in range(cfg.layers):
            st = {k: self.states[l * len(kinds) + j].read_value() for j, k in enumerate(kinds)}
            out = self._cell(l, x, st)
            for j, k in enumerate(kinds):
                self.states[l * len(kinds) + j].assign(out[k])
            x = out["h"]
        return {PROBABILITY_OUTPUT: _probability(self.wt, x)}

    def _cell(self, layer: int, x, st: dict) -> dict:
        return _cell(self.fw.config.cell, self.wt, layer, x, st)


def esphome_function(module: EsphomeModule, stride: int = 1) -> Callable:
    """The concrete tf.function of one inference: features [1, stride, F] -> probability [1, 1]."""
    if stride != 1:
        raise ValueError("the recurrent model consumes one front-end frame per step (stride 1)")
    spec = tf.TensorSpec([1, stride, module.fw.config.input_dim], tf.float32, name="features")
    return tf.function(module.step, input_signature=[spec]).get_concrete_function()
