"""Keyword detection in C (firmware/src/kws_detect.c) == edge/postprocess.py `Detector(integer=True)`.

* The detector alone, on long synthetic posterior streams built to hit every rule: several labels
  over their limits at once, exact ties (lowest index wins), background labels that never fire,
  per-label thresholds, the refractory period, window 1 / refractory 0, and resets mid-stream.
* The whole firmware built from a real artifacts folder (`python -m export codegen --artifacts`, a
  GRU trained on ../shared/data): on > 10 s of real speech its per-frame int8 posteriors equal the
  TFLite Micro interpreter's and its events equal `python -m edge run --runtime tflm --json`, on the
  host build and on the Cortex-M4 build under QEMU; the same on the host for a Jordan network, whose
  state is its own posterior.
All comparisons are exact: there is no tolerance anywhere (integer arithmetic on both sides).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware_support import REPO, make_firmware, read_wav_int16, require_tool, write_wav_int16

from edge.frontend import FrontendConfig
from edge.postprocess import Detector, PostprocessConfig
from export import codegen

LABELS = ("_silence_", "_unknown_", "yes", "no", "up", "down")
POSTERIOR = codegen.QuantParams(1.0 / 256, -128)  # the int8 softmax output of every exported model


def _settings(post: PostprocessConfig, labels: tuple[str, ...] = LABELS) -> codegen.FirmwareSettings:
    return codegen.FirmwareSettings(
        labels=labels, postprocess=post, frontend=FrontendConfig(), features=codegen.QuantParams(0.1, -128),
        posteriors=POSTERIOR, states=(),
    )


def _build_detect_runner(settings: codegen.FirmwareSettings, work: Path) -> Path:
    gen = work / "gen"
    gen.mkdir(parents=True)
    (gen / "kws_settings.h").write_text(codegen.settings_header(settings))
    make_firmware(["firmware-detect-runner"], gen, work / "build")
    return work / "build" / "host" / "kws_detect_runner"


def _synthetic_stream(frames: int, classes: int, seed: int) -> tuple[np.ndarray, set[int]]:
    """int8 posteriors with keyword bursts, two labels rising together (ties), and reset points.

    Each frame is a softmax-like distribution quantized like TFLite's output (scale 1/256, zero point
    -128). Bursts of 5-40 frames push one or two labels up; in "tie" bursts two keywords get exactly
    the same values so that their window sums are equal.
    """
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1, (frames, classes))
    logits[:, 0] += 2.0  # mostly silence
    t = 0
    while t < frames:
        length = int(rng.integers(5, 40))
        kind = rng.choice(["one", "two", "tie", "background", "none"])
        a, b = rng.choice(np.arange(2, classes), size=2, replace=False)
        if kind == "one":
            logits[t : t + length, a] += rng.uniform(2, 6)
        elif kind == "two":
            logits[t : t + length, a] += rng.uniform(3, 6)
            logits[t : t + length, b] += rng.uniform(3, 6)
        elif kind == "tie":
            logits[t : t + length, a] += 5.0
            logits[t : t + length, b] = logits[t : t + length, a]
        elif kind == "background":
            logits[t : t + length, 1] += 6.0
        t += length + int(rng.integers(0, 60))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    q = np.clip(np.round(p * 256) - 128, -128, 127).astype(np.int8)
    resets = set(int(r) for r in rng.choice(np.arange(1, frames), size=8, replace=False))
    return q, resets


def _python_events(labels: tuple[str, ...], post: PostprocessConfig, q: np.ndarray, resets: set[int]) -> list[tuple]:
    det = Detector(list(labels), post, scale=POSTERIOR.scale, integer=True, hop_s=0.01, window_s=0.03)
    events = []
    for i, row in enumerate(q):
        if i in resets:
            det.reset()
        ev = det.update(row.astype(np.int64) - POSTERIOR.zero_point)
        if ev is not None:
            # score = window sum * scale / window, so the sum is recovered exactly (it is an integer)
            window_sum = int(round(ev.score * post.window / POSTERIOR.scale))
            events.append((ev.frame, labels.index(ev.label), round(ev.time_s * 1000), window_sum))
    return events


def _c_events(runner: Path, q: np.ndarray, resets: set[int]) -> list[tuple]:
    records = []
    for i, row in enumerate(q):
        if i in resets:
            records.append(b"\x01" + bytes(len(row)))
        records.append(b"\x00" + row.tobytes())
    out = subprocess.run([str(runner)], input=b"".join(records), capture_output=True, check=True).stdout.decode()
    return [tuple(int(v) for v in line.split()[1:]) for line in out.splitlines()]


@pytest.mark.parametrize(
    "post",
    [
        PostprocessConfig(window=8, threshold=0.5, thresholds={"up": 0.3, "down": 0.9}, refractory=12),
        PostprocessConfig(window=1, threshold=0.45, refractory=0),
        PostprocessConfig(window=30, threshold=0.35, refractory=100),
    ],
    ids=["w8-r12-per-label", "w1-r0", "w30-r100"],
)
def test_detector_matches_python(post: PostprocessConfig, tmp_path: Path) -> None:
    runner = _build_detect_runner(_settings(post), tmp_path)
    q, resets = _synthetic_stream(6000, len(LABELS), seed=post.window)
    expected = _python_events(LABELS, post, q, resets)
    got = _c_events(runner, q, resets)
    assert got == expected
    # The stream really exercises the rules: many events, for several labels, none for background.
    assert len(expected) >= 20, len(expected)
    fired = {e[1] for e in expected}
    assert len(fired) >= 3 and not fired & {0, 1}


def test_ties_go_to_the_lowest_label_index(tmp_path: Path) -> None:
    """Two keywords with identical posteriors: both over their limit with equal sums; 'yes' (2) wins."""
    post = PostprocessConfig(window=4, threshold=0.4, refractory=3)
    runner = _build_detect_runner(_settings(post), tmp_path)
    q = np.full((40, len(LABELS)), -128, dtype=np.int8)
    q[:, 0] = 127  # silence, which never fires
    q[10:30, 0] = -128
    q[10:30, 2] = q[10:30, 3] = -8  # 120/256 each for 'yes' and 'no'
    q[20:30, 4] = -9  # 'up' just below them
    got = _c_events(runner, q, set())
    assert got == _python_events(LABELS, post, q, set())
    assert [e[1] for e in got] == [2] * len(got) and len(got) >= 4
    # first event when the 'yes' sum reaches ceil(0.4 * 4 * 256) = 410: 120 * 4 = 480 at frame 13
    assert got[0] == (13, 2, 13 * 10 + 30, 480)


def test_settings_header_limits_come_from_integer_threshold() -> None:
    from edge.postprocess import integer_threshold

    post = PostprocessConfig(window=10, threshold=0.6, thresholds={"no": 0.85}, refractory=50)
    text = codegen.settings_header(_settings(post, ("_silence_", "_unknown_", "yes", "no", 'say "hi"?')))
    defines = [line.split(None, 2) for line in text.splitlines() if line.startswith("#define ")]
    macros = {d[1]: d[2] for d in defines if len(d) == 3}
    limits = [integer_threshold(t, 10, 1 / 256) for t in (0.6, 0.6, 0.6, 0.85, 0.6)]
    assert macros["KWS_DETECT_LIMITS"] == "{" + ", ".join(map(str, limits)) + "}"
    assert macros["KWS_LABEL_FIRES"] == "{0, 0, 1, 1, 1}"
    assert macros["KWS_DETECT_WINDOW"] == "10" and macros["KWS_DETECT_REFRACTORY"] == "50"
    assert macros["KWS_POSTERIOR_ZERO_POINT"] == "(-128)"
    # quotes and '?' escaped (no trigraphs), so any label is a valid C string
    assert r'"say \"hi\"\?"' in macros["KWS_LABEL_NAMES"]


# ----------------------------------------------------------------------------------------------------
# The firmware built from a real artifacts folder
# ----------------------------------------------------------------------------------------------------

#: Test-split clips (speakers unseen in training), with 1 s of quiet background noise between.
STREAM_WORDS = ("yes", "on", "no", "off", "right", "up")
GAP_SECONDS = 1.0
#: Events the stream must produce so that the event path is really compared.
MIN_EVENTS = 2


def _test_split_clips(sc_dir: Path, word: str) -> list[Path]:
    listed = (sc_dir / "testing_list.txt").read_text().split()
    return [sc_dir / rel for rel in sorted(listed) if rel.startswith(f"{word}/")]


def _speech_stream(sc_dir: Path, path: Path) -> np.ndarray:
    """Keywords separated by quiet background noise (13 s in all), written to `path`."""
    rng = np.random.default_rng(0)
    noise = read_wav_int16(sc_dir / "_background_noise_" / "white_noise.wav")

    def gap() -> np.ndarray:
        start = int(rng.integers(0, len(noise) - 16000))
        return (noise[start : start + int(GAP_SECONDS * 16000)].astype(np.int32) // 16).astype(np.int16)

    parts = [gap()]
    for i, word in enumerate(STREAM_WORDS):
        clips = _test_split_clips(sc_dir, word)
        clip = read_wav_int16(clips[(7 * i) % len(clips)])[:16000]
        parts += [np.pad(clip, (0, 16000 - len(clip))), gap()]
    pcm = np.concatenate(parts)
    write_wav_int16(path, pcm)
    return pcm


def _threshold_for_events(artifacts: Path, pcm: np.ndarray) -> str | None:
    """None when the manifest's own thresholds give MIN_EVENTS events on `pcm`; otherwise a lower
    common threshold (as text, passed identically to codegen and `edge run --threshold`) that does.

    The session's test model is trained for only a few epochs, so its keyword posteriors rarely
    reach a deployed model's thresholds; comparing C with Python needs events, not accuracy.
    """
    from edge.detector import StreamingDetector
    from edge.interpreters import Runtime

    det = StreamingDetector(artifacts, "int8", runtime=Runtime.TFLM, keep_posteriors=True)
    if len(det.process(pcm)) >= MIN_EVENTS:
        return None
    units = np.rint(det.posterior_array().astype(np.float64) * 256).astype(np.int64)  # q - zero point
    base = det.postprocess
    threshold = 1.0
    while threshold > 0.01:
        threshold *= 0.9
        text = f"{threshold:.3f}"
        detector = Detector(det.labels, PostprocessConfig(base.window, float(text), {}, base.refractory),
                            scale=1 / 256, integer=True)
        if sum(detector.update(row) is not None for row in units) >= MIN_EVENTS:
            return text
    raise AssertionError("the test model's posteriors never rise above 1% on keywords")


@pytest.fixture(scope="module")
def real_firmware(artifacts: Path, sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`export codegen --artifacts` + host build + the reference run of `edge run` on one WAV."""
    return _firmware_from_artifacts(artifacts, sc_dir, tmp_path_factory.mktemp("fw_real"))


