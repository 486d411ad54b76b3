"""Fuzzing: schemathesis against the committed ``openapi/openapi.json`` (issue 7, "Proof").

Every operation of the document gets requests generated from it — valid ones (positive mode) and ones the
document forbids (negative mode: wrong types, missing required fields, values out of enums or patterns,
bodies that are not JSON) — sent in-process (ASGI) to an app with small limits. Every answer must be
no 5xx, with a status code, content type, headers and body that the document declares for the
operation; a request the document forbids must be refused with a 4xx; a 405 must list the path's methods.

Phases (schemathesis names): ``examples`` (the document's examples), ``fuzzing`` (:data:`MAX_EXAMPLES`
generated requests per operation, positive and negative mixed) and, for the query-only ``GET``
operations, ``coverage`` (deterministic boundary cases: every enum value, empty, missing and repeated
query parameters, unexpected HTTP methods). The coverage phase of the JSON bodies is left out: the
tensor and model unions make it ~30 000 requests (8 minutes; it found nothing the fuzzing phase does not).
``stateful`` has nothing to do: the API has no resources and the document no links.

Three inputs the document cannot describe (or schemathesis rarely draws) get their own generators, answers
checked against the document the same way: uploaded checkpoints (safetensors headers of any shape),
conditional/range request headers (``Range``, ``If-Range``, ``If-None-Match``: 206, 304, 412, 416), and
valid bodies of every JSON endpoint with one or two values made extreme (integers past int64, values nested
400 deep, 5000-character texts, the wrong kind of JSON).

Reproducible: ``derandomize=True`` (examples depend on the document alone) and no example database
(Hypothesis keeps only its self-git-ignored ``.hypothesis/`` caches). Bounded: a fixed number of
examples per operation (about 30 s in all), on an app whose limits make any large request a cheap 413.

A failure prints the request (a curl line) and the answer; add a focused regression test for it in the
module of the feature (test_errors.py for error mapping) — generated examples change with the document.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from initserve.api import Settings, create_app

from .cases import SPECS

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"

MAX_EXAMPLES = 50
"""Generated requests per operation in the fuzzing phase (positive and negative together)."""

LIMITS = Settings(
    max_elements=4096,
    max_json_elements=512,
    max_dense_side=32,
    max_model_elements=1 << 14,
    max_upload_bytes=1 << 16,
    max_propagation_work=1 << 16,
    max_layers=8,
)
"""Small limits: whatever is generated, a large request is a cheap 413, never a long computation."""

RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""What every answer must satisfy."""
CHECKS = [*RESPONSE_CHECKS, negative_data_rejection, unsupported_method, allow_header_conformance]
"""For generated requests: also, what the document forbids is refused, and wrong verbs are 405s with ``Allow``."""

BOUNDED = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"mode": "all", "deterministic": True, "database": "none", "max-examples": MAX_EXAMPLES},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        # Any 4xx refuses a request: a body over a limit may be a 413 before the rest of it is validated.
        "checks": {"negative_data_rejection": {"expected-statuses": ["4xx"]}},
        "operations": [
            {
                "include-method": "GET",
                "phases": {"coverage": {"enabled": True, "generate-duplicate-query-parameters": True}},
            }
        ],
    }
)

APP = create_app(LIMITS)
schema = schemathesis.openapi.from_path(OPENAPI, config=CONFIG)


@schema.parametrize()
@BOUNDED
def test_every_answer_matches_the_document(case: schemathesis.Case) -> None:
    case.call_and_validate(app=APP, checks=CHECKS)


# --- checkpoint uploads: the one body part the document can only call "binary" ---------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
"""Any JSON value (NaN and ±inf included: Python's json reads them)."""

