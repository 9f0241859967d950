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


FIRMWARE = Path(__file__).resolve().parents[1] / "firmware"
#: The C files that spell the front-end configuration out (relative to firmware/).
C_CONFIG_FILES = ("include/kws_fe_params.h", "src/kws_fe_params.c", "src/kws_frontend_lib.c", "src/kws_frontend.c")


def _c_function_body(source: str, signature: str) -> str:
    """The body of `signature(...) { ... }` (a function whose closing brace starts a line)."""
    match = re.search(rf"^{re.escape(signature)}\([^)]*\) \{{\n(.*?)\n\}}", source, re.S | re.M)
    assert match, f"no function {signature}"
    return match.group(1)


def check_c_config(header: str, mapping: str, lib: str, firmware: str) -> None:
    """The C side of the front-end configuration follows `edge.frontend.config_field_types`, and says each thing once.

    `struct kws_fe_params` (kws_fe_params.h) has the dataclass's fields, order and C types (ctypes' `_Params` is
    derived from the same list); `kws_fill_frontend_config` (kws_fe_params.c) sets one TFLM member from each field
    but the sample rate, which goes to FrontendPopulateState; the firmware's one initialiser of the struct
    (kws_frontend.c) takes every field, in order, from its generated KWS_FE_* macro (`export.codegen`); and both
    builds call that one function, neither with a copy of the struct or of the mapping."""
    from export.codegen.settings import frontend_fields

    fields = config_field_types()
    struct = re.search(r"struct kws_fe_params \{(.*?)\};", header, re.S)
    assert struct, "no struct kws_fe_params"
    c_fields = re.findall(r"^\s*(\w+) (\w+);", struct.group(1), re.M)
    assert c_fields == [("float" if kind is float else "int32_t", name) for name, kind in fields.items()]

    body = _c_function_body(mapping, "void kws_fill_frontend_config")
    statements = [line.strip() for line in body.splitlines() if line.strip()]
    assert statements[0] == "memset(cfg, 0, sizeof(*cfg));"
    from_struct = [re.fullmatch(r"cfg->([\w.]+) = (?:\(\w+\))?p->(\w+);", line) for line in statements[1:]]
    assert all(from_struct), f"unexpected statements in kws_fill_frontend_config: {statements}"
    members = [m.group(1) for m in from_struct]  # type: ignore[union-attr]
    assert len(set(members)) == len(members), "a TFLM member is set twice"
    assert sorted(m.group(2) for m in from_struct) == sorted(set(fields) - {"sample_rate"})  # type: ignore[union-attr]

    init = re.search(r"static const struct kws_fe_params (\w+) = \{(.*?)\};", firmware, re.S)
    assert init, "no static const struct kws_fe_params initialiser in kws_frontend.c"
    params, entries = init.group(1), [e.strip() for e in init.group(2).split(",") if e.strip()]
    assert entries == [f".{name} = {macro}" for name, macro, _ in frontend_fields()]
    assert f"kws_fill_frontend_config(&{params}, &cfg);" in firmware
    assert f"FrontendPopulateState(&cfg, &g_state, {params}.sample_rate)" in firmware
    assert "kws_fill_frontend_config(p, &cfg);" in lib
    assert "FrontendPopulateState(&cfg, &fe->state, p->sample_rate)" in lib
    for source in (lib, firmware):
        assert "cfg->" not in source and "struct kws_fe_params {" not in source, "a second copy of the configuration"


def _c_config_sources() -> dict[str, str]:
    return {name: (FIRMWARE / name).read_text() for name in C_CONFIG_FILES}


def test_c_config_follows_the_dataclass() -> None:
    check_c_config(*_c_config_sources().values())


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("include/kws_fe_params.h", "    float pcan_offset;\n", ""),  # a field missing
        ("include/kws_fe_params.h", "int32_t pcan_enable;", "float pcan_enable;"),  # a field's type
        ("src/kws_fe_params.c", "    cfg->log_scale.scale_shift = p->log_scale_shift;\n", ""),  # a field not used
        ("src/kws_fe_params.c", "= p->log_scale_shift;", "= 6;"),  # a constant instead of the field
        ("src/kws_frontend.c", "KWS_FE_PCAN_OFFSET", "KWS_FE_PCAN_STRENGTH"),  # the wrong macro
        ("src/kws_frontend.c", "    .hop_ms = KWS_FE_HOP_MS,\n", ""),  # a field left out of the initialiser
        ("src/kws_frontend.c", "k_params.sample_rate", "16000"),  # the sample rate not from the initialiser
        ("src/kws_frontend_lib.c", "kws_fill_frontend_config(p, &cfg);", "cfg.window.size_ms = 30;"),  # own mapping
    ],
)
def test_c_config_check_catches_drift(file: str, old: str, new: str) -> None:
    """The check above fails when any one C copy drifts (edits of the real sources, in memory)."""
    sources = _c_config_sources()
    assert old in sources[file]
    sources[file] = sources[file].replace(old, new)
    with pytest.raises(AssertionError):
        check_c_config(*sources.values())


def test_c_config_follows_a_changed_dataclass(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new dataclass field that the C side lacks fails the check (here: the list of fields with one more)."""
    from export.codegen import settings

    fields = {**config_field_types(), "extra_gain": float}
    monkeypatch.setattr(settings, "config_field_types", lambda: fields)
    monkeypatch.setitem(globals(), "config_field_types", lambda: fields)
    with pytest.raises(AssertionError):
        check_c_config(*_c_config_sources().values())


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
