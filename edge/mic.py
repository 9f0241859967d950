"""Microphones through the optional `sounddevice` package (PortAudio): listing and capture.

Capture opens the device at its own default rate and channel count and converts the blocks with
`PcmConverter`, the same code that converts audio files, so a 44.1/48 kHz stereo microphone gives what a
WAV file recorded from it would give.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from edge.audio import PcmConverter
from edge.errors import UserError


@dataclass(frozen=True)
class InputDevice:
    """One audio input as PortAudio reports it."""

    index: int
    name: str
    channels: int  # maximum input channels: what capture opens
    default_rate: int  # the device's default sample rate: what capture opens
    default: bool  # the system's default input

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "channels": self.channels,
                "default_rate": self.default_rate, "default": self.default}


def sounddevice() -> Any:
    """The sounddevice module, or a `UserError` saying how to get it."""
    try:
        import sounddevice as sd  # optional dependency: pip install '.[mic]'
    except (ImportError, OSError) as exc:
        raise UserError(f"microphones need the sounddevice package and PortAudio ({exc}); pip install sounddevice") from exc
    return sd


def device_argument(device: str | None) -> int | str | None:
    """`--device` as sounddevice takes it: an index when it is a number, else (part of) a name."""
    return int(device) if device is not None and device.isdigit() else device


def input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, in PortAudio's order."""
    sd = sounddevice()
    try:
        default_input = sd.default.device[0]
        return [InputDevice(i, str(d["name"]), int(d["max_input_channels"]), int(d["default_samplerate"]),
                            i == default_input)
                for i, d in enumerate(sd.query_devices()) if d["max_input_channels"] > 0]
    except Exception as exc:  # noqa: BLE001 - PortAudio raises several types
        raise UserError(f"cannot list audio devices: {exc}") from exc


def _open(sd: Any, device: str | None, callback: Any) -> tuple[Any, dict[str, Any]]:
    """An input stream at the device's default rate and full channel count, and the device's info."""
    dev = device_argument(device)
    try:
        info = sd.query_devices(dev, kind="input")
        rate = int(info["default_samplerate"])
        stream = sd.InputStream(samplerate=rate, channels=int(info["max_input_channels"]), dtype="int16",
                                blocksize=rate // 100, device=dev, callback=callback)
    except Exception as exc:  # noqa: BLE001 - PortAudio raises several types for missing devices
        raise UserError(f"cannot open microphone {device if device is not None else '(default)'}: {exc}") from exc
    return stream, info


def mic_chunks(target_rate: int, device: str | None, seconds: float, stats: dict[str, int],
               notes: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """int16 mono blocks at `target_rate` from a microphone, for `seconds` (0: until interrupted).

    Input overflows reported by PortAudio are counted in `stats["overflows"]`. `notes(text)` receives one
    line naming the device's format when it is converted.
    """
    sd = sounddevice()
    blocks: queue.Queue[np.ndarray] = queue.Queue()

    def callback(indata, frames, time_info, status):  # noqa: ARG001 - sounddevice's signature
        if status.input_overflow:
            stats["overflows"] += 1
        blocks.put(indata.copy())

    stream, info = _open(sd, device, callback)
    rate, channels = int(info["default_samplerate"]), int(info["max_input_channels"])
    converter = PcmConverter(rate, target_rate, channels, source=f"microphone {info['name']}")
    if notes and not converter.passthrough:
        notes(f"note: microphone {info['name']}: {rate} Hz, {channels} channel(s) -> resampled/mixed to "
              f"{target_rate} Hz mono")
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    with stream:
        while time.monotonic() < deadline:
            try:
                yield converter.process(blocks.get(timeout=0.5))
            except queue.Empty:
                continue
    yield converter.flush()
