"""The TFLite Micro arena search survives an interpreter that crashes on too small an arena."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import tflm_arena

#: a stand-in for the tflite-micro probe: a model that needs 5,000 bytes, and an interpreter that dies
#: (like the real one did on a Jordan-320 model) instead of failing cleanly below 3,000 bytes
_FAKE_PROBE = r'''
import os
def _probe(n):
    if n < 3000:
        os._exit(139)
    return n >= 5000
'''


def test_a_crashing_probe_counts_as_too_small(monkeypatch: pytest.MonkeyPatch) -> None:
    child = tflm_arena._CHILD.replace("from tflite_micro.python.tflite_micro import runtime", _FAKE_PROBE)
    child = child.replace("runtime.Interpreter.from_bytes(model, arena_size=n)\n        ok = True",
                          "ok = _probe(n)")
    assert child != tflm_arena._CHILD and "_probe(n)" in child
    monkeypatch.setattr(tflm_arena, "_CHILD", child)
    assert tflm_arena.tflm_arena_bytes(b"model") == 5008  # the first 16-byte step at or above 5,000


def test_the_real_interpreter_allocates_at_the_size_found(artifacts: Path) -> None:
    from tflite_micro.python.tflite_micro import runtime

    model = (artifacts / "model_int8.tflite").read_bytes()
    n = tflm_arena.tflm_arena_bytes(model)
    assert n is not None and n % tflm_arena.STEP == 0
    runtime.Interpreter.from_bytes(model, arena_size=n)
    with pytest.raises((RuntimeError, ValueError)):
        runtime.Interpreter.from_bytes(model, arena_size=n - tflm_arena.STEP)
