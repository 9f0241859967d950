"""Rendering: a clip plan to int16 audio (speech by its engine, trimmed, placed in the clip, levelled, a faint noise
floor), and the background-noise files (coloured noise, mains hum, babble of made-up words)."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import numpy as np

from train import voices
from train.synth.dsp import resample, to_int16
from train.synth.espeak import synthesize, synthesize_native
from train.synth.plan import ClipPlan, Speaker
from train.synth.settings import (CLIP_SAMPLES, RATE_LIMITS, SENTENCE_FOLDER, SENTENCE_SAMPLES, TARGET_RATE,
                                  SynthConfig, SynthError)


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


def speak(plan: ClipPlan, rate_wpm: int, piper_seed: int | None = None) -> np.ndarray:
    """The plan's text by its speaker's engine at `rate_wpm` (all but espeak-ng and MBROLA: as a tempo relative to
    175 wpm), float64 at 16 kHz. `piper_seed`: the seed of the Piper session (`voices.piper_native`; default: a
    fresh session seeded with the plan's seed)."""
    text, spk = plan.text or plan.word, plan.speaker
    if spk.engine == "espeak":
        return synthesize(text, spk.espeak_voice, rate_wpm, plan.pitch, plan.pitch_range, seed=plan.seed).astype(np.float64)
    if spk.engine == "mbrola":
        audio, rate = voices.mbrola_native(text, spk.voice, rate_wpm, plan.pitch)
        return resample(audio.astype(np.float64), rate, TARGET_RATE)
    tempo = 175.0 / rate_wpm
    if spk.engine in ("flite", "rhvoice", "pico"):
        own = spk.pitch + (plan.pitch - 50) * spk.pitch // 100  # the clip's pitch, in percent of the speaker's (plan._pitch_base)
        if spk.engine == "flite":
            audio, rate = voices.flite_native(text, spk.voice, tempo, own)
        else:
            native = voices.rhvoice_native if spk.engine == "rhvoice" else voices.pico_native
            audio, rate = native(text, spk.voice, round(100 / tempo), own)
        return resample(audio.astype(np.float64), rate, TARGET_RATE)
    if spk.engine == "festival":
        audio, rate = voices.festival_native(text, spk.voice, tempo)
    elif spk.engine == "kokoro":
        audio, rate = voices.kokoro_native(text, spk.voice, spk.variant, 1.0 / tempo)
    else:
        rng = np.random.default_rng([plan.seed, 2])
        if piper_seed is None:
            voices.piper_forget()
        audio, rate = voices.piper_native(text, spk.voice, tempo, float(rng.uniform(0.4, 0.9)), float(rng.uniform(0.5, 1.0)),
                                          seed=plan.seed if piper_seed is None else piper_seed)
    # played warp/100 times faster: pitch, formants and tempo move together (a different vocal tract)
    return resample(audio.astype(np.float64), rate * spk.pitch // 100, TARGET_RATE)


def render_clip(plan: ClipPlan, config: SynthConfig, piper_seed: int | None = None) -> np.ndarray:
    """One int16 clip: 1 s for a word, 3 s for a sentence. If the text is too long at the planned rate, it
    is spoken faster; a carrier phrase that still does not fit loses its start (the keyword is at the end),
    a sentence its end. `piper_seed`: see `speak` (`dataset._render_batch` shares one Piper session over a batch)."""
    length = SENTENCE_SAMPLES if plan.word == SENTENCE_FOLDER else CLIP_SAMPLES
    rate = plan.rate_wpm
    while True:
        speech = trim_silence(speak(plan, rate, piper_seed))
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
