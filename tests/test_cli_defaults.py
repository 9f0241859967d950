"""The CLIs' defaults are the dataclass defaults they stand for (one source for each): an option with no value on
the command line gives what the dataclass gives, and building the parsers imports neither torch nor TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_train_cli_defaults_are_the_train_config_defaults() -> None:
    from train.cli import build_parser, parse_spec_augment, parse_warp
    from train.config import TrainConfig

    args = build_parser().parse_args(["train"])
    cfg = TrainConfig()
    parsed = {"batch": args.batch, "patience": args.patience, "views": args.views, "seed": args.seed,
              "threads": args.threads, "oversample": args.oversample, "model.cell": args.model,
              "loop_gain_bound": args.loop_gain_bound, "babble_share": args.babble,
              "warp": parse_warp(args.warp), "model.size": args.size, "model.feedback_levels": args.feedback_levels,
              "model.bidirectional": args.bidirectional, "stream.objective": args.objective,
              "stream.snr_db": tuple(float(v) for v in args.snr_db.split(",")),
              "stream.bandlimit_prob": args.bandlimit, "spec": parse_spec_augment(args.spec_augment)}
    expected = {"batch": cfg.batch, "patience": cfg.patience, "views": cfg.views, "seed": cfg.seed,
                "threads": cfg.threads, "oversample": cfg.oversample, "model.cell": cfg.model.cell.value,
                "loop_gain_bound": cfg.loop_gain_bound, "babble_share": cfg.babble_share,
                "warp": cfg.warp, "model.size": cfg.model.size.value, "model.feedback_levels": cfg.model.feedback_levels,
                "model.bidirectional": cfg.model.bidirectional, "stream.objective": cfg.stream.objective.value,
                "stream.snr_db": tuple(cfg.stream.snr_db), "stream.bandlimit_prob": cfg.stream.bandlimit_prob,
                "spec": (cfg.spec_time_mask, cfg.spec_freq_mask)}
    assert parsed == expected
    # options left unset (None) are resolved in `cmd_train`: from --size, the cell, the recipe
    assert args.hidden is args.layers is args.proj is args.epochs is args.lr is args.loop_penalty is None
    assert args.unknown_whole_word is None  # on for the synthetic recipe, off otherwise
    assert args.unknown_word_min is None  # SC_UNKNOWN_WORD_MIN for speech_commands, TrainConfig's (off) otherwise
    from train.cli import SC_UNKNOWN_WORD_MIN, resolve_unknown_word_min

    parse = build_parser().parse_args
    assert resolve_unknown_word_min(parse(["train", "--recipe", "speech_commands"])) == SC_UNKNOWN_WORD_MIN > 0
    assert resolve_unknown_word_min(parse(["train", "--recipe", "synthetic"])) == cfg.unknown_word_min == 0
    assert resolve_unknown_word_min(parse(["train", "--recipe", "speech_commands", "--unknown-word-min", "0"])) == 0
    # the default model is the default size's preset, trained for its epochs at its cell's learning rate
    assert {k: getattr(cfg.model, k) for k in cfg.model.size.preset} == cfg.model.size.preset
    assert (cfg.epochs, cfg.lr) == (cfg.model.size.default_epochs, cfg.model.cell.default_lr)


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
