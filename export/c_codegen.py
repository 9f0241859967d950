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

CLI (`python -m export codegen ...` or `python -m export.c_codegen ...`):
  --artifacts DIR --out DIR [--threshold X]          what `make codegen` runs
  --tflite MODEL.tflite --out DIR [--state-pairs IN:OUT ...]
  costs --build FW_BUILD_DIR [--wav FILE] [--json]    `firmware_costs()`: flash/RAM/stack/instructions
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from edge.atomic import write_text_atomic
from edge.errors import UserError
from edge.frontend import FEATURE_SCALE, FrontendConfig
from edge.postprocess import BACKGROUND_LABELS, PostprocessConfig, integer_threshold
from edge.quant import quantize_features


class CodegenError(ValueError):
    """The model (or the configuration) cannot be turned into firmware C code."""


class QuantizationError(CodegenError):
    """A tensor's quantization cannot be handled the way TFLite Micro would handle it."""


# ====================================================================================================
# TFLite Micro arithmetic
# ====================================================================================================

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


# ----------------------------------------------------------------------------------------------------
# Prepare-time parameter math
# ----------------------------------------------------------------------------------------------------


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound: nearest integer, halves away from zero (exact for all doubles)."""
    magnitude = abs(x)
    whole = math.floor(magnitude)
    frac = magnitude - whole  # exact: Sterbenz for magnitude >= 1, trivially exact below
    result = whole + (1 if frac >= 0.5 else 0)
    return int(result if x >= 0 else -result)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier (double-rounding build): Q31 multiplier and shift (>0 = left)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    if q_fixed > (1 << 31):
        raise QuantizationError(f"multiplier {real!r} cannot be quantized")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    if not 0.0 < real < 1.0:
        raise QuantizationError(f"expected a multiplier in (0, 1), got {real!r}")
    multiplier, shift = quantize_multiplier(real)
    if shift > 0:
        raise QuantizationError(f"multiplier {real!r} gives a positive shift")
    return multiplier, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    if not real > 1.0:
        raise QuantizationError(f"expected a multiplier > 1, got {real!r}")
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise QuantizationError(f"multiplier {real!r} gives a negative shift")
    return multiplier, shift


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLM CalculateInputRadius (floating-point build)."""
    if input_left_shift < 0:
        raise QuantizationError(f"input scale too small (left shift {input_left_shift})")
    max_input_rescaled = (
        1.0
        * ((1 << input_integer_bits) - 1)
        * float(1 << (total_signed_bits - input_integer_bits))
        / float(1 << input_left_shift)
    )
    return int(math.floor(max_input_rescaled))


def frexp_multiplier_no_renormalize(real: float) -> tuple[int, int]:
    """The LOGISTIC/TANH Prepare variant: frexp + round, without QuantizeMultiplier's 2^31 fix-up.

    TFLM casts round(q * 2^31) straight to int32; a value of exactly 2^31 wraps to INT32_MIN there
    (x86-64 and Arm both produce 0x80000000), so the same wrap is reproduced.
    """
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    return wrap_i32(q_fixed), int(shift)


# Fused activation codes of the TFLite schema (ActivationFunctionType).
ACT_NONE = 0
ACT_RELU = 1
ACT_RELU_N1_TO_1 = 2
ACT_RELU6 = 3


