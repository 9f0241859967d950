"""`python -m export esphome` / `esphome-check`: ESPHome's micro_wake_word contract (ops, shapes, types, state in
resource variables, manifest v2), the exported model on real speech against our explicit-state int8 model in the
`tflite-micro` interpreter, and ESPHome's sliding-window rule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edge.frontend import FrontendConfig
from export import esphome_contract as contract

KEYWORD = "yes"


# ----------------------------------------------------------------------------- pure rules
def test_feature_quantization_is_esphomes_integer_rule() -> None:
    u = np.array([0, 1, 332, 333, 334, 665, 666, 999, 32767, 65535], dtype=np.uint16)
    expected = [max(-128, min(127, (int(v) * 256 + 333) // 666 - 128)) for v in u]
    assert contract.esphome_features(u).tolist() == expected
    scale, zp = contract.esphome_input_quantization()
    assert zp == -128 and scale == pytest.approx(666 / 256 / 25.6)
    # the fixed input scale describes ESPHome's integers: dequantized, each is within half a step of the feature
    u = np.arange(0, 660, dtype=np.uint16)
    x = (contract.esphome_features(u).astype(np.float64) - zp) * scale
    assert np.abs(x - u * 0.0390625).max() <= scale / 2 + 1e-9


def test_our_default_front_end_is_esphomes() -> None:
    assert contract.frontend_differences(FrontendConfig()) == []
    diffs = contract.frontend_differences(dataclasses.replace(FrontendConfig(), pcan_strength=0.5, hop_ms=40))
    assert diffs == ["pcan_strength 0.5 != ESPHome's 0.95",
                     "hop_ms 40 is outside ESPHome's feature_step_size range 1..30"]


def test_export_refuses_a_different_front_end_and_a_missing_keyword() -> None:
    from edge.errors import UserError
    from export.esphome import check_exportable

    run = SimpleNamespace(labels=["_silence_", "_unknown_", "yes"], frontend=FrontendConfig(), model=None)
    with pytest.raises(UserError, match="not one of the run's keywords: yes"):
        check_exportable(run, "no")
    from train.models import ModelConfig

    gru = SimpleNamespace(labels=run.labels, frontend=FrontendConfig(), model=SimpleNamespace(config=ModelConfig(), proj=None))
    assert check_exportable(gru, "") == 2  # no --keyword: the run's only keyword
    two = SimpleNamespace(labels=["_silence_", "_unknown_", "yes", "no"], frontend=FrontendConfig(), model=None)
    with pytest.raises(UserError, match="2 keywords \\(yes, no\\): name the wake word with --keyword"):
        check_exportable(two, "")
    run.frontend = dataclasses.replace(FrontendConfig(), upper_band_limit_hz=4000.0)
    with pytest.raises(UserError, match="upper_band_limit_hz 4000.0 != ESPHome's 7500.0.*retrain"):
        check_exportable(run, "yes")


def test_cutoff_round_trips_through_esphomes_truncation() -> None:
    from export.esphome import probability_cutoff

    for c in range(256):
        assert contract.cutoff_u8(probability_cutoff(c)) == c


def test_sliding_window_rule() -> None:
    p = np.zeros(40, dtype=np.uint8)
    p[10:14] = 200  # window 3, cutoff 150: fires when the sum of the last 3 exceeds 450
    assert contract.esphome_detections(p, 150, 3, min_slices=5) == [12]
    # after a detection the window is cleared and `min_slices` outputs below the cutoff must pass first
    p[20:23] = 200
    assert contract.esphome_detections(p, 150, 3, min_slices=5) == [12, 22]
    assert contract.esphome_detections(p, 150, 3, min_slices=8) == [12]
    # at load: the same wait before the first detection
    assert contract.esphome_detections(p, 150, 3, min_slices=11) == [22]


def test_softmax_rewrite_error_bound() -> None:
    from export.esphome_graph import softplus_tail_fit

    beta, error = softplus_tail_fit()
    assert 1.0 < beta < 1.5 and error < 0.02


# ----------------------------------------------------------------------------- the contract check
@pytest.fixture(scope="module")
def explicit_float_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model in our own export form (explicit state input/output, TANH, SUB, SOFTMAX, float I/O)."""
    import torch

    from export.convert import Variant, convert
    from export.tf_graph import fold_weights, step_function
    from train.models import ModelConfig, RecurrentKWS

    torch.manual_seed(0)
    fn, _ = step_function(fold_weights(RecurrentKWS(ModelConfig(hidden=8)).eval()))
    path = tmp_path_factory.mktemp("explicit") / "explicit.tflite"
    path.write_bytes(convert(fn, Variant.FLOAT32, None))
    return path


