"""The one way `export/` imports TensorFlow: same numerics on every CPU, and no start-up lines on stderr.

* `TF_ENABLE_ONEDNN_OPTS=0` (always, whatever the caller's environment says): with oneDNN on, TensorFlow
  picks CPU-dependent kernels and its float round-off changes with the host (TensorFlow says so itself at
  start-up). The export rebuilds the model in TensorFlow, calibrates on it and derives the int8 parameters
  from it, so oneDNN would make the same training run give different artifacts on different machines. The
  variable is read once, when TensorFlow's native library loads, so it must be set before the first import.
* `TF_CPP_MIN_LOG_LEVEL=3` unless the caller set it.
* TensorFlow 2.21's native code writes to file descriptor 2 while it loads, whatever the log level (on
  AVX-512/AMX hosts: "All log messages before absl::InitializeLog() ..." and "oneDNN custom operations are
  on ..."), which would break the project's rule that an error is one line on stderr. During the import,
  fd 2 is pointed at a temporary file; afterwards known start-up noise (`is_noise`) is dropped and every
  other line is written back to stderr, so real errors still show.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from types import ModuleType

from edge.quiet import filtered_fd2

_NOISE = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    # absl INFO and WARNING lines (before absl is initialised the time reads "00:00:<epoch seconds>":
    # "I0000 00:00:1796183094.348115    4620 port.cc:153] ..."); ERROR and FATAL lines are kept.
    re.compile(r"[IW]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [\w.\-]+:\d+\] .*"),
    # second line of cpu_feature_guard.cc's INFO message
    re.compile(r"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."),
)


def is_noise(line: str) -> bool:
    return any(p.fullmatch(line.rstrip("\r\n")) for p in _NOISE)


def quiet_import(name: str) -> ModuleType:
    """`importlib.import_module(name)` with its fd-2 output filtered through `is_noise`."""
    if name in sys.modules:
        return sys.modules[name]
    with filtered_fd2(is_noise):
        return importlib.import_module(name)


def import_tensorflow(name: str = "tensorflow") -> ModuleType:
    """`tensorflow` (or one of its modules, e.g. "tensorflow.lite.tools.flatbuffer_utils"), imported quietly
    with oneDNN off; see the module docstring."""
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = quiet_import("tensorflow")
    return tf if name == "tensorflow" else quiet_import(name)
