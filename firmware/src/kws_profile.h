/*
 * Per-operator-kind profiling of the generated model (enabled with -DKWS_PROFILE, e.g.
 * `make firmware-m4 FW_PROFILE=1`): each kernel call in kws_model_invoke() is wrapped in KWS_OP(),
 * which adds the board counter's elapsed ticks to the operator kind's total.
 */
#ifndef KWS_PROFILE_H
#define KWS_PROFILE_H

#include <stdint.h>

enum {
    KWS_OPKIND_FULLY_CONNECTED,
    KWS_OPKIND_ADD,
    KWS_OPKIND_SUB,
    KWS_OPKIND_MUL,
    KWS_OPKIND_LOGISTIC,
    KWS_OPKIND_TANH,
    KWS_OPKIND_SOFTMAX,
    KWS_OPKIND_RESHAPE,
    KWS_OPKIND_QUANTIZE,
    KWS_OPKIND_COUNT
};

extern uint32_t kws_profile_ticks[KWS_OPKIND_COUNT];
extern const char *const kws_profile_names[KWS_OPKIND_COUNT];
uint32_t kws_board_counter(void);

#define KWS_OP(kind, call)                                  \
    do {                                                    \
        const uint32_t kws_t0_ = kws_board_counter();       \
        call;                                               \
        kws_profile_ticks[kind] += kws_board_counter() - kws_t0_; \
    } while (0)

#endif /* KWS_PROFILE_H */
