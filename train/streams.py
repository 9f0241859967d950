"""Long training streams: clips placed over background noise, features computed by the real streaming
front end over the whole stream (so noise reduction and PCAN see what they see on a device), and a target
per frame.

Frame targets (many-to-many): a keyword is labelled on the frames from just before the end of the word
until `post_frames` after it, `_unknown_` speech likewise; frames inside a word before that are ignored
(the model cannot know yet what the word will be); every other frame is `_silence_`.

A stream is cut into *episodes*; each episode starts with a fresh front end and a zero recurrent state
and is a whole number of TBPTT chunks long, so training sees both a cold start (as when a clip is scored
alone) and a state carried over many seconds (as on a device).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from edge.audio import Resampler
from edge.datasets import SILENCE, UNKNOWN
from edge.frontend import FrontendConfig, StreamingFrontend, features_to_float

IGNORE = -100


class Objective(str, enum.Enum):
    #: many-to-many: a target for every frame of a long stream (the default; see README)
    FRAME = "frame"
    #: many-to-one: one label per clip, read from the last `clip_frames` frames of each clip, each clip
    #: starting from a reset state
    CLIP = "clip"


@dataclass(frozen=True)
class StreamConfig:
    """How training streams are assembled and augmented."""

    objective: Objective = Objective.FRAME
    clip_frames: int = 10  # many-to-one: frames at the end of each clip that carry the clip's label

    chunk_frames: int = 100  # TBPTT chunk length (1 s)
    max_clips_per_episode: int = 8
    gap_s: tuple[float, float] = (0.15, 0.8)  # background between clips
    #: label starts this many frames before the end of the word. Measured (GRU-64, 24 epochs, both Speech
    #: Commands folders; standard figure val / test): 4 -> 79.6 / 70.7 %, 12 -> 81.9 / 72.0 %, 20 -> 84.1 / 71.7 %
    #: (device clip decision val 75.1 -> 77.9 -> 81.2 %): the model commits while the word's end is still
    #: being heard, so short words and clips that end right after the word are decided in time.
    pre_frames: int = 20
    post_frames: int = 25  # ... and lasts this long after it
    snr_db: tuple[float, float] = (0.0, 30.0)
    noise_prob: float = 0.85  # share of episodes with background noise
    speech_dbfs: tuple[float, float] = (-35.0, -12.0)
    shift_s: float = 0.1  # random trim of the clip's leading/trailing silence
    speed: tuple[float, float] = (0.9, 1.1)  # speed perturbation range (tempo and pitch), 5 % steps
    silence_share: float = 0.1  # extra pure-background segments, as a share of clips
    #: share of clips given a simulated room (`room_response`) and a random microphone colouring
    #: (`channel_colouring`); 0 = off (Speech Commands is already recorded in rooms; synthetic speech is not)
    reverb_prob: float = 0.0
    #: `_unknown_` speech labelled from its onset (not only around its end, as keywords are): a keyword
    #: posterior anywhere inside another word is a false alarm, so the loss sees it there too
    unknown_whole_word: bool = False
    #: `_unknown_` speech longer than this (seconds from the first to the last active hop, as placed in the
    #: episode) is running speech, a sentence rather than a word: labelled `_unknown_` over its whole span, as
    #: with `unknown_whole_word`, whatever that says. Longer than any 1-s Speech Commands clip, even slowed to 0.9x.
    long_unknown_s: float = 1.25
    #: share of episodes spoken like running speech: gaps of `tight_gap_s` between words instead of `gap_s`
    tight_prob: float = 0.0
    tight_gap_s: tuple[float, float] = (0.02, 0.15)
    rt60_s: tuple[float, float] = (0.15, 0.8)
    colour_prob: float = 0.0
    #: share of episodes heard through a band-limited channel (`band_limit`): the whole episode, speech and
    #: background, low-passed at a cut-off drawn log-uniformly from `bandlimit_hz` (8 kHz-sampled phone, Bluetooth
    #: or VoIP audio; a quarter of the real "jarvis" recordings have 99.9 % of their energy below 3.9 kHz). 0 = off
    bandlimit_prob: float = 0.0
    bandlimit_hz: tuple[float, float] = (2500.0, 7000.0)
    #: share of keyword clips said with a weak ending (`weaken_ending`): the last `weak_end_span` share of the
    #: spoken part fades down by `weak_end_db` dB, held to the clip's end; its labels keep the word's true end. The
    #: real "jarvis" recordings a model misses have a soft final /s/ (median -23.6 dB below the loudest 50 ms, against
    #: -15.2 dB in those detected; every synthetic voice -18 to -14 dB). 0 = off (README, "A weak ending")
    weak_end_prob: float = 0.0
    weak_end_db: tuple[float, float] = (6.0, 24.0)
    weak_end_span: tuple[float, float] = (0.25, 0.5)


def speech_bounds(pcm: np.ndarray, hop: int, rel_db: float = 25.0) -> tuple[int, int]:
    """(first, last+1) sample of the active part of a clip: hops within `rel_db` of the loudest hop."""
    n = len(pcm) // hop
    if n == 0:
        return 0, len(pcm)
    x = pcm[: n * hop].astype(np.float64).reshape(n, hop)
    db = 10 * np.log10(np.mean(x**2, axis=1) + 1.0)
    active = np.flatnonzero(db > db.max() - rel_db)
    return int(active[0] * hop), int((active[-1] + 1) * hop)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)


def _noise_bed(noise: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    pos = 0
    while pos < n:
        src = noise[rng.integers(len(noise))].astype(np.float64)
        length = min(n - pos, len(src), int(rng.integers(8000, 48000)))
        start = int(rng.integers(0, len(src) - length + 1))
        seg = src[start : start + length]
        out[pos : pos + length] = seg / _rms(seg)
        pos += length
    return out


def speech_babble(clips: list[np.ndarray], seconds: float, talkers: tuple[int, int], rate: int,
                  rng: np.random.Generator) -> np.ndarray:
    """A background of several people talking at once (int16, `seconds` long): `talkers` (a range) overlapping
    tracks, each real clips trimmed to their speech and run together with 0-0.3 s gaps at +-6 dB, summed. Heard
    behind the keyword, it keeps real voices from being a cue for "not the keyword" when every real recording
    in training is a negative; heard alone, it is talk the model must not fire on."""
    n = int(seconds * rate)
    hop = rate // 100
    out = np.zeros(n)
    for _ in range(int(rng.integers(talkers[0], talkers[1] + 1))):
        track, pos = np.zeros(n), int(rng.integers(0, rate))
        while pos < n:
            pcm = clips[int(rng.integers(len(clips)))]
            a, b = speech_bounds(pcm, hop)
            seg = pcm[a:b].astype(np.float64)
            seg = seg[: n - pos] / _rms(seg) * 10 ** (rng.uniform(-6.0, 6.0) / 20)
            track[pos : pos + len(seg)] = seg
            pos += len(seg) + int(rng.uniform(0.0, 0.3) * rate)
        out += track
    out *= 0.05 * 32768 / _rms(out)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def speed_perturb(pcm: np.ndarray, speed: tuple[float, float], rate: int, rng: np.random.Generator) -> np.ndarray:
    """Play the clip `f` times faster (f drawn from `speed` in 5 % steps): the clip is treated as if recorded
    at rate*f and resampled to `rate` with the same Kaiser polyphase resampler the runtime uses."""
    lo, hi = round(speed[0] * 20), round(speed[1] * 20)
    step = int(rng.integers(lo, hi + 1)) if hi > lo else lo
    if step == 20:
        return pcm
    r = Resampler(rate * step // 20, rate, zero_crossings=8)
    out = np.concatenate([r.process(pcm.astype(np.float64)), r.flush()])
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def room_response(rate: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A simulated room impulse response: the direct sound, a few early reflections (1-20 ms) and a diffuse
    tail of exponentially decaying noise that falls 60 dB in `rt60_s`, at a direct-to-reverberant ratio of
    0-12 dB. A statistical model (as in Habets' generator's late part), cheap enough to draw per clip."""
    n = int(rt60_s * rate)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    tail[: int(0.002 * rate)] = 0.0
    for _ in range(int(rng.integers(2, 7))):
        k = int(rng.uniform(0.001, 0.02) * rate)
        tail[k] += rng.uniform(-0.7, 0.7) * np.sqrt(np.sum(tail**2) / max(1, n) * rate * 0.01)
    drr_db = rng.uniform(0.0, 12.0)
    tail *= 10 ** (-drr_db / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail


def channel_colouring(n_bins: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Gain per rFFT bin of a random microphone/loudspeaker response: a smooth curve through +-6 dB at eight
    log-spaced frequencies, with a random high-pass corner (50-300 Hz) and roll-off (3.5-8 kHz)."""
    f = np.linspace(0, rate / 2, n_bins)
    nodes = np.geomspace(100, rate / 2, 8)
    db = np.interp(np.log(np.maximum(f, 1.0)), np.log(nodes), rng.uniform(-6, 6, len(nodes)))
    hp, lp = rng.uniform(50, 300), rng.uniform(3500, min(8000, rate / 2))
    gain = 10 ** (db / 20) / np.sqrt(1 + (hp / np.maximum(f, 1.0)) ** 4) / np.sqrt(1 + (f / lp) ** 8)
    return gain


def acoustics(pcm: np.ndarray, cfg: StreamConfig, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Room and microphone for one clip (each with its probability); float64 out, the tail of the room kept."""
    # no draw when off, so recipes without acoustics see the same random streams as before
    room = cfg.reverb_prob > 0 and rng.random() < cfg.reverb_prob
    colour = cfg.colour_prob > 0 and rng.random() < cfg.colour_prob
    if not (room or colour):
        return pcm
    x = pcm.astype(np.float64)
    h = room_response(rate, float(rng.uniform(*cfg.rt60_s)), rng) if room else np.ones(1)
    n = len(x) + len(h) - 1
    size = 1 << (n - 1).bit_length()
    spec = np.fft.rfft(x, size) * np.fft.rfft(h, size)
    if colour:
        spec *= channel_colouring(len(spec), rate, rng)
    y = np.fft.irfft(spec, size)[: len(x) + (int(0.3 * rate) if room else 0)]
    return y * (_rms(x) / _rms(y))


def weaken_ending(x: np.ndarray, onset: int, end: int, span: float, depth_db: float) -> np.ndarray:
    """`x` with its spoken part [onset, end) fading over its last `span` share, linearly in dB, to -`depth_db`
    at `end`, and held there to the clip's end (a speaker trailing off, a soft final consonant)."""
    start = end - int(round(span * (end - onset)))
    db = np.zeros(len(x))
    db[start:end] = -depth_db * (np.arange(start, end) - start) / max(1, end - start)
    db[end:] = -depth_db
    return x * 10 ** (db / 20)


def band_limit(x: np.ndarray, cutoff_hz: float, rate: int) -> np.ndarray:
    """`x` low-passed at `cutoff_hz` (zero phase, in the FFT domain): flat to 0.9 x cutoff, a raised-cosine
    roll-off to nothing at the cut-off, as the steep anti-aliasing filter of a channel sampled at 2 x cutoff."""
    size = 1 << (len(x) - 1).bit_length()
    spec = np.fft.rfft(x.astype(np.float64), size)
    f = np.fft.rfftfreq(size, 1.0 / rate)
    edge = 0.9 * cutoff_hz
    t = np.clip((f - edge) / (cutoff_hz - edge), 0.0, 1.0)
    return np.fft.irfft(spec * 0.5 * (1.0 + np.cos(np.pi * t)), size)[: len(x)]


@dataclass
class Episode:
    pcm: np.ndarray  # int16
    labels: np.ndarray  # int64 per feature frame, IGNORE where unlabelled


def build_episode(
    items: list[tuple[np.ndarray, int]],
    noise: list[np.ndarray],
    label_index: dict[str, int],
    cfg: StreamConfig,
    fe: FrontendConfig,
    rng: np.random.Generator,
) -> Episode:
    """`items`: (clip pcm, label id; -1 for a pure background segment)."""
    rate, hop, win = fe.sample_rate, fe.hop_samples, fe.window_samples
    silence_id = label_index[SILENCE]
    unknown_id = label_index.get(UNKNOWN, -1)
    pieces: list[np.ndarray] = []
    marks: list[tuple[int, int, int, int]] = []  # (onset, end, label, piece start)
    pos = 0
    gaps = cfg.tight_gap_s if cfg.tight_prob > 0 and rng.random() < cfg.tight_prob else cfg.gap_s
    for pcm, label in items:
        gap = int(rng.uniform(*gaps) * rate)
        pieces.append(np.zeros(gap))
        pos += gap
        if label < 0:
            length = rate
            pieces.append(np.zeros(length))
            pos += length
            continue
        pcm = speed_perturb(pcm, cfg.speed, rate, rng)
        pcm = acoustics(pcm, cfg, rate, rng)
        a, b = speech_bounds(pcm, hop)
        lead = int(rng.uniform(0, cfg.shift_s) * rate)
        clip = pcm[max(0, a - lead - int(0.05 * rate)) : b + int(rng.uniform(0.02, cfg.shift_s) * rate)]
        a2, b2 = speech_bounds(clip, hop)
        level = 10 ** (rng.uniform(*cfg.speech_dbfs) / 20) * 32768
        piece = clip.astype(np.float64) / _rms(clip[a2:b2]) * level
        # keywords only; no draw when off, so recipes without it see the same random streams as before
        if cfg.weak_end_prob > 0 and label not in (silence_id, unknown_id) and rng.random() < cfg.weak_end_prob:
            piece = weaken_ending(piece, a2, b2, rng.uniform(*cfg.weak_end_span), rng.uniform(*cfg.weak_end_db))
        pieces.append(piece)
        marks.append((pos + a2, pos + b2, label, pos))
        pos += len(clip)
    tail = int(cfg.gap_s[1] * rate)
    pieces.append(np.zeros(tail))
    speech = np.concatenate(pieces)
    n_frames = 1 + (len(speech) - win) // hop
    n_frames = -(-n_frames // cfg.chunk_frames) * cfg.chunk_frames
    total = (n_frames - 1) * hop + win
    speech = np.pad(speech[:total], (0, max(0, total - len(speech))))
    if noise and rng.random() < cfg.noise_prob:
        speech_level = 10 ** (np.mean(cfg.speech_dbfs) / 20) * 32768
        noise_level = speech_level / 10 ** (rng.uniform(*cfg.snr_db) / 20)
        speech = speech + _noise_bed(noise, total, rng) * noise_level
    # no draw when off, so recipes without it see the same random streams as before
    if cfg.bandlimit_prob > 0 and rng.random() < cfg.bandlimit_prob:
        lo, hi = np.log(cfg.bandlimit_hz[0]), np.log(cfg.bandlimit_hz[1])
        speech = band_limit(speech, float(np.exp(rng.uniform(lo, hi))), rate)
    pcm = np.clip(np.rint(speech), -32768, 32767).astype(np.int16)

    if Objective(cfg.objective) is Objective.CLIP:
        labels = np.full(n_frames, IGNORE, dtype=np.int64)
        k_last = max(1, (pos - win) // hop + 1)  # frames that end inside the clip (before the tail gap)
        label = marks[-1][2] if marks else silence_id
        labels[max(0, k_last - cfg.clip_frames) : k_last] = label
        return Episode(pcm, labels[:n_frames])
    labels = np.full(n_frames, silence_id, dtype=np.int64)
    for onset, end, label, _ in marks:
        # frame k covers samples [k*hop, k*hop + win): the first frame that has seen the word's end
        k_end = max(0, -(-(end - win) // hop))
        k_on = max(0, onset // hop)
        whole = label == unknown_id and (cfg.unknown_whole_word or end - onset > cfg.long_unknown_s * rate)
        labels[k_on : max(k_on, k_end - cfg.pre_frames)] = label if whole else IGNORE
        labels[max(0, k_end - cfg.pre_frames) : k_end + cfg.post_frames] = label
    return Episode(pcm, labels[:n_frames])


def episode_features(ep: Episode, fe: FrontendConfig) -> np.ndarray:
    feats = StreamingFrontend(fe).process(ep.pcm)
    if len(feats) != len(ep.labels):
        raise AssertionError(f"front end produced {len(feats)} frames for {len(ep.labels)} labels")
    return features_to_float(feats)


@dataclass
class StreamView:
    """One augmented pass over the training clips, as B parallel rows of chunks."""

    features: np.ndarray  # float32 [B, n_chunks*T, F]
    labels: np.ndarray  # int64 [B, n_chunks*T]
    resets: np.ndarray  # bool [B, n_chunks]: chunk starts a new episode


def build_view(
    clips: list[tuple[np.ndarray, int]],
    noise: list[np.ndarray],
    label_index: dict[str, int],
    cfg: StreamConfig,
    fe: FrontendConfig,
    batch: int,
    seed: int,
    progress: bool = True,
) -> StreamView:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(clips))
    items: list[tuple[np.ndarray, int]] = [clips[i] for i in order]
    n_sil = int(len(items) * cfg.silence_share)
    for _ in range(n_sil):
        items.insert(int(rng.integers(0, len(items) + 1)), (np.zeros(0, np.int16), -1))
    episodes = []
    i = 0
    clip_objective = Objective(cfg.objective) is Objective.CLIP
    while i < len(items):
        k = 1 if clip_objective or rng.random() < 0.3 else int(rng.integers(2, cfg.max_clips_per_episode + 1))
        episodes.append(items[i : i + k])
        i += k
    rows: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(batch)]
    lengths = np.zeros(batch, dtype=np.int64)
    it = tqdm(episodes, desc=f"streams (view {seed})", unit="ep", disable=not progress, leave=False)
    for ep_items in it:
        ep = build_episode(ep_items, noise, label_index, cfg, fe, rng)
        feats = episode_features(ep, fe)
        r = int(np.argmin(lengths))
        rows[r].append((feats, ep.labels))
        lengths[r] += len(ep.labels)
    T = cfg.chunk_frames
    n_chunks = int(lengths.max() // T)
    F = fe.num_channels
    features = np.zeros((batch, n_chunks * T, F), dtype=np.float32)
    labels = np.full((batch, n_chunks * T), IGNORE, dtype=np.int64)
    resets = np.zeros((batch, n_chunks), dtype=bool)
    for b, row in enumerate(rows):
        pos = 0
        for feats, lab in row:
            resets[b, pos // T] = True
            features[b, pos : pos + len(lab)] = feats
            labels[b, pos : pos + len(lab)] = lab
            pos += len(lab)
        if pos < n_chunks * T:
            resets[b, pos // T] = True  # padding: fresh state, no loss (IGNORE)
    return StreamView(features, labels, resets)


def unknown_label(labels: list[str]) -> int | None:
    return labels.index(UNKNOWN) if UNKNOWN in labels else None
