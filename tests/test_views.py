"""`train.trainer.ViewCache`: which augmented view each epoch trains on, what is built ahead, what is kept, and when
training leaves the other core to the builder: cycling over `--views`, or a fresh view every E epochs."""

from __future__ import annotations

import threading

import pytest

from train.trainer import ViewCache


class Built:
    """A stand-in for `build_view` that records which views were asked for (the view is its own number)."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, k: int, show: bool) -> int:
        with self.lock:
            self.asked.append(k)
        return k


def walk(cache: ViewCache, epochs: int) -> list[int]:
    got = [cache.get(e) for e in range(epochs)]
    cache.close()
    return got


def test_cycling_views_come_back() -> None:
    built = Built()
    cache = ViewCache(built, 3, progress=False)  # type: ignore[arg-type]
    assert walk(cache, 8) == [0, 1, 2, 0, 1, 2, 0, 1]
    assert sorted(set(built.asked)) == [0, 1, 2] and len(built.asked) == 3  # each built once, then cached
    assert [cache.building(e) for e in range(4)] == [True, True, False, False]


@pytest.mark.parametrize("epochs", [10, 12])
def test_fresh_views_never_come_back(epochs: int) -> None:
    built = Built()
    cache = ViewCache(built, 3, progress=False, every=4, epochs=epochs)  # type: ignore[arg-type]
    got = walk(cache, epochs)
    assert got == [e // 4 for e in range(epochs)]  # a view for 4 epochs in a row, whatever --views says
    assert built.asked == sorted(set(got))  # each built once, in order, and none beyond the last epoch's
    # one training thread while a later view is still to be built, all threads for the last view's epochs
    last = (epochs - 1) // 4
    assert [cache.building(e) for e in range(epochs)] == [e // 4 < last for e in range(epochs)]


def test_fresh_views_are_dropped_after_their_epochs() -> None:
    built = Built()
    cache = ViewCache(built, 3, progress=False, every=2, epochs=20)  # type: ignore[arg-type]
    for e in range(9):
        cache.get(e)
        kept = set(cache._futures)  # noqa: SLF001 (what the cache holds is the point of this test)
        assert kept <= {e // 2, e // 2 + 1}, kept
    cache.close()
