/* Front-end wrapper: configuration from the generated kws_frontend_config.h, one hop per call. */
#include "kws_frontend.h"

#include "kws_fe_params.h"
#include "kws_frontend_config.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

void kws_fe_alloc_reset(void);

static struct FrontendState g_state;

/* The generated configuration as the front end's parameters (kws_fe_params.h): the one place that names a
 * KWS_FE_* macro for each field of edge.frontend.FrontendConfig (tests/test_frontend.py checks it). */
static const struct kws_fe_params k_params = {
    .sample_rate = KWS_FE_SAMPLE_RATE,
    .window_ms = KWS_FE_WINDOW_MS,
    .hop_ms = KWS_FE_HOP_MS,
    .num_channels = KWS_FE_NUM_CHANNELS,
    .lower_band_limit_hz = KWS_FE_LOWER_BAND_LIMIT_HZ,
    .upper_band_limit_hz = KWS_FE_UPPER_BAND_LIMIT_HZ,
    .noise_smoothing_bits = KWS_FE_NOISE_SMOOTHING_BITS,
    .noise_even_smoothing = KWS_FE_NOISE_EVEN_SMOOTHING,
    .noise_odd_smoothing = KWS_FE_NOISE_ODD_SMOOTHING,
    .noise_min_signal_remaining = KWS_FE_NOISE_MIN_SIGNAL_REMAINING,
    .pcan_enable = KWS_FE_PCAN_ENABLE,
    .pcan_strength = KWS_FE_PCAN_STRENGTH,
    .pcan_offset = KWS_FE_PCAN_OFFSET,
    .pcan_gain_bits = KWS_FE_PCAN_GAIN_BITS,
    .log_enable = KWS_FE_LOG_ENABLE,
    .log_scale_shift = KWS_FE_LOG_SCALE_SHIFT,
};

int kws_frontend_init(void) {
    struct FrontendConfig cfg;
    kws_fill_frontend_config(&k_params, &cfg);
    kws_fe_alloc_reset();
    return FrontendPopulateState(&cfg, &g_state, k_params.sample_rate) ? 0 : -1;
}

/* FrontendPopulateState() ends with this same FrontendReset(), so a reset equals a fresh start. */
void kws_frontend_reset(void) { FrontendReset(&g_state); }

const uint16_t *kws_frontend_process(const int16_t *hop_samples) {
    size_t consumed = 0;
    const struct FrontendOutput out =
        FrontendProcessSamples(&g_state, hop_samples, KWS_FE_HOP_SAMPLES, &consumed);
    return out.size ? out.values : NULL;
}

size_t kws_frontend_hop_samples(void) { return KWS_FE_HOP_SAMPLES; }

size_t kws_frontend_num_channels(void) { return (size_t)k_params.num_channels; }
