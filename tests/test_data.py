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
