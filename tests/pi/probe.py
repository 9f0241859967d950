"""Self-check of the emulated Raspberry Pi environment, independent of the project's own code.

    python tests/pi/probe.py --wav W.wav --out OUT.npz

runs numpy, the ai-edge-litert interpreter, soundfile and pymicro-features and saves every result in
OUT.npz; the caller runs it on the x86 host and under aarch64 emulation and compares the two files.

The interpreter runs small deterministic int8 models (FULLY_CONNECTED, TANH, LOGISTIC, MUL, ADD, SOFTMAX:
the ops of a quantized GRU cell and a classifier head), each alone and combined into one network, with
three kernel sets: the default XNNPACK delegate, TFLite's optimized builtin kernels and its reference
kernels. The models are written directly from the TFLite flatbuffer schema that ships with ai-edge-litert,
so no tensorflow is needed and the script runs unchanged inside the emulated Raspberry Pi OS userland.
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: Number of random int8 input vectors pushed through the model.
NUM_MODEL_INPUTS = 64
#: Samples per pymicro-features call: one 10 ms hop at 16 kHz.
FRONTEND_CHUNK = 160


@dataclass(frozen=True)
class Quant:
    """Per-tensor (one scale) or per-channel (one scale per output row) affine quantization."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]


class _ModelBuilder:
    """Accumulates tensors, buffers and operators of one TFLite subgraph."""

    def __init__(self) -> None:
        from ai_edge_litert import schema_py_generated as schema

        self.s = schema
        self.tensors: list[Any] = []
        self.buffers: list[Any] = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.operators: list[Any] = []
        self.opcodes: list[int] = []

    def tensor(self, name: str, shape: Sequence[int], dtype: int, quant: Quant, data: np.ndarray | None = None) -> int:
        buffer_index = 0
        if data is not None:
            buf = self.s.BufferT()
            buf.data = list(np.ascontiguousarray(data).tobytes())
            self.buffers.append(buf)
            buffer_index = len(self.buffers) - 1
        q = self.s.QuantizationParametersT()
        q.scale = list(quant.scale)
        q.zeroPoint = list(quant.zero_point)
        t = self.s.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, list(shape), dtype, buffer_index, q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list[int], outputs: list[int], options_type: int = 0, options: Any = None) -> None:
        if code not in self.opcodes:
            self.opcodes.append(code)
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcodes.index(code)
        o.inputs, o.outputs = inputs, outputs
        o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        import flatbuffers

        s = self.s
        sub = s.SubGraphT()
        sub.tensors, sub.operators, sub.inputs, sub.outputs, sub.name = (
            self.tensors, self.operators, inputs, outputs, "main")
        model = s.ModelT()
        model.version = 3
        model.description = "emulation probe"
        model.subgraphs = [sub]
        model.buffers = self.buffers
        model.operatorCodes = []
        for code in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            model.operatorCodes.append(oc)
        builder = flatbuffers.Builder(4096)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


def _activation(b: _ModelBuilder, name: str, n: int, scale: float, zero_point: int) -> int:
    return b.tensor(name, [1, n], b.s.TensorType.INT8, Quant((scale,), (zero_point,)))


def _dense(b: _ModelBuilder, rng: np.random.Generator, x: int, n_in: int, n_out: int, out: int, relu: bool) -> None:
    """FULLY_CONNECTED with per-channel symmetric int8 weights and an int32 bias."""
    s = b.s
    in_scale = b.tensors[x].quantization.scale[0]
    w_scale = tuple(float(v) for v in rng.uniform(0.002, 0.02, n_out).astype(np.float32))
    w = rng.integers(-127, 128, size=(n_out, n_in), dtype=np.int8)
    bias = rng.integers(-2000, 2000, size=n_out, dtype=np.int32)
    wq = Quant(w_scale, (0,) * n_out)
    bq = Quant(tuple(in_scale * ws for ws in w_scale), (0,) * n_out)
    name = b.tensors[out].name
    wi = b.tensor(name + "/w", [n_out, n_in], s.TensorType.INT8, wq, w)
    bi = b.tensor(name + "/b", [n_out], s.TensorType.INT32, bq, bias)
    opts = s.FullyConnectedOptionsT()
    opts.fusedActivationFunction = s.ActivationFunctionType.RELU if relu else s.ActivationFunctionType.NONE
    b.op(s.BuiltinOperator.FULLY_CONNECTED, [x, wi, bi], [out], s.BuiltinOptions.FullyConnectedOptions, opts)


