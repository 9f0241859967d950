/*
 * The TFLM audio front end (window, FFT, filterbank, noise reduction, PCAN, log), configured from the
 * generated kws_frontend_config.h (written by export/codegen from edge.frontend.FrontendConfig).
 *
 * kws_frontend_init() builds the tables once at start-up (TFLM's FrontendPopulateState: this is the
 * only place that uses floating point, and its memory comes from a fixed static arena). The per-hop
 * path kws_frontend_process() is integer-only.
 */
#ifndef KWS_FRONTEND_H
#define KWS_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns 0 on success, -1 if the configuration cannot be built. */
int kws_frontend_init(void);
/* Back to the state right after kws_frontend_init() (empty window, zero noise estimate). */
void kws_frontend_reset(void);
/* Feed exactly one hop of samples; returns the feature frame (num_channels values) or NULL while the
 * first window is still filling. The returned buffer is valid until the next call. */
const uint16_t *kws_frontend_process(const int16_t *hop_samples);
/* Number of samples per hop and channels per frame (from the generated configuration). */
size_t kws_frontend_hop_samples(void);
size_t kws_frontend_num_channels(void);
/* Bytes of the start-up arena actually used (for the RAM report). */
size_t kws_frontend_arena_used(void);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FRONTEND_H */
