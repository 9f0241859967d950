/*
 * QEMU mps2-an386 board: audio from a WAV file through semihosting, events to the semihosting
 * console, CMSDK APB timer 0 as the counter.
 *
 * Arguments come from `-semihosting-config enable=on,target=native,arg=kws_m4,arg=FILE.wav
 * [,arg=--features][,arg=--stats][,arg=--no-posteriors]`. Counter: with `-icount shift=0` QEMU
 * advances virtual time by exactly 1 ns per instruction, and timer 0 counts at the 25 MHz peripheral
 * clock, so one tick = 40 instructions.
 * A calibration loop of known length is measured at start-up and printed to confirm this.
 */
#include <string.h>

#include "kws_board.h"
#include "kws_frontend_config.h"
#include "semihosting.h"

size_t kws_stack_high_water(void);

#define TIMER0_BASE 0x40000000u
#define TIMER_CTRL (*(volatile uint32_t *)(TIMER0_BASE + 0x0))
#define TIMER_VALUE (*(volatile uint32_t *)(TIMER0_BASE + 0x4))
#define TIMER_RELOAD (*(volatile uint32_t *)(TIMER0_BASE + 0x8))

static int32_t g_console = -1;
static int32_t g_wav = -1;
static uint32_t g_data_left;

void kws_board_write(const char *text, size_t len) { sh_write(g_console, text, len); }

static void say(const char *text) { kws_board_write(text, strlen(text)); }

static void fail(const char *message) {
    say("ERROR ");
    say(message);
    say("\n");
    sh_exit(2);
}

/* newlib's assert() handler, replaced so that a failed front-end assertion is reported through
 * semihosting instead of pulling in stdio. */
void __assert_func(const char *file, int line, const char *func, const char *expr) {
    (void)line;
    (void)func;
    say("ERROR assertion failed: ");
    say(expr);
    say(" in ");
    say(file);
    say("\n");
    sh_exit(3);
}

uint32_t kws_board_counter(void) { return ~TIMER_VALUE; /* the timer counts down */ }

const char *kws_board_counter_unit(void) { return "timer-ticks"; }

static void start_timer(void) {
    TIMER_CTRL = 0;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1; /* enable, no interrupt */
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static void open_wav(const char *path) {
    uint8_t header[12], chunk[8], fmt[16];
    uint32_t position = 12;
    int have_fmt = 0;
    g_wav = sh_open(path, 1);
    if (g_wav < 0) {
        fail("cannot open the WAV file");
    }
    if (sh_read(g_wav, header, 12) != 12 || memcmp(header, "RIFF", 4) || memcmp(header + 8, "WAVE", 4)) {
        fail("not a RIFF/WAVE file");
    }
    while (sh_read(g_wav, chunk, 8) == 8) {
        const uint32_t size = le32(chunk + 4);
        position += 8;
        if (!memcmp(chunk, "data", 4)) {
            if (!have_fmt) {
                fail("data chunk before fmt chunk");
            }
            g_data_left = size;
            return;
        }
        if (!memcmp(chunk, "fmt ", 4)) {
            if (size < 16 || sh_read(g_wav, fmt, 16) != 16) {
                fail("truncated fmt chunk");
            }
            if (le16(fmt) != 1 || le16(fmt + 2) != 1 || le32(fmt + 4) != KWS_FE_SAMPLE_RATE || le16(fmt + 14) != 16) {
                fail("expected 16-bit PCM mono at the front end's sample rate");
            }
            have_fmt = 1;
        }
        position += size + (size & 1u);
        sh_seek(g_wav, position);
    }
    fail("no data chunk");
}

size_t kws_board_audio_read(int16_t *samples, size_t max_samples) {
    size_t bytes = max_samples * 2 < g_data_left ? max_samples * 2 : g_data_left;
    const int32_t got = sh_read(g_wav, samples, bytes) / 2; /* little-endian, like the WAV */
    g_data_left -= (uint32_t)got * 2u;
    return (size_t)got;
}

/* Counts timer ticks over 2 * `iterations` instructions (a two-instruction loop). */
static uint32_t calibrate(uint32_t iterations) {
    const uint32_t t0 = kws_board_counter();
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(iterations) : : "cc");
    return kws_board_counter() - t0;
}

static void put_uint(char *buf, uint32_t v) {
    char tmp[11];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) {
        *buf++ = tmp[--n];
    }
    *buf = 0;
}

static void say_uint(const char *label, uint32_t v) {
    char digits[12];
    put_uint(digits, v);
    say(label);
    say(digits);
}

/* Splits the command line in place (strtok-like, on spaces). */
static char *next_token(char *start) {
    static char *cursor;
    if (start != NULL) {
        cursor = start;
    }
    while (*cursor == ' ') {
        ++cursor;
    }
    if (*cursor == 0) {
        return NULL;
    }
    char *token = cursor;
    while (*cursor && *cursor != ' ') {
        ++cursor;
    }
    if (*cursor) {
        *cursor++ = 0;
    }
    return token;
}

int main(void) {
    static char cmdline[1024];
    kws_app_options_t options = {0, 0, 0, 0};
    const char *path = NULL;
    g_console = sh_open(":tt", 4);
    if (sh_get_cmdline(cmdline, sizeof(cmdline)) != 0) {
        fail("no semihosting command line");
    }
    /* argv[0] is the program name; then the WAV path and flags, separated by spaces. */
    char *token = next_token(cmdline);
    while ((token = next_token(NULL)) != NULL) {
        if (!strcmp(token, "--features")) {
            options.print_features = 1;
        } else if (!strcmp(token, "--stats")) {
            options.print_stats = 1;
        } else if (!strcmp(token, "--no-posteriors")) {
            options.no_posteriors = 1;
        } else {
            path = token;
        }
    }
    if (path == NULL) {
        fail("usage: arg=kws_m4,arg=input.wav[,arg=--features][,arg=--stats][,arg=--no-posteriors]");
    }
    start_timer();
    open_wav(path);
    const uint32_t calibration_iterations = 1000000u;
    const uint32_t calibration_ticks = calibrate(calibration_iterations);
    const int rc = kws_app_run(&options);
    sh_close(g_wav);
    if (options.print_stats) {
        say_uint("S stack_high_water=", (uint32_t)kws_stack_high_water());
        say_uint(" calibration_instructions=", 2u * calibration_iterations);
        say_uint(" calibration_ticks=", calibration_ticks);
        say("\n");
    }
    return rc;
}
