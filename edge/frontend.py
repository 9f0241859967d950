"""The one audio front end, shared by training, export, the Raspberry Pi runtime and the firmware.

`FrontendConfig` is the single definition of the front end's parameters (like TFLite Micro's
`FeatureParams`). Training computes features from it, `export/` writes it into `manifest.json` and into
the firmware's generated settings header, and the runtimes refuse a model whose manifest disagrees.

The implementation is TFLite Micro's audio front end (window, FFT, mel-like filterbank, noise reduction,
PCAN gain control, log scale). The firmware compiles its C sources; the Python runtimes load the same
sources built the same way as a shared library (`make frontend-lib`, firmware/src/kws_frontend_lib.c),
or, where that is not built, use the `pymicro-features` wheel (the same code, but the aarch64 wheel's
compiler flags change rare values, so the library is the one to use on a Raspberry Pi). The front end
emits unsigned 16-bit integers per channel; the float feature the float model sees is that integer times `FEATURE_SCALE` (exactly 5/128, so the float is exact).
"""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import functools
import platform
import typing
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edge.errors import UserError

#: Float feature = uint16 front-end output * FEATURE_SCALE (the value pymicro-features applies).
FEATURE_SCALE = 0.0390625


class FrontendConfigError(UserError, ValueError):
    """The requested front-end configuration or backend cannot be honoured."""


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

    def frames_in(self, seconds: float) -> int:
        """Frames the front end emits for `seconds` of audio (one per hop once the first window is full)."""
        samples = int(round(seconds * self.sample_rate))
        return max(0, (samples - self.window_samples) // self.hop_samples + 1)

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


def config_field_types() -> dict[str, type]:
    """`FrontendConfig`'s fields in declaration order, each with its type (int, float or bool): the one list that
    C `struct kws_fe_params` (firmware/include/kws_fe_params.h; `_Params` is derived from it), the generated
    kws_frontend_config.h (`export.codegen.settings`) and the firmware's initialiser of the struct from its macros
    follow (tests parse the C sources)."""
    hints = typing.get_type_hints(FrontendConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(FrontendConfig)}


class FrontendBackend(enum.Enum):
    """Which build of the TFLM front end computes the features (the results are the same by design)."""

    #: The library if it is built for this machine, else pymicro-features.
    AUTO = "auto"
    #: `libkws_frontend` (`make frontend-lib`): the firmware's sources and flags, any configuration.
    LIBRARY = "library"
    #: The pymicro-features wheel: default configuration only; on aarch64 its compiler's fused
    #: multiply-adds change rare feature values (README, "Raspberry Pi").
    PYMICRO = "pymicro-features"


def parse_frontend_backend(text: str) -> FrontendBackend:
    try:
        return FrontendBackend(text)
    except ValueError:
        choices = ", ".join(b.value for b in FrontendBackend)
        raise FrontendConfigError(f"unknown front end '{text}' (choose from {choices})") from None


#: Folder of the built libraries, one per machine: libkws_frontend.<platform.machine()>.so
LIBRARY_DIR = Path(__file__).parent / "native"
#: The C library's interface version (KWS_FE_LIB_ABI in firmware/src/kws_frontend_lib.c).
LIBRARY_ABI = 1


def library_path(machine: str | None = None) -> Path:
    """Where `make frontend-lib` puts the library for `machine` (default: this one)."""
    return LIBRARY_DIR / f"libkws_frontend.{machine or platform.machine()}.so"


#: The C type of each kind of `FrontendConfig` field in `struct kws_fe_params` (a bool is an int32 flag).
_CTYPES: dict[type, type] = {int: ctypes.c_int32, float: ctypes.c_float, bool: ctypes.c_int32}


class _Params(ctypes.Structure):
    """`struct kws_fe_params` (firmware/include/kws_fe_params.h): one field per `FrontendConfig` field, same names, order and kinds (derived from the
    dataclass; a test parses the C struct)."""

    _fields_ = [(name, _CTYPES[kind]) for name, kind in config_field_types().items()]

    @classmethod
    def from_config(cls, config: FrontendConfig) -> "_Params":
        return cls(**{name: getattr(config, name) for name, _ in cls._fields_})


@functools.lru_cache(maxsize=None)
def load_library(path: Path) -> ctypes.CDLL:
    """Load and check a built front-end library; FrontendConfigError if it is unusable."""
    if not path.is_file():
        raise FrontendConfigError(f"front-end library {path} not found (build it: make frontend-lib)")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise FrontendConfigError(f"cannot load front-end library {path}: {exc}") from None
    lib.kws_fe_abi_version.restype = ctypes.c_int
    lib.kws_fe_params_size.restype = ctypes.c_size_t
    if lib.kws_fe_abi_version() != LIBRARY_ABI or lib.kws_fe_params_size() != ctypes.sizeof(_Params):
        raise FrontendConfigError(f"front-end library {path} is from another version: rebuild it (make frontend-lib)")
    lib.kws_fe_create.restype = ctypes.c_void_p
    lib.kws_fe_create.argtypes = [ctypes.POINTER(_Params)]
    lib.kws_fe_destroy.restype = None
    lib.kws_fe_destroy.argtypes = [ctypes.c_void_p]
    lib.kws_fe_reset.restype = None
    lib.kws_fe_reset.argtypes = [ctypes.c_void_p]
    lib.kws_fe_process.restype = ctypes.c_size_t
    # PCM goes in as bytes (c_char_p passes the bytes object's own buffer): ndarray.ctypes costs ~3 us.
    lib.kws_fe_process.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
    return lib


def resolve_backend(backend: FrontendBackend) -> FrontendBackend:
    """AUTO -> LIBRARY when it is built for this machine, else PYMICRO."""
    if backend is FrontendBackend.AUTO:
        return FrontendBackend.LIBRARY if library_path().is_file() else FrontendBackend.PYMICRO
    return backend


def backend_note(backend: FrontendBackend) -> str | None:
    """One line for the user when the features may differ from training and the firmware, else None."""
    if backend is FrontendBackend.PYMICRO and platform.machine() not in ("x86_64", "AMD64"):
        return (f"note: front end from the pymicro-features wheel; on {platform.machine()} it differs from "
                "the x86 and firmware features in rare values. For bit-exact features: make frontend-lib")
    return None


class _LibraryFrontend:
    """One `kws_fe` instance of the C library; it buffers partial hops itself."""

    def __init__(self, config: FrontendConfig) -> None:
        self._lib = load_library(library_path())
        handle = self._lib.kws_fe_create(ctypes.byref(_Params.from_config(config)))
        if not handle:
            raise FrontendConfigError(f"the front-end library cannot build this configuration: {config}")
        self._handle = handle
        self._finalizer = weakref.finalize(self, self._lib.kws_fe_destroy, handle)
        self._channels = config.num_channels
        self._hop = config.hop_samples
        self._process = self._lib.kws_fe_process
        self._grow(2)

    def _grow(self, frames: int) -> None:
        self._out = np.empty((frames, self._channels), dtype=np.uint16)
        self._out_address = self._out.ctypes.data

    def reset(self) -> None:
        self._lib.kws_fe_reset(self._handle)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        # Fewer than one hop is pending in C, so n // hop + 1 frames always fit.
        capacity = len(pcm) // self._hop + 1
        if capacity > len(self._out):
            self._grow(capacity)
        n = self._process(self._handle, pcm.tobytes(), len(pcm), self._out_address, len(self._out))
        return self._out[:n].copy()


class _PymicroFrontend:
    """pymicro-features, fed one hop per call (it has no buffering of its own)."""

    def __init__(self, config: FrontendConfig) -> None:
        config.check_supported_by_pymicro_features()
        try:
            from pymicro_features import MicroFrontend
        except ImportError:
            raise FrontendConfigError(
                "no front end: pymicro-features is not installed and the front-end library is not built "
                "(pip install pymicro-features, or make frontend-lib)"
            ) from None
        self._frontend = MicroFrontend()
        self._channels = config.num_channels
        self._hop = config.hop_samples
        self._pending = np.zeros(0, dtype=np.int16)

    def reset(self) -> None:
        self._frontend.reset()
        self._pending = np.zeros(0, dtype=np.int16)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        hop = self._hop
        buffered = np.concatenate([self._pending, pcm])
        n_hops = len(buffered) // hop
        frames = []
        for i in range(n_hops):
            out = self._frontend.process_samples(buffered[i * hop : (i + 1) * hop].tobytes())
            if out.features:
                frames.append(out.features)
        self._pending = buffered[n_hops * hop :].copy()
        if not frames:
            return np.zeros((0, self._channels), dtype=np.uint16)
        return _to_u16(frames)


class StreamingFrontend:
    """Feed int16 PCM chunks of any size; get uint16 feature frames.

    One frame is produced per hop once the first full window has been seen. The output depends only on
    the concatenated samples, never on how they were split into chunks, nor on the backend.
    """

    def __init__(self, config: FrontendConfig | None = None,
                 backend: FrontendBackend = FrontendBackend.AUTO) -> None:
        self.config = config or FrontendConfig()
        self.backend = resolve_backend(backend)
        impl = _LibraryFrontend if self.backend is FrontendBackend.LIBRARY else _PymicroFrontend
        self._impl = impl(self.config)

    def reset(self) -> None:
        self._impl.reset()

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Return the new frames as uint16 [n_frames, num_channels]."""
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16:
            raise TypeError(f"front end expects int16 PCM, got {pcm.dtype}")
        return self._impl.process(pcm.reshape(-1))


def _to_u16(frames: list) -> np.ndarray:
    """pymicro-features returns uint16 * 5/128 as floats; the products are exact, so multiplying by 128/5
    lands within 1e-12 of the integer and `+ 0.5` then truncation inverts it exactly."""
    return (np.asarray(frames, dtype=np.float64) * (1.0 / FEATURE_SCALE) + 0.5).astype(np.uint16)


def compute_features(pcm: np.ndarray, config: FrontendConfig | None = None,
                     backend: FrontendBackend = FrontendBackend.AUTO) -> np.ndarray:
    """Offline features of a whole int16 signal (a fresh front end, same as streaming it)."""
    return StreamingFrontend(config, backend).process(pcm)


def features_to_float(frames: np.ndarray) -> np.ndarray:
    """uint16 front-end output -> the float32 features the float model consumes."""
    return frames.astype(np.float32) * np.float32(FEATURE_SCALE)
