"""The activation arena: one static buffer, tensor offsets planned from tensor lifetimes."""

from __future__ import annotations

from dataclasses import dataclass

from export.codegen.errors import CodegenError
from export.codegen.graph import Graph


ARENA_ALIGNMENT = 4


@dataclass(frozen=True)
class ArenaPlan:
    """Byte offset of every arena tensor, and the arena's size (a multiple of `ARENA_ALIGNMENT`)."""

    offsets: dict[int, int]
    size: int


def lifetimes(graph: Graph) -> dict[int, tuple[int, int]]:
    """[first op writing, last op reading] for every tensor that lives in the arena."""
    graph_inputs = set(graph.inputs)
    spans: dict[int, list[int]] = {}
    for op in graph.ops:
        for t in op.outputs:
            spans.setdefault(t, [op.index, op.index])
        for t in op.inputs:
            if t < 0 or graph.tensors[t].is_constant or t in graph_inputs:
                continue
            if t not in spans:
                raise CodegenError(f"tensor '{graph.tensors[t].name}' is read before it is written")
            spans[t][1] = max(spans[t][1], op.index)
    end = len(graph.ops)
    for t in graph.outputs:
        if t in graph_inputs:
            raise CodegenError(f"model output '{graph.tensors[t].name}' is also a model input")
        spans[t][1] = end  # outputs are read after the last operator
    return {t: (a, b) for t, (a, b) in spans.items()}


def plan_arena(graph: Graph) -> ArenaPlan:
    """Greedy first-fit placement: tensors whose lifetimes overlap never share bytes.

    An operator's inputs and outputs overlap in time (the op reads while it writes), so no kernel
    ever runs in place.
    """
    spans = lifetimes(graph)
    order = sorted(spans, key=lambda t: (-graph.tensors[t].size, spans[t][0]))
    placed: list[tuple[int, int, int]] = []  # (offset, end, tensor)
    offsets: dict[int, int] = {}
    for t in order:
        size = graph.tensors[t].size
        first, last = spans[t]
        busy = sorted(
            (off, end) for off, end, other in placed if not (spans[other][1] < first or last < spans[other][0])
        )
        candidate = 0
        for off, end in busy:
            if candidate + size <= off:
                break
            candidate = max(candidate, _align(end))
        offsets[t] = candidate
        placed.append((candidate, candidate + size, t))
    total = max((end for _, end, _ in placed), default=0)
    return ArenaPlan(offsets=offsets, size=_align(total))


def _align(n: int) -> int:
    return (n + ARENA_ALIGNMENT - 1) // ARENA_ALIGNMENT * ARENA_ALIGNMENT
