"""Writing the dataset: checking the words, planning every clip, rendering them (in worker processes when asked),
and installing the folder with its split lists, speakers.tsv and synth_info.json in one rename."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import wave
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from train import voices
from train.synth.espeak import espeak_version
from train.synth.plan import (ClipPlan, Speaker, assign_speaker_splits, clip_names, plan_sentences, plan_word,
                              sentence_function_words, sentence_vocabulary, speaker_pool)
from train.synth.render import background_noises, render_clip
from train.synth.settings import (BACKGROUND_DIR, DEFAULT_NEGATIVES, FORMAT_VERSION, INFO_FILE, SENTENCE_FOLDER,
                                  SPLITS, TARGET_RATE, SynthConfig, SynthError, word_folder)


_WORD_RE = re.compile(r"^[a-z]+(?:['-][a-z]+)*(?: [a-z]+(?:['-][a-z]+)*)*$")


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
    """The batch's clips in order, its Piper clips from one session seeded with the first plan's seed (a new
    session per clip would cost ~0.3 s each): the same batch gives the same audio in any process, in any order."""
    voices.piper_forget()
    return [render_clip(p, config, piper_seed=plans[0].seed) for p in plans]


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
    plans += plan_sentences(n_sentences, sentence_vocabulary(keywords), pools, config, seed,
                            sentence_function_words(keywords)) if n_sentences else []
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
