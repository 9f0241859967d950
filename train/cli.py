"""`python -m train [train] | data-info | evaluate | synth | download`."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from edge.errors import UserError
from train.selection import Selection
from train.synth.settings import MAX_FUNCTION_WORDS

if TYPE_CHECKING:
    from train.config import ModelSize, Schedule

SUBCOMMANDS = ("train", "data-info", "evaluate", "merge", "synth", "download")
DEFAULT_SYNTH_WORDS = "yes,no,up,down,left,right,on,off,stop,go"

# The synthetic (wake-word) recipe. Measured on the real "jarvis" recordings and real speech: see README,
# "Custom wake word".
#: clips per keyword for one keyword (divided among several keywords, at least MIN_PER_WORD each)
WAKEWORD_PER_WORD = 1200
MIN_PER_WORD = 120
#: clips per negative word (the built-in list plus the words closest to each keyword)
PER_NEGATIVE = 40
#: words closest in spelling to the keyword(s) (`train.wordlist.close_negatives`), shared among several keywords
CLOSE_NEGATIVES = 20
#: share of keyword clips per synthesis engine (renormalised over the installed ones)
ENGINE_WEIGHTS = {"espeak": 0.4, "flite": 0.25, "piper": 0.35, "festival": 0.2, "mbrola": 0.15, "rhvoice": 0.2,
                  "pico": 0.15, "kokoro": 0.3}
#: the engines `--synth-engines auto` uses where installed. Festival is named explicitly: measured on "jarvis" (two
#: seeds), adding it moved real-voice recall by +25 and -6 pp at the export threshold: no clear gain (README)
AUTO_ENGINES = ("espeak", "flite", "piper")
CARRIER_SHARE = 0.25
#: running-speech negatives: synthetic sentences of common words (`train.synth.plan_sentences`)
SENTENCES = 3000
#: mean function words ("the", "could", "you") before each word of a sentence (`SynthConfig.function_words`), for
#: one keyword (a wake word). Measured on "jarvis" (three seeds) and "happy" (two): README "Function words"
WAKE_FUNCTION_WORDS = 1.0
#: bump when the generated data changes, so the .cache/synth folder is rebuilt
SYNTH_RECIPE_VERSION = 4  # 4: Piper clips reproducible (seeded sessions)
#: `_unknown_` clips per view when real negatives are trained on (`--train-on-negatives`)
UNKNOWN_PER_VIEW = 3000
#: share of clips with a simulated room and microphone (synthetic recipe). Off: measured on the real "jarvis"
#: recordings (GRU-64, 20 epochs), 0.5 gave no gain (recall at <= 2.7 FA/h on real speech 37.8 % with, 39.3 %
#: without); the recordings are close-talk. `--acoustics 0.5` for far-field use.
SYNTH_ACOUSTICS = 0.0
#: share of training episodes spoken as running speech (synthetic recipe; `StreamConfig.tight_prob`)
SYNTH_TIGHT = 0.5
#: a wake word (synthetic recipe, one keyword): weights averaged over steps (`TrainConfig.ema_decay`) and the epoch
#: chosen by wake-word recall on held-out real running speech (`Selection.WAKE_RECALL`) instead of validation clip
#: accuracy. Measured on the real "jarvis" recordings (README, "A custom wake word from text"): real-voice recall
#: peaks in the high-lr epochs and falls as the model fits the synthetic voices; clip accuracy keeps rising, so it
#: chose late epochs.
WAKE_EMA_DECAY = 0.998
WAKE_SELECTION = Selection.WAKE_RECALL
#: a wake word: epochs of one training (the one-cycle schedule spans them). Short on purpose: measured on the
#: real "jarvis" recordings, two seeds, mean recall at 1/2/4/8 FA/h of real speech (upper bounds) 0.36 with 20
#: epochs chosen by clip accuracy, 0.52 with 8 epochs, the moving average and wake-recall selection (README).
WAKE_EPOCHS = 8
#: a wake word: the detector's moving-average window in frames (`PostprocessConfig.window`, 10 ms each; it travels
#: in the manifest to `edge run`, the firmware and the export's threshold). A wake word takes 0.5-0.8 s to say, and
#: on real voices its posterior stays high for most of that, while false alarms on real speech are short spikes.
#: Measured on the real "jarvis" recordings and real speech (README, "Detection window"): mean recall at
#: 1/2/4/8 FA/h of two seeds 0.52 with 10 frames, 0.74 with 75 (the epoch chosen with the window too); chosen on
#: half of the files and confirmed on the other half. Several keywords (short command words) keep the default 10.
WAKE_WINDOW = 75
#: several synthetic keywords (e.g. the default ten command words): the wake-word schedule undertrains them (test
#: clip accuracy 80.5 % after 8 epochs against 90.7 % after 30), so they keep 30 epochs, no average, clip accuracy
SYNTH_EPOCHS = 30
#: transfer learning (`--init-from auto`, synthetic recipe): a model of the same architecture is first trained on
#: the real Speech Commands speech of `--negative-data` (the 12-class task, as `--recipe speech_commands` trains it:
#: PRETRAIN_EPOCHS epochs, PRETRAIN_VIEWS views; cached under .cache/pretrained for later wake words), and the wake
#: word starts from its recurrent layers. Opt-in: measured on the real "jarvis" recordings (GRU-64, 20 epochs, two
#: seeds) a base trained for 80 epochs gave +5 / +13 / +13 pp recall at 0 / <= 2.7 / <= 11 FA/h on real speech (mean;
#: the seeds differ by up to 38 pp), a 24-epoch base none; README, "A custom wake word from text".
PRETRAIN_EPOCHS = 80
PRETRAIN_VIEWS = 6
#: bump when the pretraining recipe changes, so the .cache/pretrained folder is rebuilt
PRETRAIN_VERSION = 2
#: Speech Commands recipe (`--synth-unknowns N`): synthetic `_unknown_` words added to the training data, N clips
#: of each: the 25 other Speech Commands words (the shared folders hold ~20 recordings of most) and
#: SC_SYNTH_COMMON_WORDS common words. Training only (no validation or test clips). Off by default: a short run
#: gained (test standard figure 71.7 -> 73.6 %), the full 80-epoch run lost (75.3 -> 73.7 %); README.
SC_SYNTH_UNKNOWNS = 0
#: Speech Commands recipe (`--unknown-word-min N`): every `_unknown_` word's training clips repeated up to N. The
#: shared folders hold ~465 clips of bed/cat/happy and ~25 of each of the other 22 words, which the test split
#: holds evenly. Measured (GRU-64, 24 epochs, 3 views, both folders): N = 100 lifted the test standard figure
#: 71.3 -> 75.8 %, `_unknown_` 51 -> 71 %, and stream recall at <= 10 FA/h 37.8 -> 47.2 %; the full `mcu` run
#: 75.3 -> 78.3 % float (76.1 -> 79.2 % int8), at ~15 % more time per epoch (README).
SC_UNKNOWN_WORD_MIN = 100
#: Speech Commands recipe (`--synth-sentences N`): N synthetic running-speech sentences (common words, none holding a
#: keyword, about one function word before each) as `_unknown_` training data over their whole length
#: (`StreamConfig.long_unknown_s`), so that the model sees conversation it must not fire on. Off by default (README).
SC_SYNTH_SENTENCES = 0
SC_SYNTH_COMMON_WORDS = 120
SC_OTHER_WORDS = ("backward", "bed", "bird", "cat", "dog", "eight", "five", "follow", "forward", "four", "happy", "house",
                  "learn", "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "visual", "wow",
                  "zero")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default="speech_commands",
                   help="speech_commands | speech_commands_35 | sc_test_set | fsdd | folder | synthetic")
    p.add_argument("--data", nargs="+", default=None, metavar="DIR",
                   help="dataset folder(s), merged by label, each keeping its own split lists (or env KWS_DATA_DIR)")
    p.add_argument("--keywords", default="", help="comma-separated keywords (folder/synthetic/speech_commands)")
    p.add_argument("--negative-data", nargs="+", default=["auto"], metavar="DIR",
                   help="synthetic recipe: real speech folders (Speech Commands layout) whose every word is "
                        "_unknown_, for validation and the export's threshold only (see --train-on-negatives); "
                        "'auto' (default): the Speech Commands folders found in KWS_DATA_DIR; 'none'")
    p.add_argument("--synth-per-word", type=int, default=None,
                   help=f"synthetic recipe: clips per keyword (default {WAKEWORD_PER_WORD} for one keyword, "
                        f"{WAKEWORD_PER_WORD} / keywords but at least {MIN_PER_WORD} for several)")
    p.add_argument("--synth-sentences", type=int, default=None, metavar="N",
                   help="running-speech negatives: N synthetic sentences of 3-7 common words, no keyword in them, "
                        f"_unknown_ over their whole length (default {SENTENCES} for the synthetic recipe; "
                        f"{SC_SYNTH_SENTENCES} = off for speech_commands, where they are training-only data)")
    p.add_argument("--synth-seed", type=int, default=0, metavar="N",
                   help="synthetic recipe: seed of the synthesis (speakers' splits, who says what, how; default 0). "
                        "One draw moves real-voice recall by several points: judge a recipe over several")
    p.add_argument("--function-words", type=float, default=None, metavar="X",
                   help="synthetic recipe: mean number of function words (the, could, you, ...) said before each word "
                        f"of a running-speech sentence, 0-3 (default {WAKE_FUNCTION_WORDS:g} for one keyword, "
                        "0 = none for several)")
    p.add_argument("--synth-unknowns", type=int, default=None, metavar="N",
                   help=f"speech_commands recipe: N synthetic clips of each of {len(SC_OTHER_WORDS)} other Speech Commands "
                        f"words and {SC_SYNTH_COMMON_WORDS} common words as _unknown_ training data (default "
                        f"{SC_SYNTH_UNKNOWNS} = off; e.g. 30)")
    p.add_argument("--synth-engines", default="auto",
                   help="synthetic recipe: comma-separated engines of espeak,flite,piper,festival,mbrola,rhvoice,pico,"
                        "kokoro (default auto: espeak, flite and piper where installed)")


def build_parser() -> argparse.ArgumentParser:
    from train.config import LR_BATCH, Cell, ModelSize, TrainConfig
    from train.streams import Objective, StreamConfig

    # Every default below is the dataclass default it stands for (tests/test_cli_defaults.py).
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m train", description="Train recurrent keyword spotters.")
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model (the default command)")
    _data_args(t)
    t.add_argument("--model", default=defaults.model.cell.value, help=" | ".join(c.value for c in Cell))
    t.add_argument("--size", default=defaults.model.size.value,
                   help="mcu (fits the firmware budget) | pi (Raspberry Pi, ~150-250 k parameters): sets "
                        "--hidden/--layers/--proj, which override it")
    t.add_argument("--hidden", type=int, default=None, help="recurrent units per layer (default: from --size)")
    t.add_argument("--layers", type=int, default=None, help="recurrent layers, 1-3 (default: from --size)")
    t.add_argument("--proj", type=int, default=None, help="input projection width, 0 = none (default: from --size)")
    t.add_argument("--feedback-levels", type=int, default=defaults.model.feedback_levels, metavar="N",
                   help="Jordan network: train on the fed-back posterior rounded to N levels (256 = the int8 grid; "
                        f"0 = exact; default {defaults.model.feedback_levels})")
    t.add_argument("--loop-penalty", type=float, default=None, metavar="W",
                   help="Jordan network: weight of the penalty on the feedback loop's gain above --loop-gain-bound "
                        f"(0 = off; default {defaults.loop_penalty:g})")
    t.add_argument("--loop-gain-bound", type=float, default=defaults.loop_gain_bound, metavar="G",
                   help=f"Jordan network: the loop gain left free of the penalty (default {defaults.loop_gain_bound:g})")
    t.add_argument("--bidirectional", action="store_true", help="offline scoring only; cannot be exported")
    t.add_argument("--objective", default=defaults.stream.objective.value, choices=tuple(o.value for o in Objective),
                   help="frame: a target per frame of long streams; clip: one label per clip (many-to-one); default "
                        f"{defaults.stream.objective.value}")
    mcu, pi = ModelSize.MCU.schedule, ModelSize.PI.schedule
    t.add_argument("--epochs", type=int, default=None, help=f"default: {WAKE_EPOCHS} for a synthetic wake word (one keyword), {SYNTH_EPOCHS} for several synthetic "
                        f"keywords, else {mcu.epochs} for --size mcu, {pi.epochs} for pi")
    t.add_argument("--patience", type=int, default=None,
                   help=f"early stop after N epochs without validation gain (default {defaults.patience} for the "
                        f"synthetic recipe, else {mcu.patience} for mcu, {pi.patience} for pi)")
    t.add_argument("--batch", type=int, default=None,
                   help=f"parallel stream rows per step (default {defaults.batch} for the synthetic recipe, else "
                        f"{mcu.batch} for mcu, {pi.batch} for pi)")
    t.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate (default: the cell's, {Cell.GRU.default_lr:g}; {Cell.RNN.default_lr:g} "
                        f"for rnn, times sqrt(batch / {LR_BATCH}))")
    snr_db = ",".join(f"{v:g}" for v in defaults.stream.snr_db)
    t.add_argument("--snr-db", default=snr_db, help=f"background noise SNR range in dB, LO,HI (default {snr_db})")
    t.add_argument("--oversample", type=float, default=defaults.oversample,
                   help="repeat scarce keyword classes up to this share of the median keyword count (0 = off)")
    t.add_argument("--unknown-word-min", type=int, default=None, metavar="N",
                   help=f"repeat the training clips of every _unknown_ word with fewer than N up to N (default "
                        f"{SC_UNKNOWN_WORD_MIN} for --recipe speech_commands, {defaults.unknown_word_min} = off otherwise)")
    t.add_argument("--unknown-whole-word", action=argparse.BooleanOptionalAction, default=None,
                   help="label _unknown_ speech over the whole word, not only around its end as keywords are "
                        "(default: on for the synthetic recipe, off otherwise)")
    t.add_argument("--running-speech", type=float, default=None, metavar="SHARE",
                   help=f"share of training episodes whose words are run together with "
                        f"{defaults.stream.tight_gap_s[0] * 1000:g}-{defaults.stream.tight_gap_s[1] * 1000:g} ms "
                        f"gaps, as in running speech (default {SYNTH_TIGHT} for the synthetic recipe, 0 otherwise)")
    t.add_argument("--views", type=int, default=None,
                   help=f"cached augmented stream realisations (default {defaults.views} for the synthetic recipe, "
                        f"else {mcu.views} for mcu, {pi.views} for pi)")
    t.add_argument("--fresh-view-every", type=int, default=defaults.fresh_view_every, metavar="E",
                   help="a new augmented view every E epochs instead of cycling over --views (epoch e uses view "
                        "e // E; none comes back; built on the other core while training runs on one thread; "
                        f"default {defaults.fresh_view_every}: off)")
    t.add_argument("--seed", type=int, default=defaults.seed)
    t.add_argument("--threads", type=int, default=defaults.threads,
                   help="torch CPU threads (results are reproducible per value)")
    t.add_argument("--unknown-per-view", type=int, default=None,
                   help=f"at most N _unknown_ clips per augmented view, a new draw per view (default: "
                        f"{UNKNOWN_PER_VIEW} with real negatives, else all)")
    t.add_argument("--train-on-negatives", action="store_true",
                   help="synthetic recipe: train on the --negative-data speech too (measured: no gain on real voices)")
    t.add_argument("--acoustics", type=float, default=None,
                   help=f"share of clips given a simulated room and microphone colouring (default "
                        f"{SYNTH_ACOUSTICS} for the synthetic recipe, 0 for recorded data)")
    t.add_argument("--babble", type=float, default=0.0, metavar="SHARE",
                   help="share of the background-noise files that are babble of real talkers, built from the "
                        "training clips of the real negative folders (default 0: off)")
    t.add_argument("--bandlimit", type=float, default=0.0, metavar="SHARE",
                   help="share of training episodes low-passed as a band-limited channel (phone, Bluetooth), at a "
                        "cut-off drawn from 2.5-7 kHz (default 0: off; measured: helps 'jarvis', hurts 'happy')")
    t.add_argument("--weak-ending", type=float, default=StreamConfig.weak_end_prob, metavar="SHARE",
                   help="share of keyword clips whose last 25-50 %% of speech fades down by 6-24 dB (a soft final "
                        f"sound, as in many real recordings; labels keep the word's end; default "
                        f"{StreamConfig.weak_end_prob:g}: off)")
    t.add_argument("--hard-negatives", type=int, default=defaults.hard_negatives, metavar="N",
                   help="hard-negative mining: after training, the N moments of real negative speech (the training split "
                        "of --negative-data) where the model fires most are trained on as _unknown_ for --mine-epochs "
                        f"more epochs (default {defaults.hard_negatives} = off)")
    t.add_argument("--mine-epochs", type=int, default=defaults.mine_epochs, metavar="E",
                   help=f"epochs of the hard-negative phase (default {defaults.mine_epochs})")
    t.add_argument("--spec-augment", default=None, metavar="FRAMES,CHANNELS",
                   help="SpecAugment: the longest span of frames and of filterbank channels masked in each 1-s training "
                        f"chunk (default {defaults.spec_time_mask},{defaults.spec_freq_mask}; 0,0 = off)")
    t.add_argument("--label-frames", default=None, metavar="PRE,POST",
                   help="frame targets: a word's label starts PRE frames before the end of the word and lasts POST "
                        f"frames after it (default {defaults.stream.pre_frames},{defaults.stream.post_frames})")
    t.add_argument("--warp", default="1,1", metavar="LO,HI",
                   help="frequency warp of the features (vocal-tract length perturbation): a factor per stream row "
                        "and epoch, log-uniform in [LO, HI], e.g. 0.85,1.18 (default 1,1: off)")
    t.add_argument("--window", type=int, default=None, metavar="FRAMES",
                   help=f"detection moving-average window, 10 ms frames (default {WAKE_WINDOW} for a synthetic wake "
                        f"word, else {defaults.postprocess.window})")
    t.add_argument("--ema-decay", type=float, default=None,
                   help=f"keep an exponential moving average of the weights, this decay per step, and evaluate, choose "
                        f"and save it (default {WAKE_EMA_DECAY} for a synthetic wake word, {defaults.ema_decay:g} = off "
                        "otherwise)")
    t.add_argument("--dropout", type=float, default=defaults.dropout,
                   help="dropout on the recurrent layers' input and output while training (default %(default)g = off)")
    t.add_argument("--select", default=None, choices=[s.value for s in Selection],
                   help=f"what picks the epoch: validation clip accuracy, or wake-word recall at false-alarm budgets on "
                        f"running speech from held-out validation speech (default {WAKE_SELECTION.value} for a "
                        f"synthetic wake word, {defaults.selection.value} otherwise)")
    t.add_argument("--init-from", default="none", metavar="none|auto|RUN",
                   help="start from the weights of a run folder where names and shapes match (transfer learning, e.g. "
                        "a wake word from a Speech Commands model); 'auto': for the synthetic recipe, a model of the same "
                        f"architecture trained first ({PRETRAIN_EPOCHS} epochs, cached) on the real --negative-data speech; "
                        "default none")
    t.add_argument("--teacher", default=None, metavar="RUN",
                   help="knowledge distillation: a run folder whose posteriors on the training streams this model also "
                        "learns (e.g. several seeds merged by `train merge`); same labels and front end")
    t.add_argument("--distil-weight", type=float, default=defaults.distil_weight, metavar="W",
                   help=f"with --teacher: share of the loss that is the KL divergence from the teacher (default "
                        f"{defaults.distil_weight:g}; the rest is the frame targets' cross-entropy)")
    t.add_argument("--out", type=Path, default=Path("runs/default"), help="run folder")
    t.add_argument("--force", action="store_true", help="replace an existing run folder")
    t.add_argument("--quiet", action="store_true")
    d = sub.add_parser("data-info", help="class counts per split")
    _data_args(d)
    e = sub.add_parser("evaluate", help="streaming clip accuracy of a checkpoint (state reset per clip)")
    e.add_argument("--run", required=True, type=Path)
    _data_args(e)
    e.set_defaults(recipe="auto")
    e.add_argument("--split", default="test", choices=("train", "validation", "test"))
    e.add_argument("--json", action="store_true")
    g = sub.add_parser("merge", help="several runs of one recipe (e.g. different --seed) as one model whose logits "
                                     "are the mean of theirs (a Raspberry Pi model; see train/ensemble.py)")
    g.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="two or more run folders")
    g.add_argument("--out", type=Path, required=True, help="the merged run folder")
    g.add_argument("--force", action="store_true", help="replace an existing run folder")
    sub.add_parser("synth", help="generate the synthetic espeak-ng dataset", add_help=False)
    sub.add_parser("download", help="download Speech Commands v2 or FSDD (needs a network)", add_help=False)
    return parser


def _keywords(s: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in s.split(",") if w.strip())


def synth_engines(value: str) -> tuple[str, ...]:
    """`--synth-engines`: 'auto' = every installed engine of `AUTO_ENGINES` (a missing one is named on stderr)."""
    from train.synth import ENGINES
    from train.voices import available_engines

    reasons = available_engines()
    if value == "auto":
        for engine in AUTO_ENGINES:
            if reasons[engine]:
                print(f"note: synthetic voices without {engine}: {reasons[engine]}", file=sys.stderr)
        return tuple(e for e in ENGINES if e in AUTO_ENGINES and reasons[e] is None)
    engines = _keywords(value)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise UserError(f"--synth-engines: unknown engines {unknown}; choose from {', '.join(ENGINES)}")
    missing = [f"{e}: {reasons[e]}" for e in engines if reasons[e]]
    if missing:
        raise UserError("--synth-engines: " + "; ".join(missing))
    return engines


def synth_per_word(value: int | None, keywords: int) -> int:
    if value is None:
        return max(MIN_PER_WORD, WAKEWORD_PER_WORD // max(1, keywords))
    if value < 1:
        raise UserError("--synth-per-word must be at least 1")
    return value


def function_words(value: float | None, keywords: int) -> float:
    if value is None:
        return WAKE_FUNCTION_WORDS if keywords == 1 else 0.0
    if not 0 <= value <= MAX_FUNCTION_WORDS:
        raise UserError(f"--function-words must be between 0 and {MAX_FUNCTION_WORDS}")
    return value


def synthetic_data_dir(words: tuple[str, ...], per_word: int, seed: int, engines: tuple[str, ...],
                       sentences: int = SENTENCES, function_words: float = 0.0) -> Path:
    """Generate (once, cached under .cache/) the synthetic dataset for these words: every installed voice
    engine, carrier phrases, the built-in negatives plus the words closest to each keyword."""
    from train import synth
    from train.wordlist import close_negatives

    negatives = [w for w in synth.DEFAULT_NEGATIVES if w not in words]
    for w in words:  # ~20 close words for one keyword, fewer each for several
        close = close_negatives(w, count=max(4, CLOSE_NEGATIVES // len(words)), exclude=words)
        negatives += [n for n in close if n not in negatives]
    weights = tuple(ENGINE_WEIGHTS[e] for e in engines)
    config = synth.SynthConfig(engines=engines, engine_weights=weights,
                               carrier_share=CARRIER_SHARE if all(" " not in w for w in words) else 0.0,
                               function_words=function_words)
    style = f"f{function_words:g}" if function_words else ""  # none: the key of the sentences before the option
    key = f"{'-'.join(words)}_{per_word}_{seed}_{'-'.join(engines)}_s{sentences}{style}_v{SYNTH_RECIPE_VERSION}"
    return _cached_dataset(key, lambda out: synth.generate_dataset(
        out, keywords=list(words), negatives=negatives, n_per_word=per_word, seed=seed, n_per_negative=PER_NEGATIVE,
        n_sentences=sentences, config=config, workers=2))


def synthetic_sentences_dir(keywords: tuple[str, ...], n: int, engines: tuple[str, ...]) -> Path:
    """Generate (once, cached under .cache/) a training-only folder of `n` synthetic running-speech sentences for
    the Speech Commands recipe: common words, none holding a keyword (`train.synth.plan.sentence_vocabulary`),
    about one function word before each, in the voices of the wake-word recipe."""
    from train import synth

    key = f"sentences_{n}_{'-'.join(keywords)}_{'-'.join(engines)}_f{WAKE_FUNCTION_WORDS:g}_v{SYNTH_RECIPE_VERSION}"
    config = synth.SynthConfig(engines=engines, engine_weights=tuple(ENGINE_WEIGHTS[e] for e in engines),
                               validation_fraction=0.0, testing_fraction=0.0, function_words=WAKE_FUNCTION_WORDS)

    def generate(out: Path) -> None:
        # The generator wants at least one clip of each keyword (it picks the sentences' words around them): one
        # each, removed with its background noise; only the sentences stay.
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)  # an interrupted generation of our own cache folder
        synth.generate_dataset(partial, keywords=list(keywords), negatives=[], n_per_word=1, n_per_negative=0,
                               n_sentences=n, seed=0, config=config, workers=2)
        for sub in partial.iterdir():
            if sub.is_dir() and sub.name != synth.SENTENCE_FOLDER:
                shutil.rmtree(sub)
        partial.rename(out)

    return _cached_dataset(key, generate)


def _cached_dataset(key: str, generate: Callable[[Path], object]) -> Path:
    """`.cache/synth/<key>`, made by `generate(folder)` once; a folder without its split lists is an interrupted
    generation of our own cache and is made again."""
    out = Path(".cache") / "synth" / key
    if (out / "testing_list.txt").exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    generate(out)
    return out


def synthetic_unknowns_dir(keywords: tuple[str, ...], per_word: int, engines: tuple[str, ...]) -> Path:
    """Generate (once, cached under .cache/) a training-only folder of synthetic `_unknown_` words for the
    Speech Commands recipe: the other Speech Commands words and common words, none of them a keyword."""
    from train import synth
    from train.wordlist import COMMON_WORDS

    others = [w for w in SC_OTHER_WORDS if w not in keywords]
    common = [w for w in COMMON_WORDS if w not in keywords and w not in others]
    words = others + common[:: max(1, len(common) // SC_SYNTH_COMMON_WORDS)][:SC_SYNTH_COMMON_WORDS]
    digest = hashlib.sha256(",".join(words).encode()).hexdigest()[:10]
    key = f"unknowns_{per_word}_{len(words)}_{digest}_{'-'.join(engines)}_v{SYNTH_RECIPE_VERSION}"
    config = synth.SynthConfig(engines=engines, engine_weights=tuple(ENGINE_WEIGHTS[e] for e in engines),
                               validation_fraction=0.0, testing_fraction=0.0)

    def generate(out: Path) -> None:
        # Every word is `_unknown_` to the Speech Commands recipe; the generator calls them keywords only to give
        # each the same number of clips. Its background noise is left out: the real recordings' noise is used.
        partial = out.with_name(out.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)  # an interrupted generation of our own cache folder
        synth.generate_dataset(partial, keywords=words, negatives=[], n_per_word=per_word, seed=0, config=config,
                               workers=2)
        shutil.rmtree(partial / "_background_noise_")
        partial.rename(out)

    return _cached_dataset(key, generate)


def real_negative_dirs(values: list[str], keywords: tuple[str, ...]) -> list[Path]:
    """`--negative-data`: 'none', explicit folders, or 'auto': every Speech Commands folder in KWS_DATA_DIR
    (the entries themselves or their sub-folders). They give negative speech only: a word folder named as a
    keyword is skipped when the data is loaded (`TrainConfig.negative_data`). For several keywords, folders
    that hold some of them are not used automatically (see the measurement below)."""
    from edge.datasets import Recipe, auto_recipe

    if values == ["none"]:
        return []
    if values != ["auto"]:
        dirs = [Path(v) for v in values]
        for d in dirs:
            if not d.is_dir():
                raise UserError(f"--negative-data: {d} is not a folder")
        return dirs
    found: list[Path] = []
    for entry in (Path(v) for v in os.environ.get("KWS_DATA_DIR", "").split(os.pathsep) if v):
        candidates = [entry] + (sorted(p for p in entry.iterdir() if p.is_dir()) if entry.is_dir() else [])
        found += [c for c in candidates if c.is_dir() and auto_recipe(c) is Recipe.SPEECH_COMMANDS and c not in found]
    holding = sorted({k for d in found for k in keywords if (d / k).is_dir()})
    if holding and len(keywords) > 1:
        # Measured (the default ten command words): thousands of real `_unknown_` clips then outnumber every
        # keyword in validation, clip-accuracy selection kept epoch 5 of a model that answers `_unknown_`
        # (standard figure 13.8 % against 76.4 %); a wake word's own selection is built for real speech.
        print(f"note: the Speech Commands folders in KWS_DATA_DIR hold recordings of {', '.join(holding)}: no automatic "
              "real negatives for several keywords (name negative folders with --negative-data)", file=sys.stderr)
        return []
    if holding:
        print(f"note: the Speech Commands folders in KWS_DATA_DIR hold real recordings of {', '.join(holding)}: "
              "those word folders are skipped (negative speech only; they stay free for measuring, e.g. "
              "python -m export wakeword ART --positives DIR)", file=sys.stderr)
    if not found:
        print("note: no real negative speech found (no Speech Commands folder in KWS_DATA_DIR): the wake word "
              "learns from synthetic negatives only and will fire more often on real speech", file=sys.stderr)
    return found


def resolve_init(value: str, real_speech: list[Path], model, threads: int, progress: bool,
                 keywords: tuple[str, ...] = ()) -> Path | None:
    """`--init-from`: a run folder, 'none', or 'auto': the cached real-speech base model (`pretrained_base`) when
    real Speech Commands speech is at hand (the synthetic recipe's negatives), else none. `keywords`: the wake
    word(s), whose real recordings the base must not hear (`pretrained_base`)."""
    if value == "none":
        return None
    if value != "auto":
        return Path(value)
    from edge.datasets import SC_COMMANDS, Recipe, auto_recipe

    if not real_speech:
        return None
    if any(auto_recipe(d) is not Recipe.SPEECH_COMMANDS for d in real_speech):
        print(f"note: {', '.join(map(str, real_speech))}: not Speech Commands folders, so no real-speech base model "
              "(--init-from RUN names one)", file=sys.stderr)
        return None
    if any(k in SC_COMMANDS for k in keywords):
        print(f"note: {', '.join(k for k in keywords if k in SC_COMMANDS)} is a class of the real-speech base model's "
              "task: no base model (--init-from RUN names one)", file=sys.stderr)
        return None
    return pretrained_base(real_speech, model, threads, progress, keywords)


def base_dataset(dirs: list[Path], keywords: tuple[str, ...]):
    """The real-speech base model's data: the 12-class Speech Commands task over `dirs`, without the word folders
    named as a keyword (e.g. `happy`, an `_unknown_` word there): the wake word's real recordings stay unheard,
    free for measuring, as the wake word's own negatives leave them out (`real_negative_dirs`)."""
    from edge.datasets import Recipe, load_dataset

    dataset = load_dataset(Recipe.SPEECH_COMMANDS, dirs)
    dataset.clips = [c for c in dataset.clips if c.path.parent.name not in keywords]
    return dataset


def pretrained_base(dirs: list[Path], model, threads: int, progress: bool, keywords: tuple[str, ...] = ()) -> Path:
    """Train (once; cached under .cache/pretrained) a model of `model`'s architecture on the 12-class Speech
    Commands task over the real speech in `dirs` (`base_dataset`: without the keywords' own recordings): its
    recurrent layers have heard thousands of real speakers, which a wake word trained from synthetic voices alone
    never does."""
    from edge.datasets import Recipe
    from train.trainer import CHECKPOINT, CONFIG, TrainConfig, train

    held_out = sorted({k for k in keywords for d in dirs if (d / k).is_dir()})
    arch = {k: v for k, v in model.to_dict().items() if k in ("cell", "hidden", "layers", "proj")}
    ident = json.dumps({"data": [str(d.resolve()) for d in dirs], "arch": arch, "epochs": PRETRAIN_EPOCHS,
                        "views": PRETRAIN_VIEWS, "v": PRETRAIN_VERSION, "without": held_out}, sort_keys=True)
    out = Path(".cache") / "pretrained" / f"{arch['cell']}{arch['hidden']}x{arch['layers']}_{hashlib.sha256(ident.encode()).hexdigest()[:12]}"
    if (out / CONFIG).exists() and (out / CHECKPOINT).exists():
        print(f"real-speech base model: {out} (cached)", file=sys.stderr)
        return out
    print(f"training the real-speech base model ({PRETRAIN_EPOCHS} epochs on {', '.join(map(str, dirs))}; cached "
          f"in {out} for later wake words)", file=sys.stderr)
    cfg = TrainConfig(recipe=Recipe.SPEECH_COMMANDS, data=tuple(str(d) for d in dirs), model=model,
                      epochs=PRETRAIN_EPOCHS, views=PRETRAIN_VIEWS, patience=PRETRAIN_EPOCHS, threads=threads)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # an interrupted pretraining of our own cache folder
    train(cfg, partial, progress=progress, dataset=base_dataset(dirs, tuple(held_out)))
    partial.rename(out)
    return out


def resolve_data(args: argparse.Namespace) -> tuple[str, list[Path], tuple[str, ...] | None]:
    from edge.datasets import Recipe, data_dirs_from_env

    try:
        recipe = Recipe(args.recipe)
    except ValueError:
        raise UserError(f"unknown recipe {args.recipe!r}") from None
    kws = _keywords(args.keywords)
    sentences = (SENTENCES if recipe is Recipe.SYNTHETIC else SC_SYNTH_SENTENCES) if args.synth_sentences is None \
        else args.synth_sentences
    if args.synth_sentences is not None and recipe not in (Recipe.SYNTHETIC, Recipe.SPEECH_COMMANDS):
        raise UserError(f"--synth-sentences is for the synthetic and speech_commands recipes, not {recipe.value}")
    if recipe is Recipe.SYNTHETIC and not args.data:
        words = kws or _keywords(DEFAULT_SYNTH_WORDS)
        if sentences < 0:
            raise UserError("--synth-sentences must be >= 0")
        if args.synth_seed < 0:
            raise UserError("--synth-seed must be >= 0")
        synth = synthetic_data_dir(words, synth_per_word(args.synth_per_word, len(words)), args.synth_seed,
                                   synth_engines(args.synth_engines), sentences,
                                   function_words(args.function_words, len(words)))
        return Recipe.FOLDER.value, [synth, *real_negative_dirs(args.negative_data, words)], words
    roots = data_dirs_from_env(args.data)
    if recipe is Recipe.SYNTHETIC:
        recipe = Recipe.FOLDER
        kws = kws or _keywords(DEFAULT_SYNTH_WORDS)
    per_word = SC_SYNTH_UNKNOWNS if args.synth_unknowns is None else args.synth_unknowns
    if per_word < 0:
        raise UserError("--synth-unknowns must be >= 0")
    if recipe is Recipe.SPEECH_COMMANDS and per_word and getattr(args, "command", "train") == "train":
        from edge.datasets import SC_COMMANDS

        roots = [*roots, synthetic_unknowns_dir(kws or SC_COMMANDS, per_word, synth_engines(args.synth_engines))]
    if sentences < 0:
        raise UserError("--synth-sentences must be >= 0")
    if recipe is Recipe.SPEECH_COMMANDS and sentences and getattr(args, "command", "train") == "train":
        from edge.datasets import SC_COMMANDS

        roots = [*roots, synthetic_sentences_dir(kws or SC_COMMANDS, sentences, synth_engines(args.synth_engines))]
    return recipe.value, roots, kws or None


def cmd_train(args: argparse.Namespace) -> int:
    from train.models import Cell, ModelConfig, ModelSize
    from train.streams import Objective, StreamConfig
    from train.trainer import TrainConfig, train

    if args.threads < 1:
        raise UserError("--threads must be at least 1")
    try:
        cell = Cell(args.model)
    except ValueError:
        raise UserError(f"unknown model {args.model!r}; choose {', '.join(c.value for c in Cell)}") from None
    try:
        size = ModelSize(args.size)
    except ValueError:
        raise UserError(f"unknown size {args.size!r}; choose mcu or pi") from None
    recipe, roots, kws = resolve_data(args)
    arch = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in size.preset.items()}
    try:
        mcfg = ModelConfig(cell=cell, bidirectional=args.bidirectional, size=size, feedback_levels=args.feedback_levels,
                           **arch)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    try:
        lo, hi = (float(v) for v in args.snr_db.split(","))
    except ValueError:
        raise UserError(f"--snr-db must be two numbers LO,HI, got {args.snr_db!r}") from None
    if lo > hi:
        raise UserError("--snr-db: LO must not exceed HI")
    wake_word = args.recipe == "synthetic" and len(kws or ()) == 1
    schedule = resolve_schedule(args, size, wake_word)
    if not 0.0 <= args.oversample <= 1.0:
        raise UserError("--oversample must be between 0 and 1")
    unknown_word_min = resolve_unknown_word_min(args)
    if args.init_from not in ("auto", "none") and not Path(args.init_from).is_dir():
        raise UserError(f"--init-from: {args.init_from} is not a run folder")
    if args.teacher is not None and not Path(args.teacher).is_dir():
        raise UserError(f"--teacher: {args.teacher} is not a run folder")
    if not 0.0 <= args.distil_weight <= 1.0:
        raise UserError("--distil-weight must be between 0 and 1")
    lr = cell.lr_at(schedule.batch) if args.lr is None else args.lr
    if lr <= 0:
        raise UserError("--lr must be positive")
    if args.loop_penalty is not None and cell is not Cell.JORDAN:
        raise UserError("--loop-penalty is a Jordan network's option (--model jordan)")
    loop_penalty = TrainConfig().loop_penalty if args.loop_penalty is None else args.loop_penalty
    if loop_penalty < 0 or args.loop_gain_bound < 0:
        raise UserError("--loop-penalty and --loop-gain-bound must be >= 0")
    if not 0.0 <= args.babble < 1.0:
        raise UserError("--babble must be in [0, 1)")
    if not 0.0 <= args.bandlimit <= 1.0:
        raise UserError("--bandlimit must be between 0 and 1")
    if not 0.0 <= args.weak_ending <= 1.0:
        raise UserError("--weak-ending must be between 0 and 1")
    warp = parse_warp(args.warp)
    spec_time, spec_freq = parse_spec_augment(args.spec_augment)
    pre_frames, post_frames = parse_label_frames(args.label_frames)
    if args.hard_negatives < 0 or args.mine_epochs < 1:
        raise UserError("--hard-negatives must be >= 0 and --mine-epochs >= 1")
    if args.hard_negatives and not negative_roots(args, roots):
        raise UserError("--hard-negatives needs the synthetic recipe's real negative speech: a Speech Commands folder "
                        "in KWS_DATA_DIR or --negative-data DIR")
    # Only once every argument checked out: a typo must not cost (or, with --force, delete) a run folder.
    if args.out.exists() and any(args.out.iterdir()):
        if not args.force:
            raise UserError(f"{args.out} already exists; pass --force to replace it")
        print(f"replacing existing run folder {args.out} (--force)", file=sys.stderr)
        shutil.rmtree(args.out)
    synthetic = args.recipe == "synthetic"
    acoustics = (SYNTH_ACOUSTICS if synthetic else 0.0) if args.acoustics is None else args.acoustics
    if not 0.0 <= acoustics <= 1.0:
        raise UserError("--acoustics must be between 0 and 1")
    ema_decay = (WAKE_EMA_DECAY if wake_word else 0.0) if args.ema_decay is None else args.ema_decay
    if not 0.0 <= ema_decay < 1.0:
        raise UserError("--ema-decay must be in [0, 1)")
    if not 0.0 <= args.dropout < 1.0:
        raise UserError("--dropout must be in [0, 1)")
    selection = (WAKE_SELECTION if wake_word else Selection.CLIP_ACCURACY) if args.select is None else Selection(args.select)
    post = TrainConfig().postprocess
    window = (WAKE_WINDOW if wake_word else post.window) if args.window is None else args.window
    if window < 1:
        raise UserError("--window must be at least 1 frame")
    negatives = [str(r) for r in negative_roots(args, roots)]
    heldout = () if args.train_on_negatives else tuple(negatives)
    unknown_cap = (UNKNOWN_PER_VIEW if negatives and not heldout else 0) if args.unknown_per_view is None else args.unknown_per_view
    if unknown_cap < 0:
        raise UserError("--unknown-per-view must be >= 0")
    if args.fresh_view_every < 0:
        raise UserError("--fresh-view-every must be >= 0 (0: off)")
    running_speech = resolve_running_speech(args)
    init_from = resolve_init(args.init_from, [Path(n) for n in negatives], mcfg, args.threads, not args.quiet,
                             tuple(kws or ()))
    cfg = TrainConfig(recipe=recipe, data=tuple(str(r) for r in roots), keywords=kws or (), model=mcfg, epochs=schedule.epochs,
                      batch=schedule.batch, lr=lr, oversample=args.oversample,
                      unknown_word_min=unknown_word_min, views=schedule.views, fresh_view_every=args.fresh_view_every,
                      patience=schedule.patience, seed=args.seed, threads=args.threads,
                      unknown_per_view=unknown_cap, heldout_data=heldout, negative_data=tuple(negatives),
                      init_from=str(init_from or ""), teacher=str(args.teacher or ""), distil_weight=args.distil_weight,
                      ema_decay=ema_decay, dropout=args.dropout, selection=selection, babble_share=args.babble, warp=warp,
                      spec_time_mask=spec_time, spec_freq_mask=spec_freq,
                      hard_negatives=args.hard_negatives, mine_epochs=args.mine_epochs,
                      loop_penalty=loop_penalty, loop_gain_bound=args.loop_gain_bound,
                      postprocess=replace(post, window=window),
                      stream=StreamConfig(objective=Objective(args.objective), snr_db=(lo, hi),
                                          pre_frames=pre_frames, post_frames=post_frames,
                                          reverb_prob=acoustics, colour_prob=acoustics, bandlimit_prob=args.bandlimit,
                                          weak_end_prob=args.weak_ending,
                                          unknown_whole_word=synthetic if args.unknown_whole_word is None else args.unknown_whole_word,
                                          tight_prob=running_speech))
    metrics = train(cfg, args.out, progress=not args.quiet)
    test = metrics.get("test", metrics.get("validation", {}))
    print(f"run saved to {args.out}: test clip accuracy {test.get('accuracy', float('nan')):.4f} "
          f"({metrics['size']['params']} params, {metrics['size']['macs_per_frame']} MACs/frame, "
          f"{metrics['train_seconds']:.0f} s)")
    return 0


