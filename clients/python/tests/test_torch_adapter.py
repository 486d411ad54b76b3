"""initserve_client.torch: derived layers, in-place copies equal to /v1/model, determinism across processes.

Fixtures from ``conftest.py``: ``client`` talks to the service in-process, ``server`` is the base URL of a
real ``initserve serve`` process (the byte-for-byte oracle, and the target of ``base_url=``).
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
import torch  # type: ignore[import-not-found, unused-ignore]
from adapter_fixtures import RawTensor, raw_model
from torch import nn  # type: ignore[import-not-found, unused-ignore]

from initserve_client import Client
from initserve_client.catalog import ModelDType, Preset
from initserve_client.torch import Activation, Report, initialize, layers_of

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16}


def tensor_bytes(tensor: Any) -> bytes:
    """The tensor's bytes as safetensors stores them (row-major, little-endian; bfloat16 as its 16 bits)."""
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.view(torch.int16)
    data: bytes = tensor.numpy().tobytes()
    return data


def state_digest(module: Any) -> str:
    digest = hashlib.sha256()
    for key, value in module.state_dict().items():
        digest.update(key.encode() + b"\0" + str(tuple(value.shape)).encode() + tensor_bytes(value))
    return digest.hexdigest()


def assert_equals_service(module: Any, expected: dict[str, RawTensor], strip: str = "") -> None:
    """Every state_dict entry is byte for byte the service's tensor of the same name."""
    state = module.state_dict()
    assert list(state) == [name[len(strip):] for name in expected]
    for name, raw in expected.items():
        value = state[name[len(strip):]]
        assert tuple(value.shape) == raw.shape, name
        assert tensor_bytes(value) == raw.data, name


# --- models ----------------------------------------------------------------------------------------------------


def mlp() -> Any:
    return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 1))


def cnn() -> Any:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, (3, 1), groups=2, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )


def lstm() -> Any:
    return nn.LSTM(12, 16, num_layers=2, bidirectional=True, proj_size=5)


class Attention(nn.Module):  # type: ignore[misc, unused-ignore]
    def __init__(self) -> None:
        super().__init__()
        self.plain = nn.MultiheadAttention(16, 4)
        self.cross = nn.MultiheadAttention(16, 2, kdim=6, vdim=10, add_bias_kv=True)
        self.nobias = nn.MultiheadAttention(8, 2, bias=False)


class Tagger(nn.Module):  # type: ignore[misc, unused-ignore]
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 12, padding_idx=0)
        self.tail = nn.Embedding(9, 4, padding_idx=-1)
        self.norm = nn.LayerNorm(12)
        self.rnn = nn.GRU(12, 8, batch_first=True)
        self.elman = nn.RNN(8, 6, nonlinearity="relu", bias=False, bidirectional=True)
        self.head = nn.Linear(8, 5)


