"""Firmware costs: the Cortex-M4 image's flash and RAM (from the ELF and the link map), its stack and instruction
counts under QEMU, and recording them in the artifacts' manifest."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any, Sequence

from edge.atomic import write_text_atomic
from export.codegen.errors import CodegenError


#: Objects whose linked bytes are "the model" (generated constants and code + the int8 kernels) and
#: "the detector" in the costs.
_MODEL_OBJECTS = ("model_data.o", "kws_kernels.o")
_DETECT_OBJECTS = ("kws_detect.o",)
QEMU_COMMAND = ("qemu-system-arm", "-M", "mps2-an386", "-cpu", "cortex-m4", "-nographic", "-monitor", "none",
                "-icount", "shift=0")


def elf_section_sizes(elf: Path) -> dict[str, int]:
    """Section name -> size of a 32-bit little-endian ELF file (no external tool needed)."""
    data = elf.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise CodegenError(f"{elf}: not a 32-bit little-endian ELF file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_offset = headers[shstrndx][4]

    def name(offset: int) -> str:
        end = data.index(b"\0", strtab_offset + offset)
        return data[strtab_offset + offset : end].decode()

    return {name(h[0]): h[5] for h in headers if h[0]}


def linked_bytes(map_file: Path, objects: Sequence[str]) -> dict[str, int]:
    """Flash and RAM bytes that the GNU ld link map attributes to the named object files.

    .text/.rodata count as flash, .bss as RAM, .data as both (its initial values live in flash).
    """
    flash = ram = 0
    section = ""
    entry = re.compile(r"^\s*(\.\S+)?\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+(\S+)$")
    in_memory_map = False
    for line in map_file.read_text().splitlines():
        if line.startswith("Linker script and memory map"):
            in_memory_map = True  # everything before lists discarded input sections
        if not in_memory_map:
            continue
        if re.match(r"^\s*\.\S+\s*$", line):
            section = line.strip()  # a long section name, with its address on the next line
            continue
        m = entry.match(line)
        if not m:
            continue
        section = m.group(1) or section
        if not m.group(3).endswith(tuple(objects)):
            continue
        size = int(m.group(2), 16)
        if section.startswith((".text", ".rodata")):
            flash += size
        elif section.startswith((".data", ".bss")):
            ram += size
            if section.startswith(".data"):
                flash += size
    return {"flash": flash, "ram": ram}


def parse_app_output(text: str) -> dict[str, Any]:
    """The firmware's line format -> {"posteriors": [[int]], "events": [dict], "stats": {key: str}}.

    Features ("F" lines) are left to the callers that ask for them.
    """
    posteriors: list[list[int]] = []
    events: list[dict[str, Any]] = []
    stats: dict[str, str] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "P":
            posteriors.append([int(v) for v in rest.split()[1:]])
        elif kind == "E":
            frame, label, time_ms, window_sum, name = rest.split(" ", 4)
            events.append({"frame": int(frame), "label_index": int(label), "time_ms": int(time_ms),
                           "window_sum": int(window_sum), "label": name})
        elif kind in ("T", "S"):
            stats.update(item.split("=", 1) for item in rest.split())
    return {"posteriors": posteriors, "events": events, "stats": stats, "finished": "END" in text.splitlines()}


def run_m4(elf: Path, wav: Path, flags: Sequence[str] = (), timeout_s: float = 300.0) -> str:
    """Run the M4 image under QEMU on a WAV file; returns its output (raises CodegenError on failure)."""
    if shutil.which(QEMU_COMMAND[0]) is None:
        raise CodegenError(f"{QEMU_COMMAND[0]} is not installed (apt-get install qemu-system-arm)")
    args = ",".join(["arg=kws_m4", f"arg={wav}", *(f"arg={f}" for f in flags)])
    try:
        result = subprocess.run(
            [*QEMU_COMMAND, "-semihosting-config", f"enable=on,target=native,{args}", "-kernel", str(elf)],
            capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        raise CodegenError(f"QEMU did not finish within {timeout_s:g} s") from exc
    if result.returncode != 0 or "END" not in result.stdout.splitlines():
        last = (result.stdout.strip().splitlines() or [result.stderr.strip()])[-1:]
        raise CodegenError(f"the M4 image failed under QEMU (status {result.returncode}): {' '.join(last)}")
    return result.stdout


def firmware_costs(build_dir: Path, wav: Path | None = None, timeout_s: float = 300.0) -> dict[str, Any]:
    """Costs of the Cortex-M4 build in `build_dir` (FW_BUILD_DIR of firmware.mk: `build_dir/m4/kws_m4.elf`).

    Always (from the ELF and the link map):
      flash_bytes  .text + .rodata + .ARM.exidx + .data (initial values)    ram_bytes  .data + .bss
      model_flash_bytes / model_ram_bytes    generated model + int8 kernels
      detect_flash_bytes / detect_ram_bytes  the detector (kws_detect.c)
    With `wav` (runs the image under QEMU with -icount shift=0, see firmware/README.md):
      stack_bytes (painted-stack high-water mark), frontend_arena_bytes, frames, events,
      frontend_instructions_per_hop, model_instructions_per_frame, detect_instructions_per_frame,
      instructions_per_frame (front end + model + detector), macs_per_frame, instructions_per_mac,
      mips_realtime (million instructions per second to keep up with the audio).
    """
    build_dir = Path(build_dir)
    elf = build_dir / "m4" / "kws_m4.elf"
    if not elf.is_file():
        raise CodegenError(f"{elf}: no M4 image (make firmware-m4 FW_BUILD_DIR={build_dir})")
    sections = elf_section_sizes(elf)
    flash = sum(sections.get(n, 0) for n in (".text", ".rodata", ".ARM.exidx", ".data"))
    costs: dict[str, Any] = {
        "flash_bytes": flash,
        "ram_bytes": sections.get(".data", 0) + sections.get(".bss", 0),
    }
    map_file = elf.with_suffix(".map")
    if map_file.is_file():
        model, detect = linked_bytes(map_file, _MODEL_OBJECTS), linked_bytes(map_file, _DETECT_OBJECTS)
        costs.update(model_flash_bytes=model["flash"], model_ram_bytes=model["ram"],
                     detect_flash_bytes=detect["flash"], detect_ram_bytes=detect["ram"])
    if wav is not None:
        costs.update(measured_costs(run_m4(elf, Path(wav), ("--stats", "--no-posteriors"), timeout_s)))
    return costs


def measured_costs(output: str) -> dict[str, Any]:
    """The run-time half of `firmware_costs` from the output of an M4 run with --stats."""
    stats = parse_app_output(output)["stats"]
    needed = ("frames", "hops", "frontend", "model", "detect", "macs", "stack_high_water",
              "calibration_instructions", "calibration_ticks")
    missing = [k for k in needed if k not in stats]
    if missing:
        raise CodegenError(f"the M4 image printed no {', '.join(missing)} (built from older sources?)")
    frames, hops = int(stats["frames"]), int(stats["hops"])
    if frames == 0:
        raise CodegenError("the audio is shorter than one analysis window")
    # Instructions per counter tick, measured by the board's calibration loop (40 with -icount shift=0).
    per_tick = round(int(stats["calibration_instructions"]) / int(stats["calibration_ticks"]))
    frontend = int(stats["frontend"]) * per_tick / hops
    model = int(stats["model"]) * per_tick / frames
    detect = int(stats["detect"]) * per_tick / frames
    macs = int(stats["macs"])
    total = frontend + model + detect
    return {
        "stack_bytes": int(stats["stack_high_water"]),
        "frontend_arena_bytes": int(stats["fe_arena"]),
        "frames": frames,
        "events": int(stats["events"]),
        "frontend_instructions_per_hop": round(frontend),
        "model_instructions_per_frame": round(model),
        "detect_instructions_per_frame": round(detect),
        "instructions_per_frame": round(total),
        "macs_per_frame": macs,
        "instructions_per_mac": round(model / macs, 2) if macs else None,
        "mips_realtime": round(total * 100 / 1e6, 2),  # 100 frames per second (10 ms hop)
    }


def record_in_manifest(artifacts: Path, costs: dict[str, Any]) -> Path:
    """Write `costs` into the artifacts' manifest as its `firmware` section (`edge.atomic`: a new temporary
    sibling, then rename; a symlinked manifest is refused).
    The manifest is read and checked by the runtime's own `load_manifest` first."""
    from edge.manifest import MANIFEST, ManifestError, load_manifest

    try:
        manifest = load_manifest(Path(artifacts))
    except ManifestError as exc:
        raise CodegenError(str(exc)) from None
    path = manifest.root / MANIFEST
    return write_text_atomic(path, json.dumps({**manifest.data, "firmware": costs}, indent=2))
