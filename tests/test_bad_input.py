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

from audio_support import YES, encoded, truncated, with_rate
from conftest import need

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
    "truncated FLAC": (lambda d: truncated(d, encoded(d, "FLAC"), 0.5, "cut.flac"), "cut.flac"),
    "header rate 1 Hz": (lambda d: with_rate(d, 1), "sample rate 1 Hz is outside"),
    "header rate 999983 Hz": (lambda d: with_rate(d, 999_983), "sample rate 999983 Hz is outside"),
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


def test_wav_shorter_than_its_header_gives_a_note(artifacts: Path, tmp_path: Path) -> None:
    """The samples present are processed (frame count from them, not from the header) with one note."""
    short = truncated(tmp_path, YES, len(YES.read_bytes()) - 8000, "short.wav")  # 12000 of 16000 samples
    probs = tmp_path / "p.npy"
    r = _run("edge", "run", "--model", str(artifacts), "--wav", str(short), "--json", "--probs", str(probs))
    assert r.returncode == 0, r.stderr
    notes = [l for l in r.stderr.splitlines() if l.startswith("note:")]
    assert len(notes) == 1 and "declares 16000 samples but the file holds 12000" in notes[0], r.stderr
    assert np.load(probs).shape[0] == 1 + (12000 - 480) // 160


BAD_ARGS: dict[str, tuple[list[str], str]] = {
    "run --reset-every inf": (["run", "--reset-every", "inf"], "--reset-every must be a finite number of at least 0"),
    "run --reset-every nan": (["run", "--reset-every", "nan"], "--reset-every must be a finite number"),
    "run --reset-every -1": (["run", "--reset-every", "-1"], "--reset-every must be a finite number of at least 0"),
    "run --reset-every below one sample": (["run", "--reset-every", "0.00005"], "shorter than one sample at 16000 Hz"),
    "run --probs not .npy": (["run", "--probs", "{tmp}/p.txt"], "--probs must name a .npy file"),
    "run --probs in a missing folder": (["run", "--probs", "{tmp}/missing/p.npy"], "does not exist"),
    "eval --limit -1": (["eval", "--data", "{tmp}", "--limit", "-1"], "--limit must be a whole number of at least 0"),
    "bench --seconds 0.001": (["bench", "--seconds", "0.001"], "--seconds must be a finite number from 0.5 to 3600"),
    "bench --seconds nan": (["bench", "--seconds", "nan"], "--seconds must be a finite number"),
    "bench --seconds inf": (["bench", "--seconds", "inf"], "--seconds must be a finite number"),
}


@pytest.mark.parametrize("case", list(BAD_ARGS))
def test_bad_numbers_are_refused_at_the_parser(artifacts: Path, tmp_path: Path, case: str) -> None:
    argv, needle = BAD_ARGS[case]
    command, *rest = [a.format(tmp=tmp_path) for a in argv]
    source = ["--wav", str(YES)] if command == "run" else []
    r = _run("edge", command, "--model", str(artifacts), *source, *rest)
    _one_line_error(r, needle)
    assert r.stdout == ""  # nothing was processed


@pytest.mark.parametrize("argv, needle", [
    (["verify", "{art}", "--seconds", "0"], "--seconds must be a finite number of at least 60"),
    (["verify", "{art}", "--seconds", "-1"], "--seconds must be a finite number of at least 60"),
    (["verify", "{art}", "--seconds", "nan"], "--seconds must be a finite number of at least 60, got 'nan'"),
    (["report", "{art}", "--out", "{tmp}/r", "--minutes", "nan"], "--minutes must be a finite number above 0"),
])
def test_bad_export_numbers_are_refused_at_the_parser(artifacts: Path, tmp_path: Path, argv: list[str],
                                                      needle: str) -> None:
    r = _run("export", *[a.format(art=artifacts, tmp=tmp_path) for a in argv])
    _one_line_error(r, needle)
    assert not (tmp_path / "r").exists()


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


def _each_variant(d: dict, fn: Callable[[dict], None]) -> None:
    for v in d["variants"].values():
        fn(v)


