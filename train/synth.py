"""Offline synthetic keyword data: espeak-ng speech in the Speech Commands layout.

Nothing here needs a network. libespeak-ng and its voice data come from the PyPI package
`espeakng-loader`; the library is driven through ctypes in synchronous (retrieval) mode, so the audio
comes back through a callback instead of being played.

Determinism: libespeak-ng keeps static state between utterances (e.g. the pitch-flutter phase) that
`espeak_Terminate` does not reset, and some voices draw noise from a random generator. Every utterance
therefore loads the library, synthesizes, and unloads it again (~1 ms extra), and seeds both espeak-ng's
generator and libc's `rand()` first. The same arguments then give the same samples in any process and in
any order. (If some other code in the same process keeps libespeak-ng loaded, the unload cannot happen
and outputs may depend on history; `tests/test_synth.py` checks repeatability.)

Dataset layout written by `generate_dataset` (read by `edge.datasets.load_folder`):

    out_dir/<word>/<speaker>_nohash_<n>.wav      16 kHz mono int16, exactly 1.0 s
    out_dir/_background_noise_/*.wav             white, pink, brown, hum + made-up-word babble
    out_dir/validation_list.txt, testing_list.txt  speaker-disjoint splits
    out_dir/speakers.tsv                         speaker id -> voice, variant, base pitch, split
    out_dir/synth_info.json                      the generation settings (marks the folder as ours)

A "speaker" is one espeak-ng voice + variant + base pitch; each speaker belongs to exactly one split.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import wave
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from edge import audio as edge_audio
from edge.errors import EXIT_USER_ERROR, UserError
from train import voices

#: synthesis engines, in the order their speakers are listed and split (`train.voices`)
ENGINES: tuple[str, ...] = ("espeak", "flite", "piper")

TARGET_RATE = 16000
CLIP_SAMPLES = TARGET_RATE  # every word clip is exactly 1.0 s
#: running-speech negatives: short sentences of common words in this folder (label `_unknown_`), 3.0 s each
SENTENCE_FOLDER = "sentences"
SENTENCE_SAMPLES = 3 * TARGET_RATE
SENTENCE_WORDS = (3, 7)
SPLITS = ("train", "validation", "test")
BACKGROUND_DIR = "_background_noise_"
INFO_FILE = "synth_info.json"
FORMAT_VERSION = 1

#: English language voices shipped in espeak-ng-data/lang/gmw (en-Shaw is Shavian script, not an accent).
ENGLISH_VOICES: tuple[str, ...] = (
    "en",  # British English (default)
    "en-us",
    "en-gb-x-rp",  # received pronunciation
    "en-gb-scotland",
    "en-us-nyc",
    "en-029",  # Caribbean
    "en-gb-x-gbclan",  # Lancashire
    "en-gb-x-gbcwmd",  # West Midlands
)

#: Voice variants from espeak-ng-data/voices/!v that sound like a person. Left out on purpose: the
#: robot/echo/effect variants (robosoft*, RicishayMax*, UniRobot, anikaRobot, announcer, Demonic,
#: croak, Tweaky, Mr serious, fast) and exotic spectral tilts. "" is the plain voice.
HUMAN_VARIANTS: tuple[str, ...] = (
    "",
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
    "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4",
    "Alex", "Andy", "Annie", "Andrea", "Denis", "Gene", "Jacky", "Lee", "Michael",
    "adam", "aunty", "belinda", "benjamin", "david", "ed", "edward", "grandma", "grandpa",
    "gustave", "ian", "john", "linda", "marcelo", "max", "michel", "norbert", "paul",
    "quincy", "rob", "robert", "shelby", "steph", "travis", "victor", "whisper", "whisperf",
)  # fmt: skip

#: Base pitch levels (espeak 0-100 scale, 50 = the variant's natural pitch) that make up a speaker.
BASE_PITCHES: tuple[int, ...] = (35, 50, 65)

#: Common English words used as non-keywords (`_unknown_`). Homophones of likely keywords
#: ("know", "to", "for", "won", "ate", "write") are deliberately absent.
DEFAULT_NEGATIVES: tuple[str, ...] = (
    "apple", "banana", "window", "garden", "water", "music", "paper", "yellow", "pencil", "table",
    "orange", "river", "doctor", "kitchen", "morning", "summer", "monkey", "basket", "button", "camera",
    "letter", "people", "little", "money", "maybe", "hello", "thanks", "please", "later", "again",
    "never", "purple", "sister", "coffee",
)  # fmt: skip

_WORD_RE = re.compile(r"^[a-z]+(?:['-][a-z]+)*(?: [a-z]+(?:['-][a-z]+)*)*$")


class SynthError(UserError):
    """Synthesis or dataset-generation problem the user can fix (bad word, voice, folder...)."""


# =========================================================================== resampling
#: The synthesis low-pass of `edge.audio.Resampler`: cut-off at 0.93 x the lower Nyquist rate, 48 sinc lobes of
#: that cut-off per side (48 / 0.93 lobes of the Nyquist rate, `Resampler`'s unit), Kaiser beta 8.6 (about 86 dB
#: stop-band attenuation), every filter phase with unity DC gain.
RESAMPLE_ROLLOFF = 0.93
RESAMPLE_ZERO_CROSSINGS = 48 / RESAMPLE_ROLLOFF
RESAMPLE_KAISER_BETA = 8.6


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited rational resampling of a 1-D signal: `edge.audio.resample` with the synthesis low-pass.

    With it at 22050 -> 16000 Hz the pass band is flat to about 7.0 kHz and everything above about 7.9 kHz is
    removed before it can alias. Output sample m is the input evaluated at time m / dst_rate (no delay); samples
    beyond the ends count as zero. Length: ceil(len(x) * dst_rate / src_rate). Integer input is converted to
    float without rescaling; the result is float32 unless the input is float64.
    """
    if not (isinstance(src_rate, (int, np.integer)) and isinstance(dst_rate, (int, np.integer))):
        raise ValueError("sample rates must be integers")
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"resample expects a 1-D signal, got shape {x.shape}")
    out_dtype = np.float64 if x.dtype == np.float64 else np.float32
    y = edge_audio.resample(x, int(src_rate), int(dst_rate), zero_crossings=RESAMPLE_ZERO_CROSSINGS,
                            rolloff=RESAMPLE_ROLLOFF, kaiser_beta=RESAMPLE_KAISER_BETA, unity_dc=True)
    return y.astype(out_dtype)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round and saturate to int16."""
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


# =========================================================================== espeak-ng through ctypes
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER values from speak_lib.h
RATE_LIMITS = (80, 450)  # espeakRATE_MINIMUM / MAXIMUM, words per minute
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


# =========================================================================== speakers and clip plans
@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker. espeak: voice + variant + base pitch (0-100); flite: voice + mean F0 in Hz;
    piper: voice + warp in percent (see `train.voices`)."""

    voice: str
    variant: str
    pitch: int
    engine: str = "espeak"

    @property
    def espeak_voice(self) -> str:
        return f"{self.voice}+{self.variant}" if self.variant else self.voice

    @property
    def speaker_id(self) -> str:
        """8 hex digits like Speech Commands; stable for a given engine, voice, variant and pitch."""
        key = f"{self.voice}+{self.variant}@{self.pitch}"
        if self.engine != "espeak":
            key = f"{self.engine}:{key}"
        return f"{zlib.crc32(key.encode()) ^ 0x5EED5EED:08x}"


