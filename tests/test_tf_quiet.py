"""TensorFlow is imported through export.tf_quiet: oneDNN off, and its native start-up lines never reach stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from export.tf_quiet import quiet_import

REPO = Path(__file__).resolve().parents[1]

# What TensorFlow 2.21 writes to fd 2 while it loads on an AVX-512/AMX host, even with TF_CPP_MIN_LOG_LEVEL=3.
TF_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796183094.348115    4620 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n"
    "I0000 00:00:1796183101.984899    4645 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AMX_TILE FMA, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.\n"
)
REAL = "E0000 00:00:1796183101.000000    4645 loader.cc:12] real problem: libfoo.so missing\nplain text\n"


def _fake_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> str:
    """A module whose import writes straight to fd 2, as a native library does."""
    (tmp_path / f"{name}.py").write_text(f"import os\nos.write(2, {(TF_NOISE + REAL).encode()!r})\n{body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


def test_start_up_noise_is_hidden_and_other_lines_are_kept(tmp_path, monkeypatch, capfd) -> None:
    quiet_import(_fake_module(tmp_path, monkeypatch, "fake_noisy_native", ""))
    os.write(2, b"after\n")  # fd 2 is the real stderr again
    assert capfd.readouterr().err == REAL + "after\n"


def test_a_failing_import_still_restores_stderr(tmp_path, monkeypatch, capfd) -> None:
    name = _fake_module(tmp_path, monkeypatch, "fake_broken_native", "raise ImportError('broken')")
    with pytest.raises(ImportError, match="broken"):
        quiet_import(name)
    os.write(2, b"after\n")
    assert capfd.readouterr().err == REAL + "after\n"


def _python(*args: str) -> subprocess.CompletedProcess:
    # The noisiest settings a user may have: all TensorFlow logs on, oneDNN asked for.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_ENABLE_ONEDNN_OPTS": "1"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_onednn_is_off_after_the_import() -> None:
    """Exports must not depend on the host CPU, so oneDNN is off even when the environment asks for it."""
    r = _python("-c", "import os\n"
                      "from export.tf_quiet import import_tensorflow\n"
                      "import_tensorflow()\n"
                      "from tensorflow.python.util import _pywrap_util_port\n"
                      "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], _pywrap_util_port.IsMklEnabled())")
    assert (r.returncode, r.stdout, r.stderr) == (0, "0 False\n", "")


@pytest.mark.parametrize("command", ["build", "verify"])
def test_tensorflow_commands_fail_with_one_line(command: str, tmp_path: Path) -> None:
    """Both commands import TensorFlow (via export.pipeline) before they find the bad path."""
    missing = str(tmp_path / "missing")
    args = [missing, "--out", str(tmp_path / "out")] if command == "build" else ["verify", missing]
    r = _python("-m", "export", *args)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(f"error: {missing}"), r.stderr
    assert not (tmp_path / "out").exists()
