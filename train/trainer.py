"""Training: truncated BPTT over long streams with the recurrent state carried across chunks."""

from __future__ import annotations

import json
import platform
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from edge.atomic import write_bytes_atomic, write_text_atomic
from edge.errors import UserError
from edge.frontend import FrontendConfig, StreamingFrontend, features_to_float
from edge.postprocess import PostprocessConfig, clip_decision, standard_summary, summarize
from edge.datasets import evaluation_clips, reuse_by_name, standard_clips
from edge.datasets import SILENCE, UNKNOWN, AudioCache, Clip, Dataset, load_dataset, recorded_data_dirs, synthetic_noise
from train.synth import SENTENCE_FOLDER
from train.config import TrainConfig
from train.models import Cell, ModelConfig, RecurrentKWS, build_model, model_size
from train.selection import RUNNING_MINUTES, RUNNING_SEED, Selection, WakeSelection, running_speech
from train.mining import MINE_CLIPS, MINE_FLOOR, MINE_SEED, cut, hardest, keyword_track, mining_speech
from train.streams import IGNORE, StreamView, build_view, speech_babble

CHECKPOINT = "model.safetensors"
CONFIG = "config.json"


def set_determinism(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


# ----------------------------------------------------------------------------- evaluation
def clip_features(pcm_list: list[np.ndarray], fe: FrontendConfig) -> list[np.ndarray]:
    """Each clip through a fresh front end, as `edge eval` streams it (front end and state reset per clip)."""
    return [features_to_float(StreamingFrontend(fe).process(p)) for p in pcm_list]


@torch.no_grad()
def clip_posteriors(model: RecurrentKWS, feats: list[np.ndarray], batch: int = 256) -> list[np.ndarray]:
    """Frame posteriors per clip, from a zero state. Uses `forward`, which tests prove equal to a `step` loop."""
    model.eval()
    out: list[np.ndarray] = []
    for i in range(0, len(feats), batch):
        part = feats[i : i + batch]
        T = max(len(f) for f in part)
        x = np.zeros((len(part), T, part[0].shape[1]), dtype=np.float32)
        for j, f in enumerate(part):
            x[j, : len(f)] = f
        logits, _ = model(torch.from_numpy(x))
        probs = torch.softmax(logits, dim=-1).numpy()
        out.extend(probs[j, : len(f)] for j, f in enumerate(part))
    return out


def score_clips(
    posteriors: list[np.ndarray], truth: list[int], labels: list[str], post: PostprocessConfig
) -> dict[str, Any]:
    pred = [clip_decision(p, labels, post) for p in posteriors]
    return summarize(pred, truth, labels)


# ----------------------------------------------------------------------------- data preparation
def oversample_scarce(items: list[tuple[np.ndarray, int]], labels: list[str], share: float) -> list[tuple[np.ndarray, int]]:
    """Repeat the clips of scarce keyword classes (whole repeats, every copy augmented differently when the
    streams are built) until each keyword has at least `share` of the median keyword count; 0 = off.
    Speech Commands with the extra folder: on/off have ~200 clips against ~980 for the other words."""
    if share <= 0:
        return items
    keyword_ids = [i for i, l in enumerate(labels) if l not in (SILENCE, UNKNOWN)]
    counts = Counter(label for _, label in items)
    have = [counts[i] for i in keyword_ids if counts[i]]
    if not have:
        return items
    goal = share * float(np.median(have))
    out = list(items)
    for i in keyword_ids:
        out += _repeats_up_to([it for it in items if it[1] == i], goal)
    return out


def _repeats_up_to(clips: list[tuple[np.ndarray, int]], goal: float) -> list[tuple[np.ndarray, int]]:
    """The whole repeats of `clips` that, added to them, make at least `goal` clips (none if there are already
    that many, or no clips)."""
    if not 0 < len(clips) < goal:
        return []
    return clips * (int(np.ceil(goal / len(clips))) - 1)


def oversample_unknown_words(items: list[tuple[np.ndarray, int]], words: list[str], unknown: int | None,
                             minimum: int) -> list[tuple[np.ndarray, int]]:
    """Repeat the clips of each `_unknown_` word (`words[i]` names item i's word) with fewer than `minimum`
    clips, whole repeats, until it has at least `minimum`; 0 (or no `_unknown_` class) = off."""
    if minimum <= 0 or unknown is None:
        return items
    by_word: dict[str, list[tuple[np.ndarray, int]]] = {}
    for it, word in zip(items, words):
        if it[1] == unknown:
            by_word.setdefault(word, []).append(it)
    out = list(items)
    for clips in by_word.values():
        out += _repeats_up_to(clips, minimum)
    return out


def view_clips(items: list[tuple[np.ndarray, int]], labels: list[str], cap: int, seed: int,
               exempt: set[int] | frozenset[int] = frozenset()) -> list[tuple[np.ndarray, int]]:
    """`items` with at most `cap` `_unknown_` clips, drawn per view seed (0 or fewer unknowns: all of them).
    Items whose index is in `exempt` (the synthetic running-speech sentences) are always kept."""
    unknown = labels.index(UNKNOWN) if UNKNOWN in labels else None
    idx = [i for i, (_, label) in enumerate(items) if label == unknown and i not in exempt]
    if cap <= 0 or len(idx) <= cap:
        return items
    drop = set(idx) - set(np.random.default_rng([seed, 0x0E6]).choice(idx, cap, replace=False).tolist())
    return [it for i, it in enumerate(items) if i not in drop]


@dataclass
class WakeMaterial:
    """Validation keyword clips and running speech (features, each streamed from a reset state) and the rule
    that scores a model on them (`train.selection`)."""

    rule: WakeSelection
    positives: list[np.ndarray]
    negatives: list[np.ndarray]
    source: str  # what the running speech was built from


def inside(path: Path, folders: list[Path]) -> bool:
    """Whether `path` lies under one of the (resolved) `folders`."""
    return any(f in path.resolve().parents for f in folders)


def wake_material(cfg: TrainConfig, labels: list[str], pcm: list[np.ndarray], truth: list[int], names: list[str],
                  feats: list[np.ndarray], heldout: list[Path], progress: bool) -> WakeMaterial:
    """The running speech is built from the validation `_unknown_` clips of the held-out real speech when there
    is some, else from every validation `_unknown_` clip."""
    keyword_ids = tuple(i for i, l in enumerate(labels) if l not in (SILENCE, UNKNOWN))
    unknown = labels.index(UNKNOWN) if UNKNOWN in labels else -1
    clips = [(p, n) for p, t, n in zip(pcm, truth, names) if t == unknown]
    real = [p for p, n in clips if inside(Path(n), heldout)]
    source = "held-out real speech" if real else "validation _unknown_ clips"
    chosen = real or [p for p, _ in clips]
    if not chosen or not keyword_ids:
        raise UserError("--select wake-recall needs validation keyword clips and _unknown_ speech")
    fe = cfg.frontend
    speech = running_speech(chosen, RUNNING_MINUTES * 60, fe.sample_rate, RUNNING_SEED)
    negatives = clip_features(list(tqdm(speech, desc="running speech", unit="file", disable=not progress, leave=False)), fe)
    positives = [(f, t) for f, t in zip(feats, truth) if t in keyword_ids]
    seconds = sum(len(x) for x in speech) / fe.sample_rate
    rule = WakeSelection(keyword_ids, tuple(t for _, t in positives), cfg.postprocess.window,
                         cfg.postprocess.refractory, seconds)
    return WakeMaterial(rule, [f for f, _ in positives], negatives, f"{seconds / 60:.0f} min of {source}")


@dataclass
class Prepared:
    dataset: Dataset
    labels: list[str]
    train: list[tuple[np.ndarray, int]]
    noise: list[np.ndarray]
    eval_sets: dict[str, tuple[list[np.ndarray], list[int]]]  # split -> (features per clip, truth)
    #: split -> (features per clip, truth) of `edge.datasets.standard_clips` (the standard figure)
    standard_sets: dict[str, tuple[list[np.ndarray], list[int]]] = field(default_factory=dict)
    #: indices into `train` of running-speech sentences (never dropped by `unknown_per_view`)
    sentences: frozenset[int] = frozenset()
    wake: WakeMaterial | None = None  # the material of `Selection.WAKE_RECALL`
    #: real negative speech to mine hard negatives from (`TrainConfig.hard_negatives`; empty when off)
    mine_clips: list[np.ndarray] = field(default_factory=list)


def prepare(cfg: TrainConfig, dataset: Dataset, progress: bool = True) -> Prepared:
    fe = cfg.frontend
    cache = AudioCache(fe.sample_rate)
    labels = dataset.labels
    if SILENCE not in labels:
        raise UserError("the label set needs a _silence_ class for streaming training")
    index = {l: i for i, l in enumerate(labels)}
    heldout = [Path(d).resolve() for d in cfg.heldout_data]
    train_clips = [c for c in dataset.split("train") if not inside(c.path, heldout)]
    if not train_clips:
        raise UserError("the dataset has no training clips")
    it = tqdm(train_clips, desc="loading audio", unit="clip", disable=not progress, leave=False)
    loaded = [(cache.get(c.path), index[c.label]) for c in it]
    loaded = oversample_unknown_words(loaded, [c.path.parent.name for c in train_clips], index.get(UNKNOWN),
                                      cfg.unknown_word_min)
    train = oversample_scarce(loaded, labels, cfg.oversample)
    sentences = frozenset(i for i, c in enumerate(train_clips) if c.path.parent.name == SENTENCE_FOLDER)
    noise = [cache.get(p) for p in dataset.noise_files] or synthetic_noise(fe.sample_rate, 60.0, cfg.seed)
    noise += babble_beds(cfg, dataset, cache, len(noise), progress)
    eval_sets, standard_sets, wake = {}, {}, None
    for split in ("validation", "test"):
        if not dataset.split(split):
            continue
        pcm, truth, names = evaluation_clips(dataset, split, cache, cfg.silence_eval_share)
        eval_sets[split] = (clip_features(pcm, fe), truth)
        if split == "validation" and cfg.selection is Selection.WAKE_RECALL:
            wake = wake_material(cfg, labels, pcm, truth, names, eval_sets[split][0], heldout, progress)
        spcm, struth, snames = standard_clips(dataset, split, cache)
        known = dict(zip(names, eval_sets[split][0]))
        standard_sets[split] = (reuse_by_name(snames, spcm, known, lambda todo: clip_features(todo, fe)), struth)
    if cfg.selection is Selection.WAKE_RECALL and wake is None:
        raise UserError("--select wake-recall needs a validation split")
    mine_clips = mining_clips(cfg, dataset, cache, progress) if cfg.hard_negatives > 0 else []
    if cfg.hard_negatives > 0 and not mine_clips:
        raise UserError("--hard-negatives needs real negative speech with training clips (--negative-data)")
    return Prepared(dataset, labels, train, noise, eval_sets, standard_sets, sentences, wake, mine_clips)


def negative_training_clips(cfg: TrainConfig, dataset: Dataset) -> list[Clip]:
    """The training-split clips of the real negative folders (`cfg.negative_data`)."""
    folders = [Path(d).resolve() for d in cfg.negative_data]
    return [c for c in dataset.split("train") if inside(c.path, folders)]


def mining_clips(cfg: TrainConfig, dataset: Dataset, cache: AudioCache, progress: bool) -> list[np.ndarray]:
    """The hard-negative pool (`train.mining`): at most MINE_CLIPS training-split clips of the real negative
    folders, a seeded draw. Their validation split is left to the epoch choice and the export's threshold."""
    pool = negative_training_clips(cfg, dataset)
    chosen = [pool[i] for i in np.random.default_rng(MINE_SEED).permutation(len(pool))[:MINE_CLIPS]]
    return [cache.get(c.path) for c in tqdm(chosen, desc="mining pool", unit="clip", disable=not progress, leave=False)]


#: babble beds: seconds each, talkers at once, training clips drawn from the negative folders
BABBLE_SECONDS = 60.0
BABBLE_TALKERS = (3, 7)
BABBLE_SOURCE_CLIPS = 2000


def babble_beds(cfg: TrainConfig, dataset: Dataset, cache: AudioCache, n_noise: int, progress: bool) -> list[np.ndarray]:
    """Real-talker babble beds (`TrainConfig.babble_share`): as many as make that share of the noise files."""
    if cfg.babble_share <= 0:
        return []
    pool = negative_training_clips(cfg, dataset)
    if not pool:
        raise UserError("--babble needs real negative speech (--negative-data) with training clips")
    rng = np.random.default_rng(cfg.seed + 101)
    chosen = [pool[i] for i in rng.permutation(len(pool))[:BABBLE_SOURCE_CLIPS]]
    it = tqdm(chosen, desc="babble", unit="clip", disable=not progress, leave=False)
    clips = [cache.get(c.path) for c in it]
    count = max(1, round(cfg.babble_share * n_noise / (1.0 - cfg.babble_share)))
    return [speech_babble(clips, BABBLE_SECONDS, BABBLE_TALKERS, cfg.frontend.sample_rate, rng) for _ in range(count)]


def class_weights(view: StreamView, num_classes: int) -> torch.Tensor:
    y = view.labels[view.labels != IGNORE]
    counts = np.bincount(y, minlength=num_classes).astype(np.float64) + 1.0
    w = np.sqrt(counts.sum() / (num_classes * counts))
    return torch.tensor(np.clip(w, 0.1, 10.0), dtype=torch.float32)


def spec_augment(x: torch.Tensor, mean: torch.Tensor, rng: np.random.Generator, tmax: int, fmax: int) -> torch.Tensor:
    """Mask a random span of frames and of channels per row (set to the feature mean: 0 after norm)."""
    x = x.clone()
    B, T, F = x.shape
    for b in range(B):
        if tmax:
            w = int(rng.integers(0, tmax + 1))
            t0 = int(rng.integers(0, T - w + 1))
            x[b, t0 : t0 + w] = mean
        if fmax:
            w = int(rng.integers(0, fmax + 1))
            f0 = int(rng.integers(0, F - w + 1))
            x[b, :, f0 : f0 + w] = mean[f0 : f0 + w]
    return x


def _mel(f_hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(f_hz / 700.0)


def channel_centres_hz(fe: FrontendConfig) -> np.ndarray:
    """Centre frequency of each filterbank channel: evenly spaced on the mel scale between the band limits, with
    one spacing left free at either end (the TFLite Micro filterbank's layout)."""
    lo, hi = _mel(np.array(fe.lower_band_limit_hz)), _mel(np.array(fe.upper_band_limit_hz))
    mels = lo + (hi - lo) * np.arange(1, fe.num_channels + 1) / (fe.num_channels + 1)
    return 700.0 * np.expm1(mels / 1127.0)


def frequency_warp(fe: FrontendConfig, factor: float) -> np.ndarray:
    """[F, F] matrix W with `features @ W.T` the features of a speaker whose spectrum is stretched by `factor`
    (formants `factor` times higher): channel c takes the value the original had at frequency f_c / factor,
    linearly interpolated between neighbouring channels on the mel scale (clamped at the band edges)."""
    centres = channel_centres_hz(fe)
    pos = _mel(np.clip(centres / factor, centres[0], centres[-1]))
    grid = _mel(centres)
    j = np.clip(np.searchsorted(grid, pos, side="right") - 1, 0, len(grid) - 2)
    t = np.clip((pos - grid[j]) / (grid[j + 1] - grid[j]), 0.0, 1.0)
    w = np.zeros((len(grid), len(grid)))
    rows = np.arange(len(grid))
    w[rows, j] += 1.0 - t
    w[rows, j + 1] += t
    return w


def warp_rows(fe: FrontendConfig, rows: int, span: tuple[float, float], rng: np.random.Generator) -> torch.Tensor | None:
    """One warp matrix per stream row ([rows, F, F], float32), factors log-uniform in `span`; None when off."""
    lo, hi = span
    if lo == hi == 1.0:
        return None
    factors = np.exp(rng.uniform(np.log(lo), np.log(hi), rows))
    return torch.from_numpy(np.stack([frequency_warp(fe, float(a)) for a in factors]).astype(np.float32))


# ----------------------------------------------------------------------------- training
@dataclass
class EpochLog:
    epoch: int
    loss: float
    frame_accuracy: float
    val_accuracy: float
    selection_score: float  # what picks the epoch (`TrainConfig.selection`; = val_accuracy for clip accuracy)
    grad_norm_mean: float
    clipped_share: float
    seconds: float


def train_epoch(
    model: RecurrentKWS,
    view: StreamView,
    opt: torch.optim.Optimizer,
    weights: torch.Tensor,
    cfg: TrainConfig,
    rng: np.random.Generator,
    progress: bool,
    desc: str,
    ema: AveragedModel | None = None,
    soft: torch.Tensor | None = None,
) -> tuple[float, float, list[float]]:
    """One pass over the view's chunks. `soft`: the teacher's posteriors on this view (`teacher_posteriors`),
    [rows, frames, labels]; with it the loss mixes in their KL divergence by `cfg.distil_weight`."""
    model.train()
    T = cfg.stream.chunk_frames
    n_chunks = view.resets.shape[1]
    state = model.initial_state(view.features.shape[0])
    loss_fn = nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE)
    losses, correct, counted, norms = [], 0, 0, []
    probe = (torch.Generator().manual_seed(int(rng.integers(2**63)))  # the loop-gain directions (Jordan network)
             if model.config.cell is Cell.JORDAN and cfg.loop_penalty > 0 else None)
    # one factor per row for the whole epoch: a word that crosses a chunk boundary keeps one vocal tract
    warps = warp_rows(cfg.frontend, view.features.shape[0], cfg.warp, rng)
    bar = tqdm(range(n_chunks), desc=desc, unit="chunk", disable=not progress, leave=False)
    for j in bar:
        keep = torch.from_numpy(~view.resets[:, j]).float()[None, :, None]
        state = tuple(s.detach() * keep for s in state)  # truncated BPTT: carry, but do not backprop across
        x = torch.from_numpy(view.features[:, j * T : (j + 1) * T])
        y = torch.from_numpy(view.labels[:, j * T : (j + 1) * T])
        if (y == IGNORE).all():
            continue
        if warps is not None:
            x = torch.einsum("btf,bgf->btg", x, warps)
        x = spec_augment(x, model.feat_mean, rng, cfg.spec_time_mask, cfg.spec_freq_mask)
        logits, state, penalty = _forward_with_state_penalty(model, x, state, cfg, probe)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if soft is not None:
            target = soft[:, j * T : (j + 1) * T].reshape(-1, logits.shape[-1])
            kl = F.kl_div(F.log_softmax(logits.reshape(-1, logits.shape[-1]), -1), target, reduction="batchmean")
            loss = (1.0 - cfg.distil_weight) * loss + cfg.distil_weight * kl
        loss = loss + penalty
        opt.zero_grad()
        loss.backward()
        norms.append(float(nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)))
        opt.step()
        if ema is not None:
            ema.update_parameters(model)
        mask = y != IGNORE
        correct += int((logits.argmax(-1)[mask] == y[mask]).sum())
        counted += int(mask.sum())
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{correct / max(counted, 1):.3f}")
    return float(np.mean(losses)) if losses else 0.0, correct / max(counted, 1), norms


