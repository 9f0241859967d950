"""Under CI=true a skip is a failure whatever raised it (tests/conftest.py hooks): a test's own `pytest.skip`
and a module-level `importorskip`; locally both stay skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(folder: Path, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(folder)],
                          cwd=folder, env=env, capture_output=True, text=True)


def test_skips_fail_under_ci_and_stay_skips_locally(tmp_path: Path) -> None:
    shutil.copy(HERE / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_own_skip.py").write_text("import pytest\n\ndef test_skip():\n    pytest.skip('no tool')\n")
    (tmp_path / "test_module_skip.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_for_this_test')\n\ndef test_x():\n    pass\n")
    local = _run(tmp_path, ci=False)
    assert local.returncode == 0 and "2 skipped" in local.stdout, local.stdout
    ci = _run(tmp_path, ci=True)
    assert ci.returncode != 0
    assert "skipped under CI=true" in ci.stdout and "test_module_skip.py" in ci.stdout
    (tmp_path / "test_module_skip.py").unlink()
    ci = _run(tmp_path, ci=True)
    assert ci.returncode == 1 and "FAILED test_own_skip.py::test_skip" in ci.stdout, ci.stdout
