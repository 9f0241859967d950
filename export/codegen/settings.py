"""The settings headers: kws_frontend_config.h (from `edge.frontend.FrontendConfig`) and kws_settings.h (labels,
framing, quantization and detection of a streaming model)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from edge.frontend import FrontendConfig, config_field_types
from edge.postprocess import BACKGROUND_LABELS, PostprocessConfig, integer_threshold
from export.codegen.ctext import banner_comment, c_float, c_list, c_string
from export.codegen.errors import CodegenError
from export.codegen.graph import Graph, Interface, TensorInfo
from export.codegen.tflm import INT32_MAX


def frontend_fields() -> tuple[tuple[str, str, type], ...]:
    """(FrontendConfig field, C macro, type) for every field, in declaration order (`edge.frontend.config_field_types`):
    the macro is `KWS_FE_` and the field's name in capitals; firmware/src/kws_frontend.c reads them into
    its `struct kws_fe_params` initialiser (a test checks)."""
    return tuple((name, f"KWS_FE_{name.upper()}", kind) for name, kind in config_field_types().items())


def frontend_dict(config: Any) -> dict[str, Any]:
    """A FrontendConfig, a dict with its fields, or None (the default front end) as a dict."""
    if config is None:
        config = FrontendConfig()
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return dict(config)


def frontend_header(config: Any, banner: str = banner_comment("the front-end configuration")) -> str:
    """kws_frontend_config.h from a FrontendConfig (or a dict with the same fields)."""
    values = frontend_dict(config)
    fields = frontend_fields()
    missing = [name for name, _, _ in fields if name not in values]
    if missing:
        raise CodegenError(f"front-end config lacks fields: {', '.join(missing)}")
    lines = [banner, "#ifndef KWS_FRONTEND_CONFIG_H", "#define KWS_FRONTEND_CONFIG_H", ""]
    for name, macro, kind in fields:
        value = values[name]
        if kind is int:
            if int(value) != value or int(value) < 0:
                raise CodegenError(f"front-end field {name} must be a non-negative integer, got {value!r}")
            text = str(int(value))
        elif kind is bool:
            text = "1" if bool(value) else "0"
        else:
            text = c_float(value)
        lines.append(f"#define {macro} {text}")
    sample_rate, window_ms, hop_ms = (int(values[k]) for k in ("sample_rate", "window_ms", "hop_ms"))
    lines += [
        "",
        "/* Derived sizes. */",
        f"#define KWS_FE_WINDOW_SAMPLES {sample_rate * window_ms // 1000}",
        f"#define KWS_FE_HOP_SAMPLES {sample_rate * hop_ms // 1000}",
        "",
        "#endif /* KWS_FRONTEND_CONFIG_H */",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class QuantParams:
    """real = scale * (q - zero_point)."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class StateSetting:
    """A state tensor as kws_settings.h lists it."""

    name: str
    size: int
    quant: QuantParams


@dataclass(frozen=True)
class FirmwareSettings:
    """Everything kws_settings.h carries; `limits` are the detector's integer window-sum thresholds."""

    labels: tuple[str, ...]
    postprocess: PostprocessConfig
    frontend: FrontendConfig
    features: QuantParams
    posteriors: QuantParams
    states: tuple[StateSetting, ...]

    @property
    def fires(self) -> tuple[bool, ...]:
        """Labels that may raise an event: all but the background classes (edge.postprocess)."""
        return tuple(label not in BACKGROUND_LABELS for label in self.labels)

    @property
    def limits(self) -> tuple[int, ...]:
        post = self.postprocess
        return tuple(
            integer_threshold(post.threshold_of(label), post.window, self.posteriors.scale) for label in self.labels
        )


def settings_header(settings: FirmwareSettings, banner: str = banner_comment("the artifacts' manifest")) -> str:
    """kws_settings.h: macros only (initializer lists for the tables), so the header can go anywhere."""
    if not settings.labels:
        raise CodegenError("no labels")
    if max(settings.limits) > INT32_MAX or settings.postprocess.window * 255 > INT32_MAX:
        raise CodegenError(f"detection window {settings.postprocess.window} is too long for int32 sums")
    lines = [banner, "#ifndef KWS_SETTINGS_H", "#define KWS_SETTINGS_H", ""]
    lines += _label_macros(settings) + [""] + _quantization_macros(settings) + [""] + _detection_macros(settings)
    lines += ["", "#endif /* KWS_SETTINGS_H */", ""]
    return "\n".join(lines)


