"""The host build of the firmware on real audio: front end and streaming model, exact.

* C front end (TFLM microfrontend built from the pymicro-features source package) == pymicro-features.
* Per-frame int8 posteriors of the streaming GRU (state carried) == TFLite Micro interpreter; likewise for a
  Jordan network exported by the export's own functions (its state is its posterior output).
No tolerances: both comparisons must be bit-exact.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_support import (
    REPO,
    GRU_STATE_PAIRS,
    JORDAN_STATE_PAIRS,
    Reference,
    concatenated_speech,
    export_slots,
    gru_streaming_model,
    jordan_streaming_model,
    make_firmware,
    parse_firmware_output,
    quantized_features,
    reference_stream,
    require_tool,
    speech_clips,
)

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")
pytest.importorskip("pymicro_features")

SPEECH_SECONDS = 12  # >= 10 s of real speech, streamed through one model instance


@pytest.fixture(scope="module")
def host_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from export import codegen

    work = tmp_path_factory.mktemp("fw_host")
    tflite = gru_streaming_model()
    codegen.generate(tflite, work / "gen", state_pairs=GRU_STATE_PAIRS, source_name="test GRU")
    make_firmware(["firmware-host"], work / "gen", work / "build")
    return {"tflite": tflite, "exe": work / "build" / "host" / "kws_host", "work": work}


def run_host(exe: Path, wav: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *flags, str(wav)], capture_output=True, text=True)


def test_frontend_matches_pymicro_features(host_build: dict) -> None:
    from edge.frontend import compute_features
    from firmware_support import read_wav_int16

    for clip in speech_clips(6):
        result = run_host(host_build["exe"], clip, "--features")
        assert result.returncode == 0, result.stderr
        c_features, _, _ = parse_firmware_output(result.stdout)
        expected = compute_features(read_wav_int16(clip))
        assert c_features.shape == expected.shape, clip
        assert np.array_equal(c_features, expected), f"{clip}: {np.count_nonzero(c_features != expected)} values differ"


#: First test clip of each word, back to back (the stream of tests/test_pi_emulation.py): at frame 627,
#: channel 32 a front end compiled with fused multiply-adds (GCC's default on aarch64, as in the
#: pymicro-features wheel for the Raspberry Pi) computes 306 where x86 computes 311.
FMA_SENSITIVE_STREAM = ("yes", "no", "bird", "stop", "up", "left", "house", "go")


def test_frontend_is_identical_on_aarch64(host_build: dict, sc_dir: Path, tmp_path: Path) -> None:
    """The firmware's front end, cross-built for aarch64 with the firmware's flags (-ffp-contract=off) and
    run under qemu as a Cortex-A72, gives exactly x86's pymicro-features frames on a stream known to
    expose fused multiply-add rounding in the start-up tables."""
    import soundfile

    from edge.frontend import compute_features

    require_tool("aarch64-linux-gnu-gcc")
    qemu = require_tool("qemu-aarch64-static")
    pcm = np.concatenate([soundfile.read(str(sorted((sc_dir / w).glob("*.wav"))[0]), dtype="int16")[0]
                          for w in FMA_SENSITIVE_STREAM])
    wav = tmp_path / "stream.wav"
    soundfile.write(str(wav), pcm, 16000, subtype="PCM_16")
    build = tmp_path / "a64"
    result = subprocess.run(
        ["make", "-s", "-f", "firmware/firmware.mk", f"FW_GEN_DIR={host_build['work'] / 'gen'}",
         f"FW_BUILD_DIR={build}", "FW_HOST_CC=aarch64-linux-gnu-gcc", "FW_HOST_CFLAGS=-O2 -static",
         f"{build}/host/kws_host"],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    run = subprocess.run([qemu, str(build / "host" / "kws_host"), "--features", str(wav)],
                         capture_output=True, text=True, env={"QEMU_CPU": "cortex-a72"}, timeout=300)
    assert run.returncode == 0, run.stderr
    features, _, _ = parse_firmware_output(run.stdout)
    expected = compute_features(pcm)
    assert features.shape == expected.shape
    assert np.array_equal(features, expected), f"{np.count_nonzero(features != expected)} values differ"


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


@pytest.fixture(scope="module")
def jordan_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from edge.frontend import compute_features
    from export import codegen

    work = tmp_path_factory.mktemp("fw_jordan")
    wav = work / "speech.wav"
    frames = compute_features(concatenated_speech(wav, SPEECH_SECONDS))
    tflite = jordan_streaming_model(frames)
    info = codegen.generate(tflite, work / "gen", state_pairs=JORDAN_STATE_PAIRS, source_name="test Jordan network")
    make_firmware(["firmware-host"], work / "gen", work / "build")
    return {"tflite": tflite, "info": info, "frames": frames, "wav": wav, "exe": work / "build" / "host" / "kws_host"}


def test_jordan_network_matches_tflm_on_real_speech(jordan_build: dict) -> None:
    """The firmware carries a Jordan network's state, its own int8 posterior, exactly as TFLite Micro does."""
    result = run_host(jordan_build["exe"], jordan_build["wav"], "--stats")
    assert result.returncode == 0, result.stderr
    _, c_posteriors, stats = parse_firmware_output(result.stdout)
    frames, tflite = jordan_build["frames"], jordan_build["tflite"]
    slots = export_slots(tflite, JORDAN_STATE_PAIRS[0])
    assert slots.state_output == slots.posterior_output  # the state is the posterior itself
    expected = reference_stream(tflite, frames, slots)
    assert c_posteriors.shape == expected.shape == (len(frames), 12)
    assert int(stats["frames"]) == len(frames)
    differing = int(np.count_nonzero(c_posteriors != expected))
    assert differing == 0, f"{differing} of {expected.size} posteriors differ from TFLM"
    assert jordan_build["info"].state_bytes == 12  # one int8 posterior: the whole state of a stream
    # The carried posterior matters: from a zero state at every frame most posteriors would differ.
    ref = Reference(tflite)
    zero_state = np.full(12, -128, dtype=np.int8)
    memoryless = np.stack([ref.invoke(slots.inputs(row, zero_state))[slots.posterior_output]
                           for row in quantized_features(ref, frames, slots)])
    assert np.mean(np.any(memoryless != expected, axis=1)) > 0.5
    # The posterior, and so the state, uses its range: near-certain classes (255/256) and exact zeros.
    assert expected.max() == 127 and expected.min() == -128


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
