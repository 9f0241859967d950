"""The CLIs' defaults are the dataclass defaults they stand for (one source for each): an option with no value on
the command line gives what the dataclass gives, and building the parsers imports neither torch nor TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import astuple, replace
from pathlib import Path

from train.config import BASE_SCHEDULE, LR_BATCH

REPO = Path(__file__).resolve().parents[1]


def test_train_cli_defaults_are_the_train_config_defaults() -> None:
    from train.cli import build_parser, parse_spec_augment, parse_warp
    from train.config import TrainConfig

    args = build_parser().parse_args(["train"])
    cfg = TrainConfig()
    parsed = {"seed": args.seed, "fresh_view_every": args.fresh_view_every,
              "threads": args.threads, "oversample": args.oversample, "model.cell": args.model,
              "loop_gain_bound": args.loop_gain_bound, "babble_share": args.babble,
              "warp": parse_warp(args.warp), "model.size": args.size, "model.feedback_levels": args.feedback_levels,
              "model.bidirectional": args.bidirectional, "stream.objective": args.objective,
              "stream.snr_db": tuple(float(v) for v in args.snr_db.split(",")),
              "stream.bandlimit_prob": args.bandlimit, "stream.weak_end_prob": args.weak_ending,
              "spec": parse_spec_augment(args.spec_augment)}
    expected = {"seed": cfg.seed, "fresh_view_every": cfg.fresh_view_every,
                "threads": cfg.threads, "oversample": cfg.oversample, "model.cell": cfg.model.cell.value,
                "loop_gain_bound": cfg.loop_gain_bound, "babble_share": cfg.babble_share,
                "warp": cfg.warp, "model.size": cfg.model.size.value, "model.feedback_levels": cfg.model.feedback_levels,
                "model.bidirectional": cfg.model.bidirectional, "stream.objective": cfg.stream.objective.value,
                "stream.snr_db": tuple(cfg.stream.snr_db), "stream.bandlimit_prob": cfg.stream.bandlimit_prob,
                "stream.weak_end_prob": cfg.stream.weak_end_prob, "spec": (cfg.spec_time_mask, cfg.spec_freq_mask)}
    assert parsed == expected
    # options left unset (None) are resolved in `cmd_train`: from --size, the cell, the recipe
    assert args.hidden is args.layers is args.proj is args.epochs is args.lr is args.loop_penalty is None
    assert args.batch is args.views is args.patience is None  # `resolve_schedule`: from the recipe and --size
    assert args.unknown_whole_word is None  # on for the synthetic recipe, off otherwise
    assert args.unknown_word_min is None  # SC_UNKNOWN_WORD_MIN for speech_commands, TrainConfig's (off) otherwise
    from train.cli import SC_UNKNOWN_WORD_MIN, resolve_unknown_word_min

    parse = build_parser().parse_args
    assert resolve_unknown_word_min(parse(["train", "--recipe", "speech_commands"])) == SC_UNKNOWN_WORD_MIN > 0
    assert resolve_unknown_word_min(parse(["train", "--recipe", "synthetic"])) == cfg.unknown_word_min == 0
    assert resolve_unknown_word_min(parse(["train", "--recipe", "speech_commands", "--unknown-word-min", "0"])) == 0
    from train.cli import SYNTH_TIGHT, resolve_running_speech

    assert args.running_speech is None  # SYNTH_TIGHT for the synthetic recipe, the stream's (off) otherwise
    assert resolve_running_speech(parse(["train", "--recipe", "synthetic"])) == SYNTH_TIGHT > 0
    assert resolve_running_speech(parse(["train", "--recipe", "speech_commands"])) == cfg.stream.tight_prob
    assert resolve_running_speech(parse(["train", "--recipe", "fsdd", "--running-speech", "0.25"])) == 0.25
    import pytest

    from edge.errors import UserError
    for bad in ("-0.1", "1.5"):
        with pytest.raises(UserError, match="--running-speech must be a share between 0 and 1"):
            resolve_running_speech(parse(["train", "--running-speech", bad]))
    # the default model is the default size's preset; the dataclass's schedule is the base one, at its cell's rate
    assert {k: getattr(cfg.model, k) for k in cfg.model.size.preset} == cfg.model.size.preset
    assert (cfg.epochs, cfg.batch, cfg.views, cfg.patience) == astuple(BASE_SCHEDULE)
    assert cfg.lr == cfg.model.cell.lr_at(cfg.batch) == cfg.model.cell.default_lr  # measured at LR_BATCH rows
    assert BASE_SCHEDULE.batch == LR_BATCH


def test_train_schedule_is_resolved_per_recipe_and_size() -> None:
    """Speech Commands (and every recipe but `synthetic`) trains on its size's schedule, at the cell's learning
    rate for that batch; the synthetic recipes keep the base batch, views and patience and their own epochs; each
    flag overrides its own field only; a count below 1 is one error line."""
    import pytest

    from edge.errors import UserError
    from train.cli import SYNTH_EPOCHS, WAKE_EPOCHS, build_parser, resolve_schedule
    from train.config import Cell, ModelSize

    parse = build_parser().parse_args
    for size in ModelSize:
        for recipe in ("speech_commands", "fsdd", "folder"):
            assert resolve_schedule(parse(["train", "--recipe", recipe, "--size", size.value]), size, False) == size.schedule
    mcu = ModelSize.MCU
    assert mcu.schedule.batch > BASE_SCHEDULE.batch and ModelSize.PI.schedule != mcu.schedule
    assert resolve_schedule(parse(["train", "--recipe", "synthetic"]), mcu, True) == replace(BASE_SCHEDULE, epochs=WAKE_EPOCHS)
    assert resolve_schedule(parse(["train", "--recipe", "synthetic"]), mcu, False) == replace(BASE_SCHEDULE, epochs=SYNTH_EPOCHS)
    args = parse(["train", "--recipe", "speech_commands", "--batch", "64", "--patience", "5"])
    assert resolve_schedule(args, mcu, False) == replace(mcu.schedule, batch=64, patience=5)
    for flag in ("--epochs", "--batch", "--views", "--patience"):
        with pytest.raises(UserError, match=f"{flag} must be at least 1"):
            resolve_schedule(parse(["train", flag, "0"]), mcu, False)
    # the square-root rule: 4x the rows, twice the rate; each cell from its own rate
    for cell in Cell:
        assert cell.lr_at(LR_BATCH) == cell.default_lr
        assert cell.lr_at(4 * LR_BATCH) == pytest.approx(2 * cell.default_lr)


def test_export_cli_defaults_are_the_export_options_defaults() -> None:
    from export.cli import build_parser
    from export.options import ExportOptions

    opts = ExportOptions()
    build = build_parser().parse_args(["build", "run", "--out", "artifacts"])
    assert (build.min_agreement, build.verify_seconds, build.target_fa_per_hour, build.threshold_minutes,
            not build.no_baseline) == (opts.min_agreement, opts.verify_seconds, opts.target_fa_per_hour,
                                       opts.threshold_minutes, opts.baseline)
    verify = build_parser().parse_args(["verify", "artifacts"])
    assert (verify.min_agreement, verify.seconds) == (opts.min_agreement, opts.verify_seconds)


def test_building_the_parsers_imports_no_framework() -> None:
    code = ("import sys; import train.cli, export.cli; train.cli.build_parser(); export.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'tensorflow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_running_speech_reaches_the_stream_config(tmp_path: Path, monkeypatch) -> None:
    """`--running-speech` (and its per-recipe default) is what the training's stream config gets."""
    import train.cli as cli
    import train.trainer as trainer

    seen = []
    monkeypatch.setattr(cli, "resolve_data", lambda args: (args.recipe, [tmp_path], None))
    metrics = {"size": {"params": 0, "macs_per_frame": 0}, "train_seconds": 0}
    monkeypatch.setattr(trainer, "train", lambda cfg, out, progress=True: seen.append(cfg) or metrics)
    base = ["train", "--out", str(tmp_path / "run"), "--force", "--quiet"]
    assert cli.main([*base, "--recipe", "speech_commands"]) == 0
    assert cli.main([*base, "--recipe", "speech_commands", "--running-speech", "0.3"]) == 0
    assert cli.main([*base, "--recipe", "folder", "--running-speech", "2"]) == 2
    assert [c.stream.tight_prob for c in seen] == [0.0, 0.3]


def test_fresh_views_reach_the_train_config(tmp_path: Path, monkeypatch) -> None:
    """`--fresh-view-every E` is what the training config gets (default off); a negative value is one error."""
    import train.cli as cli
    import train.trainer as trainer

    seen = []
    monkeypatch.setattr(cli, "resolve_data", lambda args: (args.recipe, [tmp_path], None))
    metrics = {"size": {"params": 0, "macs_per_frame": 0}, "train_seconds": 0}
    monkeypatch.setattr(trainer, "train", lambda cfg, out, progress=True: seen.append(cfg) or metrics)
    base = ["train", "--recipe", "speech_commands", "--out", str(tmp_path / "run"), "--force", "--quiet"]
    assert cli.main(base) == 0
    assert cli.main([*base, "--fresh-view-every", "5"]) == 0
    assert cli.main([*base, "--fresh-view-every", "-1"]) == 2
    assert [c.fresh_view_every for c in seen] == [0, 5]
