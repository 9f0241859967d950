"""`edge run --on-detect CMD`: the hook gets each event's values as arguments and environment, runs without
a shell and never holds up detection: a slow hook does not delay the printed events, a full queue drops
events (counted), and a failing or hanging hook is reported on stderr while detection goes on."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: A hook that logs its start time, arguments and event environment as one JSON line, sleeps, then exits.
HOOK = """
import json, os, sys, time
log, sleep, status = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
with open(log, "a") as f:
    env = {k: os.environ.get(k) for k in ("KWS_LABEL", "KWS_SCORE", "KWS_TIME", "KWS_SOURCE")}
    f.write(json.dumps({"start": time.time(), "args": sys.argv[4:], "env": env}) + "\\n")
time.sleep(sleep)
sys.exit(status)
"""


def _hook(tmp_path: Path, sleep: float = 0.0, status: int = 0) -> tuple[str, Path]:
    """The --on-detect command line and its log (in a folder whose name has a space: no shell involved)."""
    folder = tmp_path / "hook dir"
    folder.mkdir(exist_ok=True)
    script = folder / "hook.py"
    script.write_text(HOOK)
    log = folder / "calls.jsonl"
    return shlex.join([sys.executable, str(script), str(log), str(sleep), str(status)]), log


def _calls(log: Path) -> list[dict]:
    return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def _run(artifacts: Path, wavs: list[Path], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge", "run", "--model", str(artifacts), "--json",
                           "--threshold", "0.3", "--wav", *map(str, wavs), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def baseline(artifacts: Path, stream_wav: Path) -> list[dict]:
    """The events of the two-file run without a hook."""
    r = _run(artifacts, [stream_wav, stream_wav])
    assert r.returncode == 0, r.stderr
    events = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(events) >= 4, "the test stream must give a few events at threshold 0.3"
    return events


def test_hook_gets_each_event_as_arguments_and_environment(artifacts: Path, stream_wav: Path, tmp_path: Path,
                                                           baseline: list[dict]) -> None:
    cmd, log = _hook(tmp_path)
    # This test checks the values each call gets, not the queue policy (tested below): a queue longer than the
    # event list and a generous timeout, so that a loaded machine, where each hook's Python start-up takes a
    # second or more, neither drops nor kills a call (a call went missing on a fully loaded 2-core machine).
    r = _run(artifacts, [stream_wav, stream_wav], "--on-detect", cmd, "--hook-queue", str(len(baseline) + 1),
             "--hook-timeout", "120")
    assert r.returncode == 0, r.stderr
    assert [json.loads(l) for l in r.stdout.splitlines()] == baseline
    calls = _calls(log)
    assert [c["args"] for c in calls] == [[e["label"], str(e["score"]), str(e["time"]), e["source"]] for e in baseline]
    assert [c["env"] for c in calls] == [{"KWS_LABEL": e["label"], "KWS_SCORE": str(e["score"]),
                                          "KWS_TIME": str(e["time"]), "KWS_SOURCE": e["source"]} for e in baseline]
    assert "note:" not in r.stderr


def test_slow_hook_does_not_delay_detection_and_the_queue_bound_holds(artifacts: Path, stream_wav: Path,
                                                                       tmp_path: Path, baseline: list[dict]) -> None:
    """A hook that sleeps 4 s, queue of 1: every event line is printed before the first hook has finished
    (detecting the 24 s of audio takes well under 4 s), at most 2 hooks run (one running, one queued) and
    the others are dropped and counted."""
    sleep = 4.0
    cmd, log = _hook(tmp_path, sleep=sleep)
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--model", str(artifacts), "--json",
                             "--threshold", "0.3", "--wav", str(stream_wav), str(stream_wav),
                             "--on-detect", cmd, "--hook-queue", "1"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, arrived = [], []
    for line in proc.stdout:
        lines.append(json.loads(line))
        arrived.append(time.time())
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, stderr
    assert lines == baseline
    calls = _calls(log)
    assert 1 <= len(calls) <= 2
    assert arrived[-1] < calls[0]["start"] + sleep
    dropped = len(baseline) - len(calls)
    assert f"{dropped} event(s) dropped in all because the hook was busy (--hook-queue 1)" in stderr
    assert stderr.count("busy, dropped") == dropped


@pytest.mark.parametrize("failure", ["exit status", "timeout"])
def test_failing_hook_is_reported_and_detection_goes_on(artifacts: Path, stream_wav: Path, tmp_path: Path,
                                                        baseline: list[dict], failure: str) -> None:
    if failure == "exit status":
        cmd, log = _hook(tmp_path, status=3)
        extra, needle = [], "exited with status 3"
    else:
        cmd, log = _hook(tmp_path, sleep=60)
        # 1.5 s: ample for the hook's Python to start and log its call before it is killed
        extra, needle = ["--hook-timeout", "1.5"], "timed out after 1.5 s and was killed"
    r = _run(artifacts, [stream_wav, stream_wav], "--on-detect", cmd, "--hook-queue", "32", *extra)
    assert r.returncode == 0, r.stderr
    assert [json.loads(l) for l in r.stdout.splitlines()] == baseline
    notes = [l for l in r.stderr.splitlines() if l.startswith("note: --on-detect:")]
    assert len(notes) == len(baseline) == len(_calls(log)) and all(needle in n for n in notes)
