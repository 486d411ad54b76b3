"""The benchmark harness: section-wise report writing, the range benchmark's expected bytes and checks, the load
benchmark's mix and verdicts, smoke runs (the serving benchmark's too)."""

from __future__ import annotations

import asyncio
import io
import json
import random
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a top-level package of the repository, not installed
    sys.path.insert(0, str(ROOT))

from bench import load, ranges, sections
from bench.__main__ import command_line, main

from initserve.core import resolve

TINY = ranges.Sizes((64, 64), (8, 8))


def test_a_new_section_is_added_after_the_others_and_the_preamble_is_created() -> None:
    document = sections.replace("", "generation", "## Generation\n\nnumbers")
    document = sections.replace(document, "ranges", "## Ranges\n\nmore numbers\n")
    assert document == (f"{sections.PREAMBLE}\n\n<!-- bench:generation begin -->\n## Generation\n\nnumbers\n"
                        "<!-- bench:generation end -->\n\n<!-- bench:ranges begin -->\n## Ranges\n\nmore numbers\n"
                        "<!-- bench:ranges end -->\n")


def test_replacing_a_section_keeps_the_others_in_place() -> None:
    document = sections.render({"a": "old a", "b": "b stays", "c": "c stays"})
    replaced = sections.replace(document, "a", "new a")
    assert sections.parse(replaced) == {"a": "new a", "b": "b stays", "c": "c stays"}
    assert list(sections.parse(sections.replace(replaced, "b", "new b"))) == ["a", "b", "c"]


def test_a_begin_marker_without_its_end_is_refused() -> None:
    with pytest.raises(ValueError, match="no end marker"):
        sections.parse("<!-- bench:ranges begin -->\ntruncated")


