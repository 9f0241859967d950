"""The edge runtime's two stages separately, for the x86-vs-Pi comparison (tests/test_pi_emulation.py).

    python stream_stages.py ARTIFACTS WAV OUT.npz [--features FEATURES.npy] [--frontend BACKEND]

Writes `features` (uint16, the front end on WAV) and `posteriors` (raw int8) plus `event_frames` /
`event_labels` of the int8 model and detector (reference kernels, ai-edge-litert) run on FEATURES.npy when
given, else on this machine's own features. Feeding both machines the same features separates the
front end (BACKEND: auto, library or pymicro-features) from the integer model and post-processing path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edge.audio import load_wav
from edge.detector import StreamingDetector
from edge.frontend import parse_frontend_backend
from edge.interpreters import Runtime


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("artifacts", type=Path)
    p.add_argument("wav", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--features", type=Path)
    p.add_argument("--threshold", type=float, default=0.3)
    p.add_argument("--frontend", default="auto")
    args = p.parse_args()
    det = StreamingDetector(args.artifacts, "int8", Runtime.LITERT, frontend=parse_frontend_backend(args.frontend))
    features = det.frontend.process(load_wav(args.wav, det.sample_rate))
    feed = np.load(args.features) if args.features else features
    from edge.postprocess import Detector, PostprocessConfig

    base = det.manifest.postprocess
    q = det.model.posterior_scale
    detector = Detector(det.labels, PostprocessConfig(base.window, args.threshold, {}, base.refractory),
                        scale=q[0], integer=True, zero_point=q[1])
    posteriors, frames, labels = [], [], []
    for frame in feed:
        raw = det.model.step_raw(frame)
        posteriors.append(raw.copy())
        event = detector.update(raw)
        if event is not None:
            frames.append(event.frame)
            labels.append(det.labels.index(event.label))
    np.savez(args.out, features=features, posteriors=np.array(posteriors), event_frames=np.array(frames, dtype=np.int64),
             event_labels=np.array(labels, dtype=np.int64))


if __name__ == "__main__":
    main()
