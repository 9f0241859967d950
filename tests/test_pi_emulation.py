"""The edge runtime gives the same results on a Raspberry Pi (emulated) as on the x86 development machine.

The Pi is Raspberry Pi OS 64-bit as far as user space goes: Debian bookworm's arm64 python3.11 with the
aarch64 wheels of the edge dependencies, run by qemu user-mode emulation with a Pi 4 (Cortex-A72) or
Pi 5 (Cortex-A76) CPU model and /proc/cpuinfo (tests/pi/README.md). The userland is built on first use
by tests/pi/make_rootfs.sh into .cache/pi (about a minute) and reused afterwards.

Without qemu-aarch64-static/debootstrap the tests skip, except under CI=true where they fail: CI must
run them. `make test-pi` runs this file alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: an arm64 userland (built on first use) and emulated runs: `make test-fast` leaves this module out.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PI_DIR = REPO / "tests" / "pi"
TOOLS = ("qemu-aarch64-static", "debootstrap", "dpkg-deb")
#: Generous bounds; measured: rootfs from scratch 58-72 s, one emulated run 5-12 s.
BUILD_TIMEOUT_S = 600
RUN_TIMEOUT_S = 300
#: Clips for the edge runtime comparison, relative to the Speech Commands subset (all 16 kHz, so no
#: resampling: the resampler is float arithmetic that need not round identically on both machines).
STREAM_CLIPS = ("yes", "no", "bird", "stop", "up", "left", "house", "go")
#: The same model file and interpreter on both machines (the x86 venv also has other interpreters).
EDGE_MODEL_ARGS = ("--variant", "int8", "--runtime", "litert")
#: Test clips per word in the `edge eval` comparison.
EVAL_CLIPS_PER_WORD = 2
EVAL_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bird", "five")


def _unavailable(reason: str) -> None:
    """Skip, or fail under CI=true where these tests must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the Raspberry Pi emulation tests must run in CI)")
    pytest.skip(reason)


def _data_dir() -> Path:
    return Path(os.environ.get("KWS_DATA_DIR", REPO.parent / "shared" / "data"))


def _speech_commands() -> Path:
    root = _data_dir() / "speech_commands_v2_subset"
    if not (root / "testing_list.txt").is_file():
        _unavailable(f"Speech Commands subset not found at {root} (set KWS_DATA_DIR)")
    return root


@pytest.fixture(scope="session")
def pi_userland() -> Path:
    """Build (or reuse) .cache/pi with tests/pi/make_rootfs.sh; the cache folder."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        _unavailable(f"aarch64 emulation needs {', '.join(missing)} (apt-get install qemu-user-static debootstrap)")
    cache = Path(os.environ.get("PI_CACHE_DIR", REPO / ".cache" / "pi"))
    env = {**os.environ, "PI_HOST_PYTHON": sys.executable}
    done = subprocess.run(["bash", str(PI_DIR / "make_rootfs.sh")], env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT_S)
    if done.returncode != 0:
        if "needs root" in done.stderr:
            _unavailable(done.stderr.strip())
        pytest.fail(f"make_rootfs.sh failed:\n{done.stderr}")
    return cache


def _run(argv: list[str], emulated_model: int | None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """`python ARGV` on the host (emulated_model None) or under emulation as a Raspberry Pi 4/5."""
    if emulated_model is None:
        cmd, env = [sys.executable, *argv], {**os.environ, "PYTHONPATH": str(REPO)}
    else:
        cmd, env = ["bash", str(PI_DIR / "run_aarch64.sh"), *argv], {**os.environ, "PI_MODEL": str(emulated_model)}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    where = "x86 host" if emulated_model is None else f"emulated Raspberry Pi {emulated_model}"
    assert done.returncode == 0, f"{' '.join(argv)} failed on the {where}:\n{done.stderr[-4000:]}"
    return done


def _assert_identical(name: str, x86: np.ndarray, pi: np.ndarray) -> None:
    assert x86.dtype == pi.dtype and x86.shape == pi.shape, f"{name}: {x86.dtype}{x86.shape} vs {pi.dtype}{pi.shape}"
    if x86.tobytes() != pi.tobytes():
        diff = np.argwhere(x86 != pi)
        pytest.fail(f"{name}: {len(diff)} values differ between x86 and the emulated Pi, first at {diff[0].tolist()}")


# --- the emulated environment itself ---------------------------------------------------------------------

def _must_be_identical(name: str) -> bool:
    """Probe results computed in fixed point or with correctly rounded IEEE operations only."""
    if name.startswith(("model_", "soundfile_", "micro_features", "np_int_")) or name == "np_float_elementwise":
        return True
    return name.startswith("litert_") and name.endswith("_reference")


@pytest.mark.parametrize("pi_model", [4, 5])
def test_probe_matches_x86(pi_userland: Path, tmp_path: Path, pi_model: int) -> None:
    wav = next(iter(sorted((_speech_commands() / "yes").glob("*.wav"))))
    _run([str(PI_DIR / "probe.py"), "--wav", str(wav), "--out", str(tmp_path / "x86.npz")], None)
    _run([str(PI_DIR / "probe.py"), "--wav", str(wav), "--out", str(tmp_path / "pi.npz")], pi_model)
    x86, pi = np.load(tmp_path / "x86.npz"), np.load(tmp_path / "pi.npz")
    assert sorted(x86.files) == sorted(pi.files)
    for name in x86.files:
        a, b = x86[name], pi[name]
        if _must_be_identical(name):
            _assert_identical(name, a, b)
        elif name.startswith("np_float_"):
            # Float library code (OpenBLAS, pocketfft, numpy's SIMD exp/tanh, libm) is per-ISA and not
            # correctly rounded; e.g. pocketfft uses fused multiply-adds on aarch64 only. Measured: rfft
            # differs by 3.8e-15 on magnitudes up to ~30, the rest identical; 1e-12 relative is far above
            # that and far below any real error.
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-12 * np.abs(a).max(), err_msg=name)
        elif name.startswith("litert_mlp_"):
            # The optimized kernels' one-step rounding differences (below) compound through the network
            # and softmax (measured: up to 16 steps with XNNPACK); only the reference kernels are exact.
            assert a.shape == b.shape and a.dtype == b.dtype == np.int8, name
        else:
            # One operator, identical inputs, optimized kernels (XNNPACK or TFLite's builtin ones): they
            # use per-ISA code with different requantization rounding (e.g. XNNPACK's NEON "rndnu" vs its
            # x86 "fp32" variant), so a result on a rounding tie may land one step apart. Measured: MUL
            # differs by 1 in 30 of 4096 outputs. A wrongly emulated CPU (qemu's "max" model) is off by
            # up to 171 in nearly every FULLY_CONNECTED output.
            assert a.dtype == b.dtype == np.int8 and a.shape == b.shape, name
            worst = int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())
            assert worst <= 1, f"{name}: x86 and the emulated Pi differ by {worst} quantization steps"


# --- the edge runtime (python -m edge) -------------------------------------------------------------------

@pytest.fixture(scope="session")
def edge_cli() -> None:
    if importlib.util.find_spec("edge.__main__") is None:
        _unavailable("the edge CLI (python -m edge) does not exist yet")


@pytest.fixture(scope="session")
def int8_artifact(request: pytest.FixtureRequest) -> Path:
    """An exported artifacts folder: $KWS_PI_ARTIFACT, else the suite's `artifacts` fixture (conftest.py)."""
    if os.environ.get("KWS_PI_ARTIFACT"):
        return Path(os.environ["KWS_PI_ARTIFACT"])
    return Path(request.getfixturevalue("artifacts"))


