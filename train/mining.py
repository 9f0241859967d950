"""Hard-negative mining for a wake word: find where a trained model fires on real speech it was never trained
on, and train on those moments.

Why: a synthetic wake word's false alarms on real talk are short moments of ordinary speech that happen to look
like the word to the model (README, "A custom wake word from text"). Random real clips as extra negatives did
not help (`--train-on-negatives`): almost all of them are easy. Mining keeps only the hard ones.

How (`--hard-negatives N`, `TrainConfig.hard_negatives`):
1. the pool: real speech the wake word never trains on otherwise and that neither chooses the epoch nor sets the
   threshold: the *training* split of the real negative folders (`--negative-data`; their validation split stays
   for the epoch choice and the export's threshold, and the measurement folders are never read), run together as
   running speech (`train.selection.running_speech`), `MINE_MINUTES` of it;
2. the model chosen by the first phase streams it (`MINE_FILE_SECONDS` pseudo-files from a reset state); the
   detector's moving average of the keyword posterior gives candidate moments, peaks at least one refractory
   period apart;
3. the `N` highest peaks become `_unknown_` clips: the audio from `PIECE_BEFORE_S` before the peak's frame end to
   `PIECE_AFTER_S` after it (the averaging window looks back 0.75 s, so what fired lies in it);
4. a second, shorter phase trains on the training data plus those clips (`TrainConfig.mine_repeats` copies each,
   every copy augmented differently), starting from the first phase's chosen weights; the epoch choice spans
   both phases, so a second phase that does not raise validation recall is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge.frontend import FrontendConfig
from edge.postprocess import smooth
from train.selection import running_speech

#: minutes of running speech mined (cycled from at most MINE_CLIPS clips)
MINE_MINUTES = 90.0
MINE_CLIPS = 8000
MINE_SEED = 0x4A7
MINE_FILE_SECONDS = 30.0
#: a mined clip: from this long before the peak frame's last sample to this long after it
PIECE_BEFORE_S = 1.5
PIECE_AFTER_S = 0.25
#: a moment whose smoothed keyword score stays below this is not a hard negative, whatever its rank
MINE_FLOOR = 0.05


@dataclass(frozen=True)
class Peak:
    """A candidate hard negative: file index, frame index and the smoothed keyword score there."""

    file: int
    frame: int
    score: float


def peaks(track: np.ndarray, refractory: int, floor: float) -> list[tuple[int, float]]:
    """Local maxima of one smoothed track at or above `floor`, highest first, each at least `refractory` + 1
    frames from every higher one kept (non-maximum suppression)."""
    order = np.argsort(-track, kind="stable")
    taken = np.zeros(len(track), dtype=bool)
    out: list[tuple[int, float]] = []
    for k in order:
        if track[k] < floor:
            break
        if taken[k]:
            continue
        out.append((int(k), float(track[k])))
        taken[max(0, k - refractory) : k + refractory + 1] = True
    return out


def hardest(tracks: Sequence[np.ndarray], count: int, refractory: int, floor: float) -> list[Peak]:
    """The `count` highest peaks over all tracks (ties: earlier file, earlier frame)."""
    found = [Peak(f, k, s) for f, t in enumerate(tracks) for k, s in peaks(t, refractory, floor)]
    found.sort(key=lambda p: (-p.score, p.file, p.frame))
    return found[:count]


def cut(pcm: np.ndarray, frame: int, fe: FrontendConfig) -> np.ndarray:
    """The audio around frame `frame` of `pcm` (frame k covers samples [k * hop, k * hop + window))."""
    end = frame * fe.hop_samples + fe.window_samples
    a = max(0, end - int(PIECE_BEFORE_S * fe.sample_rate))
    return pcm[a : end + int(PIECE_AFTER_S * fe.sample_rate)].copy()


def mining_speech(clips: Sequence[np.ndarray], rate: int) -> list[np.ndarray]:
    """The pool as running speech: `MINE_MINUTES` of `clips` run together, `MINE_FILE_SECONDS` per file."""
    return running_speech(clips, MINE_MINUTES * 60.0, rate, MINE_SEED, MINE_FILE_SECONDS)


def keyword_track(posteriors: np.ndarray, keyword_ids: Sequence[int], window: int) -> np.ndarray:
    """The detector's view of one file: the highest smoothed keyword posterior per frame."""
    return smooth(posteriors[:, list(keyword_ids)], window).max(axis=1)
