"""The one audio front end, shared by training, export, the Raspberry Pi runtime and the firmware.

`FrontendConfig` is the single definition of the front end's parameters (like TFLite Micro's
`FeatureParams`). Training computes features from it, `export/` writes it into `manifest.json` and into
the firmware's generated settings header, and the runtimes refuse a model whose manifest disagrees.

The implementation is TFLite Micro's audio front end (window, FFT, mel-like filterbank, noise reduction,
PCAN gain control, log scale) through the `pymicro-features` package on the host and the Pi, and the same
C sources in the firmware. The front end emits unsigned 16-bit integers per channel; the float feature
the float model sees is that integer times `FEATURE_SCALE` (exactly 5/128, so the float is exact).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

#: Float feature = uint16 front-end output * FEATURE_SCALE (the value pymicro-features applies).
FEATURE_SCALE = 0.0390625


class FrontendConfigError(ValueError):
    """The requested front-end configuration cannot be honoured."""


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the TFLite Micro audio front end.

    Field names mirror TFLite Micro's `FrontendConfig` C structs so the generated C header is a direct
    transcription.
    """

    #: Input sample rate in Hz (mono, 16-bit PCM).
    sample_rate: int = 16000
    #: Analysis window length in milliseconds (Hann window).
    window_ms: int = 30
    #: Hop between feature frames in milliseconds: one model step per hop.
    hop_ms: int = 10
    #: Number of filterbank channels = feature dimension.
    num_channels: int = 40
    #: Lowest filterbank band edge in Hz.
    lower_band_limit_hz: float = 125.0
    #: Highest filterbank band edge in Hz.
    upper_band_limit_hz: float = 7500.0
    #: Noise estimate smoothing: fixed-point bits.
    noise_smoothing_bits: int = 10
    #: Noise estimate smoothing coefficient for even channels.
    noise_even_smoothing: float = 0.025
    #: Noise estimate smoothing coefficient for odd channels.
    noise_odd_smoothing: float = 0.06
    #: Fraction of the signal always kept after noise subtraction.
    noise_min_signal_remaining: float = 0.05
    #: Per-channel energy normalisation (PCAN) on/off.
    pcan_enable: bool = True
    #: PCAN strength (exponent).
    pcan_strength: float = 0.95
    #: PCAN offset.
    pcan_offset: float = 80.0
    #: PCAN gain fixed-point bits.
    pcan_gain_bits: int = 21
    #: Log compression on/off.
    log_enable: bool = True
    #: Right shift applied after the log.
    log_scale_shift: int = 6

    @property
    def window_samples(self) -> int:
        return self.sample_rate * self.window_ms // 1000

    @property
    def hop_samples(self) -> int:
        return self.sample_rate * self.hop_ms // 1000

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FrontendConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted(names - set(data))
        if unknown or missing:
            raise FrontendConfigError(
                f"front-end config fields do not match this version: unknown {unknown}, missing {missing}"
            )
        return cls(**{name: data[name] for name in names})

    def check_supported_by_pymicro_features(self) -> None:
        """Fail loudly if pymicro-features cannot compute this configuration.

        pymicro-features 2.x compiles its configuration in; it equals this dataclass's defaults. Any other
        value would be silently ignored by the library, so it is refused here instead.
        """
        default = FrontendConfig()
        different = [
            f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)
        ]
        if different:
            raise FrontendConfigError(
                "pymicro-features only implements the default front end; unsupported values for: "
                + ", ".join(different)
            )


def _load_micro_frontend():
    try:
        from pymicro_features import MicroFrontend
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise FrontendConfigError(
            "pymicro-features is not installed (pip install pymicro-features)"
        ) from exc
    return MicroFrontend


class StreamingFrontend:
    """Feed int16 PCM chunks of any size; get uint16 feature frames.

    One frame is produced per hop once the first full window has been seen. The output depends only on
    the concatenated samples, never on how they were split into chunks.
    """

    def __init__(self, config: FrontendConfig | None = None) -> None:
        self.config = config or FrontendConfig()
        self.config.check_supported_by_pymicro_features()
        self._frontend = _load_micro_frontend()()
        self._pending = np.zeros(0, dtype=np.int16)

    def reset(self) -> None:
        self._frontend.reset()
        self._pending = np.zeros(0, dtype=np.int16)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Return the new frames as uint16 [n_frames, num_channels]."""
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16:
            raise TypeError(f"front end expects int16 PCM, got {pcm.dtype}")
        hop = self.config.hop_samples
        buffered = np.concatenate([self._pending, pcm.reshape(-1)])
        n_hops = len(buffered) // hop
        frames = []
        for i in range(n_hops):
            out = self._frontend.process_samples(buffered[i * hop : (i + 1) * hop].tobytes())
            if out.features:
                frames.append(out.features)
        self._pending = buffered[n_hops * hop :].copy()
        if not frames:
            return np.zeros((0, self.config.num_channels), dtype=np.uint16)
        return _to_u16(frames)


def _to_u16(frames: list) -> np.ndarray:
    """pymicro-features returns uint16 * 5/128 as floats; the products are exact, so multiplying by 128/5
    lands within 1e-12 of the integer and `+ 0.5` then truncation inverts it exactly."""
    return (np.asarray(frames, dtype=np.float64) * (1.0 / FEATURE_SCALE) + 0.5).astype(np.uint16)


def compute_features(pcm: np.ndarray, config: FrontendConfig | None = None) -> np.ndarray:
    """Offline features of a whole int16 signal (a fresh front end, same as streaming it)."""
    return StreamingFrontend(config).process(pcm)


def features_to_float(frames: np.ndarray) -> np.ndarray:
    """uint16 front-end output -> the float32 features the float model consumes."""
    return frames.astype(np.float32) * np.float32(FEATURE_SCALE)