def _io(v: dict, kind: str, name: str) -> dict:
    return next(e for e in v[kind] if e["name"] == name)


def _drop_last_label(d: dict) -> None:
    gone = d["labels"].pop()
    d["postprocess"]["thresholds"].pop(gone, None)


def _one_label_fewer(d: dict) -> None:
    """A consistent-looking manifest for a model with one class fewer: label, threshold and probs shapes edited."""
    _drop_last_label(d)
    _each_variant(d, lambda v: _io(v, "outputs", "probs")["shape"].__setitem__(-1, len(d["labels"])))


def _swap_inputs(v: dict) -> None:
    a, b = v["inputs"]
    a["position"], b["position"] = b["position"], a["position"]


def _outside(art: Path, how: str) -> Callable[[dict], None]:
    """Point the int8 model's file name outside the folder (a copy lies there, so the sha256 still matches)."""
    outside = art.parent / "elsewhere.tflite"
    shutil.copy(art / "model_int8.tflite", outside)
    if how == "symlink":
        (art / "model_int8.tflite").unlink()
        (art / "model_int8.tflite").symlink_to(outside)
        return lambda d: None
    name = "../elsewhere.tflite" if how == "dotdot" else str(outside)
    return lambda d: d["variants"]["int8"].update(file=name)


# manifest edits -> the words the one error line must contain
MANIFEST_VS_MODEL: dict[str, tuple[Callable[[Path], Callable[[dict], None]], str]] = {
    "one label fewer": (lambda a: _drop_last_label, "classes but the manifest has"),
    "one label fewer, shapes edited too": (lambda a: _one_label_fewer, "output 'probs' at position"),
    "empty state list": (lambda a: lambda d: d["state"].update(tensors=[]),
                         "is neither 'features' nor in the manifest's state.tensors"),
    "feature_quantizer scale x10": (
        lambda a: lambda d: _each_variant(d, lambda v: v["feature_quantizer"] and v["feature_quantizer"].update(
            scale=v["feature_quantizer"]["scale"] * 10)), "feature_quantizer differs from the model's features input"),
    "features input scale x10": (
        lambda a: lambda d: _io(d["variants"]["int8"], "inputs", "features").update(
            scale=_io(d["variants"]["int8"], "inputs", "features")["scale"] * 10), "input 'features' at position"),
    "feature_scale x10": (lambda a: lambda d: d.update(feature_scale=d["feature_scale"] * 10), "feature scale"),
    "features shape": (lambda a: lambda d: _io(d["variants"]["int8"], "inputs", "features").update(shape=[1, 41]),
                       "shape [1, 41] vs [1, 40]"),
    "state dtype": (lambda a: lambda d: _io(d["variants"]["int8"], "inputs", "state_h0").update(dtype="int16"),
                    "dtype int16 vs int8"),
    "state zero point": (lambda a: lambda d: _io(d["variants"]["int8"], "inputs", "state_h0").update(
        zero_point=_io(d["variants"]["int8"], "inputs", "state_h0")["zero_point"] + 1), "scale/zero point"),
    "probs scale": (lambda a: lambda d: _io(d["variants"]["int8"], "outputs", "probs").update(scale=0.5),
                    "output 'probs' at position"),
    "inputs in the other order": (lambda a: lambda d: _swap_inputs(d["variants"]["int8"]), "differs between"),
    "a missing input": (lambda a: lambda d: d["variants"]["int8"]["inputs"].pop(), "the model has 2 input(s)"),
    "file name with ..": (lambda a: _outside(a, "dotdot"), "not a relative path inside the artifacts folder"),
    "absolute file name": (lambda a: _outside(a, "absolute"), "not a relative path inside the artifacts folder"),
    "symlink leading out": (lambda a: _outside(a, "symlink"), "leads outside the artifacts folder"),
}


@pytest.mark.parametrize("case", list(MANIFEST_VS_MODEL))
def test_manifest_that_disagrees_with_the_model_is_refused(artifacts: Path, tmp_path: Path, case: str) -> None:
    art = _art_copy(artifacts, tmp_path)
    make, needle = MANIFEST_VS_MODEL[case]
    _edit_manifest(art, make(art))
    _one_line_error(_run("edge", "run", "--model", str(art), "--wav", str(YES)), needle)


