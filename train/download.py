"""Dataset downloads for users with a network: Speech Commands v0.02 and the Free Spoken Digit Dataset.

Every archive is checked against a pinned SHA-256 before anything is extracted, and extraction is
defensive: absolute paths, `..` components, links, device files and anything that would land outside
the target are refused before a single file is written. Files are extracted into a temporary folder
next to the target and renamed into place at the end, so a failure never leaves a half dataset, and an
existing dataset folder is only replaced with `force`.

Where the pinned hashes come from (none could be checked by downloading here: no network):
- speech_commands_v0.02.tar.gz: published by TensorFlow Datasets (url_checksums/speech_commands.txt,
  with the size 2,428,923,189) and, identically, by torchaudio's SPEECHCOMMANDS loader. Two
  independent publishers; treat as verified.
- speech_commands_test_set_v0.02.tar.gz: published by TensorFlow Datasets only (size 112,563,277).
- FSDD v1.0.10 zip: no publisher of the dataset states a hash. The value below is the one a third-party
  audit reports for GitHub's tag archive (16,419,872 bytes). GitHub generates these archives on the fly
  and has changed their bytes before, so a mismatch is possible even for an honest download: the tool
  then refuses, prints the computed hash, and `--trust-download` accepts it after you have checked.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from edge.errors import EXIT_USER_ERROR, UserError

_CHUNK = 1 << 20
DEFAULT_MAX_BYTES = 16 * 2**30  # refuse archives that declare more than 16 GiB of content


class DownloadError(UserError):
    """A download, checksum or extraction problem; the message says what to do."""


class ChecksumError(DownloadError):
    """The archive's SHA-256 is unknown or does not match the pinned value."""


class UnsafeArchiveError(DownloadError):
    """The archive contains a member that could write outside the target or is not a plain file."""


@dataclass(frozen=True)
class Archive:
    """One downloadable archive and where its contents go (`out_dir/target`)."""

    url: str
    filename: str
    sha256: str | None  # None: unknown, the user must confirm with --trust-download
    size: int | None
    target: str
    strip_components: int = 0  # leading path components dropped on extraction (like tar's option)
    hash_source: str = ""


DATASETS: dict[str, tuple[Archive, ...]] = {
    "speech_commands": (
        # Same object as http://download.tensorflow.org/data/... (the URL the checksums are listed under).
        Archive(
            url="https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz",
            filename="speech_commands_v0.02.tar.gz",
            sha256="af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58",
            size=2_428_923_189,
            target="speech_commands_v0.02",
            hash_source="TensorFlow Datasets url_checksums and torchaudio (agree)",
        ),
        Archive(
            url="https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz",
            filename="speech_commands_test_set_v0.02.tar.gz",
            sha256="cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df",
            size=112_563_277,
            target="speech_commands_test_set_v0.02",
            hash_source="TensorFlow Datasets url_checksums",
        ),
    ),
    "fsdd": (
        Archive(
            url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip",
            filename="free-spoken-digit-dataset-1.0.10.zip",
            sha256="c680098f5d2355ba7cc4bd8b0ca9e0a24c00ebe3b4c552208889a4d28d4fbc2b",
            size=16_419_872,
            target="fsdd",  # -> fsdd/recordings/<digit>_<speaker>_<n>.wav
            strip_components=1,
            hash_source="third-party report only; GitHub tag archives are not guaranteed byte-stable",
        ),
    ),
}
DATASETS["speech_commands_test"] = DATASETS["speech_commands"][1:]


