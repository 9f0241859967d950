"""Choosing a wake word's epoch by recall at false-alarm budgets on running speech (`train.selection`), and the
moving average of the weights (`TrainConfig.ema_decay`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge.postprocess import smooth
from train.selection import Selection, WakeSelection, event_count, lowest_threshold, running_speech
from train.streams import speech_bounds

RATE = 16000


def _word(seconds: float, freq: float) -> np.ndarray:
    """A tone burst with silence around it: `speech_bounds` finds the burst."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = np.zeros(n + RATE // 2)
    x[RATE // 4 : RATE // 4 + n] = 8000 * np.sin(2 * np.pi * freq * t)
    return x.astype(np.int16)


def test_running_speech_runs_the_words_together() -> None:
    words = [_word(0.4, 300 + 50 * i) for i in range(5)]
    files = running_speech(words, 60.0, RATE, seed=3, file_seconds=10.0)
    total = sum(len(f) for f in files) / RATE
    assert 60.0 <= total < 60.0 + 11.0 and all(f.dtype == np.int16 for f in files)
    assert all(len(f) >= 10 * RATE for f in files)
    # words back to back: the silence around each clip is trimmed to 50 ms, gaps are 20-150 ms, so no
    # stretch of near-silence lasts longer than 0.05 + 0.15 + 0.05 s (the -55 dBFS floor is ~58 in int16)
    quiet = np.abs(files[0].astype(np.float64)) < 500
    runs, n = [], 0
    for q in quiet:
        n = n + 1 if q else 0
        runs.append(n)
    assert max(runs) < 0.26 * RATE
    assert np.array_equal(files[0], running_speech(words, 60.0, RATE, seed=3)[0])  # seeded
    assert not np.array_equal(files[0], running_speech(words, 60.0, RATE, seed=4)[0])
    assert running_speech([], 60.0, RATE, seed=3) == []
    a, b = speech_bounds(words[0], RATE // 100)
    assert (b - a) / RATE == pytest.approx(0.4, abs=0.011)


def test_event_count_follows_the_refractory_rule() -> None:
    track = np.zeros(1000)
    track[[100, 150, 400, 401, 900]] = 0.9
    assert event_count(track, 0.5, refractory=100) == 3  # 150 is within 100 frames of 100, 401 of 400
    assert event_count(track, 0.5, refractory=10) == 4
    assert event_count(track, 0.95, refractory=10) == 0


def test_lowest_threshold_is_the_least_within_the_budget() -> None:
    rng = np.random.default_rng(0)
    track = rng.uniform(0, 1, 5000)
    for allowed in (0, 3, 10):
        t = lowest_threshold(track, allowed, refractory=5)
        assert event_count(track, t, 5) <= allowed
        assert event_count(track, t - 1e-6, 5) > allowed  # any lower threshold exceeds the budget
    assert lowest_threshold(np.zeros(10), 0, 5) <= 1e-9  # nothing ever fires: every threshold is fine


def _posteriors(peak: float, frames: int = 50) -> np.ndarray:
    p = np.zeros((frames, 3))
    p[:, 0] = 1.0
    p[20:40, 2] = peak
    p[20:40, 0] = 1.0 - peak
    return p


def test_the_score_rewards_recall_and_punishes_false_alarms() -> None:
    rule = WakeSelection(keyword_ids=(2,), positive_truth=(2,) * 4, window=10, refractory=100, negative_seconds=3600.0,
                         budgets=(1.0,))
    positives = [_posteriors(0.9), _posteriors(0.8), _posteriors(0.7), _posteriors(0.3)]
    quiet = [_posteriors(0.0) for _ in range(20)]
    assert rule.score(positives, quiet)["score"] == 1.0  # no false alarm: every positive peak counts
    # one negative at 0.75 is allowed (1 FA/h on an hour); two push the threshold above 0.75
    assert rule.score(positives, quiet[:-1] + [_posteriors(0.75)])["score"] == 1.0
    two = quiet[:-2] + [_posteriors(0.75), _posteriors(0.75)]
    assert rule.score(positives, two)["score"] == pytest.approx(0.5)  # 0.9 and 0.8 remain
    assert smooth(positives[0], 10)[:, 2].max() == pytest.approx(0.9)


def test_training_averages_weights_and_picks_epochs_by_wake_recall(sc_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-epoch run of the Speech Commands subset as a one-keyword task: the wake-recall rule scores the epoch
    (its score is in the history and the metrics), and the saved weights are the moving average, not the trained
    weights of the last step (recorded by a spy on the optimizer; with one epoch, those are what would be saved
    without the average)."""
    import train.trainer as trainer
    from train.models import ModelConfig

    monkeypatch.setattr(trainer, "RUNNING_MINUTES", 2.0)  # the selection material, not its length, is tested here
    last: dict[str, torch.Tensor] = {}
    original_step = torch.optim.AdamW.step

    def spy(self, *a, **k):  # type: ignore[no-untyped-def]
        out = original_step(self, *a, **k)
        last.update({str(i): p.detach().clone() for i, p in enumerate(self.param_groups[0]["params"])})
        return out

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    cfg = trainer.TrainConfig(recipe="speech_commands", data=(str(sc_dir),), keywords=("yes",),
                              model=ModelConfig(hidden=8), epochs=1, views=1, seed=0, patience=5, ema_decay=0.9,
                              selection=Selection.WAKE_RECALL)
    metrics = trainer.train(cfg, tmp_path / "run", progress=False)
    assert metrics["selection"]["metric"] == "wake-recall"
    run = trainer.load_run(tmp_path / "run")
    history = [l for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert len(history) == 1 and all('"selection_score"' in l for l in history)
    assert run.meta["train_config"]["selection"] == "wake-recall" and run.meta["train_config"]["ema_decay"] == 0.9
    saved = list(run.model.parameters())
    trained = [last[str(i)] for i in range(len(saved))]
    assert any(not torch.equal(s.detach(), t) for s, t in zip(saved, trained))  # the average, not the raw weights
    assert 0.0 <= metrics["selection"]["score"] <= 1.0


@pytest.mark.parametrize("keywords, expected", [
    # a wake word: the measured schedule and detection window; band-limiting stays off (it hurt 'happy')
    ("jarvis", (8, 0.998, Selection.WAKE_RECALL, 75, 0.0)),
    ("yes,no", (30, 0.0, Selection.CLIP_ACCURACY, 10, 0.0)),  # several keywords: as before (8 epochs undertrain them)
])
def test_synthetic_defaults_depend_on_the_keyword_count(keywords: str, expected: tuple, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m train --recipe synthetic --keywords ...` without --epochs/--ema-decay/--select/--window/--bandlimit: the
    defaults the README states; explicit flags win. The data and the training are replaced by stand-ins that record the config."""
    import train.cli as cli
    import train.trainer as trainer

    seen = []
    monkeypatch.setattr(cli, "resolve_data", lambda args: ("folder", [tmp_path], tuple(args.keywords.split(","))))
    metrics = {"size": {"params": 0, "macs_per_frame": 0}, "train_seconds": 0}
    monkeypatch.setattr(trainer, "train", lambda cfg, out, progress=True: seen.append(cfg) or metrics)
    for extra in ([], ["--epochs", "3", "--ema-decay", "0", "--select", "clip-accuracy", "--window", "20",
                       "--bandlimit", "0.7"]):
        assert cli.main(["train", "--recipe", "synthetic", "--keywords", keywords, "--out", str(tmp_path / "run"),
                         "--force", "--negative-data", "none", *extra]) == 0
    def chosen(cfg):
        return cfg.epochs, cfg.ema_decay, cfg.selection, cfg.postprocess.window, cfg.stream.bandlimit_prob

    assert chosen(seen[0]) == expected
    assert chosen(seen[1]) == (3, 0.0, Selection.CLIP_ACCURACY, 20, 0.7)
    assert cli.main(["train", "--recipe", "synthetic", "--keywords", keywords, "--out", str(tmp_path / "run"),
                     "--force", "--negative-data", "none", "--window", "0"]) == 2  # a user error: one line, exit 2
    assert len(seen) == 2 and "--window must be at least 1" in capsys.readouterr().err
