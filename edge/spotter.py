"""`KeywordSpotter`: the public Python API of the on-device runtime (README "Use from Python").

It wraps what `python -m edge run` uses — `StreamingDetector` (front end, streaming model, detection) and
`PcmConverter` (any rate and channel count to the model's input) — so a program gets the same events as
the command line on the same audio.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from edge.audio import PcmConverter
from edge.detector import StreamingDetector
from edge.errors import UserError
from edge.frontend import FrontendBackend, backend_note, parse_frontend_backend
from edge.interpreters import Kernels, Runtime, parse_kernels, parse_runtime
from edge.manifest import Manifest, load_manifest
from edge.postprocess import Event, PostprocessConfig, keyword_labels

#: The model variants an export writes (`--variant`).
VARIANTS = ("int8", "float32", "int16x8")

#: What `KeywordSpotter.process` accepts: little-endian int16 bytes, or a numpy array of int16 or float samples.
Audio = bytes | bytearray | memoryview | np.ndarray


def detection_config(base: PostprocessConfig, labels: list[str], threshold: float | None = None,
                     thresholds: Mapping[str, float] | None = None) -> PostprocessConfig:
    """`base` (the manifest's detection settings) with the caller's thresholds.

    `threshold` replaces the default *and* every per-keyword threshold of `base`; `thresholds` (keyword ->
    value) then overrides single keywords. Window and refractory period are kept. Raises `UserError` for
    a value outside (0, 1] or a name that is not one of the model's keywords.
    """
    keywords = keyword_labels(labels)
    unknown = sorted(set(thresholds or {}) - set(keywords))
    if unknown:
        raise UserError(f"thresholds for labels that are not keywords of this model: {', '.join(unknown)} "
                        f"(keywords: {', '.join(keywords)})")
    per_label = {} if threshold is not None else dict(base.thresholds)
    per_label.update(thresholds or {})
    try:
        return PostprocessConfig(base.window, base.threshold if threshold is None else float(threshold),
                                 {k: float(v) for k, v in per_label.items()}, base.refractory)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad threshold: {exc}") from exc


class KeywordSpotter:
    """Streaming keyword spotting on PCM audio, one artifacts folder (`make export`) per instance.

    Feed audio of any length with `process()`; it returns the keyword events completed by that audio,
    with times in seconds from the start of the stream (or the last `reset()`). The recurrent state,
    smoothing and refractory period carry across calls, so the way the audio is split into calls never
    changes the result.

    Args:
        model: the artifacts folder (or an already loaded `Manifest`).
        variant: "int8" (default), "float32" or "int16x8".
        runtime: "auto" (default) | "litert" | "tflite-runtime" | "tf-lite" | "tflm" (or a `Runtime`).
        kernels: "reference" (default, identical on x86 and ARM) | "optimized" (or a `Kernels`).
        frontend: "auto" (default) | "library" | "pymicro-features" (or a `FrontendBackend`).
        sample_rate: rate of the audio you will feed; None = the model's rate (`model_rate`). Other
            rates are resampled with `edge.audio.Resampler`, state carried between calls.
        channels: channel count of the audio you will feed (mixed down to mono by their mean).
        threshold: replaces the detection threshold of every keyword (in (0, 1]).
        thresholds: per-keyword thresholds, e.g. {"yes": 0.5}, applied after `threshold`.
        keep_posteriors: keep every frame's posteriors for `posteriors()`.
        num_threads: interpreter threads.

    Raises `edge.UserError` (its message is the whole explanation) for a missing or refused model, an
    unknown option value or a bad threshold; `process` raises `edge.AudioError` for unusable samples.
    """

    def __init__(self, model: str | os.PathLike[str] | Manifest, *, variant: str = "int8",
                 runtime: Runtime | str = Runtime.AUTO, kernels: Kernels | str = Kernels.REFERENCE,
                 frontend: FrontendBackend | str = FrontendBackend.AUTO, sample_rate: int | None = None,
                 channels: int = 1, threshold: float | None = None, thresholds: Mapping[str, float] | None = None,
                 keep_posteriors: bool = False, num_threads: int = 1) -> None:
        manifest = model if isinstance(model, Manifest) else load_manifest(Path(model))
        config = detection_config(manifest.postprocess, manifest.labels, threshold, thresholds)
        self.detector = StreamingDetector(
            manifest, variant,
            runtime if isinstance(runtime, Runtime) else parse_runtime(runtime),
            postprocess=config, keep_posteriors=keep_posteriors, num_threads=num_threads,
            kernels=kernels if isinstance(kernels, Kernels) else parse_kernels(kernels),
            frontend=frontend if isinstance(frontend, FrontendBackend) else parse_frontend_backend(frontend))
        if sample_rate is not None and sample_rate <= 0:
            raise UserError(f"sample_rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate or self.model_rate)
        self.channels = int(channels)
        self._converter = self._new_converter()

    def _new_converter(self) -> PcmConverter:
        return PcmConverter(self.sample_rate, self.model_rate, self.channels, source="audio")

    # ------------------------------------------------------------------ what was loaded
    @property
    def model_rate(self) -> int:
        """The sample rate the model's front end works at (16000 for the exported models)."""
        return self.detector.sample_rate

    @property
    def labels(self) -> list[str]:
        """Every output label, in the order of the posterior columns."""
        return list(self.detector.labels)

    @property
    def keywords(self) -> list[str]:
        """The labels that can raise an event (`_silence_` and `_unknown_` never do)."""
        return keyword_labels(self.detector.labels)

    @property
    def thresholds(self) -> dict[str, float]:
        """The detection threshold in effect for each keyword."""
        return {k: self.detector.postprocess.threshold_of(k) for k in self.keywords}

    @property
    def runtime(self) -> Runtime:
        """The TFLite interpreter actually used (`auto` resolved)."""
        return self.detector.model.runtime

    @property
    def note(self) -> str | None:
        """A one-line caveat about the front end in use (the pymicro-features wheel off x86), else None."""
        return backend_note(self.detector.frontend.backend)

    # ------------------------------------------------------------------ streaming
    def process(self, pcm: Audio) -> list[Event]:
        """Feed audio at `sample_rate` with `channels` channels: int16 little-endian bytes (any length; an
        incomplete sample frame waits for the next call) or a numpy array — int16 (full scale 32768) or float
        (full scale 1.0), 1-D (interleaved) or [samples, channels]. Returns the events it completed."""
        if isinstance(pcm, (bytes, bytearray, memoryview)):
            return self.detector.process(self._converter.process_bytes(pcm))
        return self.detector.process(self._converter.process(pcm))

    def flush(self) -> list[Event]:
        """End of the stream: process the resampler's last samples (nothing to do at the model's rate)."""
        return self.detector.process(self._converter.flush())

    def posteriors(self, clear: bool = False) -> np.ndarray:
        """Frame posteriors [frames, labels] (probabilities, one row per 10 ms hop) since the last `reset()`
        or clearing; empty unless constructed with `keep_posteriors=True`. `clear` frees them afterwards."""
        out = self.detector.posterior_array()
        if clear:
            self.detector.posteriors = []
        return out

    def reset(self) -> None:
        """Back to power-on: resampler, front end, recurrent state, smoothing, refractory period, event
        times and kept posteriors."""
        self.detector.reset()
        self._converter = self._new_converter()
