"""Windows: every shard set concatenates to the whole tensor, slices are numpy slices, chunks stream the window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from initserve.core import SpecError, Tensor, Window, resolve, shard_box, slice_box, window_box
from initserve.core.window import split_bounds

from .conftest import SPEC_CASES


def keras(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[2:], shape[1], shape[0]) if len(shape) >= 2 else shape


LAYOUT_CASES = [(m, p, s, "torch") for m, p, s in SPEC_CASES] + [
    (m, p, keras(s), "keras") for m, p, s in SPEC_CASES if len(s) >= 2]


@pytest.mark.parametrize("method,params,shape,layout", LAYOUT_CASES)
def test_shards_concatenate_to_the_whole_tensor(method: str, params: dict[str, Any], shape: tuple[int, ...],
                                                layout: str) -> None:
    full = resolve(method, list(shape), layout=layout, **params).region()
    for dim in range(len(shape)):
        for count in (1, 2, 3, max(shape[dim] + 1, 1)):
            parts = [Window(resolve(method, list(shape), layout=layout, **params),
                            shard_box(shape, dim, index, count)).region() for index in range(count)]
            assert np.array_equal(np.concatenate(parts, axis=dim), full), (dim, count)


@pytest.mark.parametrize("n,count", [(0, 1), (1, 3), (7, 3), (10, 4), (12, 4), (5, 5), (3, 7)])
def test_split_bounds_match_torch_tensor_split(n: int, count: int) -> None:
    torch = pytest.importorskip("torch")
    sizes = [part.numel() for part in torch.tensor_split(torch.arange(n), count)]
    bounds = [split_bounds(n, index, count) for index in range(count)]
    assert [stop - start for start, stop in bounds] == sizes
    assert [start for start, _ in bounds] == [sum(sizes[:i]) for i in range(count)]


def test_negative_dim_counts_from_the_end() -> None:
    assert shard_box((6, 8), -1, 1, 2) == shard_box((6, 8), 1, 1, 2) == ((0, 6), (4, 8))


@pytest.mark.parametrize("method,params,shape,layout", LAYOUT_CASES)
def test_slices_equal_numpy_slicing_and_stream_in_chunks(method: str, params: dict[str, Any],
                                                        shape: tuple[int, ...], layout: str) -> None:
    tensor = resolve(method, list(shape), layout=layout, **params)
    full = tensor.region()
    slices = [[n // 4, n - n // 3] for n in shape[:2]]
    box = slice_box(shape, slices)
    window = Window(tensor, box)
    want = full[tuple(slice(a, b) for a, b in slices)]
    assert window.shape == want.shape and np.array_equal(window.region(), want)
    for chunk in (1, 5, 64):
        got = list(window.iter_flat(0, window.numel, chunk))
        assert all(c.size <= chunk for c in got)
        joined = np.concatenate(got) if got else np.empty(0, full.dtype)
        assert np.array_equal(joined, want.ravel())
    start, stop = window.numel // 3, window.numel - window.numel // 5
    part = list(window.iter_flat(start, stop, 7))
    assert np.array_equal(np.concatenate(part) if part else np.empty(0, full.dtype), want.ravel()[start:stop])


def test_shard_is_taken_within_the_slice() -> None:
    tensor = resolve("normal", [10, 6], seed=1)
    box = window_box((10, 6), [[2, 9], [1, 5]], {"dim": 0, "index": 1, "count": 3})
    assert box == ((5, 7), (1, 5))
    assert np.array_equal(Window(tensor, box).region(), tensor.region()[5:7, 1:5])
    assert window_box((10, 6)) is None


def test_reshaped_view_takes_the_same_row_major_elements() -> None:
    tensor = resolve("normal", [4, 6], seed=2)
    view = tensor.region().reshape(4, 2, 3)
    window = Window(tensor, ((1, 3), (1, 2), (0, 2)), view=(4, 2, 3))
    assert np.array_equal(window.region(), view[1:3, 1:2, 0:2])


@pytest.mark.parametrize("method", ["normal", "xavier_uniform", "kaiming_uniform"])
def test_element_wise_methods_generate_only_the_window(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[tuple[int, int], ...]] = []
    region = Tensor.region

    def spy(self: Tensor, box: Any = None, **kwargs: Any) -> np.ndarray:
        seen.append(box)
        return region(self, box, **kwargs)

    monkeypatch.setattr(Tensor, "region", spy)
    window = Window(resolve(method, [1000, 1000]), shard_box((1000, 1000), 1, 3, 8))
    values = np.concatenate(list(window.iter_flat(0, window.numel, 4096)))
    assert values.size == window.numel == 1000 * 125
    assert seen and all(b is not None and b[1][0] >= 375 and b[1][1] <= 500 for b in seen)
    assert sum(int(np.prod([hi - lo for lo, hi in b])) for b in seen) == window.numel


@pytest.mark.parametrize("slices,field", [
    ([[0, 11]], "slice"), ([[3, 2]], "slice"), ([[-1, 2]], "slice"), ([[0, 1], [0, 1], [0, 1]], "slice"),
    ([[0, 1, 2]], "slice"), ("0:1", "slice"), ([[True, 2]], "slice"),
])
def test_bad_slices_name_their_field(slices: Any, field: str) -> None:
    with pytest.raises(SpecError) as error:
        slice_box((10, 6), slices)
    assert error.value.field == field


@pytest.mark.parametrize("shape,dim,index,count,field", [
    ((10, 6), 2, 0, 1, "shard.dim"), ((10, 6), -3, 0, 1, "shard.dim"), ((), 0, 0, 1, "shard.dim"),
    ((10, 6), 0, 0, 0, "shard.count"), ((10, 6), 0, 4, 4, "shard.index"), ((10, 6), 0, -1, 4, "shard.index"),
    ((10, 6), 0.0, 0, 1, "shard.dim"),
])
def test_bad_shards_name_their_field(shape: tuple[int, ...], dim: Any, index: Any, count: Any, field: str) -> None:
    with pytest.raises(SpecError) as error:
        shard_box(shape, dim, index, count)
    assert error.value.field == field
