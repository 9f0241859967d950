"""The operating point chosen at export (`export/calibrate.py`): per-keyword thresholds for a target false-alarm
rate. The rule on synthetic streams with known answers and against `Detector.update` frame by frame, then on the
session's exported artifacts: the manifest's thresholds meet the target on the calibration stream, each is the
lowest that does, and `edge run` and the firmware settings use them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.manifest import load_manifest
from edge.postprocess import Detector, PostprocessConfig, grid_threshold, integer_threshold, keyword_labels
from export import calibrate as cal
from export import report as rep
from export.cli import main as export_main
from export.longstream import LongStream, Planted, build_long_stream, score_events

from posterior_support import FE, LABELS, SCALE, burst_stream

REPO = Path(__file__).resolve().parents[1]
KEYWORDS = ["yes", "no"]
BASE = PostprocessConfig(window=10, threshold=0.6, refractory=100)


_stream = burst_stream


def _post(units: np.ndarray) -> rep.StreamPosteriors:
    return rep.StreamPosteriors(units, SCALE, True, "synthetic", 0.0)


def _false_alarms_by_update(units: np.ndarray, labels: list[str], config: PostprocessConfig,
                            planted: list[Planted], seconds: float) -> dict[str, int]:
    """Per-keyword false alarms of `edge.postprocess.Detector.update` run frame by frame (the reference the
    vectorised search must agree with)."""
    det = Detector(labels, config, scale=SCALE, integer=True, hop_s=FE.hop_ms / 1000, window_s=FE.window_ms / 1000)
    events = [e for e in (det.update(u) for u in units) if e is not None]
    return {k: score_events([(e.label, e.time_s) for e in events if e.label == k], [p for p in planted if p.label == k],
                            seconds).false_alarms for k in keyword_labels(labels)}


# ----------------------------------------------------------------------------- the rule, synthetic
def test_allowed_false_alarms_is_the_floor_of_the_budget() -> None:
    # 1 FA/h: 20 minutes allow no false alarm, an hour one, ten hours ten (all keywords together)
    assert cal.allowed_false_alarms(1.0, 20 * 60) == 0
    assert cal.allowed_false_alarms(1.0, 3600) == 1
    assert cal.allowed_false_alarms(1.0, 10 * 3600) == 10
    assert cal.allowed_false_alarms(0.5, 2 * 3600) == 1  # exactly 1.0: the 1e-9 guard keeps float noise out
    assert cal.allowed_false_alarms(6.0, 1800) == 3


def test_grid_threshold_round_trips_through_integer_threshold() -> None:
    for window in (1, 7, 10, 25):
        for limit in range(1, window * 255 + 1):
            assert integer_threshold(grid_threshold(limit, window, SCALE), window, SCALE) == limit


YES_HIT, NO_HIT = ("yes", 1000, 30, 255), ("no", 5000, 30, 255)  # planted words (10 s, 50 s), found at any limit
YES_FA, NO_FA = ("yes", 3000, 30, 128), ("no", 7000, 30, 200)  # unplanted: window sums up to 1280 and 2000
CASES = {
    # no: another unplanted burst at 150 (sum 1500); yes and no each hit their planted word without a false alarm
    "each hits alone": ([YES_HIT, YES_FA, NO_HIT, NO_FA, ("no", 9000, 30, 150)], ["yes@10", "no@50"]),
    # no's only planted word (level 200) hides below a false alarm at the posterior's ceiling (sum 2550)
    "ceiling": ([YES_HIT, YES_FA, ("no", 5000, 30, 200), ("no", 7000, 30, 255)], ["yes@10", "no@50"]),
    # a planted yes at 100 hides below yes's false alarm, two planted no (150, 120) below no's
    "more behind no": ([YES_HIT, YES_FA, ("yes", 4000, 30, 100), NO_HIT, NO_FA, ("no", 8000, 30, 150),
                        ("no", 9000, 30, 120)], ["yes@10", "yes@40", "no@50", "no@80", "no@90"]),
}


def _case(name: str) -> tuple[rep.StreamPosteriors, list[Planted], float]:
    """600 s of `burst_stream`; each planted word spans the 0.5 s from its burst's start."""
    bursts, planted = CASES[name]
    at = [(p.split("@")[0], float(p.split("@")[1])) for p in planted]
    return _post(_stream(60000, bursts)), [Planted(label, t, t + 0.5) for label, t in at], 600.0


