"""Shared fixtures: the real data folder, a small model trained on it, and its exported artifacts.

Under CI=true a missing data folder or tool is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a prerequisite is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def _fail_skips_in_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Under CI=true every skip is a failure, whatever raised it (`need`, a module-level `importorskip`, a
    helper's `pytest.skip`): CI installs everything, so a skip there means something it needs is missing."""
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every test: {report.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # noqa: ARG001
    outcome = yield
    _fail_skips_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # noqa: ARG001
    outcome = yield
    _fail_skips_in_ci(outcome.get_result())


def need_tool(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session")
def frontend_lib() -> Path:
    """The front-end library for this machine, built by its Makefile rule (up to date: a no-op)."""
    import subprocess

    from edge.frontend import library_path

    need(shutil.which(os.environ.get("CC", "cc")) is not None, "no C compiler to build the front-end library")
    result = subprocess.run(["make", "-s", "frontend-lib"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return library_path()


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("KWS_DATA_DIR", REPO.parent / "shared" / "data"))
    need((root / "speech_commands_v2_subset").is_dir(), f"real audio not found at {root} (set KWS_DATA_DIR)")
    return root


@pytest.fixture(scope="session")
def sc_dir(data_root: Path) -> Path:
    return data_root / "speech_commands_v2_subset"


@pytest.fixture(scope="session")
def fsdd_dir(data_root: Path) -> Path:
    d = data_root / "fsdd"
    need(d.is_dir(), f"FSDD not found at {d}")
    return d


@pytest.fixture(scope="session")
def trained_run(sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small GRU trained for a few epochs on the real Speech Commands subset (1-2 minutes)."""
    from train.models import ModelConfig
    from train.trainer import TrainConfig, train

    if os.environ.get("KWS_TEST_ARTIFACTS"):  # local iteration: reuse an existing export and its run
        import json

        manifest = json.loads((Path(os.environ["KWS_TEST_ARTIFACTS"]) / "manifest.json").read_text())
        return Path(manifest["training"]["run"])
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(recipe="speech_commands", data=(str(sc_dir),), model=ModelConfig(hidden=32),
                      epochs=6, views=2, batch=32, seed=0, lr=1e-2, clip_norm=5.0)  # converges fastest in few epochs
    train(cfg, out, progress=False)
    return out


@pytest.fixture(scope="session")
def artifacts(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run exported with the real pipeline (all variants, baseline, ONNX, verify on 60 s)."""
    from export.pipeline import ExportOptions, build_artifacts

    if os.environ.get("KWS_TEST_ARTIFACTS"):
        return Path(os.environ["KWS_TEST_ARTIFACTS"])
    out = tmp_path_factory.mktemp("art") / "kws"
    # An under-trained 4-epoch model: its int8 agreement is lower than a real model's, so the gate is
    # relaxed to 0.9 here; the default 0.98 gate is exercised in test_export.py. The keyword thresholds are
    # set on a 3-minute validation stream (default 20) to keep the fixture fast; test_calibrate.py rebuilds it.
    build_artifacts(trained_run, out, ExportOptions(verify_seconds=60, calibration_seconds=90, min_agreement=0.9,
                                                    threshold_minutes=3.0), progress=False)
    return out


@pytest.fixture(scope="session")
def jordan_run(sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Jordan network (two tanh layers of 32 units, the posterior fed back into the first), the depth of
    the README's Jordan row, with the default penalty on its feedback loop's gain), trained for a few epochs on the
    real Speech Commands subset (about a minute). One torch thread: its per-frame loop is many small operations that a second thread only slows
    down on this shared 2-core machine."""
    from train.models import Cell, ModelConfig
    from train.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("jordan_run")
    cfg = TrainConfig(recipe="speech_commands", data=(str(sc_dir),), model=ModelConfig(cell=Cell.JORDAN, hidden=32, layers=2),
                      epochs=6, views=2, batch=32, seed=0, lr=1e-2, clip_norm=5.0, threads=1)
    train(cfg, out, progress=False)
    return out


@pytest.fixture(scope="session")
def jordan_artifacts(jordan_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Jordan run exported with the real pipeline, behind the export's default int8 agreement gate (98 %):
    all variants, baseline, ONNX, verify on 60 s, thresholds on a 3-minute validation stream (as `artifacts`)."""
    from export.pipeline import ExportOptions, build_artifacts

    out = tmp_path_factory.mktemp("jordan_art") / "jordan"
    build_artifacts(jordan_run, out, ExportOptions(verify_seconds=60, calibration_seconds=90, threshold_minutes=3.0),
                    progress=False)
    return out


def _small_cell_artifacts(cell: str, hidden: int, lr: float, sc_dir: Path, tmp: pytest.TempPathFactory) -> Path:
    """A small model of `cell` trained for a few epochs on the real subset and exported like `artifacts`
    (relaxed 90 % gate: an under-trained model's flat posteriors flip more often)."""
    from export.pipeline import ExportOptions, build_artifacts
    from train.models import Cell, ModelConfig
    from train.trainer import TrainConfig, train

    run = tmp.mktemp(f"{cell}_run")
    train(TrainConfig(recipe="speech_commands", data=(str(sc_dir),), model=ModelConfig(cell=Cell(cell), hidden=hidden),
                      epochs=6, views=2, batch=32, seed=0, lr=lr, clip_norm=5.0, threads=1), run, progress=False)
    out = tmp.mktemp(f"{cell}_art") / cell
    build_artifacts(run, out, ExportOptions(verify_seconds=60, calibration_seconds=90, min_agreement=0.9,
                                            threshold_minutes=3.0), progress=False)
    return out


@pytest.fixture(scope="session")
def lstm_artifacts(sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LSTM (32 units), trained and exported as the GRU `artifacts` are."""
    return _small_cell_artifacts("lstm", 32, 1e-2, sc_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def rnn_artifacts(sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Elman RNN (48 units; its peak learning rate, 1e-3 for long runs, raised for 6 epochs)."""
    return _small_cell_artifacts("rnn", 48, 3e-3, sc_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def stream_wav(sc_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 12 s of real test-split speech: keywords and other words with gaps."""
    import numpy as np

    from edge.audio import load_wav, write_wav
    from edge.datasets import Recipe, load_dataset

    ds = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    test = ds.split("test")
    picks = [c for c in test if c.label == "yes"][:3] + [c for c in test if c.label == "no"][:3] + [c for c in test if c.label == "_unknown_"][:3]
    gap = np.zeros(4000, dtype=np.int16)
    pcm = np.concatenate([np.concatenate([load_wav(c.path, 16000), gap]) for c in picks])
    p = tmp_path_factory.mktemp("wav") / "stream.wav"
    write_wav(p, pcm, 16000)
    return p
