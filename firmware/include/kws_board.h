/*
 * Board interface: everything the keyword spotter needs from the hardware.
 *
 * Port points for a real board:
 *   audio source  kws_board_audio_read()   16 kHz mono int16 PCM, e.g. from an I2S/PDM microphone
 *                                           via DMA into a ring buffer (block until a hop is ready)
 *   event sink    kws_board_write()         text lines (UART, RTT, USB CDC): "E ..." lines are the
 *                                           detected keywords -- or act on kws_detector_update()'s
 *                                           events directly (GPIO, BLE) in your own loop
 *   counter       kws_board_counter()       a free-running counter (DWT->CYCCNT on Cortex-M)
 * The host build reads a WAV file; the QEMU build reads it through ARM semihosting.
 */
#ifndef KWS_BOARD_H
#define KWS_BOARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reads up to `max_samples` samples; returns how many were read, 0 at the end of the stream. */
size_t kws_board_audio_read(int16_t *samples, size_t max_samples);

/* Writes `len` bytes of text to the event sink. */
void kws_board_write(const char *text, size_t len);

/* Free-running counter and the name of its unit ("ns", "icount-ticks", "cycles"). */
uint32_t kws_board_counter(void);
const char *kws_board_counter_unit(void);

/* Run options chosen by the board (command line on the host, semihosting arguments on QEMU). */
typedef struct {
    int print_features; /* debug: print every uint16 feature frame */
    int print_stats;    /* print counter totals at the end */
    int no_posteriors;  /* print only events, not every frame's posteriors (what a device would do) */
    uint32_t reset_every_hops; /* 0: never; N: kws_app_reset() before every N-th hop (a reset policy,
                                  like `python -m edge run --reset-every N*hop`) */
} kws_app_options_t;

/* The application: front end + model + detection on every hop until the audio ends (state reset at
 * the start). Returns 0 on success. */
int kws_app_run(const kws_app_options_t *options);

/* Back to power-on state: front end, recurrent model state, detector (smoothing window, refractory
 * period, event frame counter). kws_app_run() calls it per `reset_every_hops`; a board with its own
 * loop (kws_frontend_process -> kws_model_step -> kws_detector_update) calls it between hops. */
void kws_app_reset(void);

#ifdef __cplusplus
}
#endif

#endif /* KWS_BOARD_H */
