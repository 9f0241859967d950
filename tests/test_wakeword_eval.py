"""`python -m export wakeword`: recall on a folder of positive recordings and false alarms per hour on a folder
of negative audio, checked against the runtime's own events (`StreamingDetector`, as `edge run --wav`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_wav, write_wav
from edge.datasets import Recipe, load_dataset
from edge.detector import StreamingDetector
from edge.manifest import load_manifest
from edge.postprocess import PostprocessConfig
from export import wakeword
from export.cli import main as export_main


@pytest.fixture(scope="module")
def folders(sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Positives: real test-split "yes" clips (one file each). Negatives: real test-split other words, in
    three files of several words each (one WAV, the rest FLAC in a sub-folder: recursive, any format)."""
    import soundfile

    ds = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    test = ds.split("test")
    root = tmp_path_factory.mktemp("ww")
    pos, neg = root / "pos", root / "neg"
    (neg / "more").mkdir(parents=True)
    pos.mkdir()
    for i, c in enumerate([c for c in test if c.label == "yes"][:10]):
        write_wav(pos / f"yes{i}.wav", load_wav(c.path, 16000), 16000)
    others = [c for c in test if c.label in ("no", "_unknown_", "left")][:24]
    gap = np.zeros(3000, np.int16)
    for k in range(3):
        pcm = np.concatenate([np.concatenate([load_wav(c.path, 16000), gap]) for c in others[k * 8 : k * 8 + 8]])
        if k == 0:
            write_wav(neg / "n0.wav", pcm, 16000)
        else:
            soundfile.write(neg / "more" / f"n{k}.flac", pcm, 16000, subtype="PCM_16")
    return pos, neg


def runtime_events(art: Path, folder: Path, config: PostprocessConfig | None = None) -> list[list[str]]:
    det = StreamingDetector(art, "int8", postprocess=config)
    out = []
    for path in wakeword.folder_audio(folder):
        det.reset()
        out.append([e.label for e in det.process(load_wav(path, 16000))])
    return out


def test_figures_equal_the_runtime_events(artifacts: Path, folders: tuple[Path, Path]) -> None:
    pos, neg = folders
    m = load_manifest(artifacts)
    r = wakeword.evaluate(m, pos, neg, "int8", "yes", 1.0, progress=False)
    pos_events, neg_events = runtime_events(artifacts, pos), runtime_events(artifacts, neg)
    point = r["manifest_point"]
    assert point["detected"] == sum("yes" in ev for ev in pos_events) and point["positives"] == 10
    assert point["false_alarms"] == sum(len(ev) for ev in neg_events)
    assert r["negatives"]["files"] == 3 and r["positives"]["files"] == 10
    hours = r["negatives"]["seconds"] / 3600
    assert point["fa_per_hour"] == pytest.approx(point["false_alarms"] / hours)
    # a sweep point equals the runtime at that threshold for every keyword
    t = 0.5
    cfg = PostprocessConfig(m.postprocess.window, t, {}, m.postprocess.refractory)
    at = next(p for p in r["sweep"] if p["threshold"] == t)
    assert at["detected"] == sum("yes" in ev for ev in runtime_events(artifacts, pos, cfg))
    assert at["false_alarms"] == sum(len(ev) for ev in runtime_events(artifacts, neg, cfg))
    # (not monotonic in the threshold for a multi-keyword model: at a low threshold another keyword can fire
    # first and its refractory period hides "yes")
    recalls = [p["recall"] for p in r["sweep"]]
    assert max(recalls) > 0.5  # the real "yes" clips are found (the model is trained on the word)
    assert r["sweep"][-1]["false_alarms"] <= r["sweep"][0]["false_alarms"]
    best = r["best_within_target"]
    if best is not None:
        assert best["fa_per_hour"] <= 1.0 and all(p["recall"] <= best["recall"] for p in r["sweep"] if p["fa_per_hour"] <= 1.0)


