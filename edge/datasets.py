"""Dataset layouts and split rules (numpy only; used by training and by `edge eval`): Speech Commands v2 (12- and 35-word tasks, canonical test-set layout), Free Spoken Digit
Dataset, a folder of WAVs per label, and the offline synthetic recipe. All become a `Dataset`: a list of
`Clip`s with labels, speakers and splits, plus background-noise recordings.

Two clip sets per split are scored: `evaluation_clips` (every clip, plus 10 % `_silence_` cuts: the device
figure) and `standard_clips` (command words as they are, `_unknown_` and `_silence_` sampled to the mean
command class size, as the official Speech Commands test set: the standard figure).

The data directory is always a parameter (flag, or `KWS_DATA_DIR`), never hard-coded.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence, TypeVar

import numpy as np

from edge.audio import load_wav
from edge.errors import UserError

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
SC_COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
FSDD_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "validation", "test")
_MAX_PER_CLASS = 2**27 - 1  # as in the Speech Commands reference `which_set`
T = TypeVar("T")


class Recipe(str, enum.Enum):
    SPEECH_COMMANDS = "speech_commands"  # 10 words + _silence_ + _unknown_
    SPEECH_COMMANDS_35 = "speech_commands_35"  # all 35 words + _silence_
    SC_TEST_SET = "sc_test_set"  # canonical 12-folder test-set layout (evaluation only)
    FSDD = "fsdd"  # 10 digits + _silence_
    FOLDER = "folder"  # one folder per label (+ optional _background_noise_)
    SYNTHETIC = "synthetic"  # espeak-ng keywords generated offline, then read as a folder


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str
    speaker: str
    split: str


@dataclass
class Dataset:
    labels: list[str]
    clips: list[Clip]
    noise_files: list[Path] = field(default_factory=list)
    sample_rate: int = 16000

    def split(self, name: str) -> list[Clip]:
        return [c for c in self.clips if c.split == name]

    @property
    def keyword_labels(self) -> list[str]:
        return [l for l in self.labels if l not in (SILENCE, UNKNOWN)]

    def counts(self) -> dict[str, dict[str, int]]:
        """Clip counts per split and label (`_silence_` clips are cut from noise later; counted as 0 here)."""
        out: dict[str, dict[str, int]] = {}
        for s in SPLITS:
            c = Counter(clip.label for clip in self.clips if clip.split == s)
            out[s] = {label: c.get(label, 0) for label in self.labels}
        return out


#: Audio files the dataset loaders pick up (everything `edge.audio.load_wav` decodes through libsndfile).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def audio_files(folder: Path, pattern: str = "*") -> list[Path]:
    """WAV, FLAC and Ogg files in `folder` matching `pattern`, sorted."""
    return sorted(p for p in folder.glob(pattern) if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def data_dirs_from_env(values: Sequence[str | Path] | str | Path | None) -> list[Path]:
    """Data folders from `--data` (one or several), else `KWS_DATA_DIR` (several separated by `os.pathsep`)."""
    if isinstance(values, (str, Path)):
        values = [values]
    paths = [str(v) for v in values or () if str(v)]
    if not paths:
        env = os.environ.get("KWS_DATA_DIR", "")
        paths = [v for v in env.split(os.pathsep) if v]
    if not paths:
        raise UserError("no data directory: pass --data DIR [DIR ...] or set KWS_DATA_DIR")
    out = []
    for path in paths:
        p = Path(path)
        if not p.is_dir():
            raise UserError(f"data directory {p} does not exist")
        if p in out:
            raise UserError(f"data directory {p} is given twice")
        out.append(p)
    return out


def recorded_data_dirs(value: str | Sequence[str] | None) -> list[Path]:
    """The data folders a run config or manifest records: a list (today) or one string (older runs)."""
    if not value:
        return []
    return [Path(value)] if isinstance(value, (str, Path)) else [Path(v) for v in value]


def speaker_of(path: Path) -> str:
    """Speaker id from a Speech Commands style name `<speaker>_nohash_<n>.wav` or `<label>_<speaker>_<n>`."""
    stem = path.stem
    if "_nohash_" in stem:
        return re.sub(r"_nohash_.*$", "", stem)
    return stem.split("_")[0]


def split_by_speaker_hash(speaker: str, validation_pct: float = 10.0, testing_pct: float = 10.0) -> str:
    """The Speech Commands `which_set` rule: a stable split from the speaker's SHA-1."""
    h = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    pct = (h % (_MAX_PER_CLASS + 1)) * (100.0 / _MAX_PER_CLASS)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + testing_pct:
        return "test"
    return "train"