def _label_macros(settings: FirmwareSettings) -> list[str]:
    fe = settings.frontend
    return [
        "/* Labels, in the model's output order. */",
        f"#define KWS_NUM_LABELS {len(settings.labels)}",
        f"#define KWS_LABEL_NAMES {c_list(c_string(label) for label in settings.labels)}",
        "/* 1: the label may raise an event; 0: background (" + ", ".join(BACKGROUND_LABELS) + "). */",
        f"#define KWS_LABEL_FIRES {c_list('1' if f else '0' for f in settings.fires)}",
        "",
        "/* Audio framing (also in kws_frontend_config.h; the app checks that both agree). */",
        f"#define KWS_SAMPLE_RATE {fe.sample_rate}",
        f"#define KWS_HOP_MS {fe.hop_ms}",
        f"#define KWS_WINDOW_MS {fe.window_ms}",
        f"#define KWS_HOP_SAMPLES {fe.hop_samples}",
        f"#define KWS_WINDOW_SAMPLES {fe.window_samples}",
    ]


def _quantization_macros(settings: FirmwareSettings) -> list[str]:
    lines = [
        "/* Quantization of the model's int8 tensors: real = scale * (q - zero_point). */",
        f"#define KWS_FEATURE_SCALE {c_float(settings.features.scale)}",
        f"#define KWS_FEATURE_ZERO_POINT ({settings.features.zero_point})",
        f"#define KWS_POSTERIOR_SCALE {c_float(settings.posteriors.scale)}",
        f"#define KWS_POSTERIOR_ZERO_POINT ({settings.posteriors.zero_point})",
        f"#define KWS_NUM_STATES {len(settings.states)}",
    ]
    if settings.states:
        lines += [
            f"#define KWS_STATE_NAMES {c_list(c_string(st.name) for st in settings.states)}",
            f"#define KWS_STATE_SIZES {c_list(str(st.size) for st in settings.states)}",
            f"#define KWS_STATE_SCALES {c_list(c_float(st.quant.scale) for st in settings.states)}",
            f"#define KWS_STATE_ZERO_POINTS {c_list(str(st.quant.zero_point) for st in settings.states)}",
            f"#define KWS_STATE_BYTES {sum(st.size for st in settings.states)}",
        ]
    return lines


def _detection_macros(settings: FirmwareSettings) -> list[str]:
    post = settings.postprocess
    overrides = [f"{label}={post.thresholds[label]:g}" for label in settings.labels if label in post.thresholds]
    thresholds = f"{post.threshold:g}" + (f"; per label: {', '.join(overrides)}" if overrides else " for every label")
    return [
        "/* Detection (edge/postprocess.py, integer form): a label fires when the sum of its last",
        " * KWS_DETECT_WINDOW values (q - KWS_POSTERIOR_ZERO_POINT) reaches its limit,",
        " * limit = ceil(threshold * window / posterior scale) (edge.postprocess.integer_threshold);",
        " * after an event nothing fires for KWS_DETECT_REFRACTORY frames.",
        f" * threshold {thresholds} */",
        f"#define KWS_DETECT_WINDOW {post.window}",
        f"#define KWS_DETECT_REFRACTORY {post.refractory}",
        f"#define KWS_DETECT_LIMITS {c_list(str(v) for v in settings.limits)}",
    ]


def _quant(tensor: TensorInfo) -> QuantParams:
    return QuantParams(tensor.scale, tensor.zero_point)


def model_settings(
    graph: Graph,
    iface: Interface,
    labels: Sequence[str] | None = None,
    postprocess: PostprocessConfig | None = None,
    frontend_config: Any = None,
) -> FirmwareSettings | None:
    """The settings of a streaming model (None when it has no single feature input/posterior output).

    Without labels the classes are called class_0, class_1, ... and all of them may fire; without a
    post-processing configuration edge.postprocess's defaults apply.
    """
    if iface.feature_slot is None or iface.posterior_slot is None:
        return None
    features = graph.tensors[graph.inputs[iface.feature_slot]]
    posteriors = graph.tensors[graph.outputs[iface.posterior_slot]]
    names = list(labels) if labels is not None else [f"class_{i}" for i in range(posteriors.size)]
    if len(names) != posteriors.size:
        raise CodegenError(f"{len(names)} labels for a model with {posteriors.size} outputs")
    if len(set(names)) != len(names):
        raise CodegenError("labels must be distinct")
    states = []
    for st in iface.states:
        tensor = graph.tensors[graph.inputs[st.input_slot]]
        states.append(StateSetting(tensor.name, st.size, _quant(tensor)))
    values = frontend_dict(frontend_config)
    return FirmwareSettings(
        labels=tuple(names),
        postprocess=postprocess or PostprocessConfig(),
        frontend=FrontendConfig(**{k: values[k] for k in FrontendConfig().to_dict()}),
        features=_quant(features),
        posteriors=_quant(posteriors),
        states=tuple(states),
    )