class Everything(nn.Module):  # type: ignore[misc, unused-ignore]
    """One of each remaining supported type, in a nested container."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Conv1d(4, 6, 5), nn.Conv3d(2, 4, (1, 2, 3), bias=False),
            nn.ConvTranspose1d(6, 4, 3), nn.ConvTranspose2d(4, 6, (2, 3), groups=2), nn.ConvTranspose3d(2, 2, 2),
            nn.BatchNorm1d(6), nn.BatchNorm3d(4, affine=False), nn.BatchNorm2d(3, track_running_stats=False),
            nn.BatchNorm2d(3, affine=False, track_running_stats=False),
            nn.LayerNorm([4, 5], bias=False), nn.LayerNorm(7, elementwise_affine=False), nn.RMSNorm(6),
        ])
        self.encoder = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32)
        self.sync = nn.SyncBatchNorm(3)


MODELS: dict[str, Callable[[], Any]] = {
    "mlp": mlp, "cnn": cnn, "lstm": lstm, "attention": Attention, "embedding": Tagger, "everything": Everything,
    "batch_norm": lambda: nn.Sequential(nn.BatchNorm1d(7), nn.Linear(7, 3)),
}


# --- derived layers --------------------------------------------------------------------------------------------


def test_layers_of_reads_sizes_and_names() -> None:
    assert layers_of(cnn(), nonlinearities={"0": "relu", "9": ("leaky_relu", 0.1)}) == [
        {"type": "conv2d", "in_channels": 3, "out_channels": 8, "kernel_size": [3, 3], "groups": 1, "bias": True,
         "name": "0", "nonlinearity": "relu"},
        {"type": "batch_norm2d", "num_features": 8, "affine": True, "track_running_stats": True, "name": "1"},
        {"type": "conv2d", "in_channels": 8, "out_channels": 16, "kernel_size": [3, 1], "groups": 2, "bias": False,
         "name": "4"},
        {"type": "batch_norm2d", "num_features": 16, "affine": True, "track_running_stats": True, "name": "5"},
        {"type": "linear", "in_features": 16, "out_features": 10, "bias": True, "name": "9",
         "nonlinearity": "leaky_relu", "negative_slope": 0.1},
    ]
    assert layers_of(lstm()) == [{"type": "lstm", "input_size": 12, "hidden_size": 16, "num_layers": 2, "bias": True,
                                  "bidirectional": True, "proj_size": 5, "name": "0"}]
    assert layers_of(Attention()) == [
        {"type": "multihead_attention", "embed_dim": 16, "num_heads": 4, "bias": True, "add_bias_kv": False,
         "name": "plain"},
        {"type": "multihead_attention", "embed_dim": 16, "num_heads": 2, "bias": True, "add_bias_kv": True,
         "kdim": 6, "vdim": 10, "name": "cross"},
        {"type": "multihead_attention", "embed_dim": 8, "num_heads": 2, "bias": False, "add_bias_kv": False,
         "name": "nobias"},
    ]
    tagger = layers_of(Tagger())
    assert tagger[0] == {"type": "embedding", "num_embeddings": 50, "embedding_dim": 12, "padding_idx": 0,
                         "name": "embed"}
    assert tagger[1]["padding_idx"] == 8  # torch has already counted -1 from the end
    assert tagger[3]["type"] == "gru" and tagger[4]["type"] == "rnn" and tagger[4]["bias"] is False
    names = [layer["name"] for layer in layers_of(Everything())]
    # BatchNorm2d(affine=False, track_running_stats=False) and LayerNorm(elementwise_affine=False) have no tensors
    assert names == [*(f"blocks.{i}" for i in (0, 1, 2, 3, 4, 5, 6, 7, 9, 11)), "encoder.self_attn",
                     "encoder.linear1", "encoder.linear2", "encoder.norm1", "encoder.norm2", "sync"]


def test_unknown_nonlinearity_target_is_refused() -> None:
    with pytest.raises(ValueError, match="'3' is not a module"):
        layers_of(mlp(), nonlinearities={"3": "tanh"})


# --- equal to /v1/model ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("scheme", ["framework", "he"])
def test_state_dict_equals_v1_model(server: str, client: Client, name: str, scheme: Preset) -> None:
    torch.manual_seed(1234)
    module = MODELS[name]()
    layers = layers_of(module)
    report = initialize(module, client=client, scheme=scheme, seed=7)
    assert isinstance(report, Report)
    assert report.layers == layers
    assert report.initialized == tuple(module.state_dict()) and report.skipped == () and report.aliases == {}
    # a supported module at the root is sent as layer "0"
    root = layers[0]["name"] == "0" and "0" not in dict(module.named_modules())
    expected = raw_model(server, layers, framework="torch", scheme=scheme, seed=7)
    assert_equals_service(module, expected, strip="0." if root else "")


def test_nonlinearities_reach_the_service(server: str, client: Client) -> None:
    module = mlp()
    gains: dict[str, Activation] = {"0": "relu", "2": ("leaky_relu", 0.3)}
    initialize(module, client=client, scheme="xavier", seed=3, nonlinearities=gains)
    layers = layers_of(mlp(), nonlinearities=gains)
    assert layers[1]["negative_slope"] == 0.3
    assert_equals_service(module, raw_model(server, layers, scheme="xavier", seed=3))
    plain = mlp()
    initialize(plain, client=client, scheme="xavier", seed=3)
    assert not torch.equal(plain[0].weight, module[0].weight)  # the relu gain changed the bound
    assert torch.equal(plain[4].weight, module[4].weight)  # no nonlinearity given for the last layer


@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_module_dtype_is_requested(server: str, client: Client, dtype: ModelDType) -> None:
    module = Everything().to(TORCH_DTYPES[dtype])
    report = initialize(module, client=client, seed=5)
    assert report.dtype == dtype
    assert module.state_dict()["blocks.5.num_batches_tracked"].dtype == torch.int64
    assert_equals_service(module, raw_model(server, layers_of(module), seed=5, dtype=dtype))


def test_explicit_dtype_for_mixed_modules(client: Client) -> None:
    module: Any = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2).double())
    with pytest.raises(ValueError, match="mixes floating dtypes"):
        initialize(module, client=client)
    report = initialize(module, client=client, dtype="float64")
    reference: Any = nn.Sequential(nn.Linear(4, 4).double(), nn.Linear(4, 2).double())
    initialize(reference, client=client)
    assert report.dtype == "float64"
    assert torch.equal(module[1].weight, reference[1].weight)
    assert torch.equal(module[0].weight, reference[0].weight.float())  # float64 values rounded by torch's copy_


def test_root_module_is_layer_zero(server: str, client: Client) -> None:
    linear = nn.Linear(6, 3)
    report = initialize(linear, client=client, seed=2)
    assert report.layers == [{"type": "linear", "in_features": 6, "out_features": 3, "bias": True, "name": "0"}]
    assert report.initialized == ("weight", "bias")
    assert_equals_service(linear, raw_model(server, report.layers, seed=2), strip="0.")
    wrapped: Any = nn.Sequential(nn.Linear(6, 3))
    initialize(wrapped, client=client, seed=2)
    assert torch.equal(wrapped[0].weight, linear.weight) and torch.equal(wrapped[0].bias, linear.bias)


def test_values_ignore_torch_rng_and_initial_values(client: Client) -> None:
    digests = set()
    for seed in (0, 1):
        torch.manual_seed(seed)
        module = Tagger()
        initialize(module, client=client, seed=11)
        digests.add(state_digest(module))
    assert len(digests) == 1
    other = Tagger()
    initialize(other, client=client, seed=12)
    assert state_digest(other) not in digests


def test_base_url_opens_its_own_client(server: str) -> None:
    module = mlp()
    initialize(module, base_url=server, seed=4)
    assert_equals_service(module, raw_model(server, layers_of(module), seed=4))


def test_client_or_base_url_is_required(server: str, client: Client) -> None:
    with pytest.raises(ValueError, match="base_url"):
        initialize(mlp())
    with pytest.raises(ValueError, match="not both"):
        initialize(mlp(), client=client, base_url=server)
    assert initialize(nn.Sequential(nn.ReLU(), nn.Dropout())).layers == []  # nothing to fetch: no service needed


# --- two processes ---------------------------------------------------------------------------------------------

_SCRIPT = """
import hashlib, os, sys
import torch
from torch import nn
from initserve_client.torch import initialize

