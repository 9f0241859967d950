"""The plain configuration of a training run, torch-free so that the CLIs (`train.cli`'s defaults) and the export
can read it without importing torch: the recurrent cells (`Cell`: gate letters, state kinds, `state_name`,
`STATE_BOUNDS`), the named sizes, `ModelConfig` (re-exported by `train.models`) and `TrainConfig` (re-exported by
`train.trainer`)."""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from edge.datasets import Recipe, recorded_data_dirs
from edge.frontend import FrontendConfig
from edge.postprocess import PostprocessConfig
from train.selection import Selection
from train.streams import StreamConfig


class Cell(str, enum.Enum):
    GRU = "gru"
    LSTM = "lstm"
    RNN = "rnn"  # Elman RNN with tanh
    #: Jordan network: tanh hidden layer(s) fed by the input and by the previous frame's softmax posterior.
    JORDAN = "jordan"

    @property
    def gate_names(self) -> str:
        """One letter per gate (per pre-activation), in PyTorch's weight order: GRU r, z, n; LSTM i, f, g, o; the
        Elman RNN and the Jordan network one pre-activation `a`. The weights of gate g are `wx_g`, `bx_g`, ...
        (`RecurrentKWS.layer_weights`), here and in the export."""
        return {Cell.GRU: "rzn", Cell.LSTM: "ifgo"}.get(self, "a")

    @property
    def gates(self) -> int:
        return len(self.gate_names)

    @property
    def state_names(self) -> tuple[str, ...]:
        """The kinds of state the cell carries (h, and c for an LSTM; y for a Jordan network): see `state_name`."""
        return {Cell.LSTM: ("h", "c"), Cell.JORDAN: ("y",)}.get(self, ("h",))

    @property
    def feeds_back_output(self) -> bool:
        """The state is the model's own posterior output (Jordan network), not a hidden layer."""
        return self is Cell.JORDAN

    @property
    def default_lr(self) -> float:
        """Peak learning rate that trains this cell (measured on the Speech Commands subset: an Elman RNN
        diverges at 3e-3 and learns at 1e-3; GRU and LSTM are best at 3e-3; a Jordan network trains at 3e-3,
        its gradient norms below 1 in short runs: its recurrence passes through a softmax)."""
        return 1e-3 if self is Cell.RNN else 3e-3

    def lr_at(self, batch: int) -> float:
        """Peak learning rate for `batch` parallel stream rows per step: `default_lr` (measured at LR_BATCH rows)
        times sqrt(batch / LR_BATCH), the square-root rule for Adam, whose gradient noise falls as the batch grows.
        Measured on Speech Commands (GRU, both shared folders): 128 rows at 6e-3 train without divergence (4-12 % of
        the steps clipped against 65-93 % with 32 rows at 3e-3) and reach 79.2 % on test after 48 epochs (8.5 min)."""
        return self.default_lr * math.sqrt(batch / LR_BATCH)


#: The batch at which `Cell.default_lr` was measured (`Cell.lr_at` scales from it).
LR_BATCH = 32


def state_name(kind: str, layer: int) -> str:
    """The name of state `kind` (one of `Cell.state_names`) of `layer` wherever the state is a named tensor (TFLite
    and ONNX inputs, the manifest, the firmware): `state_<kind><layer>`, e.g. `state_h0`."""
    return f"{state_prefix(kind)}{layer}"


def state_prefix(kind: str) -> str:
    """What the names of every layer's state `kind` start with (`state_name` less the layer), e.g. `state_h`."""
    return f"state_{kind}"


#: State kinds bounded by construction (`Cell.state_names`): (lowest, highest) real value. The hidden state h of
#: the GRU, LSTM and Elman RNN is in [-1, 1] (a tanh, o * tanh(c), or a convex mix of a tanh and the previous h);
#: a Jordan network's fed-back posterior y in [0, 1] (a softmax). An LSTM's cell state c is unbounded.
STATE_BOUNDS: dict[str, tuple[float, float]] = {"h": (-1.0, 1.0), "y": (0.0, 1.0)}


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
    def schedule(self) -> Schedule:
        """How a Speech Commands training of this size runs (`Schedule`, `_SCHEDULES`): the `python -m train`
        defaults for every recipe but `synthetic`."""
        return _SCHEDULES[self]


@dataclass(frozen=True)
class Schedule:
    """The pace of a training run: `epochs` (the one-cycle learning-rate schedule spans them), `batch` (parallel
    stream rows per step; the peak learning rate follows it, `Cell.lr_at`), `views` (augmented stream
    realisations, cached) and `patience` (early stop after that many epochs without a validation gain)."""

    epochs: int
    batch: int
    views: int
    patience: int


