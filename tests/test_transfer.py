"""Transfer learning (`--init-from`): a model starts from a run's weights where names and shapes match, and the
synthetic recipe's automatic real-speech base model is trained once and cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge.audio import write_wav
from edge.errors import UserError
from train import cli
from train.models import Cell, ModelConfig, build_model
from train.trainer import initialise_from, load_run

RATE = 16000
SC_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat")


def _sc_folder(root: Path, per_word: int) -> Path:
    """A Speech Commands layout of noise clips (speaker-hash splits), enough for a one-epoch training."""
    rng = np.random.default_rng(0)
    for word in SC_WORDS:
        (root / word).mkdir(parents=True)
        for i in range(per_word):
            write_wav(root / word / f"{i:08x}_nohash_0.wav", (rng.standard_normal(RATE) * 1000).astype(np.int16), RATE)
    return root


def test_initialise_from_copies_the_recurrent_layers_and_keeps_a_fresh_head(trained_run: Path) -> None:
    source = load_run(trained_run).model
    model = build_model(ModelConfig(cell=source.config.cell, hidden=source.config.hidden, num_classes=3))
    fresh_head = model.head.weight.detach().clone()
    copied = initialise_from(model, trained_run)
    assert any(k.startswith("rnn.") for k in copied) and "feat_mean" in copied
    assert not any(k.startswith("head.") for k in copied)  # 12 labels there, 3 here
    for name, value in source.state_dict().items():
        if name in copied:
            assert torch.equal(model.state_dict()[name], value), name
    assert torch.equal(model.head.weight, fresh_head)


def test_initialise_from_refuses_a_different_cell(trained_run: Path) -> None:
    other = Cell.LSTM if load_run(trained_run).model.config.cell is not Cell.LSTM else Cell.GRU
    with pytest.raises(UserError, match="do not fit"):
        initialise_from(build_model(ModelConfig(cell=other, hidden=32, num_classes=3)), trained_run)


def test_resolve_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = ModelConfig(hidden=8)
    assert cli.resolve_init("none", [tmp_path], model, 1, False) is None
    assert cli.resolve_init("auto", [], model, 1, False) is None  # no real speech: start from scratch
    assert cli.resolve_init(str(tmp_path), [], model, 1, False) == tmp_path
    (tmp_path / "digits").mkdir()
    assert cli.resolve_init("auto", [tmp_path / "digits"], model, 1, False) is None
    assert "not Speech Commands folders" in capsys.readouterr().err


def test_the_real_speech_base_model_is_trained_once_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = _sc_folder(tmp_path / "sc", per_word=3)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "PRETRAIN_EPOCHS", 1)
    monkeypatch.setattr(cli, "PRETRAIN_VIEWS", 1)
    model = ModelConfig(hidden=8)
    base = cli.resolve_init("auto", [real], model, 1, False)
    assert base is not None and base.parent == Path(".cache") / "pretrained"
    run = load_run(base)
    assert run.model.config.hidden == 8 and run.labels[:2] == ["_silence_", "_unknown_"] and len(run.labels) == 12
    assert not list(base.parent.glob("*.partial"))

    import train.trainer

    def no_training(*args, **kwargs):
        raise AssertionError("the cached base model must be reused")

    monkeypatch.setattr(train.trainer, "train", no_training)
    assert cli.resolve_init("auto", [real], model, 1, False) == base
    assert "(cached)" in capsys.readouterr().err


def test_synthetic_unknowns_are_a_training_only_folder_without_keywords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--synth-unknowns`: other Speech Commands words and common words, never a keyword, every clip training
    `_unknown_` data, no synthetic background noise; generated once."""
    from edge.datasets import SC_COMMANDS, UNKNOWN, Recipe, load_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "SC_OTHER_WORDS", ("bed", "cat", "yes"))  # "yes" is a keyword here: left out
    monkeypatch.setattr(cli, "SC_SYNTH_COMMON_WORDS", 2)
    out = cli.synthetic_unknowns_dir(SC_COMMANDS, 2, ("espeak",))
    words = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert "yes" not in words and {"bed", "cat"} <= set(words) and len(words) == 4
    assert not (out / "_background_noise_").exists() and not list(out.parent.glob("*.partial"))
    real = _sc_folder(tmp_path / "sc", per_word=2)
    merged = load_dataset(Recipe.SPEECH_COMMANDS, [real, out])
    added = [c for c in merged.clips if out.resolve() in c.path.resolve().parents]
    assert len(added) == 8 and {(c.split, c.label) for c in added} == {("train", UNKNOWN)}
    stamp = (out / "testing_list.txt").stat().st_mtime_ns
    assert cli.synthetic_unknowns_dir(SC_COMMANDS, 2, ("espeak",)) == out
    assert (out / "testing_list.txt").stat().st_mtime_ns == stamp