@dataclass(frozen=True)
class SynthConfig:
    """What varies between clips. Ranges are inclusive."""

    voices: tuple[str, ...] = ENGLISH_VOICES
    variants: tuple[str, ...] = HUMAN_VARIANTS
    pitches: tuple[int, ...] = BASE_PITCHES
    rate_wpm: tuple[int, int] = (130, 210)
    pitch_jitter: int = 4  # per clip, around the speaker's base pitch
    pitch_range: tuple[int, int] = (25, 85)
    gain_db: tuple[float, float] = (-4.5, 4.5)  # around a -6 dBFS peak
    noise_floor_dbfs: float | None = -72.0  # faint white noise so silence is never digital zero
    validation_fraction: float = 0.1
    testing_fraction: float = 0.1
    noise_seconds: float = 45.0
    #: synthesis engines (`train.voices`): espeak-ng always; flite and piper where installed
    engines: tuple[str, ...] = ("espeak",)
    #: share of clips per engine (same order as `engines`; renormalised over the engines of each split)
    engine_weights: tuple[float, ...] = (1.0,)
    #: share of keyword clips said inside a carrier phrase ("hey jarvis"); the keyword stays at the end
    carrier_share: float = 0.0
    carriers: tuple[str, ...] = ("hey", "okay", "hi", "oh")

    def validate(self) -> None:
        if not self.voices or not self.pitches:
            raise SynthError("need at least one voice and one pitch")
        unknown = [e for e in self.engines if e not in ENGINES]
        if unknown or not self.engines:
            raise SynthError(f"unknown synthesis engines {unknown}; choose from {', '.join(ENGINES)}")
        if len(self.engine_weights) != len(self.engines) or min(self.engine_weights) <= 0:
            raise SynthError("engine_weights: one positive weight per engine")
        if not 0.0 <= self.carrier_share <= 1.0:
            raise SynthError("carrier_share must be in [0, 1]")
        if not 0 <= self.validation_fraction < 1 or not 0 <= self.testing_fraction < 1:
            raise SynthError("split fractions must be in [0, 1)")
        if self.validation_fraction + self.testing_fraction >= 1:
            raise SynthError("validation + testing fractions must leave some training data")
        lo, hi = self.rate_wpm
        if not RATE_LIMITS[0] <= lo <= hi <= RATE_LIMITS[1]:
            raise SynthError(f"rate range {self.rate_wpm} outside {RATE_LIMITS}")
        if not 1.0 <= self.noise_seconds <= 600.0:
            raise SynthError("noise_seconds must be between 1 and 600")


