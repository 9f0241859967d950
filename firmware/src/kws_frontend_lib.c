/*
 * The TFLM audio front end as a shared library for the Python runtimes (edge/frontend.py loads it with
 * ctypes): the same third-party sources and FFT glue as the firmware, built with the same
 * -ffp-contract=off, so training on x86, `python -m edge` on a Raspberry Pi and the microcontroller
 * compute the same features bit for bit (a prebuilt pymicro-features wheel for aarch64 does not: its
 * compiler fuses the float multiply-adds that build the start-up tables).
 *
 * Unlike the firmware wrapper (kws_frontend.c: one static instance, configuration compiled in), this one
 * takes the configuration at run time, allocates from the heap and supports any number of instances. It
 * also buffers partial hops, so a caller can pass chunks of any length in one call.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kws_fe_params.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

#if defined(__GNUC__)
#define KWS_EXPORT __attribute__((visibility("default")))
#else
#define KWS_EXPORT
#endif

/* Bumped whenever struct kws_fe_params (kws_fe_params.h) or a function signature changes; edge/frontend.py
 * checks it. */
#define KWS_FE_LIB_ABI 1

struct kws_fe {
    struct FrontendState state;
    size_t hop;
    size_t num_channels;
    size_t pending;  /* samples of the current, incomplete hop held in buf */
    int16_t *buf;    /* hop samples */
};

/* The front end's FFT glue (kws_fft.c) allocates through these; the firmware maps them to its arena. */
void *kws_fe_malloc(size_t size) { return malloc(size); }
void kws_fe_free(void *ptr) { free(ptr); }

KWS_EXPORT int kws_fe_abi_version(void) { return KWS_FE_LIB_ABI; }

KWS_EXPORT size_t kws_fe_params_size(void) { return sizeof(struct kws_fe_params); }

KWS_EXPORT void kws_fe_destroy(struct kws_fe *fe) {
    if (fe == NULL) {
        return;
    }
    FrontendFreeStateContents(&fe->state);
    free(fe->buf);
    free(fe);
}

/* NULL if the parameters are out of range or the tables cannot be built. */
KWS_EXPORT struct kws_fe *kws_fe_create(const struct kws_fe_params *p) {
    if (p == NULL || p->sample_rate <= 0 || p->window_ms <= 0 || p->hop_ms <= 0 || p->num_channels <= 0) {
        return NULL;
    }
    const size_t hop = (size_t)p->sample_rate * (size_t)p->hop_ms / 1000u;
    if (hop == 0) {
        return NULL;
    }
    struct kws_fe *fe = calloc(1, sizeof(*fe));
    if (fe == NULL) {
        return NULL;
    }
    fe->hop = hop;
    fe->num_channels = (size_t)p->num_channels;
    fe->buf = malloc(hop * sizeof(*fe->buf));
    struct FrontendConfig cfg;
    kws_fill_frontend_config(p, &cfg);
    if (fe->buf == NULL || !FrontendPopulateState(&cfg, &fe->state, p->sample_rate)) {
        kws_fe_destroy(fe); /* the state was zeroed by calloc: freeing a partial one is safe */
        return NULL;
    }
    return fe;
}

/* Back to the state right after kws_fe_create() (FrontendPopulateState ends with FrontendReset). */
KWS_EXPORT void kws_fe_reset(struct kws_fe *fe) {
    FrontendReset(&fe->state);
    fe->pending = 0;
}

/* Frames kws_fe_process() will return for n more samples. */
static size_t frames_for(const struct kws_fe *fe, size_t n) {
    return (fe->pending + n) / fe->hop;
}

static size_t run_hop(struct kws_fe *fe, const int16_t *hop, uint16_t *out) {
    size_t consumed = 0;
    const struct FrontendOutput o = FrontendProcessSamples(&fe->state, hop, fe->hop, &consumed);
    if (o.size != fe->num_channels) {
        return 0; /* the first window is still filling */
    }
    memcpy(out, o.values, fe->num_channels * sizeof(*out));
    return 1;
}

/*
 * Feed n samples (any n, including 0); whole hops are processed, the rest is kept for the next call.
 * Writes the new frames (num_channels uint16 each) to out and returns how many there are; out must hold
 * frames_for(fe, n) frames (at most n / hop + 1), else nothing is consumed and (size_t)-1 is returned.
 */
KWS_EXPORT size_t kws_fe_process(struct kws_fe *fe, const int16_t *pcm, size_t n, uint16_t *out,
                                 size_t max_frames) {
    if (frames_for(fe, n) > max_frames) {
        return (size_t)-1;
    }
    size_t frames = 0;
    size_t i = 0;
    if (fe->pending > 0) {
        const size_t take = n < fe->hop - fe->pending ? n : fe->hop - fe->pending;
        memcpy(fe->buf + fe->pending, pcm, take * sizeof(*pcm));
        fe->pending += take;
        i = take;
        if (fe->pending < fe->hop) {
            return 0;
        }
        frames += run_hop(fe, fe->buf, out);
        fe->pending = 0;
    }
    for (; n - i >= fe->hop; i += fe->hop) {
        frames += run_hop(fe, pcm + i, out + frames * fe->num_channels);
    }
    memcpy(fe->buf, pcm + i, (n - i) * sizeof(*pcm));
    fe->pending = n - i;
    return frames;
}
