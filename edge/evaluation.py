"""Clip accuracy of a `StreamingDetector` on a labelled dataset, as `python -m edge eval` reports it and as
`python -m export report` measures it: the evaluation data (dataset, clips and the standard clip set of a
split), each clip streamed alone from a reset state (or all clips in one stream with the state carried),
decided with `clip_decision` and summarised with `edge.postprocess.summarize`; plus the standard figure
(`edge.postprocess.standard_summary`) of `edge.datasets.standard_clips`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from edge.datasets import (AudioCache, Dataset, Recipe, auto_recipe, evaluation_clips, load_dataset, noise_segments,
                           reuse_by_name, standard_clips, synthetic_noise)
from edge.detector import StreamingDetector
from edge.errors import UserError
from edge.postprocess import clip_decision, standard_summary, summarize

#: (pcm, truth, names) of a clip set: int16 clips, label indices, clip names.
ClipSet = tuple[list[np.ndarray], list[int], list[str]]


@dataclass(frozen=True)
class EvalClips:
    """The clips of one split: `evaluation_clips` (the device figure) and `standard_clips` (the standard one)."""

    pcm: list[np.ndarray]
    truth: list[int]
    names: list[str]
    standard: ClipSet


def eval_keywords(labels: Sequence[str], recipe: Recipe) -> tuple[str, ...] | None:
    """The keywords to load for a model with `labels`: its own for the recipes that choose them, else None."""
    if recipe in (Recipe.SPEECH_COMMANDS, Recipe.FOLDER):
        return tuple(l for l in labels if not l.startswith("_"))
    return None


def load_eval_dataset(labels: Sequence[str], data_dir: Sequence[Path] | Path,
                      recipe: Recipe | None = None) -> tuple[Recipe, Dataset]:
    """The dataset exactly as `python -m edge eval --data DIR` loads it (recipe guessed from the folder when
    not given)."""
    recipe = auto_recipe(data_dir) if recipe is None else recipe
    return recipe, load_dataset(recipe, data_dir, eval_keywords(labels, recipe))


def load_eval_clips(dataset: Dataset, split: str, cache: AudioCache, labels: list[str], limit: int,
                    data_dir: Sequence[Path]) -> EvalClips:
    """The evaluation and standard clips of `split`, at most `limit` of each (0 = all); a split without clips
    is the user's error (`data_dir` names the folders in the message)."""
    pcm, truth, names = evaluation_clips(dataset, split, cache, labels=labels)
    standard = standard_clips(dataset, split, cache, labels=labels)
    if limit:
        pcm, truth, names = pcm[:limit], truth[:limit], names[:limit]
        standard = (standard[0][:limit], standard[1][:limit], standard[2][:limit])
    if not pcm:
        raise UserError(f"{' '.join(map(str, data_dir))}: no clips in split {split!r}")
    return EvalClips(pcm, truth, names, standard)


def reset_posteriors(det: StreamingDetector, pcm: Iterable[np.ndarray]) -> list[np.ndarray]:
    """Frame posteriors of each clip streamed alone from a reset state (float probabilities)."""
    det.keep_posteriors = True
    out = []
    for clip in pcm:
        det.reset()
        det.process(clip)
        out.append(det.posterior_array())
    return out


def evaluate(det: StreamingDetector, pcm: list[np.ndarray], truth: list[int], carry_state: bool,
             noise: list[np.ndarray] | None = None, progress: bool = False,
             posteriors: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Stream each clip through the detector and decide per clip with `clip_decision`. Without
    `carry_state`, `posteriors` (the clips' `reset_posteriors`, when already computed) saves streaming them."""
    det.keep_posteriors = True
    post = det.postprocess
    labels = det.labels
    if not carry_state:
        posteriors = reset_posteriors(det, pcm) if posteriors is None else posteriors
        return summarize([clip_decision(p, labels, post) for p in posteriors], truth, labels)
    pred = []
    rng = np.random.default_rng(0)
    tail_frames = 30
    det.reset()
    for clip in pcm:
        # background gap (0.5 s) then the clip; decide on the clip's frames and 0.3 s after it
        gap = np.zeros(det.sample_rate // 2, dtype=np.int16)
        if noise:
            src = noise[rng.integers(len(noise))]
            start = int(rng.integers(0, max(1, len(src) - len(gap))))
            gap = (src[start : start + len(gap)].astype(np.float64) * 0.1).astype(np.int16)
        det.process(gap)
        det.posteriors = []  # the state is carried, the kept posteriors are not: rows from this clip's first frame
        det.process(np.concatenate([clip, np.zeros(int(0.3 * det.sample_rate), dtype=np.int16)]))
        pred.append(clip_decision(det.posterior_array()[: len(clip) // 160 + tail_frames], labels, post))
    return summarize(pred, truth, labels)


def evaluate_standard(det: StreamingDetector, clips: ClipSet, known: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The standard accuracy figure (`edge.postprocess.standard_summary`) of a `standard_clips` set, each clip
    streamed alone from a reset state; clips in `known` (name -> `reset_posteriors`) are not streamed again."""
    pcm, truth, names = clips
    posteriors = reuse_by_name(names, pcm, known, lambda todo: reset_posteriors(det, todo))
    return standard_summary(posteriors, truth, det.labels, det.postprocess.window)


def evaluate_folder(det: StreamingDetector, variant: str, data_dir: Sequence[Path], recipe: Recipe, split: str,
                    limit: int, carry_state: bool) -> dict[str, Any]:
    """`python -m edge eval`'s figures: `evaluate` on the split's clips (the device's decision), the standard
    figure beside it, and what was measured (`variant`: the name of the detector's model). The canonical
    test-set layout has only a test split."""
    _, dataset = load_eval_dataset(det.labels, data_dir, recipe)
    split = "test" if recipe is Recipe.SC_TEST_SET else split
    cache = AudioCache(det.sample_rate)
    clips = load_eval_clips(dataset, split, cache, det.labels, limit, data_dir)
    noise = noise_segments([cache.get(p) for p in dataset.noise_files] or synthetic_noise(det.sample_rate, 60.0, 0), split)
    posteriors = None if carry_state else reset_posteriors(det, clips.pcm)
    result = evaluate(det, clips.pcm, clips.truth, carry_state, noise, posteriors=posteriors)
    result["standard"] = evaluate_standard(det, clips.standard, dict(zip(clips.names, posteriors or [])))
    result.update({"variant": variant, "runtime": det.model.runtime.value, "split": split, "recipe": recipe.value,
                   "mode": "carry-state" if carry_state else "reset-per-clip"})
    return result
