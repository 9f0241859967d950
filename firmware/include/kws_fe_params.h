/*
 * The front end's parameters, field for field edge.frontend.FrontendConfig (same names, order and kinds; a bool is
 * an int32_t flag), and the one place that turns them into TFLM's struct FrontendConfig.
 *
 * Both builds of the front end use it: the firmware (kws_frontend.c, from one static initialiser of the generated
 * kws_frontend_config.h macros) and the Python runtimes' library (kws_frontend_lib.c, from a struct filled by
 * edge/frontend.py through ctypes, which derives its layout from the dataclass). tests/test_frontend.py checks
 * the struct, the initialiser and the mapping against the dataclass.
 */
#ifndef KWS_FE_PARAMS_H
#define KWS_FE_PARAMS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kws_fe_params {
    int32_t sample_rate;
    int32_t window_ms;
    int32_t hop_ms;
    int32_t num_channels;
    float lower_band_limit_hz;
    float upper_band_limit_hz;
    int32_t noise_smoothing_bits;
    float noise_even_smoothing;
    float noise_odd_smoothing;
    float noise_min_signal_remaining;
    int32_t pcan_enable;
    float pcan_strength;
    float pcan_offset;
    int32_t pcan_gain_bits;
    int32_t log_enable;
    int32_t log_scale_shift;
};

struct FrontendConfig; /* TFLM: tensorflow/lite/experimental/microfrontend/lib/frontend_util.h */

/* Every member of *cfg from *p (unused members zeroed). The sample rate is not part of TFLM's configuration: the
 * caller passes p->sample_rate to FrontendPopulateState(). */
void kws_fill_frontend_config(const struct kws_fe_params *p, struct FrontendConfig *cfg);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FE_PARAMS_H */
