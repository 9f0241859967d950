/*
 * The streaming keyword spotter: one front-end hop and one model step per 10 ms of audio.
 *
 * Output (text, one record per line; parsed by tests/test_firmware_*.py):
 *   KWS channels=<F> classes=<C> hop=<samples>
 *   F <frame> <F uint16 features>        only with print_features
 *   P <frame> <C int8 posteriors>        one per feature frame (unless no_posteriors); frames counted
 *                                        from the start of the stream
 *   E <frame> <label index> <time ms> <window sum> <label name>
 *                                        a detected keyword (kws_detect.h): frame and time counted from
 *                                        the last reset; the name (last field) may contain spaces
 *   T hops=<n> frames=<n> events=<n> frontend=<total> model=<total> detect=<total> unit=<unit> ...
 *                                        only with print_stats
 *   K <op kind>=<total> ...              per operator kind, profiling builds (-DKWS_PROFILE) only
 *   END
 */
#include <string.h>

#include "kws_board.h"
#include "kws_detect.h"
#include "kws_frontend.h"
#include "kws_frontend_config.h"
#include "kws_settings.h"
#include "model_data.h"

/* The generated headers must describe one model and one front end (all come from one manifest). */
#if KWS_NUM_LABELS != KWS_MODEL_NUM_CLASSES
#error "kws_settings.h and model_data.h disagree on the number of classes: regenerate firmware/generated"
#endif
#if KWS_SAMPLE_RATE != KWS_FE_SAMPLE_RATE || KWS_HOP_MS != KWS_FE_HOP_MS || KWS_WINDOW_MS != KWS_FE_WINDOW_MS
#error "kws_settings.h and kws_frontend_config.h disagree on the audio framing: regenerate firmware/generated"
#endif

#ifdef KWS_PROFILE
#include "kws_profile.h"
#endif

#define KWS_MAX_HOP 512

typedef struct {
    char buf[16 * 48];
    size_t len;
} line_t;

static void put_str(line_t *l, const char *s) {
    while (*s && l->len < sizeof(l->buf)) {
        l->buf[l->len++] = *s++;
    }
}

static void put_int(line_t *l, int32_t v) {
    char tmp[12];
    int n = 0;
    uint32_t u = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10u);
        u /= 10u;
    } while (u);
    if (v < 0 && l->len < sizeof(l->buf)) {
        l->buf[l->len++] = '-';
    }
    while (n && l->len < sizeof(l->buf)) {
        l->buf[l->len++] = tmp[--n];
    }
}

static void flush_line(line_t *l) {
    put_str(l, "\n");
    kws_board_write(l->buf, l->len);
    l->len = 0;
}

static size_t read_hop(int16_t *hop, size_t n) {
    size_t got = 0;
    while (got < n) {
        const size_t r = kws_board_audio_read(hop + got, n - got);
        if (r == 0) {
            break;
        }
        got += r;
    }
    return got;
}

static void emit_features(line_t *l, uint32_t frame, const uint16_t *f, size_t n) {
    put_str(l, "F ");
    put_int(l, (int32_t)frame);
    for (size_t i = 0; i < n; ++i) {
        put_str(l, " ");
        put_int(l, f[i]);
    }
    flush_line(l);
}

static void emit_posteriors(line_t *l, uint32_t frame, const int8_t *p) {
    put_str(l, "P ");
    put_int(l, (int32_t)frame);
    for (int i = 0; i < KWS_MODEL_NUM_CLASSES; ++i) {
        put_str(l, " ");
        put_int(l, p[i]);
    }
    flush_line(l);
}

static void emit_event(line_t *l, const kws_event_t *e) {
    put_str(l, "E ");
    put_int(l, (int32_t)e->frame);
    put_str(l, " ");
    put_int(l, e->label);
    put_str(l, " ");
    put_int(l, (int32_t)kws_event_time_ms(e));
    put_str(l, " ");
    put_int(l, e->window_sum);
    put_str(l, " ");
    put_str(l, kws_label_names[e->label]);
    flush_line(l);
}

