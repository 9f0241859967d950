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
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_firmware_support import (
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
    from export import c_codegen

    work = tmp_path_factory.mktemp("fw_m4")
    tflite = gru_streaming_model()
    c_codegen.generate(tflite, work / "gen", state_pairs=GRU_STATE_PAIRS, source_name="test GRU")
    make_firmware(["firmware-m4"], work / "gen", work / "build")
    return {"tflite": tflite, "elf": work / "build" / "m4" / "kws_m4.elf", "work": work}


def run_qemu(elf: Path, wav: Path, *flags: str) -> subprocess.CompletedProcess:
    args = ",".join(["arg=kws_m4", f"arg={wav}", *(f"arg={f}" for f in flags)])
    return subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
         "-icount", "shift=0", "-semihosting-config", f"enable=on,target=native,{args}", "-kernel", str(elf)],
        capture_output=True, text=True, timeout=QEMU_TIMEOUT_S,
    )


def section_sizes(elf: Path) -> dict[str, int]:
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def model_share(map_file: Path) -> dict[str, int]:
    """Bytes linked from the generated model and the kernels, split into flash and RAM."""
    flash = ram = 0
    section = ""
    pattern = re.compile(r"^\s*(\.\S+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$")
    in_discarded = True
    for line in map_file.read_text().splitlines():
        if line.startswith("Linker script and memory map"):
            in_discarded = False
        if in_discarded:
            continue
        if re.match(r"^\s*\.\S+\s*$", line):
            section = line.strip()
            continue
        m = pattern.match(line)
        if not m:
            continue
        section = m.group(1) or section
        obj = m.group(3)
        if not (obj.endswith("model_data.o") or obj.endswith("kws_kernels.o")):
            continue
        size = int(m.group(2), 16)
        if section.startswith((".text", ".rodata")):
            flash += size
        elif section.startswith((".data", ".bss")):
            ram += size
            if section.startswith(".data"):
                flash += size  # initial values are stored in flash too
    return {"flash": flash, "ram": ram}


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
    wav = m4_build["work"] / "speech_short.wav"
    concatenated_speech(wav, 3)
    result = run_qemu(m4_build["elf"], wav, "--stats")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    _, _, stats = parse_firmware_output(result.stdout)
    extra = stats
    # Calibration: a 2-instruction loop of known length must read exactly 40 instructions per tick
    # (the loop is a whole number of ticks long; 1 tick of slack for the start/stop phase).
    ticks = int(extra["calibration_ticks"])
    assert abs(ticks * INSTRUCTIONS_PER_TICK - int(extra["calibration_instructions"])) <= INSTRUCTIONS_PER_TICK
    frames = int(stats["frames"])
    hops = frames + 2  # the first two hops only fill the 30 ms window
    frontend_instr = int(stats["frontend"]) * INSTRUCTIONS_PER_TICK / hops
    model_instr = int(stats["model"]) * INSTRUCTIONS_PER_TICK / frames
    sizes = section_sizes(m4_build["elf"])
    share = model_share(m4_build["elf"].with_suffix(".map"))
    report = {
        "flash_text_rodata": sizes[".text"] + sizes[".rodata"],
        "ram_data_bss": sizes.get(".data", 0) + sizes[".bss"],
        "stack_high_water": int(extra["stack_high_water"]),
        "frontend_arena": int(stats["fe_arena"]),
        "model_flash": share["flash"],
        "model_ram": share["ram"],
        "frontend_instructions_per_hop": round(frontend_instr),
        "model_instructions_per_frame": round(model_instr),
        "model_instructions_per_mac": round(model_instr / int(stats["macs"]), 2),
    }
    (m4_build["work"] / "m4_report.json").write_text(json.dumps(report, indent=2))
    print("M4 report:", json.dumps(report))
    assert share["flash"] <= 32 * 1024, report
    assert share["ram"] <= 8 * 1024, report
    assert 0 < report["stack_high_water"] < 16 * 1024, report
    # Plausibility of the counts (the frame loop really ran under -icount): a GRU-64 step needs at
    # least one instruction per MAC, and the front end's 512-point FFT alone takes thousands.
    assert model_instr >= int(stats["macs"]), report
    assert frontend_instr > 5000, report
