"""`python -m train merge`: several runs as one model whose logits are the mean of theirs (train/ensemble.py).

Exactness is asserted for every mergeable cell, depth and input projection, in the sequence form and stepped with
carried state (tolerance 1e-5: float32 sums of up to ~200 products reordered); the merged run then goes through the
real export, whose float TFLite model must give the softmax of the members' mean logits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edge.errors import UserError
from train.config import Cell, ModelConfig, ModelSize
from train.ensemble import merge_models
from train.models import build_model

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5


def _members(cell: Cell, layers: int, proj: int, n: int = 3) -> list:
    """`n` models with random weights and random, different feature normalisations (as separate trainings give)."""
    gen = torch.Generator().manual_seed(7)
    out = []
    for _ in range(n):
        m = build_model(ModelConfig(cell=cell, num_classes=4, hidden=12, layers=layers, proj=proj))
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.4)
            m.feat_mean.copy_(torch.randn(40, generator=gen) * 50 + 300)
            m.feat_std.copy_(torch.rand(40, generator=gen) * 80 + 20)
        out.append(m.eval())
    return out


@pytest.mark.parametrize("cell,layers,proj", [(Cell.GRU, 1, 0), (Cell.GRU, 2, 0), (Cell.GRU, 3, 8),
                                              (Cell.LSTM, 1, 0), (Cell.LSTM, 2, 10), (Cell.RNN, 2, 0)])
def test_merged_logits_are_the_mean_of_the_members(cell: Cell, layers: int, proj: int) -> None:
    members = _members(cell, layers, proj)
    merged = merge_models(members)
    c = merged.config
    assert (c.hidden, c.proj, c.layers, c.cell, c.size) == (36, 3 * proj, layers, cell, ModelSize.PI)
    x = torch.from_numpy(np.random.default_rng(0).normal(300, 60, (2, 150, 40)).astype(np.float32))
    with torch.no_grad():
        want, _ = zip(*(m(x) for m in members))
        got, _ = merged(x)
        assert (got - torch.stack(want).mean(0)).abs().max() < TOL
        # stepped frame by frame with the state carried, as a device runs it
        state, states = merged.initial_state(2), [m.initial_state(2) for m in members]
        for t in range(40):
            logits, state = merged.step(x[:, t], state)
            each = []
            for i, m in enumerate(members):
                out, states[i] = m.step(x[:, t], states[i])
                each.append(out)
            assert (logits - torch.stack(each).mean(0)).abs().max() < TOL


def test_merge_refuses_what_cannot_be_merged() -> None:
    gru = _members(Cell.GRU, 1, 0, n=2)
    with pytest.raises(UserError, match="at least two"):
        merge_models(gru[:1])
    with pytest.raises(UserError, match="same architecture"):
        merge_models([gru[0], build_model(ModelConfig(cell=Cell.GRU, num_classes=4, hidden=16))])
    jordan = [build_model(ModelConfig(cell=Cell.JORDAN, num_classes=4, hidden=8)) for _ in range(2)]
    with pytest.raises(UserError, match="cannot be merged"):
        merge_models(jordan)
    bidi = [build_model(ModelConfig(cell=Cell.GRU, num_classes=4, hidden=8, bidirectional=True)) for _ in range(2)]
    with pytest.raises(UserError, match="bidirectional"):
        merge_models(bidi)


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _second_member(trained_run: Path, dest: Path) -> Path:
    """A stand-in for a run with another seed: the trained run's weights, perturbed, in a run folder of its own."""
    from safetensors.torch import load_file, save

    shutil.copytree(trained_run, dest)
    weights = load_file(str(dest / "model.safetensors"))
    gen = torch.Generator().manual_seed(1)
    weights = {k: (v + 0.05 * torch.randn(v.shape, generator=gen) if k.startswith(("rnn.", "head.")) else v)
               for k, v in weights.items()}
    (dest / "model.safetensors").write_bytes(save(weights))
    return dest


def test_merge_cli_writes_a_run_that_exports_and_streams_as_the_mean(trained_run: Path, stream_wav: Path,
                                                                    tmp_path: Path) -> None:
    from edge.audio import load_wav
    from edge.detector import StreamingDetector
    from edge.frontend import StreamingFrontend, features_to_float
    from edge.manifest import load_manifest
    from export.pipeline import ExportOptions, build_artifacts
    from export.report.detection import step_posteriors
    from train.trainer import load_run

    other = _second_member(trained_run, tmp_path / "seed1")
    out = tmp_path / "merged"
    r = _train("merge", str(trained_run), str(other), "--out", str(out))
    assert r.returncode == 0, r.stderr
    run = load_run(out)
    meta = json.loads((out / "config.json").read_text())
    assert meta["train_config"]["merged_from"] == [str(trained_run), str(other)]
    assert run.model.config.hidden == 2 * load_run(trained_run).model.config.hidden
    assert meta["model"]["size"] == "pi" and meta["metrics"]["size"]["params"] > 0

    art = tmp_path / "art"
    build_artifacts(out, art, ExportOptions(verify_seconds=30, calibration_seconds=60, min_agreement=0.9,
                                            threshold_minutes=3.0), progress=False)
    manifest = load_manifest(art)
    assert manifest.data["model"]["config"]["hidden"] == run.model.config.hidden
    assert manifest.data["training"]["config"]["merged_from"] == [str(trained_run), str(other)]
    feats = StreamingFrontend(manifest.frontend).process(load_wav(stream_wav, 16000))[:300]
    tflite = step_posteriors(StreamingDetector(manifest, "float32"), feats).units
    x = torch.from_numpy(features_to_float(feats))[None]
    with torch.no_grad():
        mean_logits = torch.stack([load_run(d).model(x)[0][0] for d in (trained_run, other)]).mean(0)
    # float32 TFLite against PyTorch: the export's own check allows 1e-4 (reordered float32 sums)
    assert np.abs(tflite - torch.softmax(mean_logits, -1).numpy()).max() < 1e-4


