"""TFLite conversion of the rebuilt graph: float32, full int8 and 16x8 variants.

State design: the recurrent state is explicit model input/output. After conversion the input state
tensor is given exactly the scale and zero point of the matching output state tensor, so a runner (or
the firmware) feeds the int8 output straight back every step without requantizing. Kernels derive their
rescaling from tensor scales at prepare time, so only int32 biases that were quantized with the old input
scale need rescaling (bias scale = input scale x weight scale); that is done here and checked by tests.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Iterable

import numpy as np

from export.tf_quiet import import_tensorflow

tf = import_tensorflow()
fbu = import_tensorflow("tensorflow.lite.tools.flatbuffer_utils")


class Variant(str, enum.Enum):
    FLOAT32 = "float32"
    INT8 = "int8"
    INT16X8 = "int16x8"

    @property
    def io_dtype(self) -> str:
        return {Variant.FLOAT32: "float32", Variant.INT8: "int8", Variant.INT16X8: "int16"}[self]


_TFLITE_TYPES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}


def convert(fn, variant: Variant, representative: Callable[[], Iterable[dict[str, np.ndarray]]] | None) -> bytes:
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], tf.Module())
    if variant is Variant.FLOAT32:
        return conv.convert()
    if representative is None:
        raise ValueError("quantized variants need calibration data")
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    if variant is Variant.INT8:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        conv.inference_input_type = tf.int16
        conv.inference_output_type = tf.int16
    return conv.convert()


def _name(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


def _tensor_info(model, sg, tensor_index: int) -> dict[str, Any]:
    t = sg.tensors[tensor_index]
    q = t.quantization
    scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else None
    zp = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else None
    return {
        "tensor": _name(t.name),
        "tensor_index": int(tensor_index),
        "shape": [int(s) for s in t.shape],
        "dtype": _TFLITE_TYPES.get(int(t.type), str(t.type)),
        "scale": scale,
        "zero_point": zp,
    }


def _io_names(model, sg, kind: str) -> list[tuple[str, int]]:
    """(name, tensor index) of the graph's "inputs" or "outputs": the signature's names, or for a model without a
    signature (one converted without a trackable object, as the firmware tests build theirs) the tensors' names."""
    if model.signatureDefs:
        return [(_name(item.name), int(item.tensorIndex)) for item in getattr(model.signatureDefs[0], kind)]
    return [(_name(sg.tensors[i].name), int(i)) for i in getattr(sg, kind)]


def describe_io(model_bytes: bytes) -> dict[str, list[dict[str, Any]]]:
    """Logical inputs/outputs (signature names, see `_io_names`) with their position, tensor, shape, dtype and
    quantization."""
    model = fbu.convert_bytearray_to_object(model_bytes)
    sg = model.subgraphs[0]
    out: dict[str, list[dict[str, Any]]] = {"inputs": [], "outputs": []}
    for kind in out:
        positions = list(getattr(sg, kind))
        for name, index in _io_names(model, sg, kind):
            out[kind].append({"name": name, "position": positions.index(index), **_tensor_info(model, sg, index)})
        out[kind].sort(key=lambda d: d["position"])
    return out


def operator_names(model_bytes: bytes) -> list[str]:
    model = fbu.convert_bytearray_to_object(model_bytes)
    return [fbu.opcode_to_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators]


_SCALE_ONLY_OPS = {"ADD", "SUB", "MUL", "QUANTIZE"}


def match_state_quantization(model_bytes: bytes, pairs: list[tuple[str, str]]) -> bytes:
    """Give each state input the scale/zero point of its state output; rescale dependent biases."""
    io = describe_io(model_bytes)
    by_name = {d["name"]: d for d in io["inputs"] + io["outputs"]}
    model = fbu.convert_bytearray_to_object(model_bytes)
    sg = model.subgraphs[0]
    for in_name, out_name in pairs:
        tin, tout = sg.tensors[by_name[in_name]["tensor_index"]], sg.tensors[by_name[out_name]["tensor_index"]]
        if tin.quantization is None or tin.quantization.scale is None:
            continue  # float model
        old_scale = float(tin.quantization.scale[0])
        new_scale = float(tout.quantization.scale[0])
        tin.quantization.scale = np.array(tout.quantization.scale, dtype=np.float32).copy()
        tin.quantization.zeroPoint = np.array(tout.quantization.zeroPoint, dtype=np.int64).copy()
        if old_scale == new_scale:
            continue
        index = by_name[in_name]["tensor_index"]
        for op in sg.operators:
            if index not in list(op.inputs):
                continue
            name = fbu.opcode_to_name(model, op.opcodeIndex)
            if name == "FULLY_CONNECTED":
                if list(op.inputs).index(index) != 0:
                    raise ValueError("state tensor used as FULLY_CONNECTED weights")
                if len(op.inputs) > 2 and op.inputs[2] >= 0:
                    _rescale_bias(model, sg, int(op.inputs[2]), old_scale / new_scale)
            elif name not in _SCALE_ONLY_OPS:
                raise ValueError(f"cannot match state quantization: state input feeds unsupported op {name}")
    return bytes(fbu.convert_object_to_bytearray(model))


def _rescale_bias(model, sg, bias_index: int, ratio: float) -> None:
    tb = sg.tensors[bias_index]
    users = [i for i, t in enumerate(sg.tensors) if t.buffer == tb.buffer]
    if len(users) > 1:  # never change a buffer another tensor reads
        model.buffers.append(type(model.buffers[tb.buffer])())
        model.buffers[-1].data = np.array(model.buffers[tb.buffer].data, dtype=np.uint8).copy()
        tb.buffer = len(model.buffers) - 1
    dtype = {2: np.int32, 4: np.int64}[int(tb.type)]
    info = np.iinfo(dtype)
    raw = np.frombuffer(np.asarray(model.buffers[tb.buffer].data, dtype=np.uint8).tobytes(), dtype=dtype)
    scaled = np.clip(np.rint(raw.astype(np.float64) * ratio), info.min, info.max).astype(dtype)
    model.buffers[tb.buffer].data = np.frombuffer(scaled.tobytes(), dtype=np.uint8).copy()
    tb.quantization.scale = (np.asarray(tb.quantization.scale, dtype=np.float64) / ratio).astype(np.float32)


def set_input_quantization(model_bytes: bytes, name: str, scale: float, zero_point: int) -> bytes:
    """Give input `name` a fixed scale and zero point (an integer input format decided outside the model, such as
    ESPHome's feature quantization); the int32 biases of the FULLY_CONNECTED ops reading it are rescaled as in
    `match_state_quantization`. Any other consumer is refused."""
    io = describe_io(model_bytes)
    index = next(d["tensor_index"] for d in io["inputs"] if d["name"] == name)
    model = fbu.convert_bytearray_to_object(model_bytes)
    sg = model.subgraphs[0]
    t = sg.tensors[index]
    old_scale = float(t.quantization.scale[0])
    t.quantization.scale = np.array([scale], dtype=np.float32)
    t.quantization.zeroPoint = np.array([zero_point], dtype=np.int64)
    ratio = old_scale / float(np.float32(scale))
    for op in sg.operators:
        if index not in list(op.inputs):
            continue
        op_name = fbu.opcode_to_name(model, op.opcodeIndex)
        if op_name != "FULLY_CONNECTED" or list(op.inputs).index(index) != 0:
            raise ValueError(f"cannot fix the quantization of input {name}: it feeds {op_name}")
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            _rescale_bias(model, sg, int(op.inputs[2]), ratio)
    return bytes(fbu.convert_object_to_bytearray(model))