@pytest.mark.parametrize("variant", ["int8", "float32", "int16x8"])
def test_every_runtime_describes_the_model_alike(artifacts: Path, variant: str) -> None:
    """TFLite Micro's inputs/outputs (read from the flatbuffer) equal LiteRT's, so one manifest check serves both."""
    from edge.interpreters import ModelRunner, Runtime, available

    need(available(Runtime.TFLM) and available(Runtime.LITERT), "tflite-micro and ai-edge-litert are needed")
    data = (artifacts / f"model_{variant}.tflite").read_bytes()
    lite, micro = ModelRunner(data, Runtime.LITERT), ModelRunner(data, Runtime.TFLM)
    assert (lite.inputs, lite.outputs) == (micro.inputs, micro.outputs)


def test_symlink_inside_the_folder_is_accepted(artifacts: Path, tmp_path: Path) -> None:
    art = _art_copy(artifacts, tmp_path)
    (art / "model_int8.tflite").rename(art / "real.tflite")
    (art / "model_int8.tflite").symlink_to("real.tflite")
    r = _run("edge", "run", "--model", str(art), "--wav", str(YES), "--json")
    assert r.returncode == 0, r.stderr


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
    _one_line_error(_run("train", "--unknown-word-min", "-1", "--recipe", "folder", "--data", str(tmp_path),
                         "--out", str(tmp_path / "r")), "--unknown-word-min must be >= 0")
    assert not (tmp_path / "r").exists()


def test_jordan_usage_errors_are_one_line(tmp_path: Path) -> None:
    """A Jordan network feeds back its own previous output: no bidirectional variant; 1-3 layers as the others."""
    common = ("--recipe", "folder", "--data", str(tmp_path), "--out", str(tmp_path / "r"))
    _one_line_error(_run("train", "--model", "jordan", "--bidirectional", *common),
                    "a Jordan network feeds back its own previous output and cannot be bidirectional")
    _one_line_error(_run("train", "--model", "jordan", "--layers", "4", *common), "layers must be 1..3")
    _one_line_error(_run("train", "--model", "gru", "--loop-penalty", "1", *common),
                    "--loop-penalty is a Jordan network's option")
    _one_line_error(_run("train", "--model", "jordan", "--loop-penalty", "-1", *common),
                    "--loop-penalty and --loop-gain-bound must be >= 0")
    unknown = _run("train", "--model", "elman", *common)
    _one_line_error(unknown, "unknown model")
    assert "gru, lstm, rnn, jordan" in unknown.stderr
    assert not (tmp_path / "r").exists()


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
    _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path), "--babble", "1.5", "--out", str(out),
                         "--force"), "--babble must be in [0, 1)")
    assert (out / "keep.txt").read_text() == "user file"
    _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path), "--bandlimit", "-0.1", "--out", str(out),
                         "--force"), "--bandlimit must be between 0 and 1")
    assert (out / "keep.txt").read_text() == "user file"
    _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path), "--weak-ending", "1.5", "--out",
                         str(out), "--force"), "--weak-ending must be between 0 and 1")
    assert (out / "keep.txt").read_text() == "user file"
    for flags, says in ((("--teacher", str(tmp_path / "nothing")), "is not a run folder"),
                        (("--distil-weight", "1.5"), "--distil-weight must be between 0 and 1")):
        _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path), *flags, "--out", str(out),
                             "--force"), says)
        assert (out / "keep.txt").read_text() == "user file"
    for bad, says in (("1.2,0.9", "0.5 <= LO <= 1 <= HI <= 2"), ("0.9", "two numbers LO,HI")):
        _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path), "--warp", bad, "--out", str(out),
                             "--force"), says)
        assert (out / "keep.txt").read_text() == "user file"
    for bad, says in (("20,41", "0-100 frames and 0-40 channels"), ("20", "two whole numbers FRAMES,CHANNELS")):
        _one_line_error(_run("train", "--recipe", "folder", "--data", str(tmp_path), "--spec-augment", bad, "--out",
                             str(out), "--force"), says)
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
