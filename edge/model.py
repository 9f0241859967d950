"""One streaming model step per feature frame, with the recurrent state carried in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from edge.frontend import features_to_float
from edge.interpreters import Kernels, ModelRunner, Runtime
from edge.manifest import Manifest, VariantSpec, check_model_io
from edge.quant import quantize_features


def open_model(spec: VariantSpec, runtime: Runtime, labels: Sequence[str], state_pairs: Sequence[tuple[str, str]],
               **kwargs: Any) -> ModelRunner:
    """The variant's .tflite file in an interpreter, refused (ManifestError) unless the manifest's description
    of it agrees with the model (`edge.manifest.check_model_io`)."""
    runner = ModelRunner(spec.path.read_bytes(), runtime, **kwargs)
    check_model_io(spec, runner.inputs, runner.outputs, labels, state_pairs)
    return runner


@dataclass
class ModelState:
    """The recurrent state exactly as the model stores it (int8/int16 for quantized variants)."""

    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    def copy(self) -> "ModelState":
        return ModelState({k: v.copy() for k, v in self.tensors.items()})


class StreamingModel:
    """Feeds uint16 front-end frames to a TFLite streaming model, one invoke per frame."""

    def __init__(self, manifest: Manifest, variant: str = "int8", runtime: Runtime = Runtime.AUTO,
                 num_threads: int = 1, kernels: Kernels = Kernels.REFERENCE) -> None:
        self.manifest = manifest
        self.spec: VariantSpec = manifest.variant(variant)
        self.variant = variant
        arena = self.spec.raw.get("tflm_arena_bytes")
        self.runner = open_model(self.spec, runtime, manifest.labels, manifest.state_pairs, num_threads=num_threads,
                                 arena_size=int(arena * 1.25) + 4096 if arena else None, kernels=kernels)
        self.kernels = kernels
        self.runtime = self.runner.runtime
        self._features = self.spec.input("features")
        self._probs = self.spec.output("probs")
        self._pairs = [(self.spec.input(a), self.spec.output(b)) for a, b in manifest.state_pairs]
        self._feature_pos, self._probs_pos = self._features["position"], self._probs["position"]
        self._state_io = [(a["name"], a["position"], b["position"]) for a, b in self._pairs]
        self.io_dtype = self._features["dtype"]
        fq = self.spec.feature_quantizer
        # Every uint16 front-end value mapped once through the one quantization rule: a table lookup per
        # frame is exactly `quantize_features`, without its float arithmetic on the hot path.
        self._lut = None if self.io_dtype == "float32" else quantize_features(
            np.arange(65536, dtype=np.uint16), fq["scale"], fq["zero_point"], self.io_dtype)
        self.state = self.initial_state()

    # ------------------------------------------------------------------ state
    def initial_state(self) -> ModelState:
        """Zero state, expressed in the model's own quantization (q = zero point)."""
        out = {}
        for a, _ in self._pairs:
            dtype = np.dtype(a["dtype"])
            zp = a["zero_point"] or 0
            out[a["name"]] = np.full(a["shape"], zp, dtype=dtype)
        return ModelState(out)

    def reset(self) -> None:
        self.state = self.initial_state()
        self.runner.reset()

    def dequantized_state(self) -> dict[str, np.ndarray]:
        out = {}
        for a, _ in self._pairs:
            q = self.state.tensors[a["name"]].astype(np.float64)
            out[a["name"]] = q if a["scale"] is None else (q - a["zero_point"]) * a["scale"]
        return out

    # ------------------------------------------------------------------ step
    def model_input(self, frame_u16: np.ndarray) -> np.ndarray:
        if self._lut is None:
            return features_to_float(frame_u16.reshape(1, -1))
        return self._lut[frame_u16.reshape(1, -1)]

    def step_raw(self, frame_u16: np.ndarray) -> np.ndarray:
        """One frame; returns the raw posterior tensor (int8/int16/float) and carries the state."""
        runner, tensors = self.runner, self.state.tensors
        runner.set_input(self._feature_pos, self.model_input(frame_u16))
        for name, pos_in, _ in self._state_io:
            runner.set_input(pos_in, tensors[name])
        runner.invoke()
        for name, _, pos_out in self._state_io:  # get_output returns a copy, never a view into the interpreter
            tensors[name] = runner.get_output(pos_out)
        return runner.get_output(self._probs_pos).reshape(-1)

    @property
    def posterior_scale(self) -> tuple[float, int] | None:
        p = self._probs
        return None if p["scale"] is None else (p["scale"], p["zero_point"])

    def to_probabilities(self, raw: np.ndarray) -> np.ndarray:
        q = self.posterior_scale
        return raw.astype(np.float64) if q is None else (raw.astype(np.float64) - q[1]) * q[0]

    def step(self, frame_u16: np.ndarray) -> np.ndarray:
        return self.to_probabilities(self.step_raw(frame_u16))