def usable_engines(config: SynthConfig) -> list[str]:
    """The configured engines that are installed here (a missing one is left out; see `voices.available_engines`)."""
    reasons = voices.available_engines()
    return [e for e in config.engines if reasons.get(e) is None]


def speaker_pool(config: SynthConfig) -> list[Speaker]:
    """espeak: every voice x available variant x base pitch (variants missing from the shipped data are
    skipped); flite: every voice x its F0 settings; piper: every voice x warp. Only usable engines."""
    engines = usable_engines(config)
    out: list[Speaker] = []
    if "espeak" in engines:
        present = set(available_variants())
        variants = [v for v in config.variants if v == "" or v in present]
        if not variants:
            raise SynthError("none of the requested espeak-ng variants exist in the shipped voice data")
        out += [Speaker(voice, var, pitch) for voice in config.voices for var in variants for pitch in config.pitches]
    if "flite" in engines:
        out += [Speaker(v, "", f0, "flite") for v in voices.FLITE_VOICES for f0 in voices.FLITE_F0[v]]
    if "piper" in engines:
        out += [Speaker(v, "", w, "piper") for v in voices.PIPER_VOICES for w in voices.PIPER_WARPS]
    if not out:
        raise SynthError(f"none of the synthesis engines {', '.join(config.engines)} is installed")
    return out


def assign_speaker_splits(speakers: Sequence[Speaker], config: SynthConfig, seed: int) -> dict[Speaker, str]:
    """Per engine, a seeded shuffle; the first fractions of its speakers go to validation and test, the rest
    to train (so every engine has training speakers; espeak's draw is the same as with espeak alone)."""
    split_of: dict[Speaker, str] = {}
    for k, engine in enumerate(ENGINES):
        group = [s for s in speakers if s.engine == engine]
        if group:
            rng = np.random.default_rng([seed, 0x5B1] if k == 0 else [seed, 0x5B1, k])
            split_of.update(_split_group(group, config, rng))
    return split_of


def _split_group(speakers: Sequence[Speaker], config: SynthConfig, rng: np.random.Generator) -> dict[Speaker, str]:
    order = rng.permutation(len(speakers))
    n_val = int(round(config.validation_fraction * len(speakers)))
    n_test = int(round(config.testing_fraction * len(speakers)))
    if (
        len(speakers) - n_val - n_test < 1
        or (config.validation_fraction > 0 and n_val == 0)
        or (config.testing_fraction > 0 and n_test == 0)
    ):
        raise SynthError(f"{len(speakers)} speakers are too few for the requested splits")
    split_of = {}
    for rank, i in enumerate(order):
        split_of[speakers[i]] = "validation" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return split_of


@dataclass(frozen=True)
class ClipPlan:
    word: str
    index: int
    speaker: Speaker
    split: str
    rate_wpm: int
    pitch: int
    pitch_range: int
    gain_db: float
    seed: int  # for espeak's noise, the placement in the 1 s window and the noise floor
    text: str = ""  # what is said ("" = the word); keyword clips may carry a carrier phrase before the word


def _word_rng(seed: int, word: str, *keys: int) -> np.random.Generator:
    """Independent stream per (seed, word, keys): a clip does not depend on the other words or clips."""
    return np.random.default_rng([seed, zlib.crc32(word.encode()), *keys])


def _share(fraction: float, n: int) -> int:
    share = int(round(fraction * n))
    return max(1, share) if fraction > 0 and n >= 3 else share


