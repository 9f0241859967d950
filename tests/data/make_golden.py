"""Regenerate the golden test data: tiny WAVs and the front-end frames they must produce.

    .venv/bin/python tests/data/make_golden.py

The WAVs are generated here (espeak-ng speech, a tone sweep, seeded noise), never copied from a dataset.
Python tests (tests/test_frontend.py) and firmware tests compare against `<name>.features.npy` (uint16
frames of the TFLite Micro front end with `edge.frontend.FrontendConfig()`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.audio import write_wav
from edge.frontend import FrontendConfig, compute_features

HERE = Path(__file__).resolve().parent
RATE = FrontendConfig().sample_rate


def tone_sweep() -> np.ndarray:
    t = np.arange(RATE) / RATE
    f = 200 + 3800 * t  # 200 Hz -> 4 kHz linear sweep
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / RATE) * np.minimum(1, 10 * t) * np.minimum(1, 10 * (1 - t))
    return np.rint(x * 32767).astype(np.int16)


def noise() -> np.ndarray:
    return (np.random.default_rng(1234).standard_normal(RATE) * 1500).clip(-32768, 32767).astype(np.int16)


def speech() -> np.ndarray:
    from train.synth import synthesize

    x = synthesize("yes", voice="en-us", rate_wpm=160, pitch=50, pitch_range=50, seed=0)
    out = np.zeros(RATE, dtype=np.int16)
    start = (RATE - min(len(x), RATE)) // 2
    out[start : start + min(len(x), RATE)] = x[:RATE]
    return out


def main() -> None:
    for name, make in (("tone_sweep", tone_sweep), ("noise", noise), ("speech_yes", speech)):
        pcm = make()
        write_wav(HERE / f"{name}.wav", pcm, RATE)
        np.save(HERE / f"{name}.features.npy", compute_features(pcm))
        print(f"wrote {name}.wav and {name}.features.npy")


if __name__ == "__main__":
    main()