@torch.no_grad()
def teacher_posteriors(teacher: RecurrentKWS, view: StreamView, chunk_frames: int) -> torch.Tensor:
    """The teacher's posteriors on a training view, [rows, frames, labels]: chunk by chunk with its state carried
    and reset where the view resets it, as `train_epoch` runs the student; on the view's features before the
    per-epoch SpecAugment and warp (the teacher's view of the clean stream)."""
    teacher.eval()
    state = teacher.initial_state(view.features.shape[0])
    out = []
    for j in range(view.resets.shape[1]):
        keep = torch.from_numpy(~view.resets[:, j]).float()[None, :, None]
        state = tuple(s * keep for s in state)
        logits, state = teacher(torch.from_numpy(view.features[:, j * chunk_frames : (j + 1) * chunk_frames]), state)
        out.append(torch.softmax(logits, -1))
    return torch.cat(out, dim=1)


def load_teacher(run_dir: Path, labels: list[str], frontend: FrontendConfig) -> RecurrentKWS:
    """The teacher run's model, refused in one line when its labels or front end differ from the student's."""
    run = load_run(run_dir)
    if run.labels != labels:
        raise UserError(f"--teacher {run_dir}: its labels {run.labels} differ from this training's {labels}")
    if run.frontend != frontend:
        raise UserError(f"--teacher {run_dir}: its front end differs from this training's")
    return run.model


