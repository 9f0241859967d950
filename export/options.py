"""What `python -m export build` does by default (`ExportOptions`), torch- and TensorFlow-free so that the CLI's
defaults read it (`export.cli`); re-exported by `export.pipeline`."""

from __future__ import annotations

from dataclasses import dataclass

from export.calibrate import DEFAULT_MINUTES, DEFAULT_TARGET_FA_PER_HOUR


@dataclass(frozen=True)
class ExportOptions:
    calibration_seconds: float = 180.0
    calibration_samples: int = 2000
    #: held-out audio of the fidelity check (the int8 agreement gate). 10 minutes, because on 90 s one clip can
    #: decide it: the 64-epoch `mcu` Speech Commands model agreed on 97.80 % of frames of the export's 90-s stream,
    #: 98.29-98.98 % on six other 90-s streams (sd 0.27 pp), 98.67 % on 600 s. Costs ~30 s for a GRU-64.
    verify_seconds: float = 600.0
    min_agreement: float = 0.98
    seed: int = 1234
    baseline: bool = True
    onnx: bool = True
    #: the operating point (`export.calibrate`): per-keyword thresholds for this many false alarms per hour
    target_fa_per_hour: float = DEFAULT_TARGET_FA_PER_HOUR
    #: ... set on this many minutes of validation-split stream
    threshold_minutes: float = DEFAULT_MINUTES
