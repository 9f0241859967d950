/*
 * Force-included (gcc -include) into the third-party TFLM front-end sources only.
 *
 * The front end's *PopulateState() functions call malloc/free/fprintf once at start-up. Here they are
 * (and calloc) redirected to a fixed static arena (kws_fe_alloc.c) and a silent error hook, so the firmware has no
 * heap and no stdio. The libc headers are included first so that their own prototypes keep the real
 * names; only the front-end code that follows sees the macros.
 */
#ifndef KWS_FE_ALLOC_H
#define KWS_FE_ALLOC_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

void *kws_fe_malloc(size_t size);
void *kws_fe_calloc(size_t count, size_t size);
void kws_fe_free(void *ptr);
int kws_fe_fprintf(void *stream, const char *format, ...);

#define malloc(size) kws_fe_malloc(size)
#define calloc(count, size) kws_fe_calloc(count, size)
#define free(ptr) kws_fe_free(ptr)
#define fprintf kws_fe_fprintf
#undef stderr
#define stderr ((void *)0)

#endif /* KWS_FE_ALLOC_H */
