"""`edge.atomic`: output files appear whole or not at all, never through a symlink, with no temporary
files left behind; `NpyRowWriter` leaves a valid .npy after a normal end or an interruption."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from edge import atomic
from edge.atomic import NPY_HEADER_BYTES, NpyRowWriter, npy_header, write_atomic, write_bytes_atomic, write_text_atomic
from edge.errors import UserError


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    assert write_text_atomic(target, "first") == target
    assert target.read_text() == "first"
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert _names(tmp_path) == ["out.txt"]  # no temporary sibling left


def test_new_file_gets_the_usual_permissions_and_a_replaced_one_keeps_its_own(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        fresh = write_text_atomic(tmp_path / "fresh.txt", "x")
        assert fresh.stat().st_mode & 0o777 == 0o644  # what open(path, "w") gives, not mkstemp's 0600
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        write_text_atomic(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(mask)


def test_a_write_that_raises_midway_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old content")

    def half(f: IO[bytes]) -> None:
        f.write(b"{\"partial\": ")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_atomic(target, half)
    assert target.read_text() == "old content"
    assert _names(tmp_path) == ["out.json"]


def test_a_failing_fsync_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old weights")

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output error"):
        write_bytes_atomic(target, b"new weights" * 1000)
    assert target.read_bytes() == b"old weights"
    assert _names(tmp_path) == ["model.safetensors"]


def test_a_symlink_target_is_refused_and_its_file_untouched(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("do not overwrite")
    out = tmp_path / "out"
    out.mkdir()
    link = out / "manifest.json"
    link.symlink_to(victim)
    for write in (lambda: write_text_atomic(link, "evil"), lambda: write_bytes_atomic(link, b"evil"),
                  lambda: NpyRowWriter(link, 3)):
        with pytest.raises(UserError, match="symlink") as info:
            write()
        assert "\n" not in str(info.value)
    assert victim.read_text() == "do not overwrite"
    assert link.is_symlink() and _names(out) == ["manifest.json"]
    dangling = out / "new.h"
    dangling.symlink_to(outside / "missing.h")
    with pytest.raises(UserError, match="symlink"):
        write_text_atomic(dangling, "x")
    assert not (outside / "missing.h").exists()


def test_record_in_manifest_is_atomic_and_refuses_a_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`codegen costs --manifest`: the manifest is replaced through a fresh temporary name, never a fixed one."""
    from export import codegen

    art = tmp_path / "art"
    art.mkdir()
    manifest = art / "manifest.json"
    manifest.write_text(json.dumps({"labels": ["a"]}))

    class Loaded:
        root, data = art, {"labels": ["a"]}

    monkeypatch.setattr("edge.manifest.load_manifest", lambda root: Loaded)
    trap = art / ".manifest.json.tmp"  # the old fixed temporary name, planted as a link to a file outside
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    trap.symlink_to(victim)
    assert codegen.record_in_manifest(art, {"flash_bytes": 1}) == manifest
    assert json.loads(manifest.read_text()) == {"labels": ["a"], "firmware": {"flash_bytes": 1}}
    assert victim.read_text() == "untouched" and _names(art) == [".manifest.json.tmp", "manifest.json"]
    manifest.unlink()
    manifest.symlink_to(victim)
    with pytest.raises(UserError, match="symlink"):
        codegen.record_in_manifest(art, {"flash_bytes": 2})
    assert victim.read_text() == "untouched"


# ---------------------------------------------------------------------------------------------------- .npy
def test_npy_header_has_a_fixed_size_and_loads() -> None:
    for rows in (0, 1, 123456, np.iinfo(np.int64).max):
        h = npy_header(rows, 12)
        assert len(h) == NPY_HEADER_BYTES and NPY_HEADER_BYTES % 64 == 0 and h.endswith(b"\n")


def test_row_writer_gives_the_array(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    parts = [rng.random((n, 5)).astype(np.float32) for n in (3, 0, 17, 1)]
    target = tmp_path / "p.npy"
    with NpyRowWriter(target, 5) as w:
        for p in parts:
            w.append(p)
        assert not target.exists()  # only the temporary sibling until closed
    a = np.load(target)
    assert a.dtype == np.float32 and np.array_equal(a, np.concatenate(parts))
    assert _names(tmp_path) == ["p.npy"]
    with NpyRowWriter(target, 5):
        pass
    assert np.load(target).shape == (0, 5)


def test_row_writer_keeps_the_rows_after_keyboard_interrupt(tmp_path: Path) -> None:
    target = tmp_path / "p.npy"
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    with pytest.raises(KeyboardInterrupt):
        with NpyRowWriter(target, 3) as w:
            w.append(rows)
            raise KeyboardInterrupt
    assert np.array_equal(np.load(target), rows)
    assert _names(tmp_path) == ["p.npy"]


def test_row_writer_drops_a_partly_written_row(tmp_path: Path) -> None:
    """An append interrupted inside its write: the file is cut back to the whole rows counted so far."""
    target = tmp_path / "p.npy"
    rows = np.ones((2, 3), dtype=np.float32)
    with NpyRowWriter(target, 3) as w:
        w.append(rows)
        w._file.write(b"\x00" * 5)  # what a KeyboardInterrupt inside write() could leave
        w.append(2 * rows)
        w._file.write(b"\x00" * 7)
    assert np.array_equal(np.load(target), np.concatenate([rows, 2 * rows]))


def test_row_writer_error_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "p.npy"
    np.save(target, np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(RuntimeError):
        with NpyRowWriter(target, 3) as w:
            w.append(np.ones((2, 3)))
            raise RuntimeError("bad audio")
    assert np.array_equal(np.load(target), np.zeros((1, 3)))
    assert _names(tmp_path) == ["p.npy"]
    with pytest.raises(ValueError, match="3 columns"):
        with NpyRowWriter(target, 3) as w:
            w.append(np.ones((2, 4)))
    assert _names(tmp_path) == ["p.npy"]


def test_codegen_writes_atomically_keeps_mtimes_and_refuses_a_symlink(artifacts: Path, tmp_path: Path) -> None:
    """`python -m export codegen`: the generated C files appear through `edge.atomic`; an unchanged file is not
    rewritten (mtimes stay stable for make); a generated file that is a symlink is refused, its file untouched."""
    from export.codegen import generate_from_artifacts

    out = tmp_path / "gen"
    files = generate_from_artifacts(artifacts, out).files
    names = sorted(p.name for p in files)
    assert names == _names(out) and "model_data.c" in names  # nothing else, no temporary file
    mtimes = {p.name: p.stat().st_mtime_ns for p in files}
    generate_from_artifacts(artifacts, out)
    assert {p.name: p.stat().st_mtime_ns for p in files} == mtimes
    victim = tmp_path / "victim.h"
    victim.write_text("keep me")
    (out / "kws_frontend_config.h").unlink()
    (out / "kws_frontend_config.h").symlink_to(victim)
    with pytest.raises(UserError, match="symlink"):
        generate_from_artifacts(artifacts, out)
    assert victim.read_text() == "keep me"
