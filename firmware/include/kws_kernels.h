/*
 * int8 inference kernels with the arithmetic of TensorFlow Lite Micro's reference kernels.
 *
 * Every kernel here reproduces TFLM bit for bit (same rounding, saturation and fixed-point
 * approximations). All parameters that TFLM computes in its Prepare step (multipliers, shifts,
 * input radii, activation ranges) are computed ahead of time by export/codegen and stored in the
 * constant parameter structs below, so nothing on the device uses floating point or allocates memory.
 *
 * Conventions follow TFLM: `shift` > 0 is a left shift, < 0 a right shift, multipliers are Q31.
 */
#ifndef KWS_KERNELS_H
#define KWS_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- fixed-point helpers (exposed for tests and for generated code) ---- */

/* gemmlowp SaturatingRoundingDoublingHighMul (ARM VQRDMULH semantics). */
int32_t kws_sat_rounding_doubling_high_mul(int32_t a, int32_t b);
/* gemmlowp RoundingDivideByPOT: round-half-away-from-zero arithmetic right shift. */
int32_t kws_rounding_divide_by_pot(int32_t x, int exponent);
/* TFLM MultiplyByQuantizedMultiplier (double-rounding variant, TFLM's default build). */
int32_t kws_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/* ---- FULLY_CONNECTED ----
 * out[n] = clamp(out_zp + MBQM(sum_k w[n][k] * (in[k] - in_zp) + bias[n], mult[n], shift[n]))
 * The generator folds -in_zp * sum_k w[n][k] into `bias` (an exact integer identity), so the kernel
 * only accumulates in[k] * w[n][k]. Weights are row-major [out_features][in_features].
 * When `per_channel` is 0, mult[0]/shift[0] apply to all outputs. */
typedef struct {
    uint16_t in_features;
    uint16_t out_features;
    const int8_t *weights;
    const int32_t *bias;       /* folded bias, never NULL (zeros if the op had none) */
    const int32_t *multiplier; /* per output channel, or one entry */
    const int8_t *shift;       /* per output channel, or one entry */
    uint8_t per_channel;
    int32_t output_zero_point;
    int32_t act_min;
    int32_t act_max;
} kws_fc_params_t;

void kws_fully_connected_s8(const kws_fc_params_t *p, const int8_t *input, int8_t *output);

/* ---- ADD / SUB (TFLM general 8-bit path, left_shift 20) ----
 * `in1_size`/`in2_size` are either `size` or 1 (a broadcast scalar). */
typedef struct {
    uint16_t size;
    uint16_t in1_size;
    uint16_t in2_size;
    int32_t input1_offset; /* -zero point */
    int32_t input2_offset;
    int32_t output_offset; /* +zero point */
    int32_t left_shift;
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} kws_addsub_params_t;

void kws_add_s8(const kws_addsub_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void kws_sub_s8(const kws_addsub_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);

/* ---- MUL ---- */
typedef struct {
    uint16_t size;
    uint16_t in1_size;
    uint16_t in2_size;
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t act_min;
    int32_t act_max;
} kws_mul_params_t;

void kws_mul_s8(const kws_mul_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);

/* ---- LOGISTIC / TANH (gemmlowp fixed point, input in Q4.27) ---- */
typedef struct {
    uint16_t size;
    int32_t input_zero_point;
    int32_t input_range_radius;
    int32_t input_multiplier;
    int32_t input_left_shift;
    /* Optional 256-entry table indexed by (uint8_t)input, precomputed by the generator with the
     * same integer arithmetic; NULL to evaluate the fixed-point function per element. */
    const int8_t *lut;
} kws_activation_params_t;

void kws_logistic_s8(const kws_activation_params_t *p, const int8_t *in, int8_t *out);
void kws_tanh_s8(const kws_activation_params_t *p, const int8_t *in, int8_t *out);
/* The per-element fixed-point evaluation (what the tables hold). */
int8_t kws_logistic_s8_one(const kws_activation_params_t *p, int8_t x);
int8_t kws_tanh_s8_one(const kws_activation_params_t *p, int8_t x);

/* ---- SOFTMAX int8 -> int8 (output scale 1/256, zero point -128) ---- */
typedef struct {
    uint16_t outer_size;
    uint16_t depth;
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} kws_softmax_params_t;

void kws_softmax_s8(const kws_softmax_params_t *p, const int8_t *in, int8_t *out);

/* ---- QUANTIZE int8 -> int8 (requantize) ---- */
typedef struct {
    uint16_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;
    int32_t shift;
} kws_requantize_params_t;

void kws_requantize_s8(const kws_requantize_params_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* KWS_KERNELS_H */
