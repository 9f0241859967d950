/*
 * int8 kernels reproducing TensorFlow Lite Micro's reference kernels bit for bit.
 *
 * The fixed-point math functions (exp on negative values, 1/(1+x), logistic, tanh) follow gemmlowp's
 * fixedpoint.h as used by TFLM; the scalar FixedPoint<int32_t, N> type is represented by a plain
 * int32_t raw value, with the number of integer bits N tracked in the function names and comments.
 * Only integer arithmetic is used. Signed overflow is avoided by doing wrapping arithmetic in uint32_t
 * where the reference relies on two's-complement behaviour.
 */
#include "kws_kernels.h"

#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define KWS_USE_DSP 1
#else
#define KWS_USE_DSP 0
#endif

#define KWS_INT32_MIN (-2147483647 - 1)
#define KWS_INT32_MAX 2147483647

static inline int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline int32_t wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static inline int32_t wrap_shl(int32_t a, int s) { return (int32_t)((uint32_t)a << s); }

/* ------------------------------------------------------------------------------------------------ */
/* Low-level fixed-point primitives                                                                  */
/* ------------------------------------------------------------------------------------------------ */

int32_t kws_sat_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == b && a == KWS_INT32_MIN) {
        return KWS_INT32_MAX;
    }
    /* The reference adds a nudge of 2^30 (or 1 - 2^30 when a*b < 0) and divides by 2^31 truncating
     * toward zero. For negative products that equals flooring (a*b + 2^30) / 2^31: both round ties
     * toward zero and everything else to nearest. So one arithmetic shift gives the same result
     * without a 64-bit division (SMULL + add + shift on Cortex-M4). */
    const int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

int32_t kws_rounding_divide_by_pot(int32_t x, int exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

int32_t kws_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift) {
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    return kws_rounding_divide_by_pot(
        kws_sat_rounding_doubling_high_mul(wrap_shl(x, left_shift), multiplier), right_shift);
}

#define SRDHM kws_sat_rounding_doubling_high_mul
#define RDBPOT kws_rounding_divide_by_pot

/* gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0 (saturating left shift). */
static int32_t sat_shift_left(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return KWS_INT32_MAX;
    }
    if (x < -threshold) {
        return KWS_INT32_MIN;
    }
    return wrap_shl(x, exponent);
}

/* gemmlowp RoundingHalfSum for int32. */
static int32_t rounding_half_sum(int32_t a, int32_t b) {
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* ------------------------------------------------------------------------------------------------ */
/* Fixed-point transcendental functions (gemmlowp fixedpoint.h)                                      */
/* ------------------------------------------------------------------------------------------------ */

/* exp(a) for a in [-1/4, 0); a and result are Q0.31. */
static int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a) {
    const int32_t constant_term = 1895147668;     /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;  /* 1/3 */
    const int32_t x = wrap_add(a, 1 << 28);       /* a + 1/8 */
    const int32_t x2 = SRDHM(x, x);
    const int32_t x3 = SRDHM(x2, x);
    const int32_t x4 = SRDHM(x2, x2);
    const int32_t x4_over_4 = RDBPOT(x4, 2);
    const int32_t poly = RDBPOT(wrap_add(SRDHM(wrap_add(x4_over_4, x3), constant_1_over_3), x2), 1);
    return wrap_add(constant_term, SRDHM(constant_term, wrap_add(x, poly)));
}

/* exp(a) for a <= 0, a with `integer_bits` integer bits (Q<integer_bits>.<31-integer_bits>);
 * result Q0.31. */
static int32_t exp_on_negative_values(int32_t a, int integer_bits) {
    static const int32_t kBarrelMultipliers[7] = {
        1672461947, /* exp(-1/4) */
        1302514674, /* exp(-1/2) */
        790015084,  /* exp(-1)   */
        290630308,  /* exp(-2)   */
        39332535,   /* exp(-4)   */
        720401,     /* exp(-8)   */
        242,        /* exp(-16)  */
    };
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = wrap_sub(a & mask, one_quarter);
    /* Rescale<0>: from integer_bits to 0 integer bits is a saturating left shift. */
    int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        integer_bits > 0 ? sat_shift_left(a_mod_quarter_minus_one_quarter, integer_bits)
                         : a_mod_quarter_minus_one_quarter);
    const int32_t remainder = wrap_sub(a_mod_quarter_minus_one_quarter, a);
    for (int exponent = -2; exponent <= 4; ++exponent) {
        if (integer_bits > exponent) {
            const int shift_amount = fractional_bits + exponent;
            if (remainder & (int32_t)((uint32_t)1 << shift_amount)) {
                result = SRDHM(result, kBarrelMultipliers[exponent + 2]);
            }
        }
    }
    if (integer_bits > 5) {
        const int clamp_b = 36 - integer_bits;
        if (a < -((int32_t)1 << clamp_b)) {
            result = 0;
        }
    }
    if (a == 0) {
        result = KWS_INT32_MAX;
    }
    return result;
}