def activation_range_int8(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for int8 outputs (float32 quantization of the bounds)."""
    qmin, qmax = -128, 127
    scale32 = np.float32(scale)

    def quantize(value: float) -> int:
        return int(zero_point) + round_half_away(float(np.float32(value) / scale32))

    if activation == ACT_NONE:
        return qmin, qmax
    if activation == ACT_RELU:
        return max(qmin, quantize(0.0)), qmax
    if activation == ACT_RELU6:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == ACT_RELU_N1_TO_1:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise QuantizationError(f"unsupported fused activation function {activation}")


# ----------------------------------------------------------------------------------------------------
# gemmlowp fixed-point primitives on int32
# ----------------------------------------------------------------------------------------------------


def wrap_i32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= (1 << 31) else x


def _trunc_div(n: int, d: int) -> int:
    q = abs(n) // d
    return q if n >= 0 else -q


def srdhm(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul."""
    if a == b == INT32_MIN:
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return wrap_i32(_trunc_div(ab + nudge, 1 << 31))


def rdbpot(x: int, exponent: int) -> int:
    """RoundingDivideByPOT."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if remainder > threshold else 0)


def multiply_by_quantized_multiplier(x: int, multiplier: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = 0 if shift > 0 else -shift
    return rdbpot(srdhm(wrap_i32(x << left), multiplier), right)


def _sat_shift_left(x: int, exponent: int) -> int:
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return wrap_i32(x << exponent)


def _rounding_half_sum(a: int, b: int) -> int:
    total = a + b
    sign = 1 if total >= 0 else -1
    return _trunc_div(total + sign, 2)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: int) -> int:
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = wrap_i32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap_i32(srdhm(wrap_i32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_i32(constant_term + srdhm(constant_term, wrap_i32(x + poly)))


_BARREL_MULTIPLIERS = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod = wrap_i32((a & mask) - one_quarter)
    rescaled = _sat_shift_left(a_mod, integer_bits) if integer_bits > 0 else a_mod
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(rescaled)
    remainder = wrap_i32(a_mod - a)
    for exponent in range(-2, 5):
        if integer_bits > exponent and remainder & (1 << (fractional_bits + exponent)):
            result = srdhm(result, _BARREL_MULTIPLIERS[exponent + 2])
    if integer_bits > 5 and a < -(1 << (36 - integer_bits)):
        result = 0
    if a == 0:
        result = INT32_MAX
    return result


def _newton_reciprocal_q2(half_denominator: int) -> int:
    x = wrap_i32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap_i32((1 << 29) - srdhm(half_denominator, x))
        x = wrap_i32(x + _sat_shift_left(srdhm(x, one_minus), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    return _sat_shift_left(_newton_reciprocal_q2(_rounding_half_sum(a, INT32_MAX)), 1)


def _one_minus_x_over_one_plus_x_for_x_in_0_1(a: int) -> int:
    x = _newton_reciprocal_q2(_rounding_half_sum(a, INT32_MAX))
    return _sat_shift_left(wrap_i32(x - (1 << 29)), 2)


def fixed_logistic_q4(a: int) -> int:
    if a == 0:
        return 1 << 30
    abs_input = a if a > 0 else wrap_i32(-a)
    positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_i32(-abs_input), 4))
    return positive if a > 0 else wrap_i32(INT32_MAX - positive)


def fixed_tanh_q4(a: int) -> int:
    if a == 0:
        return 0
    n = a if a < 0 else wrap_i32(-a)
    t = _one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, 5))
    return wrap_i32(-t) if a < 0 else t


def _activation_element(
    x: int, zero_point: int, radius: int, multiplier: int, shift: int, logistic: bool
) -> int:
    value = x - zero_point
    if value <= -radius:
        return -128
    if value >= radius:
        return 127
    in_q4 = multiply_by_quantized_multiplier(value, multiplier, shift)
    if logistic:
        return min(max(rdbpot(fixed_logistic_q4(in_q4), 23) - 128, -128), 127)
    return min(max(rdbpot(fixed_tanh_q4(in_q4), 24), -128), 127)


def activation_lut(zero_point: int, radius: int, multiplier: int, shift: int, logistic: bool) -> np.ndarray:
    """256-entry int8 table indexed by the input's byte value (uint8 view of the int8 input)."""
    table = np.zeros(256, dtype=np.int8)
    for x in range(-128, 128):
        table[x & 0xFF] = _activation_element(x, zero_point, radius, multiplier, shift, logistic)
    return table


# ====================================================================================================
# Reading the flatbuffer
# ====================================================================================================

_TENSOR_INT8 = 9
_TENSOR_INT32 = 2
_NUMPY_TYPES = {0: np.float32, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16, 9: np.int8}


@dataclass(frozen=True)
class TensorInfo:
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
    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Any


@dataclass(frozen=True)
class Graph:
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


# ====================================================================================================
# Arena planning
# ====================================================================================================

ARENA_ALIGNMENT = 4


@dataclass(frozen=True)
class ArenaPlan:
    offsets: dict[int, int]
    size: int


def _lifetimes(graph: Graph) -> dict[int, tuple[int, int]]:
    """[first op writing, last op reading] for every tensor that lives in the arena."""
    graph_inputs = set(graph.inputs)
    spans: dict[int, list[int]] = {}
    for op in graph.ops:
        for t in op.outputs:
            spans.setdefault(t, [op.index, op.index])
        for t in op.inputs:
            if t < 0 or graph.tensors[t].is_constant or t in graph_inputs:
                continue
            if t not in spans:
                raise CodegenError(f"tensor '{graph.tensors[t].name}' is read before it is written")
            spans[t][1] = max(spans[t][1], op.index)
    end = len(graph.ops)
    for t in graph.outputs:
        if t in graph_inputs:
            raise CodegenError(f"model output '{graph.tensors[t].name}' is also a model input")
        spans[t][1] = end  # outputs are read after the last operator
    return {t: (a, b) for t, (a, b) in spans.items()}


def plan_arena(graph: Graph) -> ArenaPlan:
    """Greedy first-fit placement: tensors whose lifetimes overlap never share bytes.

    An operator's inputs and outputs overlap in time (the op reads while it writes), so no kernel
    ever runs in place.
    """
    spans = _lifetimes(graph)
    order = sorted(spans, key=lambda t: (-graph.tensors[t].size, spans[t][0]))
    placed: list[tuple[int, int, int]] = []  # (offset, end, tensor)
    offsets: dict[int, int] = {}
    for t in order:
        size = graph.tensors[t].size
        first, last = spans[t]
        busy = sorted(
            (off, end) for off, end, other in placed if not (spans[other][1] < first or last < spans[other][0])
        )
        candidate = 0
        for off, end in busy:
            if candidate + size <= off:
                break
            candidate = max(candidate, _align(end))
        offsets[t] = candidate
        placed.append((candidate, candidate + size, t))
    total = max((end for _, end, _ in placed), default=0)
    return ArenaPlan(offsets=offsets, size=_align(total))


def _align(n: int) -> int:
    return (n + ARENA_ALIGNMENT - 1) // ARENA_ALIGNMENT * ARENA_ALIGNMENT


# ====================================================================================================
# Lowering operators to kernel calls
# ====================================================================================================


@dataclass
class CSource:
    """Accumulates generated declarations and the body of kws_model_invoke()."""

    decls: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    macs: int = 0
    const_names: dict[int, str] = field(default_factory=dict)


def _c_array(c_type: str, name: str, values: Iterable[int], per_line: int = 16) -> str:
    items = [str(int(v)) for v in values]
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    inner = ",\n    ".join(lines) if lines else "0"
    return f"static const {c_type} {name}[{max(len(items), 1)}] = {{\n    {inner}\n}};"


class Lowering:
    """Turns each supported operator into constants + one kernel call."""

    def __init__(self, graph: Graph, plan: ArenaPlan, use_lut: bool) -> None:
        self.graph = graph
        self.plan = plan
        self.use_lut = use_lut
        self.src = CSource()
        self.input_slot = {t: i for i, t in enumerate(graph.inputs)}

    # -- buffers ------------------------------------------------------------------------------------

    def buffer(self, t: int) -> str:
        if t in self.input_slot:
            return f"kws_input_{self.input_slot[t]}"
        if t in self.plan.offsets:
            return f"(kws_arena + {self.plan.offsets[t]})"
        return self.constant_int8(t)

    def constant_int8(self, t: int) -> str:
        tensor = self.graph.tensors[t]
        if tensor.data is None or tensor.dtype != _TENSOR_INT8:
            raise CodegenError(f"tensor '{tensor.name}' must be an int8 activation or int8 constant")
        if t not in self.src.const_names:
            name = f"kws_const_t{t}"
            self.src.decls.append(_c_array("int8_t", name, tensor.data.reshape(-1)))
            self.src.const_names[t] = name
        return self.src.const_names[t]

    def tensor(self, t: int) -> TensorInfo:
        return self.graph.tensors[t]

    def int8_activation(self, op: OpInfo, t: int, role: str) -> TensorInfo:
        tensor = self.tensor(t)
        if tensor.dtype != _TENSOR_INT8:
            raise CodegenError(f"operator {op.index} ({op.kind}): {role} '{tensor.name}' is not int8")
        if not tensor.scales:
            raise CodegenError(f"operator {op.index} ({op.kind}): {role} '{tensor.name}' is not quantized")
        if len(tensor.scales) != 1:
            raise CodegenError(f"operator {op.index} ({op.kind}): {role} '{tensor.name}' is per-channel")
        return tensor

    # -- dispatch -----------------------------------------------------------------------------------

    def lower(self, op: OpInfo) -> None:
        handler: Callable[[OpInfo], None] | None = getattr(self, f"_lower_{op.kind.lower()}", None)
        if handler is None:
            raise CodegenError(
                f"operator {op.index}: {op.kind} is not supported by the firmware "
                f"(supported: {', '.join(SUPPORTED_OPS)})"
            )
        self.src.body.append(f"    /* op {op.index}: {op.kind} -> '{self.tensor(op.outputs[0]).name}' */")
        start = len(self.src.body)
        handler(op)
        for i in range(start, len(self.src.body)):
            call = self.src.body[i].strip().rstrip(";")
            self.src.body[i] = f"    KWS_OP(KWS_OPKIND_{op.kind}, {call});"

    def _params(self, c_type: str, op: OpInfo, fields: Mapping[str, Any]) -> str:
        name = f"kws_op{op.index}"
        body = ",\n".join(f"    .{k} = {v}" for k, v in fields.items())
        self.src.decls.append(f"static const {c_type} {name} = {{\n{body}\n}};")
        return name

    # -- FULLY_CONNECTED ----------------------------------------------------------------------------

    def _lower_fully_connected(self, op: OpInfo) -> None:
        opts = op.options
        if opts is not None and int(getattr(opts, "weightsFormat", 0)) != 0:
            raise CodegenError(f"operator {op.index}: shuffled FULLY_CONNECTED weights are not supported")
        x = self.int8_activation(op, op.inputs[0], "input")
        w = self.tensor(op.inputs[1])
        out = self.int8_activation(op, op.outputs[0], "output")
        if w.data is None or w.dtype != _TENSOR_INT8 or len(w.shape) != 2:
            raise CodegenError(f"operator {op.index}: weights must be a constant int8 matrix")
        n_out, k = w.shape
        if x.shape[-1] != k or x.size != k or out.size != n_out:
            raise CodegenError(
                f"operator {op.index}: FULLY_CONNECTED supports one batch row only "
                f"(input {x.shape}, weights {w.shape}, output {out.shape})"
            )
        if any(z != 0 for z in w.zero_points):
            raise CodegenError(f"operator {op.index}: weights must be symmetric (zero point 0)")
        multipliers, shifts, per_channel = self._fc_multipliers(op, x, w, out)
        bias = self._fc_folded_bias(op, x, w)
        act_min, act_max = activation_range_int8(_fused(opts), out.scale, out.zero_point)
        tag = f"kws_op{op.index}"
        self.src.decls.append(_c_array("int8_t", f"{tag}_weights", w.data.reshape(-1)))
        self.src.decls.append(_c_array("int32_t", f"{tag}_bias", bias))
        self.src.decls.append(_c_array("int32_t", f"{tag}_mult", multipliers))
        self.src.decls.append(_c_array("int8_t", f"{tag}_shift", shifts))
        params = self._params(
            "kws_fc_params_t",
            op,
            {
                "in_features": k,
                "out_features": n_out,
                "weights": f"{tag}_weights",
                "bias": f"{tag}_bias",
                "multiplier": f"{tag}_mult",
                "shift": f"{tag}_shift",
                "per_channel": int(per_channel),
                "output_zero_point": out.zero_point,
                "act_min": act_min,
                "act_max": act_max,
            },
        )
        self.src.macs += n_out * k
        self.src.body.append(
            f"    kws_fully_connected_s8(&{params}, {self.buffer(x.index)}, {self.buffer(out.index)});"
        )

    def _fc_multipliers(
        self, op: OpInfo, x: TensorInfo, w: TensorInfo, out: TensorInfo
    ) -> tuple[list[int], list[int], bool]:
        if len(w.scales) > 1:
            if w.quantized_dimension != 0 or len(w.scales) != w.shape[0]:
                raise CodegenError(f"operator {op.index}: per-channel weights must be quantized along outputs")
            # FullyConnected per-channel Prepare: double(input) * double(filter[c]) / double(output)
            reals = [x.scale * s / out.scale for s in w.scales]
            per_channel = True
        else:
            # GetQuantizedConvolutionMultipler: the scale product is taken in float32
            reals = [float(np.float32(x.scale) * np.float32(w.scale)) / out.scale]
            per_channel = False
        quantized = [quantize_multiplier(r) for r in reals]
        for m, s in quantized:
            if not -31 <= s <= 30:
                raise CodegenError(f"operator {op.index}: output shift {s} out of range")
        return [m for m, _ in quantized], [s for _, s in quantized], per_channel

    def _fc_folded_bias(self, op: OpInfo, x: TensorInfo, w: TensorInfo) -> np.ndarray:
        n_out = w.shape[0]
        bias = np.zeros(n_out, dtype=np.int64)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b = self.tensor(op.inputs[2])
            if b.data is None or b.dtype != _TENSOR_INT32 or b.size != n_out:
                raise CodegenError(f"operator {op.index}: bias must be a constant int32 vector")
            bias += b.data.reshape(-1).astype(np.int64)
        # sum_k w*(x - zp) + b == sum_k w*x + (b - zp * sum_k w): exact in integers.
        bias -= int(x.zero_point) * w.data.astype(np.int64).sum(axis=1)
        if bias.min() < INT32_MIN or bias.max() > INT32_MAX:
            raise CodegenError(f"operator {op.index}: folded bias overflows int32")
        return bias

    # -- ADD / SUB / MUL ----------------------------------------------------------------------------

    def _binary_operands(self, op: OpInfo) -> tuple[TensorInfo, TensorInfo, TensorInfo, str, str]:
        a, b = (self.tensor(t) for t in op.inputs[:2])
        out = self.int8_activation(op, op.outputs[0], "output")
        for role, t in (("input 1", a), ("input 2", b)):
            if t.dtype != _TENSOR_INT8 or len(t.scales) != 1:
                raise CodegenError(f"operator {op.index} ({op.kind}): {role} '{t.name}' must be per-tensor int8")
            if t.size not in (out.size, 1):
                raise CodegenError(
                    f"operator {op.index} ({op.kind}): broadcasting {t.shape} to {out.shape} is not supported "
                    "(only equal sizes or a single element)"
                )
        return a, b, out, self.buffer(a.index), self.buffer(b.index)

    def _lower_add(self, op: OpInfo) -> None:
        self._lower_addsub(op, subtract=False)

    def _lower_sub(self, op: OpInfo) -> None:
        self._lower_addsub(op, subtract=True)

    def _lower_addsub(self, op: OpInfo, subtract: bool) -> None:
        a, b, out, buf_a, buf_b = self._binary_operands(op)
        left_shift = 20
        if subtract:
            # SUB's Prepare computes in float32 and converts each result to double.
            s1, s2, so = np.float32(a.scale), np.float32(b.scale), np.float32(out.scale)
            twice_max = np.float32(2) * max(s1, s2)
            r1 = float(s1 / twice_max)
            r2 = float(s2 / twice_max)
            ro = float(twice_max / (np.float32(1 << left_shift) * so))
        else:
            # ADD's Prepare computes in double (after a float32 max).
            twice_max = 2.0 * float(max(np.float32(a.scale), np.float32(b.scale)))
            r1 = a.scale / twice_max
            r2 = b.scale / twice_max
            ro = twice_max / ((1 << left_shift) * out.scale)
        m1, sh1 = quantize_multiplier_smaller_than_one_exp(r1)  # r1, r2 <= 1/2 by construction
        m2, sh2 = quantize_multiplier_smaller_than_one_exp(r2)
        mo, sho = quantize_multiplier_smaller_than_one_exp(ro)
        act_min, act_max = activation_range_int8(_fused(op.options), out.scale, out.zero_point)
        params = self._params(
            "kws_addsub_params_t",
            op,
            {
                "size": out.size,
                "in1_size": a.size,
                "in2_size": b.size,
                "input1_offset": -a.zero_point,
                "input2_offset": -b.zero_point,
                "output_offset": out.zero_point,
                "left_shift": left_shift,
                "input1_multiplier": m1,
                "input1_shift": sh1,
                "input2_multiplier": m2,
                "input2_shift": sh2,
                "output_multiplier": mo,
                "output_shift": sho,
                "act_min": act_min,
                "act_max": act_max,
            },
        )
        fn = "kws_sub_s8" if subtract else "kws_add_s8"
        self.src.body.append(f"    {fn}(&{params}, {buf_a}, {buf_b}, {self.buffer(out.index)});")

    def _lower_mul(self, op: OpInfo) -> None:
        a, b, out, buf_a, buf_b = self._binary_operands(op)
        mult, shift = quantize_multiplier(a.scale * b.scale / out.scale)
        act_min, act_max = activation_range_int8(_fused(op.options), out.scale, out.zero_point)
        params = self._params(
            "kws_mul_params_t",
            op,
            {
                "size": out.size,
                "in1_size": a.size,
                "in2_size": b.size,
                "input1_offset": -a.zero_point,
                "input2_offset": -b.zero_point,
                "output_offset": out.zero_point,
                "output_multiplier": mult,
                "output_shift": shift,
                "act_min": act_min,
                "act_max": act_max,
            },
        )
        self.src.body.append(f"    kws_mul_s8(&{params}, {buf_a}, {buf_b}, {self.buffer(out.index)});")

    # -- LOGISTIC / TANH ----------------------------------------------------------------------------

    def _lower_logistic(self, op: OpInfo) -> None:
        self._lower_activation(op, logistic=True)

    def _lower_tanh(self, op: OpInfo) -> None:
        self._lower_activation(op, logistic=False)

    def _lower_activation(self, op: OpInfo, logistic: bool) -> None:
        x = self.int8_activation(op, op.inputs[0], "input")
        out = self.int8_activation(op, op.outputs[0], "output")
        expected = (1.0 / 256, -128) if logistic else (1.0 / 128, 0)
        if (out.scale, out.zero_point) != expected:
            raise CodegenError(
                f"operator {op.index} ({op.kind}): output quantization must be scale {expected[0]} "
                f"zero point {expected[1]}, got {out.scale} / {out.zero_point}"
            )
        # Prepare: input_real_multiplier = double(scale) * 2^(31 - 4), frexp, round; radius with 31 bits.
        multiplier, left_shift = frexp_multiplier_no_renormalize(x.scale * float(1 << 27))
        radius = calculate_input_radius(4, left_shift, 31)
        lut_name = "NULL"
        if self.use_lut:
            lut = activation_lut(x.zero_point, radius, multiplier, left_shift, logistic)
            lut_name = f"kws_op{op.index}_lut"
            self.src.decls.append(_c_array("int8_t", lut_name, lut))
        params = self._params(
            "kws_activation_params_t",
            op,
            {
                "size": out.size,
                "input_zero_point": x.zero_point,
                "input_range_radius": radius,
                "input_multiplier": multiplier,
                "input_left_shift": left_shift,
                "lut": lut_name,
            },
        )
        fn = "kws_logistic_s8" if logistic else "kws_tanh_s8"
        self.src.body.append(f"    {fn}(&{params}, {self.buffer(x.index)}, {self.buffer(out.index)});")

    # -- SOFTMAX ------------------------------------------------------------------------------------

    def _lower_softmax(self, op: OpInfo) -> None:
        x = self.int8_activation(op, op.inputs[0], "input")
        out = self.int8_activation(op, op.outputs[0], "output")
        if out.zero_point != -128 or out.scale != 1.0 / 256:
            raise CodegenError(f"operator {op.index}: SOFTMAX output must have scale 1/256 and zero point -128")
        beta = float(np.float32(op.options.beta)) if op.options is not None else 1.0
        # PreprocessSoftmaxScaling with 5 integer bits (double-rounding build).
        real = min(beta * x.scale * float(1 << (31 - 5)), float((1 << 31) - 1))
        multiplier, left_shift = quantize_multiplier_greater_than_one(real)
        diff_min = -calculate_input_radius(5, left_shift)
        depth = x.shape[-1] if x.shape else 1
        params = self._params(
            "kws_softmax_params_t",
            op,
            {
                "outer_size": x.size // depth,
                "depth": depth,
                "input_multiplier": multiplier,
                "input_left_shift": left_shift,
                "diff_min": diff_min,
            },
        )
        self.src.body.append(f"    kws_softmax_s8(&{params}, {self.buffer(x.index)}, {self.buffer(out.index)});")

    # -- RESHAPE / QUANTIZE -------------------------------------------------------------------------

    def _lower_reshape(self, op: OpInfo) -> None:
        x = self.int8_activation(op, op.inputs[0], "input")
        out = self.int8_activation(op, op.outputs[0], "output")
        if x.size != out.size:
            raise CodegenError(f"operator {op.index}: RESHAPE changes the element count")
        self.src.body.append(
            f"    memcpy({self.buffer(out.index)}, {self.buffer(x.index)}, {out.size});"
        )

    def _lower_quantize(self, op: OpInfo) -> None:
        x = self.int8_activation(op, op.inputs[0], "input")
        out = self.int8_activation(op, op.outputs[0], "output")
        multiplier, shift = quantize_multiplier(x.scale / out.scale)
        params = self._params(
            "kws_requantize_params_t",
            op,
            {
                "size": out.size,
                "input_zero_point": x.zero_point,
                "output_zero_point": out.zero_point,
                "multiplier": multiplier,
                "shift": shift,
            },
        )
        self.src.body.append(
            f"    kws_requantize_s8(&{params}, {self.buffer(x.index)}, {self.buffer(out.index)});"
        )


SUPPORTED_OPS = ("FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "SOFTMAX", "RESHAPE", "QUANTIZE")


def _fused(options: Any) -> int:
    return int(getattr(options, "fusedActivationFunction", 0)) if options is not None else 0


# ====================================================================================================
# Model interface (features, posteriors, recurrent state)
# ====================================================================================================


@dataclass(frozen=True)
class StatePair:
    input_slot: int
    output_slot: int
    size: int
    zero_point: int


@dataclass(frozen=True)
class Interface:
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


def quantize_features_reference(frames: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """uint16 front-end output -> int8 model input: the runtime's one definition (edge.quant)."""
    return quantize_features(frames, scale, zero_point, "int8")


def feature_thresholds(scale: float, zero_point: int) -> tuple[int, list[int]]:
    """Integer form of `quantize_features_reference`: q(u) = q0 + #{thresholds <= u}."""
    levels = quantize_features_reference(np.arange(65536, dtype=np.uint16), scale, zero_point).astype(np.int32)
    if np.any(np.diff(levels) < 0):
        raise CodegenError("feature quantization is not monotonic")
    q0 = int(levels[0])
    thresholds = [int(np.argmax(levels >= q)) for q in range(q0 + 1, int(levels[-1]) + 1)]
    return q0, thresholds


# ====================================================================================================
# Emitting the files
# ====================================================================================================

_ALIGN_MACRO = """#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define KWS_ALIGNED16 _Alignas(16)
#elif defined(__GNUC__)
#define KWS_ALIGNED16 __attribute__((aligned(16)))
#else
#define KWS_ALIGNED16
#endif"""


@dataclass(frozen=True)
class GeneratedModel:
    """What was generated (for logs, tests and the size report)."""

    arena_bytes: int
    state_bytes: int
    input_bytes: int
    macs: int
    ops: tuple[str, ...]
    files: tuple[Path, ...]
    settings: "FirmwareSettings | None" = None


def _banner(source: str) -> str:
    return f"/* Generated by export/c_codegen.py from {source}. Do not edit. */\n"


def _model_header(graph: Graph, iface: Interface, macs: int, banner: str) -> str:
    ins = [graph.tensors[t] for t in graph.inputs]
    outs = [graph.tensors[t] for t in graph.outputs]
    lines = [
        banner,
        "#ifndef KWS_MODEL_DATA_H",
        "#define KWS_MODEL_DATA_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define KWS_MODEL_NUM_INPUTS {len(ins)}",
        f"#define KWS_MODEL_NUM_OUTPUTS {len(outs)}",
        f"#define KWS_MODEL_NUM_STATES {len(iface.states)}",
        f"#define KWS_MODEL_MACS {macs}",
    ]
    if iface.feature_slot is not None:
        lines += [
            f"#define KWS_MODEL_FEATURE_INPUT {iface.feature_slot}",
            f"#define KWS_MODEL_FEATURE_SIZE {ins[iface.feature_slot].size}",
        ]
    if iface.posterior_slot is not None:
        lines += [
            f"#define KWS_MODEL_POSTERIOR_OUTPUT {iface.posterior_slot}",
            f"#define KWS_MODEL_NUM_CLASSES {outs[iface.posterior_slot].size}",
        ]
    lines += [
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "/* Input/output buffers, their element counts and zero points (tensor order of the model). */",
        "extern int8_t *const kws_model_inputs[KWS_MODEL_NUM_INPUTS];",
        "extern const int8_t *const kws_model_outputs[KWS_MODEL_NUM_OUTPUTS];",
        "extern const uint16_t kws_model_input_sizes[KWS_MODEL_NUM_INPUTS];",
        "extern const uint16_t kws_model_output_sizes[KWS_MODEL_NUM_OUTPUTS];",
        "extern const char *const kws_model_input_names[KWS_MODEL_NUM_INPUTS];",
        "extern const char *const kws_model_output_names[KWS_MODEL_NUM_OUTPUTS];",
        "",
        "/* Runs every operator once on the current input buffers. */",
        "void kws_model_invoke(void);",
        "/* Sets every recurrent state input to its zero point (real value 0). */",
        "void kws_model_reset(void);",
    ]
    if iface.feature_slot is not None and iface.posterior_slot is not None:
        lines += [
            "/* One streaming step: features in, posteriors out, state carried to the next step. */",
            "void kws_model_step(const int8_t *features, int8_t *posteriors);",
            "/* uint16 front-end output -> int8 model input (integer form of the float quantization). */",
            "void kws_model_quantize_features(const uint16_t *frontend_output, int8_t *features);",
        ]
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "", "#endif /* KWS_MODEL_DATA_H */", ""]
    return "\n".join(lines)


def _c_string(s: str) -> str:
    """A C string literal for any text: UTF-8 bytes, printable ASCII as is, the rest as octal escapes.

    Octal escapes take at most three digits (a hex escape would swallow following hex digits), and
    '?' is escaped so that no trigraph can form under -std=c99.
    """
    out = []
    for byte in s.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _model_source(graph: Graph, iface: Interface, lowering: Lowering, plan: ArenaPlan, banner: str) -> str:
    ins = [graph.tensors[t] for t in graph.inputs]
    outs = [graph.tensors[t] for t in graph.outputs]
    out_buffers = [f"(const int8_t *)(kws_arena + {plan.offsets[t]})" for t in graph.outputs]
    lines = [
        banner,
        '#include "model_data.h"',
        "",
        "#include <stddef.h>",
        "#include <string.h>",
        "",
        '#include "kws_kernels.h"',
        "",
        "/* Optional per-operator profiling (build with -DKWS_PROFILE, see firmware/src/kws_profile.h). */",
        "#ifdef KWS_PROFILE",
        '#include "kws_profile.h"',
        "#else",
        "#define KWS_OP(kind, call) call",
        "#endif",
        "",
        f"/* Activation arena: {plan.size} bytes, offsets planned from tensor lifetimes. */",
        f"static int8_t kws_arena[{max(plan.size, 4)}] __attribute__((aligned(4)));",
    ]
    for i, t in enumerate(ins):
        lines.append(f"static int8_t kws_input_{i}[{t.size}] __attribute__((aligned(4))); /* {t.name} */")
    lines += [""] + lowering.src.decls + [""]
    lines += [
        "int8_t *const kws_model_inputs[KWS_MODEL_NUM_INPUTS] = {"
        + ", ".join(f"kws_input_{i}" for i in range(len(ins)))
        + "};",
        "const int8_t *const kws_model_outputs[KWS_MODEL_NUM_OUTPUTS] = {" + ", ".join(out_buffers) + "};",
        "const uint16_t kws_model_input_sizes[KWS_MODEL_NUM_INPUTS] = {"
        + ", ".join(str(t.size) for t in ins)
        + "};",
        "const uint16_t kws_model_output_sizes[KWS_MODEL_NUM_OUTPUTS] = {"
        + ", ".join(str(t.size) for t in outs)
        + "};",
        "const char *const kws_model_input_names[KWS_MODEL_NUM_INPUTS] = {"
        + ", ".join(_c_string(t.name) for t in ins)
        + "};",
        "const char *const kws_model_output_names[KWS_MODEL_NUM_OUTPUTS] = {"
        + ", ".join(_c_string(t.name) for t in outs)
        + "};",
        "",
        "void kws_model_invoke(void) {",
        *lowering.src.body,
        "}",
        "",
        "void kws_model_reset(void) {",
    ]
    for s in iface.states:
        lines.append(f"    memset(kws_input_{s.input_slot}, {s.zero_point}, {s.size});")
    lines += ["}", ""]
    if iface.feature_slot is not None and iface.posterior_slot is not None:
        lines += _step_functions(graph, iface, plan)
    return "\n".join(lines)


def _step_functions(graph: Graph, iface: Interface, plan: ArenaPlan) -> list[str]:
    feature = graph.tensors[graph.inputs[iface.feature_slot]]
    posterior = graph.tensors[graph.outputs[iface.posterior_slot]]
    q0, thresholds = feature_thresholds(feature.scale, feature.zero_point)
    lines = [
        f"/* Feature quantization: q(u) = {q0} + number of thresholds <= u (scale {feature.scale!r},",
        f" * zero point {feature.zero_point}, float feature = u * {FEATURE_SCALE!r}). */",
        "static const uint16_t kws_feature_thresholds[" + str(max(len(thresholds), 1)) + "] = {"
        + (", ".join(str(v) for v in thresholds) if thresholds else "0")
        + "};",
        "",
        "void kws_model_quantize_features(const uint16_t *frontend_output, int8_t *features) {",
        f"    for (int c = 0; c < {feature.size}; ++c) {{",
        "        const uint16_t u = frontend_output[c];",
        f"        int lo = 0, hi = {len(thresholds)};",
        "        while (lo < hi) { /* count thresholds <= u */",
        "            const int mid = (lo + hi) / 2;",
        "            if (kws_feature_thresholds[mid] <= u) lo = mid + 1; else hi = mid;",
        "        }",
        f"        features[c] = (int8_t)({q0} + lo);",
        "    }",
        "}",
        "",
        "void kws_model_step(const int8_t *features, int8_t *posteriors) {",
        f"    memcpy(kws_input_{iface.feature_slot}, features, {feature.size});",
        "    kws_model_invoke();",
        f"    memcpy(posteriors, kws_arena + {plan.offsets[posterior.index]}, {posterior.size});",
    ]
    for s in iface.states:
        offset = plan.offsets[graph.outputs[s.output_slot]]
        lines.append(f"    memcpy(kws_input_{s.input_slot}, kws_arena + {offset}, {s.size});")
    lines += ["}", ""]
    return lines


def _tflite_files(tflite: bytes, banner: str) -> tuple[str, str]:
    header = "\n".join(
        [
            banner,
            "#ifndef KWS_MODEL_TFLITE_H",
            "#define KWS_MODEL_TFLITE_H",
            "",
            "#include <stdint.h>",
            "",
            "/* The original flatbuffer, 16-byte aligned, for use with TensorFlow Lite Micro itself. */",
            "extern const uint8_t kws_model_tflite[];",
            "extern const uint32_t kws_model_tflite_len;",
            "",
            "#endif /* KWS_MODEL_TFLITE_H */",
            "",
        ]
    )
    rows = [", ".join(f"0x{b:02x}" for b in tflite[i : i + 16]) for i in range(0, len(tflite), 16)]
    source = "\n".join(
        [
            banner,
            '#include "model_tflite.h"',
            "",
            _ALIGN_MACRO,
            "",
            f"KWS_ALIGNED16 const uint8_t kws_model_tflite[{len(tflite)}] = {{",
            ",\n".join("    " + r for r in rows),
            "};",
            f"const uint32_t kws_model_tflite_len = {len(tflite)}u;",
            "",
        ]
    )
    return header, source


# ----------------------------------------------------------------------------------------------------
# Front-end settings header
# ----------------------------------------------------------------------------------------------------

_FRONTEND_FIELDS: tuple[tuple[str, str, str], ...] = (
    # (FrontendConfig field, C macro, kind)
    ("sample_rate", "KWS_FE_SAMPLE_RATE", "int"),
    ("window_ms", "KWS_FE_WINDOW_MS", "int"),
    ("hop_ms", "KWS_FE_HOP_MS", "int"),
    ("num_channels", "KWS_FE_NUM_CHANNELS", "int"),
    ("lower_band_limit_hz", "KWS_FE_LOWER_BAND_LIMIT_HZ", "float"),
    ("upper_band_limit_hz", "KWS_FE_UPPER_BAND_LIMIT_HZ", "float"),
    ("noise_smoothing_bits", "KWS_FE_NOISE_SMOOTHING_BITS", "int"),
    ("noise_even_smoothing", "KWS_FE_NOISE_EVEN_SMOOTHING", "float"),
    ("noise_odd_smoothing", "KWS_FE_NOISE_ODD_SMOOTHING", "float"),
    ("noise_min_signal_remaining", "KWS_FE_NOISE_MIN_SIGNAL_REMAINING", "float"),
    ("pcan_enable", "KWS_FE_PCAN_ENABLE", "bool"),
    ("pcan_strength", "KWS_FE_PCAN_STRENGTH", "float"),
    ("pcan_offset", "KWS_FE_PCAN_OFFSET", "float"),
    ("pcan_gain_bits", "KWS_FE_PCAN_GAIN_BITS", "int"),
    ("log_enable", "KWS_FE_LOG_ENABLE", "bool"),
    ("log_scale_shift", "KWS_FE_LOG_SCALE_SHIFT", "int"),
)


def _frontend_dict(config: Any) -> dict[str, Any]:
    if config is None:
        config = FrontendConfig()
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def _c_float(value: Any) -> str:
    f32 = np.float32(value)
    if not np.isfinite(f32):
        raise CodegenError(f"front-end value {value!r} is not a finite float")
    text = repr(float(f32))  # shortest repr of the float32's exact value: parses back to the same float
    return (text if ("." in text or "e" in text) else text + ".0") + "f"


def frontend_header(config: Any, banner: str = _banner("the front-end configuration")) -> str:
    """kws_frontend_config.h from a FrontendConfig (or a dict with the same fields)."""
    values = _frontend_dict(config)
    missing = [name for name, _, _ in _FRONTEND_FIELDS if name not in values]
    if missing:
        raise CodegenError(f"front-end config lacks fields: {', '.join(missing)}")
    lines = [banner, "#ifndef KWS_FRONTEND_CONFIG_H", "#define KWS_FRONTEND_CONFIG_H", ""]
    for name, macro, kind in _FRONTEND_FIELDS:
        value = values[name]
        if kind == "int":
            if int(value) != value or int(value) < 0:
                raise CodegenError(f"front-end field {name} must be a non-negative integer, got {value!r}")
            text = str(int(value))
        elif kind == "bool":
            text = "1" if bool(value) else "0"
        else:
            text = _c_float(value)
        lines.append(f"#define {macro} {text}")
    sample_rate, window_ms, hop_ms = (int(values[k]) for k in ("sample_rate", "window_ms", "hop_ms"))
    lines += [
        "",
        "/* Derived sizes. */",
        f"#define KWS_FE_WINDOW_SAMPLES {sample_rate * window_ms // 1000}",
        f"#define KWS_FE_HOP_SAMPLES {sample_rate * hop_ms // 1000}",
        "",
        "#endif /* KWS_FRONTEND_CONFIG_H */",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Application settings header (labels, framing, quantization, detection)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuantParams:
    """real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class StateSetting:
    name: str
    size: int
    quant: QuantParams


@dataclass(frozen=True)
class FirmwareSettings:
    """Everything kws_settings.h carries; `limits` are the detector's integer window-sum thresholds."""

    labels: tuple[str, ...]
    postprocess: PostprocessConfig
    frontend: FrontendConfig
    features: QuantParams
    posteriors: QuantParams
    states: tuple[StateSetting, ...]

    @property
    def fires(self) -> tuple[bool, ...]:
        """Labels that may raise an event: all but the background classes (edge.postprocess)."""
        return tuple(label not in BACKGROUND_LABELS for label in self.labels)

    @property
    def limits(self) -> tuple[int, ...]:
        post = self.postprocess
        return tuple(
            integer_threshold(post.threshold_of(label), post.window, self.posteriors.scale) for label in self.labels
        )


def _c_list(values: Iterable[str]) -> str:
    return "{" + ", ".join(values) + "}"


def settings_header(settings: FirmwareSettings, banner: str = _banner("the artifacts' manifest")) -> str:
    """kws_settings.h: macros only (initializer lists for the tables), so the header can go anywhere."""
    if not settings.labels:
        raise CodegenError("no labels")
    if max(settings.limits) > INT32_MAX or settings.postprocess.window * 255 > INT32_MAX:
        raise CodegenError(f"detection window {settings.postprocess.window} is too long for int32 sums")
    lines = [banner, "#ifndef KWS_SETTINGS_H", "#define KWS_SETTINGS_H", ""]
    lines += _label_macros(settings) + [""] + _quantization_macros(settings) + [""] + _detection_macros(settings)
    lines += ["", "#endif /* KWS_SETTINGS_H */", ""]
    return "\n".join(lines)


def _label_macros(settings: FirmwareSettings) -> list[str]:
    fe = settings.frontend
    return [
        "/* Labels, in the model's output order. */",
        f"#define KWS_NUM_LABELS {len(settings.labels)}",
        f"#define KWS_LABEL_NAMES {_c_list(_c_string(label) for label in settings.labels)}",
        "/* 1: the label may raise an event; 0: background (" + ", ".join(BACKGROUND_LABELS) + "). */",
        f"#define KWS_LABEL_FIRES {_c_list('1' if f else '0' for f in settings.fires)}",
        "",
        "/* Audio framing (also in kws_frontend_config.h; the app checks that both agree). */",
        f"#define KWS_SAMPLE_RATE {fe.sample_rate}",
        f"#define KWS_HOP_MS {fe.hop_ms}",
        f"#define KWS_WINDOW_MS {fe.window_ms}",
        f"#define KWS_HOP_SAMPLES {fe.hop_samples}",
        f"#define KWS_WINDOW_SAMPLES {fe.window_samples}",
    ]


def _quantization_macros(settings: FirmwareSettings) -> list[str]:
    lines = [
        "/* Quantization of the model's int8 tensors: real = scale * (q - zero_point). */",
        f"#define KWS_FEATURE_SCALE {_c_float(settings.features.scale)}",
        f"#define KWS_FEATURE_ZERO_POINT ({settings.features.zero_point})",
        f"#define KWS_POSTERIOR_SCALE {_c_float(settings.posteriors.scale)}",
        f"#define KWS_POSTERIOR_ZERO_POINT ({settings.posteriors.zero_point})",
        f"#define KWS_NUM_STATES {len(settings.states)}",
    ]
    if settings.states:
        lines += [
            f"#define KWS_STATE_NAMES {_c_list(_c_string(st.name) for st in settings.states)}",
            f"#define KWS_STATE_SIZES {_c_list(str(st.size) for st in settings.states)}",
            f"#define KWS_STATE_SCALES {_c_list(_c_float(st.quant.scale) for st in settings.states)}",
            f"#define KWS_STATE_ZERO_POINTS {_c_list(str(st.quant.zero_point) for st in settings.states)}",
            f"#define KWS_STATE_BYTES {sum(st.size for st in settings.states)}",
        ]
    return lines


def _detection_macros(settings: FirmwareSettings) -> list[str]:
    post = settings.postprocess
    overrides = [f"{label}={post.thresholds[label]:g}" for label in settings.labels if label in post.thresholds]
    thresholds = f"{post.threshold:g}" + (f"; per label: {', '.join(overrides)}" if overrides else " for every label")
    return [
        "/* Detection (edge/postprocess.py, integer form): a label fires when the sum of its last",
        " * KWS_DETECT_WINDOW values (q - KWS_POSTERIOR_ZERO_POINT) reaches its limit,",
        " * limit = ceil(threshold * window / posterior scale) (edge.postprocess.integer_threshold);",
        " * after an event nothing fires for KWS_DETECT_REFRACTORY frames.",
        f" * threshold {thresholds} */",
        f"#define KWS_DETECT_WINDOW {post.window}",
        f"#define KWS_DETECT_REFRACTORY {post.refractory}",
        f"#define KWS_DETECT_LIMITS {_c_list(str(v) for v in settings.limits)}",
    ]


def _quant(tensor: TensorInfo) -> QuantParams:
    return QuantParams(tensor.scale, tensor.zero_point)


def model_settings(
    graph: Graph,
    iface: Interface,
    labels: Sequence[str] | None = None,
    postprocess: PostprocessConfig | None = None,
    frontend_config: Any = None,
) -> FirmwareSettings | None:
    """The settings of a streaming model (None when it has no single feature input/posterior output).

    Without labels the classes are called class_0, class_1, ... and all of them may fire; without a
    post-processing configuration edge.postprocess's defaults apply.
    """
    if iface.feature_slot is None or iface.posterior_slot is None:
        return None
    features = graph.tensors[graph.inputs[iface.feature_slot]]
    posteriors = graph.tensors[graph.outputs[iface.posterior_slot]]
    names = list(labels) if labels is not None else [f"class_{i}" for i in range(posteriors.size)]
    if len(names) != posteriors.size:
        raise CodegenError(f"{len(names)} labels for a model with {posteriors.size} outputs")
    if len(set(names)) != len(names):
        raise CodegenError("labels must be distinct")
    states = []
    for st in iface.states:
        tensor = graph.tensors[graph.inputs[st.input_slot]]
        states.append(StateSetting(tensor.name, st.size, _quant(tensor)))
    values = _frontend_dict(frontend_config)
    return FirmwareSettings(
        labels=tuple(names),
        postprocess=postprocess or PostprocessConfig(),
        frontend=FrontendConfig(**{k: values[k] for k in FrontendConfig().to_dict()}),
        features=_quant(features),
        posteriors=_quant(posteriors),
        states=tuple(states),
    )


# ----------------------------------------------------------------------------------------------------
# Entry points
# ----------------------------------------------------------------------------------------------------


def generate(
    tflite: bytes,
    out_dir: Path,
    state_pairs: Sequence[tuple[str, str]] = (),
    frontend_config: Any = None,
    use_lut: bool = True,
    source_name: str = "a .tflite model",
    labels: Sequence[str] | None = None,
    postprocess: PostprocessConfig | None = None,
    validate: Callable[["FirmwareSettings | None"], None] | None = None,
) -> GeneratedModel:
    """Write model_data.[ch], model_tflite.[ch], kws_frontend_config.h and kws_settings.h into `out_dir`.

    kws_settings.h is written for streaming models (one feature input, one posterior output besides
    the state pairs); see `model_settings` for the defaults without labels/post-processing.
    `validate` may refuse the settings (raising CodegenError) before anything is written.
    """
    graph = load_graph(tflite)
    iface = resolve_interface(graph, state_pairs)
    plan = plan_arena(graph)
    lowering = Lowering(graph, plan, use_lut)
    for op in graph.ops:
        lowering.lower(op)
    settings = model_settings(graph, iface, labels, postprocess, frontend_config)
    if validate is not None:
        validate(settings)
    digest = hashlib.sha256(tflite).hexdigest()[:16]
    banner = _banner(f"{source_name} (sha256 {digest}...)")
    header = _model_header(graph, iface, lowering.src.macs, banner)
    tfl_h, tfl_c = _tflite_files(tflite, banner)
    files = {
        "model_data.h": header,
        "model_data.c": _model_source(graph, iface, lowering, plan, banner),
        "model_tflite.h": tfl_h,
        "model_tflite.c": tfl_c,
        "kws_frontend_config.h": frontend_header(frontend_config),
    }
    if settings is not None:
        files["kws_settings.h"] = settings_header(settings, banner)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out_dir / name
        if path.is_symlink() or not path.exists() or path.read_text() != text:  # keep mtimes stable for make
            write_text_atomic(path, text)  # refuses a symlink
        written.append(path)
    stale = out_dir / "kws_settings.h"
    if settings is None and stale.exists():
        stale.unlink()  # never leave settings of another model next to this one
    ins = [graph.tensors[t] for t in graph.inputs]
    return GeneratedModel(
        arena_bytes=plan.size,
        state_bytes=sum(s.size for s in iface.states),
        input_bytes=sum(t.size for t in ins),
        macs=lowering.src.macs,
        ops=tuple(op.kind for op in graph.ops),
        files=tuple(written),
        settings=settings,
    )


def threshold_override(base: PostprocessConfig, threshold: float | None) -> PostprocessConfig:
    """`--threshold X`: one threshold for every keyword, as `python -m edge run --threshold X` does."""
    if threshold is None:
        return base
    if not 0.0 < threshold <= 1.0:
        raise CodegenError("--threshold must be in (0, 1]")
    return PostprocessConfig(base.window, threshold, {}, base.refractory)


def generate_from_artifacts(
    artifacts: Path, out_dir: Path, threshold: float | None = None, use_lut: bool = True
) -> GeneratedModel:
    """Firmware sources for the int8 model of an artifacts folder (`make export` output).

    The manifest is loaded with the runtime's own checks (sha256 of the model file, front end), and
    its state pairs, front end, labels and post-processing are used as they are, so the firmware
    decides exactly like `python -m edge run` on the same folder.
    """
    from edge.manifest import load_manifest

    manifest = load_manifest(Path(artifacts))
    spec = manifest.variant("int8")
    tflite = spec.path.read_bytes()
    return generate(
        tflite,
        out_dir,
        state_pairs=manifest.state_pairs,
        frontend_config=manifest.frontend,
        use_lut=use_lut,
        source_name=f"{Path(artifacts).name}/{spec.path.name}",
        labels=manifest.labels,
        postprocess=threshold_override(manifest.postprocess, threshold),
        validate=lambda settings: _check_against_manifest(settings, spec.feature_quantizer, spec.output("probs"),
                                                          spec.path),
    )


def _check_against_manifest(
    settings: FirmwareSettings | None, feature_quantizer: Mapping[str, Any] | None,
    probs: Mapping[str, Any], path: Path,
) -> None:
    """The Pi runtime quantizes features and scales thresholds with the manifest's numbers; the
    firmware uses the flatbuffer's. Refuse a folder where the two differ."""
    if settings is None:
        raise CodegenError(f"{path}: not a streaming model (features and state in, posteriors and state out)")
    if feature_quantizer is None or (
        float(feature_quantizer["scale"]), int(feature_quantizer["zero_point"])
    ) != (settings.features.scale, settings.features.zero_point):
        raise CodegenError(f"{path}: the manifest's feature quantizer differs from the model's input tensor")
    if probs.get("scale") is None or (float(probs["scale"]), int(probs["zero_point"])) != (
        settings.posteriors.scale, settings.posteriors.zero_point
    ):
        raise CodegenError(f"{path}: the manifest's posterior quantization differs from the model's output tensor")


# ----------------------------------------------------------------------------------------------------
# Firmware costs: the Cortex-M4 image's sizes, and its stack and instruction counts under QEMU
# ----------------------------------------------------------------------------------------------------

#: Objects whose linked bytes are "the model" (generated constants and code + the int8 kernels) and
#: "the detector" in the costs.
_MODEL_OBJECTS = ("model_data.o", "kws_kernels.o")
_DETECT_OBJECTS = ("kws_detect.o",)
QEMU_COMMAND = ("qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
                "-icount", "shift=0")


def elf_section_sizes(elf: Path) -> dict[str, int]:
    """Section name -> size of a 32-bit little-endian ELF file (no external tool needed)."""
    import struct

    data = elf.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise CodegenError(f"{elf}: not a 32-bit little-endian ELF file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_offset = headers[shstrndx][4]

    def name(offset: int) -> str:
        end = data.index(b"\0", strtab_offset + offset)
        return data[strtab_offset + offset : end].decode()

    return {name(h[0]): h[5] for h in headers if h[0]}


def linked_bytes(map_file: Path, objects: Sequence[str]) -> dict[str, int]:
    """Flash and RAM bytes that the GNU ld link map attributes to the named object files.

    .text/.rodata count as flash, .bss as RAM, .data as both (its initial values live in flash).
    """
    import re

    flash = ram = 0
    section = ""
    entry = re.compile(r"^\s*(\.\S+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$")
    in_memory_map = False
    for line in map_file.read_text().splitlines():
        if line.startswith("Linker script and memory map"):
            in_memory_map = True  # everything before lists discarded input sections
        if not in_memory_map:
            continue
        if re.match(r"^\s*\.\S+\s*$", line):
            section = line.strip()  # a long section name, with its address on the next line
            continue
        m = entry.match(line)
        if not m:
            continue
        section = m.group(1) or section
        if not m.group(3).endswith(tuple(objects)):
            continue
        size = int(m.group(2), 16)
        if section.startswith((".text", ".rodata")):
            flash += size
        elif section.startswith((".data", ".bss")):
            ram += size
            if section.startswith(".data"):
                flash += size
    return {"flash": flash, "ram": ram}


def parse_app_output(text: str) -> dict[str, Any]:
    """The firmware's line format -> {"posteriors": [[int]], "events": [dict], "stats": {key: str}}.

    Features ("F" lines) are left to the callers that ask for them.
    """
    posteriors: list[list[int]] = []
    events: list[dict[str, Any]] = []
    stats: dict[str, str] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "P":
            posteriors.append([int(v) for v in rest.split()[1:]])
        elif kind == "E":
            frame, label, time_ms, window_sum, name = rest.split(" ", 4)
            events.append({"frame": int(frame), "label_index": int(label), "time_ms": int(time_ms),
                           "window_sum": int(window_sum), "label": name})
        elif kind in ("T", "S"):
            stats.update(item.split("=", 1) for item in rest.split())
    return {"posteriors": posteriors, "events": events, "stats": stats, "finished": "END" in text.splitlines()}


def run_m4(elf: Path, wav: Path, flags: Sequence[str] = (), timeout_s: float = 300.0) -> str:
    """Run the M4 image under QEMU on a WAV file; returns its output (raises CodegenError on failure)."""
    import shutil
    import subprocess

    if shutil.which(QEMU_COMMAND[0]) is None:
        raise CodegenError(f"{QEMU_COMMAND[0]} is not installed (apt-get install qemu-system-arm)")
    args = ",".join(["arg=kws_m4", f"arg={wav}", *(f"arg={f}" for f in flags)])
    try:
        result = subprocess.run(
            [*QEMU_COMMAND, "-semihosting-config", f"enable=on,target=native,{args}", "-kernel", str(elf)],
            capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise CodegenError(f"QEMU did not finish within {timeout_s:g} s") from exc
    if result.returncode != 0 or "END" not in result.stdout.splitlines():
        last = (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1:]
        raise CodegenError(f"the M4 image failed under QEMU (status {result.returncode}): {' '.join(last)}")
    return result.stdout


def firmware_costs(build_dir: Path, wav: Path | None = None, timeout_s: float = 300.0) -> dict[str, Any]:
    """Costs of the Cortex-M4 build in `build_dir` (FW_BUILD_DIR of firmware.mk: `build_dir/m4/kws_m4.elf`).

    Always (from the ELF and the link map):
      flash_bytes  .text + .rodata + .ARM.exidx + .data (initial values)    ram_bytes  .data + .bss
      model_flash_bytes / model_ram_bytes    generated model + int8 kernels
      detect_flash_bytes / detect_ram_bytes  the detector (kws_detect.c)
    With `wav` (runs the image under QEMU with -icount shift=0, see firmware/README.md):
      stack_bytes (painted-stack high-water mark), frontend_arena_bytes, frames, events,
      frontend_instructions_per_hop, model_instructions_per_frame, detect_instructions_per_frame,
      instructions_per_frame (front end + model + detector), macs_per_frame, instructions_per_mac,
      mips_realtime (million instructions per second to keep up with the audio).
    """
    build_dir = Path(build_dir)
    elf = build_dir / "m4" / "kws_m4.elf"
    if not elf.is_file():
        raise CodegenError(f"{elf}: no M4 image (make firmware-m4 FW_BUILD_DIR={build_dir})")
    sections = elf_section_sizes(elf)
    flash = sum(sections.get(n, 0) for n in (".text", ".rodata", ".ARM.exidx", ".data"))
    costs: dict[str, Any] = {
        "flash_bytes": flash,
        "ram_bytes": sections.get(".data", 0) + sections.get(".bss", 0),
    }
    map_file = elf.with_suffix(".map")
    if map_file.is_file():
        model, detect = linked_bytes(map_file, _MODEL_OBJECTS), linked_bytes(map_file, _DETECT_OBJECTS)
        costs.update(model_flash_bytes=model["flash"], model_ram_bytes=model["ram"],
                     detect_flash_bytes=detect["flash"], detect_ram_bytes=detect["ram"])
    if wav is not None:
        costs.update(measured_costs(run_m4(elf, Path(wav), ("--stats", "--no-posteriors"), timeout_s)))
    return costs


def measured_costs(output: str) -> dict[str, Any]:
    """The run-time half of `firmware_costs` from the output of an M4 run with --stats."""
    stats = parse_app_output(output)["stats"]
    needed = ("frames", "hops", "frontend", "model", "detect", "macs", "stack_high_water",
              "calibration_instructions", "calibration_ticks")
    missing = [k for k in needed if k not in stats]
    if missing:
        raise CodegenError(f"the M4 image printed no {', '.join(missing)} (built from older sources?)")
    frames, hops = int(stats["frames"]), int(stats["hops"])
    if frames == 0:
        raise CodegenError("the audio is shorter than one analysis window")
    # Instructions per counter tick, measured by the board's calibration loop (40 with -icount shift=0).
    per_tick = round(int(stats["calibration_instructions"]) / int(stats["calibration_ticks"]))
    frontend = int(stats["frontend"]) * per_tick / hops
    model = int(stats["model"]) * per_tick / frames
    detect = int(stats["detect"]) * per_tick / frames
    macs = int(stats["macs"])
    total = frontend + model + detect
    return {
        "stack_bytes": int(stats["stack_high_water"]),
        "frontend_arena_bytes": int(stats["fe_arena"]),
        "frames": frames,
        "events": int(stats["events"]),
        "frontend_instructions_per_hop": round(frontend),
        "model_instructions_per_frame": round(model),
        "detect_instructions_per_frame": round(detect),
        "instructions_per_frame": round(total),
        "macs_per_frame": macs,
        "instructions_per_mac": round(model / macs, 2) if macs else None,
        "mips_realtime": round(total * 100 / 1e6, 2),  # 100 frames per second (10 ms hop)
    }


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parse_pair(text: str) -> tuple[str, str]:
    if text.count(":") != 1:
        raise argparse.ArgumentTypeError(f"state pair must look like INPUT:OUTPUT, got '{text}'")
    a, b = text.split(":")
    return a, b


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m export codegen",
        description="Firmware C sources from an artifacts folder (or a bare int8 .tflite). "
        "`costs --build DIR [--wav FILE]` reports the M4 build's flash/RAM/stack/instructions.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--artifacts", type=Path, help="artifacts folder from `make export` (manifest.json)")
    src.add_argument("--tflite", type=Path, help="a bare int8 .tflite model (generic labels, default detection)")
    p.add_argument("--out", type=Path, required=True, help="output directory (e.g. firmware/generated)")
    p.add_argument("--threshold", type=float, default=None,
                   help="one detection threshold for every keyword (like `python -m edge run --threshold`)")
    p.add_argument(
        "--state-pairs", type=_parse_pair, nargs="*", default=[], metavar="IN:OUT",
        help="with --tflite: recurrent state tensors, input name:output name",
    )
    p.add_argument("--frontend-config", type=Path, help="with --tflite: JSON file with FrontendConfig fields")
    p.add_argument("--no-lut", action="store_true", help="evaluate LOGISTIC/TANH per element instead of tables")
    return p


def _costs_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m export codegen costs", description=firmware_costs.__doc__.split("\n\n")[0])
    p.add_argument("--build", type=Path, required=True, help="FW_BUILD_DIR of the M4 build (default build/firmware)")
    p.add_argument("--wav", type=Path, help="16 kHz mono WAV to run under QEMU for stack and instruction counts")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--manifest", type=Path, metavar="ART",
                   help="also record the costs in ART/manifest.json (section `firmware`, replaced atomically)")
    return p


def record_in_manifest(artifacts: Path, costs: dict[str, Any]) -> Path:
    """Write `costs` into the artifacts' manifest as its `firmware` section (`edge.atomic`: a new temporary
    sibling, then rename; a symlinked manifest is refused).
    The manifest is read and checked by the runtime's own `load_manifest` first."""
    import json

    from edge.manifest import MANIFEST, ManifestError, load_manifest

    try:
        manifest = load_manifest(Path(artifacts))
    except ManifestError as exc:
        raise CodegenError(str(exc)) from None
    path = manifest.root / MANIFEST
    return write_text_atomic(path, json.dumps({**manifest.data, "firmware": costs}, indent=2))


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.artifacts is not None:
        if args.state_pairs or args.frontend_config:
            raise CodegenError("--state-pairs and --frontend-config come from the manifest with --artifacts")
        info = generate_from_artifacts(args.artifacts, args.out, args.threshold, use_lut=not args.no_lut)
    else:
        frontend: Any = None
        if args.frontend_config is not None:
            import json

            frontend = FrontendConfig.from_dict(json.loads(args.frontend_config.read_text()))
        post = threshold_override(PostprocessConfig(), args.threshold)
        info = generate(args.tflite.read_bytes(), args.out, state_pairs=args.state_pairs, frontend_config=frontend,
                        use_lut=not args.no_lut, source_name=args.tflite.name, postprocess=post)
    print(
        f"c_codegen: {len(info.ops)} ops, {info.macs} MACs, arena {info.arena_bytes} B, "
        f"inputs {info.input_bytes} B -> {args.out}"
    )
    if info.settings is not None:
        st = info.settings
        fires = [(label, limit) for label, limit, f in zip(st.labels, st.limits, st.fires) if f]
        print(f"c_codegen: {len(st.labels)} labels, detection window {st.postprocess.window} frames, "
              f"refractory {st.postprocess.refractory}, limits " + ", ".join(f"{l}={v}" for l, v in fires))
    return 0


def _cmd_costs(args: argparse.Namespace) -> int:
    import json

    costs = firmware_costs(args.build, args.wav)
    if args.manifest is not None:
        print(f"c_codegen: firmware costs recorded in {record_in_manifest(args.manifest, costs)}", file=sys.stderr)
    if args.json:
        print(json.dumps(costs))
    else:
        for key, value in costs.items():
            print(f"{key:32s} {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "costs":
            return _cmd_costs(_costs_parser().parse_args(argv[1:]))
        return _cmd_generate(_parser().parse_args(argv))
    except (OSError, ValueError, UserError) as exc:
        print(f"c_codegen: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
