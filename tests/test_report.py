"""`python -m export report`: the detection sweep on synthetic streams with known answers, and a real report on
the session's exported artifacts, checked against `python -m edge eval --json`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from edge.errors import UserError
from edge.postprocess import PostprocessConfig
from export import report as rep
from export.longstream import Planted, score_by_label, score_events

from posterior_support import FE, LABELS, SCALE, burst_stream

REPO = Path(__file__).resolve().parents[1]
CLIP_LIMIT = 40
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- synthetic streams
_stream = burst_stream


def _known_case() -> tuple[rep.StreamPosteriors, list[Planted], float]:
    """60 s, four planted keywords. At threshold 0.6 (window 10 -> fire at a window sum >= ceil(0.6*10*256) =
    1536 units, reached on the 7th frame of a 255 burst) and refractory 100 frames:
      yes burst at 10.00 s, planted yes [10.0, 10.5]   -> hit (fires at frame 1006 = 10.09 s)
      yes burst at 20.00 s, planted no  [20.0, 20.6]   -> false alarm (wrong label) and a miss
      nothing,             planted yes [30.0, 30.5]    -> miss
      no burst at 40 s at level 128 (0.5), unplanted   -> false alarm only at thresholds <= 0.5
      no burst of 3 s at 50 s, planted no [50.0, 50.4] -> hit, then 2 more detections after the refractory
                                                          period (51.10 s, 52.11 s): false alarms
    """
    units = _stream(6000, [("yes", 1000, 30, 255), ("yes", 2000, 30, 255), ("no", 4000, 30, 128),
                           ("no", 5000, 300, 255)])
    planted = [Planted("yes", 10.0, 10.5), Planted("no", 20.0, 20.6), Planted("yes", 30.0, 30.5), Planted("no", 50.0, 50.4)]
    return rep.StreamPosteriors(units, SCALE, True, "synthetic", 0.0), planted, 60.0


def test_sweep_counts_hits_misses_and_false_alarms_exactly() -> None:
    post, planted, seconds = _known_case()
    base = PostprocessConfig(window=10, threshold=0.6, refractory=100)
    points = {p["threshold"]: p for p in rep.sweep(post, LABELS, base, [0.5, 0.6, 1.0], planted, seconds, FE)}
    hours = seconds / 3600
    assert (points[0.6]["hits"], points[0.6]["misses"], points[0.6]["false_alarms"]) == (2, 2, 3)
    # of the three, the yes at 20 s is said over the planted no: a substitution; the no repeats are not
    assert points[0.6]["substitutions"] == 1 and points[0.5]["substitutions"] == 1
    assert points[0.6]["fa_per_hour"] == pytest.approx(3 / hours)
    assert points[0.6]["recall"] == 0.5 and points[0.6]["frr"] == 0.5
    assert (points[0.5]["hits"], points[0.5]["false_alarms"]) == (2, 4)  # the level-128 burst now fires
    # 1.0 needs a window sum of 2560 units, above the 10 * 255 an int8 softmax can give: nothing fires
    assert (points[1.0]["hits"], points[1.0]["misses"], points[1.0]["false_alarms"]) == (0, 4, 0)
    # the events themselves, against score_events directly
    events = rep.fast_detect(rep.window_sums(post.units, 10), rep.make_detector(LABELS, base, post, FE))
    assert [(e.label, e.frame) for e in events] == [("yes", 1006), ("yes", 2006), ("no", 5006), ("no", 5107), ("no", 5208)]
    assert events[0].time_s == pytest.approx(10.09)
    s = score_events([(e.label, e.time_s) for e in events], planted, seconds)
    assert (s.hits, s.misses, s.false_alarms, s.keywords) == (2, 2, 3, 4)


def test_substitutions_are_wrong_keywords_over_a_planted_keyword() -> None:
    """A wrong label inside a planted keyword's window [start, end + 1 s] is a substitution; a repeat of the
    right keyword there, or a detection between keywords, is a false alarm but not a substitution. Per label,
    the planted keywords of the other labels still define where a substitution is."""
    planted = [Planted("yes", 1.0, 1.5), Planted("no", 5.0, 5.5)]
    detections = [("no", 1.2),   # over the planted yes: substitution
                  ("yes", 1.3),  # hit
                  ("yes", 1.4),  # the same yes again: false alarm, not a substitution
                  ("yes", 3.0),  # between the keywords: false alarm, not a substitution
                  ("yes", 6.4),  # inside no's window (end 5.5 + 1 s): substitution
                  ("no", 6.6)]   # past no's window: false alarm; the no itself is missed
    s = score_events(detections, planted, 3600.0)
    assert (s.hits, s.misses, s.false_alarms, s.substitutions) == (1, 1, 5, 2)
    per = score_by_label(detections, planted, ["yes", "no"], 3600.0)
    assert (per["yes"].hits, per["yes"].false_alarms, per["yes"].substitutions) == (1, 3, 1)
    assert (per["no"].hits, per["no"].false_alarms, per["no"].substitutions) == (0, 2, 1)
    assert sum(v.substitutions for v in per.values()) == s.substitutions


def test_frr_at_fa_takes_the_best_threshold_within_the_target() -> None:
    post, planted, seconds = _known_case()
    base = PostprocessConfig(window=10, threshold=0.6, refractory=100)
    points = rep.sweep(post, LABELS, base, [0.5, 0.6, 1.0], planted, seconds, FE)
    # 3 false alarms in 60 s = 180 FA/h (threshold 0.6), 4 = 240 FA/h (0.5), 0 (1.0)
    assert rep.frr_at_fa(points, 0.5) == {"target": 0.5, "threshold": 1.0, "frr": 1.0, "fa_per_hour": 0.0, "false_alarms": 0}
    assert rep.frr_at_fa(points, 200.0)["threshold"] == 0.6
    assert rep.frr_at_fa(points, 250.0)["frr"] == 0.5  # 0.5 and 0.6 tie on FRR: the lower threshold wins
    assert rep.frr_at_fa(points, 250.0)["threshold"] == 0.5
    assert rep.frr_at_fa([p for p in points if p["threshold"] < 1.0], 1.0) is None


@pytest.mark.parametrize("integer", [True, False])
def test_fast_detect_equals_the_detector_frame_by_frame(integer: bool) -> None:
    """The vectorized sweep must give exactly the events `Detector.update` gives (labels, frames, times, scores)."""
    rng = np.random.default_rng(3)
    T = 4000
    logits = rng.normal(0, 1, (T, len(LABELS)))
    for start in rng.integers(0, T - 60, 40):  # keyword-like bursts so that detections happen
        logits[start : start + int(rng.integers(5, 60)), int(rng.integers(1, 4))] += rng.uniform(2, 6)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    units = np.rint(probs * 256).clip(0, 255).astype(np.int64) if integer else probs.astype(np.float32).astype(np.float64)
    post = rep.StreamPosteriors(units, SCALE if integer else 1.0, integer, "synthetic", 0.0)
    for cfg in (PostprocessConfig(10, 0.3, {}, 50), PostprocessConfig(10, 0.6, {"no": 0.4}, 100),
                PostprocessConfig(7, 0.8, {}, 0)):
        reference = rep.make_detector(LABELS, cfg, post, FE)
        expected = [e for e in (reference.update(u) for u in units) if e is not None]
        got = rep.fast_detect(rep.window_sums(units, cfg.window), rep.make_detector(LABELS, cfg, post, FE))
        assert expected, "the synthetic stream must produce detections"
        assert got == expected


def _report_dir(path: Path, *files: str) -> Path:
    """A folder as `write_report` leaves it: its files, then the marker listing them."""
    path.mkdir()
    for name in files or ("report.json", "report.md", "det.png"):
        (path / name).write_text(name)
    rep.write_marker(path)
    return path


def test_install_dir_replaces_an_earlier_report_only_with_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _report_dir(tmp_path / "rep")
    new = _report_dir(tmp_path / "new", "report.md")
    with pytest.raises(UserError, match="--force"):
        rep.install_dir(new, out)
    assert (out / "report.json").is_file() and new.is_dir()  # nothing moved
    rep.install_dir(new, out, force=True)
    assert "replacing" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [rep.MARKER, "report.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary or old folder left
    empty = tmp_path / "empty"
    empty.mkdir()
    rep.check_out_dir(empty)  # an empty folder and a new path need no --force
    rep.check_out_dir(tmp_path / "new")


def _foreign_file(d: Path) -> str:
    (d / "notes.txt").write_text("keep")
    return "did not write"


def _symlinked_file(d: Path) -> str:
    (d / "report.md").unlink()
    (d / "report.md").symlink_to(d.parent / "precious.txt")  # named in the marker, but not the report's file
    return "did not write"


def _no_marker(d: Path) -> str:
    (d / rep.MARKER).unlink()  # the case: a report.json alone proves nothing
    return "not a report folder"


def _symlinked_marker(d: Path) -> str:
    (d.parent / "marker").write_bytes((d / rep.MARKER).read_bytes())
    (d / rep.MARKER).unlink()
    (d / rep.MARKER).symlink_to(d.parent / "marker")
    return "not a report folder"


@pytest.mark.parametrize("spoil", [_foreign_file, _symlinked_file, _no_marker, _symlinked_marker])
def test_out_dir_with_anything_else_is_refused_even_with_force(tmp_path: Path, spoil: Callable[[Path], str]) -> None:
    (tmp_path / "precious.txt").write_text("keep")
    out = _report_dir(tmp_path / "rep")
    message = spoil(out)
    before = sorted(p.name for p in out.iterdir())
    new = _report_dir(tmp_path / "new", "report.md")
    with pytest.raises(UserError, match=message):
        rep.install_dir(new, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == before and (tmp_path / "precious.txt").read_text() == "keep"


def test_current_home_and_linked_folders_are_never_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each of these is a valid earlier report, so only the specific guard can refuse it."""
    out = _report_dir(tmp_path / "rep")
    (tmp_path / "link").symlink_to(out)
    monkeypatch.chdir(out)
    for path, message in [(Path("."), "by name"), (Path("../rep"), "current folder"), (tmp_path / "link", "symbolic link")]:
        with pytest.raises(UserError, match=message):
            rep.check_out_dir(path, force=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(out))
    with pytest.raises(UserError, match="home folder"):
        rep.check_out_dir(out, force=True)
    assert (out / "report.json").is_file()


