"""What every part of the synthesis shares: the engines, rates and lengths, the dataset layout's names, the voices,
the default negatives, the error type and `SynthConfig` (what varies between clips)."""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import UserError


#: synthesis engines, in the order their speakers are listed and split (`train.voices`)
ENGINES: tuple[str, ...] = ("espeak", "flite", "piper", "festival", "mbrola", "rhvoice", "pico", "kokoro")
#: engines that speak the words but not the running-speech sentences: Kokoro runs at ~0.55 x real time on one core,
#: so its share of the 3,000 sentences of 3 s would add ~14 min to a synthesis (its words: ~3 min)
WORD_ONLY_ENGINES: tuple[str, ...] = ("kokoro",)

TARGET_RATE = 16000
CLIP_SAMPLES = TARGET_RATE  # every word clip is exactly 1.0 s
#: running-speech negatives: short sentences of common words in this folder (label `_unknown_`), 3.0 s each
SENTENCE_FOLDER = "sentences"
SENTENCE_SAMPLES = 3 * TARGET_RATE
SENTENCE_WORDS = (3, 7)
MAX_FUNCTION_WORDS = 3  # function words before one content word
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


class SynthError(UserError):
    """Synthesis or dataset-generation problem the user can fix (bad word, voice, folder...)."""


#: espeakRATE_MINIMUM / MAXIMUM of espeak-ng, words per minute
RATE_LIMITS = (80, 450)


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
    #: synthesis engines (`train.voices`): espeak-ng always; the others where installed
    engines: tuple[str, ...] = ("espeak",)
    #: share of clips per engine (same order as `engines`; renormalised over the engines of each split)
    engine_weights: tuple[float, ...] = (1.0,)
    #: share of keyword clips said inside a carrier phrase ("hey jarvis"); the keyword stays at the end
    carrier_share: float = 0.0
    carriers: tuple[str, ...] = ("hey", "okay", "hi", "oh")
    #: running-speech sentences: mean number of function words ("the", "could", "you": `train.wordlist.
    #: FUNCTION_WORDS`) said before each of a sentence's 3-7 common words (Poisson, at most
    #: `MAX_FUNCTION_WORDS`); 0 = content words alone
    function_words: float = 0.0

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
        if not 0.0 <= self.function_words <= MAX_FUNCTION_WORDS:
            raise SynthError(f"function_words must be in [0, {MAX_FUNCTION_WORDS}]")
        if not 1.0 <= self.noise_seconds <= 600.0:
            raise SynthError("noise_seconds must be between 1 and 600")


def word_folder(word: str) -> str:
    """The folder of a word's clips: the word with spaces as underscores."""
    return word.replace(" ", "_")