# =========================================================================== hashing and downloading
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, *, progress: bool = True, timeout: float = 60.0) -> str:
    """Stream `url` (http, https or file) into the new file `dest`; returns its SHA-256."""
    from tqdm import tqdm

    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"unsupported URL scheme {scheme!r} in {url}")
    request = urllib.request.Request(url, headers={"User-Agent": "kws-train-download/1"})
    h = hashlib.sha256()
    written = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "xb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar_options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "file": sys.stderr}
            with tqdm(total=total, desc=dest.name, disable=not progress, **bar_options) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    h.update(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.URLError as exc:
        raise DownloadError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from exc
    except (OSError, ValueError) as exc:  # timeouts, connection resets, disk full, bad URL
        raise DownloadError(f"download of {url} failed: {exc}") from exc
    if total is not None and written != total:
        raise DownloadError(f"download of {url} truncated: {written} of {total} bytes")
    return h.hexdigest()


def check_sha256(
    name: str, actual: str, expected: str | None, *, trust: bool, log: Callable[[str], None]
) -> None:
    """Refuse an unknown or mismatching hash unless `trust`; always say what was computed."""
    if expected is not None and actual == expected:
        return
    if expected is None:
        problem = f"no pinned sha256 for {name}; computed {actual}"
    else:
        problem = f"sha256 mismatch for {name}: expected {expected}, got {actual}"
    if not trust:
        raise ChecksumError(f"{problem}; refusing to extract (check it, then rerun with --trust-download)")
    log(f"warning: {problem}; extracting anyway because of --trust-download")


# =========================================================================== safe extraction
@dataclass(frozen=True)
class _Entry:
    path: PurePosixPath  # relative, after strip_components
    is_dir: bool
    open: Callable[[], BinaryIO] | None  # reader for files
    size: int


def _clean_parts(name: str) -> list[str]:
    """Path components of an archive member name, refusing anything that could escape the target."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"member name with a NUL byte: {name!r}")
    if "\\" in name:
        raise UnsafeArchiveError(f"member name with a backslash: {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        raise UnsafeArchiveError(f"absolute member path: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"member path with '..': {name!r}")
    return parts


def _tar_entries(tf: tarfile.TarFile) -> Iterator[tuple[str, bool, Callable[[], BinaryIO] | None, int]]:
    for m in tf.getmembers():
        if m.issym():
            raise UnsafeArchiveError(f"symbolic link in archive: {m.name!r} -> {m.linkname!r}")
        if m.islnk():
            raise UnsafeArchiveError(f"hard link in archive: {m.name!r} -> {m.linkname!r}")
        if m.ischr() or m.isblk():
            raise UnsafeArchiveError(f"device file in archive: {m.name!r}")
        if m.isfifo():
            raise UnsafeArchiveError(f"FIFO in archive: {m.name!r}")
        if not (m.isdir() or m.isreg()):
            raise UnsafeArchiveError(f"unsupported member type {m.type!r} in archive: {m.name!r}")
        reader = None if m.isdir() else (lambda m=m: tf.extractfile(m))
        yield m.name, m.isdir(), reader, m.size


def _zip_entries(zf: zipfile.ZipFile) -> Iterator[tuple[str, bool, Callable[[], BinaryIO] | None, int]]:
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.create_system == 3 and mode:  # Unix attributes present
            if stat.S_ISLNK(mode):
                raise UnsafeArchiveError(f"symbolic link in archive: {info.filename!r}")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                raise UnsafeArchiveError(f"device file in archive: {info.filename!r}")
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise UnsafeArchiveError(f"special file in archive: {info.filename!r}")
        if info.flag_bits & 0x1:
            raise UnsafeArchiveError(f"encrypted member in archive: {info.filename!r}")
        reader = None if info.is_dir() else (lambda info=info: zf.open(info))
        yield info.filename, info.is_dir(), reader, info.file_size


def _plan(
    raw: Iterator[tuple[str, bool, Callable[[], BinaryIO] | None, int]], strip: int, max_bytes: int
) -> list[_Entry]:
    """Validate every member before anything is written; apply strip_components."""
    entries: list[_Entry] = []
    tops: set[str] = set()
    seen: set[PurePosixPath] = set()
    total = 0
    for name, is_dir, reader, size in raw:
        parts = _clean_parts(name)
        if not parts:
            continue  # the archive root itself ("./")
        tops.add(parts[0])
        if len(parts) <= strip:
            if not is_dir:
                raise DownloadError(f"unexpected archive layout: file {name!r} above the stripped folder")
            continue
        rel = PurePosixPath(*parts[strip:])
        if rel in seen and not is_dir:
            raise UnsafeArchiveError(f"member appears twice in archive: {name!r}")
        seen.add(rel)
        total += size
        if total > max_bytes:
            raise DownloadError(f"archive content exceeds {max_bytes} bytes; refusing to extract")
        entries.append(_Entry(rel, is_dir, reader, size))
    if strip and len(tops) > 1:
        raise DownloadError(f"unexpected archive layout: expected one top folder, found {sorted(tops)[:5]}")
    return entries


def _archive_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise DownloadError(f"{path.name}: not a tar or zip archive")


def _write_entries(entries: Sequence[_Entry], root: Path) -> int:
    """Create the planned folders and files below `root` (which contains nothing we did not make)."""
    base = root.resolve()
    files = 0
    for e in entries:
        dest = root.joinpath(*e.path.parts)
        if not dest.resolve().is_relative_to(base):  # defence in depth; _clean_parts already ensures it
            raise UnsafeArchiveError(f"member would land outside the target: {str(e.path)!r}")
        if e.is_dir:
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        assert e.open is not None
        with e.open() as src, open(dest, "xb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        dest.chmod(0o644)
        files += 1
    return files


def refuse_existing(target: Path, force: bool) -> None:
    """An existing dataset folder (or a file in its place) is only replaced with `force`."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise DownloadError(f"{target} already exists; refusing to overwrite it (use --force)")


def _replace_folder(new: Path, target: Path, force: bool) -> None:
    """Rename `new` to `target`; an existing non-empty target is replaced only with `force`."""
    old = None
    if target.exists():
        if not target.is_dir():
            raise DownloadError(f"{target} exists and is not a folder")
        if any(target.iterdir()):
            if not force:
                raise DownloadError(f"{target} already exists; refusing to overwrite it (use --force)")
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            target.rename(old / target.name)
        else:
            target.rmdir()
    new.rename(target)
    if old is not None:
        shutil.rmtree(old)


def safe_extract(
    archive: Path,
    target: Path,
    *,
    strip_components: int = 0,
    force: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> int:
    """Extract a tar or zip archive into the folder `target`; returns the number of files written.

    Refused before anything is written: absolute names, `..`, symlinks, hard links, device files,
    FIFOs, duplicates, encrypted zip members, more than `max_bytes` of content, and an existing
    non-empty `target` without `force`. Only plain folders and files are created (mode 644/755);
    owners, times and permission bits from the archive are ignored.
    """
    archive, target = Path(archive), Path(target)
    refuse_existing(target, force)
    kind = _archive_kind(archive)
    try:
        if kind == "zip":
            opened: zipfile.ZipFile | tarfile.TarFile = zipfile.ZipFile(archive)
            raw = _zip_entries(opened)
        else:
            opened = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the `with opened` below
            raw = _tar_entries(opened)
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{archive.name}: cannot read archive: {exc}") from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    with opened:
        try:
            entries = _plan(raw, strip_components, max_bytes)
        except (tarfile.TarError, zipfile.BadZipFile) as exc:
            raise DownloadError(f"{archive.name}: corrupt archive: {exc}") from exc
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        try:
            tmp.chmod(0o755)
            try:
                files = _write_entries(entries, tmp)
            except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
                raise DownloadError(f"{archive.name}: corrupt archive: {exc}") from exc
            except FileExistsError as exc:
                raise UnsafeArchiveError(f"{archive.name}: conflicting members at {exc.filename}") from exc
            _replace_folder(tmp, target, force)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return files


# =========================================================================== fetching datasets
def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def fetch(
    archive: Archive,
    out_dir: Path,
    *,
    force: bool = False,
    trust_download: bool = False,
    keep_archive: bool = False,
    archive_dir: Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
) -> Path:
    """Download (or take from `archive_dir`), verify and extract one archive; returns the dataset folder."""
    out_dir = Path(out_dir)
    target = out_dir / archive.target
    refuse_existing(target, force)
    out_dir.mkdir(parents=True, exist_ok=True)
    local = (Path(archive_dir) / archive.filename) if archive_dir else None
    if local is not None and not local.is_file():
        raise DownloadError(f"{local} not found (expected the downloaded {archive.filename} there)")
    kept = out_dir / archive.filename
    scratch: Path | None = None
    try:
        if local is not None:
            source, digest = local, sha256_file(local)
        elif keep_archive and kept.is_file() and sha256_file(kept) == archive.sha256:
            source, digest = kept, str(archive.sha256)  # verified copy from an earlier --keep-archive run
        else:
            scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=out_dir))
            source = scratch / archive.filename
            log(f"downloading {archive.url}")
            digest = download(archive.url, source, progress=progress)
        check_sha256(archive.filename, digest, archive.sha256, trust=trust_download, log=log)
        files = safe_extract(source, target, strip_components=archive.strip_components, force=force)
        log(f"extracted {files} files to {target}")
        if keep_archive and scratch is not None:
            source.replace(kept)
        return target
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def fetch_dataset(name: str, out_dir: Path, **kwargs) -> list[Path]:
    """All archives of a dataset from DATASETS; keyword arguments as for `fetch`."""
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))}")
    archives = DATASETS[name]
    for a in archives:  # refuse up front rather than after a 2 GB download of the first archive
        refuse_existing(Path(out_dir) / a.target, kwargs.get("force", False))
    return [fetch(a, Path(out_dir), **kwargs) for a in archives]


# =========================================================================== CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise DownloadError(message)


def build_parser(prog: str = "download") -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Download and safely extract a keyword-spotting dataset.")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--out", required=True, type=Path, help="folder that receives the dataset folder(s)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset folder")
    p.add_argument(
        "--trust-download", action="store_true", help="extract even if the sha256 is unknown or differs"
    )
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive in --out")
    p.add_argument(
        "--archive-dir", type=Path, default=None, help="use archives already downloaded into this folder"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "download") -> int:
    """CLI `download --dataset speech_commands|speech_commands_test|fsdd --out DIR`; returns the exit code."""
    try:
        args = build_parser(prog).parse_args(argv)
        paths = fetch_dataset(
            args.dataset,
            args.out,
            force=args.force,
            trust_download=args.trust_download,
            keep_archive=args.keep_archive,
            archive_dir=args.archive_dir,
            progress=not args.quiet,
        )
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