@pytest.mark.parametrize("name,budget,limits,shares,hits", [
    ("each hits alone", 0, {"yes": 1281, "no": 2001}, {"yes": 0, "no": 0}, 2),  # just above each highest false alarm
    ("each hits alone", 2, {"yes": 1281, "no": 2001}, {"yes": 0, "no": 0}, 2),  # nothing more to find: budget unspent
    ("ceiling", 0, {"yes": 1281, "no": 2551}, {"yes": 0, "no": 0}, 1),  # no is silenced: nothing within the budget
    ("ceiling", 1, {"yes": 1281, "no": 1}, {"yes": 0, "no": 1}, 2),  # the one false alarm goes to the silenced keyword
    ("more behind no", 1, {"yes": 1281, "no": 1}, {"yes": 0, "no": 1}, 4),  # no gains two hits for it, yes one
    ("more behind no", 2, {"yes": 1, "no": 1}, {"yes": 1, "no": 1}, 5),
])
def test_known_cases_share_the_budget(name: str, budget: int, limits: dict[str, int], shares: dict[str, int],
                                      hits: int) -> None:
    post, planted, seconds = _case(name)
    got, given, steps = cal.choose_limits(post, LABELS, BASE, planted, seconds, FE, budget)
    assert (got, given, steps) == (limits, shares, {"yes": 0, "no": 0})
    cfg = cal.with_limits(BASE, got, SCALE)
    assert cfg.thresholds["no"] == pytest.approx(limits["no"] / 2560, abs=1e-15)
    # the real detector at the chosen thresholds: every keyword within its share, the budget kept in all
    fa = _false_alarms_by_update(post.units, LABELS, cfg, planted, seconds)
    assert all(fa[k] <= shares[k] for k in fa) and sum(fa.values()) <= budget, fa
    events = rep.fast_detect(rep.window_sums(post.units, 10), rep.make_detector(LABELS, cfg, post, FE))
    s = score_events([(e.label, e.time_s) for e in events], planted, seconds)
    assert s.false_alarms == sum(fa.values())
    assert s.hits == hits


def _brute_force_shares(ladders: dict[str, list[cal.Rung]], budget: int) -> tuple[int, int, int]:
    """The best (-keywords without a hit, hits, -false alarms allowed) over every way to share the budget."""
    import itertools

    best = None
    for combo in itertools.product(*(range(len(r)) for r in ladders.values())):
        if sum(combo) > budget:
            continue
        rungs = [r[n] for r, n in zip(ladders.values(), combo)]
        score = (-sum(r.hits == 0 for r in rungs), sum(r.hits for r in rungs), -sum(combo))
        best = score if best is None or score > best else best
    return best