def parse_spec_augment(value: str | None) -> tuple[int, int]:
    """`--spec-augment FRAMES,CHANNELS`: the longest masked spans, at most a training chunk's frames and the front
    end's channels; None: `TrainConfig`'s defaults."""
    from edge.frontend import FrontendConfig
    from train.config import TrainConfig
    from train.streams import StreamConfig

    if value is None:
        defaults = TrainConfig()
        return defaults.spec_time_mask, defaults.spec_freq_mask
    channels = FrontendConfig().num_channels
    try:
        frames, chans = (int(v) for v in value.split(","))
    except ValueError:
        raise UserError(f"--spec-augment must be two whole numbers FRAMES,CHANNELS, got {value!r}") from None
    chunk = StreamConfig().chunk_frames
    if not (0 <= frames <= chunk and 0 <= chans <= channels):
        raise UserError(f"--spec-augment must be 0-{chunk} frames and 0-{channels} channels, got {value!r}")
    return frames, chans


def parse_label_frames(value: str | None) -> tuple[int, int]:
    """`--label-frames PRE,POST`: 0 <= PRE <= 100 and 1 <= POST <= 100 frames (a training chunk); None:
    `StreamConfig`'s defaults."""
    from train.streams import StreamConfig

    if value is None:
        return StreamConfig.pre_frames, StreamConfig.post_frames
    try:
        pre, post = (int(v) for v in value.split(","))
    except ValueError:
        raise UserError(f"--label-frames must be two whole numbers PRE,POST, got {value!r}") from None
    chunk = StreamConfig.chunk_frames
    if not (0 <= pre <= chunk and 1 <= post <= chunk):
        raise UserError(f"--label-frames must be 0-{chunk} frames before the word's end and 1-{chunk} after, got {value!r}")
    return pre, post


