"""The model's C files: model_data.h / model_data.c (buffers, constants, `kws_model_invoke/step/reset`, the
integer feature quantizer) and model_tflite.h / model_tflite.c (the raw flatbuffer, 16-byte aligned)."""

from __future__ import annotations

import numpy as np

from edge.frontend import FEATURE_SCALE
from edge.quant import quantize_features
from export.codegen.arena import ArenaPlan
from export.codegen.ctext import c_list, c_string
from export.codegen.errors import CodegenError
from export.codegen.graph import Graph, Interface
from export.codegen.lowering import Lowering


def quantize_features_reference(frames: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """uint16 front-end output -> int8 model input: the runtime's one definition (edge.quant)."""
    return quantize_features(frames, scale, zero_point, "int8")


def feature_thresholds(scale: float, zero_point: int) -> tuple[int, list[int]]:
    """Integer form of `quantize_features_reference`: q(u) = q0 + #{thresholds <= u}."""
    levels = quantize_features_reference(np.arange(65536, dtype=np.uint16), scale, zero_point).astype(np.int32)
    if np.any(np.diff(levels) < 0):
        raise CodegenError("feature quantization is not monotonic")
    q0 = int(levels[0])
    thresholds = [int(np.argmax(levels >= q)) for q in range(q0 + 1, int(levels[-1]) + 1)]
    return q0, thresholds


_ALIGN_MACRO = """#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define KWS_ALIGNED16 _Alignas(16)
#elif defined(__GNUC__)
#define KWS_ALIGNED16 __attribute__((aligned(16)))
#else
#define KWS_ALIGNED16
#endif"""


def model_header(graph: Graph, iface: Interface, macs: int, banner: str) -> str:
    """model_data.h: sizes, buffers and the model's functions (`kws_model_step` for a streaming model)."""
    ins = [graph.tensors[t] for t in graph.inputs]
    outs = [graph.tensors[t] for t in graph.outputs]
    lines = [
        banner,
        "#ifndef KWS_MODEL_DATA_H",
        "#define KWS_MODEL_DATA_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define KWS_MODEL_NUM_INPUTS {len(ins)}",
        f"#define KWS_MODEL_NUM_OUTPUTS {len(outs)}",
        f"#define KWS_MODEL_NUM_STATES {len(iface.states)}",
        f"#define KWS_MODEL_MACS {macs}",
    ]
    if iface.feature_slot is not None:
        lines += [
            f"#define KWS_MODEL_FEATURE_INPUT {iface.feature_slot}",
            f"#define KWS_MODEL_FEATURE_SIZE {ins[iface.feature_slot].size}",
        ]
    if iface.posterior_slot is not None:
        lines += [
            f"#define KWS_MODEL_POSTERIOR_OUTPUT {iface.posterior_slot}",
            f"#define KWS_MODEL_NUM_CLASSES {outs[iface.posterior_slot].size}",
        ]
    lines += [
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "/* Input/output buffers, their element counts and zero points (tensor order of the model). */",
        "extern int8_t *const kws_model_inputs[KWS_MODEL_NUM_INPUTS];",
        "extern const int8_t *const kws_model_outputs[KWS_MODEL_NUM_OUTPUTS];",
        "extern const uint16_t kws_model_input_sizes[KWS_MODEL_NUM_INPUTS];",
        "extern const uint16_t kws_model_output_sizes[KWS_MODEL_NUM_OUTPUTS];",
        "extern const char *const kws_model_input_names[KWS_MODEL_NUM_INPUTS];",
        "extern const char *const kws_model_output_names[KWS_MODEL_NUM_OUTPUTS];",
        "",
        "/* Runs every operator once on the current input buffers. */",
        "void kws_model_invoke(void);",
        "/* Sets every recurrent state input to its zero point (real value 0). */",
        "void kws_model_reset(void);",
    ]
    if iface.feature_slot is not None and iface.posterior_slot is not None:
        lines += [
            "/* One streaming step: features in, posteriors out, state carried to the next step. */",
            "void kws_model_step(const int8_t *features, int8_t *posteriors);",
            "/* uint16 front-end output -> int8 model input (integer form of the float quantization). */",
            "void kws_model_quantize_features(const uint16_t *frontend_output, int8_t *features);",
        ]
    lines += ["", "#ifdef __cplusplus", "}", "#endif", "", "#endif /* KWS_MODEL_DATA_H */", ""]
    return "\n".join(lines)


def model_source(graph: Graph, iface: Interface, lowering: Lowering, plan: ArenaPlan, banner: str) -> str:
    """model_data.c: the arena, the lowered operators' constants and calls, reset, and the streaming step."""
    ins = [graph.tensors[t] for t in graph.inputs]
    outs = [graph.tensors[t] for t in graph.outputs]
    out_buffers = [f"(const int8_t *)(kws_arena + {plan.offsets[t]})" for t in graph.outputs]
    lines = [
        banner,
        '#include "model_data.h"',
        "",
        "#include <stddef.h>",
        "#include <string.h>",
        "",
        '#include "kws_kernels.h"',
        "",
        "/* Optional per-operator profiling (build with -DKWS_PROFILE, see firmware/src/kws_profile.h). */",
        "#ifdef KWS_PROFILE",
        '#include "kws_profile.h"',
        "#else",
        "#define KWS_OP(kind, call) call",
        "#endif",
        "",
        f"/* Activation arena: {plan.size} bytes, offsets planned from tensor lifetimes. */",
        f"static int8_t kws_arena[{max(plan.size, 4)}] __attribute__((aligned(4)));",
    ]
    for i, t in enumerate(ins):
        lines.append(f"static int8_t kws_input_{i}[{t.size}] __attribute__((aligned(4))); /* {t.name} */")
    lines += [""] + lowering.src.decls + [""]
    lines += [
        f"int8_t *const kws_model_inputs[KWS_MODEL_NUM_INPUTS] = {c_list(f'kws_input_{i}' for i in range(len(ins)))};",
        f"const int8_t *const kws_model_outputs[KWS_MODEL_NUM_OUTPUTS] = {c_list(out_buffers)};",
        f"const uint16_t kws_model_input_sizes[KWS_MODEL_NUM_INPUTS] = {c_list(str(t.size) for t in ins)};",
        f"const uint16_t kws_model_output_sizes[KWS_MODEL_NUM_OUTPUTS] = {c_list(str(t.size) for t in outs)};",
        f"const char *const kws_model_input_names[KWS_MODEL_NUM_INPUTS] = {c_list(c_string(t.name) for t in ins)};",
        f"const char *const kws_model_output_names[KWS_MODEL_NUM_OUTPUTS] = {c_list(c_string(t.name) for t in outs)};",
        "",
        "void kws_model_invoke(void) {",
        *lowering.src.body,
        "}",
        "",
        "void kws_model_reset(void) {",
    ]
    for s in iface.states:
        lines.append(f"    memset(kws_input_{s.input_slot}, {s.zero_point}, {s.size});")
    lines += ["}", ""]
    if iface.feature_slot is not None and iface.posterior_slot is not None:
        lines += _step_functions(graph, iface, plan)
    return "\n".join(lines)


def _step_functions(graph: Graph, iface: Interface, plan: ArenaPlan) -> list[str]:
    """The integer feature quantizer and `kws_model_step` (features in, posteriors out, state carried)."""
    feature = graph.tensors[graph.inputs[iface.feature_slot]]
    posterior = graph.tensors[graph.outputs[iface.posterior_slot]]
    q0, thresholds = feature_thresholds(feature.scale, feature.zero_point)
    lines = [
        f"/* Feature quantization: q(u) = {q0} + number of thresholds <= u (scale {feature.scale!r},",
        f" * zero point {feature.zero_point}, float feature = u * {FEATURE_SCALE!r}). */",
        "static const uint16_t kws_feature_thresholds[" + str(max(len(thresholds), 1)) + "] = {"
        + (", ".join(str(v) for v in thresholds) if thresholds else "0")
        + "};",
        "",
        "void kws_model_quantize_features(const uint16_t *frontend_output, int8_t *features) {",
        f"    for (int c = 0; c < {feature.size}; ++c) {{",
        "        const uint16_t u = frontend_output[c];",
        f"        int lo = 0, hi = {len(thresholds)};",
        "        while (lo < hi) { /* count thresholds <= u */",
        "            const int mid = (lo + hi) / 2;",
        "            if (kws_feature_thresholds[mid] <= u) lo = mid + 1; else hi = mid;",
        "        }",
        f"        features[c] = (int8_t)({q0} + lo);",
        "    }",
        "}",
        "",
        "void kws_model_step(const int8_t *features, int8_t *posteriors) {",
        f"    memcpy(kws_input_{iface.feature_slot}, features, {feature.size});",
        "    kws_model_invoke();",
        f"    memcpy(posteriors, kws_arena + {plan.offsets[posterior.index]}, {posterior.size});",
    ]
    for s in iface.states:
        offset = plan.offsets[graph.outputs[s.output_slot]]
        lines.append(f"    memcpy(kws_input_{s.input_slot}, kws_arena + {offset}, {s.size});")
    lines += ["}", ""]
    return lines


def tflite_files(tflite: bytes, banner: str) -> tuple[str, str]:
    """model_tflite.h and model_tflite.c: the flatbuffer as a 16-byte aligned byte array."""
    header = "\n".join(
        [
            banner,
            "#ifndef KWS_MODEL_TFLITE_H",
            "#define KWS_MODEL_TFLITE_H",
            "",
            "#include <stdint.h>",
            "",
            "/* The original flatbuffer, 16-byte aligned, for use with TensorFlow Lite Micro itself. */",
            "extern const uint8_t kws_model_tflite[];",
            "extern const uint32_t kws_model_tflite_len;",
            "",
            "#endif /* KWS_MODEL_TFLITE_H */",
            "",
        ]
    )
    rows = [", ".join(f"0x{b:02x}" for b in tflite[i : i + 16]) for i in range(0, len(tflite), 16)]
    source = "\n".join(
        [
            banner,
            '#include "model_tflite.h"',
            "",
            _ALIGN_MACRO,
            "",
            f"KWS_ALIGNED16 const uint8_t kws_model_tflite[{len(tflite)}] = {{",
            ",\n".join("    " + r for r in rows),
            "};",
            f"const uint32_t kws_model_tflite_len = {len(tflite)}u;",
            "",
        ]
    )
    return header, source
