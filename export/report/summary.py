"""Summaries of the report's JSON: the one-line verdict of a model (what int8 costs against the float
reference) and the rows of the comparison table."""

from __future__ import annotations

from typing import Any


def _frr1(entry: dict[str, Any] | None) -> float | None:
    """A variant's FRR at 1 FA/h, None when it has none (or there is no variant)."""
    if not entry:
        return None
    p = entry["frr_at_fa"].get("1.0")
    return None if p is None else p["frr"]


def summary_line(model: dict[str, Any]) -> str:
    """'int8 costs X pp accuracy and Y pp FRR@1FA/h, saves Z KB, runs W µs/frame' (vs the float reference),
    then both variants' standard accuracy."""
    v = model["variants"]
    ref, q, f32 = v.get(model["reference"]), v.get("tflite_int8"), v.get("tflite_float32")
    if q is None or ref is None:
        return "no int8 model to summarise"
    acc = 100 * (ref["clips"]["accuracy"] - q["clips"]["accuracy"])
    fr, fq = _frr1(ref), _frr1(q)
    frr = "n/a" if fr is None or fq is None else f"{100 * (fq - fr):.2f}"
    saved = "n/a" if f32 is None else f"{(f32['size']['file_bytes'] - q['size']['file_bytes']) / 1024:.1f}"
    lat = q["latency_us"]
    us = "n/a" if not lat else f"{lat['model']['p50']:.0f}"
    return (f"int8 costs {acc:.2f} pp accuracy and {frr} pp FRR@1FA/h, saves {saved} KB, runs {us} µs/frame "
            f"(vs {ref['title']}; KB vs TFLite float32; model step p50 on {q['runtime']}); standard accuracy "
            f"{100 * q['standard']['accuracy']:.2f}% int8, {100 * ref['standard']['accuracy']:.2f}% {ref['title']}")


def comparison_rows(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row of report.json's "comparison" per model: its size, accuracy and FRR, float against int8."""
    rows = []
    for m in models:
        v = m["variants"]
        ref, q, f32 = v.get(m["reference"]), v.get("tflite_int8"), v.get("tflite_float32")
        fa, qa = (ref["clips"]["accuracy"] if ref else None), (q["clips"]["accuracy"] if q else None)
        rows.append({
            "name": m["name"], **{k: m["model"][k] for k in ("cell", "hidden", "layers", "params", "macs_per_frame")},
            "float_accuracy": fa, "int8_accuracy": qa,
            "int8_accuracy_cost_pp": None if fa is None or qa is None else 100 * (fa - qa),
            "float_standard_accuracy": ref["standard"]["accuracy"] if ref else None,
            "int8_standard_accuracy": q["standard"]["accuracy"] if q else None,
            "float_frr_at_1": _frr1(ref), "int8_frr_at_1": _frr1(q),
            "int8_bytes": q["size"]["file_bytes"] if q else None,
            "float32_bytes": f32["size"]["file_bytes"] if f32 else None,
            "tflm_arena_bytes": q["size"]["tflm_arena_bytes"] if q else None,
            "int8_model_us_p50": q["latency_us"]["model"]["p50"] if q and q["latency_us"] else None,
        })
    return rows
