"""The ``initserve-client`` command line, run in-process (``main([...])``) against a real server."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from initserve.testing import free_port, live_server

from initserve_client.cli import main, parse_param, parse_shape, render_table

initserve_core = pytest.importorskip("initserve.core", reason="the initserve service package (reference values)")
resolve = initserve_core.resolve

MLP: dict[str, Any] = {
    "layers": [
        {"type": "linear", "in_features": 8, "out_features": 16, "nonlinearity": "relu"},
        {"type": "layer_norm", "normalized_shape": [16]},
        {"type": "linear", "in_features": 16, "out_features": 4},
    ],
    "scheme": "he",
    "seed": 3,
}


@pytest.fixture(scope="module")
def cli_server() -> Iterator[str]:
    """``initserve serve`` on a free port, with a small JSON cap."""
    with live_server(env={"INITSERVE_MAX_JSON_ELEMENTS": "100000"}) as url:
        yield url


Run = tuple[int, str, str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli(cli_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``cli("tensor", ...)`` → (exit status, stdout, stderr), against the live server."""
    monkeypatch.delenv("INITSERVE_URL", raising=False)
    monkeypatch.delenv("INITSERVE_API_KEY", raising=False)
    return lambda *argv: run(capsys, "--url", cli_server, *argv)


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(MLP), encoding="utf-8")
    return path


def server_model(url: str, fmt: str = "safetensors") -> httpx.Response:
    response = httpx.post(f"{url}/v1/model", params={"format": fmt}, json=MLP, timeout=60)
    response.raise_for_status()
    return response


# --------------------------------------------------------------------------- tensor


