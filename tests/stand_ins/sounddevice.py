"""Stand-in for the sounddevice package (no audio hardware in the tests): put this folder first on PYTHONPATH.

Device 0 is a microphone whose native format is that of the file named by FAKE_MIC_WAV (its rate and
channel count: a 48 kHz stereo file makes a 48 kHz stereo microphone). Opening it at any other rate or
channel count fails, as PortAudio does for formats a device does not support. It plays the file through
the callback in blocks of `blocksize` frames, flagging an input overflow on every 50th block, as PortAudio
reports them. Device 1 is output-only, device 2 a second (silent, never opened) input.
"""

import os
import threading

import soundfile as sf


class PortAudioError(Exception):
    pass


class _Default:
    device = [0, 1]  # (input, output), as sounddevice.default.device


default = _Default()


def _devices() -> list:
    wav = os.environ.get("FAKE_MIC_WAV")
    info = sf.info(wav) if wav else None
    return [
        {"name": "Fake USB microphone", "index": 0, "max_input_channels": info.channels if info else 1,
         "max_output_channels": 0, "default_samplerate": float(info.samplerate if info else 16000)},
        {"name": "Fake speaker", "index": 1, "max_input_channels": 0, "max_output_channels": 2,
         "default_samplerate": 48000.0},
        {"name": "Fake line in", "index": 2, "max_input_channels": 2, "max_output_channels": 0,
         "default_samplerate": 44100.0},
    ]


def query_devices(device=None, kind=None):
    devices = _devices()
    if device is None and kind is None:
        return devices
    if device is None:
        device = default.device[0 if kind == "input" else 1]
    for d in devices:
        if d["index"] == device or (isinstance(device, str) and device.lower() in d["name"].lower()):
            if kind == "input" and d["max_input_channels"] == 0:
                break
            return d
    raise ValueError(f"No {kind or ''} device matching {device!r}")


class _Status:
    def __init__(self, overflow):
        self.input_overflow = overflow


class InputStream:
    def __init__(self, samplerate, channels, dtype, blocksize, device, callback):
        native = query_devices(device, kind="input")
        if native["index"] != 0:
            raise PortAudioError(f"Device unavailable [PaErrorCode -9985]: {native['name']}")
        if (samplerate, channels) != (native["default_samplerate"], native["max_input_channels"]):
            raise PortAudioError(f"Invalid sample rate or channel count [PaErrorCode -9997]: {samplerate}, {channels}")
        assert dtype == "int16"
        self.pcm, _ = sf.read(os.environ["FAKE_MIC_WAV"], dtype="int16", always_2d=True)
        self.block, self.callback = blocksize, callback

    def __enter__(self):
        def play():
            for k, i in enumerate(range(0, len(self.pcm) - self.block + 1, self.block)):
                self.callback(self.pcm[i:i + self.block], self.block, None, _Status(k % 50 == 49))

        self.thread = threading.Thread(target=play)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join()
