"""Dataset layouts and splits on the real shared data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.datasets import (SC_COMMANDS, SILENCE, UNKNOWN, AudioCache, Recipe, auto_recipe, evaluation_clips,
                           load_dataset, split_by_speaker_hash)
from edge.errors import UserError
from conftest import need

REPO = Path(__file__).resolve().parents[1]


def test_speech_commands_12_class(sc_dir: Path) -> None:
    ds = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    assert ds.labels == [SILENCE, UNKNOWN, *SC_COMMANDS]
    counts = ds.counts()
    assert all(counts[s][w] > 0 for s in ("train", "validation", "test") for w in SC_COMMANDS)
    assert counts["train"][UNKNOWN] > 0 and len(ds.noise_files) == 6
    # the split lists are speaker-disjoint
    speakers = {s: {c.speaker for c in ds.split(s)} for s in ("train", "validation", "test")}
    assert not (speakers["train"] & speakers["test"]) and not (speakers["train"] & speakers["validation"])


def test_speech_commands_35(sc_dir: Path) -> None:
    ds = load_dataset(Recipe.SPEECH_COMMANDS_35, sc_dir)
    assert len(ds.labels) == 36 and UNKNOWN not in ds.labels


def test_fsdd_speaker_disjoint(fsdd_dir: Path) -> None:
    ds = load_dataset(Recipe.FSDD, fsdd_dir)
    assert ds.sample_rate == 8000 and ds.labels[0] == SILENCE and len(ds.labels) == 11
    speakers = {s: {c.speaker for c in ds.split(s)} for s in ("train", "validation", "test")}
    assert all(speakers.values())
    assert not (speakers["train"] & speakers["test"]) and not (speakers["validation"] & speakers["test"])


def test_canonical_test_set_layout(sc_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "testset"
    for label, src in ((UNKNOWN, "bed"), (SILENCE, None), *((w, w) for w in SC_COMMANDS)):
        (root / label).mkdir(parents=True)
        if src:
            for wav in sorted((sc_dir / src).glob("*.wav"))[:2]:
                (root / label / wav.name).symlink_to(wav)
    (root / SILENCE / "s.wav").symlink_to(sorted((sc_dir / "yes").glob("*.wav"))[0])
    assert auto_recipe(root) is Recipe.SC_TEST_SET
    ds = load_dataset(Recipe.SC_TEST_SET, root)
    assert all(c.split == "test" for c in ds.clips) and len(ds.clips) == 23
    pcm, truth, _ = evaluation_clips(ds, "test", AudioCache(16000))
    assert len(pcm) == 23  # has its own _silence_ clips: no generated ones are added


def test_evaluation_clips_add_silence(sc_dir: Path) -> None:
    ds = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    ds.clips = [c for c in ds.clips if c.split == "test"][:50]
    pcm, truth, names = evaluation_clips(ds, "test", AudioCache(16000))
    assert len(pcm) == 55 and truth.count(0) == 5 and all(len(p) == 16000 for p in pcm[50:])


def test_standard_clips_counts_and_determinism(sc_dir: Path) -> None:
    """Command words as they are; `_unknown_` and `_silence_` sampled to the mean command class size, the
    same clips whatever the input order; silence cuts are the evaluation set's (same names, same audio)."""
    from edge.datasets import standard_clips

    ds = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    test = ds.split("test")
    # two command words and every unknown clip: 48 "yes", 41 "no", 50 unknown -> mean size round(44.5) = 44,
    # so 44 of the 50 unknown clips are drawn (the full split has fewer unknown clips than the mean)
    ds.clips = [c for c in test if c.label in ("yes", "no", UNKNOWN)]
    n = {w: sum(c.label == w for c in ds.clips) for w in ("yes", "no", UNKNOWN)}
    size = round((n["yes"] + n["no"]) / 2)
    assert n[UNKNOWN] > size  # the sample is a real draw
    cache = AudioCache(16000)
    pcm, truth, names = standard_clips(ds, "test", cache)
    got = {label: truth.count(i) for i, label in enumerate(ds.labels) if truth.count(i)}
    assert got == {"yes": n["yes"], "no": n["no"], UNKNOWN: size, SILENCE: size}
    assert len(set(names)) == len(names) == len(pcm) and all(len(p) == 16000 for p in pcm)
    again = standard_clips(ds, "test", cache)
    assert again[2] == names and all(np.array_equal(a, b) for a, b in zip(again[0], pcm))
    ds.clips = ds.clips[::-1]  # the draw depends on the clips, not on their order
    assert set(standard_clips(ds, "test", cache)[2]) == set(names)
    epcm, _, enames = evaluation_clips(ds, "test", cache)
    cuts = [i for i, nm in enumerate(names) if nm.startswith(SILENCE)]
    eval_cut = {nm: p for nm, p in zip(enames, epcm) if nm.startswith(SILENCE)}
    shared = [i for i in cuts if names[i] in eval_cut]  # the evaluation set has 10 % cuts: 13 here
    assert shared and all(np.array_equal(pcm[i], eval_cut[names[i]]) for i in shared)