def parse_warp(value: str) -> tuple[float, float]:
    """`--warp LO,HI`: two factors with 0.5 <= LO <= 1 <= HI <= 2 (a warp range that leaves the speaker's own
    vocal tract in it; beyond an octave the filterbank's band edges would be clamped over most channels)."""
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError:
        raise UserError(f"--warp must be two numbers LO,HI, got {value!r}") from None
    if not 0.5 <= lo <= 1.0 <= hi <= 2.0:
        raise UserError(f"--warp must satisfy 0.5 <= LO <= 1 <= HI <= 2, got {value!r}")
    return lo, hi


def resolve_schedule(args: argparse.Namespace, size: ModelSize, wake_word: bool) -> Schedule:
    """--epochs, --batch, --views and --patience, each from the command line or its default: the size's
    Speech Commands `Schedule` for every recipe but `synthetic`, which keeps `BASE_SCHEDULE`'s batch, views and
    patience and trains WAKE_EPOCHS (one keyword) or SYNTH_EPOCHS epochs."""
    from train.config import BASE_SCHEDULE

    if args.recipe == "synthetic":
        base = replace(BASE_SCHEDULE, epochs=WAKE_EPOCHS if wake_word else SYNTH_EPOCHS)
    else:
        base = size.schedule
    given = {k: getattr(args, k) for k in ("epochs", "batch", "views", "patience") if getattr(args, k) is not None}
    bad = [f"--{k}" for k, v in given.items() if v < 1]
    if bad:
        raise UserError(f"{' and '.join(bad)} must be at least 1")
    return replace(base, **given)


