/* Keyword detection over int8 posteriors; see include/kws_detect.h for the rule. Integer only. */
#include "kws_detect.h"

#include <string.h>

#if KWS_DETECT_WINDOW < 1 || KWS_DETECT_REFRACTORY < 0
#error "kws_settings.h: the smoothing window must be >= 1 frame and the refractory period >= 0"
#endif

const char *const kws_label_names[KWS_NUM_LABELS] = KWS_LABEL_NAMES;
static const uint8_t kws_label_fires[KWS_NUM_LABELS] = KWS_LABEL_FIRES;
static const int32_t kws_label_limits[KWS_NUM_LABELS] = KWS_DETECT_LIMITS;

/* The last W posteriors per label in units (q - zero point). With int8 q and an int8 zero point the
 * values lie in [-255, 255], so int16 holds them exactly (half the RAM of int32); the running sums,
 * at most W * 255 in magnitude, are int32. */
static int16_t g_ring[KWS_DETECT_WINDOW][KWS_NUM_LABELS];
static int32_t g_sum[KWS_NUM_LABELS];
static uint32_t g_pos;      /* ring slot of the oldest value, overwritten next */
static uint32_t g_frame;    /* frames since the last reset */
static uint32_t g_holdoff;  /* frames still inside the refractory period */

void kws_detector_reset(void) {
    memset(g_ring, 0, sizeof(g_ring));
    memset(g_sum, 0, sizeof(g_sum));
    g_pos = 0;
    g_frame = 0;
    g_holdoff = 0;
}

int kws_detector_update(const int8_t *posteriors, kws_event_t *event) {
    int16_t *slot = g_ring[g_pos];
    for (int c = 0; c < KWS_NUM_LABELS; ++c) {
        const int16_t v = (int16_t)(posteriors[c] - KWS_POSTERIOR_ZERO_POINT);
        g_sum[c] += v - slot[c];
        slot[c] = v;
    }
    g_pos = g_pos + 1 == KWS_DETECT_WINDOW ? 0 : g_pos + 1;
    const uint32_t frame = g_frame++;
    /* A countdown rather than Python's absolute "quiet until" frame: the same frames are blocked
     * (f + 1 ... f + R) and the counter may wrap without effect. */
    if (g_holdoff > 0) {
        --g_holdoff;
        return 0;
    }
    int best = -1;
    for (int c = 0; c < KWS_NUM_LABELS; ++c) {
        /* strict '>' keeps the lowest index on ties, like numpy's argmax */
        if (kws_label_fires[c] && g_sum[c] >= kws_label_limits[c] && (best < 0 || g_sum[c] > g_sum[best])) {
            best = c;
        }
    }
    if (best < 0) {
        return 0;
    }
    g_holdoff = KWS_DETECT_REFRACTORY;
    event->frame = frame;
    event->label = best;
    event->window_sum = g_sum[best];
    return 1;
}

uint32_t kws_event_time_ms(const kws_event_t *event) {
    return event->frame * (uint32_t)KWS_HOP_MS + (uint32_t)KWS_WINDOW_MS;
}
