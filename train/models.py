"""Recurrent keyword spotters: Elman RNN, LSTM, GRU and Jordan network, each usable as a sequence model or one
frame at a time.

`forward(features[B,T,F], state) -> (logits[B,T,C], state)` uses PyTorch's fused recurrent layers (fast
training); the Jordan network, which has no fused layer, computes its input projections for all frames in
one matrix product and loops over time only for the recurrence. `step(frame[B,F], state) -> (logits[B,C],
state)` spells out the cell with matrix products, sigmoid, tanh, add, sub, mul and softmax only: exactly the
math `export/` rebuilds from TFLite builtins (FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH, SOFTMAX). Tests
check the two agree.

State is a tuple of tensors shaped [state_layers, batch, state_width] (`ModelConfig.state_layers/state_width`):
(h,) for GRU and RNN, (h, c) for LSTM, each [layers, batch, hidden]; (y,) for the Jordan network, [1, batch,
num_classes]: the softmax posterior of the previous frame, which is what it feeds back.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from train.config import Cell, ModelConfig, ModelSize, state_name  # noqa: F401 (ModelSize, state_name: re-exported)

State = tuple[torch.Tensor, ...]


_RNN_CLASSES = {Cell.GRU: nn.GRU, Cell.LSTM: nn.LSTM, Cell.RNN: nn.RNN}


class JordanLayers(nn.Module):
    """The hidden layers of a Jordan network. Layer 0 sees the input and the fed-back posterior of the previous
    frame (`feedback`, no bias: layer 0's input bias covers it); deeper layers see the layer below and have no
    recurrence of their own, so the posterior stays the only state however deep the network is."""

    def __init__(self, input_size: int, hidden: int, layers: int, classes: int) -> None:
        super().__init__()
        self.inputs = nn.ModuleList(nn.Linear(input_size if l == 0 else hidden, hidden) for l in range(layers))
        self.feedback = nn.Linear(classes, hidden, bias=False)


class RecurrentKWS(nn.Module):
    """Feature normalisation -> [projection] -> recurrent layers -> per-frame linear classifier."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("feat_mean", torch.zeros(config.input_dim))
        self.register_buffer("feat_std", torch.ones(config.input_dim))
        rnn_in = config.input_dim
        self.proj: nn.Linear | None = None
        if config.proj:
            self.proj = nn.Linear(config.input_dim, config.proj)
            rnn_in = config.proj
        kwargs: dict[str, Any] = dict(
            input_size=rnn_in,
            hidden_size=config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=config.bidirectional,
        )
        if config.cell is Cell.RNN:
            kwargs["nonlinearity"] = "tanh"
        self.rnn: nn.Module = (JordanLayers(rnn_in, config.hidden, config.layers, config.num_classes)
                               if config.cell is Cell.JORDAN else _RNN_CLASSES[config.cell](**kwargs))
        if config.cell is Cell.RNN:
            # An Elman RNN must hold what it heard through tens of silent frames; orthogonal recurrent
            # weights keep gradients from vanishing or exploding at the start (PyTorch's uniform init
            # did not learn at all on Speech Commands: 9 % validation accuracy, everything `_silence_`).
            for name, param in self.rnn.named_parameters():
                if name.startswith("weight_hh"):
                    nn.init.orthogonal_(param)
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(config.hidden * directions, config.num_classes)
        #: training-time dropout rate (`TrainConfig.dropout`, set by the trainer) on the recurrent layers' input and
        #: output in the sequence forms (`forward`, `forward_with_loop_gain`) while in training mode; `step` and
        #: evaluation never drop
        self.dropout = 0.0

    # ----------------------------------------------------------------- shared pieces
    def initial_state(self, batch: int = 1) -> State:
        c = self.config
        shape = (c.state_layers, batch, c.state_width)
        device = self.head.weight.device
        return tuple(torch.zeros(shape, device=device) for _ in c.cell.state_names)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.feat_mean) / self.feat_std
        if self.proj is not None:
            x = torch.relu(self.proj(x))
        return x

    # ----------------------------------------------------------------- sequence form
    def forward(self, features: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if state is None:
            state = self.initial_state(features.shape[0])
        x = self._drop(self._prepare(features))
        if self.config.cell is Cell.JORDAN:
            logits, new_jordan_state, _ = self._jordan_forward(x, state[0][0])
            return logits, new_jordan_state
        if self.config.cell is Cell.LSTM:
            y, (h, c) = self.rnn(x, (state[0], state[1]))
            new_state: State = (h, c)
        else:
            y, h = self.rnn(x, state[0])
            new_state = (h,)
        return self.head(self._drop(y)), new_state

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(x, self.dropout, self.training) if self.dropout > 0 else x

    def _jordan_forward(self, x: torch.Tensor, y: torch.Tensor,
                        probe: torch.Generator | None = None) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """The Jordan recurrence over [B,T,.] from the posterior `y` [B,C]: layer 0's input side for every frame
        in one matrix product, then a loop over time for what depends on the previous frame. With `probe`, also
        the loop gain per frame [B,T] (see `forward_with_loop_gain`)."""
        layers = self.rnn
        assert isinstance(layers, JordanLayers)
        if x.shape[1] == 0:
            raise ValueError("a sequence needs at least one frame")
        x_side = layers.inputs[0](x)
        frames, gains = [], []
        for t in range(x.shape[1]):
            h = torch.tanh(x_side[:, t] + layers.feedback(y))
            dh = None
            if probe is not None:  # forward-mode derivative along a random unit direction v of y_{t-1}
                v = torch.randn(y.shape, generator=probe)
                dh = (1 - h * h) * layers.feedback(v / v.norm(dim=-1, keepdim=True))
            for layer in layers.inputs[1:]:
                h = torch.tanh(layer(h))
                if dh is not None:
                    dh = (1 - h * h) * _fc(dh, layer.weight)
            logits = self.head(h)
            y = torch.softmax(logits, dim=-1)
            if dh is not None:
                dl = _fc(dh, self.head.weight)
                dy = y * (dl - (y * dl).sum(-1, keepdim=True))
                gains.append(dy.norm(dim=-1) * math.sqrt(y.shape[-1]))
            if self.training and self.config.feedback_levels:
                y = on_grid(y, self.config.feedback_levels)
            frames.append(logits)
        return torch.stack(frames, dim=1), (y[None],), (torch.stack(gains, dim=1) if gains else None)

    def forward_with_loop_gain(self, features: torch.Tensor, state: State,
                               probe: torch.Generator) -> tuple[torch.Tensor, State, torch.Tensor]:
        """Jordan network: `forward`, plus per frame [B,T] the feedback loop's gain |J v| sqrt(C), J = dy_t /
        dy_{t-1} (C x C, through the hidden layers and the softmax) and v a random unit vector: its square is an
        unbiased estimate of |J|_F^2, which bounds the spectral norm. Where the gain exceeds 1 the loop amplifies
        a small difference in the fed-back posterior (int8 rounding) from frame to frame."""
        if self.config.cell is not Cell.JORDAN:
            raise ValueError("the loop gain is a Jordan network's")
        logits, new_state, gains = self._jordan_forward(self._drop(self._prepare(features)), state[0][0], probe)
        assert gains is not None
        return logits, new_state, gains

    # ----------------------------------------------------------------- streaming form
    def layer_weights(self, layer: int) -> dict[str, torch.Tensor]:
        """Per-gate weights of one layer, split the way the export uses them. A Jordan network's layer has one
        pre-activation `a`: `wx_a`, `bx_a`, and in layer 0 the posterior feedback `wy_a` [hidden, classes]."""
        if isinstance(self.rnn, JordanLayers):
            linear = self.rnn.inputs[layer]
            out = {"wx_a": linear.weight, "bx_a": linear.bias}
            return {**out, "wy_a": self.rnn.feedback.weight} if layer == 0 else out
        H = self.config.hidden
        w_ih = getattr(self.rnn, f"weight_ih_l{layer}")
        w_hh = getattr(self.rnn, f"weight_hh_l{layer}")
        b_ih = getattr(self.rnn, f"bias_ih_l{layer}")
        b_hh = getattr(self.rnn, f"bias_hh_l{layer}")
        out = {}
        for k, g in enumerate(self.config.cell.gate_names):
            sl = slice(k * H, (k + 1) * H)
            out[f"wx_{g}"], out[f"wh_{g}"] = w_ih[sl], w_hh[sl]
            out[f"bx_{g}"], out[f"bh_{g}"] = b_ih[sl], b_hh[sl]
        return out

    def step(self, frame: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if self.config.bidirectional:
            raise ValueError("a bidirectional model needs future frames and cannot run one frame at a time")
        if state is None:
            state = self.initial_state(frame.shape[0])
        x = self._prepare(frame)
        if self.config.cell is Cell.JORDAN:
            y = state[0][0]
            for layer in range(self.config.layers):
                x = jordan_layer(x, y if layer == 0 else None, self.layer_weights(layer))
            logits = self.head(x)
            return logits, (torch.softmax(logits, dim=-1)[None],)
        hs, cs = [], []
        for layer in range(self.config.layers):
            w = self.layer_weights(layer)
            h = state[0][layer]
            if self.config.cell is Cell.GRU:
                h = gru_cell(x, h, w)
            elif self.config.cell is Cell.RNN:
                h = rnn_cell(x, h, w)
            else:
                h, c = lstm_cell(x, h, state[1][layer], w)
                cs.append(c)
            hs.append(h)
            x = h
        new_state: State = (torch.stack(hs),) + ((torch.stack(cs),) if cs else ())
        return self.head(x), new_state


def _fc(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    y = x @ w.T
    return y + b if b is not None else y


def gru_cell(x: torch.Tensor, h: torch.Tensor, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """PyTorch GRU: r,z = sigmoid(...); n = tanh(Wx x + bx + r*(Wh h + bh)); h' = n + z*(h - n)."""
    r = torch.sigmoid(_fc(x, w["wx_r"], w["bx_r"] + w["bh_r"]) + _fc(h, w["wh_r"]))
    z = torch.sigmoid(_fc(x, w["wx_z"], w["bx_z"] + w["bh_z"]) + _fc(h, w["wh_z"]))
    n = torch.tanh(_fc(x, w["wx_n"], w["bx_n"]) + r * (_fc(h, w["wh_n"]) + w["bh_n"]))
    return n + z * (h - n)


def lstm_cell(
    x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch LSTM: c' = f*c + i*g; h' = o*tanh(c')."""
    pre = {g: _fc(x, w[f"wx_{g}"], w[f"bx_{g}"] + w[f"bh_{g}"]) + _fc(h, w[f"wh_{g}"]) for g in Cell.LSTM.gate_names}
    i, f, o = torch.sigmoid(pre["i"]), torch.sigmoid(pre["f"]), torch.sigmoid(pre["o"])
    g = torch.tanh(pre["g"])
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


def rnn_cell(x: torch.Tensor, h: torch.Tensor, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Elman RNN: h' = tanh(Wx x + bx + Wh h + bh)."""
    return torch.tanh(_fc(x, w["wx_a"], w["bx_a"] + w["bh_a"]) + _fc(h, w["wh_a"]))


def on_grid(p: torch.Tensor, levels: int) -> torch.Tensor:
    """`p` rounded to the nearest k / levels, k in 0..levels-1 (the int8 softmax output: (q + 128) / 256), with
    the identity's gradient (straight-through estimator)."""
    q = torch.clamp(torch.round(p * levels), 0, levels - 1) / levels
    return p + (q - p).detach()


def jordan_layer(x: torch.Tensor, y: torch.Tensor | None, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One Jordan hidden layer: h = tanh(Wx x + b + Wy y) with the fed-back posterior y (layer 0), else
    h = tanh(Wx x + b)."""
    pre = _fc(x, w["wx_a"], w["bx_a"])
    return torch.tanh((pre + _fc(y, w["wy_a"])) if y is not None else pre)


MODEL_REGISTRY: dict[str, Cell] = {c.value: c for c in Cell}


def build_model(config: ModelConfig) -> RecurrentKWS:
    return RecurrentKWS(config)


def _jordan_size(config: ModelConfig, rnn_in: int) -> tuple[int, int]:
    """(params, MACs) of a Jordan network's hidden layers and its posterior feedback."""
    H, C = config.hidden, config.num_classes
    params = macs = C * H  # feedback, no bias
    for layer in range(config.layers):
        inp = rnn_in if layer == 0 else H
        params += inp * H + H
        macs += inp * H
    return params, macs


def _recurrent_size(config: ModelConfig, rnn_in: int) -> tuple[int, int]:
    """(params, MACs) of the GRU/LSTM/Elman layers, both directions where bidirectional."""
    dirs = 2 if config.bidirectional else 1
    H, G = config.hidden, config.cell.gates
    params = macs = 0
    for layer in range(config.layers):
        inp = rnn_in if layer == 0 else H * dirs
        per_dir_params = G * H * (inp + H) + 2 * G * H
        per_dir_macs = G * H * (inp + H)
        # elementwise products inside the cell (GRU: r*., z*.; LSTM: f*c, i*g, o*tanh)
        per_dir_macs += {Cell.GRU: 2 * H, Cell.LSTM: 3 * H, Cell.RNN: 0}[config.cell]
        params += dirs * per_dir_params
        macs += dirs * per_dir_macs
    return params, macs


def model_size(config: ModelConfig) -> dict[str, int]:
    """Parameters and multiply-accumulates per frame, counted from the architecture."""
    dirs = 2 if config.bidirectional else 1
    params = 0
    macs = 0
    rnn_in = config.input_dim
    if config.proj:
        params += config.input_dim * config.proj + config.proj
        macs += config.input_dim * config.proj
        rnn_in = config.proj
    p, m = (_jordan_size if config.cell is Cell.JORDAN else _recurrent_size)(config, rnn_in)
    params += p + config.hidden * dirs * config.num_classes + config.num_classes
    macs += m + config.hidden * dirs * config.num_classes
    return {"params": params, "macs_per_frame": macs}
