"""The one front end: a single dataclass, streaming == offline, chunk-size invariance, golden frames, and
the two builds of it (our library, the pymicro-features wheel) equal bit for bit."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_wav
from edge.frontend import (
    FEATURE_SCALE,
    FrontendBackend,
    FrontendConfig,
    FrontendConfigError,
    StreamingFrontend,
    compute_features,
    config_field_types,
    features_to_float,
    load_library,
    parse_frontend_backend,
    resolve_backend,
)

DATA = Path(__file__).parent / "data"
GOLDEN = ("tone_sweep", "noise", "speech_yes")
BACKENDS = (FrontendBackend.LIBRARY, FrontendBackend.PYMICRO)


@pytest.fixture(params=BACKENDS, ids=lambda b: b.value)
def backend(request: pytest.FixtureRequest, frontend_lib: Path) -> FrontendBackend:
    return request.param


@pytest.fixture(scope="module")
def real_clip(sc_dir: Path) -> np.ndarray:
    wav = sorted((sc_dir / "yes").glob("*.wav"))[0]
    return load_wav(wav, 16000)


@pytest.mark.parametrize("chunk", [1, 7, 160, 4000])
def test_chunk_size_invariance(real_clip: np.ndarray, chunk: int, backend: FrontendBackend) -> None:
    offline = compute_features(real_clip, backend=backend)
    fe = StreamingFrontend(backend=backend)
    parts = [fe.process(real_clip[i : i + chunk]) for i in range(0, len(real_clip), chunk)]
    assert np.array_equal(np.concatenate(parts), offline)


def test_frame_count_and_range(real_clip: np.ndarray) -> None:
    cfg = FrontendConfig()
    frames = compute_features(real_clip)
    assert frames.shape == (1 + (len(real_clip) - cfg.window_samples) // cfg.hop_samples, cfg.num_channels)
    assert frames.dtype == np.uint16 and frames.max() > 0


def test_reset_restores_initial_behaviour(real_clip: np.ndarray, backend: FrontendBackend) -> None:
    fe = StreamingFrontend(backend=backend)
    first = fe.process(real_clip)
    fe.process(real_clip)  # adapts noise estimate and PCAN
    fe.reset()
    assert np.array_equal(fe.process(real_clip), first)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_frames(name: str, backend: FrontendBackend) -> None:
    pcm = load_wav(DATA / f"{name}.wav", 16000)
    expected = np.load(DATA / f"{name}.features.npy")
    assert np.array_equal(compute_features(pcm, backend=backend), expected)


def test_library_equals_pymicro_features_on_real_speech(sc_dir: Path, frontend_lib: Path) -> None:
    """Two hundred real clips back to back (about 40,000 frames, never reset): every value equal."""
    clips = sorted(sc_dir.glob("*/*.wav"))[::7][:200]
    pcm = np.concatenate([load_wav(c, 16000) for c in clips])
    lib = compute_features(pcm, backend=FrontendBackend.LIBRARY)
    wheel = compute_features(pcm, backend=FrontendBackend.PYMICRO)
    assert lib.shape == wheel.shape and len(lib) > 10_000
    assert np.array_equal(lib, wheel), f"{np.count_nonzero(lib != wheel)} values differ"


def test_auto_prefers_the_library(frontend_lib: Path) -> None:
    assert resolve_backend(FrontendBackend.AUTO) is FrontendBackend.LIBRARY
    assert StreamingFrontend().backend is FrontendBackend.LIBRARY


def test_library_instances_are_independent(real_clip: np.ndarray, frontend_lib: Path) -> None:
    a = StreamingFrontend(backend=FrontendBackend.LIBRARY)
    b = StreamingFrontend(backend=FrontendBackend.LIBRARY)
    first = a.process(real_clip)
    b.process(real_clip[::-1].copy())
    assert np.array_equal(a.process(real_clip[:0]), np.zeros((0, 40), dtype=np.uint16))
    a.reset()
    assert np.array_equal(a.process(real_clip), first)


def test_library_struct_mirrors_the_config(frontend_lib: Path) -> None:
    """ctypes' struct has exactly FrontendConfig's fields (the C side checks the size at load)."""
    from edge.frontend import _Params

    assert [name for name, _ in _Params._fields_] == [f.name for f in dataclasses.fields(FrontendConfig)]
    load_library(frontend_lib)  # raises if the C struct's size or the ABI version differ


FIRMWARE_SRC = Path(__file__).resolve().parents[1] / "firmware" / "src"


def _c_function_body(source: str, name: str) -> str:
    """The body of `static void name(...) { ... }` (a function whose closing brace starts a line)."""
    match = re.search(rf"static void {name}\([^)]*\) \{{\n(.*?)\n\}}", source, re.S)
    assert match, f"no function {name}"
    return match.group(1)


def test_c_copies_of_the_config_follow_the_dataclass() -> None:
    """The C sources spell the configuration out by hand: the library's `struct kws_fe_params` (fields, order and
    C types of `edge.frontend.config_field_types`, which ctypes mirrors) and the two `fill_config` functions, the
    library's from that struct and the firmware's from the generated KWS_FE_* macros (`export.codegen`), must set
    the same TFLM members from the same fields, every field but the sample rate, which goes to
    FrontendPopulateState."""
    from export.codegen.settings import frontend_fields

    lib = (FIRMWARE_SRC / "kws_frontend_lib.c").read_text()
    firmware = (FIRMWARE_SRC / "kws_frontend.c").read_text()
    struct = re.search(r"struct kws_fe_params \{(.*?)\};", lib, re.S)
    assert struct
    c_fields = re.findall(r"^\s*(\w+) (\w+);", struct.group(1), re.M)
    assert c_fields == [("float" if kind is float else "int32_t", name) for name, kind in config_field_types().items()]
    from_struct = re.findall(r"cfg->([\w.]+) = (?:\(\w+\))?p->(\w+);", _c_function_body(lib, "fill_config"))
    from_macros = re.findall(r"cfg->([\w.]+) = (\w+);", _c_function_body(firmware, "fill_config"))
    macro = {name: c_macro for name, c_macro, _ in frontend_fields()}
    assert sorted(name for _, name in from_struct) == sorted(set(config_field_types()) - {"sample_rate"})
    assert from_macros == [(member, macro[name]) for member, name in from_struct]
    assert "FrontendPopulateState(&cfg, &fe->state, p->sample_rate)" in lib
    assert f"FrontendPopulateState(&cfg, &g_state, {macro['sample_rate']})" in firmware


def test_library_honours_its_configuration(real_clip: np.ndarray, frontend_lib: Path) -> None:
    """Parameters reach the C code (pymicro-features compiles the defaults in and refuses others)."""
    lib = FrontendBackend.LIBRARY
    assert compute_features(real_clip, FrontendConfig(num_channels=32), lib).shape[1] == 32
    default = compute_features(real_clip, backend=lib)
    assert not np.array_equal(compute_features(real_clip, FrontendConfig(pcan_enable=False), lib), default)
    with pytest.raises(FrontendConfigError, match="cannot build"):
        StreamingFrontend(FrontendConfig(num_channels=0), lib)


def test_unusable_library_is_one_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "libkws_frontend.x86_64.so"
    bogus.write_text("not a library")
    with pytest.raises(FrontendConfigError, match="cannot load"):
        load_library(bogus)
    with pytest.raises(FrontendConfigError, match="not found"):
        load_library(tmp_path / "missing.so")
    with pytest.raises(FrontendConfigError, match="unknown front end"):
        parse_frontend_backend("fast")


def test_float_features_are_exact() -> None:
    u = np.arange(0, 1024, dtype=np.uint16)
    f = features_to_float(u)
    assert np.array_equal(np.rint(f.astype(np.float64) / FEATURE_SCALE).astype(np.uint16), u)


def test_pymicro_features_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(FrontendConfigError, match="num_channels"):
        StreamingFrontend(FrontendConfig(num_channels=32), FrontendBackend.PYMICRO)


def test_config_is_frozen_and_round_trips() -> None:
    cfg = FrontendConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hop_ms = 20  # type: ignore[misc]
    assert FrontendConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(FrontendConfigError):
        FrontendConfig.from_dict({**cfg.to_dict(), "extra": 1})


def test_rejects_non_int16(backend: FrontendBackend) -> None:
    with pytest.raises(TypeError):
        StreamingFrontend(backend=backend).process(np.zeros(160, dtype=np.float32))


def test_fallback_to_the_wheel_is_announced_off_x86(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Pi without the library, the runtime says its features may differ (and how to fix it)."""
    from edge import frontend

    monkeypatch.setattr(frontend.platform, "machine", lambda: "aarch64")
    note = frontend.backend_note(FrontendBackend.PYMICRO)
    assert note is not None and "aarch64" in note and "make frontend-lib" in note
    assert frontend.backend_note(FrontendBackend.LIBRARY) is None
    monkeypatch.setattr(frontend.platform, "machine", lambda: "x86_64")
    assert frontend.backend_note(FrontendBackend.PYMICRO) is None