def test_speaker_hash_split_is_stable() -> None:
    got = [split_by_speaker_hash(f"spk{i}") for i in range(2000)]
    assert got == [split_by_speaker_hash(f"spk{i}") for i in range(2000)]
    share = {s: got.count(s) / len(got) for s in ("train", "validation", "test")}
    assert 0.75 < share["train"] < 0.85 and 0.07 < share["test"] < 0.13


def test_data_info_cli(sc_dir: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "train", "data-info", "--recipe", "speech_commands", "--data", str(sc_dir)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "yes" in r.stdout and "validation" in r.stdout and "total" in r.stdout


@pytest.mark.parametrize("recipe", ["speech_commands", "fsdd"])
def test_wrong_layout_is_one_line(tmp_path: Path, recipe: str) -> None:
    (tmp_path / "x").mkdir()
    r = subprocess.run([sys.executable, "-m", "train", "data-info", "--recipe", recipe, "--data", str(tmp_path)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def _flac_copy(src: Path, dst: Path) -> None:
    import soundfile as sf

    data, rate = sf.read(src, dtype="int16")
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dst, data, rate, subtype="PCM_16", format="FLAC")


def _flac_folder(sc_dir: Path, root: Path, per_word: int = 3) -> list[str]:
    """A small Speech Commands layout in FLAC (copies of real clips under new speaker ids), with its own
    validation list (the first clip of each word) and an empty testing list."""
    val = []
    for word in (*SC_COMMANDS, "bed"):
        for i, wav in enumerate(sorted((sc_dir / word).glob("*.wav"))[:per_word]):
            rel = f"{word}/extra{i:02d}_nohash_0.flac"
            _flac_copy(wav, root / rel)
            if i == 0:
                val.append(rel)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("")
    return val


def test_flac_clips_load_like_wav(sc_dir: Path, tmp_path: Path) -> None:
    from edge.audio import load_wav

    wav = sorted((sc_dir / "yes").glob("*.wav"))[0]
    _flac_copy(wav, tmp_path / "x.flac")
    assert np.array_equal(load_wav(tmp_path / "x.flac", 16000), load_wav(wav, 16000))  # FLAC is lossless


def test_several_folders_merge_by_label_with_their_own_splits(sc_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    val = _flac_folder(sc_dir, extra)
    one = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    two = load_dataset(Recipe.SPEECH_COMMANDS, extra)
    merged = load_dataset(Recipe.SPEECH_COMMANDS, [sc_dir, extra])
    assert merged.labels == one.labels and len(merged.clips) == len(one.clips) + len(two.clips) == len(one.clips) + 33
    assert merged.noise_files == one.noise_files  # the FLAC folder has no _background_noise_
    # each folder keeps its own split lists: the first folder's test split is the merged test split
    assert [c.path for c in merged.split("test")] == [c.path for c in one.split("test")]
    extra_clips = [c for c in merged.clips if c.path.suffix == ".flac"]
    assert {f"{c.path.parent.name}/{c.path.name}" for c in extra_clips if c.split == "validation"} == set(val)
    assert sum(c.split == "train" for c in extra_clips) == 22 and not any(c.split == "test" for c in extra_clips)
    assert sum(c.label == UNKNOWN for c in extra_clips) == 3  # "bed" is _unknown_ in the 12-class task


def test_data_info_several_folders(sc_dir: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    _flac_folder(sc_dir, extra, per_word=2)
    r = subprocess.run([sys.executable, "-m", "train", "data-info", "--recipe", "speech_commands",
                        "--data", str(sc_dir), str(extra)], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert str(extra) in r.stdout and "merged, 2 folders" in r.stdout
    merged = r.stdout.split("merged, 2 folders")[1]
    yes_row = next(line for line in merged.splitlines() if line.startswith("yes "))
    one = load_dataset(Recipe.SPEECH_COMMANDS, sc_dir).counts()
    assert yes_row.split()[1:] == [str(one["train"]["yes"] + 1), str(one["validation"]["yes"] + 1), str(one["test"]["yes"])]


def test_same_folder_twice_is_refused(sc_dir: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "train", "data-info", "--data", str(sc_dir), str(sc_dir)],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"error: data directory {sc_dir} is given twice"]


def test_shared_extra_folder_merges(data_root: Path) -> None:
    """The shared FLAC folder of other speakers: adds training and validation clips, never test clips."""
    extra = data_root / "speech_commands_v2_train_extra"
    need(extra.is_dir(), f"{extra} not found")
    sub = load_dataset(Recipe.SPEECH_COMMANDS, data_root / "speech_commands_v2_subset")
    merged = load_dataset(Recipe.SPEECH_COMMANDS, [data_root / "speech_commands_v2_subset", extra])
    counts, base = merged.counts(), sub.counts()
    assert counts["test"] == base["test"]
    assert sum(counts["validation"].values()) - sum(base["validation"].values()) == 1082
    assert counts["train"]["yes"] > 900 and counts["train"]["on"] < 250  # on/off are scarce in the extra folder


def test_a_training_only_supplement_merges_into_speech_commands(sc_dir: Path, tmp_path: Path) -> None:
    """A folder with empty split lists (the synthetic `_unknown_` supplement) and no command words: all its clips
    are training `_unknown_` data; the real folder's splits are untouched. Without list files the speaker-hash
    rule still splits a folder."""
    from edge.audio import write_wav

    extra = tmp_path / "extra"
    rng = np.random.default_rng(0)
    for word in ("apple", "garden"):
        (extra / word).mkdir(parents=True)
        for i in range(20):
            write_wav(extra / word / f"{i:08x}_nohash_0.wav", (rng.standard_normal(8000) * 1000).astype(np.int16), 16000)
    with pytest.raises(UserError, match="missing word folders"):
        load_dataset(Recipe.SPEECH_COMMANDS, extra)  # on its own it is no Speech Commands folder
    unlisted = load_dataset(Recipe.SPEECH_COMMANDS, [sc_dir, extra])
    assert {c.split for c in unlisted.clips if extra in c.path.parents} > {"train"}  # speaker-hash splits
    (extra / "validation_list.txt").write_text("")
    (extra / "testing_list.txt").write_text("")
    merged, base = load_dataset(Recipe.SPEECH_COMMANDS, [sc_dir, extra]), load_dataset(Recipe.SPEECH_COMMANDS, sc_dir)
    added = [c for c in merged.clips if extra in c.path.parents]
    assert len(added) == 40 and {(c.split, c.label) for c in added} == {("train", UNKNOWN)}
    assert merged.labels == base.labels
    for split in ("validation", "test"):
        assert merged.counts()[split] == base.counts()[split]
    # a keyword missing from every folder is still refused
    with pytest.raises(UserError, match="no folder for keywords"):
        load_dataset(Recipe.SPEECH_COMMANDS, [sc_dir, extra], ("yes", "jarvis"))
