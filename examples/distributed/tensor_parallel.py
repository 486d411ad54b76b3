"""Tensor-parallel initialization from initserve under torch.distributed.

A two-layer MLP is split Megatron-style over the ranks: the first linear layer by output
rows (column parallel: ``0.weight`` and ``0.bias`` sharded along dim 0), the second by input
columns (row parallel: ``1.weight`` along dim 1; ``1.bias`` whole on every rank). Each rank

1. asks for the manifest of *its* shards (``shards`` by rank and world size),
2. fetches each tensor by the manifest's canonical ``url`` (a plain cacheable GET: an nginx
   or CDN in front answers repeated fetches from its cache) and checks the bytes against
   the manifest's SHA-256,
3. runs its half of the forward pass; an all-reduce sums the partial outputs.

Rank 0 then fetches the whole, unsharded model and checks that the parallel forward pass
equals the single-process one, and every rank checks that the replicated ``1.bias`` is the
same bytes everywhere. Run it with torchrun against a running service::

    torchrun --standalone --nproc-per-node 2 examples/distributed/tensor_parallel.py --url http://127.0.0.1:8000

It needs torch, httpx and numpy (``pip install torch initserve-client``).
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

import httpx
import torch
import torch.distributed as dist
from initserve_client import Client

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def mlp(features: int, hidden: int) -> list[dict[str, Any]]:
    """The layers of ``features → hidden → features`` as /v1/model takes them."""
    return [{"type": "linear", "in_features": features, "out_features": hidden},
            {"type": "linear", "in_features": hidden, "out_features": features}]


def my_shards(rank: int, world: int) -> dict[str, dict[str, int]]:
    """Column-parallel first layer, row-parallel second layer: this rank's part of each."""
    return {"0.weight": {"dim": 0, "index": rank, "count": world},
            "0.bias": {"dim": 0, "index": rank, "count": world},
            "1.weight": {"dim": 1, "index": rank, "count": world}}


def fetch_verified(http: httpx.Client, manifest: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor of ``manifest`` fetched by its canonical URL and checked against its SHA-256."""
    tensors = {}
    for entry in manifest["tensors"]:
        response = http.get(entry["url"])
        response.raise_for_status()
        digest = hashlib.sha256(response.content).hexdigest()
        if digest != entry["sha256"]:
            raise RuntimeError(f"{entry['name']}: SHA-256 {digest} differs from the manifest's {entry['sha256']}")
        flat = torch.frombuffer(bytearray(response.content), dtype=DTYPES[entry["dtype"]])
        tensors[entry["name"]] = flat.reshape(entry["shape"])
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the initserve service (or a cache in front)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dist.init_process_group("gloo")  # torchrun sets RANK, WORLD_SIZE and the rendezvous address
    rank, world = dist.get_rank(), dist.get_world_size()
    layers = mlp(args.features, args.hidden)
    with Client(args.url) as client, httpx.Client(base_url=args.url, timeout=60) as http:
        manifest = client.manifest(layers, seed=args.seed, shards=my_shards(rank, world))
        mine = fetch_verified(http, manifest)
        whole = client.model(layers, seed=args.seed) if rank == 0 else None  # verified against its manifest

    x = torch.randn(8, args.features, generator=torch.Generator().manual_seed(1))
    hidden = torch.relu(x @ mine["0.weight"].T + mine["0.bias"])  # this rank's hidden units
    y = hidden @ mine["1.weight"].T  # partial sums over this rank's hidden units
    dist.all_reduce(y)
    y += mine["1.bias"]

    bias_digest = torch.tensor(list(hashlib.sha256(mine["1.bias"].numpy().tobytes()).digest()), dtype=torch.uint8)
    digests = [torch.empty_like(bias_digest) for _ in range(world)]
    dist.all_gather(digests, bias_digest)
    assert all(torch.equal(d, bias_digest) for d in digests), "ranks hold different replicated tensors"

    if whole is not None:
        weights = {name: torch.from_numpy(array) for name, array in whole.items()}
        expected = torch.relu(x @ weights["0.weight"].T + weights["0.bias"]) @ weights["1.weight"].T + weights["1.bias"]
        torch.testing.assert_close(y, expected)
        print(f"{world} ranks: shards verified against the manifest; tensor-parallel forward equals the whole "
              f"model's (max difference {float((y - expected).abs().max()):.3g})", flush=True)
    for name, tensor in mine.items():
        print(f"rank {rank}: {name} {list(tensor.shape)} sha256 ok", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
