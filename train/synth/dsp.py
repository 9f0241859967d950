"""The synthesis low-pass resampler (`edge.audio`'s resampler with its own filter) and int16 rounding."""

from __future__ import annotations

import numpy as np

from edge import audio as edge_audio


#: The synthesis low-pass of `edge.audio.Resampler`: cut-off at 0.93 x the lower Nyquist rate, 48 sinc lobes of
#: that cut-off per side (48 / 0.93 lobes of the Nyquist rate, `Resampler`'s unit), Kaiser beta 8.6 (about 86 dB
#: stop-band attenuation), every filter phase with unity DC gain.
RESAMPLE_ROLLOFF = 0.93
RESAMPLE_ZERO_CROSSINGS = 48 / RESAMPLE_ROLLOFF
RESAMPLE_KAISER_BETA = 8.6


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited rational resampling of a 1-D signal: `edge.audio.resample` with the synthesis low-pass.

    With it at 22050 -> 16000 Hz the pass band is flat to about 7.0 kHz and everything above about 7.9 kHz is
    removed before it can alias. Output sample m is the input evaluated at time m / dst_rate (no delay); samples
    beyond the ends count as zero. Length: ceil(len(x) * dst_rate / src_rate). Integer input is converted to
    float without rescaling; the result is float32 unless the input is float64.
    """
    if not (isinstance(src_rate, (int, np.integer)) and isinstance(dst_rate, (int, np.integer))):
        raise ValueError("sample rates must be integers")
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"resample expects a 1-D signal, got shape {x.shape}")
    out_dtype = np.float64 if x.dtype == np.float64 else np.float32
    y = edge_audio.resample(x, int(src_rate), int(dst_rate), zero_crossings=RESAMPLE_ZERO_CROSSINGS,
                            rolloff=RESAMPLE_ROLLOFF, kaiser_beta=RESAMPLE_KAISER_BETA, unity_dc=True)
    return y.astype(out_dtype)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round and saturate to int16."""
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
