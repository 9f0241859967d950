"""TFLite interpreters behind one small interface.

Preference order for `auto`: ai-edge-litert, then tflite-runtime, then tensorflow.lite. `tflm` is the
TensorFlow Lite Micro interpreter from the `tflite-micro` package: the reference for what the firmware
computes. Modules are imported only when a runtime is chosen (never at import time), and tensorflow is
imported only as the last resort, because tflite-runtime breaks when tensorflow is loaded first.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edge.errors import UserError


class Runtime(str, enum.Enum):
    AUTO = "auto"
    LITERT = "litert"
    TFLITE_RUNTIME = "tflite-runtime"
    TF_LITE = "tf-lite"
    TFLM = "tflm"


_MODULES = {
    Runtime.LITERT: "ai_edge_litert.interpreter",
    Runtime.TFLITE_RUNTIME: "tflite_runtime.interpreter",
    # The interpreter's own module: `import tensorflow.lite` gives the source package, not the `tf.lite` API.
    Runtime.TF_LITE: "tensorflow.lite.python.interpreter",
    Runtime.TFLM: "tflite_micro.python.tflite_micro.runtime",
}


class Kernels(str, enum.Enum):
    """TFLite kernel set. `reference` (the default) gives bit-identical int8 results on x86 and ARM (TFLite
    Micro, and so the firmware, rounds rare FULLY_CONNECTED outputs one step differently:
    tests/test_firmware_kernels.py); `optimized` is the interpreter's default (XNNPACK delegate where
    available): several times faster per invoke, but its ARM and x86 code round some ties differently, so
    results may differ from the reference by an int8 step (`python -m edge bench` measures both)."""

    REFERENCE = "reference"
    OPTIMIZED = "optimized"


def parse_runtime(name: str) -> Runtime:
    try:
        return Runtime(name)
    except ValueError:
        raise UserError(f"unknown runtime {name!r}; choose one of: {', '.join(r.value for r in Runtime)}") from None


def parse_kernels(name: str) -> Kernels:
    try:
        return Kernels(name)
    except ValueError:
        raise UserError(f"unknown kernels {name!r}; choose one of: {', '.join(k.value for k in Kernels)}") from None


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of the loaded model, as the interpreter sees it (what a manifest must agree with)."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy name: "int8", "int16", "float32", ...
    scale: float | None  # None: not quantized
    zero_point: int | None


def _quantized(scale: float, zero_point: int) -> tuple[float | None, int | None]:
    """(scale, zero point), or (None, None) for a tensor without quantization (TFLite reports scale 0)."""
    return (None, None) if scale == 0 else (float(scale), int(zero_point))


def _tflite_tensor(detail: dict[str, Any]) -> TensorInfo:
    scale, zero_point = _quantized(*detail["quantization"])
    return TensorInfo(str(detail["name"]), tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]).name,
                      scale, zero_point)


def _flatbuffer_io(mod: Any, model_bytes: bytes) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """Inputs and outputs of the main subgraph read from the .tflite flatbuffer with the schema that ships with
    TFLite Micro (its interpreter does not list its inputs and outputs)."""
    model = mod.convert_bytearray_to_object(bytearray(model_bytes))
    graph = model.subgraphs[0]
    type_names = {v: k.lower() for k, v in vars(mod.schema_fb.TensorType).items() if k.isupper()}

    def info(index: int) -> TensorInfo:
        t = graph.tensors[index]
        q = t.quantization
        scales = [] if q is None or q.scale is None else list(q.scale)
        zero_points = [0] if q is None or q.zeroPoint is None or len(q.zeroPoint) == 0 else list(q.zeroPoint)
        scale, zero_point = _quantized(scales[0] if len(scales) == 1 else 0, zero_points[0])
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        return TensorInfo(name, shape, type_names.get(t.type, f"type {t.type}"), scale, zero_point)

    return [info(i) for i in graph.inputs], [info(i) for i in graph.outputs]


def _import(runtime: Runtime):
    return importlib.import_module(_MODULES[runtime])


def available(runtime: Runtime) -> bool:
    try:
        _import(runtime)
    except Exception:  # noqa: BLE001 - any import failure means "not usable here"
        return False
    return True


def resolve(runtime: Runtime) -> Runtime:
    if runtime is not Runtime.AUTO:
        if not available(runtime):
            raise UserError(f"runtime {runtime.value!r} is not installed ({_MODULES[runtime]} cannot be imported)")
        return runtime
    for candidate in (Runtime.LITERT, Runtime.TFLITE_RUNTIME, Runtime.TF_LITE):
        if available(candidate):
            return candidate
    raise UserError("no TFLite interpreter installed: pip install ai-edge-litert (or tflite-runtime)")


class ModelRunner:
    """Set inputs by position, invoke, read outputs by position."""

    def __init__(self, model_bytes: bytes, runtime: Runtime = Runtime.AUTO, num_threads: int = 1,
                 arena_size: int | None = None, kernels: Kernels = Kernels.REFERENCE) -> None:
        self.runtime = resolve(runtime)
        mod = _import(self.runtime)
        try:
            if self.runtime is Runtime.TFLM:
                kwargs = {"arena_size": arena_size} if arena_size else {}
                self._tflm = mod.Interpreter.from_bytes(model_bytes, **kwargs)
                self._impl = None
                self.inputs, self.outputs = _flatbuffer_io(mod, model_bytes)
            else:
                cls = mod.Interpreter
                kwargs = {}
                if kernels is Kernels.REFERENCE:
                    kwargs["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_REF
                self._impl = cls(model_content=model_bytes, num_threads=num_threads, **kwargs)
                self._impl.allocate_tensors()
                inputs, outputs = self._impl.get_input_details(), self._impl.get_output_details()
                self._in = [d["index"] for d in inputs]
                self._out = [d["index"] for d in outputs]
                #: the model's inputs and outputs by position, to check a manifest against
                self.inputs: Sequence[TensorInfo] = [_tflite_tensor(d) for d in inputs]
                self.outputs: Sequence[TensorInfo] = [_tflite_tensor(d) for d in outputs]
                # bound once: these run several times per 10 ms frame
                self._set_tensor, self._get_tensor, self._invoke = (
                    self._impl.set_tensor, self._impl.get_tensor, self._impl.invoke)
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"the interpreter ({self.runtime.value}) rejected the model: {str(exc).splitlines()[0]}") from exc

    def set_input(self, position: int, value: np.ndarray) -> None:
        if self._impl is None:
            self._tflm.set_input(value, position)
        else:
            self._set_tensor(self._in[position], value)

    def invoke(self) -> None:
        if self._impl is None:
            self._tflm.invoke()
        else:
            self._invoke()

    def get_output(self, position: int) -> np.ndarray:
        """A copy of the output tensor (safe to keep across invokes)."""
        if self._impl is None:
            return np.array(self._tflm.get_output(position))
        return self._get_tensor(self._out[position])

    def reset(self) -> None:
        if self._impl is None:
            self._tflm.reset()


def runtime_versions() -> dict[str, Any]:
    out = {}
    for r, m in _MODULES.items():
        pkg = m.split(".")[0]
        try:
            out[r.value] = importlib.import_module(pkg).__version__ if r is not Runtime.TF_LITE else "n/a"
        except Exception:  # noqa: BLE001
            continue
    return out