#: A run that names no schedule: the synthetic recipes' batch, views and patience (their epochs are
#: `train.cli.WAKE_EPOCHS` / `SYNTH_EPOCHS`) and the trainings the pipeline starts itself (the real-speech base
#: model of `--init-from auto`); also the `pi` size's Speech Commands schedule.
BASE_SCHEDULE = Schedule(epochs=64, batch=32, views=6, patience=20)

#: Speech Commands schedules. `mcu`: 128 rows a step instead of 32. The small GRU's step is latency-bound on a
#: CPU, so an epoch takes ~9 s instead of ~24 s (the same frames in a quarter of the steps), and the issue's time
#: budget (30 min of `make export`) buys 140 epochs instead of 64, with 8 views (~36 s to build each one on the
#: other core; more would hold up the first epochs). Early stop waits 40 epochs: with 150 epochs the validation
#: score once rose only after 26. Measured with both shared folders, seed 0, standard figure on test: 79.9 ->
#: 82.9 % int8 with 140 epochs (validation 88.3 -> 90.6 %), 84.1 % in a run of 150. `pi` keeps 32 rows and 64
#: epochs: its GRU-128 steps only ~1.3 x faster with 128 rows (~19 s an epoch against ~25 s), and 96 epochs in
#: its 40-minute budget gave 82.6 % int8 on test against 83.5 % (seed 0; validation 89.6 against 88.1 %): no
#: gain beyond the spread of two seeds (81.1 % for seed 1). README, "The schedule".
_SCHEDULES: dict[ModelSize, Schedule] = {
    ModelSize.MCU: Schedule(epochs=140, batch=128, views=8, patience=40),
    ModelSize.PI: BASE_SCHEDULE,
}