ENTRIES = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F64", "F16", "BF16", "I64", "I8", "f32"]) | JSON_VALUES,
        "shape": st.lists(st.integers(-1, 8), max_size=3) | JSON_VALUES,
        "data_offsets": st.lists(st.integers(-1, 256), min_size=2, max_size=2) | JSON_VALUES,
    }
)
HEADERS = st.dictionaries(
    st.sampled_from(["0.weight", "0.bias", "__metadata__", "other"]) | st.text(max_size=6),
    ENTRIES | JSON_VALUES,
    max_size=4,
) | JSON_VALUES
"""safetensors headers: mostly well-formed tensor entries with hostile fields, and any JSON at all."""


@st.composite
def checkpoints(draw: st.DrawFn) -> bytes:
    """A safetensors file with a generated header: a correct or wrong length prefix, the header's JSON text
    (or that text cut short), then up to 256 data bytes."""
    text = json.dumps(draw(HEADERS)).encode()
    text = text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text
    length = draw(st.just(len(text)) | st.integers(0, 2**64 - 1))
    return struct.pack("<Q", length) + text + draw(st.binary(max_size=256))


MODEL_OPERATION = schema["/v1/model"]["POST"]
SMALL_MODEL = {"layers": [{"type": "linear", "in_features": 2, "out_features": 4}]}  # 0.weight [4, 2], 0.bias [4]


@given(checkpoint=checkpoints(), fmt=st.sampled_from(["safetensors", "npz", "json", "manifest"]),
       strict=st.sampled_from(["true", "false"]))
@settings(BOUNDED, max_examples=2 * MAX_EXAMPLES)
def test_any_uploaded_checkpoint_is_served_or_refused_with_a_4xx(checkpoint: bytes, fmt: str, strict: str) -> None:
    """Found three 500s in the header reader (see test_model_checkpoint.test_unreadable_checkpoint_is_a_422)."""
    case = MODEL_OPERATION.Case(
        body={"model": SMALL_MODEL, "checkpoint": checkpoint},
        media_type="multipart/form-data",
        query={"format": fmt, "strict": strict},
    )
    case.call_and_validate(app=APP, checks=RESPONSE_CHECKS)


# --- conditional and range requests: headers the document does not list as parameters ---------------------

TENSOR_GET = schema["/v1/tensor"]["GET"]
TENSOR_POST = schema["/v1/tensor"]["POST"]
RANGES = st.from_regex(r"\Abytes=[0-9]{0,4}-[0-9]{0,4}(,[0-9]{0,3}-[0-9]{0,3})?\Z") | st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12).map(str.strip)
"""Single and multiple ranges, open and suffix ones, and any other (valid header) text."""


@given(verb=st.sampled_from(["GET", "POST"]), fmt=st.sampled_from(["npy", "safetensors", "raw", "json"]),
       byte_range=st.none() | RANGES, if_range=st.sampled_from([None, "etag", '"other"', "W/etag", "x"]),
       if_none_match=st.sampled_from([None, "etag", "*", '"other", etag', "W/etag", '"other"']))
@settings(BOUNDED, max_examples=2 * MAX_EXAMPLES)
def test_conditional_and_range_answers_match_the_document(
    verb: str, fmt: str, byte_range: str | None, if_range: str | None, if_none_match: str | None
) -> None:
    """200, 206, 304, 412 or 416, each as the document declares it ("etag" stands for the answer's ETag)."""
    spec = {"method": "normal", "shape": [3, 5], "seed": 4}
    if verb == "GET":
        query = {"format": fmt, "method": "normal", "shape": "3,5", "seed": "4"}
        plain = TENSOR_GET.Case(query=query)
    else:
        query = {"format": fmt}
        plain = TENSOR_POST.Case(query=query, body=spec, media_type="application/json")
    etag = plain.call(app=APP).headers["etag"][0]
    wanted = {"Range": byte_range, "If-Range": if_range, "If-None-Match": if_none_match}
    headers = {name: value.replace("etag", etag) for name, value in wanted.items() if value is not None}
    case = (TENSOR_GET.Case(query=query, headers=headers) if verb == "GET"
            else TENSOR_POST.Case(query=query, body=spec, media_type="application/json", headers=headers))
    case.call_and_validate(app=APP, checks=RESPONSE_CHECKS)


