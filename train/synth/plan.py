"""Speakers and clip plans: who says what, in which split, at which rate, pitch and gain, drawn from seeded
streams per word and clip, so that a clip never depends on the other words or clips."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from train import voices
from train.synth.espeak import available_variants
from train.synth.settings import (DEFAULT_NEGATIVES, ENGINES, MAX_FUNCTION_WORDS, SENTENCE_FOLDER, SENTENCE_WORDS,
                                  WORD_ONLY_ENGINES, SynthConfig, SynthError, word_folder)


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker. espeak and mbrola: voice + variant + base pitch (0-100); flite: voice + mean F0 in
    Hz; piper and festival: voice + warp in percent; rhvoice and pico: voice + pitch in percent; kokoro: voice +
    the voice blended with it ("" for none) + warp in percent (see `train.voices`)."""

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


def usable_engines(config: SynthConfig) -> list[str]:
    """The configured engines that are installed here (a missing one is left out; see `voices.available_engines`)."""
    reasons = voices.available_engines()
    return [e for e in config.engines if reasons.get(e) is None]


def speaker_pool(config: SynthConfig) -> list[Speaker]:
    """espeak: every voice x available variant x base pitch (variants missing from the shipped data are
    skipped); flite: every voice x its F0 settings; piper and festival: every voice x warp; mbrola, rhvoice and
    pico: every voice x pitch; kokoro: every voice and every pair of voices x warp. Only usable engines."""
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
    if "festival" in engines:
        out += [Speaker(v, "", w, "festival") for v in voices.FESTIVAL_VOICES for w in voices.FESTIVAL_WARPS]
    if "mbrola" in engines:
        out += [Speaker(v, "", p, "mbrola") for v in voices.MBROLA_VOICES for p in voices.MBROLA_PITCHES]
    if "rhvoice" in engines:
        out += [Speaker(v, "", p, "rhvoice") for v in voices.RHVOICE_VOICES for p in voices.RHVOICE_PITCHES]
    if "pico" in engines:
        out += [Speaker(v, "", p, "pico") for v in voices.PICO_VOICES for p in voices.PICO_PITCHES]
    if "kokoro" in engines:
        names = voices.KOKORO_VOICES
        styles = [(v, "") for v in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        out += [Speaker(v, blend, w, "kokoro") for v, blend in styles for w in voices.KOKORO_WARPS]
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
        pitch = int(np.clip(_pitch_base(speaker) + rng.integers(-config.pitch_jitter, config.pitch_jitter + 1), 0, 100))
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


def _pitch_base(speaker: Speaker) -> int:
    """Where a clip's pitch jitter is centred, before it is clipped to espeak-ng's 0-100 scale. espeak-ng and MBROLA:
    the speaker's pitch on that scale. flite: its F0 in Hz as well, so a flite clip's pitch is min(F0 +- jitter,
    100) and `render.speak` asks flite for F0 x (1 + (pitch - 50) / 100): 1.3-1.5x the listed F0 (kal ~127 Hz,
    rms 120-180, awb 140-200, slt 225-307). That began as an accident; it is kept because speaking at the listed
    F0 instead lowered recall on real voices (three seeds, README "Flite's pitch"). The other engines: 50 +- the
    jitter, read as percent of the speaker's own pitch."""
    return speaker.pitch if speaker.engine in ("espeak", "mbrola", "flite") else 50


def plan_sentences(n: int, vocabulary: Sequence[str], pools: dict[str, list[Speaker]], config: SynthConfig,
                   seed: int, function_words: Sequence[str] = ()) -> list[ClipPlan]:
    """Running-speech negatives: `n` sentences of 3-7 random words of `vocabulary`, spread over the splits
    and speakers like a word's clips (folder `SENTENCE_FOLDER`). With `config.function_words` > 0 and a list of
    `function_words`, each of those words comes after a few words of that list ("could you the garden"), drawn
    from a stream of their own, so the content words are those of the sentence without them. The engines of
    `WORD_ONLY_ENGINES` say none (the others' sentences are those they say without them)."""
    pools = {split: [s for s in pool if s.engine not in WORD_ONLY_ENGINES] for split, pool in pools.items()}
    plans = plan_word(SENTENCE_FOLDER, n, pools, config, seed)
    out = []
    for p in plans:
        rng = _word_rng(seed, SENTENCE_FOLDER, 2, p.index)
        k = int(rng.integers(SENTENCE_WORDS[0], SENTENCE_WORDS[1] + 1))
        words = [vocabulary[int(i)] for i in rng.integers(len(vocabulary), size=k)]
        if config.function_words > 0 and function_words:
            words = _with_function_words(words, function_words, config.function_words,
                                         _word_rng(seed, SENTENCE_FOLDER, 3, p.index))
        out.append(replace(p, text=" ".join(words)))
    return out


def _with_function_words(words: Sequence[str], function_words: Sequence[str], mean: float,
                         rng: np.random.Generator) -> list[str]:
    out: list[str] = []
    for w in words:
        n = min(int(rng.poisson(mean)), MAX_FUNCTION_WORDS)
        out += [function_words[int(i)] for i in rng.integers(len(function_words), size=n)]
        out.append(w)
    return out


def sentence_vocabulary(keywords: Sequence[str]) -> list[str]:
    """Common words (`train.wordlist`) and the built-in negatives, without any word that holds a keyword or
    is part of one."""
    from train.wordlist import COMMON_WORDS

    keys = [k.replace(" ", "") for k in keywords]
    words = dict.fromkeys([*COMMON_WORDS, *DEFAULT_NEGATIVES])
    return [w for w in words if not any(k in w or w in k for k in keys)]


def sentence_function_words(keywords: Sequence[str]) -> list[str]:
    """`train.wordlist.FUNCTION_WORDS` without a word that holds a keyword or is one of a keyword's words. Short
    words inside a keyword ("is" in "jarvis") stay: they are not the keyword, and real talk is full of them."""
    from train.wordlist import FUNCTION_WORDS

    keys = [k.replace(" ", "") for k in keywords]
    parts = {p for k in keywords for p in k.split()}
    return [w for w in FUNCTION_WORDS if w not in parts and not any(k in w for k in keys)]


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
