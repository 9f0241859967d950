"""The code generator's errors: a model or configuration it cannot turn into firmware C code."""

from __future__ import annotations


class CodegenError(ValueError):
    """The model (or the configuration) cannot be turned into firmware C code."""


class QuantizationError(CodegenError):
    """A tensor's quantization cannot be handled the way TFLite Micro would handle it."""
