"""Hard-negative mining for a wake word (`train.mining`, `--hard-negatives N`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.frontend import FrontendConfig
from train.mining import PIECE_AFTER_S, PIECE_BEFORE_S, Peak, cut, hardest, keyword_track, peaks

FE = FrontendConfig()


def test_peaks_are_highest_first_and_a_refractory_period_apart() -> None:
    track = np.zeros(400)
    track[[50, 55, 200, 300, 390]] = [0.9, 0.95, 0.5, 0.04, 0.7]
    track[201] = 0.45  # a shoulder of the 200 peak
    found = peaks(track, refractory=20, floor=0.05)
    # 55 suppresses 50 (within 20 frames), 200 suppresses its shoulder, 300 is below the floor
    assert found == [(55, 0.95), (390, 0.7), (200, 0.5)]
    assert [k for k, _ in peaks(track, refractory=0, floor=0.05)] == [55, 50, 390, 200, 201]


def test_hardest_takes_the_highest_peaks_over_all_files() -> None:
    a, b = np.zeros(300), np.zeros(300)
    a[[10, 150]] = [0.3, 0.8]
    b[[20, 250]] = [0.6, 0.9]
    assert hardest([a, b], count=3, refractory=50, floor=0.1) == [Peak(1, 250, 0.9), Peak(0, 150, 0.8), Peak(1, 20, 0.6)]
    assert len(hardest([a, b], count=10, refractory=50, floor=0.1)) == 4  # fewer above the floor than asked


def test_a_mined_clip_spans_the_averaging_window_before_its_peak() -> None:
    pcm = np.arange(10 * FE.sample_rate, dtype=np.int64).astype(np.int16)
    frame = 500  # ends at sample 500 * hop + window
    end = frame * FE.hop_samples + FE.window_samples
    piece = cut(pcm, frame, FE)
    assert len(piece) == int(PIECE_BEFORE_S * FE.sample_rate) + int(PIECE_AFTER_S * FE.sample_rate)
    assert piece[0] == pcm[end - int(PIECE_BEFORE_S * FE.sample_rate)]
    assert cut(pcm, 10, FE)[0] == pcm[0]  # clipped at the start of the file
    assert cut(pcm, frame, FE).base is None  # a copy: the mining speech can be freed


def test_keyword_track_is_the_detectors_moving_average_of_the_best_keyword() -> None:
    p = np.zeros((100, 4))
    p[40:60, 2] = 1.0  # keyword 2 for 20 frames
    p[10:15, 3] = 1.0  # keyword 3 for 5 frames
    track = keyword_track(p, [2, 3], window=10)
    assert track.max() == pytest.approx(1.0) and track[59] == pytest.approx(1.0)
    assert track[14] == pytest.approx(0.5)
    assert keyword_track(p, [3], window=10).max() == pytest.approx(0.5)


def test_a_wake_word_run_mines_real_speech_and_trains_on_it(data_root: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The wake-word layout (keyword from one folder, real speech from another that is held out for the epoch
    choice): with `hard_negatives`, a second phase runs on views that hold every mined clip `mine_repeats`
    times as `_unknown_`, the mined clips come from the negative folder's training split only, and the run
    records what was mined."""
    import train.trainer as trainer
    from edge.datasets import UNKNOWN, Recipe
    from train.models import ModelConfig
    from train.selection import Selection

    sc, extra = data_root / "speech_commands_v2_subset", data_root / "speech_commands_v2_train_extra"
    if not extra.is_dir():
        pytest.skip(f"the extra Speech Commands folder is not at {extra}")
    monkeypatch.setattr(trainer, "RUNNING_MINUTES", 1.0)  # selection material: its length is not tested here
    monkeypatch.setattr(trainer, "MINE_CLIPS", 120)
    monkeypatch.setattr(trainer, "mining_speech", lambda clips, rate: trainer.running_speech(clips, 60.0, rate, 1, 10.0))
    monkeypatch.setattr(trainer, "MINE_FLOOR", 0.0)  # an untrained model's scores are low: rank them all
    pools: list[list[np.ndarray]] = []
    original = trainer.mining_clips
    monkeypatch.setattr(trainer, "mining_clips", lambda *a: pools.append(original(*a)) or pools[-1])
    built: list[list[tuple[np.ndarray, int]]] = []
    original_view = trainer.view_clips
    monkeypatch.setattr(trainer, "view_clips", lambda items, *a: built.append(original_view(items, *a)) or built[-1])
    cfg = trainer.TrainConfig(recipe=Recipe.FOLDER, data=(str(sc), str(extra)), keywords=("yes",),
                              model=ModelConfig(hidden=8, proj=0), epochs=1, views=1, seed=0, patience=5,
                              unknown_per_view=300, heldout_data=(str(extra),), negative_data=(str(extra),),
                              selection=Selection.WAKE_RECALL, hard_negatives=12, mine_epochs=1, mine_repeats=2)
    metrics = trainer.train(cfg, tmp_path / "run", progress=False)
    assert metrics["mining"]["clips"] == 12 and metrics["mining"]["score_max"] >= metrics["mining"]["score_min"]
    assert metrics["mining"]["kept"] == (metrics["best_epoch"] == 2)
    history = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(history) == 2  # one epoch, then one mined epoch
    assert len(pools) == 1 and len(pools[0]) == 120
    pool_ids = {id(c) for c in pools[0]}
    first, second = built
    unknown = trainer.load_run(tmp_path / "run").labels.index(UNKNOWN)
    mined = second[len(first):] if len(second) > len(first) else []
    # the first view's `_unknown_` cap applies to both; the mined copies come on top, all `_unknown_`
    assert len(second) == len(first) + 24 and all(label == unknown for _, label in mined)
    assert not any(id(p) in pool_ids for p, _ in first)  # the pool is not trained on in the first phase


def test_mining_flags_reach_the_config_and_bad_ones_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`--hard-negatives N --mine-epochs E` reach the training config (off by default); a negative count, zero
    epochs, or mining without real negative speech are refused in one line before any training."""
    import train.cli as cli
    import train.trainer as trainer

    seen = []
    negatives = tmp_path / "real"
    negatives.mkdir()
    monkeypatch.setattr(cli, "resolve_data", lambda args: ("synthetic", [tmp_path, *([] if args.negative_data == ["none"] else [negatives])],
                                                           tuple(args.keywords.split(","))))
    metrics = {"size": {"params": 0, "macs_per_frame": 0}, "train_seconds": 0}
    monkeypatch.setattr(trainer, "train", lambda cfg, out, progress=True: seen.append(cfg) or metrics)
    base = ["train", "--recipe", "synthetic", "--keywords", "jarvis", "--out", str(tmp_path / "run"), "--force"]
    assert cli.main(base) == 0 and cli.main(base + ["--hard-negatives", "300", "--mine-epochs", "2"]) == 0
    assert (seen[0].hard_negatives, seen[1].hard_negatives, seen[1].mine_epochs) == (0, 300, 2)
    assert seen[1].negative_data == (str(negatives),)
    for bad, message in ((["--hard-negatives", "-1"], "--hard-negatives must be >= 0"),
                         (["--hard-negatives", "5", "--mine-epochs", "0"], "--mine-epochs >= 1"),
                         (["--hard-negatives", "5", "--negative-data", "none"], "--hard-negatives needs the synthetic recipe's real negative speech")):
        assert cli.main(base + bad) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert len(seen) == 2
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "config.json").write_text("{}")
    assert cli.main([*base[:-2], str(kept), "--force", "--hard-negatives", "5", "--negative-data", "none"]) == 2
    assert (kept / "config.json").exists()  # refused before --force replaces anything
