"""Lowering each operator to constants and one call of a `firmware/src/kws_kernels.c` kernel.

Every parameter TFLite Micro computes in its Prepare step is computed here with `export.codegen.tflm`; the
generated body of `kws_model_invoke()` and its constant declarations accumulate in a `CSource`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from export.codegen.arena import ArenaPlan
from export.codegen.ctext import c_array
from export.codegen.errors import CodegenError
from export.codegen.graph import TENSOR_INT8, TENSOR_INT32, Graph, OpInfo, TensorInfo
from export.codegen.tflm import (INT32_MAX, INT32_MIN, activation_lut, activation_range_int8, calculate_input_radius,
                                 frexp_multiplier_no_renormalize, quantize_multiplier,
                                 quantize_multiplier_greater_than_one, quantize_multiplier_smaller_than_one_exp)


@dataclass
class CSource:
    """Accumulates generated declarations and the body of kws_model_invoke()."""

    decls: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    macs: int = 0
    const_names: dict[int, str] = field(default_factory=dict)


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
        if tensor.data is None or tensor.dtype != TENSOR_INT8:
            raise CodegenError(f"tensor '{tensor.name}' must be an int8 activation or int8 constant")
        if t not in self.src.const_names:
            name = f"kws_const_t{t}"
            self.src.decls.append(c_array("int8_t", name, tensor.data.reshape(-1)))
            self.src.const_names[t] = name
        return self.src.const_names[t]

    def tensor(self, t: int) -> TensorInfo:
        return self.graph.tensors[t]

    def int8_activation(self, op: OpInfo, t: int, role: str) -> TensorInfo:
        tensor = self.tensor(t)
        if tensor.dtype != TENSOR_INT8:
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
        if w.data is None or w.dtype != TENSOR_INT8 or len(w.shape) != 2:
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
        tag = f"kws_op{op.index}"
        self.src.decls.append(c_array("int8_t", f"{tag}_weights", w.data.reshape(-1)))
        self.src.decls.append(c_array("int32_t", f"{tag}_bias", bias))
        self.src.decls.append(c_array("int32_t", f"{tag}_mult", multipliers))
        self.src.decls.append(c_array("int8_t", f"{tag}_shift", shifts))
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
                **_activation_limits(op, out),
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
            if b.data is None or b.dtype != TENSOR_INT32 or b.size != n_out:
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
            if t.dtype != TENSOR_INT8 or len(t.scales) != 1:
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
        params = self._params(
            "kws_addsub_params_t",
            op,
            {
                **_binary_offsets(a, b, out),
                "left_shift": left_shift,
                "input1_multiplier": m1,
                "input1_shift": sh1,
                "input2_multiplier": m2,
                "input2_shift": sh2,
                "output_multiplier": mo,
                "output_shift": sho,
                **_activation_limits(op, out),
            },
        )
        fn = "kws_sub_s8" if subtract else "kws_add_s8"
        self.src.body.append(f"    {fn}(&{params}, {buf_a}, {buf_b}, {self.buffer(out.index)});")

    def _lower_mul(self, op: OpInfo) -> None:
        a, b, out, buf_a, buf_b = self._binary_operands(op)
        mult, shift = quantize_multiplier(a.scale * b.scale / out.scale)
        params = self._params(
            "kws_mul_params_t",
            op,
            {**_binary_offsets(a, b, out), "output_multiplier": mult, "output_shift": shift, **_activation_limits(op, out)},
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
            self.src.decls.append(c_array("int8_t", lut_name, lut))
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


def fused_activation(options: Any) -> int:
    """The operator's fused activation (`ACT_*` of `export.codegen.tflm`), none when it has no options."""
    return int(getattr(options, "fusedActivationFunction", 0)) if options is not None else 0


def _binary_offsets(a: TensorInfo, b: TensorInfo, out: TensorInfo) -> dict[str, int]:
    """The sizes and zero-point offsets that open the ADD/SUB and MUL parameter structs."""
    return {"size": out.size, "in1_size": a.size, "in2_size": b.size, "input1_offset": -a.zero_point,
            "input2_offset": -b.zero_point, "output_offset": out.zero_point}


def _activation_limits(op: OpInfo, out: TensorInfo) -> dict[str, int]:
    """`act_min` / `act_max`: the int8 output range of the operator's fused activation."""
    act_min, act_max = activation_range_int8(fused_activation(op.options), out.scale, out.zero_point)
    return {"act_min": act_min, "act_max": act_max}
