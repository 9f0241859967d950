"""Atomic output files: every command that writes a file writes it here.

A file is written to a temporary sibling in the target's own folder (`tempfile.mkstemp`, so never a
fixed name that someone could have made a symlink), flushed and fsync'ed, then moved onto the target
with `os.replace`. Readers see the old file or the new one, never a half-written one; on any error the
temporary file is removed and the target is left as it was. A target that is itself a symlink is
refused: nothing is ever written through a link.

`NpyRowWriter` streams float32 rows to a `.npy` the same way (`python -m edge run --probs`), so an
interrupted run still leaves a valid file with the rows written so far.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable

import numpy as np

from edge.errors import UserError


def refuse_symlink(path: Path) -> None:
    """Raise `UserError` if `path` itself is a symlink (dangling or not)."""
    if path.is_symlink():
        raise UserError(f"{path} is a symlink: refusing to write through it (remove it or name another file)")


def _temp_sibling(path: Path) -> tuple[int, Path]:
    """(open descriptor, path) of a new, empty temporary file next to `path`."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    return fd, Path(name)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: not every platform or file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path | str, write: Callable[[IO[bytes]], None]) -> Path:
    """Create or replace `path` with what `write(file)` writes into a temporary sibling; returns `path`.
    The target is untouched (and no temporary file is left) if `write`, the flush or the fsync raises."""
    path = Path(path)
    refuse_symlink(path)
    fd, tmp = _temp_sibling(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        _replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask sets it to read it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace(tmp: Path, path: Path) -> None:
    """Move the finished `tmp` onto `path` (checked again for a symlink just before). The file keeps the
    permissions of the file it replaces, or gets those a plain `open(path, 'w')` would give a new one."""
    refuse_symlink(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp, mode)  # mkstemp makes 0600 files
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Atomically create or replace `path` with `data`."""
    return write_atomic(path, lambda f: f.write(data))


def write_text_atomic(path: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """Atomically create or replace `path` with `text` (encoded with `encoding`)."""
    return write_bytes_atomic(path, text.encode(encoding))


# ---------------------------------------------------------------------------------------------------- .npy
#: Size of the fixed .npy header (magic, version, length and the padded dict): room for any row count.
NPY_HEADER_BYTES = 128


def npy_header(rows: int, cols: int) -> bytes:
    """A version 1.0 `.npy` header for a little-endian float32 C-order array [rows, cols], padded with
    spaces to `NPY_HEADER_BYTES` (a multiple of 64) whatever `rows` is, so it can be rewritten in place."""
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (rows, cols)}
    prefix = np.lib.format.magic(1, 0)
    body_len = NPY_HEADER_BYTES - len(prefix) - 2
    body = repr(d).encode("latin1")
    if len(body) + 1 > body_len:
        raise ValueError(f"a .npy header for shape {(rows, cols)} does not fit in {NPY_HEADER_BYTES} bytes")
    body = body + b" " * (body_len - len(body) - 1) + b"\n"
    return prefix + body_len.to_bytes(2, "little") + body


class NpyRowWriter:
    """Float32 rows [n, cols] streamed to a `.npy`: a temporary sibling of `path` gets a header sized for any
    row count, then each `append`; `close()` writes the true row count into the header and moves the file
    onto `path`; `discard()` removes it. As a context manager: closed on normal exit and on
    KeyboardInterrupt (the rows so far are a valid file), discarded on any other exception."""

    def __init__(self, path: Path | str, cols: int) -> None:
        self.path, self.cols, self.rows = Path(path), int(cols), 0
        refuse_symlink(self.path)
        fd, self.tmp = _temp_sibling(self.path)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")
        try:
            self._file.write(npy_header(np.iinfo(np.int64).max, self.cols))  # the maximum: same size as the final
        except BaseException:
            self.discard()
            raise

    def append(self, rows: np.ndarray) -> None:
        """Append rows [n, cols] (any real dtype; stored as little-endian float32)."""
        if self._file is None:
            raise ValueError(f"{self.path}: writer already closed")
        a = np.asarray(rows)
        if a.size == 0:
            return
        if a.ndim != 2 or a.shape[1] != self.cols:
            raise ValueError(f"{self.path}: expected rows of {self.cols} columns, got shape {a.shape}")
        self._file.seek(self._end(self.rows))  # after an interrupted append too
        self._file.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
        self.rows += len(a)

    def _end(self, rows: int) -> int:
        """File size with `rows` rows."""
        return NPY_HEADER_BYTES + rows * self.cols * 4

    def close(self) -> Path:
        """Write the final header, fsync and move the file onto `path`; returns `path`."""
        f = self._file
        if f is None:
            raise ValueError(f"{self.path}: writer already closed")
        try:
            f.truncate(self._end(self.rows))  # drop a partly written row of an interrupted append
            f.seek(0)
            f.write(npy_header(self.rows, self.cols))
            f.flush()
            os.fsync(f.fileno())
            f.close()
            self._file = None
            _replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        return self.path

    def discard(self) -> None:
        """Drop the temporary file; `path` is left as it was."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "NpyRowWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is None or issubclass(kind, KeyboardInterrupt):
            if self._file is not None:
                self.close()
        else:
            self.discard()
