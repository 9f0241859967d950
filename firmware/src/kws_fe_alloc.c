/*
 * Start-up memory for the TFLM audio front end: a bump allocator over one static array.
 *
 * The front end allocates its buffers and tables once in FrontendPopulateState(); nothing is
 * allocated per frame. Freeing the most recent block gives its bytes back (the filterbank set-up frees
 * its temporary arrays), anything else is kept: memory use is bounded and known at build time.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kws_frontend.h"

#ifndef KWS_FE_ARENA_BYTES
#define KWS_FE_ARENA_BYTES 12288
#endif

static uint8_t g_arena[KWS_FE_ARENA_BYTES] __attribute__((aligned(8)));
static size_t g_used;
static size_t g_high_water;
static size_t g_last_offset = (size_t)-1;

void *kws_fe_malloc(size_t size) {
    const size_t start = (g_used + 7u) & ~(size_t)7u;
    if (size > KWS_FE_ARENA_BYTES - start) {
        return NULL; /* FrontendPopulateState() reports failure */
    }
    g_last_offset = start;
    g_used = start + size;
    if (g_used > g_high_water) {
        g_high_water = g_used;
    }
    return &g_arena[start];
}

void *kws_fe_calloc(size_t count, size_t size) {
    if (size != 0 && count > ((size_t)-1) / size) {
        return NULL;
    }
    void *ptr = kws_fe_malloc(count * size);
    if (ptr != NULL) {
        memset(ptr, 0, count * size);
    }
    return ptr;
}

void kws_fe_free(void *ptr) {
    if (ptr != NULL && (uint8_t *)ptr == &g_arena[g_last_offset]) {
        g_used = g_last_offset;
        g_last_offset = (size_t)-1;
    }
}

int kws_fe_fprintf(void *stream, const char *format, ...) {
    (void)stream;
    (void)format;
    return 0;
}

void kws_fe_alloc_reset(void) {
    g_used = 0;
    g_last_offset = (size_t)-1;
}

size_t kws_frontend_arena_used(void) { return g_high_water; }