def _forward_with_state_penalty(
    model: RecurrentKWS, x: torch.Tensor, state: tuple[torch.Tensor, ...], cfg: TrainConfig,
    probe: torch.Generator | None = None
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
    """`model(x, state)`; for cells with an unbounded state, in pieces so the penalty sees it often; with `probe`
    (a Jordan network with `loop_penalty`, as `train_epoch` passes it), the penalty on its loop gain."""
    zero = torch.zeros(())
    if probe is not None:
        logits, state, gains = model.forward_with_loop_gain(x, state, probe)
        return logits, state, cfg.loop_penalty * torch.relu(gains - cfg.loop_gain_bound).pow(2).mean()
    if model.config.cell is not Cell.LSTM or cfg.state_penalty <= 0:
        logits, state = model(x, state)
        return logits, state, zero
    pieces, penalty = [], zero
    step = max(1, cfg.state_check_frames)
    for t0 in range(0, x.shape[1], step):
        logits, state = model(x[:, t0 : t0 + step], state)
        pieces.append(logits)
        c = state[1]
        penalty = penalty + torch.relu(c.abs() - cfg.state_bound).pow(2).mean()
    return torch.cat(pieces, dim=1), state, cfg.state_penalty * penalty / len(pieces)


class ViewCache:
    """The `views` augmented stream realisations, epoch e using view e % views. While an epoch trains on
    one view, the next one is built in a background thread (the stream building is numpy and the C front
    end, which release the GIL, so it runs on the core that one-thread training leaves free). Each view
    depends only on its own seed, so prefetching changes no result.

    `every` > 0 (`TrainConfig.fresh_view_every`): no view comes back; epoch e uses view e // every, a new one
    every `every` epochs, built while the previous one trains and dropped after its epochs (two in memory)."""

    def __init__(self, build: Callable[[int, bool], StreamView], count: int, progress: bool, every: int = 0,
                 epochs: int = 0) -> None:
        self._build, self._count, self._progress = build, count, progress
        self._every, self._epochs = every, epochs
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="view")
        self._futures: dict[int, Future[StreamView]] = {}

    def _future(self, k: int, show: bool) -> Future[StreamView]:
        if k not in self._futures:
            self._futures[k] = self._pool.submit(self._build, k, show)
        return self._futures[k]

    def number(self, epoch: int) -> int:
        """The view that `epoch` (counted from the phase's first) trains on."""
        return epoch // self._every if self._every else epoch % self._count

    def building(self, epoch: int) -> bool:
        """Whether a view is still to be built after `epoch`'s (then training leaves the other core to it)."""
        if self._every:
            return epoch // self._every < (self._epochs - 1) // self._every
        return epoch < self._count - 1

    def get(self, epoch: int) -> StreamView:
        k = self.number(epoch)
        current = self._future(k, self._progress)
        if self._every:
            if self.building(epoch):
                self._future(k + 1, False)  # prefetch, silently (one progress bar at a time)
            for old in [j for j in self._futures if j < k]:
                del self._futures[old]
        else:
            self._future((epoch + 1) % self._count, False)
        return current.result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def normalisation(view: StreamView) -> tuple[torch.Tensor, torch.Tensor]:
    f = view.features.reshape(-1, view.features.shape[-1])
    keep = view.labels.reshape(-1) != IGNORE
    f = f[keep] if keep.any() else f
    return torch.from_numpy(f.mean(0)), torch.from_numpy(f.std(0) + 0.1)


