"""espeak-ng through ctypes: one utterance per call, loaded, seeded and unloaded each time (see the package
docstring for why), in synchronous mode so that the audio comes back through a callback."""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from train.synth.dsp import resample, to_int16
from train.synth.settings import RATE_LIMITS, TARGET_RATE, SynthError


_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER values from speak_lib.h


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_ESPEAK_LOCK = threading.Lock()  # libespeak-ng is process-global


def _loader():
    try:
        import espeakng_loader
    except ImportError as exc:
        raise SynthError("espeak-ng is not available: pip install espeakng-loader") from exc
    return espeakng_loader


def espeak_data_path() -> Path:
    """The espeak-ng-data folder shipped by espeakng-loader."""
    try:
        return Path(_loader().get_data_path())
    except RuntimeError as exc:
        raise SynthError(f"espeak-ng voice data missing: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _variant_names() -> tuple[str, ...]:
    folder = espeak_data_path() / "voices" / "!v"
    return tuple(sorted(p.name for p in folder.iterdir() if p.is_file())) if folder.is_dir() else ()


def available_variants() -> list[str]:
    """Names of all variant files in the shipped espeak-ng data (e.g. 'f3', 'klatt', 'm1')."""
    return list(_variant_names())


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
        ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None


def _unload(lib: ctypes.CDLL) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(lib._handle)


def _run_espeak(action: Callable[[ctypes.CDLL], object]) -> object:
    """Load libespeak-ng, initialize it in synchronous mode, run `action(lib)`, unload it again."""
    loader = _loader()
    with _ESPEAK_LOCK:
        try:
            lib = ctypes.CDLL(loader.get_library_path())
        except OSError as exc:
            raise SynthError(f"cannot load libespeak-ng: {exc}") from exc
        try:
            _declare(lib)
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(espeak_data_path()).encode(), 0)
            if rate <= 0:
                raise SynthError("espeak-ng failed to initialize (voice data unreadable?)")
            try:
                return action(lib)
            finally:
                lib.espeak_Terminate()
        finally:
            _unload(lib)


def espeak_version() -> str:
    """Version string of the loaded libespeak-ng."""
    return str(_run_espeak(lambda lib: (lib.espeak_Info(None) or b"?").decode()))


def _check_voice(voice: str) -> None:
    base, _, variant = voice.partition("+")
    if not base:
        raise SynthError(f"invalid voice {voice!r}: expected e.g. 'en-us' or 'en-us+f3'")
    if variant and variant not in _variant_names():
        raise SynthError(f"unknown espeak-ng voice variant {variant!r} in {voice!r}")


def _check_text(text: str) -> str:
    text = text.strip()
    if not text:
        raise SynthError("nothing to say: empty text")
    if any(c in text for c in "<>[]\0"):
        raise SynthError(f"text {text!r} contains markup characters")
    return text


def synthesize_native(
    text: str,
    voice: str = "en-us",
    rate_wpm: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """One utterance as espeak-ng produces it: (int16 samples, sample rate in Hz, normally 22050)."""
    text = _check_text(text)
    _check_voice(voice)
    if not RATE_LIMITS[0] <= rate_wpm <= RATE_LIMITS[1]:
        raise SynthError(f"rate {rate_wpm} wpm outside espeak-ng's {RATE_LIMITS[0]}-{RATE_LIMITS[1]}")
    for name, value in (("pitch", pitch), ("pitch_range", pitch_range)):
        if not 0 <= value <= 100:
            raise SynthError(f"{name} {value} outside 0-100")
    chunks: list[np.ndarray] = []

    def collect(wav, n, _events) -> int:
        if wav and n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # continue

    def speak(lib: ctypes.CDLL) -> int:
        callback = _CALLBACK(collect)  # referenced until the end of this call
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SynthError(f"unknown espeak-ng voice {voice!r}")
        for param, value in ((_RATE, rate_wpm), (_PITCH, pitch), (_RANGE, pitch_range)):
            if lib.espeak_SetParameter(param, int(value), 0) != _EE_OK:
                raise SynthError(f"espeak-ng rejected parameter {param}={value}")
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed(int(seed) & 0x7FFFFFFF)
        ctypes.CDLL(None).srand(ctypes.c_uint(int(seed) & 0xFFFFFFFF))  # klatt/breath noise uses rand()
        data = text.encode("utf-8")
        if lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != _EE_OK:
            raise SynthError(f"espeak-ng failed to synthesize {text!r}")
        return int(lib.espeak_ng_GetSampleRate()) if hasattr(lib, "espeak_ng_GetSampleRate") else 22050

    rate = int(_run_espeak(speak))  # type: ignore[call-overload]
    audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    if not np.any(audio):
        raise SynthError(f"espeak-ng produced no sound for {text!r} with voice {voice!r}")
    return audio.astype(np.int16, copy=False), rate


#: espeak_TextToPhonemes' phoneme mode: IPA (bit 1), and bits 8-23 the character put between two phonemes
_IPA_SEPARATED = 0x02 | (ord("^") << 8)


def phonemes(text: str, voice: str = "en-us") -> list[list[str]]:
    """espeak-ng's pronunciation of `text` in IPA: one list per word, one string per phoneme (a stress mark stays
    on the phoneme it comes before: `[["dʒ", "ˈɑːɹ", "v", "ɪ", "s"]]` for "jarvis" with en-us)."""
    text = _check_text(text)
    _check_voice(voice)

    def read(lib: ctypes.CDLL) -> list[str]:
        if lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
            raise SynthError(f"unknown espeak-ng voice {voice!r}")
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        cursor = ctypes.c_char_p(ctypes.addressof(buffer))
        clauses = []
        while cursor.value:  # one clause per call; espeak-ng moves the cursor on, to NULL at the end
            clauses.append((lib.espeak_TextToPhonemes(ctypes.byref(cursor), _CHARS_UTF8, _IPA_SEPARATED) or b"").decode())
        return clauses

    words = " ".join(_run_espeak(read)).split()  # type: ignore[arg-type]
    out = [[p for p in w.split("^") if p] for w in words]
    return [w for w in out if w]


def synthesize(
    text: str,
    voice: str = "en-us",
    rate_wpm: int = 175,
    pitch: int = 50,
    pitch_range: int = 50,
    *,
    seed: int = 0,
) -> np.ndarray:
    """Speak `text` with espeak-ng; int16 mono at 16 kHz, with espeak's own short lead-in/out silence.

    `voice` is a language voice optionally with a variant ('en-us', 'en+f3', 'en-gb-scotland+klatt');
    `rate_wpm` is 80-450 words per minute; `pitch` and `pitch_range` are espeak's 0-100 scales (50 is
    the voice's natural value). `seed` drives the breath/aspiration noise of some variants.
    """
    audio, rate = synthesize_native(text, voice, rate_wpm, pitch, pitch_range, seed=seed)
    return to_int16(resample(audio, rate, TARGET_RATE))