/* Newton-Raphson iterations shared by 1/(1+x) and (1-x)/(1+x); returns 1/(1+a) in Q2.29. */
static int32_t newton_reciprocal_q2(int32_t half_denominator) {
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t x = wrap_add(constant_48_over_17, SRDHM(half_denominator, constant_neg_32_over_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = SRDHM(half_denominator, x);
        const int32_t one_minus = wrap_sub(one_q2, half_denominator_times_x);
        x = wrap_add(x, sat_shift_left(SRDHM(x, one_minus), 2));
    }
    return x;
}

/* 1/(1+a) for a in (0,1), Q0.31 in and out. */
static int32_t one_over_one_plus_x_for_x_in_0_1(int32_t a) {
    const int32_t half_denominator = rounding_half_sum(a, KWS_INT32_MAX);
    const int32_t x = newton_reciprocal_q2(half_denominator);
    return sat_shift_left(x, 1); /* ExactMulByPot<-1> then Rescale<0> from 1 integer bit */
}

/* (1-a)/(1+a) for a in (0,1), Q0.31 in and out. */
static int32_t one_minus_x_over_one_plus_x_for_x_in_0_1(int32_t a) {
    const int32_t half_denominator = rounding_half_sum(a, KWS_INT32_MAX);
    const int32_t x = newton_reciprocal_q2(half_denominator);
    return sat_shift_left(wrap_sub(x, (int32_t)1 << 29), 2);
}

/* logistic(a), a in Q4.27, result Q0.31. */
static int32_t fixed_logistic_q4(int32_t a) {
    if (a == 0) {
        return (int32_t)1 << 30;
    }
    const int positive = a > 0;
    const int32_t abs_input = positive ? a : wrap_sub(0, a);
    const int32_t result_if_positive =
        one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_sub(0, abs_input), 4));
    return positive ? result_if_positive : wrap_sub(KWS_INT32_MAX, result_if_positive);
}

/* tanh(a), a in Q4.27, result Q0.31. */
static int32_t fixed_tanh_q4(int32_t a) {
    if (a == 0) {
        return 0;
    }
    const int negative = a < 0;
    const int32_t n = negative ? a : wrap_sub(0, a);
    /* ExactMulByPot<1>: same raw value read with 5 integer bits. */
    const int32_t t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, 5));
    return negative ? wrap_sub(0, t) : t;
}

/* ------------------------------------------------------------------------------------------------ */
/* FULLY_CONNECTED                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

/* MultiplyByQuantizedMultiplier specialised for the common right-shift case, inlined in the FC loop.
 * Multipliers from QuantizeMultiplier are positive, so SRDHM's saturation case cannot occur. */
static inline int32_t requantize_right(int32_t acc, int32_t multiplier, int right_shift) {
    const int32_t high = (int32_t)(((int64_t)acc * multiplier + ((int64_t)1 << 30)) >> 31);
    const int32_t mask = (int32_t)(((uint32_t)1 << right_shift) - 1u);
    const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> right_shift) + ((high & mask) > threshold ? 1 : 0);
}

static inline int8_t fc_requantize(const kws_fc_params_t *p, int32_t acc, uint16_t n) {
    const uint16_t c = p->per_channel ? n : 0;
    const int shift = p->shift[c];
    int32_t v = shift <= 0 ? requantize_right(acc, p->multiplier[c], -shift)
                           : kws_multiply_by_quantized_multiplier(acc, p->multiplier[c], shift);
    v += p->output_zero_point;
    return (int8_t)clamp_i32(v, p->act_min, p->act_max);
}

#if KWS_USE_DSP
/* SXTB16 of the word rotated right by 8 (bytes 1 and 3), in one instruction. */
static inline uint32_t sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static inline uint32_t load_u32(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof(v)); /* a single LDR: Cortex-M4 allows unaligned word loads */
    return v;
}

/* Two output rows at once: the input word is sign-extended once and used for both rows.
 * SXTB16 splits bytes {0,2} and {1,3} into 16-bit lanes; SMLAD adds both lane products to the
 * accumulator. Every product fits in 16x16 bits and the sums are the same integers as the scalar
 * loop, so the result is identical. */
