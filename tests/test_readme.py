"""The README's model examples are real: its tables are recomputed from the service."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
from safetensors.numpy import load
from starlette.exceptions import StarletteDeprecationWarning

from initserve.api import Settings, create_app

with warnings.catch_warnings():  # starlette's TestClient warns that it prefers httpx2 over httpx
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

README = Path(__file__).resolve().parents[1] / "README.md"
MLP = [
    {"type": "dense", "in_features": 10, "out_features": 64, "nonlinearity": "relu"},
    {"type": "dense", "in_features": 64, "out_features": 32, "nonlinearity": "relu"},
    {"type": "dense", "in_features": 32, "out_features": 1, "nonlinearity": "sigmoid"},
]
CIFAR = [
    {"type": "linear", "in_features": 3072, "out_features": 400, "nonlinearity": "relu", "name": "0"},
    {"type": "linear", "in_features": 400, "out_features": 200, "nonlinearity": "relu", "name": "2"},
    {"type": "linear", "in_features": 200, "out_features": 10, "name": "4"},
]


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(Settings()))


def _mlp_rows() -> dict[str, list[tuple[str, str]]]:
    cell = r"\w+ [0-9.]+"
    rows = re.findall(rf"^\| `(\w+)` \| ({cell}(?: \| {cell})*) \|$", README.read_text(encoding="utf-8"), re.MULTILINE)
    return {scheme: [tuple(cell.split()) for cell in cells.split(" | ")] for scheme, cells in rows}


def test_readme_mlp_table_matches_the_service(client: TestClient) -> None:
    rows = _mlp_rows()
    assert set(rows) == {"framework", "xavier", "he", "lecun", "orthogonal", "small_normal", "gpt2"}
    for scheme, cells in rows.items():
        body = {"framework": "keras", "scheme": scheme, "layers": MLP}
        weights = load(client.post("/v1/model", json=body).content)
        manifest = client.post("/v1/model?format=manifest", json=body).json()
        kernels = [t for t in manifest["tensors"] if t["role"] == "weight"]
        assert [t["name"] for t in kernels] == ["dense/kernel", "dense_1/kernel", "dense_2/kernel"]
        computed = [(t["init"]["spec"]["method"], f"{weights[t['name']].std():.3f}") for t in kernels]
        assert computed == cells, scheme
        assert all(not weights[t["name"]].any() for t in manifest["tensors"] if t["role"] == "bias")


def test_readme_cifar_stds_match_the_service(client: TestClient) -> None:
    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("Weight stds by scheme") :].split("\n\n")[0]
    number = r"([0-9]\.[0-9]{4})"
    for scheme in ("framework", "small_normal", "xavier", "he"):
        quoted = re.search(rf"`{scheme}`.*?{number} / {number} / {number}", paragraph, re.DOTALL)
        assert quoted is not None, scheme
        weights = load(client.post("/v1/model", json={"scheme": scheme, "layers": CIFAR}).content)
        computed = tuple(f"{weights[name].std():.4f}" for name in ("0.weight", "2.weight", "4.weight"))
        assert computed == quoted.groups(), scheme


def test_readme_stats_example_matches_the_service(client: TestClient) -> None:
    text = README.read_text(encoding="utf-8")
    spec = {"method": "xavier_uniform", "shape": [256, 128], "seed": 1, "name": "fc1.weight"}
    row = client.post("/v1/stats?bins=8", json=spec).json()["tensors"][0]
    counts = re.search(r'"counts": (\[[0-9, ]+\])', text)
    assert counts is not None and row["histogram"]["counts"] == [int(n) for n in counts.group(1)[1:-1].split(",")]
    for figure in ("z_mean", "variance_ratio"):
        quoted = re.search(rf'"{figure}": ([0-9.\-]+)', text)
        assert quoted is not None and round(row[figure], 4) == pytest.approx(float(quoted.group(1)), abs=6e-4)
    assert row["consistent"] is True and f'"p_value": {row["fit"]["p_value"]:.3f}' in text


def test_readme_propagation_example_matches_the_service(client: TestClient) -> None:
    layers = [{"type": "linear", "in_features": 500, "out_features": 500, "nonlinearity": "tanh"}] * 10
    report = client.post("/v1/stats/propagation", json={"scheme": "small_normal", "batch_size": 1000,
                                                         "layers": layers}).json()
    stds = [f"{layer['activation']['std']:.3g}" for layer in report["layers"]]
    text = README.read_text(encoding="utf-8")
    assert f"{', '.join(stds[:4])}, … {stds[-1]}" in text
    xavier = client.post("/v1/stats/propagation", json={"scheme": "xavier", "batch_size": 1000,
                                                         "layers": layers}).json()
    assert all(0.65 <= layer["activation"]["std"] <= 0.76 for layer in xavier["layers"])
