"""The client's tables against the service's OpenAPI document (``openapi/openapi.json`` of the repository).

Methods and aliases, each method's parameters (JSON type, enum, required, nullable), the common spec fields,
the window fields (``slice``/``shard`` of a tensor, ``slices``/``shards`` of a model, the shard's keys),
dtypes, layouts, formats, frameworks, presets, nonlinearities, the model and propagation body fields, and
every endpoint the client calls with the query parameters it sends. Skipped when the document is absent
(the client installed alone).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from initserve_client import catalog
from initserve_client.catalog import METHODS, MethodName
from initserve_client.specs import TensorParams, TensorSpec

OPENAPI = Path(__file__).resolve().parents[3] / "openapi" / "openapi.json"
JSON_KINDS = {"number": "float", "integer": "int", "boolean": "bool", "string": "str"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    if not OPENAPI.is_file():
        pytest.skip(f"no OpenAPI document at {OPENAPI}")
    loaded: dict[str, Any] = json.loads(OPENAPI.read_text())
    return loaded


def schema(document: dict[str, Any], reference: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    return found


def spec_schemas(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The tensor spec schema of every method (the union ``POST /v1/tensor`` takes), in its order."""
    body = document["paths"]["/v1/tensor"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return [schema(document, option["$ref"]) for option in body["oneOf"]]


def names_of(prop: dict[str, Any]) -> list[str]:
    return [prop["const"]] if "const" in prop else list(prop["enum"])


def parameter(prop: dict[str, Any]) -> tuple[str, tuple[str, ...] | None, bool]:
    """(kind, choices, nullable) of a property schema."""
    options = prop.get("anyOf", [prop])
    nullable = any(option.get("type") == "null" for option in options)
    (value,) = [option for option in options if option.get("type") != "null"]
    return JSON_KINDS[value["type"]], tuple(value["enum"]) if "enum" in value else None, nullable


def test_methods_and_aliases(document: dict[str, Any]) -> None:
    served = {names_of(spec["properties"]["method"])[0]: names_of(spec["properties"]["method"])[1:]
              for spec in spec_schemas(document)}
    assert {name: list(method.aliases) for name, method in METHODS.items()} == served
    assert list(METHODS) == list(served)  # the catalogue's order
    query = next(p for p in document["paths"]["/v1/tensor"]["get"]["parameters"] if p["name"] == "method")
    assert sorted(get_args(MethodName)) == sorted(query["schema"]["enum"]) == sorted(catalog.CANONICAL)


def test_each_methods_parameters(document: dict[str, Any]) -> None:
    for spec in spec_schemas(document):
        name = names_of(spec["properties"]["method"])[0]
        common = set(catalog.SPEC_FIELDS) | set(catalog.WINDOW_FIELDS)
        assert set(spec["properties"]) - set(METHODS[name].params) == common, name
        for param, info in METHODS[name].params.items():
            kind, choices, nullable = parameter(spec["properties"][param])
            assert (info.kind, info.choices, info.nullable) == (kind, choices, nullable), f"{name}.{param}"
            assert info.required == (param in spec["required"]), f"{name}.{param}"


def test_common_spec_fields(document: dict[str, Any]) -> None:
    for spec in spec_schemas(document):
        props = spec["properties"]
        assert tuple(props["dtype"]["enum"]) == catalog.DTYPES
        assert tuple(props["layout"]["enum"]) == catalog.LAYOUTS
        assert props["seed"]["minimum"] == 0 and props["seed"]["format"] == "uint64"
        assert props["name"]["maxLength"] == 1024 and props["shape"]["items"]["type"] == "integer"
        assert props["zero_rows"]["anyOf"][0]["items"]["minItems"] == 2
        assert set(spec["required"]) - {"shape", "method"} == {p for p, i in METHODS[names_of(props["method"])[0]]
                                                                 .params.items() if i.required}
    defaults = TensorSpec("zeros", [1])
    props = spec_schemas(document)[0]["properties"]
    assert (defaults.dtype, defaults.layout, defaults.seed, defaults.name) == tuple(
        props[field]["default"] for field in ("dtype", "layout", "seed", "name"))


def pairs_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """The ``[[start, stop], …]`` schema of a nullable property (``slice``, ``zero_rows``, a model's ``slices``)."""
    (value,) = [option for option in prop.get("anyOf", [prop]) if option.get("type") != "null"]
    return value


def test_window_fields(document: dict[str, Any]) -> None:
    pair_list = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2,
                                            "maxItems": 2}}
    shard_ref = {"$ref": "#/components/schemas/ShardSpec"}
    shard = schema(document, shard_ref["$ref"])
    assert set(shard["properties"]) == set(shard["required"]) == set(catalog.SHARD_FIELDS)
    assert all(shard["properties"][key]["type"] == "integer" for key in catalog.SHARD_FIELDS)
    assert shard["additionalProperties"] is False  # an unknown key is refused: the client refuses it first
    for spec in spec_schemas(document):
        props = spec["properties"]
        assert set(catalog.WINDOW_FIELDS) <= set(props) and not set(catalog.WINDOW_FIELDS) & set(spec["required"])
        assert pairs_schema(props["slice"]) == pair_list
        assert pairs_schema(props["shard"]) == shard_ref
    model = schema(document, "ModelRequest")
    assert set(catalog.MODEL_WINDOW_FIELDS) <= set(catalog.MODEL_FIELDS)
    assert not set(catalog.MODEL_WINDOW_FIELDS) & set(model.get("required", []))
    slices, shards = (pairs_schema(model["properties"][key]) for key in catalog.MODEL_WINDOW_FIELDS)
    assert slices == {"type": "object", "additionalProperties": pair_list}
    assert shards == {"type": "object", "additionalProperties": shard_ref}
    for query in ("slice", "shard"):  # the GET form exists too (the client always POSTs)
        assert any(p["name"] == query for p in document["paths"]["/v1/tensor"]["get"]["parameters"])


