"""Type stub of the compiled sampling kernel (_kernel.c)."""

from collections.abc import Sequence

import numpy as np

def words(out: np.ndarray, key0: int, key1: int, start: int, substream: int, /) -> None: ...
def fill_runs(out: np.ndarray, kind: int, key0: int, key1: int, starts: np.ndarray, length: int,
              params: Sequence[float], /) -> None: ...
