"""Audio reading and resampling: formats, channel mix-down, streaming resampler, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge import audio
from edge.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, Resampler, iter_wav_chunks, load_wav, resample
from edge.errors import AudioError

from audio_support import YES, encoded, truncated, with_rate


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


@pytest.mark.parametrize(("src", "dst"), [(22050, 16000), (8000, 16000), (44100, 16000), (16000, 8000),
                                        (16000, 22050), (15200, 16000), (16001, 16000)])
@pytest.mark.parametrize("n", [1, 7, 999, 16000, 40001])
@pytest.mark.parametrize("phase_by_phase", [True, False])
def test_whole_signal_resample_is_the_streaming_resampler_bit_for_bit(
    src: int, dst: int, n: int, phase_by_phase: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`resample` has two paths (phase by phase, or blocks through a `Resampler`); each must give every streamed
    output sample exactly, for the default filter and the synthesis one (`train.synth`)."""
    monkeypatch.setattr(audio, "MIN_OUTPUTS_PER_PHASE", 0 if phase_by_phase else 10**12)
    x = np.random.default_rng(n).standard_normal(n)
    for params in ({}, {"zero_crossings": 48 / 0.93, "rolloff": 0.93, "unity_dc": True}):
        r = Resampler(src, dst, **params)
        streamed = np.concatenate([r.process(x[i : i + 1234]) for i in range(0, n, 1234)] + [r.flush()])
        whole = resample(x, src, dst, **params)
        assert whole.dtype == np.float64 and whole.tobytes() == streamed.tobytes()


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


# ----------------------------------------------------------------------------- files that lie or break
@pytest.mark.parametrize("cut_bytes, present", [(8000, 12000), (8001, 11999)])  # 8001: half a sample is dropped
@pytest.mark.parametrize("block", [5000, 16000])
def test_wav_shorter_than_its_header_is_read_to_its_end_with_a_note(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], cut_bytes: int, present: int, block: int) -> None:
    short = truncated(tmp_path, YES, len(YES.read_bytes()) - cut_bytes, "short.wav")
    full = load_wav(YES, 16000)
    assert capsys.readouterr().err == ""  # an intact file: no note
    y = np.concatenate(list(iter_wav_chunks(short, 16000, block=block)))
    assert np.array_equal(y, full[:present])  # exactly the samples present, nothing repeated or invented
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("note:"), err
    assert f"declares 16000 samples but the file holds {present}" in err[0]


def test_wav_shorter_than_its_header_resampled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The resampling path reads the same samples: 12000 at 16 kHz become 6000 at 8 kHz."""
    short = truncated(tmp_path, YES, len(YES.read_bytes()) - 8000, "short.wav")
    assert len(load_wav(short, 8000)) == 6000
    assert "declares 16000 samples but the file holds 12000" in capsys.readouterr().err


def test_truncated_mp3_gives_only_decoded_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A truncated MP3 (its header still announces the whole clip): what is decoded is a prefix of the whole
    decode and nothing more (the old block reader repeated stale buffer contents up to the announced length)."""
    mp3 = encoded(tmp_path, "MP3")
    full = load_wav(mp3, 16000)
    capsys.readouterr()
    cut = truncated(tmp_path, mp3, 0.5, "cut.mp3")
    y = load_wav(cut, 16000)
    # half the bytes hold about half the audio; 0.75 leaves room for the encoder's delay and headers
    assert 0 < len(y) < 0.75 * len(full)
    # MP3 frames decode independently of the bytes after them, except the last one read (576 samples at 16 kHz,
    # two frames' margin)
    assert np.array_equal(y[: len(y) - 1152], full[: len(y) - 1152])
    err = capsys.readouterr().err.splitlines()
    assert len(err) <= 1 and all(line.startswith("note:") for line in err), err


def test_truncated_flac_is_one_audio_error(tmp_path: Path) -> None:
    flac = encoded(tmp_path, "FLAC")
    assert np.array_equal(load_wav(flac, 16000), load_wav(YES, 16000))  # lossless when whole
    with pytest.raises(AudioError, match="cut.flac"):
        load_wav(truncated(tmp_path, flac, 0.5, "cut.flac"), 16000)


@pytest.mark.parametrize("rate", [1, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1, 999_983])
def test_sample_rate_outside_the_supported_range_is_refused(tmp_path: Path, rate: int) -> None:
    with pytest.raises(AudioError, match=f"sample rate {rate} Hz is outside"):
        load_wav(with_rate(tmp_path, rate), 16000)


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE])
def test_sample_rates_at_the_limits_are_read(tmp_path: Path, rate: int) -> None:
    # 16000 samples declared at `rate` Hz last 16000 / rate s: ceil(16000 * 16000 / rate) at 16 kHz
    assert len(load_wav(with_rate(tmp_path, rate), 16000)) == -(-16000 * 16000 // rate)