def test_synthetic_sentences_are_a_training_only_folder_without_keywords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--synth-sentences N` for Speech Commands: N running-speech sentences, every one training `_unknown_` data,
    no keyword clip, no synthetic background noise, no word that holds a keyword; generated once. The recipe's
    default is none, and the option puts the folder among the data folders."""
    from edge.datasets import SC_COMMANDS, UNKNOWN, Recipe, load_dataset
    from train.synth.plan import sentence_vocabulary

    monkeypatch.chdir(tmp_path)
    out = cli.synthetic_sentences_dir(SC_COMMANDS, 4, ("espeak",))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["sentences"]
    assert not list(out.parent.glob("*.partial"))
    real = _sc_folder(tmp_path / "sc", per_word=2)
    merged = load_dataset(Recipe.SPEECH_COMMANDS, [real, out])
    added = [c for c in merged.clips if out.resolve() in c.path.resolve().parents]
    assert len(added) == 4 and {(c.split, c.label) for c in added} == {("train", UNKNOWN)}
    vocabulary = sentence_vocabulary(SC_COMMANDS)
    assert not any(k in w or w in k for w in vocabulary for k in SC_COMMANDS)  # "one" holds "on": left out
    stamp = (out / "testing_list.txt").stat().st_mtime_ns
    assert cli.synthetic_sentences_dir(SC_COMMANDS, 4, ("espeak",)) == out
    assert (out / "testing_list.txt").stat().st_mtime_ns == stamp

    monkeypatch.setenv("KWS_DATA_DIR", str(tmp_path))
    parse = cli.build_parser().parse_args
    base = ["train", "--recipe", "speech_commands", "--data", str(real), "--synth-engines", "espeak"]
    assert cli.resolve_data(parse(base))[1] == [real]  # off by default for recorded data
    roots = cli.resolve_data(parse([*base, "--synth-sentences", "4"]))[1]
    assert roots[0] == real and roots[1].resolve() == out.resolve()
    with pytest.raises(UserError, match="--synth-sentences must be >= 0"):
        cli.resolve_data(parse([*base, "--synth-sentences", "-1"]))
    with pytest.raises(UserError, match="--synth-sentences is for the synthetic and speech_commands recipes"):
        cli.resolve_data(parse(["train", "--recipe", "fsdd", "--data", str(real), "--synth-sentences", "4"]))


def test_the_base_model_never_hears_the_wake_words_own_recordings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wake word that is a Speech Commands word (`cat` here, like `happy` or `marvin`): its real recordings are
    what it is measured on, so the base model's data leaves its word folder out, and the cache tells the two
    bases apart. A keyword that is one of the base task's ten classes gets no base model."""
    from edge.datasets import UNKNOWN
    from train.trainer import CHECKPOINT, CONFIG

    real = _sc_folder(tmp_path / "sc", per_word=3)
    monkeypatch.chdir(tmp_path)
    whole = cli.base_dataset([real], ())
    assert sum(c.path.parent.name == "cat" and c.label == UNKNOWN for c in whole.clips) == 3
    without = cli.base_dataset([real], ("cat",))
    assert not [c for c in without.clips if c.path.parent.name == "cat"]
    assert len(without.clips) == len(whole.clips) - 3

    seen = {}

    def fake_train(cfg, out, progress=True, dataset=None):
        seen[out.name] = sorted({c.path.parent.name for c in dataset.clips})
        out.mkdir(parents=True)
        (out / CONFIG).write_text("{}")
        (out / CHECKPOINT).write_bytes(b"")

    import train.trainer

    monkeypatch.setattr(train.trainer, "train", fake_train)
    model = ModelConfig(hidden=8)
    plain = cli.resolve_init("auto", [real], model, 1, False)
    held = cli.resolve_init("auto", [real], model, 1, False, ("cat",))
    assert plain is not None and held is not None and plain != held
    assert "cat" in seen[plain.name + ".partial"] and "cat" not in seen[held.name + ".partial"]
    assert cli.resolve_init("auto", [real], model, 1, False, ("yes",)) is None
    assert "yes is a class of the real-speech base model's task" in capsys.readouterr().err
