"""Audio reading and resampling: formats, channel mix-down, streaming resampler, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.audio import Resampler, iter_wav_chunks, load_wav, resample
from edge.errors import AudioError


@pytest.mark.parametrize("src", [8000, 22050, 44100, 48000])
def test_resampler_preserves_a_sine(src: int) -> None:
    t = np.arange(src * 2) / src
    y = resample(0.5 * np.sin(2 * np.pi * 1000 * t), src, 16000)
    assert len(y) == 32000
    ref = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(len(y)) / 16000)
    # Kaiser-windowed sinc with 16 zero crossings: passband error far below one int16 step (3e-5) away
    # from the edges; 1e-4 leaves margin.
    assert np.abs(y[400:-400] - ref[400:-400]).max() < 1e-4


def test_resampler_removes_content_above_new_nyquist() -> None:
    src = 48000
    t = np.arange(src) / src
    y = resample(np.sin(2 * np.pi * 12000 * t), src, 16000)  # 12 kHz cannot exist at 16 kHz
    assert np.sqrt(np.mean(y[400:-400] ** 2)) < 1e-3  # > 57 dB attenuation (stopband of the Kaiser design)


@pytest.mark.parametrize("chunk", [1, 333, 4000])
def test_resampler_is_chunk_invariant(chunk: int) -> None:
    x = np.random.default_rng(0).standard_normal(8000)
    whole = resample(x, 8000, 16000)
    r = Resampler(8000, 16000)
    parts = [r.process(x[i : i + chunk]) for i in range(0, len(x), chunk)] + [r.flush()]
    assert np.allclose(np.concatenate(parts), whole, atol=1e-12)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_formats_read_to_the_same_signal(tmp_path: Path, subtype: str) -> None:
    x = 0.4 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    p = tmp_path / f"{subtype}.wav"
    sf.write(p, x, 16000, subtype=subtype)
    y = load_wav(p, 16000).astype(np.float64) / 32768
    step = 1 / 128 if subtype == "PCM_U8" else 1 / 32768  # the format's own resolution
    assert np.abs(y - x).max() <= step


def test_stereo_is_mixed_down(tmp_path: Path) -> None:
    left = np.full(1600, 0.5)
    right = np.full(1600, -0.25)
    p = tmp_path / "st.wav"
    sf.write(p, np.stack([left, right], 1), 16000, subtype="FLOAT")
    assert np.all(np.abs(load_wav(p, 16000) - round(0.125 * 32768)) <= 1)


def test_int16_at_model_rate_is_bit_exact(tmp_path: Path) -> None:
    x = np.random.default_rng(1).integers(-32768, 32767, 5000).astype(np.int16)
    p = tmp_path / "x.wav"
    sf.write(p, x, 16000, subtype="PCM_16")
    assert np.array_equal(load_wav(p, 16000), x)


def test_fsdd_is_resampled_to_16k(fsdd_dir: Path) -> None:
    wav = sorted((fsdd_dir / "recordings").glob("*.wav"))[0]
    info = sf.info(wav)
    assert info.samplerate == 8000
    y = load_wav(wav, 16000)
    assert abs(len(y) - 2 * info.frames) <= 1


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable audio file"), (b"hello world" * 50, "not a readable")],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioError, match=message):
        load_wav(p, 16000)


def test_nan_samples_are_refused(tmp_path: Path) -> None:
    x = np.zeros(1600, dtype=np.float32)
    x[100] = np.nan
    p = tmp_path / "nan.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_wav(p, 16000)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        list(iter_wav_chunks(tmp_path / "nope.wav", 16000))
