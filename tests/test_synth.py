"""train.synth: the resampler, espeak-ng synthesis and the synthetic Speech-Commands-style dataset."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from train import synth

pytest.importorskip("espeakng_loader")


# --------------------------------------------------------------------------- helpers
def sine(freq: float, rate: int, n: int, amp: float = 0.5, phase: float = 0.3) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(n) / rate + phase)


def interior(y: np.ndarray, edge: int = 200) -> np.ndarray:
    """Drop the ends, where the zero padding outside the signal legitimately changes the result."""
    return y[edge:-edge]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2), path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"), w.getframerate()


def f0_autocorr(x: np.ndarray, rate: int) -> float:
    """Fundamental frequency (40-500 Hz) of the loudest 100 ms of x by autocorrelation.

    Among autocorrelation peaks within 15 % of the best, the shortest lag wins, which avoids the usual
    sub-octave errors (a period of 2T correlates as well as T).
    """
    x = x.astype(np.float64)
    win = rate // 10
    energy = np.convolve(x * x, np.ones(win), mode="valid")
    seg = x[int(np.argmax(energy)) :][:win]
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, mode="full")[win - 1 :] / (win - np.arange(win))  # unbiased
    lo, hi = rate // 500, rate // 40
    a = ac[lo:hi]
    peaks = [k for k in range(1, len(a) - 1) if a[k] >= a[k - 1] and a[k] >= a[k + 1]]
    best = max(a[k] for k in peaks)
    return rate / (lo + min(k for k in peaks if a[k] >= 0.85 * best))


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


SMALL = synth.SynthConfig(validation_fraction=0.2, testing_fraction=0.2, noise_seconds=2.0)


def small_dataset(out: Path, seed: int = 3, **kw) -> synth.DatasetSummary:
    return synth.generate_dataset(
        out, ["yes", "no"], ["apple", "water"], 5, seed, n_per_negative=5, config=SMALL, progress=False, **kw
    )


# --------------------------------------------------------------------------- resampler
@pytest.mark.parametrize(
    ("src", "dst", "freq"),
    [(22050, 16000, 1000.0), (22050, 16000, 6500.0), (8000, 16000, 1000.0), (8000, 16000, 3300.0),
     (16000, 8000, 2500.0), (44100, 16000, 440.0)],
)  # fmt: skip
def test_resample_keeps_in_band_sine(src: int, dst: int, freq: float) -> None:
    x = sine(freq, src, src)  # one second
    y = synth.resample(x, src, dst)
    assert len(y) == dst
    expected = sine(freq, dst, len(y))
    # Kaiser beta 8.6 gives ~86 dB ripple/stop-band; 1e-3 of the 0.5 amplitude (-66 dB) leaves margin
    # for the taper while any timing, gain or phase mistake would give errors of order 0.1.
    assert np.max(np.abs(interior(y) - interior(expected))) < 1e-3
    # Amplitude preserved to 0.01 dB.
    assert abs(20 * np.log10(rms(interior(y)) / rms(interior(expected)))) < 0.01
    # And the frequency: the spectral peak sits in the right 1 Hz bin.
    spectrum = np.abs(np.fft.rfft(interior(y) * np.hanning(len(interior(y)))))
    peak_hz = np.argmax(spectrum) * dst / len(interior(y))
    assert abs(peak_hz - freq) <= dst / len(interior(y))


@pytest.mark.parametrize("freq", [8100.0, 8500.0, 9000.0, 10000.0, 11000.0])
def test_resample_removes_content_above_new_nyquist(freq: float) -> None:
    """22.05 -> 16 kHz: a tone above 8 kHz must not fold back into the band."""
    x = sine(freq, 22050, 22050)
    y = synth.resample(x, 22050, 16000)
    # >= 70 dB below the input (the design gives ~86 dB; a plain decimation would alias at 0 dB).
    assert rms(interior(y)) < rms(x) * 10 ** (-70 / 20)


def test_resample_upsampling_leaves_no_image() -> None:
    """8 -> 16 kHz: a 1 kHz tone must not leave an image at 8 - 1 = 7 kHz."""
    y = interior(synth.resample(sine(1000.0, 8000, 8000), 8000, 16000))
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    freqs = np.fft.rfftfreq(len(y), 1 / 16000)
    image = spectrum[(freqs > 6900) & (freqs < 7100)].max()
    assert image < spectrum.max() * 10 ** (-70 / 20)  # same 70 dB bound as for aliasing


def test_resample_lengths_dtypes_and_identity() -> None:
    x = np.arange(-50, 51, dtype=np.int16)
    assert len(synth.resample(x, 22050, 16000)) == int(np.ceil(len(x) * 16000 / 22050))
    assert len(synth.resample(np.zeros(7), 8000, 16000)) == 14
    assert len(synth.resample(np.zeros(0), 8000, 16000)) == 0
    assert synth.resample(x, 22050, 16000).dtype == np.float32
    assert synth.resample(x.astype(np.float64), 8000, 16000).dtype == np.float64
    same = synth.resample(x, 16000, 16000)
    np.testing.assert_array_equal(same, x.astype(np.float32))
    # DC is preserved exactly away from the ends (every filter phase sums to one).
    dc = synth.resample(np.full(4000, 1000.0), 8000, 22050)
    np.testing.assert_allclose(interior(dc), 1000.0, rtol=1e-9)


@pytest.mark.parametrize(
    ("x", "src", "dst"),
    [(np.zeros((2, 8)), 8000, 16000), (np.zeros(8), 0, 16000), (np.zeros(8), 8000.0, 16000)],
)
def test_resample_rejects_bad_arguments(x: np.ndarray, src, dst) -> None:
    with pytest.raises(ValueError):
        synth.resample(x, src, dst)


# --------------------------------------------------------------------------- espeak-ng synthesis
def test_shipped_data_has_the_voices_we_use() -> None:
    variants = set(synth.available_variants())
    assert set(synth.HUMAN_VARIANTS) - {""} <= variants
    for voice in synth.ENGLISH_VOICES:
        audio, rate = synth.synthesize_native("yes", voice)
        assert rate == 22050 and audio.dtype == np.int16 and np.abs(audio).max() > 1000


def test_synthesize_is_16k_speech_and_repeatable() -> None:
    a = synth.synthesize("seven", "en-us+f3", 175, 50, 50, seed=5)
    assert a.dtype == np.int16
    assert 0.25 < len(a) / synth.TARGET_RATE < 1.0  # one two-syllable word at 175 wpm
    assert rms(a) > 300  # clearly not silence
    # Same arguments -> same samples, even after other utterances (library state is reset).
    synth.synthesize("banana", "en-gb-scotland+klatt", 120, 10, 90)
    np.testing.assert_array_equal(a, synth.synthesize("seven", "en-us+f3", 175, 50, 50, seed=5))
    assert not np.array_equal(a, synth.synthesize("seven", "en-us+m3", 175, 50, 50, seed=5))


def test_synthesize_follows_pitch_and_rate() -> None:
    f0 = {
        (voice, pitch): f0_autocorr(synth.synthesize("aaah", voice, 175, pitch, 0), 16000)
        for voice in ("en-us+m3", "en-us+f3")
        for pitch in (10, 50, 90)
    }
    # espeak's pitch scale: 10 -> 90 moves a male voice from about 60 to 140 Hz (measured); require 1.5x.
    assert f0[("en-us+m3", 90)] > 1.5 * f0[("en-us+m3", 10)]
    assert f0[("en-us+m3", 10)] < f0[("en-us+m3", 50)] < f0[("en-us+m3", 90)]
    # The female variant speaks about an octave higher (178 vs 91 Hz measured); require 1.5x.
    assert f0[("en-us+f3", 50)] > 1.5 * f0[("en-us+m3", 50)]
    slow = synth.synthesize("window", "en-us", 90, 50, 50)
    fast = synth.synthesize("window", "en-us", 350, 50, 50)
    assert len(synth.trim_silence(slow.astype(float))) > 1.5 * len(synth.trim_silence(fast.astype(float)))


@pytest.mark.parametrize(
    ("text", "voice", "rate"),
    [("yes", "en+nosuchvariant", 175), ("yes", "xx-nosuchlang", 175), ("", "en", 175), ("yes", "en", 20),
     ("<speak>", "en", 175)],
)  # fmt: skip
def test_synthesize_rejects_bad_input(text: str, voice: str, rate: int) -> None:
    with pytest.raises(synth.SynthError):
        synth.synthesize(text, voice, rate)


def test_colored_noise_has_the_right_slope() -> None:
    """Octave-band power: white doubles per octave, pink is flat, brown halves (+3/0/-3 dB)."""
    rng = np.random.default_rng(0)
    n = 16000 * 8
    for exponent, slope_db in ((0.0, 3.01), (1.0, 0.0), (2.0, -3.01)):
        psd = np.abs(np.fft.rfft(synth.colored_noise(n, exponent, rng))) ** 2
        f = np.fft.rfftfreq(n, 1 / 16000)
        bands = [psd[(f >= lo) & (f < 2 * lo)].sum() for lo in (250, 500, 1000, 2000)]
        slopes = 10 * np.log10(np.array(bands[1:]) / np.array(bands[:-1]))
        # 8 s of noise: each band holds >= 2000 bins, so the estimate is good to well under 0.5 dB.
        np.testing.assert_allclose(slopes, slope_db, atol=0.5)


def test_babble_words_are_made_up() -> None:
    rng = np.random.default_rng(0)
    words = [w for _ in range(100) for w in synth.nonsense_sentence(rng, set()).split()]
    assert all(4 <= len(w) <= 6 for w in words)  # 2-3 syllables, so never a one-syllable keyword
    assert {len(w) for w in words} == {4, 6}
    # Forbid every two-syllable word: the avoid list must then leave only three-syllable ones.
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    avoid = {a + b for a in syllables for b in syllables}
    words = [w for _ in range(100) for w in synth.nonsense_sentence(rng, avoid).split()]
    assert len(words) == 500 and {len(w) for w in words} == {6}


# --------------------------------------------------------------------------- dataset
def test_dataset_layout_and_speaker_disjoint_splits(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    summary = small_dataset(out)
    assert summary.clips == 20
    assert summary.split_counts == {"train": 12, "validation": 4, "test": 4}  # 0.2 of 5 = 1 per word
    for word in ("yes", "no", "apple", "water"):
        files = sorted((out / word).glob("*.wav"))
        assert len(files) == 5
        for f in files:
            assert "_nohash_" in f.name
            pcm, rate = read_wav(f)
            assert rate == 16000 and len(pcm) == 16000  # exactly one second
            peak_db = 20 * np.log10(np.abs(pcm).max() / 32768)
            assert -11.0 < peak_db < -1.0  # -6 dBFS +- 4.5 dB gain (+ rounding and noise floor)
    noise = sorted(p.name for p in (out / synth.BACKGROUND_DIR).glob("*.wav"))
    assert noise == ["brown_noise.wav", "hum_babble.wav", "pink_noise.wav", "white_noise.wav"]
    for name in noise:
        pcm, rate = read_wav(out / synth.BACKGROUND_DIR / name)
        assert rate == 16000 and len(pcm) == 32000
        assert abs(20 * np.log10(rms(pcm) / 32767) + 20) < 0.5  # -20 dBFS RMS, minus clipping/rounding

    lists = {
        split: (out / name).read_text().split()
        for split, name in (("validation", "validation_list.txt"), ("test", "testing_list.txt"))
    }
    all_clips = {
        str(p.relative_to(out)) for p in out.glob("*/*.wav") if p.parent.name != synth.BACKGROUND_DIR
    }
    for rows in lists.values():
        assert rows and set(rows) <= all_clips
    lists["train"] = sorted(all_clips - set(lists["validation"]) - set(lists["test"]))
    speakers = {s: {Path(r).name.split("_nohash_")[0] for r in rows} for s, rows in lists.items()}
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    # speakers.tsv agrees with the lists.
    header, *rows = [line.split("\t") for line in (out / "speakers.tsv").read_text().splitlines()]
    assert header == ["speaker", "engine", "voice", "variant", "pitch", "split"]
    split_of = {row[0]: row[5] for row in rows}
    for split, spk in speakers.items():
        assert {split_of[s] for s in spk} == {split}


def test_speaker_splits_cover_the_pool_disjointly() -> None:
    config = synth.SynthConfig()
    pool = synth.speaker_pool(config)
    assert len({s.speaker_id for s in pool}) == len(pool)  # ids are unique
    split_of = synth.assign_speaker_splits(pool, config, seed=0)
    counts = {s: sum(v == s for v in split_of.values()) for s in synth.SPLITS}
    assert counts["validation"] == counts["test"] == round(0.1 * len(pool))
    plans = synth.plan_word(
        "stop", 200, {s: [p for p in pool if split_of[p] == s] for s in synth.SPLITS}, config, 0
    )
    assert all(split_of[p.speaker] == p.split for p in plans)
    assert sum(p.split == "validation" for p in plans) == 20
    few = synth.plan_word(
        "go", 3, {s: [p for p in pool if split_of[p] == s] for s in synth.SPLITS}, config, 0
    )
    assert sorted(p.split for p in few) == ["test", "train", "validation"]  # each split gets one


def test_dataset_is_deterministic(tmp_path: Path) -> None:
    small_dataset(tmp_path / "a", seed=11)
    small_dataset(tmp_path / "b", seed=11, workers=2)  # worker processes give the same bytes
    small_dataset(tmp_path / "c", seed=12)
    a, b, c = (tree_bytes(tmp_path / n) for n in "abc")
    assert a == b
    wav_a = {k: v for k, v in a.items() if k.endswith(".wav")}
    wav_c = {k: v for k, v in c.items() if k.endswith(".wav")}
    assert wav_a != wav_c


def test_refuses_non_empty_folder_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(synth.SynthError, match="not empty"):
        small_dataset(out)
    with pytest.raises(synth.SynthError, match="not made by train.synth"):
        small_dataset(out, force=True)  # a foreign folder is never replaced
    assert (out / "mine.txt").read_text() == "keep me"

    made = tmp_path / "made"
    small_dataset(made, seed=1)
    before = tree_bytes(made)
    with pytest.raises(synth.SynthError, match="--force"):
        small_dataset(made, seed=2)
    assert tree_bytes(made) == before
    small_dataset(made, seed=2, force=True)
    assert tree_bytes(made) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made", "out"]  # no temp folders left


@pytest.mark.parametrize(
    ("keywords", "negatives"),
    [(["yes", "yes"], None), (["yes"], ["yes"]), (["Hello!"], None), ([], None), (["yes"], ["bad/word"])],
)
def test_generate_rejects_bad_words(tmp_path: Path, keywords, negatives) -> None:
    with pytest.raises(synth.SynthError):
        synth.generate_dataset(tmp_path / "x", keywords, negatives, 1, 0, progress=False)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- CLI
def test_cli_writes_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["--words", "go,stop", "--negatives", "apple", "--out", str(out), "--per-word", "2"]
    argv += ["--per-negative", "1", "--seed", "4", "--noise-seconds", "1", "--workers", "1", "--quiet"]
    assert synth.main(argv) == 0
    assert "wrote 5 clips" in capsys.readouterr().out
    assert len(list((out / "go").glob("*.wav"))) == 2
    assert (out / synth.INFO_FILE).is_file()


@pytest.mark.parametrize(
    "argv",
    [
        ["--out", "x"],  # --words missing
        ["--words", "yes", "--out", "{out}"],  # non-empty folder
        ["--words", "yes", "--out", "{tmp}/new", "--per-word", "0"],
        ["--words", "yes,ye$", "--out", "{tmp}/new"],
        ["--words", "yes", "--out", "{tmp}/new", "--per-word", "many"],
    ],
)
def test_cli_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "file").write_text("x")
    argv = [a.format(out=existing, tmp=tmp_path) for a in argv]
    assert synth.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("synth: error:"), err
    assert not (tmp_path / "new").exists()
