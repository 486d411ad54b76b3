"""The ``initserve-client`` command line.

::

    initserve-client tensor --method xavier_uniform --shape 256,128 --seed 1 -o w.npy
    initserve-client tensor --method kaiming_normal --shape 64,3,3,3 --param nonlinearity=relu
    initserve-client model spec.json -o model.safetensors          # or .npz, .json; --manifest for the table
    initserve-client stats --method he_normal --shape 512,512      # or: stats --model spec.json
    initserve-client methods
    initserve-client gain leaky_relu --negative-slope 0.2
    initserve-client fans --shape 64,3,3,3

Global options (before or after the command): ``--url`` (default ``$INITSERVE_URL`` or
http://127.0.0.1:8000), ``--api-key`` (default ``$INITSERVE_API_KEY``), ``--timeout``, ``--retries``,
``--progress/--no-progress``.

Errors are one line on stderr, ``initserve-client: error: <field>=<value>: <message>``, and exit
status 1; usage errors are argparse's (exit status 2). :func:`main` returns the exit status
instead of raising :class:`SystemExit`, so it can be called in-process.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

import numpy as np

from initserve_client import Client, ModelFormat, TensorFormat
from initserve_client.catalog import DTYPES, LAYOUTS
from initserve_client.errors import APIError, InitserveError, InvalidSpec, TransportError

PROG = "initserve-client"
DEFAULT_URL = "http://127.0.0.1:8000"
TENSOR_FORMATS: dict[str, TensorFormat] = {
    ".npy": "npy",
    ".safetensors": "safetensors",
    ".json": "json",
    ".raw": "raw",
    ".bin": "raw",
}
MODEL_FORMATS: dict[str, ModelFormat] = {".safetensors": "safetensors", ".npz": "npz", ".json": "json"}
MODEL_OPTIONS = ("framework", "scheme", "seed", "dtype", "n_layer")
# spec fields the tensor options set: a --param of that name would be given twice
RESERVED_PARAMS = frozenset({"method", "shape", "dtype", "layout", "seed", "name", "format", "path", "bins", "sample"})


class CommandError(Exception):
    """A failure outside the client (a file, the spec file's content), reported like the client's errors."""

    def __init__(self, field: str, value: object, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.message = message


# --------------------------------------------------------------------------- argument types


def parse_shape(text: str) -> list[int]:
    """``"256,128"`` → ``[256, 128]``; ``""`` is the 0-D shape ``[]``."""
    text = text.strip().strip("[]()")
    if not text:
        return []
    try:
        dims = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: comma-separated integers, e.g. 256,128") from None
    if any(dim < 0 for dim in dims):
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: dimensions must be >= 0")
    return dims


def parse_value(text: str) -> Any:
    """A ``--param`` value: JSON when it parses (``2``, ``true``, ``[[3, 4]]``), else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_param(text: str) -> tuple[str, Any]:
    """``"gain=2"`` → ``("gain", 2)``; ``"nonlinearity=tanh"`` → ``("nonlinearity", "tanh")``."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid parameter {text!r}: expected key=value, e.g. gain=2")
    return key, parse_value(value)


# --------------------------------------------------------------------------- parser


def _global_options(target: argparse.ArgumentParser, *, suppress: bool) -> None:
    """``--url`` and friends; on the sub-commands with SUPPRESS defaults so they may come after the command."""
    parser = target.add_argument_group("connection options (before or after the command)")

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--url", default=default(None), help=f"service base URL (default: $INITSERVE_URL or {DEFAULT_URL})"
    )
    parser.add_argument("--api-key", default=default(None), help="API key (default: $INITSERVE_API_KEY)")
    parser.add_argument("--timeout", type=float, default=default(60.0), help="seconds per request (default: 60)")
    parser.add_argument(
        "--retries", type=int, default=default(3), help="retries on connection errors, 429 and 503 (default: 3)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=default(None),
        help="progress bars for downloads (default: when stderr is a terminal and tqdm is installed)",
    )


def _tensor_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """The spec of one tensor, as ``/v1/tensor`` takes it."""
    parser.add_argument("--method", required=required, help="initialization method, e.g. xavier_uniform (see: methods)")
    parser.add_argument(
        "--shape", type=parse_shape, required=required, help="comma-separated dimensions, e.g. 256,128 ('' for 0-D)"
    )
    parser.add_argument("--dtype", choices=DTYPES, help="element type (default: float32)")
    parser.add_argument(
        "--layout", choices=LAYOUTS, help="torch: [out, in, *kernel] (default); keras/jax: [*kernel, in, out]"
    )
    parser.add_argument("--seed", type=int, help="0 … 2^64-1 (default: 0)")
    parser.add_argument("--name", help="tensor name; keys the random stream with the seed (default: '')")
    parser.add_argument(
        "--param",
        "-p",
        dest="params",
        metavar="KEY=VALUE",
        type=parse_param,
        action="append",
        default=[],
        help="a method parameter, repeatable; the value is JSON when it parses (--param gain=2 "
        "--param nonlinearity=tanh --param zero_rows=[[3,4]])",
    )


def _wrap(text: str) -> str:
    """A description pre-wrapped, for the parsers whose epilog keeps its line breaks (RawDescriptionHelpFormatter)."""
    return textwrap.fill(text, width=min(100, max(40, shutil.get_terminal_size().columns - 2)))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``initserve-client``."""
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, suppress=True)
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Command-line client of initserve: deterministic, seeded neural-network weight tensors.",
        epilog="Run 'initserve-client COMMAND --help' for the options of a command.",
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    tensor = commands.add_parser(
        "tensor",
        parents=[common],
        help="download one tensor (or print its summary)",
        description=_wrap("Generate one tensor. With -o the file's format follows its extension (.npy, .safetensors, "
        ".json, .raw/.bin) unless --format says otherwise; without -o a short summary is printed "
        "(shape, dtype, mean, std, min, max)."),
        epilog="examples:\n"
        "  initserve-client tensor --method xavier_uniform --shape 256,128 --seed 1 -o w.npy\n"
        "  initserve-client tensor --method kaiming_normal --shape 64,3,3,3 --param nonlinearity=relu\n"
        "  initserve-client tensor --method normal --shape 1000,64 --param std=0.02 --name emb -o emb.safetensors",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _tensor_options(tensor, required=True)
    tensor.add_argument("-o", "--output", type=Path, help="write the tensor to this file")
    tensor.add_argument(
        "-f", "--format", choices=sorted(set(TENSOR_FORMATS.values())), help="file format (default: from -o's extension)"
    )

    model = commands.add_parser(
        "model",
        parents=[common],
        help="download every tensor of a model",
        description=_wrap("Generate every tensor of a model. SPEC is a JSON file holding a POST /v1/model request "
        '({"layers": [...], "framework": ..., "scheme": ..., "seed": ..., "dtype": ..., "n_layer": ...}; a bare '
        "list is taken as the layers; '-' reads standard input). With -o the download is verified against the "
        "manifest's SHA-256 digests, its format following the extension (.safetensors, .npz, .json); --manifest "
        "prints each tensor's resolved initialization and digest; otherwise a summary per tensor is printed."),
        epilog="examples:\n"
        "  initserve-client model spec.json -o model.safetensors\n"
        "  initserve-client model spec.json --manifest\n"
        "  initserve-client model spec.json --tensors 0.weight,0.bias -o first.npz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    model.add_argument("spec", metavar="SPEC", help="JSON file with the /v1/model request ('-': standard input)")
    target = model.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", type=Path, help="write the model to this file")
    target.add_argument("--manifest", action="store_true", help="print the manifest table instead")
    model.add_argument(
        "-f", "--format", choices=sorted(set(MODEL_FORMATS.values())), help="file format (default: from -o's extension)"
    )
    model.add_argument("--tensors", help="comma-separated tensor names: only these")
    model.add_argument("--json", action="store_true", help="with --manifest: print the manifest JSON")

    stats = commands.add_parser(
        "stats",
        parents=[common],
        help="statistics of a tensor (or a model) against theory",
        description=_wrap("Empirical statistics of exactly the tensor the service serves, against the method's theory: "
        "one row per tensor with its size n, mean, std against the theory's std, z of the mean, variance ratio, "
        "Kolmogorov-Smirnov p-value and the consistent verdict. Give a tensor spec (the options of 'tensor') or "
        "--model SPEC.json."),
        epilog="examples:\n"
        "  initserve-client stats --method he_normal --shape 512,512\n"
        "  initserve-client stats --model spec.json --bins 10",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _tensor_options(stats, required=False)
    stats.add_argument("--model", metavar="SPEC", help="a /v1/model request JSON file: statistics of every tensor")
    stats.add_argument("--bins", type=int, help="histogram bins (default: 20)")
    stats.add_argument("--sample", type=int, help="largest sample; bigger tensors are subsampled (default: 2^20)")
    stats.add_argument("--json", action="store_true", help="print the report JSON instead of the table")

    methods = commands.add_parser(
        "methods",
        parents=[common],
        help="list the initialization methods",
        description="Every initialization method: name, aliases and parameters (name=default).",
    )
    methods.add_argument("--json", action="store_true", help="print the catalogue JSON (formulas, theory, ...)")

    gain = commands.add_parser(
        "gain",
        parents=[common],
        help="recommended gain of a nonlinearity",
        description="The gain torch.nn.init.calculate_gain gives (and second-moment gains for gelu, silu, elu, "
        "softplus, mish).",
        epilog="example: initserve-client gain leaky_relu --negative-slope 0.2",
    )
    gain.add_argument("nonlinearity", metavar="NONLINEARITY", help="e.g. relu, tanh, leaky_relu, gelu")
    gain.add_argument("--negative-slope", type=float, help="leaky_relu's slope (default: 0.01)")

    fans = commands.add_parser(
        "fans",
        parents=[common],
        help="fan_in, fan_out and receptive field of a shape",
        description="Fans of a shape as the layout's framework computes them.",
        epilog="example: initserve-client fans --shape 64,3,3,3",
    )
    fans.add_argument("--shape", type=parse_shape, required=True, help="comma-separated dimensions, e.g. 64,3,3,3")
    fans.add_argument(
        "--layout", choices=LAYOUTS, default="torch", help="torch: [out, in, *kernel]; keras/jax: [*kernel, in, out]"
    )
    for command in commands.choices.values():
        command.set_defaults(command_parser=command)
    return parser


# --------------------------------------------------------------------------- output helpers


def fmt_number(value: Any, spec: str = ".4g") -> str:
    """A number for a table; ``-`` for a missing one."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Columns padded to their widest cell; the columns in ``right`` are right-aligned (numbers)."""
    body = [list(row) for row in rows]
    widths = [max([len(header), *(len(row[i]) for row in body)]) for i, header in enumerate(headers)]
    flush_right = set(right)

    def line(cells: Sequence[str]) -> str:
        padded = (cell.rjust(w) if i in flush_right else cell.ljust(w) for i, (cell, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in body)])


def display_name(name: str) -> str:
    return name if name else "(unnamed)"


def shape_text(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(dim) for dim in shape) + "]"


def array_summary(array: np.ndarray[Any, Any]) -> dict[str, str]:
    """Shape, dtype, mean, std, min and max of an array (bfloat16 included), as display strings."""
    values = np.asarray(array).astype(np.float64, copy=False)
    empty = values.size == 0
    return {
        "shape": shape_text(array.shape),
        "dtype": str(array.dtype),
        "mean": "-" if empty else fmt_number(float(values.mean()), ".6g"),
        "std": "-" if empty else fmt_number(float(values.std()), ".6g"),
        "min": "-" if empty else fmt_number(float(values.min()), ".6g"),
        "max": "-" if empty else fmt_number(float(values.max()), ".6g"),
    }


def stats_table(report: Mapping[str, Any]) -> str:
    """One aligned row per tensor of a ``/v1/stats`` report, then any failed check."""
    headers = ("name", "law", "n", "mean", "std", "theory std", "z", "var ratio", "KS p", "consistent")
    rows: list[list[str]] = []
    failures: list[str] = []
    for row in report["tensors"]:
        theory = row.get("theory") or {}
        fit = row.get("fit") or {}
        rows.append(
            [
                display_name(row["name"]),
                str(row.get("law", "")),
                str(row["n"]) + ("" if row.get("sample_size", row["n"]) == row["n"] else f" ({row['sample_size']})"),
                fmt_number(row.get("mean")),
                fmt_number(row.get("std")),
                fmt_number(theory.get("std")),
                fmt_number(row.get("z_mean"), ".3g"),
                fmt_number(row.get("variance_ratio"), ".4f"),
                fmt_number(fit.get("p_value"), ".3g"),
                "yes" if row.get("consistent") else "NO",
            ]
        )
        for check in row.get("checks") or []:
            if not check.get("passed", True):
                failures.append(
                    f"{display_name(row['name'])}: check {check.get('name')} failed: "
                    f"{fmt_number(check.get('value'))} > {fmt_number(check.get('limit'))}"
                    + (f" ({check['detail']})" if check.get("detail") else "")
                )
    text = render_table(headers, rows, right=range(2, 9))
    footer = [f"alpha = {report['alpha']} per test"] if "alpha" in report else []
    if any(row.get("sample_size", row["n"]) != row["n"] for row in report["tensors"]):
        footer.append("n (m): summarised by a deterministic subsample of m elements")
    return "\n".join([text, *footer, *failures])


def parameter_text(parameter: Mapping[str, Any]) -> str:
    """``low=0.0``, ``sparsity (required)``, ``mode=fan_in (fan_in|fan_out)``, ``nonlinearity``."""
    name = str(parameter["name"])
    if parameter.get("required"):
        text = f"{name} (required)"
    elif parameter.get("default") is None:
        text = name
    else:
        text = f"{name}={param_value(parameter['default'])}"
    choices = parameter.get("choices") or []
    if 0 < len(choices) <= 4:
        text += " (" + "|".join(str(choice) for choice in choices) + ")"
    return text


def methods_table(methods: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        [
            str(method["name"]),
            ", ".join(method.get("aliases") or []) or "-",
            ", ".join(parameter_text(p) for p in method.get("parameters") or []) or "-",
        ]
        for method in methods
    ]
    return render_table(("name", "aliases", "parameters"), rows)


def param_value(value: Any) -> str:
    """A parameter value as written in a spec: strings bare, numbers short, the rest JSON (``false``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return fmt_number(value, ".6g")
    return _value_text(value)


def manifest_table(manifest: Mapping[str, Any]) -> str:
    rows: list[list[str]] = []
    for tensor in manifest["tensors"]:
        init = tensor.get("init") or {}
        spec = init.get("spec") or {}
        params = spec.get("params") or {}
        rows.append(
            [
                tensor["name"],
                shape_text(tensor["shape"]),
                tensor["dtype"],
                str(spec.get("method", "-")),
                ", ".join(f"{key}={param_value(value)}" for key, value in params.items()) or "-",
                str(init.get("source", "-")),
                str(tensor.get("sha256", "-")),
            ]
        )
    text = render_table(("name", "shape", "dtype", "method", "params", "source", "sha256"), rows)
    extra = [f"framework {manifest['framework']}"] if "framework" in manifest else []
    if "safetensors_length" in manifest:
        extra.append(f"safetensors length {manifest['safetensors_length']} bytes")
    return text + ("\n" + ", ".join(extra) if extra else "")


# --------------------------------------------------------------------------- error messages


def _value_text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)


def error_message(error: BaseException) -> str:
    """The one line after ``initserve-client: error:`` — ``<field>=<value>: <message>`` when a field is known."""
    if isinstance(error, CommandError):
        return f"{error.field}={_value_text(error.value)}: {error.message}"
    if isinstance(error, InvalidSpec):
        return f"{error.field}={_value_text(error.value)}: {error.message}"
    if isinstance(error, APIError):
        detail = str(error.detail or error.title or error)
        field = error.field
        if field is not None and not detail.startswith(f"{field}="):
            detail = f"{field}={_value_text(error.value)}: {detail}"
        elif field is None:
            detail = f"{detail} (HTTP {error.status})"
        return detail
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return str(error) or type(error).__name__


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------- commands


def _tensor_kwargs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The keyword arguments of ``client.tensor``/``download_tensor``/``stats`` besides method and shape."""
    kwargs: dict[str, Any] = {}
    for key in ("dtype", "layout", "seed", "name"):
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = value
    for key, value in args.params:
        if key in RESERVED_PARAMS:
            option = f"--{key}" if key in ("dtype", "layout", "seed", "name", "method", "shape") else "another option"
            parser.error(f"argument --param: {key!r} is not a method parameter (use {option})")
        if key in kwargs:
            parser.error(f"argument --param: {key!r} given twice")
        kwargs[key] = value
    return kwargs


def _read_json(source: str, field: str) -> Any:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(field, source, exc.strerror or str(exc)) from None
    except UnicodeDecodeError as exc:
        raise CommandError(field, source, f"not UTF-8 text: {exc.reason}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(field, source, f"invalid JSON: {exc}") from None


def read_model_spec(source: str, field: str = "spec") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The layers and the other options of a ``/v1/model`` request file (a bare list: the layers)."""
    spec = _read_json(source, field)
    if isinstance(spec, list):
        spec = {"layers": spec}
    if not isinstance(spec, dict):
        raise CommandError(field, source, "expected a JSON object with 'layers' (a /v1/model request)")
    if "layers" not in spec:
        raise CommandError(field, source, "missing 'layers' (a /v1/model request: {\"layers\": [...], ...})")
    unknown = sorted(set(spec) - {"layers", *MODEL_OPTIONS})
    if unknown:
        raise CommandError(
            f"{field}.{unknown[0]}", spec[unknown[0]], f"unknown field of a /v1/model request (known: layers, "
            f"{', '.join(MODEL_OPTIONS)})"
        )
    layers = spec["layers"]
    if not isinstance(layers, list):
        raise CommandError(f"{field}.layers", layers, "expected a list of layers")
    return layers, {key: spec[key] for key in MODEL_OPTIONS if key in spec}


F = TypeVar("F", bound=str)


def _format_for(path: Path, chosen: str | None, formats: Mapping[str, F], parser: argparse.ArgumentParser) -> F:
    """``--format`` if given (argparse checked it), else the format ``path``'s extension names."""
    if chosen is not None:
        return next(fmt for fmt in formats.values() if fmt == chosen)
    found = formats.get(path.suffix.lower())
    if found is None:
        known = ", ".join(formats)
        parser.error(f"argument -o/--output: cannot tell the format of {str(path)!r} from its extension "
                     f"(known: {known}); give --format")
    return found


def _check_output(path: Path) -> None:
    """A missing directory is reported before anything is downloaded."""
    parent = path.parent
    if not parent.is_dir():
        raise CommandError("output", str(path), f"no such directory: {parent}")


def _size_text(path: Path) -> str:
    try:
        return f"{path.stat().st_size:,} bytes"
    except OSError:
        return "?"


def cmd_tensor(client: Client, args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO) -> None:
    kwargs = _tensor_kwargs(args, parser)
    if args.output is None:
        if args.format is not None:
            parser.error("argument -f/--format: needs -o/--output")
        array = client.tensor(args.method, args.shape, **kwargs)
        summary = array_summary(array)
        if args.name:
            summary = {"name": args.name, **summary}
        width = max(len(key) for key in summary)
        for key, value in summary.items():
            print(f"{key.ljust(width)}  {value}", file=out)
        return
    fmt = _format_for(args.output, args.format, TENSOR_FORMATS, parser)
    _check_output(args.output)
    try:
        path = client.download_tensor(args.method, args.shape, args.output, format=fmt, **kwargs)
    except OSError as exc:
        raise CommandError("output", str(args.output), exc.strerror or str(exc)) from None
    print(f"wrote {path} ({fmt}, {_size_text(Path(path))})", file=out)


def cmd_model(client: Client, args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO) -> None:
    if args.json and not args.manifest:
        parser.error("argument --json: needs --manifest")
    if args.format is not None and args.output is None:
        parser.error("argument -f/--format: needs -o/--output")
    fmt = None if args.output is None else _format_for(args.output, args.format, MODEL_FORMATS, parser)
    layers, options = read_model_spec(args.spec)
    if args.tensors:
        options["tensors"] = [name.strip() for name in args.tensors.split(",") if name.strip()]
    if args.manifest:
        manifest = client.manifest(layers, **options)
        print(json.dumps(manifest, indent=2) if args.json else manifest_table(manifest), file=out)
        return
    if args.output is None or fmt is None:
        weights = client.model(layers, verify=True, **options)
        rows = []
        for name, array in weights.items():
            summary = array_summary(array)
            rows.append([name, summary["shape"], summary["dtype"], summary["mean"], summary["std"]])
        print(render_table(("name", "shape", "dtype", "mean", "std"), rows, right=(3, 4)), file=out)
        return
    _check_output(args.output)
    try:
        path = client.download_model(layers, args.output, format=fmt, verify=True, **options)
    except OSError as exc:
        raise CommandError("output", str(args.output), exc.strerror or str(exc)) from None
    print(f"wrote {path} ({fmt}, {_size_text(Path(path))}, SHA-256 verified)", file=out)


def cmd_stats(client: Client, args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO) -> None:
    query: dict[str, Any] = {key: getattr(args, key) for key in ("bins", "sample") if getattr(args, key) is not None}
    if args.model is not None:
        tensor_options = [f"--{key}" for key in ("method", "shape", "dtype", "layout", "seed", "name")
                          if getattr(args, key) is not None] + (["--param"] if args.params else [])
        if tensor_options:
            parser.error(f"argument --model: not allowed with {', '.join(tensor_options)} (put them in the spec)")
        layers, options = read_model_spec(args.model, "model")
        report = client.stats(layers=layers, **options, **query)
    else:
        if args.method is None or args.shape is None:
            parser.error("give --method and --shape (a tensor), or --model SPEC.json")
        report = client.stats(args.method, args.shape, **_tensor_kwargs(args, parser), **query)
    print(json.dumps(report, indent=2) if args.json else stats_table(report), file=out)


def cmd_methods(client: Client, args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO) -> None:
    methods = client.methods()
    print(json.dumps(methods, indent=2) if args.json else methods_table(methods), file=out)


def cmd_gain(client: Client, args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO) -> None:
    print(repr(client.gain(args.nonlinearity, args.negative_slope)), file=out)


def cmd_fans(client: Client, args: argparse.Namespace, parser: argparse.ArgumentParser, out: TextIO) -> None:
    fans = client.fans(args.shape, layout=args.layout)
    for key in ("fan_in", "fan_out", "receptive_field"):
        print(f"{key:<15}  {fans[key]}", file=out)


COMMANDS: dict[str, Callable[[Client, argparse.Namespace, argparse.ArgumentParser, TextIO], None]] = {
    "tensor": cmd_tensor,
    "model": cmd_model,
    "stats": cmd_stats,
    "methods": cmd_methods,
    "gain": cmd_gain,
    "fans": cmd_fans,
}


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail again (see the ``signal`` docs)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``initserve-client`` console script; returns the exit status."""
    parser = build_parser()
    url = DEFAULT_URL
    try:
        args = parser.parse_args(argv)
        command: argparse.ArgumentParser = args.command_parser
        if args.retries < 0:
            command.error("argument --retries: must be >= 0")
        if args.timeout <= 0:
            command.error("argument --timeout: must be > 0")
        url = args.url or os.environ.get("INITSERVE_URL") or DEFAULT_URL
        api_key = args.api_key or os.environ.get("INITSERVE_API_KEY") or None
        with Client(url, api_key=api_key, timeout=args.timeout, retries=args.retries, progress=args.progress) as client:
            COMMANDS[args.command](client, args, command, sys.stdout)
        sys.stdout.flush()  # a closed pipe is reported here, not at interpreter exit
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return _exit_code(exc)
    except BrokenPipeError:  # `initserve-client methods | head`: the reader has seen enough
        _silence_stdout()
        return 1
    except (InitserveError, CommandError, OSError) as exc:
        message = error_message(exc)
        if isinstance(exc, TransportError) and url not in message:
            message = f"url={_value_text(url)}: {message}"
        print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
