"""`python -m export report ART [ART ...] --out DIR`: what quantization costs, measured as on a device.

For each variant of an artifacts folder — PyTorch float (the training run named in the manifest), TFLite
float32 / int8 / int16x8 (the Pi's interpreter) and TFLite Micro int8 (the firmware's reference
interpreter) — on the held-out test split:

* clip accuracy: every test clip streamed alone from a reset state and decided with `clip_decision`. The
  TFLite variants are streamed with `edge.evaluation.reset_posteriors`, which makes the figures those of
  `python -m edge eval --model ART --data DIR --variant V --json`.
* standard accuracy: the 12-class argmax protocol of published results (`edge.postprocess.clip_argmax`, no
  thresholds) on `edge.datasets.standard_clips` (command words as they are, `_unknown_` and `_silence_`
  sampled to the mean command class size), as `edge eval`'s "standard" figure.
* false rejections vs false alarms per hour on a deterministic long stream (`build_long_stream` over the
  test split, state never reset): frame posteriors are computed once per variant, then only the
  post-processing is re-run per threshold (`fast_detect`: the arithmetic of `edge.postprocess.Detector`,
  tested event-for-event equal to it) and scored with `score_events`.
* size, parameters, MACs, TFLM arena, per-frame latency (`edge.bench.bench`), and the firmware's figures
  when the manifest has a `firmware` section.

Several artifacts folders give one section each plus a comparison table and plot.

Outputs in DIR: report.md, report.html (self-contained: plots embedded as data URIs), report.json and
PNG plots, written into a temporary folder and renamed into place, plus the marker `.kws-report` (JSON: the
names of the files written). An existing DIR is replaced only when it is empty, or with --force when it holds
nothing but an earlier report (its marker and the plain files the marker lists); anything else is refused
before the evaluation starts.

report.json, schema_version 1 (fractions are in [0, 1]; "pp" in text means percentage points):

| key | type | meaning |
|---|---|---|
| schema_version | int | 1 |
| created_utc | str | ISO time of the report |
| settings | object | minutes, seed, thresholds [float], fa_targets [float], limit (0 = all clips), split, tflm_minutes (null = whole stream), bench_seconds, frr_at_fa_method (str) |
| models | list | one entry per artifacts folder, in command-line order (below) |
| comparison | list | one row per model: name, cell, hidden, layers, params, macs_per_frame, float_accuracy, int8_accuracy, int8_accuracy_cost_pp, float_standard_accuracy, int8_standard_accuracy, float_frr_at_1, int8_frr_at_1, int8_bytes, float32_bytes, tflm_arena_bytes, int8_model_us_p50 |
| comparison_plot | str or null | PNG file name of the comparison plot (null for a single model) |

models[i]:

| key | type | meaning |
|---|---|---|
| name, artifacts | str | manifest name, artifacts folder |
| run | str or null | training run used for PyTorch float (null when missing) |
| data, recipe, split | str | evaluation data folder, its recipe, split |
| labels | [str] | class labels |
| postprocess | object | the manifest's post-processing: window, threshold, thresholds (per-label), refractory |
| calibration | object or null | manifest["operating_point"]: how the export chose the per-keyword thresholds (target FA/h, validation stream, recall and FA/h measured there; export/calibrate.py) |
| model | object | cell, hidden, layers, params, macs_per_frame |
| reference | str | the float variant agreement is measured against: "pytorch_float", else "tflite_float32" |
| summary | str | "int8 costs X pp accuracy and Y pp FRR@1FA/h, saves Z KB, runs W µs/frame (...); standard accuracy A% int8, B% reference" |
| stream | object | seconds, frames, keywords, seed, fa_per_hour_resolution (FA/h of one false alarm) |
| variants | object | key -> variant entry (below); keys: pytorch_float, tflite_float32, tflite_int8, tflite_int16x8, tflm_int8 |
| firmware | object or null | manifest["firmware"] as written by the firmware build (flash_bytes, ram_bytes, ...) |
| plots | object | det, confusion_int8, confusion_float, size_accuracy -> PNG file name |

variants[key]:

| key | type | meaning |
|---|---|---|
| title, runtime | str | display name; interpreter ("pytorch", "litert", "tflm", ...) |
| clips | object | accuracy, clips, per_class {label: float or null}, confusion [[int]] (rows = truth), labels |
| standard | object | the standard figure, comparable with published ones: same fields as clips plus protocol (str); `clip_argmax` over `edge.datasets.standard_clips` (as `edge eval --json`'s "standard") |
| agreement | object | clip, frame_clips, frame_stream: share equal to the reference's decision / frame argmax (1.0 for the reference itself) |
| stream | object | seconds, frames, keywords (planted), shortened (bool: ran on a prefix of the stream) |
| operating_point | object | the manifest's own post-processing: threshold (default; per-label overrides apply), hits, misses, false_alarms, keywords, recall, frr, fa_per_hour; keywords {label: same fields, that label's threshold, its own planted words and false alarms} |
| det | [object] | one point per swept threshold: same fields as operating_point |
| frr_at_fa | object | "0.5", "1.0" -> {target, threshold, frr, fa_per_hour, false_alarms} or null when no threshold reaches it |
| size | object | file_bytes, tflm_arena_bytes (null where not applicable) |
| latency_us | object or null | edge.bench.bench percentiles: frontend, model, postprocess, total -> {p50, p90, p99}; real_time_factor |
| wall_seconds | object | clips, stream: time this report spent on the variant |

The package, one concern a module: `settings` (constants, variants, options), `detection` (the long stream,
frame posteriors and the detection sweep), `evaluation` (every figure of a model; `make_report`), `summary`
(the one-line verdict and comparison rows), `plots`, `document` (Markdown and HTML), `output` (the report
folder) and `cli` (`python -m export report`). The names below are the ones used outside the package.
"""

from __future__ import annotations

from edge.evaluation import load_eval_dataset
from export.report.cli import main
from export.report.detection import (StreamPosteriors, build_stream, fast_detect, frr_at_fa, make_detector,
                                     posteriors_tflite, step_posteriors, stream_features, sweep, window_sums)
from export.report.evaluation import resolve_data_dir
from export.report.output import MARKER, check_out_dir, install_dir, write_marker
from export.report.settings import VARIANTS

__all__ = ["MARKER", "VARIANTS", "StreamPosteriors", "build_stream", "check_out_dir", "fast_detect", "frr_at_fa",
           "install_dir", "load_eval_dataset", "main", "make_detector", "posteriors_tflite", "resolve_data_dir",
           "step_posteriors", "stream_features", "sweep", "window_sums", "write_marker"]