def test_cli_refuses_the_out_dir_before_any_evaluation(tmp_path: Path) -> None:
    """The issue's case on the command line: the refusal comes before the (missing) artifacts are even read."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / "notes.txt").write_text("keep")
    earlier = _report_dir(tmp_path / "earlier")
    for folder, needle in [(out, "not a report folder"), (earlier, "pass --force")]:
        args = [str(tmp_path / "missing"), "--out", str(folder)] + (["--force"] if folder is out else [])
        r = subprocess.run([sys.executable, "-m", "export", "report", *args], cwd=REPO, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith(f"error: {folder}") and len(r.stderr.splitlines()) == 1 and needle in r.stderr
    assert (out / "notes.txt").read_text() == "keep" and (earlier / "report.json").is_file()


def test_user_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "export", "report", str(tmp_path / "missing"), "--out", str(tmp_path / "o")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- a real report
@pytest.fixture(scope="module")
def small_report(artifacts: Path, sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    """Two artifacts folders (the fixture's and a copy: comparison mode), 1-minute stream, 40 clips."""
    root = tmp_path_factory.mktemp("report")
    twin = root / "kws_twin"
    shutil.copytree(artifacts, twin)
    out = root / "out"
    code = rep.main([str(artifacts), str(twin), "--out", str(out), "--data", str(sc_dir), "--minutes", "1",
                     "--limit", str(CLIP_LIMIT), "--bench-seconds", "0.5", "--quiet"])
    assert code == 0
    return out, json.loads((out / "report.json").read_text()), artifacts


def _is_png(path: Path) -> bool:
    import matplotlib.image

    if path.read_bytes()[:8] != PNG_SIGNATURE:
        return False
    img = matplotlib.image.imread(path)
    return img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_report_json_schema(small_report: tuple[Path, dict, Path]) -> None:
    _, r, _ = small_report
    assert r["schema_version"] == 1 and isinstance(r["created_utc"], str)
    assert set(r["settings"]) >= {"minutes", "seed", "thresholds", "fa_targets", "limit", "split", "tflm_minutes",
                                  "bench_seconds", "frr_at_fa_method"}
    assert len(r["models"]) == 2 and len(r["comparison"]) == 2 and isinstance(r["comparison_plot"], str)
    point_keys = {"threshold", "hits", "misses", "false_alarms", "substitutions", "keywords", "recall", "frr", "fa_per_hour"}
    for m in r["models"]:
        assert set(m) >= {"name", "artifacts", "run", "data", "recipe", "split", "labels", "model", "reference",
                          "summary", "stream", "variants", "firmware", "plots"}
        assert m["reference"] == "pytorch_float"
        assert m["summary"].startswith("int8 costs ") and " pp FRR@1FA/h, saves " in m["summary"]
        assert set(m["variants"]) == {"pytorch_float", "tflite_float32", "tflite_int8", "tflite_int16x8", "tflm_int8"}
        assert m["stream"]["keywords"] > 0 and m["stream"]["frames"] > 5000  # 1 minute = 5998 frames
        for key, v in m["variants"].items():
            assert isinstance(v["clips"]["accuracy"], float) and v["clips"]["clips"] == CLIP_LIMIT
            assert isinstance(v["standard"]["accuracy"], float) and v["standard"]["clips"] == CLIP_LIMIT
            assert v["standard"]["protocol"].startswith("12-class argmax")
            assert np.asarray(v["clips"]["confusion"]).shape == (len(m["labels"]),) * 2
            assert set(v["agreement"]) == {"clip", "frame_clips", "frame_stream"}
            assert all(0.0 <= x <= 1.0 for x in v["agreement"].values())
            assert set(v["operating_point"]) == point_keys
            assert len(v["det"]) == len(r["settings"]["thresholds"]) and all(set(p) == point_keys for p in v["det"])
            assert set(v["frr_at_fa"]) == {"0.5", "1.0"}
            assert isinstance(v["size"]["file_bytes"], int) and v["size"]["file_bytes"] > 0
            assert (v["latency_us"] is None) == (key == "pytorch_float")
            assert v["stream"]["shortened"] is False
        ref = m["variants"][m["reference"]]
        assert ref["agreement"] == {"clip": 1.0, "frame_clips": 1.0, "frame_stream": 1.0}
        # TFLite float32 equals PyTorch within 1e-4 in probability (export's gate); a clip decision sitting
        # exactly on a threshold could still flip, so allow 2 of 40 clips.
        assert m["variants"]["tflite_float32"]["agreement"]["clip"] >= 0.95
        assert m["variants"]["tflite_int8"]["size"]["tflm_arena_bytes"] > 0


def test_report_files_and_plots(small_report: tuple[Path, dict, Path]) -> None:
    out, r, _ = small_report
    pngs = [p for m in r["models"] for p in m["plots"].values()] + [r["comparison_plot"]]
    assert len(pngs) == 9 and len(set(pngs)) == 9  # 4 per model + the comparison, names unique
    for name in pngs:
        assert _is_png(out / name), name
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert md.startswith("# Accuracy vs quantization") and "## Comparison" in md and r["models"][0]["summary"] in md
    assert "| standard accuracy |" in md and "int8 standard acc" in md and "standard accuracy</th>" in html
    assert html.count('src="data:image/png;base64,') == 9 and 'src="' not in html.replace('src="data:', "")
    assert not list(out.parent.glob(".out.*")), "temporary folder left behind"


def test_report_int8_figures_equal_edge_eval(small_report: tuple[Path, dict, Path], sc_dir: Path) -> None:
    _, r, artifacts = small_report
    cmd = [sys.executable, "-m", "edge", "eval", "--model", str(artifacts), "--data", str(sc_dir), "--variant", "int8",
           "--json", "--limit", str(CLIP_LIMIT)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads(proc.stdout)
    mine = r["models"][0]["variants"]["tflite_int8"]
    assert mine["runtime"] == ev["runtime"]
    for key in ("accuracy", "clips", "per_class", "confusion", "labels"):
        assert mine["clips"][key] == ev[key], key
    assert mine["standard"] == ev["standard"]


def test_run_test_metrics_carry_the_standard_figure(trained_run: Path, artifacts: Path, sc_dir: Path) -> None:
    """`train` writes the standard figure of the test split into config.json: PyTorch's, which TFLite float32
    reproduces (probabilities within 1e-4, export's gate) up to a rare argmax tie: 3 of 586 clips allowed."""
    test = json.loads((trained_run / "config.json").read_text())["metrics"]["test"]
    cmd = [sys.executable, "-m", "edge", "eval", "--model", str(artifacts), "--data", str(sc_dir), "--variant", "float32",
           "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads(proc.stdout)["standard"]
    assert test["standard"]["clips"] == ev["clips"] and test["standard"]["protocol"] == ev["protocol"]
    assert abs(test["standard"]["accuracy"] - ev["accuracy"]) * ev["clips"] <= 3


def test_report_on_a_jordan_network(jordan_artifacts: Path, sc_dir: Path, tmp_path: Path) -> None:
    """`export report` needs nothing new for a Jordan network. PyTorch's `forward` over the whole stream (the
    report's reference) and the exported models stepped frame by frame agree: TFLite float32 on every stream
    frame up to rare argmax ties (probabilities within 1e-4, the export's gate; 1 % of frames allowed), int8
    like the export's own int8 gate."""
    from export.pipeline import ExportOptions

    out = tmp_path / "report"
    code = rep.main([str(jordan_artifacts), "--out", str(out), "--data", str(sc_dir), "--minutes", "1",
                     "--limit", str(CLIP_LIMIT), "--bench-seconds", "0.5", "--quiet"])
    assert code == 0
    (m,) = json.loads((out / "report.json").read_text())["models"]
    assert m["model"]["cell"] == "jordan"
    assert set(m["variants"]) == {"pytorch_float", "tflite_float32", "tflite_int8", "tflite_int16x8", "tflm_int8"}
    assert m["variants"]["tflite_float32"]["agreement"]["frame_stream"] >= 0.99
    assert m["variants"]["tflite_int8"]["agreement"]["frame_stream"] >= ExportOptions().min_agreement
    assert m["variants"]["tflite_int8"]["size"]["tflm_arena_bytes"] > 0
