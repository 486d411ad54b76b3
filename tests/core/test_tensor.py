"""Regions, streaming, layouts and dtypes: every part equals the same part of the whole."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from initserve.core import ALGORITHM_VERSION, SpecError, flat_boxes, resolve
from initserve.core.dtypes import float32_to_bfloat16_bits

from .conftest import SPEC_CASES


def boxes_of(shape: tuple[int, ...]) -> list[tuple[tuple[int, int], ...]]:
    """A few boxes per shape: interior, edges, single elements, empty."""
    per_dim = [sorted({(0, n), (n // 3, n - n // 4), (n - 1, n) if n else (0, 0), (0, 0)}) for n in shape]
    return list(itertools.islice(itertools.product(*per_dim), 40))


@pytest.mark.parametrize("method,params,shape", SPEC_CASES)
def test_every_region_equals_the_slice_of_the_full_tensor(method: str, params: dict[str, Any],
                                                         shape: tuple[int, ...]) -> None:
    full = resolve(method, list(shape), **params).region()
    for box in boxes_of(shape):
        part = resolve(method, list(shape), **params).region(box)  # fresh tensor: nothing cached
        assert np.array_equal(part, full[tuple(slice(a, b) for a, b in box)]), box


@pytest.mark.parametrize("method,params,shape", SPEC_CASES)
@pytest.mark.parametrize("layout", ["torch", "keras"])
def test_streamed_chunks_equal_the_flat_tensor(method: str, params: dict[str, Any], shape: tuple[int, ...],
                                              layout: str) -> None:
    if layout == "keras" and len(shape) >= 2:
        shape = (*shape[2:], shape[1], shape[0])  # the same weight in [*kernel, in, out]
    tensor = resolve(method, list(shape), layout=layout, **params)
    full = tensor.region().ravel()
    for start, stop, chunk in [(0, full.size, 7), (full.size // 3, full.size, 64), (1, max(full.size - 1, 1), 1000)]:
        stop = max(stop, start)
        got = [c for c in tensor.iter_flat(start, stop, chunk)]
        assert all(c.size <= chunk for c in got)
        joined = np.concatenate(got) if got else np.empty(0, full.dtype)
        assert np.array_equal(joined, full[start:stop])


@pytest.mark.parametrize("shape", [(5,), (4, 6), (3, 4, 5), (2, 3, 4, 5), (3, 0, 2)])
def test_flat_boxes_tile_any_range_in_order(shape: tuple[int, ...]) -> None:
    n = math.prod(shape)
    index = np.arange(n).reshape(shape)
    for start in range(0, n + 1, max(1, n // 7)):
        for stop in range(start, n + 1, max(1, n // 5)):
            parts = [index[tuple(slice(a, b) for a, b in box)].ravel() for box in flat_boxes(shape, start, stop)]
            assert np.concatenate(parts or [np.empty(0, int)]).tolist() == list(range(start, stop))


@pytest.mark.parametrize("method,params", [("xavier_uniform", {}), ("orthogonal", {}), ("dirac", {}),
                                           ("kaiming_normal", {"nonlinearity": "relu"})])
def test_keras_and_jax_layouts_are_the_permuted_torch_tensor(method: str, params: dict[str, Any]) -> None:
    torch_layout = resolve(method, [16, 8, 3, 5], seed=3, name="conv", **params).region()
    for layout in ("keras", "jax"):
        other = resolve(method, [3, 5, 8, 16], layout=layout, seed=3, name="conv", **params).region()
        assert np.array_equal(other, torch_layout.transpose(2, 3, 1, 0))


@pytest.mark.parametrize("method,params", [("normal", {}), ("xavier_uniform", {}), ("orthogonal", {}),
                                           ("trunc_normal", {}), ("sparse", {"sparsity": 0.5})])
def test_half_precisions_are_the_float32_result_rounded(method: str, params: dict[str, Any]) -> None:
    single = resolve(method, [33, 17], **params).region()
    double = resolve(method, [33, 17], dtype="float64", **params).region()
    assert np.array_equal(single, double.astype(np.float32))
    assert np.array_equal(resolve(method, [33, 17], dtype="float16", **params).region(), single.astype(np.float16))
    assert np.array_equal(resolve(method, [33, 17], dtype="bfloat16", **params).region(),
                          float32_to_bfloat16_bits(single))


def test_bfloat16_rounding_is_nearest_even() -> None:
    values = np.array([1.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1.0 + 2**-8 + 2**-20, -2.5, 3.4e38], dtype=np.float32)
    bits = float32_to_bfloat16_bits(values).tolist()
    assert bits[:5] == [0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xC020]
    assert bits[5] == 0x7F80  # rounds up to +inf


def test_bfloat16_agrees_with_torch() -> None:
    torch = pytest.importorskip("torch")
    single = resolve("normal", [4096], std=100.0).region()
    expected = torch.from_numpy(single).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(float32_to_bfloat16_bits(single), expected)


def test_metadata_carries_spec_and_algorithm_version() -> None:
    tensor = resolve("glorot_uniform", [4, 3], seed=9, name="fc.weight", gain=2.0)
    assert tensor.metadata["initserve.algorithm_version"] == ALGORITHM_VERSION == "2"
    assert '"method":"xavier_uniform"' in tensor.metadata["initserve.spec"]
    assert tensor.spec.canonical()["params"] == {"gain": 2.0}


@pytest.mark.parametrize("layout", ["torch", "keras"])
@pytest.mark.parametrize("method, params", [("normal", {}), ("orthogonal", {}), ("eye", {"gain": 2.0})])
def test_zero_rows_zero_exactly_those_rows_and_keep_the_rest(method: str, params: dict[str, Any], layout: str) -> None:
    plain = resolve(method, [6, 4], layout=layout, name="w", **params).region()
    zeroed = resolve(method, [6, 4], layout=layout, name="w", zero_rows=[[4, 6], [1, 2], [4, 5]], **params)
    values = zeroed.region()
    rows = [1, 4, 5]
    assert not values[rows].any()
    kept = [r for r in range(6) if r not in rows]
    np.testing.assert_array_equal(values[kept], plain[kept])
    assert zeroed.spec.zero_rows == ((1, 2), (4, 6))  # sorted and merged
    for box in [((0, 3), (1, 4)), ((4, 6), (0, 4)), ((1, 5), (2, 3))]:
        np.testing.assert_array_equal(zeroed.region(box), values[tuple(slice(*b) for b in box)])


def test_zero_rows_enter_the_canonical_spec_only_when_given() -> None:
    assert "zero_rows" not in resolve("normal", [3, 2]).spec.canonical()
    assert resolve("normal", [3, 2], zero_rows=[[0, 1]]).spec.canonical()["zero_rows"] == [[0, 1]]


def test_zero_rows_theory_mixes_in_the_zeros() -> None:
    tensor = resolve("normal", [4, 1000], mean=1.0, std=2.0, zero_rows=[[0, 1]])
    theory = tensor.theory
    assert theory.mean == pytest.approx(0.75)
    assert theory.variance == pytest.approx(0.75 * (4 + 1) - 0.75**2)
    values = tensor.region().astype(np.float64)
    assert values.mean() == pytest.approx(theory.mean, abs=0.1)
    assert values.var() == pytest.approx(theory.variance, rel=0.1)


@pytest.mark.parametrize("zero_rows", [[[2, 2]], [[0, 7]], [[-1, 1]], [[0]], "0:1", [[0.0, 1]]])
def test_bad_zero_rows_are_spec_errors(zero_rows: Any) -> None:
    with pytest.raises(SpecError) as error:
        resolve("normal", [6, 2], zero_rows=zero_rows)
    assert error.value.field == "zero_rows"


def test_int64_takes_only_exact_integer_methods() -> None:
    assert resolve("ones", [2, 2], dtype="int64").region().dtype == np.dtype("<i8")
    assert resolve("constant", [3], dtype="int64", value=-7).region().tolist() == [-7, -7, -7]
    assert resolve("eye", [2, 3], dtype="int64", gain=2).region().tolist() == [[2, 0, 0], [0, 2, 0]]
    for method, params in [("normal", {}), ("constant", {"value": 0.5}), ("eye", {"gain": 1.5})]:
        with pytest.raises(SpecError) as error:
            resolve(method, [2, 2], dtype="int64", **params)
        assert error.value.field == "dtype"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_zero_rows_never_write_into_the_built_matrix(dtype):
    """A float64 region of a whole-matrix tensor used to be a view of the built matrix, so zeroing its rows
    zeroed the matrix, and a later region without zero_rows (the statistics' check) read zeros."""
    tensor = resolve("orthogonal", [8, 8], dtype=dtype, zero_rows=[[0, 2]])
    zeroed = tensor.region()
    whole = tensor.region(zero_rows=False)
    assert not zeroed[:2].any() and whole[:2].any()
    np.testing.assert_array_equal(whole, resolve("orthogonal", [8, 8], dtype=dtype).region())
    np.testing.assert_array_equal(tensor.region(), zeroed)
