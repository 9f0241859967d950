"""export/codegen on its own: feature quantization, front-end header, arena plan, CLI errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from firmware_support import GRU_STATE_PAIRS, REPO

from edge.frontend import FrontendConfig
from export import codegen


@pytest.mark.parametrize("scale,zero_point", [(0.0520, 2), (0.1370, -128), (0.0390625, -20), (0.3, 100)])
def test_feature_thresholds_reproduce_float_quantization(scale: float, zero_point: int) -> None:
    """The firmware's integer feature quantization equals the float reference for every uint16."""
    q0, thresholds = codegen.feature_thresholds(scale, zero_point)
    u = np.arange(65536, dtype=np.uint16)
    integer = q0 + np.searchsorted(np.array(thresholds, dtype=np.int64), u.astype(np.int64), side="right")
    reference = codegen.quantize_features_reference(u, scale, zero_point)
    assert np.array_equal(integer, reference.astype(np.int64))


def test_frontend_header_carries_config_values() -> None:
    config = FrontendConfig()
    text = codegen.frontend_header(config)
    macros = dict(line.split()[1:3] for line in text.splitlines() if line.startswith("#define KWS_FE_"))
    assert macros["KWS_FE_SAMPLE_RATE"] == "16000"
    assert macros["KWS_FE_NUM_CHANNELS"] == "40"
    assert macros["KWS_FE_PCAN_ENABLE"] == "1"
    assert macros["KWS_FE_HOP_SAMPLES"] == "160"
    assert macros["KWS_FE_WINDOW_SAMPLES"] == "480"
    # Float literals parse back to exactly the float32 the reference front end uses.
    for field, macro in [("noise_even_smoothing", "KWS_FE_NOISE_EVEN_SMOOTHING"), ("pcan_strength", "KWS_FE_PCAN_STRENGTH"),
                         ("lower_band_limit_hz", "KWS_FE_LOWER_BAND_LIMIT_HZ")]:
        literal = macros[macro]
        assert literal.endswith("f")
        assert np.float32(float(literal[:-1])) == np.float32(getattr(config, field))


def test_frontend_header_accepts_plain_dict_and_rejects_missing_fields() -> None:
    values = FrontendConfig().to_dict()
    assert codegen.frontend_header(values) == codegen.frontend_header(FrontendConfig())
    del values["pcan_offset"]
    with pytest.raises(codegen.CodegenError, match="pcan_offset"):
        codegen.frontend_header(values)


@pytest.fixture(scope="module")
def gru_tflite() -> bytes:
    pytest.importorskip("tensorflow")
    from firmware_support import gru_streaming_model

    return gru_streaming_model(hidden=16, classes=4)


def test_arena_plan_never_overlaps_live_tensors(gru_tflite: bytes) -> None:
    graph = codegen.load_graph(gru_tflite)
    plan = codegen.plan_arena(graph)
    spans = codegen.lifetimes(graph)
    tensors = sorted(plan.offsets)
    for i, a in enumerate(tensors):
        for b in tensors[i + 1:]:
            live_together = not (spans[a][1] < spans[b][0] or spans[b][1] < spans[a][0])
            ra = (plan.offsets[a], plan.offsets[a] + graph.tensors[a].size)
            rb = (plan.offsets[b], plan.offsets[b] + graph.tensors[b].size)
            if live_together:
                assert ra[1] <= rb[0] or rb[1] <= ra[0], (graph.tensors[a].name, graph.tensors[b].name)
    assert plan.size < sum(graph.tensors[t].size for t in tensors)  # buffers are actually shared


def test_state_pairs_must_exist_and_match(gru_tflite: bytes, tmp_path: Path) -> None:
    with pytest.raises(codegen.CodegenError, match="not a model input"):
        codegen.generate(gru_tflite, tmp_path, state_pairs=[("nope", "state_h0_out")])
    with pytest.raises(codegen.CodegenError, match="same size, scale and zero point"):
        codegen.generate(gru_tflite, tmp_path, state_pairs=[("features", "state_h0_out")])
    info = codegen.generate(gru_tflite, tmp_path, state_pairs=GRU_STATE_PAIRS)
    assert info.state_bytes == 16
    header = (tmp_path / "model_data.h").read_text()
    assert "#define KWS_MODEL_NUM_CLASSES 4" in header and "kws_model_step" in header


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export.codegen", *args], cwd=REPO, capture_output=True, text=True)


def test_cli_user_errors_are_one_line(tmp_path: Path) -> None:
    missing = _cli("--tflite", str(tmp_path / "missing.tflite"), "--out", str(tmp_path / "out"))
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "Traceback" not in missing.stderr
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"not a flatbuffer at all")
    bad = _cli("--tflite", str(garbage), "--out", str(tmp_path / "out"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("c_codegen: error:")


def _export_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "export", *args], cwd=REPO, capture_output=True, text=True)


def test_codegen_and_costs_cli_user_errors_are_one_line(tmp_path: Path) -> None:
    """`python -m export codegen ...` (what `make codegen` runs): refusals are one line, status 2."""
    not_artifacts = _export_cli("codegen", "--artifacts", str(tmp_path), "--out", str(tmp_path / "gen"))
    assert not_artifacts.returncode == 2 and "manifest.json" in not_artifacts.stderr
    no_source = _export_cli("codegen", "--out", str(tmp_path / "gen"))
    assert no_source.returncode == 2 and "--artifacts" in no_source.stderr
    no_image = _export_cli("codegen", "costs", "--build", str(tmp_path))
    assert no_image.returncode == 2 and "make firmware-m4" in no_image.stderr
    for result in (not_artifacts, no_source, no_image):
        assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert not (tmp_path / "gen").exists()
