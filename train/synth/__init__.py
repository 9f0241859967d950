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

The package, one concern a module, each importing only the ones before it: `settings` (constants, layout names,
voices, `SynthError`, `SynthConfig`), `dsp` (the synthesis resampler, int16 rounding), `espeak` (espeak-ng through
ctypes), `plan` (speakers, splits, clip plans), `render` (clips and background noise), `dataset`
(`generate_dataset`) and `cli` (`python -m train.synth`, `python -m train synth`). The names below are the ones
used outside the package.
"""

from __future__ import annotations

from train.synth.cli import main
from train.synth.dataset import DatasetSummary, generate_dataset
from train.synth.dsp import resample, to_int16
from train.synth.espeak import available_variants, espeak_version, synthesize, synthesize_native
from train.synth.plan import (ClipPlan, Speaker, assign_speaker_splits, plan_sentences, plan_word,
                              sentence_function_words, sentence_vocabulary, speaker_pool)
from train.synth.render import background_noises, colored_noise, nonsense_sentence, render_clip, trim_silence
from train.synth.settings import (BACKGROUND_DIR, CLIP_SAMPLES, DEFAULT_NEGATIVES, ENGINES, ENGLISH_VOICES,
                                  HUMAN_VARIANTS, INFO_FILE, MAX_FUNCTION_WORDS, SENTENCE_FOLDER, SENTENCE_SAMPLES,
                                  SENTENCE_WORDS, SPLITS, TARGET_RATE, SynthConfig, SynthError)

__all__ = ["BACKGROUND_DIR", "CLIP_SAMPLES", "ClipPlan", "DEFAULT_NEGATIVES", "DatasetSummary", "ENGINES",
           "ENGLISH_VOICES", "HUMAN_VARIANTS", "INFO_FILE", "MAX_FUNCTION_WORDS", "SENTENCE_FOLDER", "SENTENCE_SAMPLES",
           "SENTENCE_WORDS", "SPLITS", "Speaker", "SynthConfig", "SynthError", "TARGET_RATE", "assign_speaker_splits",
           "available_variants", "background_noises", "colored_noise", "espeak_version", "generate_dataset", "main",
           "nonsense_sentence", "plan_sentences", "plan_word", "render_clip", "resample", "sentence_function_words",
           "sentence_vocabulary", "speaker_pool", "synthesize", "synthesize_native", "to_int16", "trim_silence"]
