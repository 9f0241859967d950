/*
 * Host board: audio from a 16 kHz mono 16-bit PCM WAV file, events to stdout, counter in ns.
 *
 * usage: kws_host [--features] [--stats] [--no-posteriors] [--reset-every HOPS] input.wav
 * Exit status 2 with one line on stderr for user errors (bad arguments, unreadable or wrong WAV).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kws_board.h"
#include "kws_frontend_config.h"

static FILE *g_wav;
static uint32_t g_data_left; /* bytes of PCM data not yet read */

static void fail(const char *message, const char *detail) {
    fprintf(stderr, "kws_host: error: %s%s%s\n", message, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Walks the RIFF chunks: checks "fmt " and stops at the start of "data". */
static void open_wav(const char *path) {
    uint8_t header[12], chunk[8], fmt[16];
    int have_fmt = 0;
    g_wav = fopen(path, "rb");
    if (!g_wav) {
        fail("cannot open", path);
    }
    if (fread(header, 1, 12, g_wav) != 12 || memcmp(header, "RIFF", 4) || memcmp(header + 8, "WAVE", 4)) {
        fail("not a RIFF/WAVE file", path);
    }
    while (fread(chunk, 1, 8, g_wav) == 8) {
        const uint32_t size = le32(chunk + 4);
        if (!memcmp(chunk, "fmt ", 4)) {
            if (size < 16 || fread(fmt, 1, 16, g_wav) != 16) {
                fail("truncated fmt chunk", path);
            }
            if (le16(fmt) != 1 || le16(fmt + 2) != 1 || le32(fmt + 4) != KWS_FE_SAMPLE_RATE ||
                le16(fmt + 14) != 16) {
                fail("expected 16-bit PCM mono at the front end's sample rate", path);
            }
            fseek(g_wav, (long)(size - 16 + (size & 1u)), SEEK_CUR);
            have_fmt = 1;
        } else if (!memcmp(chunk, "data", 4)) {
            if (!have_fmt) {
                fail("data chunk before fmt chunk", path);
            }
            g_data_left = size;
            return;
        } else {
            fseek(g_wav, (long)(size + (size & 1u)), SEEK_CUR);
        }
    }
    fail("no data chunk", path);
}

size_t kws_board_audio_read(int16_t *samples, size_t max_samples) {
    uint8_t bytes[2 * 512];
    size_t want = max_samples * 2 < g_data_left ? max_samples * 2 : g_data_left;
    if (want > sizeof(bytes)) {
        want = sizeof(bytes);
    }
    const size_t got = fread(bytes, 1, want, g_wav) / 2;
    g_data_left -= (uint32_t)(got * 2);
    for (size_t i = 0; i < got; ++i) {
        samples[i] = (int16_t)le16(bytes + 2 * i);
    }
    return got;
}

void kws_board_write(const char *text, size_t len) { fwrite(text, 1, len, stdout); }

uint32_t kws_board_counter(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

const char *kws_board_counter_unit(void) { return "ns"; }

int main(int argc, char **argv) {
    kws_app_options_t options = {0, 0, 0, 0};
    const char *path = NULL;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--features")) {
            options.print_features = 1;
        } else if (!strcmp(argv[i], "--stats")) {
            options.print_stats = 1;
        } else if (!strcmp(argv[i], "--no-posteriors")) {
            options.no_posteriors = 1;
        } else if (!strcmp(argv[i], "--reset-every") && i + 1 < argc) {
            char *end = NULL;
            const long hops = strtol(argv[++i], &end, 10);
            if (*end != 0 || hops < 1) {
                fail("--reset-every needs a positive number of hops", argv[i]);
            }
            options.reset_every_hops = (uint32_t)hops;
        } else if (argv[i][0] == '-' || path) {
            fail("usage: kws_host [--features] [--stats] [--no-posteriors] [--reset-every HOPS] input.wav", NULL);
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        fail("usage: kws_host [--features] [--stats] [--no-posteriors] [--reset-every HOPS] input.wav", NULL);
    }
    open_wav(path);
    const int rc = kws_app_run(&options);
    fclose(g_wav);
    return rc;
}
