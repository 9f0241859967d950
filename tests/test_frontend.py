"""The one front end: a single dataclass, streaming == offline, chunk-size invariance, golden frames."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_wav
from edge.frontend import FEATURE_SCALE, FrontendConfig, FrontendConfigError, StreamingFrontend, compute_features, features_to_float

DATA = Path(__file__).parent / "data"
GOLDEN = ("tone_sweep", "noise", "speech_yes")


@pytest.fixture(scope="module")
def real_clip(sc_dir: Path) -> np.ndarray:
    wav = sorted((sc_dir / "yes").glob("*.wav"))[0]
    return load_wav(wav, 16000)


@pytest.mark.parametrize("chunk", [1, 7, 160, 4000])
def test_chunk_size_invariance(real_clip: np.ndarray, chunk: int) -> None:
    offline = compute_features(real_clip)
    fe = StreamingFrontend()
    parts = [fe.process(real_clip[i : i + chunk]) for i in range(0, len(real_clip), chunk)]
    assert np.array_equal(np.concatenate(parts), offline)


def test_frame_count_and_range(real_clip: np.ndarray) -> None:
    cfg = FrontendConfig()
    frames = compute_features(real_clip)
    assert frames.shape == (1 + (len(real_clip) - cfg.window_samples) // cfg.hop_samples, cfg.num_channels)
    assert frames.dtype == np.uint16 and frames.max() > 0


def test_reset_restores_initial_behaviour(real_clip: np.ndarray) -> None:
    fe = StreamingFrontend()
    first = fe.process(real_clip)
    fe.process(real_clip)  # adapts noise estimate and PCAN
    fe.reset()
    assert np.array_equal(fe.process(real_clip), first)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_frames(name: str) -> None:
    pcm = load_wav(DATA / f"{name}.wav", 16000)
    expected = np.load(DATA / f"{name}.features.npy")
    assert np.array_equal(compute_features(pcm), expected)


def test_float_features_are_exact() -> None:
    u = np.arange(0, 1024, dtype=np.uint16)
    f = features_to_float(u)
    assert np.array_equal(np.rint(f.astype(np.float64) / FEATURE_SCALE).astype(np.uint16), u)


def test_unsupported_parameter_fails_loudly() -> None:
    with pytest.raises(FrontendConfigError, match="num_channels"):
        StreamingFrontend(FrontendConfig(num_channels=32))


def test_config_is_frozen_and_round_trips() -> None:
    cfg = FrontendConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hop_ms = 20  # type: ignore[misc]
    assert FrontendConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(FrontendConfigError):
        FrontendConfig.from_dict({**cfg.to_dict(), "extra": 1})


def test_rejects_non_int16() -> None:
    with pytest.raises(TypeError):
        StreamingFrontend().process(np.zeros(160, dtype=np.float32))
