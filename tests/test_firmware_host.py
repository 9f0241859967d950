"""The host build of the firmware on real audio: front end and streaming model, exact.

* C front end (TFLM microfrontend built from the pymicro-features source package) == pymicro-features.
* Per-frame int8 posteriors of the streaming GRU (state carried) == TFLite Micro interpreter.
No tolerances: both comparisons must be bit-exact.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_firmware_support import (
    GRU_STATE_PAIRS,
    concatenated_speech,
    gru_streaming_model,
    make_firmware,
    parse_firmware_output,
    reference_stream,
    speech_clips,
)

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")
pytest.importorskip("pymicro_features")

SPEECH_SECONDS = 12  # >= 10 s of real speech, streamed through one model instance


@pytest.fixture(scope="module")
def host_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from export import c_codegen

    work = tmp_path_factory.mktemp("fw_host")
    tflite = gru_streaming_model()
    c_codegen.generate(tflite, work / "gen", state_pairs=GRU_STATE_PAIRS, source_name="test GRU")
    make_firmware(["firmware-host"], work / "gen", work / "build")
    return {"tflite": tflite, "exe": work / "build" / "host" / "kws_host", "work": work}


def run_host(exe: Path, wav: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *flags, str(wav)], capture_output=True, text=True)


def test_frontend_matches_pymicro_features(host_build: dict) -> None:
    from edge.frontend import compute_features
    from test_firmware_support import read_wav_int16

    for clip in speech_clips(6):
        result = run_host(host_build["exe"], clip, "--features")
        assert result.returncode == 0, result.stderr
        c_features, _, _ = parse_firmware_output(result.stdout)
        expected = compute_features(read_wav_int16(clip))
        assert c_features.shape == expected.shape, clip
        assert np.array_equal(c_features, expected), f"{clip}: {np.count_nonzero(c_features != expected)} values differ"


def test_streaming_model_matches_tflm_on_real_speech(host_build: dict) -> None:
    from edge.frontend import compute_features

    wav = host_build["work"] / "speech.wav"
    pcm = concatenated_speech(wav, SPEECH_SECONDS)
    result = run_host(host_build["exe"], wav, "--features", "--stats")
    assert result.returncode == 0, result.stderr
    c_features, c_posteriors, stats = parse_firmware_output(result.stdout)
    frames = compute_features(pcm)
    assert np.array_equal(c_features, frames)
    expected = reference_stream(host_build["tflite"], frames)
    assert c_posteriors.shape == expected.shape == (len(frames), 12)
    assert len(frames) >= 100 * (SPEECH_SECONDS - 1)
    assert int(stats["frames"]) == len(frames)
    differing = int(np.count_nonzero(c_posteriors != expected))
    assert differing == 0, f"{differing} of {expected.size} posteriors differ from TFLM"
    # The model is not trivially constant: posteriors vary over time.
    assert len({row.tobytes() for row in expected}) > 50


def test_host_rejects_wrong_audio(host_build: dict, tmp_path: Path) -> None:
    import wave

    bad = tmp_path / "stereo.wav"
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0" * 6400)
    result = run_host(host_build["exe"], bad)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "16-bit PCM mono" in result.stderr
    missing = run_host(host_build["exe"], tmp_path / "nope.wav")
    assert missing.returncode == 2 and "cannot open" in missing.stderr