def test_explicit_state_model_fails_with_the_right_lines(explicit_float_model: Path) -> None:
    problems = contract.check_model(explicit_float_model.read_bytes())
    assert "op TANH is not registered by micro_wake_word" in problems
    assert "op SUB is not registered by micro_wake_word" in problems
    assert "op SOFTMAX is not registered by micro_wake_word" in problems
    assert any(p.startswith("the model has 2 inputs (") and "state_h0" in p and "explicit state inputs" in p
               for p in problems)
    assert "the model has 2 outputs; micro_wake_word reads one" in problems
    assert any(p.startswith("input shape [1, ") and p.endswith("] is not [1, stride, 40]") for p in problems)
    assert "input type float32 is not int8" in problems


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from export.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_check_command_prints_one_line_per_violation(explicit_float_model: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _cli(["esphome-check", str(explicit_float_model)], capsys)
    lines = out.strip().splitlines()
    assert rc == 1 and err == ""
    assert lines[-1] == f"contract: {len(lines) - 1} violation(s)"
    assert "op TANH is not registered by micro_wake_word" in lines


@pytest.mark.parametrize("content", [None, b"not a flatbuffer"])
def test_check_command_user_errors_are_one_line(content: bytes | None, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.tflite"
    if content is not None:
        path.write_bytes(content)
    rc, out, err = _cli(["esphome-check", str(path)], capsys)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


# ----------------------------------------------------------------------------- the exported model
@pytest.fixture(scope="module")
def exported(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's small GRU (12 labels) exported for the wake word "yes" (short streams: ~40 s)."""
    from export.esphome import EsphomeOptions, build_esphome

    out = tmp_path_factory.mktemp("esphome") / "esp"
    build_esphome(trained_run, out, EsphomeOptions(KEYWORD, threshold_minutes=3.0, verify_seconds=60.0),
                  progress=False)  # the default calibration (DEFAULT_CALIBRATION_SECONDS)
    return out


def test_exported_model_obeys_the_contract(exported: Path, trained_run: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # the session's model has the default size's input projection: its ReLU must be fused, not a RELU op
    assert json.loads((trained_run / "config.json").read_text())["model"]["proj"] > 0
    model, manifest = exported / f"{KEYWORD}.tflite", exported / f"{KEYWORD}.json"
    assert contract.check_files(model, manifest) == []
    facts = contract.model_facts(model.read_bytes())
    assert set(contract.STATE_OPS) <= set(facts.ops) and {"TANH", "SUB", "DEQUANTIZE", "RELU"}.isdisjoint(facts.ops)
    assert facts.variables == 1 and facts.variable_bytes == 32 and facts.float_variables == 0  # GRU-32 state, int8
    assert facts.inputs[0].shape == [1, 1, 40] and facts.outputs[0].shape == [1, 1]
    rc, out, _ = _cli(["esphome-check", str(model), str(manifest)], capsys)
    assert rc == 0 and out.strip() == "contract: OK"


def test_input_carries_esphomes_fixed_quantization(exported: Path) -> None:
    from export.convert import describe_io

    feat = describe_io((exported / f"{KEYWORD}.tflite").read_bytes())["inputs"][0]
    scale, zp = contract.esphome_input_quantization()
    assert feat["zero_point"] == zp and feat["scale"] == pytest.approx(scale, rel=1e-6)


def test_manifest_schema(exported: Path) -> None:
    manifest = json.loads((exported / f"{KEYWORD}.json").read_text())
    report = json.loads((exported / f"{KEYWORD}.export.json").read_text())
    assert set(manifest) == set(contract.MANIFEST_KEYS)
    assert manifest["type"] == "micro" and manifest["version"] == 2 and manifest["wake_word"] == KEYWORD
    micro = manifest["micro"]
    assert set(micro) == set(contract.MICRO_KEYS)
    assert micro["feature_step_size"] == FrontendConfig().hop_ms
    assert micro["tensor_arena_size"] == report["tensor_arena_size_measured"] > 0
    assert contract.cutoff_u8(micro["probability_cutoff"]) == report["operating_point"]["cutoff_u8"]
    assert report["operating_point"]["false_alarms"] <= report["operating_point"]["allowed_false_alarms"]
    broken = {**manifest, "version": 1, "extra": 1, "micro": {**micro, "probability_cutoff": 1.5}}
    del broken["micro"]["tensor_arena_size"]
    assert contract.check_manifest(broken) == [
        "manifest: unknown key 'extra' (ESPHome's schema rejects extra keys)",
        "manifest: version 1 is not 2",
        "manifest: missing key micro.tensor_arena_size",
        "manifest: micro.probability_cutoff 1.5 is not a number in [0, 1]"]


def test_agreement_with_the_explicit_int8_model(exported: Path) -> None:
    """The bound the export measured on 60 s of held-out test speech (tflite-micro): see the README for why it is
    not exact (ESPHome's input grid, the TANH/SUB/SOFTMAX rewrites, 1/256 output steps)."""
    v = json.loads((exported / f"{KEYWORD}.export.json").read_text())["verification"]
    a = v["agreement_vs_explicit_int8"]
    assert a["frames"] >= 5900
    assert a["mean_abs_diff"] < 0.005 and a["share_within_2_steps"] > 0.95 and a["max_abs_diff"] < 0.1
    assert v["detections"]["same_keywords_hit"]


def test_same_probabilities_on_real_speech_in_tflite_micro(exported: Path, trained_run: Path,
                                                            stream_wav: Path) -> None:
    """Independently of the export's own stream: 12 s of real test speech through the front end, the ESPHome form
    (tflite-micro, ESPHome's integer features) against our explicit-state int8 model (tflite-micro)."""
    from edge.audio import load_wav
    from edge.frontend import StreamingFrontend, features_to_float
    from export.esphome import convert_explicit, esphome_probabilities, explicit_probabilities
    from export.pipeline import run_dataset
    from export.tf_graph import fold_weights
    from train.trainer import load_run

    run = load_run(trained_run)
    fw = fold_weights(run.model)
    explicit = convert_explicit(run, run_dataset(run), fw)
    feats = StreamingFrontend(run.frontend).process(load_wav(stream_wav, run.frontend.sample_rate))
    k = run.labels.index(KEYWORD)
    p_esp = esphome_probabilities((exported / f"{KEYWORD}.tflite").read_bytes(), feats) / 256.0
    p_ours = explicit_probabilities(explicit, fw.state_pairs(), k, features_to_float(feats))
    d = np.abs(p_esp - p_ours)
    assert len(feats) > 1000
    # measured: mean 0.0047, 87 % of frames within 2 output steps, max < 0.1 (this stream is keyword-dense: the
    # export's 60 s test stream gives mean 0.0012, 98 %). With the default size's input projection (ReLU before the
    # GRU) and the default 120 s of calibration: 0.0051, 84 %, 0.070; the ESPHome form of such a model depends more
    # on its calibration frames (60 s: 0.0117, 78 %, 0.168; 300 s: 0.0331, 78 %, 0.387; README, "ESPHome").
    # The fixture's model is trained on the machine that runs the test, and float rounding differs between CPUs:
    # on another machine the same test measured mean 0.0081, 85 % within 2 steps, max 0.199: one stretch of 27
    # frames (2.5 %) on a steep rise to the keyword, ~0.3 in one model against ~0.5 in the other, with the same words
    # fired below. So the bounds: mean below 0.012, 75 % within 2 steps, and frames more than 0.1 apart under 4 %,
    # none beyond 0.25. A wrong scale or state in the conversion is far outside all of them.
    assert d.mean() < 0.012 and (d <= 2 / 256 + 1e-9).mean() > 0.75
    assert (d > 0.1).mean() < 0.04 and d.max() < 0.25
    # ESPHome's rule at the manifest's cutoff fires on the same words, within 100 ms
    micro = json.loads((exported / f"{KEYWORD}.json").read_text())["micro"]
    c, w = contract.cutoff_u8(micro["probability_cutoff"]), micro["sliding_window_size"]
    ours_u8 = np.clip(np.rint(p_ours * 256), 0, 255)
    # (ESPHome's own refractory rule: with none, a word held above the cutoff re-fires every `w` frames, and one
    # frame's shift at the end of such a run changes that count without changing which words fire)
    fired = [contract.esphome_detections(np.rint(p * 256), c, w) for p in (p_esp, p_ours)]
    assert len(fired[0]) == len(fired[1]) and np.abs(np.subtract(*fired)).max(initial=0) <= 10
    assert fired[0], "the keyword-dense stream fires at least once"
    assert ours_u8.max() > c


def test_bad_keyword_is_one_line(trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _cli(["esphome", str(trained_run), "--keyword", "jarvis", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: --keyword 'jarvis' is not one of the run's keywords: yes, no")
    assert not (tmp_path / "o").exists()
