/* Totals for kws_profile.h (only linked into profiling builds' output; harmless otherwise). */
#include "kws_profile.h"

uint32_t kws_profile_ticks[KWS_OPKIND_COUNT];
const char *const kws_profile_names[KWS_OPKIND_COUNT] = {
    "FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "SOFTMAX", "RESHAPE", "QUANTIZE",
};