def _read_list(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _word_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_") and not p.name.startswith("."))


def _noise_files(root: Path) -> list[Path]:
    d = root / "_background_noise_"
    return audio_files(d) if d.is_dir() else []


def _sc_layout(root: Path, label_of, labels: list[str]) -> Dataset:
    """Speech Commands download layout; `label_of(word)` maps a folder to a label or None to skip."""
    val, test = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    # The split lists decide when the folder has them (empty lists: every clip is training data, as in a
    # training-only supplement); without list files, the Speech Commands speaker-hash rule.
    listed = (root / "validation_list.txt").is_file() or (root / "testing_list.txt").is_file()
    clips = []
    for folder in _word_folders(root):
        label = label_of(folder.name)
        if label is None:
            continue
        for wav in audio_files(folder):
            rel = f"{folder.name}/{wav.name}"
            if listed:
                split = "validation" if rel in val else "test" if rel in test else "train"
            else:
                split = split_by_speaker_hash(speaker_of(wav))
            clips.append(Clip(wav, label, speaker_of(wav), split))
    if not clips:
        raise UserError(f"{root}: no audio files (WAV/FLAC/Ogg) in word folders")
    return Dataset(labels, clips, _noise_files(root))


def load_speech_commands(root: Path, keywords: tuple[str, ...] = SC_COMMANDS, partial: bool = False) -> Dataset:
    """The Speech Commands layout. With `partial` (one of several merged folders, e.g. a synthetic `_unknown_`
    supplement), the folder may lack keywords: the merge checks that each keyword is somewhere."""
    words = {p.name for p in _word_folders(root)}
    missing = [w for w in keywords if w not in words]
    if missing and not partial:
        raise UserError(f"{root}: not a Speech Commands folder (missing word folders {missing})")
    labels = [SILENCE, UNKNOWN, *keywords]
    return _sc_layout(root, lambda w: w if w in keywords else UNKNOWN, labels)


def load_speech_commands_35(root: Path) -> Dataset:
    words = tuple(p.name for p in _word_folders(root))
    if len(words) < 2:
        raise UserError(f"{root}: not a Speech Commands folder")
    return _sc_layout(root, lambda w: w, [SILENCE, *words])


def load_sc_test_set(root: Path) -> Dataset:
    """Canonical test-set layout: folders for the ten words, `_unknown_` and `_silence_`; all clips are test."""
    names = {p.name for p in root.iterdir() if p.is_dir()}
    if UNKNOWN not in names or SILENCE not in names:
        raise UserError(f"{root}: not the canonical test-set layout (needs _unknown_ and _silence_ folders)")
    words = sorted(n for n in names if not n.startswith("_"))
    labels = [SILENCE, UNKNOWN, *words]
    clips = [
        Clip(wav, label, speaker_of(wav), "test")
        for label in labels
        for wav in audio_files(root / label)
    ]
    return Dataset(labels, clips, [])


def load_fsdd(root: Path) -> Dataset:
    rec = root / "recordings" if (root / "recordings").is_dir() else root
    files = audio_files(rec, "*_*_*")
    if not files:
        raise UserError(f"{root}: no FSDD recordings (<digit>_<speaker>_<n>.wav)")
    speakers = sorted({f.stem.split("_")[1] for f in files})
    if len(speakers) < 3:
        raise UserError(f"{root}: FSDD needs at least 3 speakers for speaker-disjoint splits, found {speakers}")
    # Deterministic speaker-disjoint split: order speakers by hash; one for test, one for validation.
    ordered = sorted(speakers, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    split_of = {s: "train" for s in ordered}
    split_of[ordered[-1]] = "test"
    split_of[ordered[-2]] = "validation"
    clips = []
    for f in files:
        digit, speaker, _ = f.stem.split("_", 2)
        if not digit.isdigit() or int(digit) > 9:
            raise UserError(f"{f}: not an FSDD file name")
        clips.append(Clip(f, FSDD_WORDS[int(digit)], speaker, split_of[speaker]))
    return Dataset([SILENCE, *FSDD_WORDS], clips, [], sample_rate=8000)


def load_folder(root: Path, keywords: tuple[str, ...] | None = None, partial: bool = False,
                negatives_only: bool = False) -> Dataset:
    """One folder per label. With `keywords`, other folders become `_unknown_`. With `partial` (a folder merged
    with others, e.g. real speech beside a synthetic wake word), a folder may lack some or all keywords: the
    merge checks that each keyword is somewhere. With `negatives_only` (real negative speech beside a synthetic
    wake word), the folder gives `_unknown_` speech only: its folders named as a keyword are skipped, so real
    recordings of the keyword (Speech Commands' "marvin" beside a synthetic "marvin") are never trained on,
    never counted as negatives, and stay free for measuring."""
    folders = [p.name for p in _word_folders(root)]
    if not folders:
        raise UserError(f"{root}: no label folders with WAV files")
    if negatives_only:
        if not keywords:
            raise UserError(f"{root}: a negatives-only folder needs the keywords it must not contribute")
        if all(f in keywords for f in folders):
            raise UserError(f"{root}: a negatives-only folder holds nothing but keyword folders")
        return _sc_layout(root, lambda w: None if w in keywords else UNKNOWN, [SILENCE, UNKNOWN, *keywords])
    if keywords:
        missing = [k for k in keywords if k not in folders]
        if missing and not partial:
            raise UserError(f"{root}: no folder for keywords {missing}")
        has_unknown = any(f not in keywords for f in folders)
        labels = [SILENCE, *([UNKNOWN] if has_unknown else []), *keywords]
        return _sc_layout(root, lambda w: w if w in keywords else UNKNOWN, labels)
    return _sc_layout(root, lambda w: w, [SILENCE, *folders])


def merge_datasets(parts: Sequence[Dataset], roots: Sequence[Path]) -> Dataset:
    """Several folders of one recipe as one dataset: clips merged by label, each clip keeping the split its
    own folder gave it (its split lists or the speaker-hash rule), background noise from all folders."""
    rates = {d.sample_rate for d in parts}
    if len(rates) > 1:
        raise UserError(f"data folders {', '.join(map(str, roots))} have different sample rates {sorted(rates)}")
    labels = list(parts[0].labels)
    for d in parts[1:]:
        labels += [l for l in d.labels if l not in labels]
    background = [l for l in (SILENCE, UNKNOWN) if l in labels]  # first, as in every single-folder layout
    labels = background + [l for l in labels if l not in background]
    clips = [c for d in parts for c in d.clips]
    noise = [n for d in parts for n in d.noise_files]
    return Dataset(labels, clips, noise, rates.pop())


def load_parts(recipe: Recipe, roots: Sequence[Path], keywords: tuple[str, ...] | None = None,
               negatives_only: Sequence[Path] = ()) -> list[Dataset]:
    """Each folder of a multi-folder dataset on its own. Folder recipe with keywords: a folder holding none
    of the keywords contributes `_unknown_` speech (real negatives beside a synthetic wake word), and so does a
    folder of `negatives_only` (those of them among `roots`; a run records them, an override of its data may
    leave some out), whose keyword folders are skipped (`load_folder`). Other recipes read every folder whole
    (evaluating a wake word on a Speech Commands folder counts its keyword folder as the keyword)."""
    negative = {Path(n).resolve() for n in negatives_only} & {Path(r).resolve() for r in roots}
    if Recipe(recipe) is Recipe.FOLDER and keywords and (len(roots) > 1 or negative):
        return [load_folder(Path(r), keywords, partial=True, negatives_only=Path(r).resolve() in negative)
                for r in roots]
    if Recipe(recipe) is Recipe.SPEECH_COMMANDS and len(roots) > 1:
        return [load_speech_commands(Path(r), keywords or SC_COMMANDS, partial=True) for r in roots]
    return [load_dataset(recipe, r, keywords) for r in roots]


def load_dataset(recipe: Recipe, root: Path | Sequence[Path], keywords: tuple[str, ...] | None = None,
                 negatives_only: Sequence[Path] = ()) -> Dataset:
    """The dataset of one folder, or of several folders of the same recipe merged (`merge_datasets`);
    `negatives_only`: folders among them that give `_unknown_` speech only (`load_parts`)."""
    roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
    if not roots:
        raise UserError("no data directory given")
    if len(roots) > 1 or negatives_only:
        merged = merge_datasets(load_parts(recipe, roots, keywords, negatives_only), roots)
        wanted = keywords or (SC_COMMANDS if Recipe(recipe) is Recipe.SPEECH_COMMANDS else ())
        missing = [k for k in wanted if not any(c.label == k for c in merged.clips)]
        if missing:
            raise UserError(f"no folder for keywords {missing} in {', '.join(map(str, roots))}")
        return merged
    root = roots[0]
    recipe = Recipe(recipe)
    if recipe is Recipe.SPEECH_COMMANDS:
        return load_speech_commands(root, keywords or SC_COMMANDS)
    if recipe is Recipe.SPEECH_COMMANDS_35:
        return load_speech_commands_35(root)
    if recipe is Recipe.SC_TEST_SET:
        return load_sc_test_set(root)
    if recipe is Recipe.FSDD:
        return load_fsdd(root)
    return load_folder(root, keywords)


def auto_recipe(root: Path | Sequence[Path]) -> Recipe:
    """Guess the recipe of a folder (of the first, for several) for evaluation commands."""
    if not isinstance(root, (str, Path)):
        roots = [Path(r) for r in root]
        for r in roots:
            if not r.is_dir():
                raise UserError(f"{r}: no such data folder")
        root = roots[0]
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: no such data folder")
    names = {p.name for p in root.iterdir() if p.is_dir()}
    if UNKNOWN in names and SILENCE in names:
        return Recipe.SC_TEST_SET
    if (root / "recordings").is_dir():
        return Recipe.FSDD
    if set(SC_COMMANDS) <= names:
        return Recipe.SPEECH_COMMANDS
    return Recipe.FOLDER


# --------------------------------------------------------------------------- audio cache
class AudioCache:
    """Decoded int16 clips at the model rate, loaded once per process."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._cache: dict[Path, np.ndarray] = {}

    def get(self, path: Path) -> np.ndarray:
        if path not in self._cache:
            self._cache[path] = load_wav(path, self.rate)
        return self._cache[path]


def noise_segments(noise: list[np.ndarray], split: str) -> list[np.ndarray]:
    """Disjoint parts of each noise recording per split (80/10/10 %), so silence clips never leak."""
    bounds = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}[split]
    out = []
    for n in noise:
        a, b = int(len(n) * bounds[0]), int(len(n) * bounds[1])
        if b - a > 0:
            out.append(n[a:b])
    return out


def synthetic_noise(rate: int, seconds: float, seed: int) -> list[np.ndarray]:
    """White, pink and brown noise beds for datasets without `_background_noise_`."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    white = rng.standard_normal(n)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    pink = np.fft.irfft(spectrum / np.sqrt(f), n)
    brown = np.fft.irfft(spectrum / f, n)
    out = []
    for x in (white, pink, brown):
        x = x / (np.sqrt(np.mean(x**2)) + 1e-12) * 0.05
        out.append(np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16))
    return out


def silence_clips(noise: list[np.ndarray], split: str, count: int, rate: int, seed: int) -> list[np.ndarray]:
    """`count` one-second cuts of background noise at random levels (the `_silence_` class)."""
    segs = noise_segments(noise, split)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        seg = segs[rng.integers(len(segs))]
        if len(seg) <= rate:
            cut = np.pad(seg, (0, rate - len(seg)))
        else:
            start = rng.integers(0, len(seg) - rate)
            cut = seg[start : start + rate]
        gain = 10 ** (rng.uniform(-30, 0) / 20) if rng.random() > 0.1 else 0.0
        out.append(np.clip(np.rint(cut * gain), -32768, 32767).astype(np.int16))
    return out


#: Seeds of the `_silence_` cuts added to evaluation splits, so training and `edge eval` score the same clips.
EVAL_SILENCE_SEED = {"train": 11, "validation": 12, "test": 13}


def evaluation_clips(dataset: Dataset, split: str, cache: AudioCache, silence_share: float = 0.1,
                     labels: list[str] | None = None,
                     silence_count: int | None = None) -> tuple[list[np.ndarray], list[int], list[str]]:
    """(pcm per clip, label index per clip, clip names) for one split, plus `_silence_` cuts of that split's
    background noise (`silence_share` of the clip count, or exactly `silence_count` cuts) when the label set
    has `_silence_` and the data has no `_silence_` clips of its own. Cut i of a split is the same audio
    whatever the count (one seed per split), so a clip name identifies its audio across calls."""
    labels = labels or dataset.labels
    index = {l: i for i, l in enumerate(labels)}
    clips = dataset.split(split)
    unknown = sorted({c.label for c in clips} - set(index))
    if unknown:
        raise UserError(f"labels {unknown} of the data are not labels of the model ({', '.join(labels)})")
    pcm = [cache.get(c.path) for c in clips]
    truth = [index[c.label] for c in clips]
    names = [str(c.path) for c in clips]
    if SILENCE in index and not any(c.label == SILENCE for c in clips) and clips:
        noise = [cache.get(p) for p in dataset.noise_files] or synthetic_noise(cache.rate, 60.0, 0)
        n = max(1, int(len(clips) * silence_share)) if silence_count is None else silence_count
        pcm += silence_clips(noise, split, n, cache.rate, EVAL_SILENCE_SEED[split])
        truth += [index[SILENCE]] * n
        names += [f"{SILENCE}/{split}-{i}" for i in range(n)]
    return pcm, truth, names


#: Seed of the `_unknown_` sample in `standard_clips`.
STANDARD_SEED = 59185


def standard_class_size(clips: Sequence[Clip]) -> int:
    """Clips in an average command-word class (labels other than `_silence_` and `_unknown_` that have
    clips), rounded: the size of `_unknown_` and `_silence_` in `standard_clips`."""
    counts = Counter(c.label for c in clips if c.label not in (SILENCE, UNKNOWN))
    return round(sum(counts.values()) / len(counts)) if counts else 0


def standard_clips(dataset: Dataset, split: str, cache: AudioCache, labels: list[str] | None = None,
                   seed: int = STANDARD_SEED) -> tuple[list[np.ndarray], list[int], list[str]]:
    """The clip set of the standard accuracy figure (`edge.postprocess.clip_argmax`), built as the official
    Speech Commands test set is, so that figure compares with published ones (kws_streaming, MLPerf Tiny):
    every command-word clip of the split as it is, and `_unknown_` and `_silence_` each sampled to the size
    of an average command-word class of the split (`standard_class_size`). `_unknown_`: that many clips
    drawn without replacement (all of them if fewer) with `seed` from the split's clips in path order.
    `_silence_`: that many cuts of the split's background noise, as `evaluation_clips` cuts them (same seed,
    so cut i is the same audio in both sets). Data with `_silence_` clips of its own (the canonical test-set
    layout) already is such a set and is taken as it is. Returns `evaluation_clips`'s (pcm, truth, names)."""
    clips = dataset.split(split)
    if any(c.label == SILENCE for c in clips):
        return evaluation_clips(dataset, split, cache, labels=labels)
    size = standard_class_size(clips)
    unknown = sorted((c for c in clips if c.label == UNKNOWN), key=lambda c: str(c.path))
    picks = np.random.default_rng(seed).choice(len(unknown), min(size, len(unknown)), replace=False) if unknown else []
    keep = {unknown[int(i)].path for i in picks}
    chosen = [c for c in clips if c.label != UNKNOWN or c.path in keep]
    sub = Dataset(dataset.labels, chosen, dataset.noise_files, dataset.sample_rate)
    return evaluation_clips(sub, split, cache, labels=labels, silence_count=size)


def reuse_by_name(names: Sequence[str], pcm: Sequence[np.ndarray], known: Mapping[str, T],
                  compute: Callable[[list[np.ndarray]], list[T]]) -> list[T]:
    """Per-clip results (features, posteriors) for a clip set: those in `known` (keyed by clip name, e.g. the
    `evaluation_clips` set's) are reused, the others computed in one `compute` call. A name identifies a
    clip's audio, and `standard_clips` mostly overlaps `evaluation_clips`, so little is computed twice."""
    todo = [i for i, n in enumerate(names) if n not in known]
    fresh = dict(zip(todo, compute([pcm[i] for i in todo]))) if todo else {}
    return [fresh[i] if i in fresh else known[n] for i, n in enumerate(names)]