def optimiser(model: RecurrentKWS, cfg: TrainConfig, lr: float, epochs: int
              ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, AveragedModel | None]:
    """AdamW with a one-cycle schedule over `epochs` (peak `lr`), and the weight average (`cfg.ema_decay`),
    which starts from the weights training starts from (after the normalisation and any warm start)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs, pct_start=0.15, anneal_strategy="cos")
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay)) if cfg.ema_decay > 0 else None
    return opt, sched, ema


@dataclass
class Best:
    """The epoch kept so far (by `TrainConfig.selection`) and every epoch's log."""

    score: float = -1.0
    epoch: int = -1
    state: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Phase:
    """What every training phase shares: the model, the data, the class weights and the random draws."""

    model: RecurrentKWS
    prep: Prepared
    cfg: TrainConfig
    weights: torch.Tensor
    teacher: RecurrentKWS | None
    rng: np.random.Generator
    progress: bool

    def run(self, views: ViewCache, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
            ema: AveragedModel | None, epochs: range, best: Best) -> bool:
        """Train `epochs` (numbered across phases; the views count from the phase's first epoch), judging each
        (the weight average when there is one) and keeping the best in `best`. False when early stopping ended
        the phase."""
        cfg, prep, model = self.cfg, self.prep, self.model
        judged: RecurrentKWS = ema.module if ema is not None else model  # type: ignore[assignment]
        soft_of: dict[int, torch.Tensor] = {}  # view number -> the teacher's posteriors on it
        val_feats, val_truth = prep.eval_sets.get("validation", prep.eval_sets.get("test", ([], [])))
        for epoch in epochs:
            t0, local = time.time(), epoch - epochs.start
            current = views.get(local)
            # One torch thread while the next view is built on the other core (epochs before the last new view),
            # then `--threads`. A rule on the epoch, not on the builder's progress, so runs stay reproducible.
            torch.set_num_threads(1 if views.building(local) else cfg.threads)
            view_no = views.number(local)
            if self.teacher is not None and view_no not in soft_of:
                soft_of[view_no] = teacher_posteriors(self.teacher, current, cfg.stream.chunk_frames)
                if cfg.fresh_view_every:  # no view comes back
                    soft_of = {view_no: soft_of[view_no]}
            loss, facc, norms = train_epoch(model, current, opt, self.weights, cfg, self.rng, self.progress,
                                            f"epoch {epoch + 1}/{epochs.stop}", ema, soft_of.get(view_no))
            sched.step()
            val = score_clips(clip_posteriors(judged, val_feats), val_truth, prep.labels, cfg.postprocess) if val_feats else {"accuracy": facc}
            wake = wake_score(judged, prep.wake) if prep.wake is not None else None
            log = EpochLog(epoch + 1, loss, facc, val["accuracy"], val["accuracy"] if wake is None else wake["score"],
                           float(np.mean(norms)) if norms else 0.0,
                           float(np.mean([n > cfg.clip_norm for n in norms])) if norms else 0.0, time.time() - t0)
            best.history.append(asdict(log))
            if self.progress:
                chosen_by = "" if wake is None else f"  wake recall {log.selection_score:.3f}"
                print(f"epoch {log.epoch:3d}  loss {loss:.4f}  frame acc {facc:.3f}  val clip acc {log.val_accuracy:.3f}"
                      f"{chosen_by}  grad-norm {log.grad_norm_mean:.2f} (clipped {log.clipped_share:.0%})  {log.seconds:.1f}s",
                      flush=True)
            if log.selection_score > best.score:
                best.score, best.epoch = log.selection_score, log.epoch
                best.state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
            elif log.epoch - best.epoch >= cfg.patience:
                if self.progress:
                    print(f"early stop: no validation improvement for {cfg.patience} epochs", flush=True)
                return False
        return True


