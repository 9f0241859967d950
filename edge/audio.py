"""Audio input: WAV reading (any PCM/float subtype, any channel count), resampling, int16 conversion.

Everything is streamable: `iter_wav_chunks` reads a file block by block and resamples with carried state,
so an hour-long file costs the same memory as a second. `load_wav` is the concatenation of the chunks.
Only samples the decoder returned are ever used: a file shorter than its header says is read to its end
with one note on stderr, a decoder failure is an `AudioError`, and so is a sample rate outside
MIN_SAMPLE_RATE..MAX_SAMPLE_RATE.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge.errors import AudioError
from edge.quiet import filtered_fd2

#: Samples per block read from disk by `iter_wav_chunks`.
DEFAULT_BLOCK = 16000

#: Sample rates (Hz) a file may declare. Outside them a header is corrupt rather than real, and the resampler's
#: filter, 32 taps per unit of the larger term of the reduced rate ratio, would ask for gigabytes.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4_000, 192_000

#: Bytes per sample of the subtypes whose WAV data size gives the sample count (fixed-size samples).
_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                 "ULAW": 1, "ALAW": 1}


def _soundfile():
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # pragma: no cover - depends on the installation
        raise AudioError(f"soundfile (libsndfile) is not available: {exc}") from exc
    return soundfile


@functools.lru_cache(maxsize=16)
def _polyphase_table(up: int, down: int, zero_crossings: float, kaiser_beta: float, rolloff: float,
                     unity_dc: bool) -> np.ndarray:
    """The filter of `Resampler` as [phase, tap] (read-only: shared through the cache). Row `phase` multiplies
    x[i_max - j] for the outputs whose upsampled position has that phase."""
    factor = max(up, down)
    half = zero_crossings * factor  # the Kaiser window's half-length in upsampled samples
    center = int(half)
    length = 2 * center + 1
    cutoff = rolloff * 0.5 / factor  # cycles per sample at the upsampled rate
    t = np.arange(length) - center
    window = np.i0(kaiser_beta * np.sqrt(1 - (t / half) ** 2.0)) / np.i0(float(kaiser_beta))
    h = 2 * cutoff * np.sinc(2 * cutoff * t) * window * up
    taps = -(-length // up)
    padded = np.zeros(taps * up)
    padded[:length] = h
    table = padded.reshape(taps, up).T.copy()
    if unity_dc:
        table /= table.sum(axis=1, keepdims=True)  # every phase passes DC with gain exactly one
    table.setflags(write=False)
    return table


class Resampler:
    """Polyphase windowed-sinc (Kaiser) rational resampler with carried state: the one resampler of the project
    (files and microphones at any rate, speed perturbation in training, speech synthesis).

    `process()` may be called with chunks of any size; `flush()` returns the tail. The output of
    process(a)+process(b)+flush() equals process(a+b)+flush() exactly, and the total length is
    ceil(n_in * dst / src). The filter has `zero_crossings` sinc lobes per side at the lower of the
    two Nyquist rates, its cut-off at `rolloff` x that Nyquist rate (slightly below, so the transition band
    does not alias), and the group delay is compensated so the output is time-aligned: output sample m is the
    input at time m / dst_rate. With `unity_dc` every filter phase is scaled to pass DC with gain exactly one.
    """

    def __init__(self, src_rate: int, dst_rate: int, zero_crossings: float = 16, kaiser_beta: float = 8.6,
                 rolloff: float = 0.95, unity_dc: bool = False):
        if src_rate <= 0 or dst_rate <= 0:
            raise AudioError(f"invalid sample rates {src_rate} -> {dst_rate}")
        if not 0.0 < rolloff < 1.0:
            raise ValueError(f"rolloff must be in (0, 1), got {rolloff}")
        g = math.gcd(src_rate, dst_rate)
        self.up, self.down = dst_rate // g, src_rate // g
        self.center = int(zero_crossings * max(self.up, self.down))
        self.table = _polyphase_table(self.up, self.down, zero_crossings, kaiser_beta, rolloff, unity_dc)
        self.taps = self.table.shape[1]
        self._buffer = np.zeros(0)
        self._buffer_start = 0  # absolute index of _buffer[0]
        self._n_in = 0
        self._n_out = 0

    def _position(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = n * self.down + self.center
        i_max = m // self.up
        return i_max, m - i_max * self.up

    def _emit(self, n_stop: int) -> np.ndarray:
        n = np.arange(self._n_out, n_stop)
        if len(n) == 0:
            return np.zeros(0)
        i_max, phase = self._position(n)
        newest = i_max - self._buffer_start  # buffer index of each output's newest input sample
        before = max(0, self.taps - 1 - int(newest[0]))  # samples before the start of the signal are zeros
        buffer = np.concatenate([np.zeros(before), self._buffer]) if before else self._buffer
        # values[k, j] = buffer[newest[k] + before - j]: row k is a window of the reversed buffer
        windows = sliding_window_view(buffer[::-1], self.taps)
        values = windows[len(buffer) - 1 - before - newest]
        out = np.einsum("nj,nj->n", values, self.table[phase])
        self._n_out = n_stop
        keep_from = self._position(np.array([n_stop]))[0][0] - self.taps + 1
        drop = max(0, min(keep_from - self._buffer_start, len(self._buffer)))
        self._buffer = self._buffer[drop:]
        self._buffer_start += drop
        return out

    def _ready(self, n_available: int) -> int:
        """Number of outputs whose newest needed input index is < n_available."""
        # largest n with (n*down + center)//up <= n_available - 1
        limit = (n_available * self.up - 1 - self.center) // self.down + 1
        return max(limit, self._n_out)

    def process(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        self._buffer = np.concatenate([self._buffer, x])
        self._n_in += len(x)
        if self.up == self.down:
            self._n_out += len(x)
            out, self._buffer, self._buffer_start = self._buffer, np.zeros(0), self._n_in
            return out
        return self._emit(self._ready(self._n_in))

    def flush(self) -> np.ndarray:
        total = -(-self._n_in * self.up // self.down)
        if self.up == self.down or total <= self._n_out:
            return np.zeros(0)
        needed = self._position(np.array([total - 1]))[0][0] + 1
        pad = max(0, needed - self._n_in)
        self._buffer = np.concatenate([self._buffer, np.zeros(pad)])
        return self._emit(total)


#: `resample` goes phase by phase when every filter phase serves at least this many outputs; below it one call
#: per phase costs more than gathering the windows (measured: even at about 5 outputs per phase).
MIN_OUTPUTS_PER_PHASE = 8


def resample(x: np.ndarray, src_rate: int, dst_rate: int, *, zero_crossings: float = 16, kaiser_beta: float = 8.6,
             rolloff: float = 0.95, unity_dc: bool = False, block: int = DEFAULT_BLOCK) -> np.ndarray:
    """Resample a whole float signal (see `Resampler` for the filter parameters); float64 out.

    The result is that of a fresh `Resampler` fed all of `x` and flushed, bit for bit (a test checks). Where each
    filter phase serves `MIN_OUTPUTS_PER_PHASE` outputs or more it is computed phase by phase on views of one
    reversed copy of the signal (`_resample_whole`: no [outputs, taps] temporaries); otherwise the signal is fed to
    a `Resampler` `block` samples at a time, so that memory stays bounded however long the signal."""
    if src_rate == dst_rate:
        return np.asarray(x, dtype=np.float64).copy()
    r = Resampler(src_rate, dst_rate, zero_crossings, kaiser_beta, rolloff, unity_dc)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if len(x) >= MIN_OUTPUTS_PER_PHASE * r.down:  # about len(x) * up / down outputs, up phases
        return _resample_whole(x, r.up, r.down, r.center, r.table)
    return np.concatenate([r.process(x[i : i + block]) for i in range(0, len(x), block)] + [r.flush()])


def _resample_whole(x: np.ndarray, up: int, down: int, center: int, table: np.ndarray) -> np.ndarray:
    """`Resampler`'s outputs for the whole of `x` (zeros outside it), grouped by filter phase.

    The outputs r, r + up, r + 2 up, ... share the phase row of `table` and their newest input samples step by
    `down`, so their windows are rows of a strided view of the reversed signal. Each output is the same einsum
    row product as in `Resampler._emit` (the same values times the same taps, summed by the same contiguous
    kernel), so the bits are the same; only the gathered copies are gone.
    """
    taps = table.shape[1]
    total = -(-len(x) * up // down)
    out = np.empty(total)
    if total == 0:
        return out
    last = ((total - 1) * down + center) // up  # newest input sample of the last output
    kept = min(len(x), last + 1)
    rev = np.zeros(last + taps)  # rev[q] = x[last - q], zero outside the signal
    rev[last - kept + 1 : last + 1] = x[:kept][::-1]
    windows = sliding_window_view(rev, taps)  # row q: x[last - q - j] for tap j
    for phase_start in range(min(up, total)):
        newest, phase = divmod(phase_start * down + center, up)
        count = (total - 1 - phase_start) // up + 1
        first = last - newest  # the window of output phase_start; later outputs of this phase lie below it
        rows = windows[first - (count - 1) * down : first + 1 : down]  # ascending rows: reversed output order
        np.einsum("nj,j->n", rows, table[phase], out=out[phase_start::up][::-1])
    return out


def float_to_int16(x: np.ndarray) -> np.ndarray:
    """[-1, 1) float -> int16, rounding to nearest and saturating (never truncating)."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