def plan_word(
    word: str, n: int, pools: dict[str, list[Speaker]], config: SynthConfig, seed: int, keyword: bool = False
) -> list[ClipPlan]:
    """Clip parameters for one word. Each split gets its share of the n clips (stratified).

    With n >= 3, every split with a non-zero fraction gets at least one clip of the word.
    """
    n_val, n_test = (_share(f, n) for f in (config.validation_fraction, config.testing_fraction))
    splits = ["validation"] * n_val + ["test"] * n_test + ["train"] * (n - n_val - n_test)
    splits = [splits[i] for i in _word_rng(seed, word, 0).permutation(n)]
    plans = []
    for i, split in enumerate(splits):
        rng = _word_rng(seed, word, 1, i)
        pool = _engine_pool(pools[split], config, rng)
        speaker = pool[int(rng.integers(len(pool)))]
        pitch = int(
            np.clip(speaker.pitch + rng.integers(-config.pitch_jitter, config.pitch_jitter + 1), 0, 100)
        )
        plans.append(
            ClipPlan(
                word=word,
                index=i,
                speaker=speaker,
                split=split,
                rate_wpm=int(rng.integers(config.rate_wpm[0], config.rate_wpm[1] + 1)),
                pitch=pitch,
                pitch_range=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
                gain_db=float(rng.uniform(*config.gain_db)),
                seed=int(rng.integers(2**31 - 1)),
                text=_carrier_text(word, keyword, config, rng),
            )
        )
    return plans


def plan_sentences(n: int, vocabulary: Sequence[str], pools: dict[str, list[Speaker]], config: SynthConfig,
                   seed: int) -> list[ClipPlan]:
    """Running-speech negatives: `n` sentences of 3-7 random words of `vocabulary`, spread over the splits
    and speakers like a word's clips (folder `SENTENCE_FOLDER`)."""
    plans = plan_word(SENTENCE_FOLDER, n, pools, config, seed)
    out = []
    for p in plans:
        rng = _word_rng(seed, SENTENCE_FOLDER, 2, p.index)
        k = int(rng.integers(SENTENCE_WORDS[0], SENTENCE_WORDS[1] + 1))
        words = [vocabulary[int(i)] for i in rng.integers(len(vocabulary), size=k)]
        out.append(replace(p, text=" ".join(words)))
    return out


def sentence_vocabulary(keywords: Sequence[str]) -> list[str]:
    """Common words (`train.wordlist`) and the built-in negatives, without any word that holds a keyword or
    is part of one."""
    from train.wordlist import COMMON_WORDS

    keys = [k.replace(" ", "") for k in keywords]
    words = dict.fromkeys([*COMMON_WORDS, *DEFAULT_NEGATIVES])
    return [w for w in words if not any(k in w or w in k for k in keys)]


def _engine_pool(pool: list[Speaker], config: SynthConfig, rng: np.random.Generator) -> list[Speaker]:
    """The speakers of one engine, drawn by `engine_weights` among the engines this split has (no draw, so
    the same plans as before, when there is only one)."""
    engines = [e for e in config.engines if any(s.engine == e for s in pool)]
    if len(engines) <= 1:
        return pool
    w = np.array([config.engine_weights[config.engines.index(e)] for e in engines], dtype=np.float64)
    engine = engines[int(rng.choice(len(engines), p=w / w.sum()))]
    return [s for s in pool if s.engine == engine]


def _carrier_text(word: str, keyword: bool, config: SynthConfig, rng: np.random.Generator) -> str:
    if not keyword or config.carrier_share <= 0 or rng.random() >= config.carrier_share:
        return word
    return f"{config.carriers[int(rng.integers(len(config.carriers)))]} {word}"


def clip_names(plans: Sequence[ClipPlan]) -> list[str]:
    """`<folder>/<speaker>_nohash_<n>.wav`, n counting that speaker's takes of the word."""
    seen: dict[tuple[str, str], int] = {}
    names = []
    for p in plans:
        key = (p.word, p.speaker.speaker_id)
        n = seen.get(key, 0)
        seen[key] = n + 1
        names.append(f"{word_folder(p.word)}/{p.speaker.speaker_id}_nohash_{n}.wav")
    return names