typedef struct {
    uint32_t hops, frames, events;
    uint32_t frontend, model, detect; /* counter totals: front end per hop, model and detector per frame */
} run_totals_t;

static void emit_stats(line_t *l, const run_totals_t *t) {
    put_str(l, "T hops=");
    put_int(l, (int32_t)t->hops);
    put_str(l, " frames=");
    put_int(l, (int32_t)t->frames);
    put_str(l, " events=");
    put_int(l, (int32_t)t->events);
    put_str(l, " frontend=");
    put_int(l, (int32_t)t->frontend);
    put_str(l, " model=");
    put_int(l, (int32_t)t->model);
    put_str(l, " detect=");
    put_int(l, (int32_t)t->detect);
    put_str(l, " unit=");
    put_str(l, kws_board_counter_unit());
    put_str(l, " fe_arena=");
    put_int(l, (int32_t)kws_frontend_arena_used());
    put_str(l, " macs=");
    put_int(l, KWS_MODEL_MACS);
    flush_line(l);
#ifdef KWS_PROFILE
    put_str(l, "K");
    for (int k = 0; k < KWS_OPKIND_COUNT; ++k) {
        if (kws_profile_ticks[k]) {
            put_str(l, " ");
            put_str(l, kws_profile_names[k]);
            put_str(l, "=");
            put_int(l, (int32_t)kws_profile_ticks[k]);
        }
    }
    flush_line(l);
#endif
}

void kws_app_reset(void) {
    kws_frontend_reset();
    kws_model_reset();
    kws_detector_reset();
}

int kws_app_run(const kws_app_options_t *options) {
    static int16_t hop[KWS_MAX_HOP];
    static int8_t features[KWS_MODEL_FEATURE_SIZE];
    static int8_t posteriors[KWS_MODEL_NUM_CLASSES];
    static line_t line;
    const size_t hop_samples = kws_frontend_hop_samples();
    if (hop_samples > KWS_MAX_HOP || kws_frontend_num_channels() != KWS_MODEL_FEATURE_SIZE ||
        kws_frontend_init() != 0) {
        put_str(&line, "ERROR front end configuration does not match the model");
        flush_line(&line);
        return 1;
    }
    kws_model_reset();
    kws_detector_reset();
    put_str(&line, "KWS channels=");
    put_int(&line, KWS_MODEL_FEATURE_SIZE);
    put_str(&line, " classes=");
    put_int(&line, KWS_MODEL_NUM_CLASSES);
    put_str(&line, " hop=");
    put_int(&line, (int32_t)hop_samples);
    flush_line(&line);

    run_totals_t totals = {0, 0, 0, 0, 0, 0};
    uint32_t hops_since_reset = 0;
    for (;;) {
        if (options->reset_every_hops && hops_since_reset == options->reset_every_hops) {
            kws_app_reset();
            hops_since_reset = 0;
        }
        if (read_hop(hop, hop_samples) != hop_samples) {
            break;
        }
        ++hops_since_reset;
        const uint32_t t0 = kws_board_counter();
        const uint16_t *frame = kws_frontend_process(hop);
        const uint32_t t1 = kws_board_counter();
        totals.frontend += t1 - t0;
        ++totals.hops;
        if (frame == NULL) {
            continue; /* the first window is still filling */
        }
        kws_model_quantize_features(frame, features);
        kws_model_step(features, posteriors);
        const uint32_t t2 = kws_board_counter();
        kws_event_t event;
        const int fired = kws_detector_update(posteriors, &event);
        totals.model += t2 - t1;
        totals.detect += kws_board_counter() - t2;
        if (options->print_features) {
            emit_features(&line, totals.frames, frame, KWS_MODEL_FEATURE_SIZE);
        }
        if (!options->no_posteriors) {
            emit_posteriors(&line, totals.frames, posteriors);
        }
        if (fired) {
            emit_event(&line, &event);
            ++totals.events;
        }
        ++totals.frames;
    }
    if (options->print_stats) {
        emit_stats(&line, &totals);
    }
    put_str(&line, "END");
    flush_line(&line);
    return 0;
}
