"""Datasets for training: the layouts and split rules live in `edge.datasets` (pure numpy, shared with
`python -m edge eval`); this module re-exports them for the training code."""

from edge.datasets import *  # noqa: F401,F403
from edge.datasets import (  # noqa: F401
    FSDD_WORDS,
    SC_COMMANDS,
    SILENCE,
    SPLITS,
    UNKNOWN,
    AudioCache,
    Clip,
    Dataset,
    Recipe,
    auto_recipe,
    data_dirs_from_env,
    load_dataset,
    noise_segments,
    silence_clips,
    speaker_of,
    split_by_speaker_hash,
    synthetic_noise,
)
