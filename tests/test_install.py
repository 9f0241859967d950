"""A non-editable install (a wheel built from the sources, installed into a fresh venv) provides the
`kws-edge` console command and `python -m edge`, runs the installed copy rather than this checkout, and
ships the license."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: What the wheel is built from (pyproject's packages, readme and license).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "edge", "train", "export")


def _check(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{cmd}\n{r.stdout}\n{r.stderr}"
    return r


def test_non_editable_install_has_the_console_command(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    # offline: setuptools from this environment, no dependencies fetched
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
            "-w", str(tmp_path / "dist"), str(src)], tmp_path)
    wheel = next((tmp_path / "dist").glob("rnn_kws_edge-*.whl"))
    venv = tmp_path / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / "bin" / "python"
    _check([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
           tmp_path)
    site = Path(_check([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       tmp_path).stdout.strip())
    # The dependencies (numpy, soundfile, ...) come from this test's environment, after the venv's own
    # packages: the package itself is the installed wheel (its .pth files are not processed, so this
    # environment's editable install of the project does not leak in).
    (site / "host_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _check([str(python), "-c", "import edge; print(edge.__file__)"], tmp_path, env).stdout.strip()
    assert Path(where).is_relative_to(site), where
    for cmd in ([str(venv / "bin" / "kws-edge"), "--help"], [str(python), "-m", "edge", "--help"]):
        out = _check(cmd, tmp_path, env).stdout
        assert "run" in out and "eval" in out and "bench" in out
    assert _check([str(venv / "bin" / "kws-edge"), "--help"], tmp_path, env).stdout.startswith("usage: kws-edge")
    run_help = _check([str(venv / "bin" / "kws-edge"), "run", "--help"], tmp_path, env).stdout
    assert "--on-detect" in run_help and "--list-devices" in run_help
    licenses = list(site.glob("rnn_kws_edge-*.dist-info/**/LICENSE"))
    assert licenses and "Apache License" in licenses[0].read_text()
