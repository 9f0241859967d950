"""Bad input: every case is answered by one clear line on stderr and exit status 2, nothing half-written;
odd-but-valid audio is processed."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def _one_line_error(r: subprocess.CompletedProcess, needle: str) -> None:
    lines = [l for l in r.stderr.strip().splitlines() if not l.startswith("INFO: Created TensorFlow Lite")]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert needle in lines[0], lines[0]


def _wav(tmp: Path, name: str, data, rate: int = 16000, subtype: str = "PCM_16") -> Path:
    p = tmp / name
    sf.write(p, data, rate, subtype=subtype)
    return p


def _bytes(d: Path, name: str, data: bytes) -> Path:
    (d / name).write_bytes(data)
    return d / name


def _speechish(n: int = 16000) -> np.ndarray:
    t = np.arange(n) / 16000
    return 0.3 * np.sin(2 * np.pi * 300 * t) * np.sin(2 * np.pi * 3 * t)


BAD_AUDIO: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty file": (lambda d: _bytes(d, "e.wav", b""), "empty file"),
    "truncated header": (lambda d: _bytes(d, "t.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00"), "not a readable audio file"),
    "non-audio bytes": (lambda d: _bytes(d, "n.wav", bytes(range(256)) * 20), "not a readable audio file"),
    "NaN samples": (lambda d: _wav(d, "nan.wav", np.where(np.arange(16000) == 5, np.nan, 0.1).astype(np.float32), subtype="FLOAT"), "NaN"),
    "inf samples": (lambda d: _wav(d, "inf.wav", np.where(np.arange(16000) == 5, np.inf, 0.1).astype(np.float32), subtype="FLOAT"), "infinite"),
    "missing file": (lambda d: d / "missing.wav", "no such file"),
    "a directory": (lambda d: d, "is a directory"),
}


@pytest.mark.parametrize("case", list(BAD_AUDIO))
def test_bad_audio_edge_run(artifacts: Path, tmp_path: Path, case: str) -> None:
    make, needle = BAD_AUDIO[case]
    _one_line_error(_run("edge", "run", "--model", str(artifacts), "--wav", str(make(tmp_path))), needle)


GOOD_AUDIO: dict[str, Callable[[Path], Path]] = {
    "8 kHz (resampled)": lambda d: _wav(d, "r8.wav", _speechish(8000), 8000),
    "44.1 kHz (resampled)": lambda d: _wav(d, "r44.wav", _speechish(44100), 44100),
    "stereo": lambda d: _wav(d, "st.wav", np.stack([_speechish(), -_speechish()], 1)),
    "6 channels": lambda d: _wav(d, "mc.wav", np.stack([_speechish()] * 6, 1)),
    "8-bit": lambda d: _wav(d, "u8.wav", _speechish(), subtype="PCM_U8"),
    "24-bit": lambda d: _wav(d, "s24.wav", _speechish(), subtype="PCM_24"),
    "32-bit float": lambda d: _wav(d, "f32.wav", _speechish().astype(np.float32), subtype="FLOAT"),
    "silent": lambda d: _wav(d, "sil.wav", np.zeros(16000)),
    "clipped": lambda d: _wav(d, "clip.wav", np.clip(_speechish() * 20, -1, 0.99997)),
    "shorter than one frame": lambda d: _wav(d, "tiny.wav", _speechish(100)),
}


@pytest.mark.parametrize("case", list(GOOD_AUDIO))
def test_odd_but_valid_audio_is_processed(artifacts: Path, tmp_path: Path, case: str) -> None:
    wav = GOOD_AUDIO[case](tmp_path)
    probs = tmp_path / "p.npy"
    r = _run("edge", "run", "--model", str(artifacts), "--wav", str(wav), "--json", "--probs", str(probs))
    assert r.returncode == 0, r.stderr
    p = np.load(probs)
    assert np.all(np.isfinite(p))
    info = sf.info(wav)
    expected = max(0, 1 + (int(np.ceil(info.frames * 16000 / info.samplerate)) - 480) // 160)
    assert p.shape[0] == expected


def _art_copy(artifacts: Path, tmp: Path) -> Path:
    dst = tmp / "art"
    shutil.copytree(artifacts, dst)
    return dst


def _edit_manifest(art: Path, fn) -> None:
    d = json.loads((art / "manifest.json").read_text())
    fn(d)
    (art / "manifest.json").write_text(json.dumps(d))


BAD_MODEL: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing .tflite": (lambda a: (a / "model_int8.tflite").unlink(), "missing"),
    "corrupt .tflite": (lambda a: (a / "model_int8.tflite").write_bytes(b"garbage"), "sha256"),
    "sha256 mismatch": (lambda a: _edit_manifest(a, lambda d: d["variants"]["int8"].update(sha256="0" * 64)), "sha256"),
    "front end differs": (lambda a: _edit_manifest(a, lambda d: d["frontend"].update(num_channels=32)), "different front end"),
    "label count": (lambda a: _edit_manifest(a, lambda d: d["labels"].append("extra")), "labels"),
    "threshold for a label the model lacks": (
        lambda a: _edit_manifest(a, lambda d: d["postprocess"]["thresholds"].update(yess=0.3)),
        "per-label thresholds name labels the model does not have: yess"),
    "manifest not JSON": (lambda a: (a / "manifest.json").write_text("{"), "not valid JSON"),
    "no manifest": (lambda a: (a / "manifest.json").unlink(), "no manifest.json"),
}


@pytest.mark.parametrize("case", list(BAD_MODEL))
@pytest.mark.parametrize("command", ["run", "eval", "bench"])
def test_bad_model_is_refused(artifacts: Path, tmp_path: Path, sc_dir: Path, case: str, command: str) -> None:
    art = _art_copy(artifacts, tmp_path)
    change, needle = BAD_MODEL[case]
    change(art)
    wav = _wav(tmp_path, "ok.wav", _speechish())
    extra = {"run": ["--wav", str(wav)], "eval": ["--data", str(sc_dir), "--limit", "3"], "bench": ["--seconds", "1"]}[command]
    _one_line_error(_run("edge", command, "--model", str(art), *extra), needle)


def test_unknown_runtime(artifacts: Path, tmp_path: Path) -> None:
    _one_line_error(_run("edge", "run", "--model", str(artifacts), "--wav", str(_wav(tmp_path, "a.wav", _speechish())),
                         "--runtime", "npu"), "unknown runtime")


#: `edge run` flags of the service features: each bad value is one line, before any audio is read.
BAD_RUN_FLAGS: dict[str, tuple[list[str], str]] = {
    "hook program missing": (["--on-detect", "/nonexistent/on-keyword --loud"], "program '/nonexistent/on-keyword' not found"),
    "hook command empty": (["--on-detect", " "], "empty command"),
    "hook command unbalanced quote": (["--on-detect", "true 'yes"], "cannot split"),
    "hook queue zero": (["--on-detect", "true", "--hook-queue", "0"], "--hook-queue must be at least 1"),
    "hook queue not a number": (["--on-detect", "true", "--hook-queue", "many"], "invalid int value"),
    "hook timeout zero": (["--on-detect", "true", "--hook-timeout", "0"], "--hook-timeout must be positive"),
    "hook options without a hook": (["--hook-queue", "4"], "need --on-detect"),
    "threshold for no keyword": (["--threshold", "yess=0.5"], "not keywords of this model: yess"),
    "threshold for a background label": (["--threshold", "_silence_=0.5"], "not keywords of this model: _silence_"),
    "threshold not a number": (["--threshold", "yes=high"], "expected VALUE or LABEL=VALUE"),
    "threshold out of range": (["--threshold", "yes=0"], "bad threshold"),
}


@pytest.mark.parametrize("case", list(BAD_RUN_FLAGS))
def test_bad_run_flags(artifacts: Path, tmp_path: Path, case: str) -> None:
    flags, needle = BAD_RUN_FLAGS[case]
    wav = _wav(tmp_path, "ok.wav", _speechish())
    _one_line_error(_run("edge", "run", "--model", str(artifacts), "--wav", str(wav), *flags), needle)


def test_run_without_model_or_sounddevice(tmp_path: Path) -> None:
    """--model is needed except for --list-devices, which needs sounddevice (not installed here)."""
    _one_line_error(_run("edge", "run", "--wav", str(_wav(tmp_path, "ok.wav", _speechish()))),
                    "required: --model")
    r = _run("edge", "run", "--list-devices")
    if r.returncode == 0:  # a machine with sounddevice and PortAudio: nothing to check here
        return
    _one_line_error(r, "sounddevice")


def test_hour_long_wav_streams_in_flat_memory(artifacts: Path, tmp_path: Path) -> None:
    """A 1-hour WAV is read in blocks: peak memory of the run stays far below the file's decoded size."""
    wav = tmp_path / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(wav, "w", 16000, 1, subtype="PCM_16") as f:
        for _ in range(60):
            f.write((rng.standard_normal(16000 * 60) * 300).astype(np.int16))
    code = (
        "import resource, sys\n"
        "from edge.detector import StreamingDetector\n"
        "from edge.audio import iter_wav_chunks\n"
        f"det = StreamingDetector({str(artifacts)!r})\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "n = 0\n"
        f"for i, chunk in enumerate(iter_wav_chunks({str(wav)!r}, 16000)):\n"
        "    det.process(chunk); n += len(chunk)\n"
        "    if i == 60: base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(n, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    n, base_kb, peak_kb = map(int, r.stdout.split())
    assert n == 16000 * 3600
    # the decoded hour is 115 MB of int16; growth after the first minute must stay under 20 MB
    assert (peak_kb - base_kb) / 1024 < 20, (base_kb, peak_kb)


def test_train_data_errors_are_one_line(tmp_path: Path) -> None:
    _one_line_error(_run("train", "--recipe", "nope", "--data", str(tmp_path)), "unknown recipe")
    _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path / "none")), "does not exist")
    _one_line_error(_run("train", "--model", "transformer", "--recipe", "folder", "--data", str(tmp_path), "--out", str(tmp_path / "r")), "unknown model")


def test_existing_run_folder_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path), "--out", str(out)), "--force")
    assert (out / "keep.txt").read_text() == "user file"
    # a bad argument is reported as such, and even --force does not delete the folder for nothing
    _one_line_error(_run("train", "--recipe", "nope", "--data", str(tmp_path), "--out", str(out), "--force"),
                    "unknown recipe")
    assert (out / "keep.txt").read_text() == "user file"


def test_export_errors_are_one_line(tmp_path: Path) -> None:
    _one_line_error(_run("export", str(tmp_path / "norun"), "--out", str(tmp_path / "a")), "not a training run folder")
    assert not (tmp_path / "a").exists()


def test_corrupt_wav_in_training_data_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for label in ("yes", "no"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            _wav(data / label, f"spk{i}_nohash_0.wav", _speechish())
    _bytes(data / "no", "spk9_nohash_1.wav", b"RIFF....not really a wav")
    r = _run("train", "--recipe", "folder", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet")
    _one_line_error(r, "spk9_nohash_1.wav")
    assert not (tmp_path / "run" / "model.safetensors").exists()
