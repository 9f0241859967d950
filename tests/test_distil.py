"""Knowledge distillation (`--teacher RUN`): the student also learns the teacher's posteriors on its training
streams, computed with the teacher's state carried and reset as the student's."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from edge.errors import UserError
from train.models import ModelConfig, build_model
from train.streams import IGNORE, StreamView
from train.trainer import TrainConfig, load_run, load_teacher, teacher_posteriors, train_epoch


def _view(features: int, rows: int = 4, chunks: int = 3, chunk: int = 20, classes: int = 12) -> StreamView:
    """Random features and labels; row 0 starts a new episode at chunk 2, the others never after chunk 0."""
    rng = np.random.default_rng(0)
    resets = np.zeros((rows, chunks), dtype=bool)
    resets[:, 0] = True
    resets[0, 2] = True
    labels = rng.integers(0, classes, size=(rows, chunks * chunk)).astype(np.int64)
    labels[:, :5] = IGNORE
    return StreamView(rng.standard_normal((rows, chunks * chunk, features)).astype(np.float32), labels, resets)


def _student(teacher_cfg: ModelConfig, seed: int = 1):
    torch.manual_seed(seed)
    return build_model(replace(teacher_cfg, hidden=8))


def _cfg(chunk: int, weight: float) -> TrainConfig:
    cfg = TrainConfig(distil_weight=weight, spec_time_mask=0, spec_freq_mask=0)
    return replace(cfg, stream=replace(cfg.stream, chunk_frames=chunk))


def test_teacher_posteriors_carry_the_state_and_reset_it_where_the_view_does(trained_run: Path) -> None:
    teacher = load_run(trained_run).model
    view = _view(teacher.config.input_dim, classes=teacher.config.num_classes)
    soft = teacher_posteriors(teacher, view, 20)
    assert soft.shape == (*view.labels.shape, teacher.config.num_classes)
    with torch.no_grad():
        whole, _ = teacher(torch.from_numpy(view.features[1:2]))  # row 1: one episode, state carried throughout
        restarted, _ = teacher(torch.from_numpy(view.features[0:1, 40:]))  # row 0: a new episode at frame 40
    # the same cell over the same frames, in one call or in chunks: float rounding only
    assert torch.allclose(soft[1], torch.softmax(whole[0], -1), atol=1e-5)
    assert torch.allclose(soft[0, 40:], torch.softmax(restarted[0], -1), atol=1e-5)


def test_distillation_moves_the_student_towards_the_teacher(trained_run: Path) -> None:
    teacher = load_run(trained_run).model
    view = _view(teacher.config.input_dim, classes=teacher.config.num_classes)
    soft = teacher_posteriors(teacher, view, 20)

    def divergence(model) -> float:
        with torch.no_grad():
            logits, _ = model(torch.from_numpy(view.features))
        return float(F.kl_div(F.log_softmax(logits, -1).reshape(-1, soft.shape[-1]), soft.reshape(-1, soft.shape[-1]),
                              reduction="batchmean"))

    student = _student(teacher.config)
    before = divergence(student)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    weights = torch.ones(teacher.config.num_classes)
    for _ in range(15):
        train_epoch(student, view, opt, weights, _cfg(20, 1.0), np.random.default_rng(0), False, "", soft=soft)
    # 15 passes of 3 chunks with only the KL term: the divergence at least halves (measured with a wake-word
    # teacher, 3 labels: 0.82 -> 0.03)
    assert divergence(student) < 0.5 * before


def test_zero_distil_weight_trains_exactly_as_without_a_teacher(trained_run: Path) -> None:
    teacher = load_run(trained_run).model
    view = _view(teacher.config.input_dim, classes=teacher.config.num_classes)
    soft = teacher_posteriors(teacher, view, 20)
    weights = torch.ones(teacher.config.num_classes)
    results = []
    for given in (None, soft):
        student = _student(teacher.config)
        opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
        train_epoch(student, view, opt, weights, _cfg(20, 0.0), np.random.default_rng(0), False, "", soft=given)
        results.append(student.state_dict())
    for name, value in results[0].items():
        assert torch.equal(value, results[1][name]), name


def test_a_teacher_with_other_labels_is_refused(trained_run: Path, tmp_path: Path) -> None:
    run = load_run(trained_run)
    assert load_teacher(trained_run, run.labels, run.frontend) is not None
    with pytest.raises(UserError, match="labels"):
        load_teacher(trained_run, run.labels[::-1], run.frontend)
    with pytest.raises(UserError, match="front end"):
        load_teacher(trained_run, run.labels, replace(run.frontend, num_channels=run.frontend.num_channels + 1))
    other = tmp_path / "run"
    shutil.copytree(trained_run, other)
    meta = json.loads((other / "config.json").read_text())
    meta["labels"] = meta["labels"][:-1] + ["zebra"]
    (other / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="zebra"):
        load_teacher(other, run.labels, run.frontend)
