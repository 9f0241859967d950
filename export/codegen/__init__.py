"""Generate the firmware's C sources from an artifacts folder (or a bare int8 TFLite flatbuffer).

The generator walks the model's single subgraph in execution order and emits, for every operator, one
call to a kernel of `firmware/src/kws_kernels.c` with constant parameter structs. Every number TFLite
Micro computes in its Prepare step (multipliers, shifts, input radii, activation ranges, and for
LOGISTIC/TANH whole 256-entry lookup tables) is computed here, with TFLM's exact arithmetic, so the
device needs no flatbuffer parser, no floating point and no allocator. Activations live in one static
arena whose offsets are planned from tensor lifetimes.

Written files (all into the output directory):
  model_data.h / model_data.c   the model: `kws_model_step()`, `kws_model_invoke()`, buffers, constants
  model_tflite.h / model_tflite.c   the raw .tflite as an aligned byte array (for TFLM proper)
  kws_frontend_config.h         front-end settings from `edge.frontend.FrontendConfig`
  kws_settings.h                labels, framing, quantization and detection settings (streaming models)

Streaming models use "state as explicit I/O": pairs (state input, state output) from the manifest (or
named by the caller; a Jordan network's state output is the posterior output itself). `kws_model_step()`
copies the new state into the state-input buffer after each invoke. The detection thresholds become
integer window sums with `edge.postprocess.integer_threshold`, so the firmware decides exactly like
`python -m edge run` (firmware/src/kws_detect.c).

The package, one concern a module, each importing only the ones before it: `errors`, `tflm` (TFLite Micro's
fixed-point arithmetic), `graph` (reading the flatbuffer; the feature/posterior/state interface), `arena`
(offsets from tensor lifetimes), `ctext` (C literals and the banner), `lowering` (operator -> constants + kernel
call), `emit` (model_data.[ch], model_tflite.[ch], the integer feature quantizer), `settings`
(kws_frontend_config.h, kws_settings.h), `generate` (the entry points), `costs` (flash/RAM/stack/instructions
of the Cortex-M4 build) and `cli`. The names below are the ones used outside the package.

CLI (`python -m export codegen ...` or `python -m export.codegen ...`):
  --artifacts DIR --out DIR [--threshold X]          what `make codegen` runs
  --tflite MODEL.tflite --out DIR [--state-pairs IN:OUT ...]
  costs --build FW_BUILD_DIR [--wav FILE] [--json]    `firmware_costs()`: flash/RAM/stack/instructions
"""

from __future__ import annotations

from export.codegen.arena import lifetimes, plan_arena
from export.codegen.cli import main
from export.codegen.costs import firmware_costs, measured_costs, parse_app_output, record_in_manifest, run_m4
from export.codegen.emit import feature_thresholds, quantize_features_reference
from export.codegen.errors import CodegenError, QuantizationError
from export.codegen.generate import GeneratedModel, generate, generate_from_artifacts
from export.codegen.graph import load_graph
from export.codegen.settings import FirmwareSettings, QuantParams, frontend_header, settings_header
from export.codegen.tflm import quantize_multiplier

__all__ = ["CodegenError", "FirmwareSettings", "GeneratedModel", "QuantParams", "QuantizationError",
           "feature_thresholds", "firmware_costs", "frontend_header", "generate", "generate_from_artifacts",
           "lifetimes", "load_graph", "main", "measured_costs", "parse_app_output", "plan_arena",
           "quantize_features_reference", "quantize_multiplier", "record_in_manifest", "run_m4", "settings_header"]