# =========================================================================== clip rendering
def trim_silence(x: np.ndarray, threshold: float = 0.02, margin: int = 160) -> np.ndarray:
    """Cut leading/trailing samples below `threshold` x peak, keeping `margin` samples (10 ms) of context."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak == 0.0:
        return x[:0]
    loud = np.flatnonzero(np.abs(x) > threshold * peak)
    return x[max(0, loud[0] - margin) : min(len(x), loud[-1] + 1 + margin)]


def fit_to_clip(x: np.ndarray, rng: np.random.Generator, length: int = CLIP_SAMPLES) -> np.ndarray:
    """Place x in a zero window of `length` samples: centred, shifted by up to a quarter of the slack."""
    if len(x) > length:
        raise SynthError(
            f"utterance of {len(x) / TARGET_RATE:.2f} s does not fit in {length / TARGET_RATE:.2f} s"
        )
    slack = length - len(x)
    offset = slack // 2 + int(rng.integers(-(slack // 4), slack // 4 + 1))
    out = np.zeros(length, dtype=np.float64)
    out[offset : offset + len(x)] = x
    return out


def speak(plan: ClipPlan, rate_wpm: int) -> np.ndarray:
    """The plan's text by its speaker's engine at `rate_wpm` (flite/piper: as a tempo relative to 175 wpm),
    float64 at 16 kHz."""
    text, spk = plan.text or plan.word, plan.speaker
    if spk.engine == "espeak":
        return synthesize(text, spk.espeak_voice, rate_wpm, plan.pitch, plan.pitch_range, seed=plan.seed).astype(np.float64)
    tempo = 175.0 / rate_wpm
    if spk.engine == "flite":
        f0 = spk.pitch + (plan.pitch - 50) * spk.pitch // 100  # the clip's pitch jitter, in percent of the speaker's F0
        audio, rate = voices.flite_native(text, spk.voice, tempo, f0)
        return resample(audio.astype(np.float64), rate, TARGET_RATE)
    rng = np.random.default_rng([plan.seed, 2])
    audio, rate = voices.piper_native(text, spk.voice, tempo, float(rng.uniform(0.4, 0.9)), float(rng.uniform(0.5, 1.0)))
    # played warp/100 times faster: pitch, formants and tempo move together (a different vocal tract)
    return resample(audio.astype(np.float64), rate * spk.pitch // 100, TARGET_RATE)


def render_clip(plan: ClipPlan, config: SynthConfig) -> np.ndarray:
    """One int16 clip: 1 s for a word, 3 s for a sentence. If the text is too long at the planned rate, it
    is spoken faster; a carrier phrase that still does not fit loses its start (the keyword is at the end),
    a sentence its end."""
    length = SENTENCE_SAMPLES if plan.word == SENTENCE_FOLDER else CLIP_SAMPLES
    rate = plan.rate_wpm
    while True:
        speech = trim_silence(speak(plan, rate))
        if len(speech) <= length or rate >= RATE_LIMITS[1]:
            break
        rate = min(RATE_LIMITS[1], int(rate * 1.25))
    if len(speech) == 0:
        raise SynthError(f"{plan.speaker.engine} produced silence for {plan.word!r}")
    if len(speech) > length and plan.text and plan.text != plan.word:
        speech = speech[:length] if plan.word == SENTENCE_FOLDER else speech[-length:]
    rng = np.random.default_rng([plan.seed, 1])
    peak = 32767.0 * 10 ** ((-6.0 + plan.gain_db) / 20.0)
    clip = fit_to_clip(speech * (peak / np.max(np.abs(speech))), rng, length)
    if config.noise_floor_dbfs is not None:
        clip += rng.normal(0.0, 32767.0 * 10 ** (config.noise_floor_dbfs / 20.0), len(clip))
    return to_int16(clip)


# =========================================================================== background noise
def colored_noise(n: int, exponent: float, rng: np.random.Generator, rate: int = TARGET_RATE) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS.

    Below 20 Hz the spectrum is flat so the signal does not wander (no DC drift).
    """
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / rate), 20.0)
    spectrum *= f ** (-exponent / 2.0)
    spectrum[0] = 0.0
    y = np.fft.irfft(spectrum, n)
    return y / np.sqrt(np.mean(y * y))


