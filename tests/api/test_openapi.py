"""The committed ``openapi/openapi.json`` is the app's spec (run ``make openapi`` after API changes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from initserve.api import Settings, create_app
from initserve.api.openapi_export import main, render_openapi
from initserve.api.schemas import QUERY_SYNTAX, query_pattern
from initserve.core import METHODS, NONLINEARITIES

from .cases import SMALL

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_spec_matches_the_app():
    assert COMMITTED.exists(), "run `make openapi`"
    assert COMMITTED.read_text(encoding="utf-8") == render_openapi(create_app(SMALL)), (
        "openapi/openapi.json is stale: run `make openapi`"
    )


def test_spec_does_not_depend_on_settings():
    assert render_openapi(create_app(Settings())) == render_openapi(create_app(SMALL))


def test_export_script_writes_stable_text(tmp_path):
    target = tmp_path / "nested" / "openapi.json"
    main([str(target)])
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text == render_openapi()
    assert list(json.loads(text)) == sorted(json.loads(text))  # sorted keys


def test_tensor_body_is_one_discriminated_union():
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    schema = document["paths"]["/v1/tensor"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["discriminator"]["propertyName"] == "method"
    names = {name for method in METHODS for name in (method.name, *method.aliases)}
    assert set(schema["discriminator"]["mapping"]) == names
    assert len(schema["oneOf"]) == len(METHODS)
    normal = document["components"]["schemas"]["NormalSpec"]
    assert normal["additionalProperties"] is False
    assert normal["properties"]["std"] == {
        "default": 1.0,
        "description": "standard deviation",
        "minimum": 0.0,
        "title": "Std",
        "type": "number",
    }
    assert normal["properties"]["method"]["enum"] == ["normal", "random_normal"]
    sparse = document["components"]["schemas"]["SparseSpec"]
    assert "sparsity" in sparse["required"]
    problem = document["paths"]["/v1/tensor"]["post"]["responses"]["422"]["content"]
    assert "application/json" in problem or "application/problem+json" in problem


def test_get_tensor_documents_every_method_parameter():
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    documented = {p["name"] for p in document["paths"]["/v1/tensor"]["get"]["parameters"]}
    declared = {param.name for method in METHODS for param in method.params}
    assert {"method", "shape", "dtype", "layout", "seed", "name", "zero_rows", "slice", "shard", "format",
            "algorithm_version"} | declared \
        == documented


def test_list_query_parameters_document_the_syntax_the_service_parses():
    """``shape``, ``zero_rows``, ``slice`` and ``shard`` carry :data:`QUERY_SYNTAX` as their pattern (the
    service refuses what it does not match, see test_errors), ``/v1/gain`` its nonlinearities as an enum."""
    document = json.loads(COMMITTED.read_text(encoding="utf-8"))
    tensor = {p["name"]: p["schema"] for p in document["paths"]["/v1/tensor"]["get"]["parameters"]}
    assert {name: tensor[name]["pattern"] for name in QUERY_SYNTAX} == {name: query_pattern(name) for name in QUERY_SYNTAX}
    fans = {p["name"]: p["schema"] for p in document["paths"]["/v1/fans"]["get"]["parameters"]}
    assert fans["shape"]["pattern"] == query_pattern("shape")
    gain = {p["name"]: p["schema"] for p in document["paths"]["/v1/gain"]["get"]["parameters"]}
    assert tuple(gain["nonlinearity"]["enum"]) == NONLINEARITIES
    for text in ["", " ", "256,128", " 3 , 4 ", "0,-1"]:
        assert re.fullmatch(QUERY_SYNTAX["shape"], text), text
    for text in ["+3", "3.0", "3_0", "\t3", "3,", ",", "٣", "3\n"]:
        assert not re.fullmatch(QUERY_SYNTAX["shape"], text), text


def test_interactive_docs_are_served(client):
    """The README points users at /docs (Swagger UI over /openapi.json)."""
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text
    assert client.get("/openapi.json").json()["info"]["title"]