def _mlp(b: _ModelBuilder, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """x[64] -> h=relu(FC x) -> t=tanh(FC h), g=sigmoid(FC h) -> r=t*g+t -> softmax(FC r)[12]."""
    s = b.s
    x = _activation(b, "input", 64, 0.05, -3)
    h = _activation(b, "hidden", 48, 0.04, -128)
    _dense(b, rng, x, 64, 48, h, relu=True)
    a = _activation(b, "pre_tanh", 32, 0.06, 5)
    _dense(b, rng, h, 48, 32, a, relu=False)
    t = _activation(b, "tanh", 32, 1.0 / 128, 0)  # TFLite requires this output quantization for int8 TANH
    b.op(s.BuiltinOperator.TANH, [a], [t])
    c = _activation(b, "pre_sigmoid", 32, 0.05, -10)
    _dense(b, rng, h, 48, 32, c, relu=False)
    g = _activation(b, "sigmoid", 32, 1.0 / 256, -128)  # ... and this one for int8 LOGISTIC
    b.op(s.BuiltinOperator.LOGISTIC, [c], [g])
    m = _activation(b, "gated", 32, 1.0 / 128, 0)
    b.op(s.BuiltinOperator.MUL, [t, g], [m], s.BuiltinOptions.MulOptions, s.MulOptionsT())
    r = _activation(b, "residual", 32, 1.0 / 64, 0)
    b.op(s.BuiltinOperator.ADD, [m, t], [r], s.BuiltinOptions.AddOptions, s.AddOptionsT())
    logits = _activation(b, "logits", 12, 0.25, 0)
    _dense(b, rng, r, 32, 12, logits, relu=False)
    return [x], [_softmax(b, logits, 12)]


def _softmax(b: _ModelBuilder, x: int, n: int) -> int:
    s = b.s
    y = _activation(b, "probs", n, 1.0 / 256, -128)  # TFLite requires this output quantization for int8 SOFTMAX
    opts = s.SoftmaxOptionsT()
    opts.beta = 1.0
    b.op(s.BuiltinOperator.SOFTMAX, [x], [y], s.BuiltinOptions.SoftmaxOptions, opts)
    return y


def _single_op(kind: str) -> Callable[[_ModelBuilder, np.random.Generator], tuple[list[int], list[int]]]:
    """One operator on 64-wide int8 inputs; quantization as in a quantized GRU cell."""

    def build(b: _ModelBuilder, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        s = b.s
        if kind == "mul":  # gate product: tanh output (1/128) times sigmoid output (1/256)
            t = _activation(b, "t", 64, 1.0 / 128, 0)
            g = _activation(b, "g", 64, 1.0 / 256, -128)
            y = _activation(b, "y", 64, 1.0 / 128, 0)
            b.op(s.BuiltinOperator.MUL, [t, g], [y], s.BuiltinOptions.MulOptions, s.MulOptionsT())
            return [t, g], [y]
        if kind == "add":
            u = _activation(b, "u", 64, 1.0 / 128, 0)
            v = _activation(b, "v", 64, 0.05, -3)
            y = _activation(b, "y", 64, 1.0 / 16, 2)
            b.op(s.BuiltinOperator.ADD, [u, v], [y], s.BuiltinOptions.AddOptions, s.AddOptionsT())
            return [u, v], [y]
        x = _activation(b, "x", 64, 0.05, -3)
        if kind == "fully_connected":
            y = _activation(b, "y", 32, 0.06, 5)
            _dense(b, rng, x, 64, 32, y, relu=False)
        elif kind == "tanh":
            y = _activation(b, "y", 64, 1.0 / 128, 0)
            b.op(s.BuiltinOperator.TANH, [x], [y])
        elif kind == "logistic":
            y = _activation(b, "y", 64, 1.0 / 256, -128)
            b.op(s.BuiltinOperator.LOGISTIC, [x], [y])
        elif kind == "softmax":
            y = _softmax(b, x, 64)
        else:
            raise ValueError(kind)
        return [x], [y]

    return build


#: Probe models: single operators (inputs identical on both machines) and a small network of them.
SINGLE_OPS = ("fully_connected", "tanh", "logistic", "mul", "add", "softmax")
MODELS = SINGLE_OPS + ("mlp",)
#: Interpreter configurations: default (XNNPACK delegate), optimized builtin kernels, reference kernels.
RESOLVERS = ("xnnpack", "builtin", "reference")


def build_model(name: str, seed: int = 1234) -> bytes:
    """The probe model `name` as TFLite flatbuffer bytes; deterministic for a given seed."""
    b = _ModelBuilder()
    inputs, outputs = (_mlp if name == "mlp" else _single_op(name))(b, np.random.default_rng(seed))
    return b.finish(inputs, outputs)


def run_model(model: bytes, resolver: str, num_invokes: int, seed: int = 7) -> np.ndarray:
    """Invoke the model `num_invokes` times on seeded random int8 inputs; stacked int8 outputs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kinds = {
        "xnnpack": OpResolverType.AUTO,
        "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "reference": OpResolverType.BUILTIN_REF,
    }
    interp = Interpreter(model_content=model, experimental_op_resolver_type=kinds[resolver])
    interp.allocate_tensors()
    rng = np.random.default_rng(seed)
    out = interp.get_output_details()[0]["index"]
    rows = []
    for _ in range(num_invokes):
        for detail in interp.get_input_details():
            interp.set_tensor(detail["index"], rng.integers(-128, 128, size=detail["shape"], dtype=np.int8))
        interp.invoke()
        rows.append(interp.get_tensor(out)[0].copy())
    return np.stack(rows)


def frontend_features(pcm: np.ndarray) -> np.ndarray:
    """pymicro-features on int16 PCM, fed hop by hop as a stream; float32 features (uint16 * 5/128)."""
    from pymicro_features import MicroFrontend

    frontend = MicroFrontend()
    frames = []
    for start in range(0, len(pcm) - FRONTEND_CHUNK + 1, FRONTEND_CHUNK):
        out = frontend.process_samples(pcm[start:start + FRONTEND_CHUNK].tobytes())
        if out.features:
            frames.append(np.asarray(out.features, dtype=np.float32))
    return np.stack(frames) if frames else np.zeros((0, 40), np.float32)


def numpy_results() -> dict[str, np.ndarray]:
    """Integer results (must be bit-identical anywhere) and float results (IEEE, may differ by ULPs)."""
    rng = np.random.default_rng(2024)
    ints = rng.integers(-1000, 1000, size=(64, 64), dtype=np.int64)
    floats = rng.standard_normal((64, 64))
    return {
        "np_int_random": ints,
        "np_int_matmul": ints @ ints.T,
        "np_int_cumsum": np.cumsum(ints, axis=1),
        "np_float_normal": floats,
        "np_float_elementwise": np.round(floats * 3.0 + 0.5, 6) / 7.0,
        "np_float_matmul": floats @ floats.T,
        "np_float_rfft": np.fft.rfft(floats, axis=1),
        "np_float_transcendental": np.tanh(floats) + np.exp(-np.abs(floats)),
    }


def run_probe(wav_path: Path) -> dict[str, np.ndarray]:
    """Every probe result by name: `model_*` (the model bytes), `litert_<model>_<resolver>`, numpy, audio."""
    import soundfile

    pcm, rate = soundfile.read(str(wav_path), dtype="int16")
    if rate != 16000 or pcm.ndim != 1:
        raise SystemExit(f"probe: {wav_path} must be 16 kHz mono")
    results = numpy_results()
    for name in MODELS:
        model = build_model(name)
        results[f"model_{name}"] = np.frombuffer(model, dtype=np.uint8)
        for resolver in RESOLVERS:
            results[f"litert_{name}_{resolver}"] = run_model(model, resolver, NUM_MODEL_INPUTS)
    results["soundfile_pcm"] = pcm
    results["micro_features"] = frontend_features(pcm)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wav", type=Path, required=True, help="16 kHz mono WAV for soundfile and pymicro-features")
    parser.add_argument("--out", type=Path, required=True, help="where to write the results (.npz)")
    args = parser.parse_args(argv)
    results = run_probe(args.wav)
    np.savez(args.out, **results)
    print(f"probe: {platform.machine()} python {platform.python_version()} numpy {np.__version__}: "
          f"{len(results)} results -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
