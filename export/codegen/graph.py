"""The int8 model as plain Python objects: tensors, operators in execution order, and its streaming interface.

`load_graph` reads a .tflite flatbuffer with TensorFlow's generated schema (imported only when called);
`resolve_interface` finds the feature input, the posterior output and the recurrent state pairs among the
model's inputs and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from export.codegen.errors import CodegenError, QuantizationError


#: TensorType codes of the TFLite schema, and the numpy type of each that a constant may have.
TENSOR_INT8 = 9
TENSOR_INT32 = 2
_NUMPY_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor: shape, TFLite type code, quantization, and its data when it is a constant."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: int
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    data: np.ndarray | None
    is_variable: bool

    @property
    def size(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def scale(self) -> float:
        if not self.scales:
            raise QuantizationError(f"tensor '{self.name}' is not quantized")
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    @property
    def is_constant(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class OpInfo:
    """One operator in execution order: its builtin name, tensor indices and builtin options."""

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any


@dataclass(frozen=True)
class Graph:
    """The model's single subgraph."""

    tensors: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    #: SignatureDef names -> tensor index (the converter often names output tensors Identity_N).
    signature_names: Mapping[str, int] = field(default_factory=dict)

    def tensor_by_name(self, name: str) -> TensorInfo:
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        names = ", ".join(self.tensors[i].name for i in (*self.inputs, *self.outputs))
        raise CodegenError(f"no tensor named '{name}' (model inputs/outputs: {names})")


def _buffer_bytes(model: Any, buffer_index: int, tflite: bytes) -> bytes | None:
    buffer = model.buffers[buffer_index] if buffer_index < len(model.buffers) else None
    if buffer is None:
        return None
    if buffer.data is not None and len(buffer.data) > 0:
        return bytes(np.asarray(buffer.data, dtype=np.uint8))
    if buffer.offset and buffer.offset > 1 and buffer.size:
        return tflite[buffer.offset : buffer.offset + buffer.size]
    return None


def _read_tensor(model: Any, index: int, tensor: Any, tflite: bytes) -> TensorInfo:
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    raw = _buffer_bytes(model, tensor.buffer, tflite)
    data = None
    if raw is not None:
        np_type = _NUMPY_TYPES.get(tensor.type)
        if np_type is None:
            raise CodegenError(f"constant tensor '{tensor.name!r}' has unsupported type {tensor.type}")
        data = np.frombuffer(raw, dtype=np_type).reshape(shape)
    quant = tensor.quantization
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension = 0
    if quant is not None and quant.scale is not None and len(quant.scale) > 0:
        scales = tuple(float(np.float32(s)) for s in quant.scale)
        zero_points = tuple(int(z) for z in quant.zeroPoint) if quant.zeroPoint is not None else ()
        quantized_dimension = int(quant.quantizedDimension)
    name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
    return TensorInfo(
        index=index,
        name=name,
        shape=shape,
        dtype=int(tensor.type),
        scales=scales,
        zero_points=zero_points,
        quantized_dimension=quantized_dimension,
        data=data,
        is_variable=bool(tensor.isVariable),
    )


def load_graph(tflite: bytes) -> Graph:
    """Parse a .tflite flatbuffer (with TensorFlow's generated schema) into plain Python objects."""
    from export.tf_quiet import import_tensorflow

    schema = import_tensorflow("tensorflow.lite.python.schema_py_generated")  # heavy import, only when used

    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(tflite), 0))
    except Exception as exc:  # flatbuffers raises assorted errors on garbage input
        raise CodegenError(f"not a TFLite flatbuffer: {exc}") from exc
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise CodegenError(f"expected exactly one subgraph, found {len(model.subgraphs or [])}")
    subgraph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    tensors = tuple(_read_tensor(model, i, t, tflite) for i, t in enumerate(subgraph.tensors))
    ops = []
    for i, op in enumerate(subgraph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        if builtin == schema.BuiltinOperator.CUSTOM:
            raise CodegenError(f"operator {i}: custom op '{code.customCode!r}' is not supported")
        ops.append(
            OpInfo(
                index=i,
                kind=op_names.get(builtin, f"BUILTIN_{builtin}"),
                inputs=tuple(int(t) for t in op.inputs),
                outputs=tuple(int(t) for t in op.outputs),
                options=op.builtinOptions,
            )
        )
    signature_names: dict[str, int] = {}
    for signature in model.signatureDefs or []:
        for entry in (*(signature.inputs or []), *(signature.outputs or [])):
            name = entry.name.decode() if isinstance(entry.name, bytes) else str(entry.name)
            signature_names[name] = int(entry.tensorIndex)
    return Graph(
        tensors=tensors,
        ops=tuple(ops),
        inputs=tuple(int(t) for t in subgraph.inputs),
        outputs=tuple(int(t) for t in subgraph.outputs),
        signature_names=signature_names,
    )


@dataclass(frozen=True)
class StatePair:
    """A recurrent state: input and output positions among the model's inputs/outputs, size, zero point."""

    input_slot: int
    output_slot: int
    size: int
    zero_point: int


@dataclass(frozen=True)
class Interface:
    """Where the features go in and the posteriors come out (None when not one of each), and the states."""

    feature_slot: int | None
    posterior_slot: int | None
    states: tuple[StatePair, ...]


def _slots(graph: Graph, tensors: Sequence[int]) -> dict[str, int]:
    """Name -> position among `tensors`, by tensor name and by SignatureDef name."""
    slots = {graph.tensors[t].name: i for i, t in enumerate(tensors)}
    for name, t in graph.signature_names.items():
        if t in tensors:
            slots.setdefault(name, list(tensors).index(t))
    return slots


def resolve_interface(graph: Graph, state_pairs: Sequence[tuple[str, str]]) -> Interface:
    """Match the named state pairs; the one remaining input/output are features/posteriors. A model with a
    single output whose state is that output (a Jordan network feeds back its posterior) has it as both.

    Names are tensor names or SignatureDef input/output names.
    """
    in_slots = _slots(graph, graph.inputs)
    out_slots = _slots(graph, graph.outputs)
    states = []
    for in_name, out_name in state_pairs:
        if in_name not in in_slots:
            raise CodegenError(f"state input '{in_name}' is not a model input (inputs: {sorted(in_slots)})")
        if out_name not in out_slots:
            raise CodegenError(f"state output '{out_name}' is not a model output (outputs: {sorted(out_slots)})")
        t_in = graph.tensors[graph.inputs[in_slots[in_name]]]
        t_out = graph.tensors[graph.outputs[out_slots[out_name]]]
        if t_in.size != t_out.size or t_in.scales != t_out.scales or t_in.zero_points != t_out.zero_points:
            raise CodegenError(
                f"state pair '{in_name}'/'{out_name}' must have the same size, scale and zero point "
                f"({t_in.size}, {t_in.scales}, {t_in.zero_points} vs {t_out.size}, {t_out.scales}, {t_out.zero_points})"
            )
        states.append(StatePair(in_slots[in_name], out_slots[out_name], t_in.size, t_in.zero_point))
    free_in = [i for i in range(len(graph.inputs)) if i not in {s.input_slot for s in states}]
    free_out = [i for i in range(len(graph.outputs)) if i not in {s.output_slot for s in states}]
    if not free_out and len(graph.outputs) == 1:
        free_out = [0]
    return Interface(
        feature_slot=free_in[0] if len(free_in) == 1 else None,
        posterior_slot=free_out[0] if len(free_out) == 1 else None,
        states=tuple(states),
    )