def _hum(n: int, rng: np.random.Generator, rate: int = TARGET_RATE) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) with a slow level wobble, unit RMS."""
    t = np.arange(n) / rate
    mains = float(rng.choice([50.0, 60.0]))
    y = sum((0.6**h) * np.sin(2 * np.pi * mains * (h + 1) * t + rng.uniform(0, 2 * np.pi)) for h in range(6))
    y = y * (1.0 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t))
    return y / np.sqrt(np.mean(y * y))


_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def nonsense_sentence(rng: np.random.Generator, avoid: Collection[str], words: int = 5) -> str:
    """Made-up words of 2-3 consonant-vowel syllables ("tomika"), none of them in `avoid`.

    Babble built from these sounds like speech without containing any real keyword or negative, so
    a `_silence_` clip cut from it never holds a word that is labelled something else.
    """
    out: list[str] = []
    while len(out) < words:
        n_syl = int(rng.integers(2, 4))
        word = "".join(
            str(rng.choice(list(_CONSONANTS))) + str(rng.choice(list(_VOWELS))) for _ in range(n_syl)
        )
        if word not in avoid:
            out.append(word)
    return " ".join(out)


def _babble(
    seconds: float, speakers: Sequence[Speaker], avoid: Collection[str], rng: np.random.Generator
) -> np.ndarray:
    """Six overlapping streams of nonsense sentences from random speakers at 16 kHz, unit RMS."""
    native = 22050  # espeak-ng's rate; checked against every utterance below
    total = int(math.ceil(seconds * native))
    mix = np.zeros(total)
    for _stream in range(6):
        pos = int(rng.integers(0, native))
        while pos < total:
            spk = speakers[int(rng.integers(len(speakers)))]
            text, rate_wpm = nonsense_sentence(rng, avoid), int(rng.integers(150, 240))
            seed = int(rng.integers(2**31 - 1))
            audio, rate = synthesize_native(text, spk.espeak_voice, rate_wpm, spk.pitch, 50, seed=seed)
            if rate != native:
                raise SynthError(f"espeak-ng produced {rate} Hz audio, expected {native}")
            end = min(total, pos + len(audio))
            level = rng.uniform(0.3, 1.0) / max(1.0, float(np.max(np.abs(audio))))
            mix[pos:end] += audio[: end - pos] * level
            pos = end + int(rng.integers(0, native // 2))
    out = resample(mix, native, TARGET_RATE)[: int(seconds * TARGET_RATE)]
    return out / np.sqrt(np.mean(out * out))


def background_noises(
    seconds: float, speakers: Sequence[Speaker], avoid: Collection[str], seed: int
) -> dict[str, np.ndarray]:
    """The four `_background_noise_` files as int16 at 16 kHz, each at -20 dBFS RMS.

    white, pink and brown noise; and mains hum + pink noise + babble of made-up words (see
    `nonsense_sentence`; `avoid` lists the real words that must not occur).
    """
    n = int(seconds * TARGET_RATE)
    rms = 32767.0 * 10 ** (-20.0 / 20.0)
    rngs = [np.random.default_rng([seed, 0xB6, k]) for k in range(4)]
    noises = {
        "white_noise.wav": colored_noise(n, 0.0, rngs[0]),
        "pink_noise.wav": colored_noise(n, 1.0, rngs[1]),
        "brown_noise.wav": colored_noise(n, 2.0, rngs[2]),
    }
    mix = _babble(seconds, speakers, avoid, rngs[3]) + 0.5 * _hum(n, rngs[3])
    mix += 0.2 * colored_noise(n, 1.0, rngs[3])
    noises["hum_babble.wav"] = mix / np.sqrt(np.mean(mix * mix))
    return {name: to_int16(np.clip(y * rms, -32767, 32767)) for name, y in noises.items()}


# =========================================================================== dataset
def write_wav(path: Path, pcm: np.ndarray, rate: int = TARGET_RATE) -> None:
    """16-bit mono PCM WAV with the standard 44-byte header (byte-identical for identical samples)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def normalize_words(words: Iterable[str], what: str) -> list[str]:
    """Lower-case, validate, and reject duplicates."""
    out: list[str] = []
    for raw in words:
        w = " ".join(raw.strip().lower().split())
        if not _WORD_RE.match(w):
            raise SynthError(f"invalid {what} {raw!r}: use letters, apostrophes, hyphens and single spaces")
        if w in out:
            raise SynthError(f"{what} {w!r} given twice")
        out.append(w)
    return out


def word_folder(word: str) -> str:
    return word.replace(" ", "_")


@dataclass
class DatasetSummary:
    out_dir: Path
    clips: int
    split_counts: dict[str, int]
    speakers_used: int
    voices: list[str]
    seconds: float = 0.0
    words: list[str] = field(default_factory=list)


def _render_batch(plans: list[ClipPlan], config: SynthConfig) -> list[np.ndarray]:
    return [render_clip(p, config) for p in plans]


def _render_all(
    plans: list[ClipPlan], config: SynthConfig, pool: ProcessPoolExecutor | None, progress: bool
) -> Iterator[np.ndarray]:
    """Rendered clips in plan order (from worker processes when `pool` is given), with a progress bar."""
    from tqdm import tqdm

    batches = [plans[i : i + 25] for i in range(0, len(plans), 25)]
    if pool is None:
        results: Iterable[list[np.ndarray]] = (_render_batch(b, config) for b in batches)
    else:
        results = pool.map(_render_batch, batches, [config] * len(batches))
    with tqdm(total=len(plans), desc="synth clips", unit="clip", disable=not progress) as bar:
        for clips in results:
            for clip in clips:
                bar.update(1)
                yield clip


