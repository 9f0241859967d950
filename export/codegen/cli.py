"""`python -m export codegen`: generate the firmware sources, or `costs` of a Cortex-M4 build."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from edge.errors import UserError
from edge.frontend import FrontendConfig
from edge.postprocess import PostprocessConfig
from export.codegen.costs import firmware_costs, record_in_manifest
from export.codegen.errors import CodegenError
from export.codegen.generate import generate, generate_from_artifacts, threshold_override

#: What every message of the command starts with (the module's name before it became a package; kept so that
#: the output stays the same).
PREFIX = "c_codegen"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parse_pair(text: str) -> tuple[str, str]:
    if text.count(":") != 1:
        raise argparse.ArgumentTypeError(f"state pair must look like INPUT:OUTPUT, got '{text}'")
    a, b = text.split(":")
    return a, b


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m export codegen",
        description="Firmware C sources from an artifacts folder (or a bare int8 .tflite). "
        "`costs --build DIR [--wav FILE]` reports the M4 build's flash/RAM/stack/instructions.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--artifacts", type=Path, help="artifacts folder from `make export` (manifest.json)")
    src.add_argument("--tflite", type=Path, help="a bare int8 .tflite model (generic labels, default detection)")
    p.add_argument("--out", type=Path, required=True, help="output directory (e.g. firmware/generated)")
    p.add_argument("--threshold", type=float, default=None,
                   help="one detection threshold for every keyword (like `python -m edge run --threshold`)")
    p.add_argument(
        "--state-pairs", type=_parse_pair, nargs="*", default=[], metavar="IN:OUT",
        help="with --tflite: recurrent state tensors, input name:output name",
    )
    p.add_argument("--frontend-config", type=Path, help="with --tflite: JSON file with FrontendConfig fields")
    p.add_argument("--no-lut", action="store_true", help="evaluate LOGISTIC/TANH per element instead of tables")
    return p


def _costs_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m export codegen costs", description=firmware_costs.__doc__.split("\n\n")[0])
    p.add_argument("--build", type=Path, required=True, help="FW_BUILD_DIR of the M4 build (default build/firmware)")
    p.add_argument("--wav", type=Path, help="16 kHz mono WAV to run under QEMU for stack and instruction counts")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--manifest", type=Path, metavar="ART",
                   help="also record the costs in ART/manifest.json (section `firmware`, replaced atomically)")
    return p


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.artifacts is not None:
        if args.state_pairs or args.frontend_config:
            raise CodegenError("--state-pairs and --frontend-config come from the manifest with --artifacts")
        info = generate_from_artifacts(args.artifacts, args.out, args.threshold, use_lut=not args.no_lut)
    else:
        frontend: Any = None
        if args.frontend_config is not None:
            frontend = FrontendConfig.from_dict(json.loads(args.frontend_config.read_text()))
        post = threshold_override(PostprocessConfig(), args.threshold)
        info = generate(args.tflite.read_bytes(), args.out, state_pairs=args.state_pairs, frontend_config=frontend,
                        use_lut=not args.no_lut, source_name=args.tflite.name, postprocess=post)
    print(
        f"{PREFIX}: {len(info.ops)} ops, {info.macs} MACs, arena {info.arena_bytes} B, "
        f"inputs {info.input_bytes} B -> {args.out}"
    )
    if info.settings is not None:
        st = info.settings
        fires = [(label, limit) for label, limit, f in zip(st.labels, st.limits, st.fires) if f]
        print(f"{PREFIX}: {len(st.labels)} labels, detection window {st.postprocess.window} frames, "
              f"refractory {st.postprocess.refractory}, limits " + ", ".join(f"{l}={v}" for l, v in fires))
    return 0


def _cmd_costs(args: argparse.Namespace) -> int:
    costs = firmware_costs(args.build, args.wav)
    if args.manifest is not None:
        print(f"{PREFIX}: firmware costs recorded in {record_in_manifest(args.manifest, costs)}", file=sys.stderr)
    if args.json:
        print(json.dumps(costs))
    else:
        for key, value in costs.items():
            print(f"{key:32s} {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m export codegen ARGS`; returns the exit status (2 and one line on stderr for a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "costs":
            return _cmd_costs(_costs_parser().parse_args(argv[1:]))
        return _cmd_generate(_parser().parse_args(argv))
    except (OSError, ValueError, UserError) as exc:
        print(f"{PREFIX}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
