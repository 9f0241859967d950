"""ESPHome's `micro_wake_word` contract, as its sources state it, and a checker for any .tflite + manifest.

Read from esphome/esphome, `esphome/components/micro_wake_word/` (the current sources; where the issue's list
differed, the sources win and the note says so):

* `streaming_model.cpp`, `register_streaming_ops_`: a `MicroMutableOpResolver<20>` with the 20 ops of
  `ESPHOME_OPS` (the issue listed 17: current sources add PAD, PACK and SPLIT_V). `load_model_`: input 0 must be
  int8 with 3 dims `[1, stride, 40]` (`PREPROCESSOR_FEATURE_SIZE`; the stride may vary), output 0 uint8 `[1, 1]`;
  resource variables live in a separate 1024-byte arena (`STREAMING_MODEL_VARIABLE_ARENA_SIZE`) holding at
  most 20 of them (`MicroResourceVariables::Create(ma, 20)`).
* `preprocessor_settings.h` + `MicroWakeWord::setup`: the TFLite Micro front end with fixed settings
  (`ESPHOME_FRONTEND`) and `window.step_size_ms` = the manifest's `feature_step_size`.
* `micro_wake_word.cpp`, `generate_features_`: `int8 = clamp(((u16 * 256) + 666 / 2) / 666 - 128, -128, 127)`
  (integer division), i.e. a fixed input scale and zero point (`esphome_input_quantization`).
* `streaming_model.cpp`, `determine_detected` / `perform_streaming_inference`: the uint8 outputs of the last
  `sliding_window_size` inferences are summed; a detection when `sum > cutoff_u8 * window`, with
  `cutoff_u8 = int(probability_cutoff * 255)` (`__init__.py`, `to_code`); after a detection the window is zeroed
  and `MIN_SLICES_BEFORE_DETECTION` inferences below the cutoff must pass first (`esphome_detections`).
* `__init__.py`, `MANIFEST_SCHEMA_V2`: the manifest fields of `check_manifest`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from edge.frontend import FEATURE_SCALE, FrontendConfig

#: Ops `StreamingModel::register_streaming_ops_` registers (ESPHome's current sources).
ESPHOME_OPS = frozenset({
    "CALL_ONCE", "VAR_HANDLE", "RESHAPE", "READ_VARIABLE", "STRIDED_SLICE", "CONCATENATION", "ASSIGN_VARIABLE",
    "CONV_2D", "MUL", "ADD", "MEAN", "FULLY_CONNECTED", "LOGISTIC", "QUANTIZE", "DEPTHWISE_CONV_2D",
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "PAD", "PACK", "SPLIT_V"})
#: Ops that keep the state inside the model.
STATE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")
#: `STREAMING_MODEL_VARIABLE_ARENA_SIZE` and the `MicroResourceVariables` capacity.
VARIABLE_ARENA_BYTES = 1024
MAX_RESOURCE_VARIABLES = 20
#: `generate_features_`: value = (u16 * VALUE_SCALE + VALUE_DIV // 2) // VALUE_DIV - 128.
FEATURE_VALUE_SCALE = 256
FEATURE_VALUE_DIV = 666
FEATURE_ZERO_POINT = -128
#: `streaming_model.h` (current sources; 74 in 2024 releases): inferences after a detection before the next one.
MIN_SLICES_BEFORE_DETECTION = 100
#: `__init__.py`: `feature_step_size` is validated as an int in [0, 30]; the manifest version this export writes.
MAX_FEATURE_STEP_SIZE = 30
MANIFEST_VERSION = 2
#: Version-2 manifests (tensor_arena_size, feature_step_size) and resource-variable streaming models: 2024.7.0.
MINIMUM_ESPHOME_VERSION = "2024.7.0"
#: The front-end settings `MicroWakeWord::setup` compiles in (`preprocessor_settings.h`), by our field names;
#: `hop_ms` is not fixed: the manifest's `feature_step_size` sets it.
ESPHOME_FRONTEND: Mapping[str, Any] = {
    "sample_rate": 16000, "window_ms": 30, "num_channels": 40, "lower_band_limit_hz": 125.0,
    "upper_band_limit_hz": 7500.0, "noise_smoothing_bits": 10, "noise_even_smoothing": 0.025,
    "noise_odd_smoothing": 0.06, "noise_min_signal_remaining": 0.05, "pcan_enable": True, "pcan_strength": 0.95,
    "pcan_offset": 80.0, "pcan_gain_bits": 21, "log_enable": True, "log_scale_shift": 6}
MANIFEST_KEYS = ("type", "wake_word", "author", "version", "model", "trained_languages", "micro")
#: `MANIFEST_SCHEMA_V2` also allows `website`; any other key fails ESPHome's validation.
OPTIONAL_MANIFEST_KEYS = ("website",)
MICRO_KEYS = ("feature_step_size", "tensor_arena_size", "probability_cutoff", "sliding_window_size",
              "minimum_esphome_version")


# ----------------------------------------------------------------------------- front end and features
def frontend_differences(fe: FrontendConfig) -> list[str]:
    """`field ours != ESPHome's` for every front-end setting ESPHome fixes differently (empty: the same), plus a
    hop ESPHome's `feature_step_size` cannot express."""
    ours = dataclasses.asdict(fe)
    diffs = [f"{k} {ours[k]!r} != ESPHome's {v!r}" for k, v in ESPHOME_FRONTEND.items() if ours[k] != v]
    if not 0 < fe.hop_ms <= MAX_FEATURE_STEP_SIZE:
        diffs.append(f"hop_ms {fe.hop_ms} is outside ESPHome's feature_step_size range 1..{MAX_FEATURE_STEP_SIZE}")
    return diffs


