"""What the report measures and how: its constants (split, swept thresholds, false-alarm targets, stream seed),
the variants it compares and the options of one run (`ReportOptions`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge.interpreters import Runtime

SCHEMA_VERSION = 1
REPORT_FILES = ("report.md", "report.html", "report.json")
FA_TARGETS = (0.5, 1.0)
#: Swept thresholds: 0.05 steps, then ever finer towards 1.0 where the low-false-alarm end of the curve lies (an
#: int8 posterior moves in 1/256 steps: with a 10-frame window the last reachable limit is 0.996).
DEFAULT_THRESHOLDS = (tuple(round(0.05 * i, 2) for i in range(1, 19)) + tuple(round(0.01 * i, 2) for i in range(91, 100))
                      + (0.992, 0.994, 0.996, 0.998, 0.999, 1.0))
FRR_AT_FA_METHOD = ("lowest FRR among the swept thresholds whose FA/h <= target (no interpolation); "
                    "null when no swept threshold reaches the target")
STREAM_SEED = 2024
SPLIT = "test"
REFERENCE_ORDER = ("pytorch_float", "tflite_float32")


#: the one threshold for every keyword at which the false-alarm section counts too, beside each model's manifest
#: thresholds: those are set per model, so models compare on one scale only at a threshold they share
FALSE_ALARM_THRESHOLDS: tuple[float, ...] = (0.9,)


@dataclass(frozen=True)
class VariantDef:
    """One variant the report measures: its report.json key, title, manifest variant and runtime."""

    key: str
    title: str
    tflite: str | None  # manifest variant name; None for PyTorch
    runtime: Runtime | None


VARIANTS = (
    VariantDef("pytorch_float", "PyTorch float", None, None),
    VariantDef("tflite_float32", "TFLite float32", "float32", Runtime.AUTO),
    VariantDef("tflite_int8", "TFLite int8", "int8", Runtime.AUTO),
    VariantDef("tflite_int16x8", "TFLite int16x8", "int16x8", Runtime.AUTO),
    VariantDef("tflm_int8", "TFLite Micro int8", "int8", Runtime.TFLM),
)


@dataclass(frozen=True)
class ReportOptions:
    """The options of one report run (`python -m export report`'s flags)."""

    minutes: float = 30.0
    data: Sequence[Path] | None = None
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    seed: int = STREAM_SEED
    limit: int = 0
    tflm_minutes: float | None = None  # None: the whole stream
    bench_seconds: float = 5.0
    progress: bool = True
    #: real recordings of a keyword and negative audio: the wake-word section (`export.wakeword`); negative audio
    #: alone (or with them): false alarms per keyword with the files as one stream (`export.falsealarms`)
    positives: Path | None = None
    negatives: Path | None = None
    keyword: str | None = None