def test_share_budget_finds_the_best_sharing() -> None:
    """Against every way to share the budget, on random ladders (hits grow with the false alarms allowed);
    and never worse than the equal share floor(budget / keywords) each: no more keywords without a hit, and
    at as many without one, no fewer hits."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        budget = int(rng.integers(0, 5))
        ladders = {}
        for k in ("a", "b", "c", "d")[: int(rng.integers(1, 5))]:
            hits = np.cumsum(rng.integers(0, 3, budget + 1))
            ladders[k] = [cal.Rung(n, 1000 - n, int(h), n) for n, h in enumerate(hits)]
        shares = cal.share_budget(ladders, budget)
        assert sum(shares.values()) <= budget
        rungs = [ladders[k][n] for k, n in shares.items()]
        score = (-sum(r.hits == 0 for r in rungs), sum(r.hits for r in rungs), -sum(shares.values()))
        assert score == _brute_force_shares(ladders, budget)
        equal = [r[budget // len(ladders)] for r in ladders.values()]  # one of the candidates
        assert score[:2] >= (-sum(r.hits == 0 for r in equal), sum(r.hits for r in equal))


def test_interaction_between_keywords_is_caught() -> None:
    """`no` fires at 9.43 s (a hit) and its refractory period swallows yes's planted word at 10.0 s, so yes's
    later burst at 10.6 s (past its planted word's 1 s tolerance) fires as a false alarm, which it never does
    alone (there its own hit's refractory swallows it). The search must raise yes until it is gone: past
    every window sum its bursts reach (255 .. 2550, ten steps)."""
    units = _stream(20000, [("no", 940, 10, 255), ("yes", 1000, 10, 255), ("yes", 1060, 10, 255)])
    planted = [Planted("no", 9.3, 9.5), Planted("yes", 9.0, 9.5)]
    limits, shares, steps = cal.choose_limits(_post(units), LABELS, BASE, planted, 200.0, FE, 0)
    assert limits == {"yes": 2551, "no": 1} and steps == {"yes": 10, "no": 0} and shares == {"yes": 0, "no": 0}
    fa = _false_alarms_by_update(units, LABELS, cal.with_limits(BASE, limits, SCALE), planted, 200.0)
    assert fa == {"yes": 0, "no": 0}
    # without the raise, the joint detector has yes's false alarm (what the guard exists for)
    assert _false_alarms_by_update(units, LABELS, cal.with_limits(BASE, {"yes": 1, "no": 1}, SCALE), planted, 200.0)["yes"] == 1


@pytest.mark.parametrize("budget", [0, 2])
def test_random_streams_meet_the_budget_with_the_lowest_limits(budget: int) -> None:
    """Against `Detector.update` frame by frame: at the chosen limits no keyword exceeds its share of the
    false alarms, and one grid step lower (that keyword alone, as the rule defines) it does, unless the limit
    is already 1."""
    rng = np.random.default_rng(7)
    T = 6000
    logits = rng.normal(0, 1, (T, len(LABELS)))
    planted = []
    for start in rng.integers(0, T - 60, 50):  # keyword-like bursts; every other one is a planted word
        label = int(rng.integers(2, 4))
        logits[start : start + int(rng.integers(5, 40)), label] += rng.uniform(2, 6)
        if rng.random() < 0.5:
            planted.append(Planted(LABELS[label], start * 0.01, start * 0.01 + 0.4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    units = np.rint(probs * 256).clip(0, 255).astype(np.int64)
    seconds = T / 100
    limits, shares, steps = cal.choose_limits(_post(units), LABELS, BASE, planted, seconds, FE, budget)
    assert sum(shares.values()) <= budget
    fa = _false_alarms_by_update(units, LABELS, cal.with_limits(BASE, limits, SCALE), planted, seconds)
    assert all(fa[k] <= shares[k] for k in fa), (limits, shares, fa)
    checked = 0
    for k in KEYWORDS:
        alone = {k: limits[k]}
        assert _false_alarms_by_update(units[:, [LABELS.index(k)]], [k], cal.with_limits(BASE, alone, SCALE),
                                       planted, seconds)[k] <= shares[k]
        if steps[k] == 0 and limits[k] > 1:
            lower = cal.with_limits(BASE, {k: limits[k] - 1}, SCALE)
            assert _false_alarms_by_update(units[:, [LABELS.index(k)]], [k], lower, planted, seconds)[k] > shares[k]
            checked += 1
    assert checked, "the stream must exercise the one-step-lower check"


# ----------------------------------------------------------------------------- the flag
@pytest.mark.parametrize("flag,value", [("--target-fa-per-hour", "0"), ("--target-fa-per-hour", "-1"),
                                        ("--target-fa-per-hour", "nan"), ("--target-fa-per-hour", "inf"),
                                        ("--target-fa-per-hour", "lots"), ("--threshold-minutes", "0")])
def test_bad_flag_values_give_one_line_and_exit_2(flag: str, value: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc = export_main(["build", str(tmp_path / "no-run"), "--out", str(tmp_path / "art"), flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {flag} must be a finite number above 0"), err
    assert not (tmp_path / "art").exists()


def test_bad_flag_from_the_command_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "export", str(tmp_path / "no-run"), "--out", str(tmp_path / "a"),
                        "--target-fa-per-hour", "nan"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == ["error: --target-fa-per-hour must be a finite number "
                                                                  "above 0, got 'nan'"], r.stderr


# ----------------------------------------------------------------------------- the exported artifacts
@pytest.fixture(scope="module")
def calibration(artifacts: Path, trained_run: Path) -> tuple[dict, rep.StreamPosteriors, LongStream]:
    """The manifest's operating point, and its calibration stream rebuilt (as `report.build_stream` builds it)
    and run through int8 once more."""
    from export.pipeline import run_dataset
    from train.trainer import load_run

    manifest = load_manifest(artifacts)
    op = manifest.data["operating_point"]
    stream = build_long_stream(run_dataset(load_run(trained_run)), op["split"], op["minutes"] * 60.0, op["seed"],
                               rate=manifest.frontend.sample_rate)
    feats = rep.stream_features(stream.pcm, manifest.frontend, False)
    post = rep.posteriors_tflite(manifest, next(v for v in rep.VARIANTS if v.key == "tflite_int8"), feats, False)
    return op, post, stream


def test_manifest_carries_the_operating_point(artifacts: Path) -> None:
    manifest = load_manifest(artifacts)
    op, post = manifest.data["operating_point"], manifest.postprocess
    keywords = keyword_labels(manifest.labels)
    assert op["split"] == "validation" and op["variant"] == "int8" and op["target_fa_per_hour"] == 1.0
    assert op["allowed_false_alarms"] == cal.allowed_false_alarms(1.0, op["seconds"])
    assert sum(op["keywords"][k]["allowed_false_alarms"] for k in keywords) <= op["allowed_false_alarms"]
    assert sorted(post.thresholds) == sorted(keywords) == sorted(op["keywords"])
    scale = manifest.variant("int8").output("probs")["scale"]
    for k in keywords:
        t = post.thresholds[k]
        assert t == op["keywords"][k]["threshold"]
        assert integer_threshold(t, post.window, scale) == op["keywords"][k]["limit"]  # on the int8 grid
        assert grid_threshold(op["keywords"][k]["limit"], post.window, scale) == t
    assert op["total"]["fa_per_hour"] <= op["target_fa_per_hour"]


def test_thresholds_meet_the_target_on_the_calibration_stream(artifacts: Path, calibration) -> None:
    op, post, stream = calibration
    manifest = load_manifest(artifacts)
    assert stream.seconds == pytest.approx(op["seconds"], abs=1e-3)
    events = rep.fast_detect(rep.window_sums(post.units, manifest.postprocess.window),
                             rep.make_detector(manifest.labels, manifest.postprocess, post, manifest.frontend))
    total = score_events([(e.label, e.time_s) for e in events], stream.events, stream.seconds)
    assert total.fa_per_hour <= op["target_fa_per_hour"]
    assert (total.hits, total.false_alarms) == (op["total"]["hits"], op["total"]["false_alarms"])
    per = cal.scores_by_label(events, stream.events, keyword_labels(manifest.labels), stream.seconds)
    for k, s in per.items():
        assert s.false_alarms <= op["keywords"][k]["allowed_false_alarms"]
        assert (s.hits, s.false_alarms) == (op["keywords"][k]["hits"], op["keywords"][k]["false_alarms"])


def test_each_threshold_is_the_lowest_that_meets_it(artifacts: Path, calibration) -> None:
    """One grid step lower, the keyword alone has more false alarms than allowed (or the limit is already 1)."""
    op, post, stream = calibration
    manifest = load_manifest(artifacts)
    base = manifest.postprocess
    sums = rep.window_sums(post.units, base.window)
    checked = 0
    for k, entry in op["keywords"].items():
        col = sums[:, [manifest.labels.index(k)]]
        assert cal.single_false_alarms(col, k, entry["limit"], post, base, stream.events, stream.seconds,
                                       manifest.frontend) <= entry["allowed_false_alarms"]
        if entry["limit"] > 1 and entry["interaction_steps"] == 0:
            assert cal.single_false_alarms(col, k, entry["limit"] - 1, post, base, stream.events, stream.seconds,
                                           manifest.frontend) > entry["allowed_false_alarms"]
            checked += 1
    assert checked, "no keyword's limit could be checked one step lower"


def test_edge_run_and_firmware_settings_use_the_thresholds(artifacts: Path, calibration, tmp_path: Path) -> None:
    """`edge run` on the calibration stream gives exactly the calibration's events, and the generated firmware
    settings carry the same integer limits."""
    from export import codegen

    op, post, stream = calibration
    manifest = load_manifest(artifacts)
    wav = tmp_path / "calibration.wav"
    sf.write(wav, stream.pcm, stream.rate, subtype="PCM_16")
    r = subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(artifacts), "--wav", str(wav), "--json"],
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    got = [(d["label"], d["frame"]) for d in map(json.loads, r.stdout.splitlines())]
    expected = rep.fast_detect(rep.window_sums(post.units, manifest.postprocess.window),
                               rep.make_detector(manifest.labels, manifest.postprocess, post, manifest.frontend))
    assert expected, "the calibration stream must produce detections"
    assert got == [(e.label, e.frame) for e in expected]
    # ... which the one default threshold does not give: the comparison tells the two apart
    default = PostprocessConfig(manifest.postprocess.window, manifest.postprocess.threshold, {},
                                manifest.postprocess.refractory)
    assert got != [(e.label, e.frame) for e in rep.fast_detect(rep.window_sums(post.units, default.window),
                                                                 rep.make_detector(manifest.labels, default, post,
                                                                                   manifest.frontend))]
    gen = codegen.generate_from_artifacts(artifacts, tmp_path / "fw")
    limits = dict(zip(manifest.labels, gen.settings.limits))
    assert {k: limits[k] for k in op["keywords"]} == {k: v["limit"] for k, v in op["keywords"].items()}
    header = next(p for p in gen.files if p.name == "kws_settings.h").read_text()
    assert re.search(r"#define KWS_DETECT_LIMITS \{(.*)\}", header).group(1).split(", ") == [str(v) for v in gen.settings.limits]


def test_summary_warns_about_keywords_left_without_recall() -> None:
    from export.calibrate import silenced_keywords, summary_line

    kw = {"yes": {"threshold": 0.9, "planted": 10, "hits": 7}, "stop": {"threshold": 0.996, "planted": 8, "hits": 0},
          "go": {"threshold": 0.9, "planted": 0, "hits": 0}}  # nothing planted: nothing to say about recall
    assert silenced_keywords(kw) == ["stop"]
    section = {"keywords": kw, "total": {"recall": 7 / 18, "fa_per_hour": 0.0, "false_alarms": 0},
               "target_fa_per_hour": 1.0, "seconds": 3600.0, "split": "validation",
               "allowed_false_alarms": 0, "fa_per_hour_resolution": 1.0}
    line = summary_line(section)
    assert "WARNING: stop detect(s) nothing" in line and "\n" not in line
    kw["stop"]["hits"] = 1
    assert "WARNING" not in summary_line(section)
