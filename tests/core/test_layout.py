"""Fans and the keras/jax ↔ torch layout permutation."""

from __future__ import annotations

import pytest

from initserve.core import SpecError, compute_fans
from initserve.core.layout import canonical_axes, canonical_shape


@pytest.mark.parametrize(
    "shape,layout,expected",
    [
        ((20, 10), "torch", (10, 20, 1)),
        ((64, 32, 3, 3), "torch", (288, 576, 9)),
        ((8, 4, 5), "torch", (20, 40, 5)),
        ((10, 20), "keras", (10, 20, 1)),
        ((3, 3, 32, 64), "keras", (288, 576, 9)),
        ((3, 3, 32, 64), "jax", (288, 576, 9)),
        ((7,), "keras", (7, 7, 1)),
        ((), "keras", (1, 1, 1)),
    ],
)
def test_fans(shape: tuple[int, ...], layout: str, expected: tuple[int, int, int]) -> None:
    fans = compute_fans(shape, layout)  # type: ignore[arg-type]
    assert (fans.fan_in, fans.fan_out, fans.receptive_field) == expected


@pytest.mark.parametrize("shape,layout", [((5,), "torch"), ((), "torch"), ((5,), "jax")])
def test_fans_of_fewer_than_two_dims_are_an_error(shape: tuple[int, ...], layout: str) -> None:
    with pytest.raises(SpecError) as info:
        compute_fans(shape, layout)  # type: ignore[arg-type]
    assert info.value.field == "shape" and "at least 2 dimensions" in info.value.message


def test_keras_shape_is_the_permuted_torch_shape() -> None:
    assert canonical_shape((3, 5, 32, 64), "keras") == (64, 32, 3, 5)
    assert canonical_axes(4, "keras") == (2, 3, 1, 0)
    assert canonical_shape((3, 5, 32, 64), "torch") == (3, 5, 32, 64)


def test_fans_agree_with_torch() -> None:
    torch = pytest.importorskip("torch")
    for shape in [(20, 10), (64, 32, 3, 3), (8, 4, 5), (16, 1, 2, 2, 2), (0, 5), (3, 0, 2)]:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
        fans = compute_fans(shape, "torch")
        assert (fans.fan_in, fans.fan_out) == (fan_in, fan_out)