@pytest.fixture(scope="module")
def jordan_firmware(jordan_artifacts: Path, sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same for the Jordan network."""
    return _firmware_from_artifacts(jordan_artifacts, sc_dir, tmp_path_factory.mktemp("fw_jordan"))


def _firmware_from_artifacts(artifacts: Path, sc_dir: Path, work: Path) -> dict:
    pytest.importorskip("tflite_micro")  # the reference runtime
    from export.cli import main as export_main

    wav = work / "stream.wav"
    pcm = _speech_stream(sc_dir, wav)
    threshold = _threshold_for_events(artifacts, pcm)
    override = ["--threshold", threshold] if threshold else []
    gen = work / "gen"
    assert export_main(["codegen", "--artifacts", str(artifacts), "--out", str(gen), *override]) == 0
    make_firmware(["firmware-host"], gen, work / "build")
    return {"artifacts": artifacts, "gen": gen, "build": work / "build", "wav": wav, "pcm": pcm,
            "threshold": threshold, "reference": _edge_run(artifacts, wav, work / "probs.npy", override)}


def _edge_run(artifacts: Path, wav: Path, probs: Path, override: list[str]) -> dict:
    """Events and int8 posteriors of the Pi runtime on TFLite Micro (the firmware's reference)."""
    from edge.manifest import load_manifest

    result = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--model", str(artifacts), "--wav", str(wav), "--json",
         "--runtime", "tflm", "--probs", str(probs), *override],
        cwd=REPO, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    out = load_manifest(artifacts).variant("int8").output("probs")
    # The runtime stores (q - zero_point) * scale as float32: k / 256 for an integer k is exact, so
    # rounding recovers q exactly.
    q = np.rint(np.load(probs).astype(np.float64) / out["scale"]) + out["zero_point"]
    return {"events": events, "posteriors": q.astype(np.int8), "scale": out["scale"]}


def _check_against_reference(output: str, fw: dict) -> dict:
    parsed = codegen.parse_app_output(output)
    assert parsed["finished"], output[-500:]
    ref = fw["reference"]
    c_posteriors = np.array(parsed["posteriors"], dtype=np.int8)
    assert c_posteriors.shape == ref["posteriors"].shape
    assert len(c_posteriors) >= 1000  # > 10 s of audio, streamed through one model instance
    differing = int(np.count_nonzero(c_posteriors != ref["posteriors"]))
    assert differing == 0, f"{differing} of {c_posteriors.size} posteriors differ from TFLite Micro"
    got = [(e["frame"], e["label"]) for e in parsed["events"]]
    expected = [(e["frame"], e["label"]) for e in ref["events"]]
    assert got == expected
    window = json.loads((fw["artifacts"] / "manifest.json").read_text())["postprocess"]["window"]
    for c_event, py_event in zip(parsed["events"], ref["events"]):
        # times are frame * 10 ms + 30 ms on both sides; the runtime rounds seconds to 4 decimals
        assert c_event["time_ms"] == round(py_event["time"] * 1000)
        # the runtime's score is units * (scale / window) (`Detector.smoothed`), rounded to 4 decimals: the same
        # float operations here, since another order can land on the other side of a rounding tie (0.44375)
        assert round(c_event["window_sum"] * (ref["scale"] / window), 4) == py_event["score"]
    return parsed


def test_codegen_from_artifacts_writes_the_manifest_settings(real_firmware: dict, tmp_path: Path) -> None:
    from edge.manifest import load_manifest
    from edge.postprocess import integer_threshold

    manifest = load_manifest(real_firmware["artifacts"])
    post = manifest.postprocess
    info = codegen.generate_from_artifacts(real_firmware["artifacts"], tmp_path)
    text = (tmp_path / "kws_settings.h").read_text()
    limits = [integer_threshold(post.threshold_of(label), post.window, 1 / 256) for label in manifest.labels]
    assert list(info.settings.limits) == limits
    assert f"#define KWS_DETECT_LIMITS {{{', '.join(map(str, limits))}}}" in text
    assert f"#define KWS_NUM_LABELS {len(manifest.labels)}" in text
    assert f"#define KWS_DETECT_WINDOW {post.window}" in text
    assert f"#define KWS_DETECT_REFRACTORY {post.refractory}" in text
    fires = ["0" if label in ("_silence_", "_unknown_") else "1" for label in manifest.labels]
    assert f"#define KWS_LABEL_FIRES {{{', '.join(fires)}}}" in text
    state_sizes = [t["shape"][-1] for t in manifest.data["state"]["tensors"]]
    assert f"#define KWS_STATE_SIZES {{{', '.join(map(str, state_sizes))}}}" in text
    # The model sources are the same whatever the thresholds; only the settings differ.
    for name in ("model_data.c", "model_data.h", "kws_frontend_config.h"):
        assert (tmp_path / name).read_text() == (real_firmware["gen"] / name).read_text()
    if real_firmware["threshold"] is not None:
        t = float(real_firmware["threshold"])
        overridden = (real_firmware["gen"] / "kws_settings.h").read_text()
        assert f"#define KWS_DETECT_LIMITS {{{', '.join(str(integer_threshold(t, post.window, 1 / 256)) for _ in fires)}}}" in overridden


def test_host_firmware_matches_edge_runtime_on_real_speech(real_firmware: dict) -> None:
    exe = real_firmware["build"] / "host" / "kws_host"
    result = subprocess.run([str(exe), "--stats", str(real_firmware["wav"])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    parsed = _check_against_reference(result.stdout, real_firmware)
    # The stream has keywords that fire (see _threshold_for_events), so the event path is compared.
    assert len(parsed["events"]) >= MIN_EVENTS, parsed["events"]
    assert int(parsed["stats"]["events"]) == len(parsed["events"])


def test_host_firmware_runs_a_jordan_network_like_edge_runtime(jordan_firmware: dict) -> None:
    """Firmware generated from a Jordan network's artifacts: its state, the int8 posterior, is carried exactly as
    TFLite Micro carries it (every posterior equal), and the events are `edge run`'s."""
    settings = (jordan_firmware["gen"] / "kws_settings.h").read_text()
    labels = len(json.loads((jordan_firmware["artifacts"] / "manifest.json").read_text())["labels"])
    assert f"#define KWS_STATE_SIZES {{{labels}}}" in settings and "#define KWS_STATE_ZERO_POINTS {-128}" in settings
    exe = jordan_firmware["build"] / "host" / "kws_host"
    result = subprocess.run([str(exe), "--stats", str(jordan_firmware["wav"])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    parsed = _check_against_reference(result.stdout, jordan_firmware)
    assert len(parsed["events"]) >= MIN_EVENTS, parsed["events"]


@pytest.fixture(scope="module", params=["lstm", "rnn"])
def cell_firmware(request: pytest.FixtureRequest, sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Firmware generated from a trained LSTM's and a trained Elman RNN's artifacts."""
    artifacts = request.getfixturevalue(f"{request.param}_artifacts")
    return _firmware_from_artifacts(artifacts, sc_dir, tmp_path_factory.mktemp(f"fw_{request.param}"))


def test_host_firmware_runs_lstm_and_elman_rnn_like_edge_runtime(cell_firmware: dict) -> None:
    """The LSTM (two states, h and c) and the Elman RNN through codegen and the host firmware: every posterior
    equals `edge run --runtime tflm`'s and the events are the same."""
    manifest = json.loads((cell_firmware["artifacts"] / "manifest.json").read_text())
    kinds = {"lstm": 2, "rnn": 1}[manifest["model"]["config"]["cell"]]
    assert len(manifest["state"]["tensors"]) == kinds
    exe = cell_firmware["build"] / "host" / "kws_host"
    result = subprocess.run([str(exe), "--stats", str(cell_firmware["wav"])], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    parsed = _check_against_reference(result.stdout, cell_firmware)
    assert len(parsed["events"]) >= MIN_EVENTS, parsed["events"]


def test_host_reset_policy_matches_edge_runtime(real_firmware: dict, tmp_path: Path) -> None:
    """`kws_host --reset-every 250` (hops) == `edge run --reset-every 2.5` (s): front end, state and
    detector all restart at the same samples, so events (frames counted from each reset) agree."""
    exe = real_firmware["build"] / "host" / "kws_host"
    result = subprocess.run([str(exe), "--reset-every", "250", str(real_firmware["wav"])], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    parsed = codegen.parse_app_output(result.stdout)
    override = ["--threshold", real_firmware["threshold"]] if real_firmware["threshold"] else []
    ref = _edge_run(real_firmware["artifacts"], real_firmware["wav"], tmp_path / "probs.npy",
                    [*override, "--reset-every", "2.5"])
    assert [(e["frame"], e["label"]) for e in parsed["events"]] == [(e["frame"], e["label"]) for e in ref["events"]]
    assert parsed["events"], "no event with the reset policy"
    # `edge run` keeps the posteriors of every segment between resets, as the firmware prints them
    c_all = np.array(parsed["posteriors"], dtype=np.int8)
    assert c_all.shape == ref["posteriors"].shape and np.array_equal(c_all, ref["posteriors"])
    # the last segment (12.5 s on: 0.5 s = 50 hops = 48 frames) differs from the same frames without
    # resets (the reset really happened)
    assert not np.array_equal(c_all[-48:], real_firmware["reference"]["posteriors"][-48:])


def _m4_run(fw: dict) -> tuple[str, dict]:
    """The Cortex-M4 build under QEMU on the firmware's stream, checked against `edge run --runtime tflm`."""
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    make_firmware(["firmware-m4"], fw["gen"], fw["build"])
    output = codegen.run_m4(fw["build"] / "m4" / "kws_m4.elf", fw["wav"], ["--stats"])
    parsed = _check_against_reference(output, fw)
    assert len(parsed["events"]) >= MIN_EVENTS
    return output, parsed


def test_m4_firmware_runs_a_jordan_network_like_edge_runtime(jordan_firmware: dict) -> None:
    _m4_run(jordan_firmware)


def test_m4_firmware_matches_edge_runtime_on_real_speech(real_firmware: dict) -> None:
    output, parsed = _m4_run(real_firmware)
    costs = {**codegen.firmware_costs(real_firmware["build"]), **codegen.measured_costs(output)}
    print("M4 costs:", json.dumps(costs))
    assert costs["frames"] == len(parsed["posteriors"]) and costs["events"] == len(parsed["events"])
    assert 0 < costs["model_flash_bytes"] < costs["flash_bytes"]
    assert 0 < costs["model_ram_bytes"] < costs["ram_bytes"]
    assert 0 < costs["detect_ram_bytes"] <= 1024  # ring + sums of a 12-label, 10-frame window: ~300 B
    assert 0 < costs["stack_bytes"] < 16 * 1024
    # counts are plausible: >= 1 instruction per MAC; the detector is a small fraction of the model
    assert costs["model_instructions_per_frame"] >= costs["macs_per_frame"]
    assert 0 < costs["detect_instructions_per_frame"] < costs["model_instructions_per_frame"] / 10
    assert costs["instructions_per_frame"] == pytest.approx(
        costs["frontend_instructions_per_hop"] + costs["model_instructions_per_frame"]
        + costs["detect_instructions_per_frame"], abs=2)  # three independently rounded parts
