/* Front-end wrapper: configuration from the generated settings header, one hop per call. */
#include "kws_frontend.h"

#include "kws_frontend_config.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

void kws_fe_alloc_reset(void);

static struct FrontendState g_state;

static void fill_config(struct FrontendConfig *cfg) {
    cfg->window.size_ms = KWS_FE_WINDOW_MS;
    cfg->window.step_size_ms = KWS_FE_HOP_MS;
    cfg->filterbank.num_channels = KWS_FE_NUM_CHANNELS;
    cfg->filterbank.lower_band_limit = KWS_FE_LOWER_BAND_LIMIT_HZ;
    cfg->filterbank.upper_band_limit = KWS_FE_UPPER_BAND_LIMIT_HZ;
    cfg->noise_reduction.smoothing_bits = KWS_FE_NOISE_SMOOTHING_BITS;
    cfg->noise_reduction.even_smoothing = KWS_FE_NOISE_EVEN_SMOOTHING;
    cfg->noise_reduction.odd_smoothing = KWS_FE_NOISE_ODD_SMOOTHING;
    cfg->noise_reduction.min_signal_remaining = KWS_FE_NOISE_MIN_SIGNAL_REMAINING;
    cfg->pcan_gain_control.enable_pcan = KWS_FE_PCAN_ENABLE;
    cfg->pcan_gain_control.strength = KWS_FE_PCAN_STRENGTH;
    cfg->pcan_gain_control.offset = KWS_FE_PCAN_OFFSET;
    cfg->pcan_gain_control.gain_bits = KWS_FE_PCAN_GAIN_BITS;
    cfg->log_scale.enable_log = KWS_FE_LOG_ENABLE;
    cfg->log_scale.scale_shift = KWS_FE_LOG_SCALE_SHIFT;
}

int kws_frontend_init(void) {
    struct FrontendConfig cfg;
    fill_config(&cfg);
    kws_fe_alloc_reset();
    return FrontendPopulateState(&cfg, &g_state, KWS_FE_SAMPLE_RATE) ? 0 : -1;
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

size_t kws_frontend_num_channels(void) { return KWS_FE_NUM_CHANNELS; }