def mine_hard_negatives(model: RecurrentKWS, prep: Prepared, cfg: TrainConfig, progress: bool
                        ) -> tuple[list[np.ndarray], dict[str, Any]]:
    """`cfg.hard_negatives` moments of the mining pool where `model` fires most (`train.mining`), as clips, and
    what was found (for the run's metrics)."""
    fe = cfg.frontend
    files = mining_speech(prep.mine_clips, fe.sample_rate)
    feats = clip_features(list(tqdm(files, desc="mining", unit="file", disable=not progress, leave=False)), fe)
    keyword_ids = [i for i, l in enumerate(prep.labels) if l not in (SILENCE, UNKNOWN)]
    tracks = [keyword_track(p, keyword_ids, cfg.postprocess.window) for p in clip_posteriors(model, feats)]
    found = hardest(tracks, cfg.hard_negatives, cfg.postprocess.refractory, MINE_FLOOR)
    minutes = sum(len(f) for f in files) / fe.sample_rate / 60.0
    summary: dict[str, Any] = {"minutes": round(minutes, 1), "clips": len(found),
                               "score_max": round(found[0].score, 4) if found else None,
                               "score_min": round(found[-1].score, 4) if found else None}
    if progress:
        scores = f" (smoothed keyword score {found[0].score:.2f} .. {found[-1].score:.2f})" if found else ""
        print(f"hard negatives: {len(found)} moments of {minutes:.0f} min of real speech{scores}", flush=True)
    return [cut(files[p.file], p.frame, fe) for p in found], summary