def esphome_input_quantization() -> tuple[float, int]:
    """(scale, zero point) of the float feature u16 * FEATURE_SCALE that ESPHome's integer rule implies:
    q + 128 = u16 * 256 / 666 = feature * 256 / (666 * FEATURE_SCALE)."""
    return FEATURE_VALUE_DIV * FEATURE_SCALE / FEATURE_VALUE_SCALE, FEATURE_ZERO_POINT


def esphome_features(u16: np.ndarray) -> np.ndarray:
    """uint16 front-end frames -> the int8 features ESPHome feeds the model (`generate_features_`, bit for bit)."""
    v = (np.asarray(u16, dtype=np.int64) * FEATURE_VALUE_SCALE + FEATURE_VALUE_DIV // 2) // FEATURE_VALUE_DIV
    return np.clip(v + FEATURE_ZERO_POINT, -128, 127).astype(np.int8)


# ----------------------------------------------------------------------------- detection
def cutoff_u8(probability_cutoff: float) -> int:
    """`to_code`: `int(probability_cutoff * 255)` (truncated)."""
    return int(probability_cutoff * 255)


def esphome_detections(probs_u8: np.ndarray, cutoff: int, window: int,
                       min_slices: int = MIN_SLICES_BEFORE_DETECTION) -> list[int]:
    """Inference indices at which ESPHome's `WakeWordModel` reports the wake word (`perform_streaming_inference`
    then `determine_detected`, one model, no VAD, detection left running): a ring of the last `window` uint8
    outputs (zeros after a load or detection); `ignore` starts at -min_slices and counts up (to 0) on every
    inference whose output is below the cutoff; detected when ignore == 0 and sum > cutoff * window."""
    ring = np.zeros(window, dtype=np.int64)
    ignore, pos, out = -min_slices, 0, []
    for i, p in enumerate(np.asarray(probs_u8, dtype=np.int64)):
        pos = (pos + 1) % window
        ring[pos] = p
        if p < cutoff:
            ignore = min(ignore + 1, 0)
        if ignore == 0 and int(ring.sum()) > cutoff * window:
            out.append(i)
            ring[:] = 0
            ignore = -min_slices
    return out


# ----------------------------------------------------------------------------- contract check
@dataclass(frozen=True)
class TensorFacts:
    name: str
    shape: list[int]
    dtype: str


@dataclass(frozen=True)
class ModelFacts:
    """What the contract looks at in a flatbuffer: ops of every subgraph, the main graph's inputs and outputs,
    and its resource variables (count, bytes, float ones)."""

    ops: list[str]
    inputs: list[TensorFacts]
    outputs: list[TensorFacts]
    variables: int
    variable_bytes: int
    float_variables: int


def model_facts(model_bytes: bytes) -> ModelFacts:
    from export.convert import _TFLITE_TYPES, _io_names, _name, fbu

    try:
        model = fbu.convert_bytearray_to_object(bytearray(model_bytes))
    except Exception as exc:  # noqa: BLE001 - any parse failure: not a TFLite flatbuffer
        raise ValueError(f"not a TFLite flatbuffer ({type(exc).__name__})") from None
    ops = [fbu.opcode_to_name(model, op.opcodeIndex) for sg in model.subgraphs for op in (sg.operators or [])]
    sg = model.subgraphs[0]
    names = {i: n for kind in ("inputs", "outputs") for n, i in _io_names(model, sg, kind)}  # signature names
    facts = lambda i: TensorFacts(names.get(i, _name(sg.tensors[i].name)),  # noqa: E731
                                  [int(s) for s in sg.tensors[i].shape],
                                  _TFLITE_TYPES.get(int(sg.tensors[i].type), str(sg.tensors[i].type)))
    values: dict[int, Any] = {}  # resource tensor -> the tensor assigned to it
    for op in sg.operators or []:
        if fbu.opcode_to_name(model, op.opcodeIndex) == "ASSIGN_VARIABLE":
            values[int(op.inputs[0])] = sg.tensors[int(op.inputs[1])]
    sizes = {"float32": 4, "int32": 4, "int16": 2}
    nbytes = sum(int(np.prod(t.shape)) * sizes.get(_TFLITE_TYPES.get(int(t.type), ""), 1) for t in values.values())
    floats = sum(_TFLITE_TYPES.get(int(t.type)) == "float32" for t in values.values())
    return ModelFacts(ops, [facts(int(i)) for i in sg.inputs], [facts(int(i)) for i in sg.outputs],
                      len(values), nbytes, floats)


def check_model(model_bytes: bytes) -> list[str]:
    """One line per way the model breaks the contract (empty: it obeys): ops, input/output shape and type,
    state kept in resource variables (none as an extra input or output), variable count and bytes."""
    facts = model_facts(model_bytes)
    problems = [f"op {op} is not registered by micro_wake_word" for op in sorted(set(facts.ops) - ESPHOME_OPS)]
    if len(facts.inputs) != 1:
        problems.append(f"the model has {len(facts.inputs)} inputs ({', '.join(t.name for t in facts.inputs)}); "
                        "micro_wake_word feeds one (explicit state inputs are not supported: keep the state in "
                        "resource variables)")
    if facts.inputs:
        t = facts.inputs[0]
        if len(t.shape) != 3 or t.shape[0] != 1 or t.shape[2] != ESPHOME_FRONTEND["num_channels"]:
            problems.append(f"input shape {t.shape} is not [1, stride, {ESPHOME_FRONTEND['num_channels']}]")
        if t.dtype != "int8":
            problems.append(f"input type {t.dtype} is not int8")
    if len(facts.outputs) != 1:
        problems.append(f"the model has {len(facts.outputs)} outputs; micro_wake_word reads one")
    if facts.outputs:
        t = facts.outputs[0]
        if t.shape != [1, 1]:
            problems.append(f"output shape {t.shape} is not [1, 1]")
        if t.dtype != "uint8":
            problems.append(f"output type {t.dtype} is not uint8")
    problems += _variable_problems(facts)
    return problems


def _variable_problems(facts: ModelFacts) -> list[str]:
    problems = []
    if facts.variables > MAX_RESOURCE_VARIABLES:
        problems.append(f"{facts.variables} resource variables; micro_wake_word holds at most {MAX_RESOURCE_VARIABLES}")
    if facts.variable_bytes > VARIABLE_ARENA_BYTES:
        problems.append(f"resource variables need {facts.variable_bytes} bytes; the variable arena has "
                        f"{VARIABLE_ARENA_BYTES}")
    if facts.variables and "CALL_ONCE" not in facts.ops:
        problems.append("resource variables without CALL_ONCE: the state is never initialised")
    if facts.float_variables:
        problems.append(f"float32 resource variables ({facts.float_variables}): the state is not quantized")
    return problems


def check_manifest(manifest: Mapping[str, Any], model_dir: Path | None = None) -> list[str]:
    """One line per way a manifest breaks `MANIFEST_SCHEMA_V2` (and, with `model_dir`, a missing model file)."""
    problems = [f"manifest: missing key {k!r}" for k in MANIFEST_KEYS if k not in manifest]
    problems += [f"manifest: unknown key {k!r} (ESPHome's schema rejects extra keys)" for k in manifest
                 if k not in MANIFEST_KEYS + OPTIONAL_MANIFEST_KEYS]
    if manifest.get("type", "micro") != "micro":
        problems.append(f"manifest: type {manifest.get('type')!r} is not 'micro'")
    if "version" in manifest and manifest["version"] != MANIFEST_VERSION:
        problems.append(f"manifest: version {manifest['version']!r} is not {MANIFEST_VERSION}")
    for key in ("wake_word", "author", "model"):
        if key in manifest and not isinstance(manifest[key], str):
            problems.append(f"manifest: {key} is not a string")
    langs = manifest.get("trained_languages", [])
    if not isinstance(langs, list) or not all(isinstance(x, str) for x in langs):
        problems.append("manifest: trained_languages is not a list of strings")
    micro = manifest.get("micro", {})
    if not isinstance(micro, dict):
        return problems + ["manifest: micro is not an object"]
    problems += [f"manifest: missing key micro.{k}" for k in MICRO_KEYS if k not in micro]
    problems += [f"manifest: unknown key micro.{k} (ESPHome's schema rejects extra keys)" for k in micro
                 if k not in MICRO_KEYS]
    problems += _micro_problems(micro)
    if model_dir is not None and isinstance(manifest.get("model"), str) and not (model_dir / manifest["model"]).is_file():
        problems.append(f"manifest: model file {manifest['model']} not found next to the manifest")
    return problems


def _micro_problems(micro: Mapping[str, Any]) -> list[str]:
    problems = []
    step = micro.get("feature_step_size", 0)
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_FEATURE_STEP_SIZE:
        problems.append(f"manifest: micro.feature_step_size {step!r} is not an int in 0..{MAX_FEATURE_STEP_SIZE}")
    arena = micro.get("tensor_arena_size", 1)
    if not isinstance(arena, int) or isinstance(arena, bool) or arena <= 0:
        problems.append(f"manifest: micro.tensor_arena_size {arena!r} is not a positive int")
    cutoff = micro.get("probability_cutoff", 0.5)
    if not isinstance(cutoff, (int, float)) or isinstance(cutoff, bool) or not 0.0 <= cutoff <= 1.0:
        problems.append(f"manifest: micro.probability_cutoff {cutoff!r} is not a number in [0, 1]")
    window = micro.get("sliding_window_size", 1)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        problems.append(f"manifest: micro.sliding_window_size {window!r} is not a positive int")
    version = micro.get("minimum_esphome_version", MINIMUM_ESPHOME_VERSION)
    if not isinstance(version, str) or not all(p.isdigit() for p in version.split(".")) or version.count(".") != 2:
        problems.append(f"manifest: micro.minimum_esphome_version {version!r} is not a version like 2024.7.0")
    return problems


def check_files(model_path: Path, manifest_path: Path | None) -> list[str]:
    """`check_model` on the file, and `check_manifest` (model file next to it, named by it) when given."""
    problems = check_model(model_path.read_bytes())
    if manifest_path is not None:
        manifest = json.loads(manifest_path.read_text())
        if not isinstance(manifest, dict):
            return problems + ["manifest: not a JSON object"]
        problems += check_manifest(manifest, manifest_path.parent)
        if manifest.get("model") not in (None, model_path.name) and (manifest_path.parent / str(manifest["model"])).resolve() != model_path.resolve():
            problems.append(f"manifest: model {manifest['model']!r} is not the checked file {model_path.name}")
    return problems


def summary(problems: Sequence[str]) -> str:
    return "contract: OK" if not problems else f"contract: {len(problems)} violation(s)"