def _executor(workers: int) -> contextlib.AbstractContextManager[ProcessPoolExecutor | None]:
    """Worker processes (spawned: safe when the caller has threads, e.g. torch), or None for in-process.

    Like all spawn-based multiprocessing, a script calling this with workers > 1 needs the usual
    `if __name__ == "__main__":` guard.
    """
    if workers <= 1:
        return contextlib.nullcontext(None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def _prepare_output(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise SynthError(
                f"{out_dir} is not empty; refusing to write into it (pass force=True / --force to replace it)"
            )
        if not (out_dir / INFO_FILE).is_file():
            raise SynthError(
                f"{out_dir} is not empty and was not made by train.synth (no {INFO_FILE}); "
                "refusing to replace it even with --force - remove it yourself"
            )


def _install(tmp: Path, out_dir: Path) -> None:
    """Move the finished temp folder into place, replacing an empty or previously generated folder."""
    old = None
    if out_dir.exists():
        if any(out_dir.iterdir()):
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            out_dir.rename(old)
        else:
            out_dir.rmdir()
    tmp.rename(out_dir)
    if old is not None:
        shutil.rmtree(old)


def generate_dataset(
    out_dir: str | Path,
    keywords: Sequence[str],
    negatives: Sequence[str] | None = None,
    n_per_word: int = 100,
    seed: int = 0,
    *,
    n_per_negative: int | None = None,
    n_sentences: int = 0,
    config: SynthConfig = SynthConfig(),
    force: bool = False,
    workers: int = 1,
    progress: bool = True,
) -> DatasetSummary:
    """Write a Speech-Commands-style synthetic dataset (see the module docstring for the layout).

    `negatives` defaults to DEFAULT_NEGATIVES minus the keywords; each keyword gets `n_per_word`
    clips, each negative `n_per_negative` (default max(1, n_per_word // 3): many different unknown
    words matter more than many takes of each). The same arguments give byte-identical files.
    The folder is built next to `out_dir` and renamed into place at the end; an existing non-empty
    `out_dir` is refused unless `force` is set and it was itself made by this function.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    config.validate()
    if seed < 0:
        raise SynthError(f"seed must be >= 0, got {seed}")
    keywords = normalize_words(keywords, "keyword")
    if not keywords:
        raise SynthError("no keywords given")
    if negatives is None:
        negatives = [w for w in DEFAULT_NEGATIVES if w not in keywords]
    else:
        negatives = normalize_words(negatives, "negative word")
        both = sorted(set(negatives) & set(keywords))
        if both:
            raise SynthError(f"words both keyword and negative: {', '.join(both)}")
    folders = [word_folder(w) for w in (*keywords, *negatives)]
    if len(set(folders)) != len(folders):
        raise SynthError("two words map to the same folder name")
    if n_sentences < 0:
        raise SynthError("n_sentences must be >= 0")
    if n_sentences:
        if SENTENCE_FOLDER in folders:
            raise SynthError(f"{SENTENCE_FOLDER!r} is reserved for the running-speech negatives")
        folders.append(SENTENCE_FOLDER)
    if n_per_word < 1:
        raise SynthError("n_per_word must be at least 1")
    n_neg = max(1, n_per_word // 3) if n_per_negative is None else n_per_negative
    if n_neg < 0:
        raise SynthError("n_per_negative must be >= 0")
    _prepare_output(out_dir, force)

    speakers = speaker_pool(config)
    split_of = assign_speaker_splits(speakers, config, seed)
    pools = {s: [spk for spk in speakers if split_of[spk] == s] for s in SPLITS}
    plans = [p for w in keywords for p in plan_word(w, n_per_word, pools, config, seed, keyword=True)]
    plans += [p for w in negatives for p in plan_word(w, n_neg, pools, config, seed)] if n_neg else []
    plans += plan_sentences(n_sentences, sentence_vocabulary(keywords), pools, config, seed) if n_sentences else []
    names = clip_names(plans)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the dataset is an ordinary folder
        for folder in folders:
            (tmp / folder).mkdir()
        babblers = [s for s in pools["train"] if s.engine == "espeak"] or [Speaker("en-us", "", 50)]
        noise_args = (config.noise_seconds, babblers, {*keywords, *negatives}, seed)
        with _executor(workers) as pool:
            noise_job = pool.submit(background_noises, *noise_args) if pool is not None else None
            for name, clip in zip(names, _render_all(plans, config, pool, progress), strict=True):
                write_wav(tmp / name, clip)
            noises = noise_job.result() if noise_job is not None else background_noises(*noise_args)
        (tmp / BACKGROUND_DIR).mkdir()
        for fname, pcm in noises.items():
            write_wav(tmp / BACKGROUND_DIR / fname, pcm)
        _write_metadata(
            tmp, plans, names, speakers, split_of, config, keywords, negatives, n_per_word, n_neg, seed, n_sentences
        )
        _install(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    counts = {s: sum(p.split == s for p in plans) for s in SPLITS}
    return DatasetSummary(
        out_dir=out_dir,
        clips=len(plans),
        split_counts=counts,
        speakers_used=len({p.speaker for p in plans}),
        voices=sorted({p.speaker.espeak_voice for p in plans}),
        seconds=time.perf_counter() - started,
        words=[*keywords, *negatives],
    )


def _write_metadata(
    root: Path,
    plans: Sequence[ClipPlan],
    names: Sequence[str],
    speakers: Sequence[Speaker],
    split_of: dict[Speaker, str],
    config: SynthConfig,
    keywords: Sequence[str],
    negatives: Sequence[str],
    n_per_word: int,
    n_neg: int,
    seed: int,
    n_sentences: int = 0,
) -> None:
    for split, fname in (("validation", "validation_list.txt"), ("test", "testing_list.txt")):
        rows = sorted(n for n, p in zip(names, plans, strict=True) if p.split == split)
        (root / fname).write_text("".join(f"{r}\n" for r in rows))
    lines = ["speaker\tengine\tvoice\tvariant\tpitch\tsplit\n"]
    lines += [f"{s.speaker_id}\t{s.engine}\t{s.voice}\t{s.variant or '-'}\t{s.pitch}\t{split_of[s]}\n" for s in speakers]
    (root / "speakers.tsv").write_text("".join(lines))
    try:
        loader_version = metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:  # pragma: no cover - e.g. a vendored copy
        loader_version = "unknown"
    info = {
        "generator": "train.synth",
        "format_version": FORMAT_VERSION,
        "espeak_ng": espeak_version(),
        "espeakng_loader": loader_version,
        "seed": seed,
        "keywords": list(keywords),
        "negatives": list(negatives),
        "n_per_word": n_per_word,
        "n_per_negative": n_neg,
        "n_sentences": n_sentences,
        "sample_rate": TARGET_RATE,
        "config": asdict(config),
    }
    (root / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


# =========================================================================== CLI
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage + message)
        raise SynthError(message)


def _word_list(value: str) -> list[str]:
    return [w for w in (s.strip() for s in value.split(",")) if w]


def build_parser(prog: str = "synth") -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Generate a synthetic keyword dataset with espeak-ng (offline).")
    p.add_argument("--words", required=True, type=_word_list, help="comma-separated keywords, e.g. yes,no")
    p.add_argument("--out", required=True, type=Path, help="output folder (must be new or empty)")
    p.add_argument("--per-word", type=int, default=100, help="clips per keyword (default 100)")
    p.add_argument(
        "--negatives",
        type=_word_list,
        default=None,
        help="comma-separated non-keywords (default: built-in list)",
    )
    p.add_argument(
        "--per-negative", type=int, default=None, help="clips per non-keyword (default per-word // 3)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-seconds", type=float, default=45.0, help="length of each background-noise file")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="worker processes")
    p.add_argument(
        "--force", action="store_true", help="replace --out if it holds an earlier synthetic dataset"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "synth") -> int:
    """CLI: `synth --words yes,no --out DIR [--per-word N] [--seed S]`. Returns the exit status."""
    try:
        args = build_parser(prog).parse_args(argv)
        summary = generate_dataset(
            args.out,
            args.words,
            args.negatives,
            args.per_word,
            args.seed,
            n_per_negative=args.per_negative,
            config=SynthConfig(noise_seconds=args.noise_seconds),
            force=args.force,
            workers=args.workers,
            progress=not args.quiet,
        )
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(f"{prog}: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_USER_ERROR
    counts = ", ".join(f"{k} {v}" for k, v in summary.split_counts.items())
    print(
        f"wrote {summary.clips} clips ({counts}) of {len(summary.words)} words from "
        f"{summary.speakers_used} speakers to {summary.out_dir} in {summary.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
