"""Shared helpers for the firmware tests (a helper module, not a test module).

* building int8 TFLite models with TensorFlow (tf.function -> TFLiteConverter, full int8),
* running them in the TFLite Micro Python interpreter (the reference),
* generating C with export/codegen and building it with `make -f firmware/firmware.mk`,
* finding the real audio of ../shared/data (overridable with KWS_DATA_DIR).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TFLM_QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}


def require_tool(name: str) -> str:
    """Path of an external tool; skip the test when it is missing, except in CI (CI=true) where it fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (the Debian packages are listed in .ci/run)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def data_dir() -> Path:
    return Path(os.environ.get("KWS_DATA_DIR", REPO.parent / "shared" / "data"))


def speech_clips(count: int) -> list[Path]:
    """A fixed, varied selection of Speech Commands clips (different words and speakers)."""
    root = data_dir() / "speech_commands_v2_subset"
    if not root.is_dir():
        pytest.skip(f"real audio not found at {root} (set KWS_DATA_DIR)")
    words = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "seven", "marvin"]
    clips = []
    for i in range(count):
        files = sorted((root / words[i % len(words)]).glob("*.wav"))
        clips.append(files[(7 * i) % len(files)])
    return clips


def read_wav_int16(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1 or w.getframerate() != 16000:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)


