"""Recurrent models: step == forward for every cell, zero initial state, bidirectional refusal, training
mechanics (gradient clipping, truncated BPTT state carry), checkpoints and determinism."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

from train.models import Cell, ModelConfig, build_model, model_size
from train.streams import IGNORE, StreamConfig, build_view
from train.trainer import TrainConfig, load_run, save_run, train_epoch

# float32 recurrences over 60 frames; different op order between fused and explicit forms.
STEP_TOLERANCE = 1e-5


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One torch thread for the duration of a test (restored after). A Jordan network's time loop is many small
    operations; on this shared 2-core machine a second intra-op thread only makes each of them wait for the
    other (measured on the tiny view: 11 s per epoch with 2 threads under load, 0.15 s with one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("layers,proj", [(1, 0), (2, 16), (3, 0)])
def test_step_loop_equals_forward(cell: Cell, layers: int, proj: int) -> None:
    torch.manual_seed(0)
    m = build_model(ModelConfig(cell=cell, layers=layers, proj=proj, hidden=24))
    m.feat_mean += 5.0
    m.feat_std *= 3.0
    x = torch.rand(2, 60, 40) * 25
    with torch.no_grad():
        y, s = m(x)
        st = m.initial_state(2)
        outs = []
        for t in range(x.shape[1]):
            o, st = m.step(x[:, t], st)
            outs.append(o)
    assert (torch.stack(outs, 1) - y).abs().max() <= STEP_TOLERANCE
    for a, b in zip(s, st):
        assert (a - b).abs().max() <= STEP_TOLERANCE


@pytest.mark.parametrize("cell", list(Cell))
def test_initial_state_is_zero(cell: Cell) -> None:
    m = build_model(ModelConfig(cell=cell, layers=2))
    st = m.initial_state(3)
    assert len(st) == len(cell.state_names)
    # [layers, batch, hidden]; a Jordan network carries one posterior over the 12 classes, whatever its depth
    expected = (1, 3, 12) if cell is Cell.JORDAN else (2, 3, 64)
    for s in st:
        assert s.shape == expected and torch.count_nonzero(s) == 0


@pytest.mark.parametrize("layers", [1, 3])
def test_jordan_state_is_the_previous_posterior(layers: int) -> None:
    """The Jordan network feeds back its own softmax posterior: after every frame the state equals
    softmax(logits) of that frame, a distribution over the classes, and it changes the next frame's output."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(cell=Cell.JORDAN, layers=layers, hidden=16, num_classes=5))
    x = torch.rand(2, 8, 40) * 25
    with torch.no_grad():
        logits, (y,) = m(x)
        assert y.shape == (1, 2, 5)
        assert torch.allclose(y[0], torch.softmax(logits[:, -1], -1), atol=STEP_TOLERANCE)
        assert torch.allclose(y.sum(-1), torch.ones(1, 2), atol=STEP_TOLERANCE)
        frame = x[:, 0]
        a, _ = m.step(frame, (torch.zeros(1, 2, 5),))
        b, _ = m.step(frame, (torch.eye(5)[None, :2],))  # another belief before the same frame
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("cell", [Cell.GRU, Cell.LSTM, Cell.RNN])
def test_gate_names_split_pytorchs_fused_weights(cell: Cell) -> None:
    """One gate letter per block of PyTorch's fused matrices, in its order; `layer_weights` names the blocks by them."""
    model = build_model(ModelConfig(cell=cell, hidden=8))
    assert model.rnn.weight_ih_l0.shape[0] == len(cell.gate_names) * 8 == cell.gates * 8
    w = model.layer_weights(0)
    assert set(w) == {f"{kind}_{g}" for kind in ("wx", "wh", "bx", "bh") for g in cell.gate_names}
    assert torch.equal(w[f"wx_{cell.gate_names[-1]}"], model.rnn.weight_ih_l0[-8:])


