/*
 * Host test harness for the generated model alone (no front end): reads records of all model inputs
 * (int8, concatenated in input order) from stdin, runs kws_model_invoke() on each and writes all
 * outputs (int8, concatenated in output order) to stdout. Tests compare this with the TFLM interpreter.
 */
#include <stdio.h>

#include "model_data.h"

int main(void) {
    for (;;) {
        for (int i = 0; i < KWS_MODEL_NUM_INPUTS; ++i) {
            const size_t n = kws_model_input_sizes[i];
            if (fread(kws_model_inputs[i], 1, n, stdin) != n) {
                return 0;
            }
        }
        kws_model_invoke();
        for (int i = 0; i < KWS_MODEL_NUM_OUTPUTS; ++i) {
            fwrite(kws_model_outputs[i], 1, kws_model_output_sizes[i], stdout);
        }
    }
}
