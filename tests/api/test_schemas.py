"""The wire models are generated from the core catalogue and check types only."""

from __future__ import annotations

import typing

import pytest
from pydantic import TypeAdapter, ValidationError

from initserve.api.schemas import SPEC_MODELS, SpecBase, TensorRequest, spec_arguments, validate_query_spec
from initserve.core import METHODS

ADAPTER: TypeAdapter[SpecBase] = TypeAdapter(TensorRequest)


def test_one_model_per_method_with_its_aliases_and_parameters():
    assert len(SPEC_MODELS) == len(METHODS)
    for model, method in zip(SPEC_MODELS, METHODS, strict=True):
        assert typing.get_args(model.model_fields["method"].annotation) == (method.name, *method.aliases)
        assert set(model.model_fields) == {"method", *SpecBase.model_fields, *(p.name for p in method.params)}
        for param in method.params:
            assert model.model_fields[param.name].is_required() == param.required


def test_only_what_the_caller_set_reaches_the_core():
    spec = ADAPTER.validate_python({"method": "he_normal", "shape": [4, 4], "mode": "fan_out"})
    assert spec_arguments(spec) == {"method": "he_normal", "shape": [4, 4], "mode": "fan_out"}


def test_ranges_are_left_to_the_core():
    spec = ADAPTER.validate_python({"method": "normal", "shape": [-1], "std": -1.0, "seed": -5})
    assert spec_arguments(spec)["std"] == -1.0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "NaN", "inf", "-Infinity"])
def test_non_finite_floats_are_refused(value):
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"method": "normal", "shape": [2], "std": value})
    with pytest.raises(ValidationError):
        validate_query_spec({"method": "normal", "shape": ["2"], "std": str(value)})


def test_json_bodies_are_strict_queries_are_parsed():
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"method": "normal", "shape": [2], "std": "0.5"})
    spec = validate_query_spec({"method": "normal", "shape": ["2"], "std": "0.5", "seed": "3"})
    assert spec_arguments(spec) == {"method": "normal", "shape": [2], "std": 0.5, "seed": 3}
