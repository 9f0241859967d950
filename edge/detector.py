"""`StreamingDetector`: PCM in, keyword events out. Front end + streaming model + post-processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.frontend import FrontendBackend, StreamingFrontend
from edge.interpreters import Kernels, Runtime
from edge.manifest import Manifest, load_manifest
from edge.model import StreamingModel
from edge.postprocess import Detector, Event, PostprocessConfig


class StreamingDetector:
    """Load an artifacts folder once; call `process(chunk)` with int16 PCM of any length; `reset()`.

    Quantized models are post-processed on their integer posteriors (see `edge.postprocess`), so the
    decisions equal the firmware's bit for bit.
    """

    def __init__(self, artifacts: Path | Manifest, variant: str = "int8", runtime: Runtime = Runtime.AUTO,
                 postprocess: PostprocessConfig | None = None, keep_posteriors: bool = False,
                 num_threads: int = 1, kernels: Kernels = Kernels.REFERENCE,
                 frontend: FrontendBackend = FrontendBackend.AUTO) -> None:
        self.manifest = artifacts if isinstance(artifacts, Manifest) else load_manifest(Path(artifacts))
        self.frontend = StreamingFrontend(self.manifest.frontend, frontend)
        self.model = StreamingModel(self.manifest, variant, runtime, num_threads=num_threads, kernels=kernels)
        self.labels = self.manifest.labels
        self.postprocess = postprocess or self.manifest.postprocess
        fe = self.manifest.frontend
        q = self.model.posterior_scale
        self.detector = Detector(
            self.labels, self.postprocess,
            scale=q[0] if q else 1.0, integer=q is not None, zero_point=q[1] if q else 0,
            hop_s=fe.hop_ms / 1000, window_s=fe.window_ms / 1000,
        )
        self.keep_posteriors = keep_posteriors
        self.posteriors: list[np.ndarray] = []
        self.frames = 0

    @property
    def sample_rate(self) -> int:
        return self.manifest.frontend.sample_rate

    def reset(self) -> None:
        """Back to power-on: front end, recurrent state, smoothing and refractory period."""
        self.frontend.reset()
        self.model.reset()
        self.detector.reset()
        self.posteriors = []
        self.frames = 0

    def process_frame(self, frame_u16: np.ndarray) -> Event | None:
        raw = self.model.step_raw(frame_u16)
        if self.keep_posteriors:
            self.posteriors.append(self.model.to_probabilities(raw).astype(np.float32))
        self.frames += 1
        return self.detector.update(raw)

    def process(self, pcm: np.ndarray) -> list[Event]:
        events = []
        for frame in self.frontend.process(np.asarray(pcm, dtype=np.int16)):
            ev = self.process_frame(frame)
            if ev is not None:
                events.append(ev)
        return events

    def posterior_array(self) -> np.ndarray:
        if not self.posteriors:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.stack(self.posteriors)