def write_wav_int16(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return path


# ----------------------------------------------------------------------------------------------------
# TensorFlow model building
# ----------------------------------------------------------------------------------------------------


def convert_int8(
    fn: Callable, specs: Sequence[tuple[Sequence[int], str]], representative: Callable[[], Iterable[list[np.ndarray]]],
    per_channel_dense: bool = True,
) -> bytes:
    """Full-int8 TFLite conversion of a tf.function with int8 inputs and outputs."""
    import tensorflow as tf

    signature = [tf.TensorSpec(list(shape), tf.float32, name=name) for shape, name in specs]
    concrete = tf.function(fn, input_signature=signature).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
    return bytes(converter.convert())


# ----------------------------------------------------------------------------------------------------
# Reference interpreter
# ----------------------------------------------------------------------------------------------------


class Reference:
    """The TFLite Micro Python interpreter on one model."""

    def __init__(self, tflite: bytes) -> None:
        from tflite_micro.python.tflite_micro import runtime

        self.interpreter = runtime.Interpreter.from_bytes(tflite)
        self.inputs = self._details(self.interpreter.get_input_details)
        self.outputs = self._details(self.interpreter.get_output_details)

    @staticmethod
    def _details(getter: Callable[[int], dict]) -> list[dict]:
        details = []
        while True:
            try:
                details.append(getter(len(details)))
            except Exception:  # the runtime raises when the index is past the end
                return details

    def invoke(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        for i, x in enumerate(inputs):
            self.interpreter.set_input(np.asarray(x, dtype=np.int8).reshape(self.inputs[i]["shape"]), i)
        self.interpreter.invoke()
        return [self.interpreter.get_output(i).reshape(-1).copy() for i in range(len(self.outputs))]


# ----------------------------------------------------------------------------------------------------
# Generated C, built with make
# ----------------------------------------------------------------------------------------------------


def make_firmware(targets: Sequence[str], gen_dir: Path, build_dir: Path) -> None:
    result = subprocess.run(
        ["make", "-s", "-f", "firmware/firmware.mk", f"FW_GEN_DIR={gen_dir}", f"FW_BUILD_DIR={build_dir}", *targets],
        cwd=REPO, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise AssertionError(f"make {' '.join(targets)} failed:\n{result.stdout}\n{result.stderr}")


def build_model_runner(tflite: bytes, work: Path, use_lut: bool = True) -> Path:
    """Generate C for `tflite` and build the host harness that runs it on stdin records."""
    from export import codegen

    gen = work / "gen"
    codegen.generate(tflite, gen, use_lut=use_lut, source_name="test model")
    make_firmware(["firmware-model-runner"], gen, work / "build")
    return work / "build" / "host" / "kws_model_runner"


def run_model_runner(runner: Path, records: Sequence[Sequence[np.ndarray]], output_sizes: Sequence[int]) -> list[list[np.ndarray]]:
    payload = b"".join(np.asarray(x, dtype=np.int8).tobytes() for record in records for x in record)
    out = subprocess.run([str(runner)], input=payload, capture_output=True, check=True).stdout
    flat = np.frombuffer(out, dtype=np.int8).reshape(len(records), sum(output_sizes))
    splits = np.cumsum(output_sizes)[:-1]
    return [np.split(row, splits) for row in flat]


def random_records(reference: Reference, count: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(-128, 128, size=int(np.prod(d["shape"])), dtype=np.int8) for d in reference.inputs]
        for _ in range(count)
    ]


def compare_with_reference(tflite: bytes, runner: Path, records: Sequence[Sequence[np.ndarray]]) -> tuple[int, int]:
    """(number of differing output values, number compared) between the C build and TFLM."""
    reference = Reference(tflite)
    sizes = [int(np.prod(d["shape"])) for d in reference.outputs]
    got = run_model_runner(runner, records, sizes)
    differing = compared = 0
    for record, outputs in zip(records, got):
        expected = reference.invoke(record)
        for e, g in zip(expected, outputs):
            differing += int(np.count_nonzero(e != g))
            compared += e.size
    return differing, compared


# ----------------------------------------------------------------------------------------------------
# A small GRU streaming model with the export's interface ("state as explicit I/O")
# ----------------------------------------------------------------------------------------------------

GRU_STATE_PAIRS = (("state_h0", "state_h0_out"),)


def gru_streaming_model(hidden: int = 64, classes: int = 12, features: int = 40, seed: int = 0) -> bytes:
    """GRU cell + classifier + softmax, built from the ops the export uses, full int8.

    x-side FULLY_CONNECTED with bias, h-side FULLY_CONNECTED without bias, LOGISTIC/TANH gates,
    h' = n + z * (h - n), classifier FULLY_CONNECTED, SOFTMAX. Outputs are renamed to the export's
    names (`probs`, `state_h0_out`) and the state input takes the state output's quantization, as the export
    gives it (`export.convert.match_state_quantization`; the model has no signature, so the names are the
    tensors').
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    wx = {g: rng.normal(0, 0.08, (features, hidden)).astype(np.float32) for g in "rzn"}
    bx = {g: rng.normal(0, 0.3, (hidden,)).astype(np.float32) for g in "rzn"}
    wh = {g: rng.normal(0, 1.0 / np.sqrt(hidden), (hidden, hidden)).astype(np.float32) for g in "rzn"}
    wc = rng.normal(0, 1.5 / np.sqrt(hidden), (hidden, classes)).astype(np.float32)
    bc = rng.normal(0, 0.3, (classes,)).astype(np.float32)

    def step(x, h):
        r = tf.sigmoid(tf.matmul(x, wx["r"]) + bx["r"] + tf.matmul(h, wh["r"]))
        z = tf.sigmoid(tf.matmul(x, wx["z"]) + bx["z"] + tf.matmul(h, wh["z"]))
        n = tf.tanh(tf.matmul(x, wx["n"]) + bx["n"] + r * tf.matmul(h, wh["n"]))
        h_new = n + z * (h - n)
        return tf.nn.softmax(tf.matmul(h_new, wc) + bc), h_new

    def representative():
        local = np.random.default_rng(seed + 1)
        for _ in range(100):
            yield [
                (local.uniform(0, 900, (1, features)) * 0.0390625).astype(np.float32),
                local.uniform(-1, 1, (1, hidden)).astype(np.float32),
            ]

    from export.convert import match_state_quantization

    tflite = convert_int8(step, [((1, features), "features"), ((1, hidden), "state_h0")], representative)
    tflite = rename_outputs(tflite, ["probs", "state_h0_out"])
    return match_state_quantization(tflite, list(GRU_STATE_PAIRS))


def rename_outputs(tflite: bytes, names: Sequence[str]) -> bytes:
    """Name the graph outputs (the converter calls them Identity, Identity_1, ...)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite), 0))
    graph = model.subgraphs[0]
    # The converter orders outputs like the function's return tuple.
    for t, name in zip(graph.outputs, names):
        graph.tensors[t].name = name.encode()
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@dataclass(frozen=True)
class StreamSlots:
    """Input/output positions of a streaming model: features and state in, posteriors and state out."""

    feature_input: int = 0
    state_input: int = 1
    posterior_output: int = 0
    state_output: int = 1

    def inputs(self, features: np.ndarray, state: np.ndarray) -> list[np.ndarray]:
        """The two inputs in the model's order."""
        ordered = [features, features]
        ordered[self.state_input] = state
        return ordered


def export_slots(tflite: bytes, state_pair: tuple[str, str]) -> StreamSlots:
    """The positions of an exported model's `features`, `probs` and one state pair, from its signature names
    (the converter orders inputs its own way: a Jordan network's state comes before the features)."""
    from export.convert import describe_io

    io = describe_io(tflite)
    inputs = {d["name"]: d["position"] for d in io["inputs"]}
    outputs = {d["name"]: d["position"] for d in io["outputs"]}
    return StreamSlots(inputs["features"], inputs[state_pair[0]], outputs["probs"], outputs[state_pair[1]])


