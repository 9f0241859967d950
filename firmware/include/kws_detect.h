/*
 * Keyword detection on the int8 posteriors: moving-average smoothing, per-label integer thresholds
 * and a refractory period. The C form of edge/postprocess.py `Detector(integer=True)`, decision for
 * decision:
 *
 *   every frame   sum[c] += (q[c] - zero_point) - (value of label c W frames ago)   (window of W frames,
 *                 zeros before the first frame)
 *   eligible      label c may fire (not _silence_/_unknown_) and sum[c] >= limit[c],
 *                 limit[c] = ceil(threshold[c] * W / posterior_scale)  (edge.postprocess.integer_threshold)
 *   event         the eligible label with the largest sum (ties: the lowest label index)
 *   refractory    after an event at frame f nothing fires before frame f + 1 + R
 *
 * W, R, the limits, the labels and which labels may fire come from the generated kws_settings.h
 * (export/codegen, from the artifacts' manifest). Frames are counted from 0 after a reset; an
 * event's time is frame * hop + window (the end of that frame's analysis window).
 */
#ifndef KWS_DETECT_H
#define KWS_DETECT_H

#include <stdint.h>

#include "kws_settings.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t frame;     /* index of the frame that fired, counted from 0 after the last reset */
    int32_t label;      /* index into kws_label_names */
    int32_t window_sum; /* the label's sum over the last W frames, in units (q - zero point) */
} kws_event_t;

/* Label names in the model's output order (from the manifest). */
extern const char *const kws_label_names[KWS_NUM_LABELS];

/* Back to power-on: empty window, frame counter 0, no refractory period. */
void kws_detector_reset(void);

/* One frame of int8 posteriors (KWS_NUM_LABELS values). Returns 1 and fills *event when a keyword
 * fires at this frame, 0 otherwise. */
int kws_detector_update(const int8_t *posteriors, kws_event_t *event);

/* End of the event frame's analysis window in ms from the start of the stream (or the last reset). */
uint32_t kws_event_time_ms(const kws_event_t *event);

#ifdef __cplusplus
}
#endif

#endif /* KWS_DETECT_H */
