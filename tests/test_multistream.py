"""One interpreter serves several streams: the runner owns the state (`ModelState`), so swapping it per stream
gives every stream exactly the posteriors it gets from an interpreter of its own (README, "Export and the
int8 state")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.audio import load_wav
from edge.frontend import FrontendConfig, StreamingFrontend
from edge.interpreters import Runtime
from edge.manifest import load_manifest
from edge.model import StreamingModel


def _features(wav: Path, fe: FrontendConfig, start_s: float) -> np.ndarray:
    pcm = load_wav(wav, fe.sample_rate)
    return StreamingFrontend(fe).process(pcm[int(start_s * fe.sample_rate):])


@pytest.mark.parametrize("variant,runtime", [("int8", Runtime.AUTO), ("int8", Runtime.TFLM), ("float32", Runtime.AUTO)])
def test_one_interpreter_serves_three_streams_bit_exactly(artifacts: Path, stream_wav: Path, variant: str,
                                                          runtime: Runtime) -> None:
    manifest = load_manifest(artifacts)
    fe = manifest.frontend
    # three different streams (different starting points in real speech), of different lengths
    streams = [_features(stream_wav, fe, s) for s in (0.0, 1.7, 4.3)]
    alone = []
    for feats in streams:
        own = StreamingModel(manifest, variant, runtime)
        alone.append(np.array([own.step_raw(f) for f in feats]))
    shared = StreamingModel(manifest, variant, runtime)
    states = [shared.initial_state() for _ in streams]
    interleaved: list[list[np.ndarray]] = [[] for _ in streams]
    for t in range(max(len(f) for f in streams)):
        for k, feats in enumerate(streams):
            if t >= len(feats):
                continue
            shared.state = states[k]
            interleaved[k].append(shared.step_raw(feats[t]))
            states[k] = shared.state
    for k in range(len(streams)):
        got = np.array(interleaved[k])
        assert got.shape == alone[k].shape and len(got) > 100
        assert np.array_equal(got, alone[k]), f"stream {k} differs when it shares the interpreter"
    # the streams really differ (otherwise sharing could not mix anything up)
    n = min(len(a) for a in alone)
    assert not np.array_equal(alone[0][:n], alone[1][:n])