# --- valid bodies with one value made extreme: sizes past int64, nesting, long texts, wrong kinds -----------

SEEDS: list[tuple[str, dict[str, Any]]] = [
    *(("/v1/tensor", spec) for spec in SPECS),
    *(("/v1/stats", spec) for spec in SPECS[:6]),
    ("/v1/model", {
        "layers": [
            {"type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": [3, 3], "groups": 1},
            {"type": "batch_norm2d", "num_features": 4},
            {"type": "embedding", "num_embeddings": 5, "embedding_dim": 4, "padding_idx": 0},
            {"type": "lstm", "input_size": 4, "hidden_size": 3, "num_layers": 2, "bidirectional": True},
            {"type": "multihead_attention", "embed_dim": 4, "num_heads": 2},
            {"type": "layer_norm", "normalized_shape": [4]},
            {"type": "linear", "in_features": 4, "out_features": 2, "init": {"weight": {"method": "orthogonal"}}},
            {"type": "tensor", "name": "t", "shape": [2, 3], "init": {"method": "normal", "std": 0.1}},
        ],
        "scheme": "xavier", "seed": 3, "slices": {"t": [[0, 1]]}, "shards": {"6.weight": {"dim": 0, "index": 1, "count": 2}},
    }),
    ("/v1/stats", {"layers": [{"type": "linear", "in_features": 3, "out_features": 2}], "scheme": {"weight": {
        "method": "kaiming_normal", "nonlinearity": "relu"}}, "n_layer": None}),
    ("/v1/stats/propagation", {
        "layers": [{"type": "conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3, "nonlinearity": "relu"},
                   {"type": "linear", "in_features": 12, "out_features": 2, "nonlinearity": "tanh"}],
        "input_shape": [2, 4, 4], "batch_size": 8, "input": {"method": "uniform", "low": -1, "high": 1},
    }),
]
"""A valid body of every JSON endpoint, each layer type and window field included."""

_DEEP: Any = []
for _ in range(400):
    _DEEP = [_DEEP]
EXTREMES = st.sampled_from([10**400, -(10**400), 2**63, 2**63 - 1, 2**64, -(2**63), 10**12, -1, 0, 1e308, -1e308,
                            5e-324, _DEEP, {"a": _DEEP}, "x" * 5000, "", None, True, [], {}, [[0, 1]] * 200,
                            [2**62] * 8])
"""Values past every bound the service has: int64, float64, nesting, lengths, and the wrong kind of JSON."""


def _locations(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (the root included)."""
    found = [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found += _locations(item, (*path, key))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


@st.composite
def extreme_bodies(draw: st.DrawFn) -> tuple[str, Any]:
    """A seed body with one or two of its values (or keys' values) replaced by an extreme one."""
    path, body = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 2))):
        body = _replaced(body, draw(st.sampled_from(_locations(body))), draw(EXTREMES | JSON_VALUES))
    return path, body


@given(target=extreme_bodies(), fmt=st.sampled_from(["json", "manifest", None]))
@settings(BOUNDED, max_examples=3 * MAX_EXAMPLES)
def test_extreme_values_in_valid_bodies_are_served_or_refused_with_a_4xx(
    target: tuple[str, Any], fmt: str | None
) -> None:
    """Found sizes past int64 (OverflowError), values nested 500 deep (RecursionError rendering the 422) and
    an LSTM with 10**12 stacked layers (minutes, gigabytes): 500s, see test_errors and test_model."""
    path, body = target
    query = {"format": fmt} if fmt and path in ("/v1/tensor", "/v1/model") and (fmt != "manifest" or
                                                                                 path == "/v1/model") else {}
    case = schema[path]["POST"].Case(body=body, media_type="application/json", query=query)
    response = case.call(app=APP)
    assert response.status_code < 500, case.as_curl_command()
    case.validate_response(response, checks=RESPONSE_CHECKS)
