"""Type stub of the compiled sampling kernel (_kernel.c)."""

from collections.abc import Sequence

import numpy as np

def fill(out: np.ndarray, kind: int, key0: int, key1: int, start: int, params: Sequence[float], /) -> None: ...
def words(out: np.ndarray, key0: int, key1: int, start: int, substream: int, /) -> None: ...