#: offset of the second phase's view seeds from the first phase's (seed * 1000 + view number)
MINED_VIEW_SEED = 500


def mined_views(prep: Prepared, cfg: TrainConfig, pieces: list[np.ndarray], progress: bool) -> ViewCache:
    """The second phase's views: the training items plus `cfg.mine_repeats` copies of each mined clip as
    `_unknown_`, kept in every view (as the running-speech sentences), on view seeds of their own."""
    unknown = prep.labels.index(UNKNOWN)
    items = prep.train + [(p, unknown) for p in pieces for _ in range(cfg.mine_repeats)]
    exempt = prep.sentences | frozenset(range(len(prep.train), len(items)))
    index = {l: i for i, l in enumerate(prep.labels)}

    def build(k: int, show: bool) -> StreamView:
        seed = cfg.seed * 1000 + MINED_VIEW_SEED + k
        return build_view(view_clips(items, prep.labels, cfg.unknown_per_view, seed, exempt), prep.noise, index,
                          cfg.stream, cfg.frontend, cfg.batch, seed, show)

    return ViewCache(build, min(cfg.views, cfg.mine_epochs), progress)


def train(cfg: TrainConfig, out_dir: Path, progress: bool = True, dataset: Dataset | None = None) -> dict[str, Any]:
    set_determinism(cfg.seed, cfg.threads)
    started = time.time()
    dataset = dataset or load_dataset(cfg.recipe, recorded_data_dirs(cfg.data), cfg.keywords or None,
                                      recorded_data_dirs(cfg.negative_data))
    try:
        cfg.postprocess.check_labels(dataset.labels)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    prep = prepare(cfg, dataset, progress)
    labels = prep.labels
    mcfg = replace(cfg.model, num_classes=len(labels), input_dim=cfg.frontend.num_channels)
    cfg = replace(cfg, model=mcfg)
    model = build_model(mcfg)
    model.dropout = cfg.dropout
    index = {l: i for i, l in enumerate(labels)}
    views = ViewCache(
        lambda k, show: build_view(view_clips(prep.train, labels, cfg.unknown_per_view, cfg.seed * 1000 + k, prep.sentences),
                                   prep.noise, index, cfg.stream, cfg.frontend, cfg.batch, cfg.seed * 1000 + k, show),
        cfg.views, progress, cfg.fresh_view_every, cfg.epochs)
    view = views.get

    mean, std = normalisation(view(0))
    model.feat_mean.copy_(mean)
    model.feat_std.copy_(std)
    if cfg.init_from:
        initialise_from(model, Path(cfg.init_from), progress)
    teacher = load_teacher(Path(cfg.teacher), labels, cfg.frontend) if cfg.teacher else None
    weights = class_weights(view(0), len(labels))
    opt, sched, ema = optimiser(model, cfg, cfg.lr, cfg.epochs)
    out_dir.mkdir(parents=True, exist_ok=True)
    if progress and prep.wake is not None:
        print(f"epochs chosen by wake-word recall at {', '.join(f'{b:g}' for b in prep.wake.rule.budgets)} FA/h on "
              f"{prep.wake.source} ({len(prep.wake.positives)} validation keyword clips)", flush=True)
    best = Best()
    phase = Phase(model, prep, cfg, weights, teacher, np.random.default_rng(cfg.seed), progress)
    went_on = phase.run(views, opt, sched, ema, range(cfg.epochs), best)
    views.close()
    mining: dict[str, Any] | None = None
    if cfg.hard_negatives > 0 and went_on:
        assert best.state is not None
        model.load_state_dict(best.state)
        pieces, mining = mine_hard_negatives(model, prep, cfg, progress)
        views = mined_views(prep, cfg, pieces, progress)
        opt, sched, ema = optimiser(model, cfg, cfg.lr * cfg.mine_lr, cfg.mine_epochs)
        phase.run(views, opt, sched, ema, range(cfg.epochs, cfg.epochs + cfg.mine_epochs), best)
        views.close()
        mining["kept"] = best.epoch > cfg.epochs
    assert best.state is not None
    model.load_state_dict(best.state)
    metrics: dict[str, Any] = {"best_epoch": best.epoch, "train_seconds": round(time.time() - started, 1),
                               "selection": {"metric": Selection(cfg.selection).value, "score": best.score}}
    for split, (feats, truth) in prep.eval_sets.items():
        metrics[split] = score_clips(clip_posteriors(model, feats), truth, labels, cfg.postprocess)
        if split in prep.standard_sets:  # the standard figure, next to the device's (validation picks epochs by the latter)
            sfeats, struth = prep.standard_sets[split]
            metrics[split]["standard"] = standard_summary(clip_posteriors(model, sfeats), struth, labels, cfg.postprocess.window)
    if mining is not None:
        metrics["mining"] = mining
    metrics["size"] = model_size(mcfg)
    save_run(out_dir, model, cfg, labels, metrics, best.history)
    return metrics