def resolve_unknown_word_min(args: argparse.Namespace) -> int:
    """`--unknown-word-min`, or its recipe's default: SC_UNKNOWN_WORD_MIN for Speech Commands, else off."""
    from train.config import TrainConfig

    if args.unknown_word_min is None:
        return SC_UNKNOWN_WORD_MIN if args.recipe == "speech_commands" else TrainConfig().unknown_word_min
    if args.unknown_word_min < 0:
        raise UserError("--unknown-word-min must be >= 0")
    return int(args.unknown_word_min)


def resolve_running_speech(args: argparse.Namespace) -> float:
    """`--running-speech`, or its recipe's default: SYNTH_TIGHT for the synthetic recipe, else the stream's (off)."""
    from train.streams import StreamConfig

    if args.running_speech is None:
        return SYNTH_TIGHT if args.recipe == "synthetic" else StreamConfig().tight_prob
    if not 0.0 <= args.running_speech <= 1.0:
        raise UserError("--running-speech must be a share between 0 and 1")
    return float(args.running_speech)


def negative_roots(args: argparse.Namespace, roots: list[Path]) -> list[Path]:
    """The folders of `resolve_data`'s roots that give negative speech only: the real negatives after the
    synthetic folder of a synthetic recipe without --data."""
    return roots[1:] if args.recipe == "synthetic" and not args.data else []


