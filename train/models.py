"""Recurrent keyword spotters: Elman RNN, LSTM and GRU, each usable as a sequence model or one frame at a time.

`forward(features[B,T,F], state) -> (logits[B,T,C], state)` uses PyTorch's fused recurrent layers (fast
training). `step(frame[B,F], state) -> (logits[B,C], state)` spells out the cell with matrix products,
sigmoid, tanh, add, sub and mul only: exactly the math `export/` rebuilds from TFLite builtins
(FULLY_CONNECTED, ADD, SUB, MUL, LOGISTIC, TANH). Tests check the two agree.

State is a tuple of tensors shaped [layers, batch, hidden]: (h,) for GRU and RNN, (h, c) for LSTM.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import torch
from torch import nn

State = tuple[torch.Tensor, ...]


class Cell(str, enum.Enum):
    GRU = "gru"
    LSTM = "lstm"
    RNN = "rnn"  # Elman RNN with tanh

    @property
    def gates(self) -> int:
        return {Cell.GRU: 3, Cell.LSTM: 4, Cell.RNN: 1}[self]

    @property
    def state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self is Cell.LSTM else ("h",)

    @property
    def default_lr(self) -> float:
        """Peak learning rate that trains this cell (measured on the Speech Commands subset: an Elman RNN
        diverges at 3e-3 and learns at 1e-3; GRU and LSTM are best at 3e-3)."""
        return 1e-3 if self is Cell.RNN else 3e-3


class ModelSize(str, enum.Enum):
    """Named model sizes: a target device and the architecture that fits it (explicit flags override).

    * `mcu`: fits the firmware budget (int8 model <= 32 KB flash, <= 8 KB arena on a Cortex-M4).
    * `pi`: a Raspberry Pi size (up to ~250 k parameters): stacked, wider cells.
    """

    MCU = "mcu"
    PI = "pi"

    @property
    def preset(self) -> dict[str, int]:
        """hidden/layers/proj of this size (the cell is chosen separately)."""
        return dict(_SIZE_PRESETS[self])

    @property
    def default_epochs(self) -> int:
        """Epochs that keep a Speech Commands training (all shared data) within the time budget on a 2-core
        machine: 80 for `mcu` (~18 min), 40 for `pi` (an epoch costs ~3x as much)."""
        return {ModelSize.MCU: 80, ModelSize.PI: 40}[self]


_SIZE_PRESETS: dict[ModelSize, dict[str, int]] = {
    ModelSize.MCU: {"hidden": 64, "layers": 1, "proj": 0},
    ModelSize.PI: {"hidden": 128, "layers": 2, "proj": 0},
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a recurrent keyword spotter."""

    cell: Cell = Cell.GRU
    num_classes: int = 12
    input_dim: int = 40
    hidden: int = 64
    layers: int = 1
    #: Width of an optional input projection (Linear + ReLU) before the recurrent layers; 0 = none.
    proj: int = 0
    #: Bidirectional layers: offline scoring only, refused by the streaming export.
    bidirectional: bool = False
    #: The named size this architecture was made for (`ModelSize`), recorded in run and manifest.
    size: ModelSize = ModelSize.MCU

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", Cell(self.cell))
        object.__setattr__(self, "size", ModelSize(self.size))
        if not 1 <= self.layers <= 3:
            raise ValueError(f"layers must be 1..3, got {self.layers}")
        if self.hidden < 1 or self.num_classes < 2 or self.input_dim < 1 or self.proj < 0:
            raise ValueError(f"invalid model dimensions: {self}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cell"] = self.cell.value
        d["size"] = self.size.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        return cls(**dict(d))


_RNN_CLASSES = {Cell.GRU: nn.GRU, Cell.LSTM: nn.LSTM, Cell.RNN: nn.RNN}


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
        self.rnn = _RNN_CLASSES[config.cell](**kwargs)
        if config.cell is Cell.RNN:
            # An Elman RNN must hold what it heard through tens of silent frames; orthogonal recurrent
            # weights keep gradients from vanishing or exploding at the start (PyTorch's uniform init
            # did not learn at all on Speech Commands: 9 % validation accuracy, everything `_silence_`).
            for name, param in self.rnn.named_parameters():
                if name.startswith("weight_hh"):
                    nn.init.orthogonal_(param)
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(config.hidden * directions, config.num_classes)

    # ----------------------------------------------------------------- shared pieces
    def initial_state(self, batch: int = 1) -> State:
        c = self.config
        shape = (c.layers * (2 if c.bidirectional else 1), batch, c.hidden)
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
        x = self._prepare(features)
        if self.config.cell is Cell.LSTM:
            y, (h, c) = self.rnn(x, (state[0], state[1]))
            new_state: State = (h, c)
        else:
            y, h = self.rnn(x, state[0])
            new_state = (h,)
        return self.head(y), new_state

    # ----------------------------------------------------------------- streaming form
    def layer_weights(self, layer: int) -> dict[str, torch.Tensor]:
        """Per-gate weights of one layer, split the way the export uses them."""
        H = self.config.hidden
        w_ih = getattr(self.rnn, f"weight_ih_l{layer}")
        w_hh = getattr(self.rnn, f"weight_hh_l{layer}")
        b_ih = getattr(self.rnn, f"bias_ih_l{layer}")
        b_hh = getattr(self.rnn, f"bias_hh_l{layer}")
        out = {}
        names = {Cell.GRU: "rzn", Cell.LSTM: "ifgo", Cell.RNN: "a"}[self.config.cell]
        for k, g in enumerate(names):
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
    pre = {g: _fc(x, w[f"wx_{g}"], w[f"bx_{g}"] + w[f"bh_{g}"]) + _fc(h, w[f"wh_{g}"]) for g in "ifgo"}
    i, f, o = torch.sigmoid(pre["i"]), torch.sigmoid(pre["f"]), torch.sigmoid(pre["o"])
    g = torch.tanh(pre["g"])
    c_new = f * c + i * g
    return o * torch.tanh(c_new), c_new


def rnn_cell(x: torch.Tensor, h: torch.Tensor, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Elman RNN: h' = tanh(Wx x + bx + Wh h + bh)."""
    return torch.tanh(_fc(x, w["wx_a"], w["bx_a"] + w["bh_a"]) + _fc(h, w["wh_a"]))


MODEL_REGISTRY: dict[str, Cell] = {c.value: c for c in Cell}


def build_model(config: ModelConfig) -> RecurrentKWS:
    return RecurrentKWS(config)


def model_size(config: ModelConfig) -> dict[str, int]:
    """Parameters and multiply-accumulates per frame, counted from the architecture."""
    dirs = 2 if config.bidirectional else 1
    H, G = config.hidden, config.cell.gates
    params = 0
    macs = 0
    rnn_in = config.input_dim
    if config.proj:
        params += config.input_dim * config.proj + config.proj
        macs += config.input_dim * config.proj
        rnn_in = config.proj
    for layer in range(config.layers):
        inp = rnn_in if layer == 0 else H * dirs
        per_dir_params = G * H * (inp + H) + 2 * G * H
        per_dir_macs = G * H * (inp + H)
        # elementwise products inside the cell (GRU: r*., z*.; LSTM: f*c, i*g, o*tanh)
        per_dir_macs += {Cell.GRU: 2 * H, Cell.LSTM: 3 * H, Cell.RNN: 0}[config.cell]
        params += dirs * per_dir_params
        macs += dirs * per_dir_macs
    params += H * dirs * config.num_classes + config.num_classes
    macs += H * dirs * config.num_classes
    return {"params": params, "macs_per_frame": macs}