def wake_score(model: RecurrentKWS, wake: WakeMaterial) -> dict[str, Any]:
    """`Selection.WAKE_RECALL`'s score of `model` (every clip and running-speech file from a reset state)."""
    return wake.rule.score(clip_posteriors(model, wake.positives), clip_posteriors(model, wake.negatives))


def initialise_from(model: RecurrentKWS, run_dir: Path, progress: bool = False) -> list[str]:
    """Copy every tensor of the run at `run_dir` whose name and shape match into `model`; returns their names.
    The source must have the same cell, front end width and layer sizes where it is to help; a run that shares
    no tensor at all is refused (a wrong folder, not a warm start)."""
    src_model = load_run(run_dir).model
    source, target = src_model.state_dict(), model.state_dict()
    copied = [k for k, v in source.items() if k in target and target[k].shape == v.shape]
    if src_model.config.cell is not model.config.cell or not any(k.startswith("rnn.") for k in copied):
        raise UserError(f"--init-from {run_dir}: its recurrent layers do not fit this model "
                        f"({src_model.config.cell.value} x {src_model.config.hidden} vs "
                        f"{model.config.cell.value} x {model.config.hidden})")
    with torch.no_grad():
        for k in copied:
            target[k].copy_(source[k])
    if progress:
        skipped = sorted(set(target) - set(copied))
        print(f"initialised from {run_dir}: {len(copied)} tensors copied" + (f", kept fresh: {', '.join(skipped)}" if skipped else ""), flush=True)
    return copied