def literal_values(hint: Any) -> set[Any]:
    """The values of a Literal type, or of the Literals in a union."""
    args = get_args(hint)
    return {value for arg in args for value in (literal_values(arg) if get_args(arg) else {arg})}


def test_tensor_params_keywords_cover_every_parameter() -> None:
    keywords = set(get_type_hints(TensorParams))
    declared = {param for method in METHODS.values() for param in method.params}
    assert keywords == declared | (set(catalog.SPEC_FIELDS) - {"method", "shape"})
    for method in METHODS.values():  # a keyword's Literal covers every method's choices for it
        for param, info in method.params.items():
            if info.choices:
                assert set(info.choices) <= literal_values(get_type_hints(TensorParams)[param]), f"{method.name}.{param}"


def test_model_fields_frameworks_presets_dtypes(document: dict[str, Any]) -> None:
    model = schema(document, "ModelRequest")["properties"]
    assert set(model) == set(catalog.MODEL_FIELDS)
    assert tuple(model["framework"]["enum"]) == catalog.FRAMEWORKS
    assert tuple(model["dtype"]["enum"]) == catalog.MODEL_DTYPES
    preset, rules = model["scheme"]["oneOf"]
    assert tuple(preset["enum"]) == catalog.PRESETS
    assert set(schema(document, rules["$ref"])["properties"]) == set(catalog.SCHEME_ROLES)
    propagation = schema(document, "PropagationRequest")["properties"]
    assert set(propagation) == set(catalog.PROPAGATION_FIELDS)
    assert tuple(propagation["framework"]["enum"]) == catalog.FRAMEWORKS


def test_formats_and_nonlinearities(document: dict[str, Any]) -> None:
    def query(path: str, verb: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = next(p for p in document["paths"][path][verb]["parameters"] if p["name"] == name)
        return found

    assert tuple(query("/v1/tensor", "post", "format")["schema"]["enum"]) == catalog.TENSOR_FORMATS
    assert tuple(query("/v1/tensor", "get", "format")["schema"]["enum"]) == catalog.TENSOR_FORMATS
    assert tuple(query("/v1/model", "post", "format")["schema"]["enum"]) == catalog.MODEL_FORMATS
    assert tuple(query("/v1/fans", "get", "layout")["schema"]["enum"]) == catalog.LAYOUTS
    assert tuple(query("/v1/tensor", "get", "nonlinearity")["schema"]["enum"]) == catalog.NONLINEARITIES
    description = query("/v1/gain", "get", "nonlinearity")["schema"]["description"]
    assert description == f"one of: {', '.join(catalog.NONLINEARITIES)}"
    assert tuple(query("/v1/gain", "get", "nonlinearity")["schema"]["enum"]) == catalog.NONLINEARITIES


def test_endpoints_and_their_query_parameters(document: dict[str, Any]) -> None:
    for endpoint in catalog.ENDPOINTS:
        operation = document["paths"].get(endpoint.path, {}).get(endpoint.verb.lower())
        assert operation is not None, f"{endpoint.verb} {endpoint.path} is not served"
        served = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert set(endpoint.query) <= served, f"{endpoint.path}: {set(endpoint.query) - served}"
    stats = document["paths"]["/v1/stats"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert stats[1] == {"$ref": "#/components/schemas/ModelSpec"}  # a model body as /v1/model's, without windows
    schemas = document["components"]["schemas"]
    model_fields = set(schemas["ModelRequest"]["properties"])
    assert set(schemas["ModelSpec"]["properties"]) == model_fields - {"slices", "shards"}