def test_jordan_trains_on_the_int8_feedback_grid() -> None:
    """`feedback_levels=256`: in training the state fed back is the posterior on the int8 softmax grid
    (k / 256, k <= 255) and the gradient passes straight through; in evaluation the exact posterior, as before."""
    from train.models import on_grid

    torch.manual_seed(0)
    m = build_model(ModelConfig(cell=Cell.JORDAN, hidden=16, num_classes=5, feedback_levels=256))
    x = torch.rand(2, 8, 40) * 25
    m.train()
    logits, (y,) = m(x)
    k = y * 256
    assert torch.equal(k, torch.round(k)) and k.max() <= 255 and k.min() >= 0
    assert (y[0] - torch.softmax(logits[:, -1], -1)).abs().max() <= 0.5 / 256 + 1e-6  # the nearest grid point
    logits.sum().backward()
    assert m.rnn.feedback.weight.grad.abs().sum() > 0  # straight through: the feedback still learns
    m.eval()
    with torch.no_grad():
        _, (y_eval,) = m(x)
    assert torch.allclose(y_eval[0], torch.softmax(m(x)[0][:, -1], -1))
    assert not torch.equal(y_eval * 256, torch.round(y_eval * 256))
    p = torch.tensor([0.0, 0.3, 0.999], requires_grad=True)
    q = on_grid(p, 256)
    assert q.tolist() == [0.0, 77 / 256, 255 / 256]
    q.sum().backward()
    assert p.grad.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="Jordan network's option"):
        ModelConfig(cell=Cell.GRU, feedback_levels=256)


def test_jordan_loop_gain_is_the_feedback_jacobian_along_a_random_direction() -> None:
    """`forward_with_loop_gain`: the same logits and state as `forward`, and per frame |J v| sqrt(C) with
    J = dy_t / dy_{t-1} from autograd and v the generator's unit vector (two layers: the derivative passes the
    second tanh layer too). Its square estimates |J|_F^2 without bias: the mean over many directions agrees."""
    import math

    from train.trainer import TrainConfig, _forward_with_state_penalty

    torch.manual_seed(0)
    m = build_model(ModelConfig(cell=Cell.JORDAN, hidden=16, layers=2, num_classes=5)).eval()
    x = torch.randn(3, 2, 40) * 5
    state = m.initial_state(3)
    logits, (y,), gains = m.forward_with_loop_gain(x, state, torch.Generator().manual_seed(1))
    ref_logits, (ref_y,) = m(x, state)
    assert torch.equal(logits, ref_logits) and torch.equal(y, ref_y) and gains.shape == (3, 2)
    with torch.no_grad():
        _, first = m(x[:, :1], state)
    jac = torch.autograd.functional.jacobian(lambda s: m(x[:, 1:2], (s,))[1][0], first[0])
    g = torch.Generator().manual_seed(1)
    torch.randn((3, 5), generator=g)  # frame 0's direction
    v = torch.randn((3, 5), generator=g)
    v = v / v.norm(dim=-1, keepdim=True)
    for b in range(3):
        want = (jac[0, b, :, 0, b, :] @ v[b]).norm() * math.sqrt(5)
        assert torch.allclose(gains[b, 1], want, rtol=1e-4), (b, gains[b, 1], want)  # float32 round-off
    many = torch.stack([m.forward_with_loop_gain(x, state, torch.Generator().manual_seed(k))[2][:, 1]
                        for k in range(2000)])
    fro = torch.stack([torch.linalg.matrix_norm(jac[0, b, :, 0, b, :]) for b in range(3)])
    # 2,000 directions: the mean of gain^2 within 10 % of |J|_F^2 (its relative standard error here is < 3 %)
    assert torch.allclose(many.pow(2).mean(0), fro.pow(2), rtol=0.1), (many.pow(2).mean(0), fro.pow(2))
    cfg = TrainConfig(loop_penalty=2.0, loop_gain_bound=0.0)
    _, _, penalty = _forward_with_state_penalty(m, x, state, cfg, torch.Generator().manual_seed(1))
    assert torch.allclose(penalty, 2.0 * gains.pow(2).mean())  # the hinge at 0 keeps every gain
    with pytest.raises(ValueError, match="Jordan network's"):
        build_model(ModelConfig(cell=Cell.GRU, hidden=8)).forward_with_loop_gain(x, state, torch.Generator())