def cmd_data_info(args: argparse.Namespace) -> int:
    from edge.datasets import load_parts
    from edge.datasets import load_dataset

    recipe, roots, kws = resolve_data(args)
    negatives = negative_roots(args, roots)
    parts = load_parts(recipe, roots, kws, negatives)
    merged = load_dataset(recipe, roots, kws, negatives)
    if len(roots) > 1:
        for r, ds in zip(roots, parts):
            _print_counts(f"{r} ({recipe})", ds, merged.labels)
        _print_counts(f"merged, {len(roots)} folders ({recipe})", merged, merged.labels)
    else:
        _print_counts(f"{roots[0]} ({recipe})", merged, merged.labels)
    print("(_silence_ clips are cut from background noise at training and evaluation time)")
    return 0


def _print_counts(title: str, ds, labels: list[str]) -> None:
    counts = ds.counts()
    print(f"{title}: {len(ds.labels)} labels, {len(ds.noise_files)} background-noise files")
    print(f"{'label':<14}" + "".join(f"{s:>12}" for s in counts))
    for label in labels:
        print(f"{label:<14}" + "".join(f"{counts[s].get(label, 0):>12}" for s in counts))
    print(f"{'total':<14}" + "".join(f"{sum(counts[s].values()):>12}" for s in counts))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from edge.datasets import evaluation_clips, standard_clips
    from edge.postprocess import standard_summary
    from edge.datasets import AudioCache, Recipe, auto_recipe, load_dataset, recorded_data_dirs
    from train.trainer import clip_features, clip_posteriors, load_run, score_clips

    run = load_run(args.run)
    if args.recipe == "auto":
        root = [Path(d) for d in args.data] if args.data else recorded_data_dirs(run.meta["train_config"]["data"])
        if not root:
            raise UserError(f"{args.run}: the run names no data folder; pass --data DIR")
        recipe = auto_recipe(root)
    else:
        recipe_s, root, _ = resolve_data(args)
        recipe = Recipe(recipe_s)
    kws = tuple(l for l in run.labels if not l.startswith("_")) if recipe in (Recipe.SPEECH_COMMANDS, Recipe.FOLDER) else None
    ds = load_dataset(recipe, root, kws, recorded_data_dirs(run.meta["train_config"].get("negative_data")))
    split = "test" if recipe is Recipe.SC_TEST_SET else args.split
    pcm, truth, _ = evaluation_clips(ds, split, AudioCache(run.frontend.sample_rate), labels=run.labels)
    result = score_clips(clip_posteriors(run.model, clip_features(pcm, run.frontend)), truth, run.labels, run.postprocess)
    spcm, struth, _ = standard_clips(ds, split, AudioCache(run.frontend.sample_rate), labels=run.labels)
    result["standard"] = standard_summary(clip_posteriors(run.model, clip_features(spcm, run.frontend)), struth,
                                          run.labels, run.postprocess.window)
    result.update({"split": split, "recipe": recipe.value})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['clips']} clips ({split}): accuracy {result['accuracy']:.4f} (device clip decision); "
              f"standard {result['standard']['accuracy']:.4f} on {result['standard']['clips']} clips "
              f"({result['standard']['protocol']})")
        for label, acc in result["per_class"].items():
            print(f"  {label:<12} {'n/a' if acc is None else f'{acc:.3f}'}")
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from train.ensemble import merge_runs

    if len(args.runs) < 2:
        raise UserError("merge needs at least two run folders")
    if args.out.resolve() in [r.resolve() for r in args.runs]:
        raise UserError(f"--out {args.out} is one of the runs to merge; choose a new folder")
    for r in args.runs:
        if not r.is_dir():
            raise UserError(f"{r}: not a run folder")
    replacing = args.out.exists() and any(args.out.iterdir())
    if replacing and not args.force:
        raise UserError(f"{args.out} already exists; pass --force to replace it")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.merging-", dir=args.out.parent))
    try:
        meta = merge_runs(args.runs, tmp)  # every check passes before the user's folder is touched
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replacing:
        print(f"replacing existing run folder {args.out} (--force)", file=sys.stderr)
        shutil.rmtree(args.out)
    tmp.rename(args.out)
    size = meta["metrics"]["size"]
    print(f"merged {len(args.runs)} runs into {args.out}: {meta['model']['cell']} {meta['model']['layers']} x "
          f"{meta['model']['hidden']} ({size['params']} params, {size['macs_per_frame']} MACs/frame); export it with "
          f"python -m export {args.out} --out ART")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS + ("-h", "--help"):
        argv.insert(0, "train")
    from edge.errors import run_cli

    def body() -> int:
        if argv[0] == "synth":
            from train import synth
            return synth.main(argv[1:])
        if argv[0] == "download":
            from train import download
            return download.main(argv[1:])
        args = build_parser().parse_args(argv)
        return {"train": cmd_train, "data-info": cmd_data_info, "evaluate": cmd_evaluate,
                "merge": cmd_merge}[args.command](args)

    return run_cli(body)
