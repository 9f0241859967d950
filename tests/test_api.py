"""`edge.KeywordSpotter`, the Python API: the README example runs and agrees with `edge run`; any input
form (bytes, int16, float, other rates, several channels, any block size) gives what the equivalent file
gives; `reset()` restores power-on; per-keyword thresholds are applied and checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import edge
from edge.audio import iter_wav_chunks, load_wav, resample
from edge.detector import StreamingDetector

REPO = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    """The first ```python block of README.md's "Use from Python" section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Use from Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_runs_and_matches_the_command_line(artifacts: Path) -> None:
    code = readme_example()
    assert '"artifacts/default"' in code and "tests/data/speech_yes.wav" in code
    r = subprocess.run([sys.executable, "-c", code.replace('"artifacts/default"', repr(str(artifacts)))],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    *event_lines, shape = r.stdout.splitlines()
    labels = json.loads((artifacts / "manifest.json").read_text())["labels"]
    assert shape == f"({1 + (16000 - 480) // 160}, {len(labels)})"  # 1 s of audio: 98 frames of 30 ms, 10 ms apart
    cli = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(artifacts), "--json",
                          "--wav", "tests/data/speech_yes.wav", "--threshold", "yes=0.5"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    printed = [re.fullmatch(r"(\S+) at (\S+) s, score (\S+)", l).groups() for l in event_lines]
    expected = [json.loads(l) for l in cli.stdout.splitlines()]
    assert [p[0] for p in printed] == [e["label"] for e in expected]
    for (_, time, score), e in zip(printed, expected):  # printed with 2 decimals
        assert abs(float(time) - e["time"]) <= 0.005 + 1e-9 and abs(float(score) - e["score"]) <= 0.005 + 1e-4


def _run(spotter: edge.KeywordSpotter, blocks) -> tuple[list[edge.Event], np.ndarray]:
    events = [e for b in blocks for e in spotter.process(b)] + spotter.flush()
    return events, spotter.posteriors()


def _reference(artifacts: Path, wav: Path) -> tuple[list[edge.Event], np.ndarray]:
    """What the command line computes for a file: its converted chunks through a `StreamingDetector`."""
    det = StreamingDetector(artifacts, keep_posteriors=True, postprocess=_low(artifacts))
    events = [e for chunk in iter_wav_chunks(wav, det.sample_rate) for e in det.process(chunk)]
    return events, det.posterior_array()


def _low(artifacts: Path):
    """Threshold 0.3 for every keyword (as the CLI tests use): the short test stream gives several events."""
    from edge.manifest import load_manifest
    from edge.spotter import detection_config

    m = load_manifest(artifacts)
    return detection_config(m.postprocess, m.labels, 0.3)


def test_every_input_form_gives_the_file_result(artifacts: Path, stream_wav: Path) -> None:
    """int16 in 37-sample blocks, bytes in odd-length pieces, float in one call: all equal the file's events
    and posteriors bit for bit (float x/32768 rounds back to x exactly)."""
    pcm = load_wav(stream_wav, 16000)
    ref_events, ref_post = _reference(artifacts, stream_wav)
    assert len(ref_events) >= 2
    raw = pcm.astype("<i2").tobytes()
    forms = {
        "int16 blocks": [pcm[i:i + 37] for i in range(0, len(pcm), 37)],
        "odd bytes": [raw[i:i + 999] for i in range(0, len(raw), 999)],
        "float": [pcm / 32768.0],
        "float32 [n, 1]": [(pcm / 32768.0).astype(np.float32).reshape(-1, 1)],
    }
    for name, blocks in forms.items():
        spotter = edge.KeywordSpotter(artifacts, threshold=0.3, keep_posteriors=True)
        events, post = _run(spotter, blocks)
        assert events == ref_events, name
        assert np.array_equal(post, ref_post), name


@pytest.mark.parametrize("rate, channels", [(48000, 2), (22050, 1)])
def test_other_rates_and_channels_are_converted_like_files(artifacts: Path, stream_wav: Path, tmp_path: Path,
                                                           rate: int, channels: int) -> None:
    """Audio at `rate` with `channels`, fed in blocks as interleaved bytes or [n, channels] arrays: exactly the
    events and posteriors of the same audio read from a file (one conversion code path)."""
    x = resample(load_wav(stream_wav, 16000) / 32768.0, 16000, rate)
    audio = np.stack([x, 0.5 * x], 1) if channels == 2 else x.reshape(-1, 1)
    wav = tmp_path / "foreign.wav"
    sf.write(wav, audio, rate, subtype="PCM_16")
    ref_events, ref_post = _reference(artifacts, wav)
    pcm, _ = sf.read(wav, dtype="int16", always_2d=True)
    for blocks in ([pcm[i:i + 4801] for i in range(0, len(pcm), 4801)],
                   [pcm.tobytes()[i:i + 1001] for i in range(0, pcm.nbytes, 1001)]):
        spotter = edge.KeywordSpotter(artifacts, sample_rate=rate, channels=channels, threshold=0.3,
                                      keep_posteriors=True)
        events, post = _run(spotter, blocks)
        assert events == ref_events and np.array_equal(post, ref_post)


def test_reset_restores_power_on(artifacts: Path, stream_wav: Path) -> None:
    pcm = load_wav(stream_wav, 16000)
    spotter = edge.KeywordSpotter(artifacts, sample_rate=48000, threshold=0.3, keep_posteriors=True)
    audio = resample(pcm / 32768.0, 16000, 48000)
    first = _run(spotter, [audio[:100001], audio[100001:]])
    spotter.process(audio[:5000])  # resampler, front end, state and detector all move on
    spotter.reset()
    again = _run(spotter, [audio])
    assert again[0] == first[0] and np.array_equal(again[1], first[1])
    assert spotter.posteriors(clear=True).shape == first[1].shape and len(spotter.posteriors()) == 0


def test_thresholds_per_keyword(artifacts: Path, stream_wav: Path) -> None:
    """Manifest thresholds by default; `threshold` replaces them all; `thresholds` then sets single keywords.
    A keyword at threshold 1.0 never fires (int8 posteriors top out at 255/256)."""
    calibrated = json.loads((artifacts / "manifest.json").read_text())["postprocess"]
    base = edge.KeywordSpotter(artifacts)
    assert base.thresholds == {k: calibrated["thresholds"].get(k, calibrated["threshold"]) for k in base.keywords}
    mixed = edge.KeywordSpotter(artifacts, threshold=0.3, thresholds={"yes": 0.5})
    assert mixed.thresholds == {k: 0.5 if k == "yes" else 0.3 for k in base.keywords}
    pcm = load_wav(stream_wav, 16000)
    events = edge.KeywordSpotter(artifacts, threshold=0.3).process(pcm)
    top = max(set(e.label for e in events), key=[e.label for e in events].count)
    muted = edge.KeywordSpotter(artifacts, threshold=0.3, thresholds={top: 1.0}).process(pcm)
    assert top not in {e.label for e in muted}
    assert muted or {e.label for e in events} == {top}  # the other keywords still fire


@pytest.mark.parametrize("kwargs, message", [
    ({"thresholds": {"_silence_": 0.5}}, "not keywords of this model: _silence_"),
    ({"thresholds": {"yess": 0.5}}, "not keywords of this model: yess"),
    ({"thresholds": {"yes": 1.5}}, "bad threshold"),
    ({"threshold": 0.0}, "bad threshold"),
    ({"runtime": "cuda"}, "unknown runtime"),
    ({"sample_rate": 0}, "sample_rate must be positive"),
])
def test_bad_arguments_are_user_errors(artifacts: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(edge.UserError, match=message):
        edge.KeywordSpotter(artifacts, **kwargs)


def test_bad_audio_is_an_audio_error(artifacts: Path) -> None:
    stereo = edge.KeywordSpotter(artifacts, channels=2)
    with pytest.raises(edge.AudioError, match="does not hold 2-channel audio"):
        stereo.process(np.zeros((100, 3), dtype=np.int16))
    with pytest.raises(edge.AudioError, match="NaN or infinite"):
        stereo.process(np.full((100, 2), np.nan))
    with pytest.raises(edge.AudioError, match="int16 or float"):
        stereo.process(np.zeros((100, 2), dtype=np.int32))