def test_merge_cli_errors_leave_the_users_folders_alone(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("user file")

    def one_line(r: subprocess.CompletedProcess, needle: str) -> None:
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert needle in r.stderr.strip().splitlines()[-1], r.stderr

    one_line(_train("merge", str(trained_run), "--out", str(tmp_path / "x")), "at least two")
    one_line(_train("merge", str(trained_run), str(tmp_path / "missing"), "--out", str(tmp_path / "x")),
             "not a run folder")
    one_line(_train("merge", str(trained_run), str(trained_run), "--out", str(trained_run)), "one of the runs")
    other = _second_member(trained_run, tmp_path / "seed1")
    one_line(_train("merge", str(trained_run), str(other), "--out", str(out)), "--force")
    assert (out / "keep.txt").read_text() == "user file"
    cfg = json.loads((other / "config.json").read_text())
    cfg["labels"] = cfg["labels"][::-1]
    (other / "config.json").write_text(json.dumps(cfg))
    one_line(_train("merge", str(trained_run), str(other), "--out", str(out), "--force"), "other labels")
    assert (out / "keep.txt").read_text() == "user file"  # a failed merge does not delete the folder, even with --force
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged", "seed1"]  # nothing half-written left behind


def test_make_seeds_trains_one_run_per_seed_and_merges_them() -> None:
    """`make SEEDS="0 1"` (dry run): a run per seed, then `train merge` into $(RUN); the merged model is a Pi model,
    so `make export` generates no firmware sources for it. One seed (or none) trains $(RUN) itself, as before."""
    common = ["RECIPE=synthetic", "KEYWORDS=jarvis", "RUN=runs/t", "OUT=artifacts/t"]

    def make(*args: str) -> str:
        # run as its own make, not as a sub-make of `make test` (which would print "Entering directory" lines and
        # pass its flags on)
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        r = subprocess.run(["make", "--no-print-directory", *args, *common], cwd=REPO, capture_output=True,
                           text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def firmware_steps(seeds: str) -> str:
        return make("--eval", "print-steps: ; @echo $(FIRMWARE_STEPS)", "print-steps", f"SEEDS={seeds}").strip()

    merged = [l for l in make("-n", "train", "SEEDS=0 1").splitlines() if "-m train" in l]
    assert "--seed 0 --out runs/t-s0 " in merged[0] and "--seed 1 --out runs/t-s1 " in merged[0]
    assert any("-m train merge runs/t-s0 runs/t-s1 --out runs/t --force" in l for l in merged)
    assert firmware_steps("0 1") == "firmware-skip"
    single = [l for l in make("-n", "train", "SEEDS=1").splitlines() if "-m train" in l]
    assert len(single) == 1 and "--seed 1 --out runs/t --force" in single[0] and "--teacher" not in single[0]
    assert firmware_steps("1") == firmware_steps("") == "codegen firmware-record"


def test_make_teacher_seeds_distil_merged_seeds_into_one_model() -> None:
    """`TEACHER_SEEDS="0 1 2"` (dry run): those seeds trained and merged into the teacher, then $(RUN) trained with
    `--teacher` (one model: firmware sources as without a teacher). Without it, $(RUN) is trained alone."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}

    def trainings(*args: str) -> list[str]:
        r = subprocess.run(["make", "--no-print-directory", "-n", "train", "RUN=runs/t", "RECIPE=synthetic",
                            "KEYWORDS=jarvis", *args], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        return [c.strip() for l in r.stdout.splitlines() for c in l.rstrip("\\").split("&&") if "-m train" in c]

    steps = trainings("TEACHER_SEEDS=0 1 2")
    assert [c.split("--out ")[1].split()[0] for c in steps] == ["runs/t-teacher-s0", "runs/t-teacher-s1",
                                                                 "runs/t-teacher-s2", "runs/t-teacher", "runs/t"]
    assert [c.split("--seed ")[1].split()[0] for c in steps[:3]] == ["0", "1", "2"]
    assert "merge runs/t-teacher-s0 runs/t-teacher-s1 runs/t-teacher-s2" in steps[3]
    assert "--teacher runs/t-teacher" in steps[4] and "--keywords jarvis" in steps[4]
    assert "--seed 5 --teacher runs/t-teacher" in trainings("TEACHER_SEEDS=3 4", "SEEDS=5")[-1]
    alone = trainings()
    assert len(alone) == 1 and "--out runs/t --force" in alone[0] and "--teacher" not in alone[0]


def test_make_sentences_reach_the_training() -> None:
    """`SENTENCES=N` (dry run) passes `--synth-sentences N` to the training; without it the recipe's default holds."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}

    def training(*args: str) -> str:
        r = subprocess.run(["make", "--no-print-directory", "-n", "train", "RUN=runs/t", "RECIPE=speech_commands",
                            *args], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 0, r.stderr
        return next(l for l in r.stdout.splitlines() if "-m train" in l)

    assert "--synth-sentences 1000" in training("SENTENCES=1000")
    assert "--synth-sentences" not in training()