def test_tensor_npy_is_the_served_tensor(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    code, out, err = cli("tensor", "--method", "xavier_uniform", "--shape", "256,128", "--seed", "1", "-o", str(path))
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {path} (npy, ")
    got = np.load(path, allow_pickle=False)
    np.testing.assert_array_equal(got, resolve("xavier_uniform", [256, 128], seed=1).region())
    assert got.dtype == np.float32 and got.shape == (256, 128)


@pytest.mark.parametrize("suffix", [".safetensors", ".json", ".raw", ".bin"])
def test_tensor_formats_follow_the_extension(cli: Any, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"w{suffix}"
    code, _, err = cli("tensor", "--method", "normal", "--shape", "4,6", "--seed", "9", "--name", "emb",
                       "--param", "std=0.02", "--dtype", "float64", "-o", str(path))
    assert (code, err) == (0, "")
    want = resolve("normal", [4, 6], seed=9, name="emb", std=0.02, dtype="float64").region()
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        got = load_file(str(path))["emb"]
    elif suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        assert (document["name"], document["shape"], document["dtype"]) == ("emb", [4, 6], "float64")
        got = np.array(document["data"], dtype=np.float64).reshape(document["shape"])
    else:
        got = np.frombuffer(path.read_bytes(), dtype="<f8").reshape(4, 6)
    np.testing.assert_array_equal(got, want)


def test_format_option_overrides_the_extension(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "weights.data"
    code, out, _ = cli("tensor", "--method", "ones", "--shape", "3", "-o", str(path), "--format", "json")
    assert code == 0 and "(json, " in out
    assert json.loads(path.read_text(encoding="utf-8"))["data"] == [1, 1, 1]


def test_params_are_parsed_as_json_when_possible(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    code, _, err = cli("tensor", "--method", "xavier_normal", "--shape", "32,16", "--param", "gain=2",
                       "-p", "truncated=true", "-o", str(path))
    assert (code, err) == (0, "")
    np.testing.assert_array_equal(np.load(path), resolve("xavier_normal", [32, 16], gain=2, truncated=True).region())
    code, _, err = cli("tensor", "--method", "kaiming_uniform", "--shape", "32,16", "--param", "nonlinearity=tanh",
                       "--param", "mode=fan_out", "-o", str(path))
    assert (code, err) == (0, "")
    np.testing.assert_array_equal(
        np.load(path), resolve("kaiming_uniform", [32, 16], nonlinearity="tanh", mode="fan_out").region()
    )
    code, _, _ = cli("tensor", "--method", "normal", "--shape", "6,2", "--param", "zero_rows=[[1,3]]",
                     "-o", str(path))
    assert code == 0 and not np.load(path)[1:3].any() and np.load(path)[0].all()


def test_tensor_summary_without_output(cli: Any) -> None:
    code, out, err = cli("tensor", "--method", "he_normal", "--shape", "512,512", "--name", "fc.weight")
    assert (code, err) == (0, "")
    want = resolve("he_normal", [512, 512], name="fc.weight").region().astype(np.float64)
    lines = dict(line.split(None, 1) for line in out.splitlines())
    assert lines["name"] == "fc.weight"
    assert lines["shape"] == "[512, 512]" and lines["dtype"] == "float32"
    assert float(lines["mean"]) == pytest.approx(want.mean(), rel=1e-5)
    assert float(lines["std"]) == pytest.approx(want.std(), rel=1e-5)
    assert float(lines["min"]) == pytest.approx(want.min(), rel=1e-5)


def test_zero_size_summary(cli: Any) -> None:
    code, out, _ = cli("tensor", "--method", "normal", "--shape", "0,3")
    assert code == 0 and "shape  [0, 3]" in out and "mean   -" in out


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("suffix", [".safetensors", ".npz", ".json"])
def test_model_download_is_the_served_model(cli: Any, cli_server: str, spec_file: Path, tmp_path: Path,
                                            suffix: str) -> None:
    from safetensors.numpy import load

    want = load(server_model(cli_server).content)
    path = tmp_path / f"model{suffix}"
    code, out, err = cli("model", str(spec_file), "-o", str(path))
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {path} ") and "SHA-256 verified" in out
    if suffix == ".safetensors":
        from safetensors.numpy import load_file

        got = load_file(str(path))
    elif suffix == ".npz":
        with np.load(path) as archive:
            got = {name: archive[name] for name in archive.files}
    else:
        document = json.loads(path.read_text(encoding="utf-8"))
        got = {t["name"]: np.array(t["data"], dtype=t["dtype"]).reshape(t["shape"]) for t in document["tensors"]}
    assert sorted(got) == sorted(want) == ["0.bias", "0.weight", "1.bias", "1.weight", "2.bias", "2.weight"]
    for name, array in want.items():
        np.testing.assert_array_equal(got[name], array)


def test_model_tensors_option(cli: Any, spec_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "part.npz"
    code, _, err = cli("model", str(spec_file), "--tensors", "2.weight,0.bias", "-o", str(path))
    assert (code, err) == (0, "")
    with np.load(path) as archive:
        assert archive.files == ["0.bias", "2.weight"]


def test_model_manifest_table(cli: Any, cli_server: str, spec_file: Path) -> None:
    manifest = server_model(cli_server, "manifest").json()
    code, out, err = cli("model", str(spec_file), "--manifest")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "shape", "dtype", "method", "params", "source", "sha256"]
    assert set(lines[1]) == {"-", " "}
    rows = {line.split()[0]: line for line in lines[2:2 + len(manifest["tensors"])]}
    assert list(rows) == [t["name"] for t in manifest["tensors"]]
    for tensor in manifest["tensors"]:
        assert tensor["sha256"] in rows[tensor["name"]]
        assert tensor["init"]["spec"]["method"] in rows[tensor["name"]]
    assert "kaiming_normal" in rows["0.weight"] and "[16, 8]" in rows["0.weight"]
    code, out, _ = cli("model", str(spec_file), "--manifest", "--json")
    assert code == 0
    printed = json.loads(out)  # the client sends every option explicitly: the header (and offsets) may differ
    assert [(t["name"], t["sha256"], t["init"]) for t in printed["tensors"]] == [
        (t["name"], t["sha256"], t["init"]) for t in manifest["tensors"]
    ]


def test_model_summary_and_bare_layer_list(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "layers.json"
    path.write_text(json.dumps([{"type": "linear", "in_features": 3, "out_features": 2}]), encoding="utf-8")
    code, out, err = cli("model", str(path))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "shape", "dtype", "mean", "std"]
    assert [line.split()[0] for line in lines[2:]] == ["0.weight", "0.bias"]


def test_model_spec_from_stdin(cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(MLP)))
    path = tmp_path / "m.safetensors"
    code, _, err = cli("model", "-", "-o", str(path))
    assert (code, err) == (0, "") and path.stat().st_size > 0


# --------------------------------------------------------------------------- stats, methods, gain, fans


def test_stats_table(cli: Any, cli_server: str) -> None:
    code, out, err = cli("stats", "--method", "he_normal", "--shape", "512,512")
    assert (code, err) == (0, "")
    report = httpx.post(f"{cli_server}/v1/stats", json={"method": "he_normal", "shape": [512, 512]}).json()
    row = report["tensors"][0]
    lines = out.splitlines()
    header = lines[0]
    for column in ("name", "law", "n", "mean", "std", "theory std", "z", "var ratio", "KS p", "consistent"):
        assert column in header
    cells = lines[2].split()
    assert cells[0] == "(unnamed)" and "262144" in cells
    assert f"{row['std']:.4g}" in cells and f"{row['theory']['std']:.4g}" in cells
    assert f"{row['z_mean']:.3g}" in cells and f"{row['variance_ratio']:.4f}" in cells
    assert cells[-1] == ("yes" if row["consistent"] else "NO")
    # aligned: every row as wide as the rule under the header
    assert len(lines[1]) >= len(lines[2].rstrip())
    assert header.index("consistent") == lines[1].rindex(" ") + 1


def test_stats_of_a_model_one_row_per_tensor(cli: Any, spec_file: Path) -> None:
    code, out, err = cli("stats", "--model", str(spec_file), "--bins", "5")
    assert (code, err) == (0, "")
    names = [line.split()[0] for line in out.splitlines()[2:8]]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    code, out, _ = cli("stats", "--model", str(spec_file), "--json", "--bins", "5")
    report = json.loads(out)
    assert code == 0 and len(report["tensors"]) == 6 and len(report["tensors"][0]["histogram"]["counts"]) == 5


def test_stats_params_and_subsampling(cli: Any) -> None:
    code, out, _ = cli("stats", "--method", "uniform", "--shape", "1000", "--param", "low=-1", "--sample", "100",
                       "--name", "u")
    assert code == 0
    row = out.splitlines()[2]
    assert row.startswith("u ") and "U[-1, 1]" in row and "1000 (100)" in row


def test_methods_table(cli: Any) -> None:
    code, out, err = cli("methods")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "aliases", "parameters"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert "glorot_uniform" in rows["xavier_uniform"] and "gain=1," in rows["xavier_uniform"]
    assert "sparsity (required)" in rows["sparse"]
    assert "mode=fan_in (fan_in|fan_out)" in rows["kaiming_normal"]
    code, out, _ = cli("methods", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)] == list(rows) and len(rows) == 18


def test_gain_and_fans(cli: Any) -> None:
    assert cli("gain", "leaky_relu", "--negative-slope", "0.2") == (0, "1.3867504905630728\n", "")
    assert cli("gain", "tanh")[1] == f"{5 / 3!r}\n"
    code, out, err = cli("fans", "--shape", "64,3,3,3")
    assert (code, err) == (0, "")
    assert out.split() == ["fan_in", "27", "fan_out", "576", "receptive_field", "9"]
    assert cli("fans", "--shape", "3,3,64,32", "--layout", "keras")[1].split()[1] == "576"


# --------------------------------------------------------------------------- errors


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("initserve-client: error: ")
    return lines[0].removeprefix("initserve-client: error: ")


def test_unknown_method_is_refused_client_side(capsys: pytest.CaptureFixture[str]) -> None:
    # nothing listens at this URL: only a client-side refusal can answer
    code, out, err = run(capsys, "--url", f"http://127.0.0.1:{free_port()}", "--retries", "0",
                         "tensor", "--method", "nope", "--shape", "2,2")
    assert code == 1 and out == ""
    assert one_error_line(err).startswith('method="nope": ')


def test_server_422_names_the_field(cli: Any, tmp_path: Path) -> None:
    code, out, err = cli("tensor", "--method", "normal", "--shape", "2,2", "--param", "std=-1")
    assert code == 1 and out == ""
    assert one_error_line(err) == "std=-1.0: must be >= 0"
    code, _, err = cli("fans", "--shape", "3")
    assert code == 1 and one_error_line(err).startswith("shape=[3]: fan_in/fan_out need a tensor of at least 2")
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"layers": [{"type": "linear", "in_features": 2, "out_features": 2, "bogus": 1}]}))
    code, _, err = cli("model", str(spec), "-o", str(tmp_path / "m.safetensors"))
    assert code == 1 and one_error_line(err) == "layers.0.bogus=1: unknown field"
    assert not (tmp_path / "m.safetensors").exists()


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "methods", "--url", url, "--retries", "0", "--timeout", "5")
    assert code == 1 and out == ""
    assert url in one_error_line(err)