def test_jordan_cannot_be_bidirectional() -> None:
    with pytest.raises(ValueError, match="Jordan network feeds back its own previous output"):
        ModelConfig(cell=Cell.JORDAN, bidirectional=True)


def test_bidirectional_cannot_stream() -> None:
    m = build_model(ModelConfig(bidirectional=True))
    m(torch.zeros(1, 5, 40))  # offline scoring works
    with pytest.raises(ValueError, match="future frames"):
        m.step(torch.zeros(1, 40))


@pytest.mark.parametrize("cell", list(Cell))
def test_model_size_is_counted(cell: Cell) -> None:
    cfg = ModelConfig(cell=cell, layers=2, proj=8)
    m = build_model(cfg)
    assert model_size(cfg)["params"] == sum(p.numel() for p in m.parameters())


def test_size_presets_stay_within_their_budgets() -> None:
    """The issue's budgets: `mcu` the ~21 k parameters whose int8 model fits 32 KB of firmware flash (measured:
    29,534 B for 20,908 parameters), `pi` up to ~250 k; the Pi model is the larger of the two."""
    from train.config import ModelSize

    params = {size: model_size(ModelConfig(size=size, **size.preset))["params"] for size in ModelSize}
    assert params[ModelSize.MCU] <= 21_200
    assert params[ModelSize.MCU] < params[ModelSize.PI] <= 250_000


def _tiny_view(num_classes: int = 3, seed: int = 0, objective: str = "frame"):
    rng = np.random.default_rng(seed)
    t = np.arange(12000) / 16000
    clips = [((np.sin(2 * np.pi * (300 + 500 * k) * t) * 8000 * np.hanning(len(t))).astype(np.int16), 1 + k % 2)
             for k in range(6)]
    noise = [(rng.standard_normal(16000 * 5) * 300).astype(np.int16)]
    from edge.frontend import FrontendConfig
    return build_view(clips, noise, {"_silence_": 0, "a": 1, "b": 2}, StreamConfig(chunk_frames=50, objective=objective), FrontendConfig(),
                      batch=2, seed=seed, progress=False)


def test_stream_labels_and_episode_resets() -> None:
    v = _tiny_view()
    assert v.features.shape[1] == v.labels.shape[1] == v.resets.shape[1] * 50
    assert v.resets[:, 0].all()  # every row starts from a fresh state
    labelled = v.labels[v.labels != IGNORE]
    assert {0, 1, 2} <= set(labelled.tolist())


def test_clip_objective_labels_only_the_end_of_each_clip() -> None:
    v = _tiny_view(objective="clip")
    labelled = v.labels != IGNORE
    # one clip per episode, each episode starts a fresh state and carries exactly clip_frames labels
    assert v.resets.sum() >= 6
    per_row = labelled.sum(axis=1)
    # every episode (6 clips, plus background segments) contributes exactly clip_frames = 10 targets
    assert per_row.sum() % 10 == 0 and per_row.sum() >= 60
    assert {1, 2} <= set(v.labels[labelled].tolist())


