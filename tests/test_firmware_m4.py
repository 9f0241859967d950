"""The Cortex-M4F build (arm-none-eabi-gcc) under QEMU mps2-an386: exact outputs, sizes, instructions.

* Per-frame features == pymicro-features and int8 posteriors == TFLite Micro interpreter, on >= 10 s
  of real speech streamed through one model instance (exact: no tolerance).
* Resource budget of the model part for a GRU-64 (12 classes): <= 32 KB flash, <= 8 KB RAM.
* Instruction counting method: with `-icount shift=0` QEMU advances virtual time 1 ns per
  instruction and the CMSDK timer ticks at 25 MHz, i.e. every 40 instructions; a calibration loop of
  known length checks that ratio.

Needs arm-none-eabi-gcc and qemu-system-arm: skipped without them, failed when CI=true.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_support import (
    GRU_STATE_PAIRS,
    concatenated_speech,
    gru_streaming_model,
    make_firmware,
    parse_firmware_output,
    reference_stream,
    require_tool,
)

pytest.importorskip("tensorflow")
pytest.importorskip("tflite_micro")
pytest.importorskip("pymicro_features")

SPEECH_SECONDS = 12
INSTRUCTIONS_PER_TICK = 40  # 25 MHz timer, 1 ns per instruction with -icount shift=0
QEMU_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def m4_build(tmp_path_factory: pytest.TempPathFactory) -> dict:
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    from export import codegen

    work = tmp_path_factory.mktemp("fw_m4")
    tflite = gru_streaming_model()
    codegen.generate(tflite, work / "gen", state_pairs=GRU_STATE_PAIRS, source_name="test GRU")
    make_firmware(["firmware-m4"], work / "gen", work / "build")
    return {"tflite": tflite, "elf": work / "build" / "m4" / "kws_m4.elf", "work": work}


def run_qemu(elf: Path, wav: Path, *flags: str) -> subprocess.CompletedProcess:
    args = ",".join(["arg=kws_m4", f"arg={wav}", *(f"arg={f}" for f in flags)])
    return subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
         "-icount", "shift=0", "-semihosting-config", f"enable=on,target=native,{args}", "-kernel", str(elf)],
        capture_output=True, text=True, timeout=QEMU_TIMEOUT_S,
    )


def test_m4_streaming_matches_reference(m4_build: dict) -> None:
    from edge.frontend import compute_features

    wav = m4_build["work"] / "speech.wav"
    pcm = concatenated_speech(wav, SPEECH_SECONDS)
    result = run_qemu(m4_build["elf"], wav, "--features", "--stats")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    c_features, c_posteriors, stats = parse_firmware_output(result.stdout)
    frames = compute_features(pcm)
    assert np.array_equal(c_features, frames), "M4 front end differs from pymicro-features"
    expected = reference_stream(m4_build["tflite"], frames)
    assert c_posteriors.shape == expected.shape
    differing = int(np.count_nonzero(c_posteriors != expected))
    assert differing == 0, f"{differing} of {expected.size} posteriors differ from TFLM"
    assert int(stats["frames"]) == len(frames) >= 100 * (SPEECH_SECONDS - 1)


def test_m4_resources_and_instruction_counts(m4_build: dict) -> None:
    from export.codegen import firmware_costs, measured_costs

    wav = m4_build["work"] / "speech_short.wav"
    concatenated_speech(wav, 3)
    result = run_qemu(m4_build["elf"], wav, "--stats", "--no-posteriors")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    _, posteriors, stats = parse_firmware_output(result.stdout)
    assert len(posteriors) == 0  # --no-posteriors: events only
    # Calibration: a 2-instruction loop of known length must read exactly 40 instructions per tick
    # (the loop is a whole number of ticks long; 1 tick of slack for the start/stop phase).
    ticks = int(stats["calibration_ticks"])
    assert abs(ticks * INSTRUCTIONS_PER_TICK - int(stats["calibration_instructions"])) <= INSTRUCTIONS_PER_TICK
    assert int(stats["hops"]) == int(stats["frames"]) + 2  # the first two hops only fill the 30 ms window
    report = {**firmware_costs(m4_build["work"] / "build"), **measured_costs(result.stdout)}
    (m4_build["work"] / "m4_report.json").write_text(json.dumps(report, indent=2))
    print("M4 report:", json.dumps(report))
    assert report["model_flash_bytes"] <= 32 * 1024, report
    assert report["model_ram_bytes"] <= 8 * 1024, report
    assert 0 < report["stack_bytes"] < 16 * 1024, report
    assert report["flash_bytes"] > report["model_flash_bytes"] and report["ram_bytes"] > report["model_ram_bytes"]
    # Plausibility of the counts (the frame loop really ran under -icount): a GRU-64 step needs at
    # least one instruction per MAC, and the front end's 512-point FFT alone takes thousands.
    assert report["model_instructions_per_frame"] >= report["macs_per_frame"], report
    assert report["frontend_instructions_per_hop"] > 5000, report