def test_url_from_the_environment(cli_server: str, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INITSERVE_URL", cli_server)
    assert run(capsys, "gain", "relu") == (0, f"{2 ** 0.5!r}\n", "")
    monkeypatch.setenv("INITSERVE_URL", f"http://127.0.0.1:{free_port()}")
    code, _, err = run(capsys, "--retries", "0", "gain", "relu")
    assert code == 1 and "127.0.0.1" in err


def test_file_errors(cli: Any, tmp_path: Path, spec_file: Path) -> None:
    missing = tmp_path / "missing.json"
    code, _, err = cli("model", str(missing))
    assert code == 1 and one_error_line(err).startswith(f'spec="{missing}": ')
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    code, _, err = cli("stats", "--model", str(broken))
    assert code == 1 and one_error_line(err).startswith(f'model="{broken}": invalid JSON')
    spec = tmp_path / "extra.json"
    spec.write_text(json.dumps({**MLP, "schema": "he"}), encoding="utf-8")
    code, _, err = cli("model", str(spec), "--manifest")
    assert code == 1 and one_error_line(err).startswith('spec.schema="he": unknown field')
    code, _, err = cli("tensor", "--method", "ones", "--shape", "2", "-o", str(tmp_path / "no" / "dir" / "w.npy"))
    assert code == 1 and one_error_line(err).startswith("output=")
    code, _, err = cli("model", str(spec_file), "-o", str(tmp_path / "nowhere" / "m.npz"))
    assert code == 1 and "no such directory" in one_error_line(err)
    (tmp_path / "taken.npy").mkdir()
    code, _, err = cli("tensor", "--method", "ones", "--shape", "2", "-o", str(tmp_path / "taken.npy"))
    assert code == 1 and one_error_line(err) == f'output="{tmp_path / "taken.npy"}": Is a directory'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json", "extra.json", "spec.json", "taken.npy"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["tensor", "--shape", "2"], "the following arguments are required: --method"),
        (["tensor", "--method", "normal", "--shape", "2,x"], "invalid shape"),
        (["tensor", "--method", "normal", "--shape", "2", "--param", "std"], "expected key=value"),
        (["tensor", "--method", "normal", "--shape", "2", "--param", "seed=3"], "use --seed"),
        (["tensor", "--method", "normal", "--shape", "2", "-p", "std=1", "-p", "std=2"], "given twice"),
        (["tensor", "--method", "normal", "--shape", "2", "-o", "w.txt"], "cannot tell the format"),
        (["tensor", "--method", "normal", "--shape", "2", "--dtype", "int8"], "invalid choice"),
        (["model", "spec.json", "-o", "m.npy"], "cannot tell the format"),
        (["model", "spec.json", "-o", "m.npz", "--manifest"], "not allowed with argument"),
        (["stats"], "give --method and --shape"),
        (["stats", "--model", "m.json", "--method", "normal"], "not allowed with --method"),
        (["fans"], "the following arguments are required: --shape"),
        (["nope"], "invalid choice: 'nope'"),
        (["--retries", "-1", "methods"], "must be >= 0"),
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, "--url", f"http://127.0.0.1:{free_port()}", *argv)
    assert code == 2 and out == ""
    assert err.startswith("usage: initserve-client") and message in err


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for word in ("tensor", "model", "stats", "methods", "gain", "fans", "--url", "INITSERVE_URL", "--api-key"):
        assert word in out
    code, out, _ = run(capsys, "tensor", "--help")
    assert code == 0
    for word in ("--method", "--shape", "--dtype", "--layout", "--seed", "--name", "--param", "KEY=VALUE",
                 "--output", ".safetensors", "nonlinearity=tanh", "--url"):
        assert word in out
    for command, words in {"model": ("SPEC", "--manifest", ".npz", "SHA-256"), "stats": ("--model", "--bins"),
                           "gain": ("NONLINEARITY", "--negative-slope"), "fans": ("--shape", "--layout")}.items():
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and all(word in out for word in words), command