class PcmConverter:
    """Streaming conversion of audio blocks at any rate and channel count to int16 mono at `dst_rate`.

    The one path from foreign audio to the model's input, shared by files (`iter_wav_chunks`), microphones
    and `edge.KeywordSpotter`: channels are mixed down by their mean, the rate is changed by `Resampler`
    (state carried across blocks), and the result is rounded to int16 with saturation. int16 mono input at
    `dst_rate` passes through bit-exactly.

    Blocks are numpy arrays, `[n, channels]` or 1-D (interleaved when `channels` > 1), int16 (full scale
    32768) or float (full scale 1.0); `process_bytes` takes little-endian int16 bytes of any length and
    keeps an incomplete sample frame for the next call. `source` names the input in error messages.
    """

    def __init__(self, src_rate: int, dst_rate: int, channels: int = 1, source: str = "audio") -> None:
        if channels < 1:
            raise AudioError(f"{source}: channel count must be at least 1, got {channels}")
        self.src_rate, self.dst_rate, self.channels, self.source = src_rate, dst_rate, channels, source
        self._resampler = Resampler(src_rate, dst_rate) if src_rate != dst_rate else None
        self._pending = b""

    @property
    def passthrough(self) -> bool:
        """True when int16 input is passed on unchanged (mono, already at `dst_rate`)."""
        return self._resampler is None and self.channels == 1

    def _frames(self, block: np.ndarray) -> np.ndarray:
        """`block` as [n, channels], refusing shapes that do not fit the channel count."""
        if block.ndim == 1 and len(block) % self.channels == 0:
            return block.reshape(-1, self.channels)
        if block.ndim == 2 and block.shape[1] == self.channels:
            return block
        raise AudioError(f"{self.source}: a block of shape {block.shape} does not hold {self.channels}-channel audio")

    def process(self, block: np.ndarray) -> np.ndarray:
        """Convert one block; returns int16 mono at `dst_rate` (possibly empty while the resampler fills)."""
        frames = self._frames(np.asarray(block))
        if frames.dtype == np.int16:
            if self.passthrough:
                return frames[:, 0].copy()
            x = frames.astype(np.float64) / 32768.0
        elif np.issubdtype(frames.dtype, np.floating):
            x = frames.astype(np.float64)
            if not np.all(np.isfinite(x)):
                raise AudioError(f"{self.source}: contains NaN or infinite samples")
        else:
            raise AudioError(f"{self.source}: samples must be int16 or float, got {frames.dtype}")
        mono = x.mean(axis=1)
        return float_to_int16(self._resampler.process(mono) if self._resampler else mono)

    def process_bytes(self, data: bytes | bytearray | memoryview) -> np.ndarray:
        """Convert little-endian int16 bytes (interleaved channels); an incomplete frame waits for more."""
        buf = self._pending + bytes(data)
        usable = len(buf) - len(buf) % (2 * self.channels)
        self._pending = buf[usable:]
        return self.process(np.frombuffer(buf[:usable], dtype="<i2").astype(np.int16))

    def flush(self) -> np.ndarray:
        """The resampler's tail at the end of the stream (an incomplete byte frame is dropped)."""
        self._pending = b""
        return float_to_int16(self._resampler.flush()) if self._resampler else np.zeros(0, dtype=np.int16)


