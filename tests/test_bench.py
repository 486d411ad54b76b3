"""The benchmark harness: section-wise report writing, the range benchmark's expected bytes and checks, a smoke run."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ is a top-level package of the repository, not installed
    sys.path.insert(0, str(ROOT))

from bench import ranges, sections
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