#: `mcu`: a 32-wide input projection (Linear + ReLU) before the GRU-64 costs no parameters (20,908 against 21,132
#: without it: the recurrent layer's input side shrinks from 40 to 32) and adds a per-frame non-linearity. Measured
#: (GRU-64, 24 epochs, 3 views, both Speech Commands folders, seeds 0/1/2; standard figure validation / test):
#: without it 84.0/75.8, 82.0/68.3, 83.9/72.4 %, with it 84.3/78.5, 82.9/74.7, 81.4/75.4 % (test +4.0 pp mean,
#: better for every seed; validation -0.4 pp); README, "Models and training".
#: `pi`: a 64-wide projection before one GRU-128 (78,668 parameters). Against the 2 x 128 GRU before (165,900),
#: measured with `make export RECIPE=speech_commands DATA=<both folders> SIZE=pi`: standard figure on test
#: 76.3 -> 81.1 % int8 (validation 88.1 -> 88.3 %), 33.8 -> 24.4 min: one layer steps ~3 x faster, so it gets 48
#: epochs instead of 24 in less time, and 64 (83.5 % int8, 31.4 min) within the 40-minute budget (README,
#: "Measured numbers").
_SIZE_PRESETS: dict[ModelSize, dict[str, int]] = {
    ModelSize.MCU: {"hidden": 64, "layers": 1, "proj": 32},
    ModelSize.PI: {"hidden": 128, "layers": 1, "proj": 64},
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a recurrent keyword spotter."""

    cell: Cell = Cell.GRU
    num_classes: int = 12
    input_dim: int = 40
    #: hidden/layers/proj default to the `mcu` size's preset (the default `size`)
    hidden: int = _SIZE_PRESETS[ModelSize.MCU]["hidden"]
    layers: int = _SIZE_PRESETS[ModelSize.MCU]["layers"]
    #: Width of an optional input projection (Linear + ReLU) before the recurrent layers; 0 = none.
    proj: int = _SIZE_PRESETS[ModelSize.MCU]["proj"]
    #: Bidirectional layers: offline scoring only, refused by the streaming export.
    bidirectional: bool = False
    #: The named size this architecture was made for (`ModelSize`), recorded in run and manifest.
    size: ModelSize = ModelSize.MCU
    #: Jordan network, training only: the fed-back posterior is rounded to k / feedback_levels (256: the int8
    #: softmax's output grid) with the gradient passed straight through, so training sees the feedback the int8
    #: model will carry; 0 = the exact posterior. Evaluation, `step` and the export feed back the exact posterior
    #: (the int8 model rounds it itself).
    feedback_levels: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", Cell(self.cell))
        object.__setattr__(self, "size", ModelSize(self.size))
        if not 1 <= self.layers <= 3:
            raise ValueError(f"layers must be 1..3, got {self.layers}")
        if self.hidden < 1 or self.num_classes < 2 or self.input_dim < 1 or self.proj < 0:
            raise ValueError(f"invalid model dimensions: {self}")
        if self.cell is Cell.JORDAN and self.bidirectional:
            raise ValueError("a Jordan network feeds back its own previous output and cannot be bidirectional")
        if self.feedback_levels < 0 or (self.feedback_levels and self.cell is not Cell.JORDAN):
            raise ValueError("feedback_levels is a Jordan network's option, >= 0")

    @property
    def state_layers(self) -> int:
        """State tensors per state kind: one per recurrent layer and direction; a Jordan network carries only
        its posterior, whatever its depth."""
        if self.cell is Cell.JORDAN:
            return 1
        return self.layers * (2 if self.bidirectional else 1)

    @property
    def state_width(self) -> int:
        """Values per state tensor: the hidden width, or the number of classes for a Jordan network."""
        return self.num_classes if self.cell is Cell.JORDAN else self.hidden

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cell"] = self.cell.value
        d["size"] = self.size.value
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelConfig":
        return cls(**dict(d))


@dataclass(frozen=True)
class TrainConfig:
    recipe: Recipe = Recipe.SYNTHETIC
    data: tuple[str, ...] = ()  # data folders, merged by label
    keywords: tuple[str, ...] = ()
    model: ModelConfig = field(default_factory=ModelConfig)
    #: epochs, batch and views default to `BASE_SCHEDULE` (`python -m train` resolves them per recipe and size:
    #: `ModelSize.schedule` for Speech Commands), the learning rate to the default cell's at that batch
    epochs: int = BASE_SCHEDULE.epochs
    batch: int = BASE_SCHEDULE.batch
    lr: float = Cell.GRU.lr_at(BASE_SCHEDULE.batch)
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    views: int = BASE_SCHEDULE.views  # augmented stream realisations, cached; epoch e uses view e % views
    #: > 0: instead of cycling over `views`, a new view every this many epochs (epoch e uses view e // N; none
    #: comes back; `train.trainer.ViewCache`)
    fresh_view_every: int = 0
    patience: int = BASE_SCHEDULE.patience
    seed: int = 0
    threads: int = 2
    spec_time_mask: int = 8  # SpecAugment: max masked frames per chunk row
    spec_freq_mask: int = 5  # max masked channels
    #: frequency warp of the features (vocal-tract length perturbation), a factor per stream row and epoch drawn
    #: log-uniformly from this range; (1, 1) = off. `train.trainer.frequency_warp`: a speaker whose formants sit
    #: `a` times higher is heard as the same word. Measured on the synthetic "jarvis" model: shifting the real
    #: recordings' formants by only 5 % at test time cost 16-19 pp of recall, yet training with (0.85, 1.18) made
    #: it robust to that without raising its recall on real voices (README, "What the real recordings that are
    #: missed have in common"); on Speech Commands it cost 2 pp. Hence off by default.
    warp: tuple[float, float] = (1.0, 1.0)
    #: Unbounded recurrent states (the LSTM cell state c) are kept inside +-state_bound by a penalty
    #: state_penalty * mean(relu(|c| - state_bound)^2), checked every `state_check_frames` frames. Without
    #: it c drifts over a never-reset stream (measured: to -83 over 3 minutes), and its int8 step becomes
    #: too coarse (0.51) for tanh(c): int8-vs-float frame agreement fell to 70 %.
    state_bound: float = 2.0
    state_penalty: float = 1.0
    state_check_frames: int = 25
    #: Jordan network: loop_penalty * mean(relu(gain - loop_gain_bound)^2) over frames, gain the feedback loop's
    #: |dy_t/dy_{t-1} v| sqrt(C) for a random unit v (`RecurrentKWS.forward_with_loop_gain`; 0 = off; other cells
    #: ignore it). A loop gain above 1 amplifies the int8 model's rounding of the fed-back posterior from frame to
    #: frame. Measured (two-layer Jordan-112, Speech Commands subset): without it 2 of 5 seeds passed the export's
    #: 98 % int8 gate (97.3-99.2 %); with it seed 3 went 97.35 -> 99.26 %, float TFLite vs PyTorch 1.3e-4 ->
    #: 4.8e-7, at about twice the training time (README, "The Jordan network's posterior state").
    loop_penalty: float = 1.0
    loop_gain_bound: float = 0.5
    silence_eval_share: float = 0.1
    #: scarce keyword classes are repeated up to this share of the median keyword count (0 = off). Measured
    #: (GRU-64, 24 epochs, both Speech Commands folders, on/off ~200 clips vs ~980): 0.6 lifts on/off on the
    #: test split from 47/36 % to 72/45 % and the standard figure from 69.8 to 70.7 %.
    oversample: float = 0.6
    #: every `_unknown_` word (the clip's folder name) with fewer training clips than this is repeated, whole
    #: repeats, up to it (0 = off). Speech Commands with the extra folder: bed/cat/happy have ~465 clips each,
    #: the other 22 words ~25, while the test split holds the 25 words evenly.
    unknown_word_min: int = 0
    #: at most this many `_unknown_` clips per augmented view, a different random draw per view (0 = all):
    #: thousands of real negative clips beside a few hundred wake-word clips, without slower epochs
    unknown_per_view: int = 0
    #: data folders (of `data`) never trained on: their validation clips still choose the epoch and, at export,
    #: the threshold (real negative speech beside a synthetic wake word; see `train.cli.real_negative_dirs`)
    heldout_data: tuple[str, ...] = ()
    #: data folders (of `data`) that give negative speech only: their word folders named as a keyword are skipped
    #: (`edge.datasets.load_folder`), so real Speech Commands "marvin" clips beside a synthetic "marvin" wake word
    #: are neither trained on nor counted as negatives (see `train.cli.real_negative_dirs`)
    negative_data: tuple[str, ...] = ()
    #: a run folder whose weights start this training (transfer learning): every tensor whose name and shape
    #: match is copied (the recurrent layers and the feature normalisation; the head too when the labels are the
    #: same), the rest keeps its fresh initialisation
    init_from: str = ""
    #: a run folder whose model teaches this one (knowledge distillation, e.g. several seeds merged by `python -m
    #: train merge`): the loss is (1 - distil_weight) x the frame targets' cross-entropy + distil_weight x the KL
    #: divergence from the teacher's posteriors on the same training streams (every frame, with its own state
    #: carried as the student's). Same labels and front end required. "" = off.
    teacher: str = ""
    distil_weight: float = 0.5
    #: share of the background-noise files that are babble of real talkers (`train.streams.speech_babble`), built
    #: from training clips of the `negative_data` folders (0 = off; recipes without negative data have none)
    babble_share: float = 0.0
    #: the weights evaluated, chosen and saved are an exponential moving average of the trained ones, with this
    #: decay per optimizer step (0 = off, the trained weights themselves). Measured on the synthetic "jarvis"
    #: recipe (README): 0.998 (~1.5 epochs) steadies what the high-lr epochs learn and lifts recall on real voices.
    ema_decay: float = 0.0
    #: dropout on the recurrent layers' input (after the projection) and on their output (before the head; a Jordan
    #: network, whose output is fed back, only on its input) while training only; 0 = off. Evaluation, `step` and
    #: the export never drop anything.
    dropout: float = 0.0
    #: hard-negative mining (`train.mining`): after the epochs above, this many moments of real negative speech
    #: where the chosen model fires most become `_unknown_` clips (`mine_repeats` copies each) for `mine_epochs`
    #: more epochs at `mine_lr` x the peak learning rate, from the chosen weights; 0 = off
    hard_negatives: int = 0
    mine_epochs: int = 3
    mine_repeats: int = 2
    mine_lr: float = 0.3
    #: what picks the epoch: validation clip accuracy, or (wake words) recall at false-alarm budgets on running
    #: speech built from held-out validation speech (`train.selection`)
    selection: Selection = Selection.CLIP_ACCURACY
    stream: StreamConfig = field(default_factory=StreamConfig)
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["recipe"] = Recipe(self.recipe).value
        d["selection"] = Selection(self.selection).value
        d["model"] = self.model.to_dict()
        d["postprocess"] = self.postprocess.to_dict()
        d["frontend"] = self.frontend.to_dict()
        d["keywords"] = list(self.keywords)
        d["data"] = [str(p) for p in recorded_data_dirs(self.data)]
        d["negative_data"] = [str(p) for p in recorded_data_dirs(self.negative_data)]
        d["warp"] = list(self.warp)
        d["stream"]["gap_s"] = list(self.stream.gap_s)
        d["stream"]["speed"] = list(self.stream.speed)
        d["stream"]["rt60_s"] = list(self.stream.rt60_s)
        d["stream"]["tight_gap_s"] = list(self.stream.tight_gap_s)
        return d