@pytest.mark.parametrize("cell", [Cell.GRU, Cell.JORDAN])
def test_gradient_clipping_is_active_and_state_is_carried(cell: Cell, monkeypatch: pytest.MonkeyPatch,
                                                          one_thread: None) -> None:
    torch.manual_seed(0)
    v = _tiny_view()
    m = build_model(ModelConfig(cell=cell, num_classes=3, hidden=16))
    # a huge learning signal: unclipped norms far above the limit
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(8.0)
    seen_states = []
    original = m.forward

    def spy(x, state=None):
        seen_states.append(None if state is None else [s.clone() for s in state])
        return original(x, state)

    monkeypatch.setattr(m, "forward", spy)
    if cell is Cell.JORDAN:  # trained with the default loop penalty: the forward pass that also gives the loop gain
        probed = m.forward_with_loop_gain

        def probed_spy(x, state, probe):
            seen_states.append([s.clone() for s in state])
            return probed(x, state, probe)

        monkeypatch.setattr(m, "forward_with_loop_gain", probed_spy)
    cfg = TrainConfig(clip_norm=0.5, spec_time_mask=0, spec_freq_mask=0)
    opt = torch.optim.SGD(m.parameters(), lr=0.0)  # lr 0: observe without changing the model
    _, _, norms = train_epoch(m, v, opt, torch.ones(3), cfg, np.random.default_rng(0), False, "t")
    assert max(norms) > cfg.clip_norm  # pre-clip norms exceed the limit ...
    total = torch.sqrt(sum(p.grad.norm() ** 2 for p in m.parameters() if p.grad is not None))
    assert total <= cfg.clip_norm * 1.0001  # ... and the applied gradient was clipped to it
    # truncated BPTT: a chunk that does not start an episode receives the previous chunk's (detached) state
    carried = [j for j in range(1, v.resets.shape[1]) if not v.resets[:, j].any()]
    assert carried, "the tiny view should contain a continued chunk"
    j = carried[0]
    st = seen_states[j]
    assert all(torch.count_nonzero(s) > 0 for s in st)
    assert all(not s.requires_grad for s in st)


@pytest.mark.parametrize("objective", ["frame", "clip"])
def test_jordan_trains_through_its_feedback(objective: str, one_thread: None) -> None:
    """Both objectives train a Jordan network with the generic truncated-BPTT loop: the gradient reaches the
    posterior feedback weights (backpropagation through the fed-back softmax), and a few epochs on the tiny
    view lower the loss. The default size's input projection is in front of it (one more layer to learn first:
    the frame objective's loss fell only to 0.83 of the first epoch's in 6 epochs, to 0.69 in 10)."""
    torch.manual_seed(0)
    v = _tiny_view(objective=objective)
    m = build_model(ModelConfig(cell=Cell.JORDAN, num_classes=3, hidden=16))
    m.feat_mean.copy_(torch.from_numpy(v.features.reshape(-1, 40).mean(0)))
    m.feat_std.copy_(torch.from_numpy(v.features.reshape(-1, 40).std(0) + 0.1))
    cfg = TrainConfig(spec_time_mask=0, spec_freq_mask=0)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    assert m.proj is not None
    losses = [train_epoch(m, v, opt, torch.ones(3), cfg, np.random.default_rng(0), False, "t")[0] for _ in range(10)]
    feedback = m.rnn.feedback.weight.grad
    assert feedback is not None and feedback.abs().sum() > 0
    assert losses[-1] < 0.8 * losses[0], losses


def test_lstm_cell_state_penalty() -> None:
    """The LSTM cell state is checked in pieces: same logits as one call, a penalty only beyond the bound
    (so c stays in a range int8 can resolve), and none for cells whose state tanh already bounds."""
    from train.trainer import _forward_with_state_penalty

    torch.manual_seed(0)
    cfg = TrainConfig(state_bound=4.0, state_penalty=1.0, state_check_frames=25)
    x = torch.randn(3, 100, 40)
    lstm = build_model(ModelConfig(cell=Cell.LSTM, hidden=16))
    h0, c0 = torch.zeros(1, 3, 16), torch.zeros(1, 3, 16)
    # default init (forget gate ~0.5): |c| <= 1 / (1 - 0.5) stays inside the bound -> no penalty
    assert float(_forward_with_state_penalty(lstm, x, (h0, c0), cfg)[2]) == 0.0
    with torch.no_grad():
        lstm.rnn.bias_ih_l0[16:32] += 10.0  # forget gate ~1: the cell state is held, as when it drifts
    c0 = torch.full((1, 3, 16), 30.0)
    logits, state, penalty = _forward_with_state_penalty(lstm, x, (h0, c0), cfg)
    ref_logits, ref_state = lstm(x, (h0, c0))
    assert torch.allclose(logits, ref_logits, atol=1e-5) and torch.allclose(state[1], ref_state[1], atol=1e-5)
    assert float(penalty) > 0
    penalty.backward()  # the penalty has a gradient that reaches the weights
    assert lstm.rnn.weight_hh_l0.grad is not None and lstm.rnn.weight_hh_l0.grad.abs().sum() > 0
    gru = build_model(ModelConfig(cell=Cell.GRU, hidden=16))
    assert float(_forward_with_state_penalty(gru, x, (torch.full((1, 3, 16), 30.0),), cfg)[2]) == 0.0


