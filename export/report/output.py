"""The report folder: written into a temporary folder and renamed into place, marked as the report's
(`MARKER`), and an existing folder replaced only when it is empty or, with --force, holds nothing but an
earlier report."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.errors import UserError
from export.report.document import build_doc
from export.report.plots import plot_comparison, write_plots
from export.report.settings import ReportOptions

MARKER = ".kws-report"  # written last into every report folder: {"written_by": MARKER_WRITER, "files": [names]}
MARKER_WRITER = "python -m export report"


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _marked_files(out: Path) -> list[str] | None:
    """The file names `out`'s marker lists, or None when `out` has no valid marker (a symlink is not one)."""
    marker = out / MARKER
    if not _plain_file(marker):
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) and data.get("written_by") == MARKER_WRITER else None
    return files if isinstance(files, list) and all(isinstance(f, str) for f in files) else None


def write_marker(folder: Path) -> None:
    """Mark a finished report folder as the report's, listing the files in it (written last)."""
    files = sorted(p.name for p in folder.iterdir())
    (folder / MARKER).write_text(json.dumps({"written_by": MARKER_WRITER, "files": files}) + "\n")


def check_out_dir(out: Path, force: bool = False) -> None:
    """Accept --out only if it is new, an empty folder, or (with --force) a folder holding nothing but an
    earlier report: its marker and the plain files the marker lists. Never `.`, `..`, the current or home
    folder or one holding them, nor a symbolic link."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise UserError(f"--out {out}: give the report folder by name")
    if out.is_symlink():
        raise UserError(f"--out {out} is a symbolic link; give the folder itself")
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out} exists and is not a folder")
    where = out.resolve()
    for what, keep in (("the current folder", Path.cwd()), ("the home folder", Path(os.path.expanduser("~")))):
        keep = keep.resolve()
        if where == keep or where in keep.parents:
            raise UserError(f"--out {out} is or holds {what}; refusing to replace it")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    listed = _marked_files(out)
    if listed is None:
        raise UserError(f"{out} exists and is not a report folder (no {MARKER}); refusing to replace it")
    foreign = [n for n in names if n != MARKER and (n not in listed or not _plain_file(out / n))]
    if foreign:
        raise UserError(f"{out} holds files the report did not write ({', '.join(foreign[:5])}); refusing to replace it")
    if not force:
        raise UserError(f"{out} holds an earlier report; pass --force to replace it")


def install_dir(tmp: Path, out: Path, force: bool = False) -> None:
    """Move a finished temporary folder into place, replacing an earlier report (said on stderr) only as
    `check_out_dir` allows. The old folder is renamed aside first and deleted (without following symbolic
    links) only once the new one is in place."""
    check_out_dir(out, force)
    old = None
    if out.exists() and any(out.iterdir()):
        print(f"replacing existing {out}", file=sys.stderr)
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        out.rename(old)  # onto the empty placeholder
    elif out.exists():
        out.rmdir()
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old)


def _slugs(models: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for m in models:
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in m["name"]) or "model"
        slug, n = base, 2
        while slug in out:
            slug, n = f"{base}-{n}", n + 1
        out.append(slug)
    return out


def write_report(report: dict[str, Any], opts: ReportOptions, out: Path, force: bool = False) -> None:
    """Plots, report.md, report.html and report.json into a temporary folder, then `install_dir` into `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a report is meant to be read
    try:
        for m, slug in zip(report["models"], _slugs(report["models"])):
            write_plots(m, tmp, slug)
        if len(report["models"]) > 1:
            report["comparison_plot"] = "comparison.png"
            plot_comparison(report["models"], tmp / "comparison.png")
        doc = build_doc(report, opts)
        (tmp / "report.md").write_text(doc.markdown())
        (tmp / "report.html").write_text(doc.html(tmp, "Accuracy vs quantization"))
        (tmp / "report.json").write_text(json.dumps(report, indent=2))
        write_marker(tmp)
        install_dir(tmp, out, force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
