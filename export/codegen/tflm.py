"""TFLite Micro's integer arithmetic, in Python: every number its kernels' Prepare steps compute.

Multipliers and shifts (`quantize_multiplier` and its variants), input radii, activation ranges, and gemmlowp's
fixed-point exp/logistic/tanh, from which LOGISTIC and TANH get whole 256-entry lookup tables
(`activation_lut`). Each function reproduces the C++ bit for bit (the rounding mode, the float32 or double
intermediate, the int32 wrap-around), so the firmware needs no floating point.
"""

from __future__ import annotations

import math

import numpy as np

from export.codegen.errors import QuantizationError


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