# ----------------------------------------------------------------------------- run folder
def save_run(out_dir: Path, model: RecurrentKWS, cfg: TrainConfig, labels: list[str], metrics: dict, history: list) -> None:
    """Write the run folder's weights, config and metrics, each file atomically (`edge.atomic`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / CHECKPOINT, save({k: v.contiguous() for k, v in model.state_dict().items()}))
    meta = {
        "labels": labels,
        "train_config": cfg.to_dict(),
        "model": cfg.model.to_dict(),
        "frontend": cfg.frontend.to_dict(),
        "postprocess": cfg.postprocess.to_dict(),
        "metrics": metrics,
        "versions": {"torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()},
    }
    write_text_atomic(out_dir / CONFIG, json.dumps(meta, indent=2))
    write_text_atomic(out_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history))


@dataclass
class Run:
    model: RecurrentKWS
    labels: list[str]
    meta: dict[str, Any]
    frontend: FrontendConfig
    postprocess: PostprocessConfig


def load_run(run_dir: Path) -> Run:
    """Load a run folder. Weights come from safetensors (never unpickled)."""
    run_dir = Path(run_dir)
    cfg_path, ckpt = run_dir / CONFIG, run_dir / CHECKPOINT
    if not cfg_path.exists() or not ckpt.exists():
        raise UserError(f"{run_dir}: not a training run folder (needs {CONFIG} and {CHECKPOINT})")
    try:
        meta = json.loads(cfg_path.read_text())
        mcfg = ModelConfig.from_dict(meta["model"])
        fe = FrontendConfig.from_dict(meta["frontend"])
        post = PostprocessConfig.from_dict(meta["postprocess"])
        labels = list(meta["labels"])
        post.check_labels(labels)
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{cfg_path}: invalid run config ({exc})") from exc
    model = build_model(mcfg)
    try:
        state = load_file(str(ckpt))
        model.load_state_dict(state)
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise UserError(f"{ckpt}: cannot load checkpoint ({str(exc).splitlines()[0]})") from exc
    model.eval()
    return Run(model, labels, meta, fe, post)
