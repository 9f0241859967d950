"""`python -m export falsealarms`: false alarms per keyword on a folder of audio, the files streamed back to back as
one stream (or each from a reset state), checked against the runtime's own events (`StreamingDetector.process`
fed the same files, as `edge run` and `KeywordSpotter` are)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_wav, write_wav
from edge.datasets import Recipe, load_dataset
from edge.detector import StreamingDetector
from edge.manifest import load_manifest
from edge.postprocess import PostprocessConfig
from export import falsealarms, wakeword
from export.cli import main as export_main

#: thresholds low enough that the small test model fires on the keywords inside the negatives (asserted below)
LOW = (0.3, 0.5)


@pytest.fixture(scope="module")
def negatives(sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three files of eight real test-split clips each, keywords among them so that events happen: one WAV and
    two FLAC in a sub-folder (recursive, any format, sorted by path)."""
    import soundfile

    test = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir).split("test")
    clips = [c for c in test if c.label in ("yes", "no", "_unknown_", "left")][:24]
    folder = tmp_path_factory.mktemp("fa") / "neg"
    (folder / "more").mkdir(parents=True)
    gap = np.zeros(2000, np.int16)
    for k in range(3):
        pcm = np.concatenate([np.concatenate([load_wav(c.path, 16000), gap]) for c in clips[k * 8 : k * 8 + 8]])
        if k == 0:
            write_wav(folder / "a.wav", pcm, 16000)
        else:
            soundfile.write(folder / "more" / f"b{k}.flac", pcm, 16000, subtype="PCM_16")
    return folder


def runtime_counts(art: Path, folder: Path, config: PostprocessConfig | None, reset: bool) -> Counter[str]:
    """The runtime's events per keyword, the files fed one after another (`reset`: a reset before each)."""
    det = StreamingDetector(art, "int8", postprocess=config)
    counts: Counter[str] = Counter()
    for path in wakeword.folder_audio(folder):
        if reset:
            det.reset()
        counts.update(e.label for e in det.process(load_wav(path, 16000)))
    return counts


def as_counter(p: dict) -> Counter[str]:
    return Counter({k: n for k, n in p["by_keyword"].items() if n})


@pytest.mark.parametrize("reset", [False, True], ids=["one-stream", "reset-per-file"])
def test_counts_equal_the_runtime_events(artifacts: Path, negatives: Path, reset: bool) -> None:
    m = load_manifest(artifacts)
    r = falsealarms.evaluate(m, negatives, "int8", LOW, reset, progress=False)
    assert r["negatives"]["files"] == 3 and r["negatives"]["one_stream"] is not reset
    seconds = sum(len(load_wav(p, 16000)) for p in wakeword.folder_audio(negatives)) / 16000
    assert r["negatives"]["seconds"] == pytest.approx(seconds, abs=0.05)
    manifest_point, *at = r["points"]
    assert manifest_point["threshold"] is None and [p["threshold"] for p in at] == list(LOW)
    assert as_counter(manifest_point) == runtime_counts(artifacts, negatives, None, reset)
    base = m.postprocess
    for p in at:
        expected = runtime_counts(artifacts, negatives, PostprocessConfig(base.window, p["threshold"], {},
                                                                         base.refractory), reset)
        assert as_counter(p) == expected
        assert p["false_alarms"] == sum(expected.values())
        assert p["fa_per_hour"] == pytest.approx(p["false_alarms"] / (seconds / 3600), rel=1e-3)
    assert at[0]["false_alarms"] > 0  # the keywords in the audio fire at a low threshold: the comparison is not empty
    assert set(manifest_point["by_keyword"]) == set(r["manifest_thresholds"])


def test_reset_per_file_agrees_with_export_wakeword(artifacts: Path, negatives: Path, sc_dir: Path,
                                                    tmp_path: Path) -> None:
    """Each file from a reset state is what `export wakeword` counts on its negatives (any keyword)."""
    pos = tmp_path / "pos"
    pos.mkdir()
    yes = next(c for c in load_dataset(Recipe.SPEECH_COMMANDS, sc_dir).split("test") if c.label == "yes")
    write_wav(pos / "yes.wav", load_wav(yes.path, 16000), 16000)
    m = load_manifest(artifacts)
    ww = wakeword.evaluate(m, pos, negatives, "int8", "yes", 1.0, progress=False)
    fa = falsealarms.evaluate(m, negatives, "int8", [0.5], True, progress=False)
    assert fa["points"][0]["false_alarms"] == ww["manifest_point"]["false_alarms"]
    assert fa["points"][1]["false_alarms"] == next(p for p in ww["sweep"] if p["threshold"] == 0.5)["false_alarms"]


def test_cli_text_and_json(artifacts: Path, negatives: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main(["falsealarms", str(artifacts), "--negatives", str(negatives), "--threshold", "0.3",
                        "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["negatives"]["one_stream"] and [p["threshold"] for p in r["points"]] == [None, 0.3]
    assert export_main(["falsealarms", str(artifacts), "--negatives", str(negatives), "--threshold", "0.3",
                        "--quiet"]) == 0
    out = capsys.readouterr().out
    n = r["points"][1]["false_alarms"]
    assert "as one stream, state carried from file to file" in out
    assert f"at threshold 0.3: {n} false alarms" in out
    worst = max(r["points"][1]["by_keyword"].items(), key=lambda kv: kv[1])
    assert f"{worst[0]} {worst[1]}" in out  # the per-keyword counts are printed


@pytest.mark.parametrize("extra, message", [
    (["--threshold", "0"], "--threshold"),
    (["--threshold", "1.5"], "--threshold"),
    (["--threshold", "nan"], "--threshold"),
    (["--variant", "int4"], "variant"),
])
def test_user_errors_are_one_line(artifacts: Path, negatives: Path, capsys: pytest.CaptureFixture[str],
                                  extra: list[str], message: str) -> None:
    assert export_main(["falsealarms", str(artifacts), "--negatives", str(negatives), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_empty_or_missing_folders_are_refused(artifacts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in (tmp_path, tmp_path / "nope"):
        assert export_main(["falsealarms", str(artifacts), "--negatives", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(bad) in err


def test_report_has_the_false_alarm_section(artifacts: Path, sc_dir: Path, negatives: Path, tmp_path: Path) -> None:
    """`report --negatives DIR` alone (a model of several keywords, no recordings of one): each model's false
    alarms on DIR as one stream, at its manifest thresholds and at the report's shared threshold(s)."""
    from export import report as rep
    from export.report.settings import FALSE_ALARM_THRESHOLDS

    out = tmp_path / "r"
    assert rep.main([str(artifacts), "--out", str(out), "--data", str(sc_dir), "--minutes", "0.5", "--limit", "12",
                     "--bench-seconds", "0", "--quiet", "--negatives", str(negatives)]) == 0
    model = json.loads((out / "report.json").read_text())["models"][0]
    direct = falsealarms.evaluate(load_manifest(artifacts), negatives, "int8", FALSE_ALARM_THRESHOLDS, False,
                                  progress=False)
    assert model["falsealarms"]["points"] == direct["points"] and "wakeword" not in model
    md = (out / "report.md").read_text()
    section = md[md.index("### False alarms on audio without keywords"):]
    total = direct["points"][0]["fa_per_hour"]
    assert f"| all |  | {total:.1f} |" in section
    for k, t in direct["manifest_thresholds"].items():
        assert f"| {k} | {t:.4f} |" in section