def test_write_creates_then_replaces(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "benchmarks.md"
    sections.write(path, "ranges", "first")
    sections.write(path, "generation", "kept")
    sections.write(path, "ranges", "second")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(sections.PREAMBLE)
    assert sections.parse(text) == {"ranges": "second", "generation": "kept"}


def test_the_committed_report_is_in_the_written_form() -> None:
    text = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    assert sections.render(sections.parse(text)) == text
    assert "generation" in sections.parse(text)


@pytest.mark.parametrize(("argv", "command"), [
    ([], "make bench"), (["ranges"], "make bench ARGS=ranges"),
    (["generation", "--full"], 'make bench ARGS="generation --full"'),
])
def test_each_section_records_its_command(argv: list[str], command: str) -> None:
    assert command_line(argv) == command


def test_expected_bytes_are_the_tensor_bytes() -> None:
    """Independently of the helper's arithmetic: slices of the whole tensor's raw and .npy encodings."""
    by_label = {case.label: case for case in ranges.cases(TINY)}
    assert len(by_label) == len(ranges.cases(TINY))
    for case in by_label.values():
        full = resolve(case.method, list(case.shape)).region().astype("<f4")
        if case.format == "npy":
            buffer = io.BytesIO()
            np.save(buffer, full)
            body = buffer.getvalue()
        else:
            body = full.tobytes()
        start, stop, length = case.span()
        assert length == len(body)
        assert stop - start == (TINY.range_bytes if case.range else length)
        assert case.expected() == body[start:stop], case.label
    assert any(case.span()[0] % ranges.ITEMSIZE for case in by_label.values())  # one range cuts elements


def test_a_wrong_answer_is_refused() -> None:
    case = ranges.cases(TINY)[0]
    expected = case.expected()
    start, stop, length = case.span()
    good = {"content-range": f"bytes {start}-{stop - 1}/{length}"}
    ranges.check(case, httpx.Response(206, headers=good, content=expected), expected)
    for response in (httpx.Response(200, content=expected),
                     httpx.Response(206, headers=good, content=expected[:-1] + b"\0"),
                     httpx.Response(206, headers={"content-range": f"bytes 0-{stop - start - 1}/{length}"},
                                    content=expected)):
        with pytest.raises(ranges.WrongAnswer):
            ranges.check(case, response, expected)


def test_range_benchmark_smoke(tmp_path: Path) -> None:
    """A --quick run against a live server writes its section next to an existing one."""
    output = tmp_path / "benchmarks.md"
    sections.write(output, "generation", "## Generation throughput\n\nkept")
    assert main(["ranges", "--quick", "--requests", "2", "--output", str(output)]) == 0
    found = sections.parse(output.read_text(encoding="utf-8"))
    assert found["generation"] == "## Generation throughput\n\nkept"
    assert found["ranges"].startswith("## Ranges")
    assert "`make bench ARGS=\"ranges --quick --requests 2 --output" in found["ranges"]
    assert "| normal 16 MiB, last 64 KiB (raw) | `Range: bytes=-65536` → 206" in found["ranges"]


def test_the_load_mix_is_seeded_and_draws_every_kind() -> None:
    def draw(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [kind.build(rng, load.QUICK).describe()
                for kind in rng.choices(load.KINDS, [k.weight for k in load.KINDS], k=300)]

    assert draw(1) == draw(1) != draw(2)
    rng = random.Random(0)
    assert {kind.build(rng, load.FULL).kind for kind in load.KINDS} == {kind.name for kind in load.KINDS}
    large = load.large_stream(random.Random(0), load.FULL)
    assert large.length in {mib * load.MIB for mib in load.FULL.large_mib} and not large.keep_body


def _outcome(request: load.Request, answer: int | Exception, content: bytes = b"",
             headers: dict[str, str] | None = None) -> tuple[str, int, float]:
    """What the load benchmark makes of ``answer`` (a status, with ``content`` and ``headers``, or an error) to
    ``request``: its outcome, the unexpected count, the seconds to wait."""
    def handler(_: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, headers=headers, stream=httpx.ByteStream(content))

    async def perform() -> tuple[load.LoadState, float]:
        state = load.LoadState(0.0, 0.0, 1)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://test") as client:
            wait = await load.perform(client, request, state)
        return state, wait

    state, wait = asyncio.run(perform())
    tally = state.tallies[request.kind]
    (outcome,) = tally.outcomes
    assert len(state.unexpected) == tally.unexpected
    return outcome, tally.unexpected, wait


def test_load_outcomes_expected_and_unexpected() -> None:
    small = load.small_get(random.Random(0), load.QUICK)
    assert small.length is not None
    body = bytes(small.length)
    assert _outcome(small, 200, body) == ("200", 0, 0.0)
    assert _outcome(small, 200, body[:-4]) == ("200 wrong body", 1, 0.0)
    assert _outcome(small, 200, body[:-4], {"content-length": str(len(body))}) == ("200 wrong body", 1, 0.0)
    overloaded = json.dumps({"type": "urn:initserve:problem:overloaded", "status": 503}).encode()
    timeout = json.dumps({"type": "urn:initserve:problem:timeout", "status": 503}).encode()
    assert _outcome(small, 503, overloaded, {"retry-after": "5"}) == ("503 overloaded", 0, load.RETRY_CAP)
    assert _outcome(small, 503, overloaded) == ("503 overloaded without Retry-After", 1, 0.0)
    assert _outcome(small, 503, timeout, {"retry-after": "1"}) == ("503 timeout", 1, 0.0)
    assert _outcome(small, 503, b"busy", {"retry-after": "1"}) == ("503", 1, 0.0)
    large = load.large_stream(random.Random(0), load.QUICK)  # its body is counted, not kept, unless it is an error
    assert _outcome(large, 503, overloaded, {"retry-after": "1"}) == ("503 overloaded", 0, 1.0)
    assert _outcome(small, 500) == ("500", 1, 0.0)
    assert _outcome(small, httpx.ReadError("reset")) == ("connection error (ReadError)", 1, 0.0)
    assert _outcome(small, httpx.ReadTimeout("slow")) == ("timeout", 1, 0.0)

    rng = random.Random(0)
    bad = next(r for r in iter(lambda: load.bad(rng, load.QUICK), None) if r.ok == 422)
    problem = json.dumps({"status": 422}).encode()
    assert _outcome(bad, 422, problem, {"content-type": "application/problem+json"}) == ("422", 0, 0.0)
    assert _outcome(bad, 422, problem, {"content-type": "application/json"}) == ("422 wrong body", 1, 0.0)
    assert _outcome(bad, 503, overloaded, {"retry-after": "1"}) == ("503 overloaded", 1, 0.0)  # refused before work

    ranged = load.byte_range(random.Random(0), load.QUICK)
    data = bytes(load.QUICK.range_bytes)
    assert _outcome(ranged, 206, data, {"content-range": "bytes 0-9/10"}) == ("206 wrong body", 1, 0.0)
    assert _outcome(ranged, 200, data) == ("200", 1, 0.0)


def test_safetensors_layout_is_checked() -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}).encode()
    body = len(header).to_bytes(8, "little") + header + bytes(24)
    assert load.safetensors_problem(body, 1) is None
    assert load.safetensors_problem(body[:-1], 1) is not None
    assert load.safetensors_problem(body, 2) == "1 tensors, expected 2"


def test_load_benchmark_smoke(tmp_path: Path) -> None:
    """A short --quick run against a live server: no unexpected outcome, healthy after, a section written.

    One worker: a second one would double the start-up time (each worker imports numpy, scipy and FastAPI)."""
    output = tmp_path / "benchmarks.md"
    assert main(["load", "--quick", "--duration", "2", "--clients", "4", "--workers", "1",
                 "--output", str(output)]) == 0
    section = sections.parse(output.read_text(encoding="utf-8"))["load"]
    assert section.startswith("## Load")
    assert "`make bench ARGS=\"load --quick --duration 2 --clients 4 --workers 1 --output" in section
    assert "Unexpected outcomes: **0** (target 0)" in section, section
    assert "`/healthz` 200" in section and "bytes match `resolve(...)`" in section
    assert "healthy server after: met" in section, section
    assert "| small GET |" in section and "**peak" in section


def test_serving_benchmark_smoke(tmp_path: Path) -> None:
    """A --quick run: downloads checked against the in-process bytes, small requests on initserve and the floor
    app, a section written."""
    output = tmp_path / "benchmarks.md"
    assert main(["serving", "--quick", "--repeat", "1", "--output", str(output)]) == 0
    section = sections.parse(output.read_text(encoding="utf-8"))["serving"]
    assert section.startswith("## Serving")
    assert "`make bench ARGS=\"serving --quick --repeat 1 --output" in section
    assert "| raw | 16,777,216 |" in section and "| npy | 16,777,344 |" in section
    assert "(limit 300 MB: met)" in section  # a 16 MiB stream, far below it
    assert "| sequential, 1 client | 100 |" in section and "| concurrent, 2 clients | 80 |" in section
