/*
 * FFT glue of the TFLM audio front end, written in C99 against kissfft's 16-bit fixed-point real FFT.
 *
 * pymicro-features ships this part (fft.cc, fft_util.cc) as C++ because it wraps kissfft in a
 * namespace; the firmware is C, so the same operations are provided here: scale the window by a left
 * shift, zero-pad to the FFT size, run kiss_fftr. kissfft itself is compiled with FIXED_POINT=16,
 * exactly as in pymicro-features, so the spectrum is bit-identical.
 */
#include <string.h>

#include "kiss_fft.h"
#include "tensorflow/lite/experimental/microfrontend/lib/fft.h"
#include "tensorflow/lite/experimental/microfrontend/lib/fft_util.h"
#include "tools/kiss_fftr.h"

/* Start-up allocation: the firmware's static arena (kws_fe_alloc.c) or the heap (kws_frontend_lib.c). */
void *kws_fe_malloc(size_t size);
void kws_fe_free(void *ptr);

void FftCompute(struct FftState *state, const int16_t *input, int input_scale_shift) {
    size_t i = 0;
    for (; i < state->input_size; ++i) {
        /* Shift as unsigned, then reinterpret: the reference's well-defined left shift. */
        state->input[i] = (int16_t)(uint16_t)((uint32_t)(uint16_t)input[i] << input_scale_shift);
    }
    for (; i < state->fft_size; ++i) {
        state->input[i] = 0;
    }
    kiss_fftr((kiss_fftr_cfg)state->scratch, state->input, (kiss_fft_cpx *)state->output);
}

void FftInit(struct FftState *state) { (void)state; }

void FftReset(struct FftState *state) {
    memset(state->input, 0, state->fft_size * sizeof(*state->input));
    memset(state->output, 0, (state->fft_size / 2 + 1) * sizeof(*state->output));
}

int FftPopulateState(struct FftState *state, size_t input_size) {
    state->input_size = input_size;
    state->fft_size = 1;
    while (state->fft_size < input_size) {
        state->fft_size <<= 1;
    }
    state->input = (int16_t *)kws_fe_malloc(state->fft_size * sizeof(*state->input));
    /* Same output allocation as the reference (twice the complex bins: reused for energies). */
    state->output = (struct complex_int16_t *)kws_fe_malloc((state->fft_size / 2 + 1) *
                                                            sizeof(*state->output) * 2);
    size_t scratch_size = 0;
    if (kiss_fftr_alloc((int)state->fft_size, 0, NULL, &scratch_size) != NULL) {
        return 0;
    }
    state->scratch = kws_fe_malloc(scratch_size);
    state->scratch_size = scratch_size;
    if (state->input == NULL || state->output == NULL || state->scratch == NULL) {
        return 0;
    }
    return kiss_fftr_alloc((int)state->fft_size, 0, state->scratch, &scratch_size) == state->scratch;
}

void FftFreeStateContents(struct FftState *state) {
    /* Reverse order of allocation (the arena gives back only its most recent block). */
    kws_fe_free(state->scratch);
    kws_fe_free(state->output);
    kws_fe_free(state->input);
    state->input = NULL;
    state->output = NULL;
    state->scratch = NULL;
}