def test_tail_streams_silence_after_each_positive(artifacts: Path, folders: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`--tail S` is the same as streaming each positive file with S seconds of zeros appended (the runtime on
    padded copies), and it touches only the positives."""
    pos, neg = folders
    m = load_manifest(artifacts)
    padded = tmp_path / "padded"
    padded.mkdir()
    for path in wakeword.folder_audio(pos):
        write_wav(padded / path.name, np.concatenate([load_wav(path, 16000), np.zeros(12000, np.int16)]), 16000)
    r = wakeword.evaluate(m, pos, neg, "int8", "yes", 1.0, progress=False, tail_s=0.75)
    plain = wakeword.evaluate(m, pos, neg, "int8", "yes", 1.0, progress=False)
    assert r["manifest_point"]["detected"] == sum("yes" in ev for ev in runtime_events(artifacts, padded))
    assert r["positives"]["seconds"] == pytest.approx(plain["positives"]["seconds"] + 10 * 0.75, abs=0.1)
    assert r["manifest_point"]["false_alarms"] == plain["manifest_point"]["false_alarms"]
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg),
                        "--keyword", "yes", "--tail", "0.75", "--quiet"]) == 0
    assert "each followed by 0.75 s of silence" in capsys.readouterr().out
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg),
                        "--tail", "-1"]) == 2  # a user error: one line, exit 2
    assert "--tail must be a finite number of at least 0" in capsys.readouterr().err


def test_cli_prints_text_and_json(artifacts: Path, folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    pos, neg = folders
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg),
                        "--keyword", "yes", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["keyword"] == "yes" and len(r["sweep"]) == len(wakeword.SWEEP)
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg),
                        "--keyword", "yes", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "at the manifest threshold" in out and "recall" in out


def test_threshold_set_on_calibration_negatives(artifacts: Path, folders: tuple[Path, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`--calibration-negatives DIR`: the lowest 0.01-grid threshold at which DIR and every higher threshold stay
    within floor(target x hours) false alarms, measured on the positives and negatives. With a copy of the
    negatives as DIR, their false alarms at that threshold are DIR's; DIR sharing files with them is refused."""
    pos, neg = folders
    m = load_manifest(artifacts)
    labels, fe, base = m.labels, m.frontend, m.postprocess
    cal = wakeword.folder_posteriors(neg, fe, wakeword.tflite_posteriors(m, "int8"), False, "cal")

    def events(t: float) -> int:
        return sum(wakeword.count_events(cal, labels, PostprocessConfig(base.window, t, {}, base.refractory), fe))

    for target in (0.0, 3600 * 3 / cal.seconds, 1e6):  # none, 3 and every false alarm allowed
        c = wakeword.calibrated_threshold(cal, labels, base, fe, target)
        assert c["allowed_false_alarms"] == int(target * cal.seconds / 3600 + 1e-9)
        t = c["threshold"]
        assert t is not None and all(events(u) <= c["allowed_false_alarms"] for u in wakeword.CALIBRATION_GRID if u >= t)
        assert t == wakeword.CALIBRATION_GRID[0] or events(round(t - 0.01, 2)) > c["allowed_false_alarms"]
        assert c["false_alarms"] == events(t)
    assert wakeword.calibrated_threshold(cal, labels, base, fe, 1e6)["threshold"] == wakeword.CALIBRATION_GRID[0]
    copy = tmp_path / "copy"
    for path in wakeword.folder_audio(neg):
        (copy / path.relative_to(neg)).parent.mkdir(parents=True, exist_ok=True)
        write_wav(copy / path.relative_to(neg), load_wav(path, 16000), 16000)
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg), "--keyword",
                        "yes", "--target-fa-per-hour", "0", "--calibration-negatives", str(copy), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    point, chosen = r["calibrated_point"], r["calibrated_point"]["calibration"]
    assert chosen["allowed_false_alarms"] == 0 and point["threshold"] == chosen["threshold"]
    assert point["false_alarms"] == chosen["false_alarms"] == 0
    cfg = PostprocessConfig(base.window, point["threshold"], {}, base.refractory)
    assert point["detected"] == sum("yes" in ev for ev in runtime_events(artifacts, pos, cfg))
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg), "--keyword",
                        "yes", "--calibration-negatives", str(copy), "--quiet"]) == 0
    assert f"at the threshold set on {copy}" in capsys.readouterr().out
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg), "--keyword",
                        "yes", "--calibration-negatives", str(neg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "shares files with --negatives" in err


@pytest.mark.parametrize("extra, message", [
    ([], "keywords"),  # several keywords and no --keyword
    (["--keyword", "marvin"], "not a keyword"),
    (["--keyword", "yes", "--variant", "int4"], "variant"),
])
def test_user_errors_are_one_line(artifacts: Path, folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                  extra: list[str], message: str) -> None:
    pos, neg = folders
    assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(neg), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_empty_or_missing_folders_are_refused(artifacts: Path, folders: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pos, _ = folders
    for bad in (tmp_path, tmp_path / "nope"):
        assert export_main(["wakeword", str(artifacts), "--positives", str(pos), "--negatives", str(bad),
                            "--keyword", "yes"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(bad) in err


def test_report_wants_negatives_with_positives(artifacts: Path, folders: tuple[Path, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pos, _ = folders
    assert export_main(["report", str(artifacts), "--out", str(tmp_path / "r"), "--positives", str(pos)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--positives needs --negatives" in err
    assert not (tmp_path / "r").exists()


def test_report_has_the_wakeword_section(artifacts: Path, sc_dir: Path, folders: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    from export import report as rep

    pos, neg = folders
    out = tmp_path / "r"
    assert rep.main([str(artifacts), "--out", str(out), "--data", str(sc_dir), "--minutes", "0.5", "--limit", "12",
                     "--bench-seconds", "0", "--quiet", "--positives", str(pos), "--negatives", str(neg),
                     "--keyword", "yes"]) == 0
    r = json.loads((out / "report.json").read_text())["models"][0]["wakeword"]
    direct = wakeword.evaluate(load_manifest(artifacts), pos, neg, "int8", "yes", 1.0, progress=False)
    assert r["manifest_point"] == direct["manifest_point"] and r["sweep"] == direct["sweep"]
    md = (out / "report.md").read_text()
    assert "### Real recordings: 'yes'" in md and "at the manifest threshold" in md
    # the negatives also give the one-stream false-alarm section (tests/test_falsealarms.py checks its figures)
    assert "### False alarms on audio without keywords" in md