def _reason(exc: Exception) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_mpeg(path: Path) -> bool:
    """Whether the file starts like an MP3 stream (an ID3 tag or an MPEG audio frame sync)."""
    with open(path, "rb") as f:
        head = f.read(3)
    return head == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _mpg123_chatter(line: str) -> bool:
    """libmpg123's own stderr line on opening an MP3 shorter than its Xing header says (`_read_blocks` gives
    the one note about that instead)."""
    return line.startswith("Warning: Xing stream size off by more than 1%")


def _open(path: Path):
    sf = _soundfile()
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, expected an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    try:
        if _is_mpeg(path):
            with filtered_fd2(_mpg123_chatter):
                handle = sf.SoundFile(str(path))
        else:
            handle = sf.SoundFile(str(path))
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: not a readable audio file ({_reason(exc)})") from exc
    if handle.frames == 0:
        handle.close()
        raise AudioError(f"{path}: contains no audio samples")
    if not MIN_SAMPLE_RATE <= handle.samplerate <= MAX_SAMPLE_RATE:
        handle.close()
        raise AudioError(f"{path}: sample rate {handle.samplerate} Hz is outside the supported "
                         f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz (a corrupt header?)")
    return handle


def _riff_data_bytes(path: Path) -> int | None:
    """The size a RIFF/WAVE header declares for its data chunk; None when the file is not RIFF/WAVE, has no
    data chunk, or carries a streaming writer's placeholder size (0 or 0xFFFFFFFF: "until the end")."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return None
        while len(chunk := f.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                return None if size in (0, 0xFFFFFFFF) else size
            f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even size
    return None


def declared_frames(path: Path, handle) -> int:
    """Samples per channel the file's header declares. libsndfile's own count is what a WAV actually holds when
    its header promises more, so a WAV's data chunk size is read here; other formats use libsndfile's count."""
    width = _SAMPLE_BYTES.get(handle.subtype)
    size = _riff_data_bytes(path) if handle.format in ("WAV", "WAVEX") and width else None
    return handle.frames if size is None else max(handle.frames, size // (width * handle.channels))


def _read_blocks(handle, path: Path, block: int, dtype: str) -> Iterator[np.ndarray]:
    """[samples, channels] arrays, each freshly allocated and holding only what the decoder returned, until it
    returns nothing. One `note:` line on stderr when the file holds fewer samples than its header declares."""
    declared, total = declared_frames(path, handle), 0
    while True:
        try:
            data = handle.read(block, dtype=dtype, always_2d=True)
        except RuntimeError as exc:  # soundfile.LibsndfileError: the decoder failed (e.g. a truncated FLAC)
            raise AudioError(f"{path}: cannot be decoded after sample {total} ({_reason(exc)})") from exc
        if len(data) == 0:
            break
        total += len(data)
        yield data
    if total == 0:
        raise AudioError(f"{path}: contains no audio samples")
    if total < declared:
        print(f"note: {path}: the header declares {declared} samples but the file holds {total} "
              f"(truncated?); the {total} present were used", file=sys.stderr)


def wav_info(path: Path) -> tuple[int, int, int, str]:
    """(sample_rate, channels, frames, subtype) of an audio file, validating that it opens."""
    with _open(path) as f:
        return f.samplerate, f.channels, f.frames, f.subtype


def _is_exact_int16(handle) -> bool:
    return handle.channels == 1 and handle.subtype == "PCM_16"


def iter_wav_chunks(path: Path, target_rate: int, block: int = DEFAULT_BLOCK) -> Iterator[np.ndarray]:
    """Yield int16 mono chunks at `target_rate` from any WAV/FLAC file, with constant memory.

    16-bit mono files at the target rate are passed through bit-exactly. Everything else goes through
    `PcmConverter` (mean of the channels, `Resampler`, rounding to int16), as microphone input does. NaN or
    infinite samples are refused rather than silently turned into something else.
    """
    with _open(path) as f:
        if _is_exact_int16(f) and f.samplerate == target_rate:
            for data in _read_blocks(f, path, block, "int16"):
                yield data[:, 0].copy()
            return
        converter = PcmConverter(f.samplerate, target_rate, f.channels, source=str(path))
        for data in _read_blocks(f, path, block, "float64"):
            out = converter.process(data)
            if len(out):
                yield out
        tail = converter.flush()
        if len(tail):
            yield tail


def load_wav(path: Path, target_rate: int) -> np.ndarray:
    """Whole file as int16 mono at `target_rate` (see `iter_wav_chunks`)."""
    chunks = list(iter_wav_chunks(path, target_rate))
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


def write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    """Write int16 mono PCM."""
    _soundfile().write(str(path), np.asarray(pcm, dtype=np.int16), rate, subtype="PCM_16")