def test_elman_rnn_starts_with_orthogonal_recurrent_weights() -> None:
    model = build_model(ModelConfig(cell=Cell.RNN, hidden=24, layers=2))
    for layer in range(2):
        w = getattr(model.rnn, f"weight_hh_l{layer}").detach()
        assert torch.allclose(w @ w.T, torch.eye(24), atol=1e-5)
    gru = build_model(ModelConfig(cell=Cell.GRU, hidden=24)).rnn.weight_hh_l0.detach()[:24]
    assert not torch.allclose(gru @ gru.T, torch.eye(24), atol=1e-2)  # only the Elman RNN needs it


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(3)
    cfg = TrainConfig(model=ModelConfig(cell=Cell.LSTM, num_classes=4, hidden=8))
    m = build_model(cfg.model)
    save_run(tmp_path, m, cfg, ["_silence_", "a", "b", "c"], {"size": model_size(cfg.model)}, [])
    run = load_run(tmp_path)
    for k, v in m.state_dict().items():
        assert torch.equal(v, run.model.state_dict()[k])
    assert run.labels == ["_silence_", "a", "b", "c"]


def test_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    from edge.errors import UserError

    cfg = TrainConfig(model=ModelConfig(num_classes=2, hidden=8))
    save_run(tmp_path, build_model(cfg.model), cfg, ["_silence_", "a"], {}, [])
    (tmp_path / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file")  # e.g. a pickle
    with pytest.raises(UserError, match="cannot load checkpoint"):
        load_run(tmp_path)


def test_training_is_deterministic(sc_dir: Path, tmp_path: Path) -> None:
    from train.trainer import train

    cfg = TrainConfig(recipe="speech_commands", data=str(sc_dir), model=ModelConfig(hidden=8), epochs=1, views=1, seed=5)
    from edge.datasets import load_dataset, Recipe

    ds = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    ds.clips = ds.clips[::12]  # a subset keeps this fast
    train(cfg, tmp_path / "a", progress=False, dataset=ds)
    train(cfg, tmp_path / "b", progress=False, dataset=ds)
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    b = (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a == b


def test_train_evaluate_reports_both_figures(trained_run: Path) -> None:
    """`python -m train evaluate` on the run's own data reproduces the test metrics `train` stored."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "train", "evaluate", "--run", str(trained_run), "--json"],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    stored = json.loads((trained_run / "config.json").read_text())["metrics"]["test"]
    assert got["accuracy"] == stored["accuracy"] and got["clips"] == stored["clips"]
    # the standard set is batched differently here (train reuses the device set's features by clip name):
    # padding to another batch length can move a float round-off, so one clip of difference is allowed
    assert got["standard"]["clips"] == stored["standard"]["clips"]
    assert abs(got["standard"]["accuracy"] - stored["standard"]["accuracy"]) * got["standard"]["clips"] <= 1 + 1e-9


def test_oversample_repeats_only_scarce_keywords() -> None:
    from train.trainer import oversample_scarce

    labels = ["_silence_", "_unknown_", "yes", "on", "off"]
    clip = np.zeros(4, np.int16)
    items = [(clip, 1)] * 50 + [(clip, 2)] * 100 + [(clip, 3)] * 20 + [(clip, 4)] * 70
    out = oversample_scarce(items, labels, 0.6)
    counts = {i: sum(1 for _, l in out if l == i) for i in range(5)}
    # median keyword count 70 -> goal 42: `on` (20) is repeated to 3 x 20 = 60 >= 42; others are untouched
    assert counts == {0: 0, 1: 50, 2: 100, 3: 60, 4: 70}
    assert oversample_scarce(items, labels, 0.0) == items


def test_oversample_unknown_words_repeats_rare_words_only() -> None:
    from train.trainer import oversample_unknown_words

    def clip(v: int) -> np.ndarray:
        return np.full(4, v, np.int16)

    # _unknown_ (1): "bed" 10 clips, "tree" 3, "dog" 1; keyword "yes" (2) 2 clips, never repeated
    items = ([(clip(0), 1)] * 10 + [(clip(1), 1), (clip(2), 1), (clip(3), 1)] + [(clip(4), 1)]
             + [(clip(5), 2)] * 2)
    words = ["bed"] * 10 + ["tree"] * 3 + ["dog"] + ["yes"] * 2
    out = oversample_unknown_words(items, words, 1, 5)
    values = [int(c[0]) for c, _ in out]
    # goal 5: tree's three distinct clips twice each (6 >= 5, whole repeats), dog's one clip 5 times
    assert sorted(values) == sorted([0] * 10 + [1, 2, 3] * 2 + [4] * 5 + [5] * 2)
    assert out[: len(items)] == items  # the originals first, in order
    assert oversample_unknown_words(items, words, 1, 0) == items
    assert oversample_unknown_words(items, words, None, 5) == items


def test_train_epoch_feeds_the_frequency_warped_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """`TrainConfig.warp` reaches training: every chunk the model sees is the view's features through its row's
    warp matrix (one fixed factor here, so the expected input is known), and with the warp off the features as
    they are."""
    from train.trainer import frequency_warp

    v = _tiny_view()
    m = build_model(ModelConfig(cell=Cell.GRU, num_classes=3, hidden=8))
    seen: list[torch.Tensor] = []
    original = m.forward

    def spy(x, state=None):
        seen.append(x.clone())
        return original(x, state)

    monkeypatch.setattr(m, "forward", spy)
    opt = torch.optim.SGD(m.parameters(), lr=0.0)
    T = TrainConfig().stream.chunk_frames
    w = torch.from_numpy(frequency_warp(TrainConfig().frontend, 1.15).astype(np.float32))
    for warp, expect in (((1.0, 1.0), lambda f: f), ((1.15, 1.15), lambda f: f @ w.T)):
        seen.clear()
        cfg = TrainConfig(spec_time_mask=0, spec_freq_mask=0, warp=warp)
        train_epoch(m, v, opt, torch.ones(3), cfg, np.random.default_rng(0), False, "t")
        assert seen
        first = torch.from_numpy(v.features[:, :T])
        assert torch.allclose(seen[0], expect(first), atol=1e-4)
    assert not torch.allclose(seen[0], torch.from_numpy(v.features[:, :T]))  # the warp did change the input


@pytest.mark.parametrize("cell", [Cell.GRU, Cell.LSTM, Cell.JORDAN])
def test_dropout_acts_only_while_training(cell: Cell) -> None:
    """`TrainConfig.dropout`: the sequence form drops inputs and outputs of the recurrent layers in training mode
    only; in eval mode (what evaluation, `step` and the export see) the model is exactly the one without it."""
    torch.manual_seed(0)
    m = build_model(ModelConfig(cell=cell, proj=16, hidden=24))
    x = torch.rand(2, 30, 40) * 25
    with torch.no_grad():
        m.eval()
        plain, _ = m(x)
        m.dropout = 0.3
        assert torch.equal(m(x)[0], plain)  # eval mode: nothing dropped
        m.train()
        torch.manual_seed(1)
        a, _ = m(x)
        torch.manual_seed(2)
        b, _ = m(x)
        torch.manual_seed(1)
        again, _ = m(x)
    assert not torch.allclose(a, plain) and not torch.allclose(a, b)  # training mode: random units dropped
    assert torch.equal(a, again)  # ... drawn from torch's generator, so a seeded run repeats
    if cell is Cell.JORDAN:  # trained with its loop penalty through `forward_with_loop_gain`: dropped there too
        state = m.initial_state(2)
        with torch.no_grad():
            torch.manual_seed(1)
            looped = m.forward_with_loop_gain(x, state, torch.Generator().manual_seed(0))[0]
            m.eval()
            looped_eval = m.forward_with_loop_gain(x, state, torch.Generator().manual_seed(0))[0]
            m.train()
        assert not torch.allclose(looped, plain) and torch.allclose(looped_eval, plain, atol=STEP_TOLERANCE)
    m.dropout = 0.0
    with torch.no_grad():
        assert torch.equal(m(x)[0], plain)  # rate 0: training mode is the plain model too


def test_dropout_reaches_the_model_and_is_checked(sc_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`--dropout P` becomes `TrainConfig.dropout` and the model's rate during training; outside [0, 1): one line, exit 2."""
    import train.cli as cli
    import train.trainer as trainer

    rates = []
    real_epoch = trainer.train_epoch

    def spy(model, *args, **kwargs):
        rates.append(model.dropout)
        return real_epoch(model, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", spy)
    data = tmp_path / "data"  # a few real clips of two words, 6 to train on and 2 to validate: enough for one epoch
    listed = {*(sc_dir / "validation_list.txt").read_text().split(), *(sc_dir / "testing_list.txt").read_text().split()}
    validation = []
    for word in ("yes", "no"):
        (data / word).mkdir(parents=True)
        clips = [c for c in sorted((sc_dir / word).glob("*.wav")) if f"{word}/{c.name}" not in listed][:8]
        for clip in clips:
            shutil.copy(clip, data / word / clip.name)
        validation += [f"{word}/{c.name}" for c in clips[6:]]
    (data / "validation_list.txt").write_text("\n".join(validation) + "\n")
    (data / "testing_list.txt").write_text("")
    run = tmp_path / "run"
    assert cli.main(["train", "--recipe", "folder", "--data", str(data), "--epochs", "1", "--views", "1",
                     "--dropout", "0.25", "--out", str(run), "--quiet"]) == 0
    assert rates and set(rates) == {0.25}
    assert load_run(run).meta["train_config"]["dropout"] == 0.25  # recorded in the run
    for bad in ("1", "-0.1"):
        assert cli.main(["train", "--recipe", "folder", "--data", str(data), "--dropout", bad,
                         "--out", str(tmp_path / "bad"), "--quiet"]) == 2
        assert "--dropout must be in [0, 1)" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_label_frames_flag_sets_the_keyword_target_span(sc_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`--label-frames PRE,POST` reaches `StreamConfig`, and a keyword clip's target then spans exactly PRE + POST
    frames around the word's end; malformed or out-of-range values: one line, exit 2, no run folder."""
    import train.cli as cli
    import train.trainer as trainer
    from edge.audio import load_wav
    from edge.frontend import FrontendConfig
    from train.streams import build_episode

    seen = []
    monkeypatch.setattr(cli, "resolve_data", lambda args: ("folder", [tmp_path], ("yes",)))
    metrics = {"size": {"params": 0, "macs_per_frame": 0}, "train_seconds": 0}
    monkeypatch.setattr(trainer, "train", lambda cfg, out, progress=True: seen.append(cfg) or metrics)
    for extra in ([], ["--label-frames", "10,55"]):
        assert cli.main(["train", "--recipe", "folder", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                         "--force", *extra]) == 0
    assert [(c.stream.pre_frames, c.stream.post_frames) for c in seen] == [(20, 25), (10, 55)]
    pcm = load_wav(sorted((sc_dir / "yes").glob("*.wav"))[0], 16000)
    for cfg in (c.stream for c in seen):
        cfg = replace(cfg, speed=(1.0, 1.0), noise_prob=0.0)
        ep = build_episode([(pcm, 1)], [], {"_silence_": 0, "yes": 1}, cfg, FrontendConfig(), np.random.default_rng(0))
        assert int(np.sum(ep.labels == 1)) == cfg.pre_frames + cfg.post_frames
    for bad, says in (("20", "two whole numbers PRE,POST"), ("20,0", "0-100 frames before"), ("101,5", "0-100")):
        assert cli.main(["train", "--recipe", "folder", "--data", str(tmp_path), "--label-frames", bad,
                         "--out", str(tmp_path / "bad")]) == 2
        assert says in capsys.readouterr().err
    assert len(seen) == 2 and not (tmp_path / "bad").exists()