torch.manual_seed(os.getpid())  # each process starts from different values
model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
lstm = nn.LSTM(10, 12, num_layers=2, bidirectional=True, proj_size=4)
attn = nn.MultiheadAttention(16, 4, add_bias_kv=True)
digest = hashlib.sha256()
for module in (model, lstm, attn):
    initialize(module, base_url=sys.argv[1], scheme=sys.argv[2], seed=int(sys.argv[3]))
    for key, value in module.state_dict().items():
        digest.update(key.encode() + value.detach().contiguous().numpy().tobytes())
print(digest.hexdigest())
"""


def run_script(url: str, scheme: str, seed: int) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(_SCRIPT), url, scheme, str(seed)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_two_processes_get_identical_parameters(server: str) -> None:
    first, second = run_script(server, "framework", 9), run_script(server, "framework", 9)
    assert len(first) == 64 and first == second
    assert run_script(server, "orthogonal", 9) == run_script(server, "orthogonal", 9) != first
    assert run_script(server, "framework", 10) != first


# --- the framework defaults have torch's bounds ----------------------------------------------------------------


def test_framework_defaults_have_torchs_bounds(client: Client) -> None:
    linear: Any = nn.Linear(300, 50)
    conv: Any = nn.Conv2d(4, 6, 3)
    recurrent: Any = nn.LSTM(10, 25, num_layers=2)
    embed: Any = nn.Embedding(20, 8, padding_idx=3)
    norm: Any = nn.BatchNorm1d(5)
    attn: Any = nn.MultiheadAttention(12, 3)
    with torch.no_grad():  # garbage everywhere, so that every value below comes from the service
        for module in (linear, conv, recurrent, embed, norm, attn):
            for value in module.state_dict(keep_vars=True).values():
                value.fill_(7)
    for module in (linear, conv, recurrent, embed, norm, attn):
        initialize(module, client=client, seed=1)

    def within(value: Any, bound: float) -> None:
        largest = float(value.detach().abs().max())
        assert largest <= bound
        if value.numel() >= 200:
            assert largest > 0.95 * bound  # uniform over the whole range, not shrunk

    within(linear.weight, 1 / math.sqrt(300))
    within(linear.bias, 1 / math.sqrt(300))
    within(conv.weight, 1 / math.sqrt(4 * 9))
    within(conv.bias, 1 / math.sqrt(4 * 9))
    for value in recurrent.state_dict().values():
        within(value, 1 / math.sqrt(25))
    assert torch.count_nonzero(embed.weight[3]) == 0
    assert 0.7 < float(embed.weight.detach().std()) < 1.3
    assert torch.equal(norm.weight, torch.ones(5)) and torch.equal(norm.bias, torch.zeros(5))
    assert torch.equal(norm.running_mean, torch.zeros(5)) and torch.equal(norm.running_var, torch.ones(5))
    assert int(norm.num_batches_tracked) == 0
    within(attn.in_proj_weight, math.sqrt(6 / (12 + 36)))  # xavier_uniform on [3·12, 12]
    assert torch.count_nonzero(attn.in_proj_bias) == 0 and torch.count_nonzero(attn.out_proj.bias) == 0
    within(attn.out_proj.weight, 1 / math.sqrt(12))


def test_embedding_padding_row_stays_zero_under_schemes(client: Client) -> None:
    embed = nn.Embedding(10, 4, padding_idx=-2)
    initialize(embed, client=client, scheme="orthogonal")
    assert torch.count_nonzero(embed.weight[8]) == 0 and torch.count_nonzero(embed.weight) == 36


# --- what the service does not know ----------------------------------------------------------------------------


class Scaled(nn.Module):  # type: ignore[misc, unused-ignore]
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((4,), 3.0))
        self.register_buffer("steps", torch.tensor(5))
        self.fc = nn.Linear(4, 4)


def test_unsupported_tensors_raise_naming_the_module(client: Client) -> None:
    model: Any = nn.Sequential(nn.Linear(2, 4), Scaled())
    with pytest.raises(ValueError, match=r"module '1' \(Scaled\) owns tensors .*: scale, steps|scale, steps"):
        initialize(model, client=client)
    with pytest.raises(ValueError, match="Scaled"):
        layers_of(model)
    assert float(model[1].scale.detach()[0]) == 3.0  # nothing was touched


def test_strict_false_leaves_them_untouched(server: str, client: Client) -> None:
    model: Any = nn.Sequential(nn.Linear(2, 4), Scaled())
    before = {key: value.clone() for key, value in model.state_dict().items()}
    report = initialize(model, client=client, strict=False, seed=6)
    assert report.skipped == ("1.scale", "1.steps")
    assert report.initialized == ("0.weight", "0.bias", "1.fc.weight", "1.fc.bias")
    assert torch.equal(model[1].scale, before["1.scale"]) and int(model[1].steps) == 5
    assert [layer["name"] for layer in layers_of(model, strict=False)] == ["0", "1.fc"]
    expected = raw_model(server, report.layers, seed=6)
    for key in report.initialized:
        assert tensor_bytes(model.state_dict()[key]) == expected[key].data


class GatedLinear(nn.Linear):  # type: ignore[misc, unused-ignore]
    """A supported class with a tensor of its own the service does not send."""

    def __init__(self) -> None:
        super().__init__(3, 3)
        self.gate = nn.Parameter(torch.zeros(3))


def test_subclass_with_extra_tensors(client: Client) -> None:
    with pytest.raises(ValueError, match="gate"):
        initialize(GatedLinear(), client=client)
    module = GatedLinear()
    report = initialize(module, client=client, strict=False)
    assert report.skipped == ("gate",) and report.initialized == ("weight", "bias")
    assert torch.count_nonzero(module.gate) == 0


def test_parametrized_and_lazy_modules_are_refused(client: Client) -> None:
    normed = nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(3, 3)))
    with pytest.raises(ValueError, match="parametrized"):
        initialize(normed, client=client)
    report = initialize(normed, client=client, strict=False)
    assert report.initialized == () and "0.bias" in report.skipped
    with pytest.raises(ValueError, match="lazy"):
        initialize(nn.Sequential(nn.LazyLinear(3)), client=client)


class TiedLM(nn.Module):  # type: ignore[misc, unused-ignore]
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(11, 6)
        self.head = nn.Linear(6, 11, bias=False)
        self.head.weight = self.embed.weight


def test_tied_weights_take_the_first_keys_values(server: str, client: Client) -> None:
    model = TiedLM()
    report = initialize(model, client=client, seed=8)
    assert report.initialized == ("embed.weight",) and report.aliases == {"head.weight": "embed.weight"}
    expected = raw_model(server, report.layers, seed=8)
    assert tensor_bytes(model.head.weight) == expected["embed.weight"].data


def test_bfloat16_values_are_exact(server: str, client: Client) -> None:
    module: Any = nn.Linear(64, 64).to(torch.bfloat16)
    initialize(module, client=client, scheme="small_normal")
    raw = raw_model(server, layers_of(module), scheme="small_normal", dtype="bfloat16")
    np.testing.assert_array_equal(module.weight.detach().float().numpy(), raw["0.weight"].numpy())
