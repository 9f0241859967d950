"""Quantization arithmetic shared by the Pi runtime, the export and (as a specification) the firmware.

All conversions round to nearest and saturate; none truncates.
"""

from __future__ import annotations

import numpy as np

from edge.frontend import FEATURE_SCALE

_LIMITS = {"int8": (-128, 127), "int16": (-32768, 32767)}


def limits(dtype: str) -> tuple[int, int]:
    return _LIMITS[dtype]


#: The one definition of how a uint16 front-end frame becomes a quantized model input. The firmware
#: reproduces it exactly with an integer threshold table generated from this function (export/codegen).
FEATURE_QUANTIZATION_RULE = "clip(round_half_even(float32(u * 0.0390625) / float32(scale)) + zero_point)"


def quantize_features(u16: np.ndarray, scale: float, zero_point: int, dtype: str = "int8") -> np.ndarray:
    """uint16 front-end frames -> int8/int16 model input (see FEATURE_QUANTIZATION_RULE)."""
    lo, hi = limits(dtype)
    features = np.asarray(u16, dtype=np.uint16).astype(np.float32) * np.float32(FEATURE_SCALE)
    q = np.round(features / np.float32(scale)) + np.float32(zero_point)
    return np.clip(q, lo, hi).astype(np.int8 if dtype == "int8" else np.int16)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """Float -> integer with round-half-away-from-zero and saturation (TFLite's convention)."""
    lo, hi = limits(dtype)
    v = np.asarray(x, dtype=np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point
    return np.clip(q, lo, hi).astype(np.int8 if dtype == "int8" else np.int16)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, dtype=np.float64) - zero_point) * scale
