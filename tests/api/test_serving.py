"""The one tensor code path: limits, the safetensors key fallback, headers."""

from __future__ import annotations

import json

import pytest

from initserve.api.serving import NamedSource, check_limits, encoder_source, spec_json
from initserve.core import resolve

from .cases import SMALL, SPECS, spec_id


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_every_whole_matrix_method_has_a_side_limit(spec):
    tensor = resolve(**spec)
    assert (tensor.dense_matrix is not None) == (tensor.spec.method in {"orthogonal", "sparse", "delta_orthogonal"})
    check_limits(tensor, "npy", SMALL)  # the table's specs are all within the test limits


def test_unnamed_tensors_are_stored_as_weight_in_safetensors_only():
    tensor = resolve("normal", [2, 2])
    source = encoder_source(tensor, "safetensors")
    assert isinstance(source, NamedSource) and source.name == "weight"
    assert source.metadata == tensor.metadata and json.loads(source.metadata["initserve.spec"])["name"] == ""
    assert encoder_source(tensor, "json") is tensor
    named = resolve("normal", [2, 2], name="w")
    assert encoder_source(named, "safetensors") is named


def test_spec_header_is_ascii_for_any_name(client):
    spec = {"method": "normal", "shape": [2], "name": "层.weight\n"}
    response = client.post("/v1/tensor", json=spec)
    assert response.status_code == 200
    header = response.headers["x-initserve-spec"]
    assert header.isascii() and json.loads(header)["name"] == spec["name"]
    assert header == spec_json(resolve(**spec))
