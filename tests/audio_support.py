"""Real audio files made broken on purpose from tests/data: truncated, re-encoded, with patched headers."""

from __future__ import annotations

import struct
from pathlib import Path

import soundfile as sf

from conftest import need

DATA = Path(__file__).parent / "data"
YES = DATA / "speech_yes.wav"  # 16-bit mono 16 kHz, 16000 samples, canonical 44-byte header


def with_rate(tmp: Path, rate: int) -> Path:
    """speech_yes.wav with its header's sample rate (and byte rate) patched to `rate`."""
    raw = bytearray(YES.read_bytes())
    fmt = raw.index(b"fmt ")
    channels, bits = struct.unpack_from("<H", raw, fmt + 10)[0], struct.unpack_from("<H", raw, fmt + 22)[0]
    struct.pack_into("<II", raw, fmt + 12, rate, rate * channels * bits // 8)
    path = tmp / f"rate{rate}.wav"
    path.write_bytes(bytes(raw))
    return path


def truncated(tmp: Path, source: Path, keep: float | int, name: str) -> Path:
    """`source`'s first `keep` bytes (a fraction of them when a float)."""
    raw = source.read_bytes()
    path = tmp / name
    path.write_bytes(raw[: int(len(raw) * keep) if isinstance(keep, float) else keep])
    return path


def encoded(tmp: Path, fmt: str) -> Path:
    """speech_yes.wav re-encoded as `fmt` by libsndfile (skipped locally, failed in CI, where it cannot)."""
    need(fmt in sf.available_formats(), f"this libsndfile ({sf.__libsndfile_version__}) cannot write {fmt}")
    path = tmp / f"yes.{fmt.lower()}"
    sf.write(path, sf.read(YES, dtype="int16")[0], 16000, format=fmt)
    return path
