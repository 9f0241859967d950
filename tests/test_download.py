"""train.download: checksum gate, safe tar/zip extraction, and the download path over file:// URLs.

No network: every archive is built in tmp_path, and downloads use file:// URLs.
"""

from __future__ import annotations

import hashlib
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from train import download as dl

GOOD_FILES = {
    "yes/a_nohash_0.wav": b"RIFF-yes",
    "no/b_nohash_0.wav": b"RIFF-no",
    "validation_list.txt": b"yes/a\n",
}


# --------------------------------------------------------------------------- archive builders
def _tar_add(
    tf: tarfile.TarFile, name: str, data: bytes = b"", type_: bytes = tarfile.REGTYPE, link: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = link
    info.size = len(data) if type_ == tarfile.REGTYPE else 0
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data) if type_ == tarfile.REGTYPE else None)


def make_tar(path: Path, members: list[tuple]) -> Path:
    """members: (name, data) for regular files or (name, type, linkname) for special members."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tf:
        for m in members:
            if len(m) == 2:
                _tar_add(tf, m[0], m[1])
            else:
                _tar_add(tf, m[0], type_=m[1], link=m[2])
    return path


def make_zip(path: Path, members: list[tuple[str, bytes]], mode_of: dict[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = ((mode_of or {}).get(name, stat.S_IFREG | 0o644)) << 16
            zf.writestr(info, data)
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """tmp_path/box is where extraction happens; anything appearing elsewhere in tmp_path is an escape."""
    (tmp_path / "box").mkdir()
    return tmp_path


def assert_nothing_escaped(tmp_path: Path, allowed: set[str]) -> None:
    assert {p.name for p in tmp_path.iterdir()} <= allowed
    assert not (tmp_path / "box" / "ds").exists()
    assert not list((tmp_path / "box").glob(".*"))  # no temporary folders left behind


# --------------------------------------------------------------------------- safe extraction
def test_good_tar_and_zip_extract(sandbox: Path) -> None:
    files = list(GOOD_FILES.items())
    tar = make_tar(sandbox / "good.tar.gz", [("./" + n, d) for n, d in files])  # "./" names like SC
    assert dl.safe_extract(tar, sandbox / "box" / "t") == 3
    assert tree(sandbox / "box" / "t") == GOOD_FILES
    zf = make_zip(sandbox / "good.zip", [("top-1.0/" + n, d) for n, d in files] + [("top-1.0/", b"")])
    assert dl.safe_extract(zf, sandbox / "box" / "z", strip_components=1) == 3
    assert tree(sandbox / "box" / "z") == GOOD_FILES
    mode = stat.S_IMODE((sandbox / "box" / "z" / "validation_list.txt").stat().st_mode)
    assert mode == 0o644


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (("/tmp/evil_abs.txt", b"x"), "absolute"),
        (("../evil_up.txt", b"x"), "'..'"),
        (("yes/../../evil_up2.txt", b"x"), "'..'"),
        (("evil_link", tarfile.SYMTYPE, "../../outside"), "symbolic link"),
        (("evil_hard", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
        (("evil_dev", tarfile.CHRTYPE, ""), "device file"),
        (("evil_fifo", tarfile.FIFOTYPE, ""), "FIFO"),
    ],
)
def test_malicious_tar_is_refused_before_writing(sandbox: Path, member: tuple, message: str) -> None:
    # The bad member comes last: the good member before it must not have been written either.
    tar = make_tar(sandbox / "bad.tar.gz", [("yes/ok.wav", b"ok"), member])
    with tarfile.open(tar) as tf:
        assert member[0] in tf.getnames()  # the writer kept the hostile name as is
    with pytest.raises(dl.UnsafeArchiveError, match=message):
        dl.safe_extract(tar, sandbox / "box" / "ds")
    assert_nothing_escaped(sandbox, {"box", "bad.tar.gz"})
    assert not Path("/tmp/evil_abs.txt").exists()


@pytest.mark.parametrize(
    ("name", "mode", "message"),
    [
        ("/evil_abs.txt", stat.S_IFREG | 0o644, "absolute"),
        ("../evil_up.txt", stat.S_IFREG | 0o644, "'..'"),
        ("a/../../evil_up.txt", stat.S_IFREG | 0o644, "'..'"),
        ("C:/evil.txt", stat.S_IFREG | 0o644, "absolute"),
        ("a\\..\\evil.txt", stat.S_IFREG | 0o644, "backslash"),
        ("evil_link", stat.S_IFLNK | 0o777, "symbolic link"),
        ("evil_dev", stat.S_IFCHR | 0o644, "device file"),
    ],
)
def test_malicious_zip_is_refused_before_writing(sandbox: Path, name: str, mode: int, message: str) -> None:
    zf = make_zip(sandbox / "bad.zip", [("yes/ok.wav", b"ok"), (name, b"../../outside")], {name: mode})
    with zipfile.ZipFile(zf) as z:
        assert name in z.namelist()  # the writer kept the hostile name as is
    with pytest.raises(dl.UnsafeArchiveError, match=message):
        dl.safe_extract(zf, sandbox / "box" / "ds")
    assert_nothing_escaped(sandbox, {"box", "bad.zip"})


def test_existing_dataset_needs_force(sandbox: Path) -> None:
    tar = make_tar(sandbox / "good.tar.gz", list(GOOD_FILES.items()))
    target = sandbox / "box" / "ds"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(dl.DownloadError, match="--force"):
        dl.safe_extract(tar, target)
    assert tree(target) == {"old.txt": b"old"}
    dl.safe_extract(tar, target, force=True)
    assert tree(target) == GOOD_FILES
    assert sorted(p.name for p in (sandbox / "box").iterdir()) == ["ds"]  # old copy and temp removed


def test_strip_components_requires_one_top_folder(sandbox: Path) -> None:
    zf = make_zip(sandbox / "two.zip", [("a/x.txt", b"1"), ("b/y.txt", b"2")])
    with pytest.raises(dl.DownloadError, match="one top folder"):
        dl.safe_extract(zf, sandbox / "box" / "ds", strip_components=1)
    assert_nothing_escaped(sandbox, {"box", "two.zip"})


def test_declared_size_limit(sandbox: Path) -> None:
    tar = make_tar(sandbox / "big.tar.gz", [("a.bin", b"\0" * 5000)])
    with pytest.raises(dl.DownloadError, match="exceeds"):
        dl.safe_extract(tar, sandbox / "box" / "ds", max_bytes=4096)


def test_corrupt_archive_is_a_user_error(sandbox: Path) -> None:
    bad = sandbox / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(dl.DownloadError):
        dl.safe_extract(bad, sandbox / "box" / "ds")


# --------------------------------------------------------------------------- download + checksum
def archive_for(path: Path, sha256: str | None, strip: int = 0) -> dl.Archive:
    return dl.Archive(
        url=path.as_uri(), filename=path.name, sha256=sha256, size=None, target="ds", strip_components=strip
    )


def test_file_url_download_end_to_end(sandbox: Path) -> None:
    src = make_zip(sandbox / "fsdd-1.0.zip", [("fsdd-1.0/recordings/" + n, d) for n, d in GOOD_FILES.items()])
    messages: list[str] = []
    out = dl.fetch(archive_for(src, sha(src), strip=1), sandbox / "box", progress=False, log=messages.append)
    assert out == sandbox / "box" / "ds"
    assert tree(out) == {"recordings/" + n: d for n, d in GOOD_FILES.items()}
    assert sorted(p.name for p in (sandbox / "box").iterdir()) == ["ds"]  # archive not kept, no temp files
    assert any("extracted 3 files" in m for m in messages)


def test_keep_archive_reuses_a_verified_copy(sandbox: Path) -> None:
    src = make_tar(sandbox / "sc.tar.gz", list(GOOD_FILES.items()))
    a = archive_for(src, sha(src))
    dl.fetch(a, sandbox / "box", keep_archive=True, progress=False, log=lambda m: None)
    assert (sandbox / "box" / "sc.tar.gz").read_bytes() == src.read_bytes()
    src.unlink()  # the URL is gone now; a second run must use the kept, verified copy
    dl.fetch(a, sandbox / "box", keep_archive=True, force=True, progress=False, log=lambda m: None)
    assert tree(sandbox / "box" / "ds") == GOOD_FILES


def test_checksum_mismatch_is_refused(sandbox: Path) -> None:
    src = make_tar(sandbox / "sc.tar.gz", list(GOOD_FILES.items()))
    with pytest.raises(dl.ChecksumError, match=f"got {sha(src)}") as info:
        dl.fetch(archive_for(src, "0" * 64), sandbox / "box", progress=False, log=lambda m: None)
    assert "--trust-download" in str(info.value)
    assert list((sandbox / "box").iterdir()) == []  # nothing extracted, download removed


def test_unknown_checksum_needs_trust(sandbox: Path) -> None:
    src = make_tar(sandbox / "sc.tar.gz", list(GOOD_FILES.items()))
    with pytest.raises(dl.ChecksumError, match="no pinned sha256"):
        dl.fetch(archive_for(src, None), sandbox / "box", progress=False, log=lambda m: None)
    messages: list[str] = []
    dl.fetch(
        archive_for(src, None), sandbox / "box", trust_download=True, progress=False, log=messages.append
    )
    assert tree(sandbox / "box" / "ds") == GOOD_FILES
    assert any(sha(src) in m and "warning" in m for m in messages)  # the computed hash is shown


def test_missing_url_is_a_download_error(sandbox: Path) -> None:
    a = archive_for(sandbox / "does-not-exist.tar.gz", "0" * 64)
    with pytest.raises(dl.DownloadError, match="failed"):
        dl.fetch(a, sandbox / "box", progress=False, log=lambda m: None)
    assert list((sandbox / "box").iterdir()) == []
    with pytest.raises(dl.DownloadError, match="scheme"):
        dl.download("ftp://example.org/x.zip", sandbox / "x.zip", progress=False)


def test_registry_is_complete() -> None:
    assert set(dl.DATASETS) >= {"speech_commands", "fsdd"}
    for archives in dl.DATASETS.values():
        for a in archives:
            assert a.url.startswith("https://") and a.filename.endswith((".tar.gz", ".zip"))
            assert a.sha256 is not None and len(a.sha256) == 64 and a.hash_source


# --------------------------------------------------------------------------- CLI
def test_cli_uses_archive_dir_and_checks_hash(sandbox: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The FSDD entry with a locally supplied (fake) archive: refused, then accepted with --trust-download."""
    fake = make_zip(
        sandbox / "free-spoken-digit-dataset-1.0.10.zip",
        [("free-spoken-digit-dataset-1.0.10/recordings/0_george_0.wav", b"RIFF")],
    )
    argv = ["--dataset", "fsdd", "--out", str(sandbox / "box"), "--archive-dir", str(sandbox), "--quiet"]
    assert dl.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sha256 mismatch" in err and sha(fake) in err
    assert dl.main([*argv, "--trust-download"]) == 0
    assert (sandbox / "box" / "fsdd" / "recordings" / "0_george_0.wav").read_bytes() == b"RIFF"
    capsys.readouterr()
    assert dl.main([*argv, "--trust-download"]) == 2  # exists now: needs --force
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--dataset", "imagenet", "--out", "x"], ["--dataset", "fsdd"]])
def test_cli_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert dl.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("download: error:")
