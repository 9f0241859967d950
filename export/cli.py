"""`python -m export [build] RUN --out DIR | verify DIR | report DIR... | codegen ... | soak | wakeword DIR... |
falsealarms DIR... | esphome RUN --keyword WORD --out DIR | esphome-check MODEL [MANIFEST]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from edge.args import Parser, finite_number
from edge.errors import run_cli

SUBCOMMANDS = ("build", "verify", "report", "codegen", "soak", "wakeword", "falsealarms", "esphome", "esphome-check")
#: Shortest held-out stream for the fidelity check (build --verify-seconds, verify --seconds).
MIN_VERIFY_SECONDS = 60.0


def build_parser() -> argparse.ArgumentParser:
    from export.options import ExportOptions

    defaults = ExportOptions()  # every default below is the ExportOptions one (tests/test_cli_defaults.py)
    parser = Parser(prog="python -m export", description="Export, verify and report.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="a training run -> verified artifacts folder (the default command)")
    b.add_argument("run", type=Path, help="training run folder")
    b.add_argument("--out", type=Path, required=True, help="artifacts folder to create")
    b.add_argument("--force", action="store_true", help="replace an existing artifacts folder")
    b.add_argument("--data", nargs="+", default=None, metavar="DIR",
                   help="dataset folder(s), if not the ones the run was trained on")
    b.add_argument("--min-agreement", type=finite_number(0, 1), default=defaults.min_agreement,
                   help="fail if int8 vs float frame argmax agreement is below this (default "
                        f"{defaults.min_agreement:g})")
    b.add_argument("--verify-seconds", type=finite_number(MIN_VERIFY_SECONDS), default=defaults.verify_seconds,
                   help=f"held-out audio for the fidelity check (>= {MIN_VERIFY_SECONDS:g})")
    b.add_argument("--no-baseline", action="store_true", help="skip the non-streaming window model")
    b.add_argument("--target-fa-per-hour", type=finite_number(0, above=True), default=defaults.target_fa_per_hour,
                   metavar="X", help="set each keyword's threshold for at most X false alarms per hour in all "
                   "(shared among the keywords to leave the fewest without a hit) on a validation-split stream "
                   f"(default {defaults.target_fa_per_hour:g})")
    b.add_argument("--threshold-minutes", type=finite_number(0, above=True), default=defaults.threshold_minutes,
                   metavar="M",
                   help=f"length of that validation stream in minutes (default {defaults.threshold_minutes:g})")
    b.add_argument("--quiet", action="store_true")
    v = sub.add_parser("verify", help="re-measure the fidelity of an artifacts folder")
    v.add_argument("artifacts", type=Path)
    v.add_argument("--run", type=Path, default=None, help="training run (default: the one in the manifest)")
    v.add_argument("--data", nargs="+", default=None, metavar="DIR")
    v.add_argument("--seconds", type=finite_number(MIN_VERIFY_SECONDS), default=defaults.verify_seconds,
                   help=f"held-out audio for the fidelity check (>= {MIN_VERIFY_SECONDS:g}, default "
                        f"{defaults.verify_seconds:g})")
    v.add_argument("--min-agreement", type=finite_number(0, 1), default=defaults.min_agreement)
    v.add_argument("--json", action="store_true")
    sub.add_parser("report", help="accuracy-vs-quantization report", add_help=False)
    sub.add_parser("codegen", help="C sources for the firmware from an int8 model", add_help=False)
    sub.add_parser("soak", help="hour-long streaming test of the int8 runner", add_help=False)
    sub.add_parser("wakeword", help="recall on real recordings of the keyword, FA/h on negative audio", add_help=False)
    sub.add_parser("falsealarms", help="FA/h per keyword on audio without keywords, streamed as one stream",
                   add_help=False)
    sub.add_parser("esphome", help="a wake-word model + manifest for ESPHome's micro_wake_word", add_help=False)
    sub.add_parser("esphome-check", help="check a .tflite + manifest against micro_wake_word's contract",
                   add_help=False)
    return parser


def cmd_build(args: argparse.Namespace) -> int:
    from export.calibrate import summary_line
    from export.pipeline import ExportOptions, build_artifacts

    opts = ExportOptions(verify_seconds=args.verify_seconds, min_agreement=args.min_agreement,
                         baseline=not args.no_baseline, target_fa_per_hour=args.target_fa_per_hour,
                         threshold_minutes=args.threshold_minutes)
    m = build_artifacts(args.run, args.out, opts, force=args.force, data_override=args.data, progress=not args.quiet)
    f = m["fidelity"]
    print(f"artifacts written to {args.out}")
    print(f"  int8: {m['variants']['int8']['bytes']} bytes, TFLM arena {m['variants']['int8']['tflm_arena_bytes']} bytes, "
          f"frame agreement with float {f['int8']['frame_argmax_agreement']:.2%}")
    print(f"  float32 vs PyTorch max |diff| {f['float32']['max_abs_prob_diff']:.1e}; "
          f"int16x8 agreement {f['int16x8']['frame_argmax_agreement']:.2%}")
    if "frame_argmax_agreement_vs_int8" in f.get("tflm_int8", {}):
        print(f"  TFLite Micro vs TFLite int8: argmax agreement {f['tflm_int8']['frame_argmax_agreement_vs_int8']:.2%}, "
              f"max probability difference {f['tflm_int8']['max_prob_step_diff']} int8 steps")
    print(f"  {summary_line(m['operating_point'])}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from edge.manifest import load_manifest
    from export.pipeline import ExportOptions, run_dataset
    from export.verify import verify_artifacts
    from train.trainer import load_run

    manifest = load_manifest(args.artifacts)
    run_dir = args.run or Path(manifest.data.get("training", {}).get("run", ""))
    run = load_run(run_dir)
    fidelity = verify_artifacts(args.artifacts, run, run_dataset(run, args.data), args.seconds,
                                 ExportOptions().seed, progress=not args.json)
    agreement = fidelity["int8"]["frame_argmax_agreement"]
    ok = agreement >= args.min_agreement and fidelity["float32"]["within_tolerance"]
    if args.json:
        print(json.dumps({"ok": ok, **fidelity}))
    else:
        print(json.dumps(fidelity, indent=2))
        print("verify: " + ("PASS" if ok else "FAIL") + f" (int8 agreement {agreement:.2%}, required {args.min_agreement:.1%})")
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "build")

    def body() -> int:
        if argv and argv[0] == "report":
            from export.report.cli import main as report_main
            return report_main(argv[1:])
        if argv and argv[0] == "soak":
            from export import soak
            return soak.main(argv[1:])
        if argv and argv[0] == "wakeword":
            from export import wakeword
            return wakeword.main(argv[1:])
        if argv and argv[0] == "falsealarms":
            from export import falsealarms
            return falsealarms.main(argv[1:])
        if argv and argv[0] in ("esphome", "esphome-check"):
            from export import esphome
            return (esphome.main if argv[0] == "esphome" else esphome.check_main)(argv[1:])
        if argv and argv[0] == "codegen":
            from export.codegen import main as codegen_main
            return codegen_main(argv[1:])
        args = build_parser().parse_args(argv)
        return {"build": cmd_build, "verify": cmd_verify}[args.command](args)

    return run_cli(body)