def quantized_features(ref: "Reference", frames_u16: np.ndarray, slots: StreamSlots = StreamSlots()) -> np.ndarray:
    """Front-end frames as the model's int8 feature input (the firmware's quantization)."""
    from export.codegen import quantize_features_reference

    feat_q = ref.inputs[slots.feature_input]["quantization_parameters"]
    return quantize_features_reference(frames_u16, float(feat_q["scales"][0]), int(feat_q["zero_points"][0]))


def reference_stream(tflite: bytes, frames_u16: np.ndarray, slots: StreamSlots = StreamSlots()) -> np.ndarray:
    """TFLM posteriors per frame, state carried from its output to its input: the expected firmware output."""
    ref = Reference(tflite)
    state_q = ref.inputs[slots.state_input]["quantization_parameters"]
    state = np.full(int(np.prod(ref.inputs[slots.state_input]["shape"])), int(state_q["zero_points"][0]), dtype=np.int8)
    out = []
    for row in quantized_features(ref, frames_u16, slots):
        outputs = ref.invoke(slots.inputs(row, state))
        out.append(outputs[slots.posterior_output])
        state = outputs[slots.state_output]
    return np.stack(out)


# ----------------------------------------------------------------------------------------------------
# A small Jordan network, exported by the export's own functions
# ----------------------------------------------------------------------------------------------------

#: A Jordan network's state input is fed from the posterior output itself.
JORDAN_STATE_PAIRS = (("state_y0", "probs"),)


def jordan_streaming_model(frames_u16: np.ndarray, hidden: int = 32, classes: int = 12, seed: int = 0) -> bytes:
    """A Jordan network with random weights, exported to full int8 as `python -m export` does it (fold_weights,
    step_function, calibration on (frame, state) pairs of the float model over `frames_u16`, state input given
    the posterior's quantization). Feedback and classifier weights are scaled up so that the posterior, and
    with it the fed-back state, moves over the whole [0, 1] range instead of staying near uniform."""
    import torch

    from edge.frontend import features_to_float
    from export.convert import Variant, convert, match_state_quantization
    from export.trajectory import float_trajectory, split_state
    from export.tf_graph import fold_weights, step_function
    from train.models import Cell, ModelConfig, build_model

    torch.manual_seed(seed)
    model = build_model(ModelConfig(cell=Cell.JORDAN, hidden=hidden, num_classes=classes)).eval()
    floats = torch.from_numpy(features_to_float(frames_u16))
    with torch.no_grad():
        model.feat_mean.copy_(floats.mean(0))
        model.feat_std.copy_(floats.std(0) + 0.1)
        model.rnn.feedback.weight.mul_(6.0)
        model.head.weight.mul_(12.0)
    _, states = float_trajectory(model, frames_u16)
    calibration = [{"features": features_to_float(frames_u16[i : i + 1]), **split_state(states[i], model.config)}
                   for i in range(0, len(frames_u16), 3)]
    fw = fold_weights(model)
    fn, _ = step_function(fw)
    return match_state_quantization(convert(fn, Variant.INT8, lambda: iter(calibration)), fw.state_pairs())


def parse_firmware_output(text: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """(features uint16 [T,F], posteriors int8 [T,C], stats) from the firmware's line format.

    `stats` merges the key=value items of the app's "T" line and of the board's "S" line.
    """
    features, posteriors, stats = [], [], {}
    lines = text.splitlines()
    if "END" not in lines:
        raise AssertionError(f"firmware output did not finish: {text[-500:]!r}")
    for line in lines:
        kind, _, rest = line.partition(" ")
        if kind == "F":
            features.append([int(v) for v in rest.split()[1:]])
        elif kind == "P":
            posteriors.append([int(v) for v in rest.split()[1:]])
        elif kind in ("T", "S"):
            stats.update(item.split("=", 1) for item in rest.split())
    feature_array = np.array(features, dtype=np.int64).astype(np.uint16) if features else np.zeros((0, 0), np.uint16)
    return feature_array, np.array(posteriors, dtype=np.int8), stats


def concatenated_speech(path: Path, clips: int) -> np.ndarray:
    """`clips` one-second Speech Commands clips back to back (each padded to 1 s), written to `path`."""
    parts = []
    for clip in speech_clips(clips):
        pcm = read_wav_int16(clip)[:16000]
        parts.append(np.pad(pcm, (0, 16000 - len(pcm))))
    pcm = np.concatenate(parts)
    write_wav_int16(path, pcm)
    return pcm