def test_console_script(cli_server: str, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("initserve-client")
    if not script.exists():
        found = shutil.which("initserve-client")
        if found is None:
            pytest.skip("the initserve-client console script is not installed")
        script = Path(found)
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: initserve-client")
    path = tmp_path / "w.npy"
    done = subprocess.run([str(script), "--url", cli_server, "tensor", "--method", "eye", "--shape", "3,3",
                           "-o", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    np.testing.assert_array_equal(np.load(path), np.eye(3, dtype=np.float32))
    failed = subprocess.run([str(script), "--url", cli_server, "tensor", "--method", "normal", "--shape", "2",
                             "--param", "std=-1"], capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1 and failed.stderr == "initserve-client: error: std=-1.0: must be >= 0\n"
    usage = subprocess.run([str(script), "tensor"], capture_output=True, text=True, timeout=60, check=False)
    assert usage.returncode == 2


def test_a_closed_pipe_is_not_an_error(cli_server: str) -> None:
    script = Path(sys.executable).with_name("initserve-client")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "initserve_client.cli"]
    process = subprocess.Popen([*command, "--url", cli_server, "methods"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head`: nobody reads what the command prints
    error = process.stderr.read()
    assert process.wait(timeout=60) == 1
    assert error == b""


def test_global_options_reach_the_client(cli_server: str, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from initserve_client import cli as cli_module

    made: list[dict[str, Any]] = []
    real = cli_module.Client

    def recording(url: str, **options: Any) -> Any:
        made.append({"url": url, **options})
        return real(url, **options)

    monkeypatch.setattr(cli_module, "Client", recording)
    monkeypatch.setenv("INITSERVE_URL", cli_server)
    monkeypatch.setenv("INITSERVE_API_KEY", "from-env")
    assert run(capsys, "gain", "relu")[0] == 0
    assert made[-1] == {"url": cli_server, "api_key": "from-env", "timeout": 60.0, "retries": 3, "progress": None}
    assert run(capsys, "fans", "--shape", "2,2", "--api-key", "k", "--timeout", "5", "--retries", "1",
               "--no-progress")[0] == 0
    assert made[-1] == {"url": cli_server, "api_key": "k", "timeout": 5.0, "retries": 1, "progress": False}


# --------------------------------------------------------------------------- helpers


def test_argument_parsers() -> None:
    assert parse_shape("256,128") == [256, 128] and parse_shape("") == [] and parse_shape("[2, 3]") == [2, 3]
    assert parse_param("gain=2") == ("gain", 2) and parse_param("nonlinearity=tanh") == ("nonlinearity", "tanh")
    assert parse_param("zero_rows=[[3,4]]") == ("zero_rows", [[3, 4]]) and parse_param("x=a=b") == ("x", "a=b")
    assert render_table(("a", "bb"), [["xyz", "1"], ["u", "22"]], right=[1]) == "a    bb\n---  --\nxyz   1\nu    22"