@pytest.fixture(scope="session")
def stream_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 8 s of 16 kHz speech: one test clip of each word in STREAM_CLIPS, back to back."""
    import soundfile

    root = _speech_commands()
    parts = []
    for word in STREAM_CLIPS:
        clip, rate = soundfile.read(str(sorted((root / word).glob("*.wav"))[0]), dtype="int16")
        assert rate == 16000
        parts.append(clip)
    path = tmp_path_factory.mktemp("pi") / "stream.wav"
    soundfile.write(str(path), np.concatenate(parts), 16000, subtype="PCM_16")
    return path


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def _firing_threshold(artifact: Path, probs: np.ndarray) -> float:
    """A detection threshold that this (possibly under-trained) model's keywords reach on the stream:
    half the highest keyword posterior, so the event comparison below is never vacuous."""
    labels = json.loads((artifact / "manifest.json").read_text())["labels"]
    keywords = [i for i, label in enumerate(labels) if not label.startswith("_")]
    return max(0.01, round(float(probs[:, keywords].max()) / 2, 3))


@pytest.fixture(scope="session")
def pi_frontend_lib() -> Path:
    """The front-end library cross-built for aarch64 (`make frontend-lib-aarch64`), as `make frontend-lib`
    builds it on a Pi: the emulated runtime finds it in edge/native/ and uses it (--frontend auto)."""
    if shutil.which("aarch64-linux-gnu-gcc") is None:
        _unavailable("aarch64-linux-gnu-gcc not found (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)")
    done = subprocess.run(["make", "-s", "frontend-lib-aarch64"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return REPO / "edge" / "native" / "libkws_frontend.aarch64.so"


def _stages(artifact: Path, wav: Path, out: Path, model: int | None, features: Path | None = None,
            frontend: str = "auto") -> Any:
    argv = [str(PI_DIR / "stream_stages.py"), str(artifact), str(wav), str(out), "--frontend", frontend]
    _run(argv + (["--features", str(features)] if features else []), model)
    return np.load(out)


@pytest.mark.parametrize("pi_model", [4, 5])
def test_edge_stages_match_x86(pi_userland: Path, pi_frontend_lib: Path, edge_cli: None, int8_artifact: Path,
                               stream_wav: Path, tmp_path: Path, pi_model: int) -> None:
    """Each stage separately, bit for bit: the front end (the library), and the model + post-processing
    given the same features."""
    x86 = _stages(int8_artifact, stream_wav, tmp_path / "x86.npz", None)
    np.save(tmp_path / "features.npy", x86["features"])
    pi = _stages(int8_artifact, stream_wav, tmp_path / "pi.npz", pi_model, tmp_path / "features.npy")
    _assert_identical("features", x86["features"], pi["features"])
    # The int8 path is integer arithmetic from the features to the decisions, so no tolerance. This needs
    # interpreter kernels that round identically on every ISA: TFLite's reference kernels do; XNNPACK and
    # the optimized builtin kernels do not (see test_probe_matches_x86).
    _assert_identical("posteriors", x86["posteriors"], pi["posteriors"])
    assert len(x86["event_frames"]) > 0, "no events: the comparison would prove nothing"
    _assert_identical("event frames", x86["event_frames"], pi["event_frames"])
    _assert_identical("event labels", x86["event_labels"], pi["event_labels"])


#: Why the Pi needs the library: the aarch64 pymicro-features wheel builds its window, PCAN and FFT tables
#: at start-up in float, and its compiler contracted those multiply-adds into fused ones, so rare features
#: land a few steps from x86's. Measured on STREAM_CLIPS: 1 of 31,920 values, by 5 steps. Bounds for
#: "close but not equal" (if a future wheel is exact, the test still passes and the note can go).
WHEEL_MAX_DIFFERING_SHARE = 1e-3
WHEEL_MAX_STEPS = 16


def test_pymicro_wheel_front_end_is_only_close(pi_userland: Path, edge_cli: None, int8_artifact: Path,
                                               stream_wav: Path, tmp_path: Path) -> None:
    x86 = _stages(int8_artifact, stream_wav, tmp_path / "x86.npz", None, frontend="pymicro-features")
    pi = _stages(int8_artifact, stream_wav, tmp_path / "pi.npz", 4, frontend="pymicro-features")
    a, b = x86["features"].astype(np.int32), pi["features"].astype(np.int32)
    assert a.shape == b.shape
    differing = np.argwhere(a != b)
    worst = int(np.abs(a - b).max())
    print(f"pymicro-features wheel: {len(differing)} of {a.size} values differ (max {worst} steps) "
          f"at {differing[:5].tolist()}")
    assert len(differing) / a.size <= WHEEL_MAX_DIFFERING_SHARE and worst <= WHEEL_MAX_STEPS, (len(differing), worst)


@pytest.mark.parametrize("pi_model", [4, 5])
def test_edge_run_matches_x86(pi_userland: Path, pi_frontend_lib: Path, edge_cli: None, int8_artifact: Path,
                              stream_wav: Path, tmp_path: Path, pi_model: int) -> None:
    """`python -m edge run` end to end, as a user runs it: identical posteriors and identical events."""
    base = ["-m", "edge", "run", "--model", str(int8_artifact), *EDGE_MODEL_ARGS, "--wav", str(stream_wav), "--json"]
    _run([*base, "--probs", str(tmp_path / "first.npy")], None)
    threshold = _firing_threshold(int8_artifact, np.load(tmp_path / "first.npy"))
    results = {}
    for where, model in (("x86", None), ("pi", pi_model)):
        probs = tmp_path / f"{where}.npy"
        done = _run([*base, "--threshold", str(threshold), "--probs", str(probs)], model)
        assert "note:" not in done.stderr, done.stderr  # the library was used, not the wheel
        results[where] = (_events(done.stdout), np.load(probs))
    (x86_events, x86_probs), (pi_events, pi_probs) = results["x86"], results["pi"]
    assert x86_events, f"no events at threshold {threshold}: the comparison would prove nothing"
    _assert_identical("posteriors", x86_probs, pi_probs)
    assert pi_events == x86_events


def _eval_subset(root: Path, dest: Path) -> Path:
    """A Speech Commands-shaped folder with EVAL_CLIPS_PER_WORD test clips per word (symlinks)."""
    listed = (root / "testing_list.txt").read_text().split()
    chosen = []
    for word in EVAL_WORDS:
        chosen += [rel for rel in listed if rel.startswith(word + "/")][:EVAL_CLIPS_PER_WORD]
    for rel in chosen:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).symlink_to(root / rel)
    (dest / "_background_noise_").symlink_to(root / "_background_noise_")
    (dest / "testing_list.txt").write_text("\n".join(chosen) + "\n")
    (dest / "validation_list.txt").write_text("")
    return dest


@pytest.mark.parametrize("pi_model", [4])
def test_edge_eval_matches_x86(pi_userland: Path, pi_frontend_lib: Path, edge_cli: None, int8_artifact: Path,
                               tmp_path: Path, pi_model: int) -> None:
    data = _eval_subset(_speech_commands(), tmp_path / "data")
    argv = ["-m", "edge", "eval", "--model", str(int8_artifact), *EDGE_MODEL_ARGS, "--data", str(data), "--json"]
    x86, pi = _run(argv, None), _run(argv, pi_model)
    # Same integer computation on the same clips: identical reports, metrics included (exact floats:
    # they are ratios of identical counts).
    assert _events(pi.stdout) == _events(x86.stdout)
    assert _events(x86.stdout)