static void fc_rows2_dsp(const int8_t *x, const int8_t *w0, const int8_t *w1, int k, int32_t *acc0,
                         int32_t *acc1) {
    int32_t a0 = *acc0;
    int32_t a1 = *acc1;
    int i = 0;
    for (; i + 4 <= k; i += 4) {
        const uint32_t xv = load_u32(x + i);
        const uint32_t x_even = __sxtb16(xv);
        const uint32_t x_odd = sxtb16_ror8(xv);
        const uint32_t wv0 = load_u32(w0 + i);
        const uint32_t wv1 = load_u32(w1 + i);
        a0 = __smlad(x_even, __sxtb16(wv0), a0);
        a0 = __smlad(x_odd, sxtb16_ror8(wv0), a0);
        a1 = __smlad(x_even, __sxtb16(wv1), a1);
        a1 = __smlad(x_odd, sxtb16_ror8(wv1), a1);
    }
    for (; i < k; ++i) {
        a0 += (int32_t)x[i] * (int32_t)w0[i];
        a1 += (int32_t)x[i] * (int32_t)w1[i];
    }
    *acc0 = a0;
    *acc1 = a1;
}
#endif

static int32_t fc_row(const int8_t *x, const int8_t *w, int k, int32_t acc) {
    for (int i = 0; i < k; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

void kws_fully_connected_s8(const kws_fc_params_t *p, const int8_t *input, int8_t *output) {
    const int k = p->in_features;
    const uint16_t n_out = p->out_features;
    uint16_t n = 0;
#if KWS_USE_DSP
    for (; (uint16_t)(n + 2) <= n_out; n += 2) {
        int32_t acc0 = p->bias[n];
        int32_t acc1 = p->bias[n + 1];
        fc_rows2_dsp(input, p->weights + (uint32_t)n * k, p->weights + (uint32_t)(n + 1) * k, k, &acc0,
                     &acc1);
        output[n] = fc_requantize(p, acc0, n);
        output[n + 1] = fc_requantize(p, acc1, (uint16_t)(n + 1));
    }
#endif
    for (; n < n_out; ++n) {
        const int32_t acc = fc_row(input, p->weights + (uint32_t)n * k, k, p->bias[n]);
        output[n] = fc_requantize(p, acc, n);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* ADD / SUB / MUL                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

/* MultiplyByQuantizedMultiplierSmallerThanOneExp (double rounding). */
static inline int32_t mbqm_smaller_than_one(int32_t x, int32_t multiplier, int32_t shift) {
    return requantize_right(x, multiplier, -shift); /* == RDBPOT(SRDHM(x, m), -shift), m > 0 */
}

static inline int8_t addsub_one(const kws_addsub_params_t *p, int8_t a, int8_t b, int subtract) {
    const int32_t v1 = wrap_shl(p->input1_offset + a, p->left_shift);
    const int32_t v2 = wrap_shl(p->input2_offset + b, p->left_shift);
    const int32_t s1 = mbqm_smaller_than_one(v1, p->input1_multiplier, p->input1_shift);
    const int32_t s2 = mbqm_smaller_than_one(v2, p->input2_multiplier, p->input2_shift);
    const int32_t raw = subtract ? wrap_sub(s1, s2) : wrap_add(s1, s2);
    const int32_t out =
        mbqm_smaller_than_one(raw, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)clamp_i32(out, p->act_min, p->act_max);
}

static void addsub(const kws_addsub_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out,
                   int subtract) {
    const uint16_t step1 = p->in1_size == 1 ? 0 : 1;
    const uint16_t step2 = p->in2_size == 1 ? 0 : 1;
    for (uint16_t i = 0; i < p->size; ++i) {
        out[i] = addsub_one(p, in1[i * step1], in2[i * step2], subtract);
    }
}

void kws_add_s8(const kws_addsub_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    addsub(p, in1, in2, out, 0);
}

void kws_sub_s8(const kws_addsub_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    addsub(p, in1, in2, out, 1);
}

void kws_mul_s8(const kws_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    const uint16_t step1 = p->in1_size == 1 ? 0 : 1;
    const uint16_t step2 = p->in2_size == 1 ? 0 : 1;
    for (uint16_t i = 0; i < p->size; ++i) {
        const int32_t a = p->input1_offset + in1[i * step1];
        const int32_t b = p->input2_offset + in2[i * step2];
        const int32_t v = p->output_offset +
                          kws_multiply_by_quantized_multiplier(a * b, p->output_multiplier, p->output_shift);
        out[i] = (int8_t)clamp_i32(v, p->act_min, p->act_max);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* LOGISTIC / TANH                                                                                   */
/* ------------------------------------------------------------------------------------------------ */

int8_t kws_logistic_s8_one(const kws_activation_params_t *p, int8_t x) {
    const int32_t input = (int32_t)x - p->input_zero_point;
    if (input <= -p->input_range_radius) {
        return -128;
    }
    if (input >= p->input_range_radius) {
        return 127;
    }
    const int32_t in_q4 =
        kws_multiply_by_quantized_multiplier(input, p->input_multiplier, p->input_left_shift);
    const int32_t out_q0 = fixed_logistic_q4(in_q4);
    return (int8_t)clamp_i32(RDBPOT(out_q0, 31 - 8) - 128, -128, 127);
}

int8_t kws_tanh_s8_one(const kws_activation_params_t *p, int8_t x) {
    const int32_t input = (int32_t)x - p->input_zero_point;
    if (input <= -p->input_range_radius) {
        return -128;
    }
    if (input >= p->input_range_radius) {
        return 127;
    }
    const int32_t in_q4 =
        kws_multiply_by_quantized_multiplier(input, p->input_multiplier, p->input_left_shift);
    const int32_t out_q0 = fixed_tanh_q4(in_q4);
    return (int8_t)clamp_i32(RDBPOT(out_q0, 31 - 7), -128, 127);
}

static void activation_lut(const int8_t *lut, uint16_t size, const int8_t *in, int8_t *out) {
    for (uint16_t i = 0; i < size; ++i) {
        out[i] = lut[(uint8_t)in[i]];
    }
}

void kws_logistic_s8(const kws_activation_params_t *p, const int8_t *in, int8_t *out) {
    if (p->lut) {
        activation_lut(p->lut, p->size, in, out);
        return;
    }
    for (uint16_t i = 0; i < p->size; ++i) {
        out[i] = kws_logistic_s8_one(p, in[i]);
    }
}

void kws_tanh_s8(const kws_activation_params_t *p, const int8_t *in, int8_t *out) {
    if (p->lut) {
        activation_lut(p->lut, p->size, in, out);
        return;
    }
    for (uint16_t i = 0; i < p->size; ++i) {
        out[i] = kws_tanh_s8_one(p, in[i]);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* SOFTMAX                                                                                           */
/* ------------------------------------------------------------------------------------------------ */

/* exp of one scaled input difference, Q0.31 (input Q5.26). */
static int32_t softmax_exp(const kws_softmax_params_t *p, int32_t input_diff) {
    /* MultiplyByQuantizedMultiplierGreaterThanOne */
    const int32_t rescaled = SRDHM(wrap_shl(input_diff, p->input_left_shift), p->input_multiplier);
    return exp_on_negative_values(rescaled, 5);
}

static void softmax_row(const kws_softmax_params_t *p, const int8_t *in, int8_t *out) {
    const int kAccumulationIntegerBits = 12;
    int32_t max_in_row = -128;
    for (uint16_t c = 0; c < p->depth; ++c) {
        max_in_row = in[c] > max_in_row ? in[c] : max_in_row;
    }
    int32_t sum_of_exps = 0; /* Q12.19 */
    for (uint16_t c = 0; c < p->depth; ++c) {
        const int32_t diff = (int32_t)in[c] - max_in_row;
        if (diff >= p->diff_min) {
            sum_of_exps = wrap_add(sum_of_exps, RDBPOT(softmax_exp(p, diff), kAccumulationIntegerBits));
        }
    }
    /* GetReciprocal */
    const int headroom_plus_one = __builtin_clz((uint32_t)sum_of_exps);
    const int num_bits_over_unit = kAccumulationIntegerBits - headroom_plus_one;
    const int32_t shifted_sum_minus_one =
        (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
    const int32_t shifted_scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
    const int exponent = num_bits_over_unit + 31 - 8;
    for (uint16_t c = 0; c < p->depth; ++c) {
        const int32_t diff = (int32_t)in[c] - max_in_row;
        if (diff >= p->diff_min) {
            const int32_t unsat = RDBPOT(SRDHM(shifted_scale, softmax_exp(p, diff)), exponent);
            out[c] = (int8_t)clamp_i32(unsat - 128, -128, 127);
        } else {
            out[c] = -128;
        }
    }
}

void kws_softmax_s8(const kws_softmax_params_t *p, const int8_t *in, int8_t *out) {
    for (uint16_t r = 0; r < p->outer_size; ++r) {
        softmax_row(p, in + (uint32_t)r * p->depth, out + (uint32_t)r * p->depth);
    }
}

/* ------------------------------------------------------------------------------------------------ */
/* QUANTIZE (int8 -> int8 requantization)                                                            */
/* ------------------------------------------------------------------------------------------------ */

void kws_requantize_s8(const kws_requantize_params_t *p, const int8_t *in, int8_t *out) {
    for (uint16_t i = 0; i < p->size; ++i) {
        const int32_t v = kws_multiply_by_quantized_multiplier((int32_t)in[i] - p->input_zero_point,
                                                               p->multiplier, p->shift) +
                          p->output_zero_point;
        out[i] = (int8_t)clamp_i32(v, -128, 127);
    }
}
