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


@pytest.mark.parametrize("name,scale,zero_point,dtype,covered", [
    ("state_h0", 1 / 128, 0, "int8", True),         # [-1, 127/128]: within one step of [-1, 1]
    ("state_h0", 1 / 200, 0, "int8", False),        # reaches only +-0.64
    ("state_y0", 1 / 256, -128, "int8", True),      # the int8 softmax grid: [0, 255/256]
    ("state_y0", 1 / 32768, 0, "int16", True),      # the int16 softmax grid: [-1, 32767/32768]
    ("state_y0", 1 / 512, -128, "int8", False),     # reaches only 0.5: a probability could be clipped
    ("state_c0", 1 / 8, 0, "int8", False),          # an LSTM cell state is unbounded
])
def test_bounded_state_ranges(name: str, scale: float, zero_point: int, dtype: str, covered: bool) -> None:
    from edge.quant import limits

    lo, hi = limits(dtype)
    assert soak.covers_bounds(name, lo, hi, scale, zero_point) is covered


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn", "jordan"])
def test_bounded_states_hold_their_bounds(cell: str) -> None:
    """Every state the soak counts as bounded stays inside its bounds in the float model, even when driven hard
    (large inputs and weights), and every cell has such a state: h in [-1, 1], a Jordan posterior in [0, 1]."""
    import torch

    from train.models import state_name
    from train.models import Cell, ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(cell=Cell(cell), hidden=16, num_classes=5))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(10.0)
        _, state = model(torch.randn(2, 50, 40) * 100)
    bounded = 0
    for kind, values in zip(model.config.cell.state_names, state):
        prefix = next((p for p in soak.BOUNDED_STATES if state_name(kind, 0).startswith(p)), None)
        if prefix is not None:
            low, high = soak.BOUNDED_STATES[prefix]
            assert low <= float(values.min()) and float(values.max()) <= high, (kind, values.min(), values.max())
            bounded += 1
    assert bounded == 1


def test_jordan_soak_passes_with_its_posterior_state_bounded(jordan_artifacts: Path, sc_dir: Path) -> None:
    """A short soak of the Jordan network: the int8 posterior it feeds back neither pins nor drifts (same recall
    and false alarms on the replayed block, no growth of values at the int8 limits), and it counts as bounded."""
    cmd = [sys.executable, "-m", "export", "soak", str(jordan_artifacts), "--minutes", "4", "--data", str(sc_dir),
           "--json"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    r = json.loads(proc.stdout)
    assert r["state_tensors"] == [{"name": "state_y0", "may_clip": False}]
    first, last = r["blocks"]
    assert first["keywords"] == last["keywords"] > 0
    assert r["passed"], r["checks"]


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
