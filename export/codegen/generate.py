"""The entry points: `generate` (a .tflite -> every firmware file) and `generate_from_artifacts` (what
`make codegen` runs: the manifest's state pairs, front end, labels and post-processing)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from edge.atomic import write_text_atomic
from edge.postprocess import PostprocessConfig
from export.codegen.arena import plan_arena
from export.codegen.ctext import banner_comment
from export.codegen.emit import model_header, model_source, tflite_files
from export.codegen.errors import CodegenError
from export.codegen.graph import load_graph, resolve_interface
from export.codegen.lowering import Lowering
from export.codegen.settings import FirmwareSettings, frontend_header, model_settings, settings_header


@dataclass(frozen=True)
class GeneratedModel:
    """What was generated (for logs, tests and the size report)."""

    arena_bytes: int
    state_bytes: int
    input_bytes: int
    macs: int
    ops: tuple[str, ...]
    files: tuple[Path, ...]
    settings: "FirmwareSettings | None" = None


def generate(
    tflite: bytes,
    out_dir: Path,
    state_pairs: Sequence[tuple[str, str]] = (),
    frontend_config: Any = None,
    use_lut: bool = True,
    source_name: str = "a .tflite model",
    labels: Sequence[str] | None = None,
    postprocess: PostprocessConfig | None = None,
    validate: Callable[["FirmwareSettings | None"], None] | None = None,
) -> GeneratedModel:
    """Write model_data.[ch], model_tflite.[ch], kws_frontend_config.h and kws_settings.h into `out_dir`.

    kws_settings.h is written for streaming models (one feature input, one posterior output besides
    the state pairs); see `model_settings` for the defaults without labels/post-processing.
    `validate` may refuse the settings (raising CodegenError) before anything is written.
    """
    graph = load_graph(tflite)
    iface = resolve_interface(graph, state_pairs)
    plan = plan_arena(graph)
    lowering = Lowering(graph, plan, use_lut)
    for op in graph.ops:
        lowering.lower(op)
    settings = model_settings(graph, iface, labels, postprocess, frontend_config)
    if validate is not None:
        validate(settings)
    digest = hashlib.sha256(tflite).hexdigest()[:16]
    banner = banner_comment(f"{source_name} (sha256 {digest}...)")
    header = model_header(graph, iface, lowering.src.macs, banner)
    tfl_h, tfl_c = tflite_files(tflite, banner)
    files = {
        "model_data.h": header,
        "model_data.c": model_source(graph, iface, lowering, plan, banner),
        "model_tflite.h": tfl_h,
        "model_tflite.c": tfl_c,
        "kws_frontend_config.h": frontend_header(frontend_config),
    }
    if settings is not None:
        files["kws_settings.h"] = settings_header(settings, banner)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out_dir / name
        if path.is_symlink() or not path.exists() or path.read_text() != text:  # keep mtimes stable for make
            write_text_atomic(path, text)  # refuses a symlink
        written.append(path)
    stale = out_dir / "kws_settings.h"
    if settings is None and stale.exists():
        stale.unlink()  # never leave settings of another model next to this one
    ins = [graph.tensors[t] for t in graph.inputs]
    return GeneratedModel(
        arena_bytes=plan.size,
        state_bytes=sum(s.size for s in iface.states),
        input_bytes=sum(t.size for t in ins),
        macs=lowering.src.macs,
        ops=tuple(op.kind for op in graph.ops),
        files=tuple(written),
        settings=settings,
    )


def threshold_override(base: PostprocessConfig, threshold: float | None) -> PostprocessConfig:
    """`--threshold X`: one threshold for every keyword, as `python -m edge run --threshold X` does."""
    if threshold is None:
        return base
    if not 0.0 < threshold <= 1.0:
        raise CodegenError("--threshold must be in (0, 1]")
    return PostprocessConfig(base.window, threshold, {}, base.refractory)


def generate_from_artifacts(
    artifacts: Path, out_dir: Path, threshold: float | None = None, use_lut: bool = True
) -> GeneratedModel:
    """Firmware sources for the int8 model of an artifacts folder (`make export` output).

    The manifest is loaded with the runtime's own checks (sha256 of the model file, front end), and
    its state pairs, front end, labels and post-processing are used as they are, so the firmware
    decides exactly like `python -m edge run` on the same folder.
    """
    from edge.manifest import load_manifest

    manifest = load_manifest(Path(artifacts))
    spec = manifest.variant("int8")
    tflite = spec.path.read_bytes()
    return generate(
        tflite,
        out_dir,
        state_pairs=manifest.state_pairs,
        frontend_config=manifest.frontend,
        use_lut=use_lut,
        source_name=f"{Path(artifacts).name}/{spec.path.name}",
        labels=manifest.labels,
        postprocess=threshold_override(manifest.postprocess, threshold),
        validate=lambda settings: _check_against_manifest(settings, spec.feature_quantizer, spec.output("probs"),
                                                          spec.path),
    )


def _check_against_manifest(
    settings: FirmwareSettings | None, feature_quantizer: Mapping[str, Any] | None,
    probs: Mapping[str, Any], path: Path,
) -> None:
    """The Pi runtime quantizes features and scales thresholds with the manifest's numbers; the
    firmware uses the flatbuffer's. Refuse a folder where the two differ."""
    if settings is None:
        raise CodegenError(f"{path}: not a streaming model (features and state in, posteriors and state out)")
    if feature_quantizer is None or (
        float(feature_quantizer["scale"]), int(feature_quantizer["zero_point"])
    ) != (settings.features.scale, settings.features.zero_point):
        raise CodegenError(f"{path}: the manifest's feature quantizer differs from the model's input tensor")
    if probs.get("scale") is None or (float(probs["scale"]), int(probs["zero_point"])) != (
        settings.posteriors.scale, settings.posteriors.zero_point
    ):
        raise CodegenError(f"{path}: the manifest's posterior quantization differs from the model's output tensor")
