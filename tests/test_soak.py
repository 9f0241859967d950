"""`python -m export soak`: block plan, block attribution of hits and false alarms, the reset policy, and a short
real soak run of the exported int8 model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.detector import StreamingDetector
from edge.errors import UserError
from export import soak
from export.longstream import Planted, score_events

REPO = Path(__file__).resolve().parents[1]


def test_plan_blocks_and_replayed_last_block() -> None:
    block_s, pieces = soak.plan(60, seed=7)
    assert block_s == 600 and len(pieces) == 60 and {p.block for p in pieces} == set(range(6))
    assert sum(p.seconds for p in pieces) == 3600
    first = [p.seed for p in pieces if p.block == 0]
    last = [p.seed for p in pieces if p.block == 5]
    middle = [p.seed for p in pieces if 0 < p.block < 5]
    assert first == last and not set(first) & set(middle) and len(set(middle)) == len(middle)
    assert [p.start_s for p in pieces] == [60.0 * i for i in range(60)]
    block_s, pieces = soak.plan(3, seed=7)  # short runs: two halves of 90 s, pieces of 60 + 30 s
    assert block_s == 90 and [p.seconds for p in pieces] == [60, 30, 60, 30]
    for bad in (1, 25):
        with pytest.raises(UserError):
            soak.plan(bad, seed=7)


def test_match_agrees_with_score_events() -> None:
    """The per-event matching used for block attribution counts exactly what score_events counts."""
    rng = np.random.default_rng(5)
    labels = ["yes", "no", "up"]
    for _ in range(200):
        planted = []
        t = 0.0
        for _ in range(int(rng.integers(0, 8))):
            t += float(rng.uniform(0.2, 3.0))
            planted.append(Planted(labels[rng.integers(3)], t, t + float(rng.uniform(0.2, 0.8))))
        dets = [(labels[rng.integers(3)], float(rng.uniform(0, t + 2))) for _ in range(int(rng.integers(0, 10)))]
        hits, fa = soak.match(dets, planted)
        s = score_events(dets, planted, 60.0)
        assert (sum(hits), len(planted) - sum(hits), sum(fa)) == (s.hits, s.misses, s.false_alarms)


def test_saturation_check_growth_and_clippable_share() -> None:
    def rows(sat: list[float], clip: list[float | None]) -> list[dict]:
        return [{"saturation": s, "clip_saturation": c} for s, c in zip(sat, clip)]

    # bounded GRU h pinned at 6 %: saturated units, not clips; steady -> pass
    assert soak.saturation_check(rows([0.06, 0.061], [None, None]))["passed"]
    # growing by more than 1 pp over the run -> fail, whatever the tensors
    assert not soak.saturation_check(rows([0.01, 0.025], [None, None]))["passed"]
    # values that may be clips (e.g. an LSTM cell state) above 5 % in some block -> fail
    assert not soak.saturation_check(rows([0.03, 0.03], [0.02, 0.06]))["passed"]
    assert soak.saturation_check(rows([0.03, 0.03], [0.02, 0.02]))["passed"]
    assert soak.saturation_check(rows([None, None], [None, None]))["limit"] == "n/a"  # float state


def test_reset_policy_resets_and_keeps_stream_time(artifacts: Path) -> None:
    det = StreamingDetector(artifacts, "int8")
    streamer = soak.Streamer(det, reset_every_s=2.0)
    out, stats = soak.SoakState(), soak.BlockStats()
    rng = np.random.default_rng(0)
    for _ in range(5):
        streamer.feed((rng.standard_normal(16000) * 1000).astype(np.int16), stats, out)
    # resets once 2 s have been heard and more audio arrives: at 2 s and 4 s
    assert out.resets == 2 and streamer.offset_s == 4.0 and streamer.samples == 5 * 16000
    # frames: per reset segment the front end needs one full window before its first frame
    assert stats.frames == 2 * ((32000 - 480) // 160 + 1) + ((16000 - 480) // 160 + 1)
    assert stats.state_values == stats.frames * sum(t.size for t in det.model.state.tensors.values())


def test_ten_minute_soak_passes_and_reports_fields(artifacts: Path, sc_dir: Path) -> None:
    """The CI version of `make soak` (the full hour is `python -m export soak ART --minutes 60`)."""
    cmd = [sys.executable, "-m", "export", "soak", str(artifacts), "--minutes", "10", "--data", str(sc_dir), "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    r = json.loads(proc.stdout)
    assert set(r) >= {"artifacts", "variant", "runtime", "minutes", "block_minutes", "frames", "wall_seconds",
                      "real_time_factor", "keywords", "hits", "false_alarms", "recall", "fa_per_hour", "blocks",
                      "rss_samples", "checks", "passed", "peak_rss_mb"}
    assert r["variant"] == "int8" and r["block_minutes"] == 5 and len(r["blocks"]) == 2
    assert r["frames"] == (10 * 60 * 16000 - 480) // 160 + 1  # never reset: one continuous stream
    assert [s["minute"] for s in r["rss_samples"]] == [float(m) for m in range(1, 11)]
    first, last = r["blocks"]
    assert first["keywords"] == last["keywords"] > 0  # the last block replays the first block's audio
    assert 0.0 <= first["saturation"] <= 1.0 and 0.0 <= last["saturation"] <= 1.0
    assert set(r["checks"]) == {"recall_drift", "false_alarms", "saturation", "memory"}
    assert all(set(c) == {"value", "limit", "passed", "definition"} for c in r["checks"].values())
    assert r["passed"] == all(c["passed"] for c in r["checks"].values())
    assert proc.returncode == (0 if r["passed"] else 1)
    assert r["passed"], r["checks"]


def test_soak_user_error_exit_2(artifacts: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "export", "soak", str(artifacts), "--minutes", "25"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
