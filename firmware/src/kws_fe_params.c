/* The one mapping of the front end's parameters onto TFLM's configuration (kws_fe_params.h). */
#include "kws_fe_params.h"

#include <stddef.h>
#include <string.h>

#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

void kws_fill_frontend_config(const struct kws_fe_params *p, struct FrontendConfig *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->window.size_ms = (size_t)p->window_ms;
    cfg->window.step_size_ms = (size_t)p->hop_ms;
    cfg->filterbank.num_channels = p->num_channels;
    cfg->filterbank.lower_band_limit = p->lower_band_limit_hz;
    cfg->filterbank.upper_band_limit = p->upper_band_limit_hz;
    cfg->noise_reduction.smoothing_bits = p->noise_smoothing_bits;
    cfg->noise_reduction.even_smoothing = p->noise_even_smoothing;
    cfg->noise_reduction.odd_smoothing = p->noise_odd_smoothing;
    cfg->noise_reduction.min_signal_remaining = p->noise_min_signal_remaining;
    cfg->pcan_gain_control.enable_pcan = p->pcan_enable;
    cfg->pcan_gain_control.strength = p->pcan_strength;
    cfg->pcan_gain_control.offset = p->pcan_offset;
    cfg->pcan_gain_control.gain_bits = p->pcan_gain_bits;
    cfg->log_scale.enable_log = p->log_enable;
    cfg->log_scale.scale_shift = p->log_scale_shift;
}
