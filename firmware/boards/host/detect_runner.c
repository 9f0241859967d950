/*
 * Host test harness for the detector alone (no front end, no model): reads records from stdin, each
 * one tag byte followed by KWS_NUM_LABELS int8 posteriors, and prints one line per event:
 *   E <frame> <label index> <time ms> <window sum>
 * Tag 0: a frame (kws_detector_update). Tag 1: kws_detector_reset() (the posteriors are ignored).
 * Tests compare the events with edge/postprocess.py's Detector(integer=True).
 */
#include <stdio.h>

#include "kws_detect.h"

int main(void) {
    unsigned char record[1 + KWS_NUM_LABELS];
    kws_detector_reset();
    while (fread(record, 1, sizeof(record), stdin) == sizeof(record)) {
        if (record[0] == 1) {
            kws_detector_reset();
            continue;
        }
        kws_event_t event;
        if (kws_detector_update((const int8_t *)(record + 1), &event)) {
            printf("E %lu %ld %lu %ld\n", (unsigned long)event.frame, (long)event.label,
                   (unsigned long)kws_event_time_ms(&event), (long)event.window_sum);
        }
    }
    return 0;
}
