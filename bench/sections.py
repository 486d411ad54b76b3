"""docs/benchmarks.md as independent sections, one per benchmark.

Each benchmark owns the text between ``<!-- bench:NAME begin -->`` and
``<!-- bench:NAME end -->`` and rewrites only that. The document is always the
fixed :data:`PREAMBLE` followed by the sections in the order they first
appeared (a new one goes last); text outside the markers is not kept.
"""

from __future__ import annotations

import re
from pathlib import Path

PREAMBLE = """\
# Benchmarks

Each section below is written by one benchmark and states its own command, date,
machine and versions; running a benchmark rewrites only its own section (between
its `<!-- bench:NAME begin/end -->` markers). `make bench` runs every benchmark;
`make bench ARGS=generation` or `make bench ARGS=ranges` runs one (options:
`.venv/bin/python -m bench --help`)."""

_SECTION = re.compile(r"<!-- bench:([\w-]+) begin -->\n(.*?)\n<!-- bench:\1 end -->", re.DOTALL)


def markers(name: str) -> tuple[str, str]:
    """The begin and end comments that delimit section ``name``."""
    return f"<!-- bench:{name} begin -->", f"<!-- bench:{name} end -->"


def parse(document: str) -> dict[str, str]:
    """The sections of ``document``, name to body (without markers), in document order.

    Raises :class:`ValueError` for a begin marker without its end marker.
    """
    found = {match.group(1): match.group(2) for match in _SECTION.finditer(document)}
    for name in re.findall(r"<!-- bench:([\w-]+) begin -->", document):
        if name not in found:
            raise ValueError(f"section {name!r} has no end marker {markers(name)[1]!r}")
    return found


def render(sections: dict[str, str]) -> str:
    """The whole document: the preamble, then each section between its markers."""
    blocks = [PREAMBLE]
    for name, body in sections.items():
        begin, end = markers(name)
        blocks.append(f"{begin}\n{body.strip()}\n{end}")
    return "\n\n".join(blocks) + "\n"


def replace(document: str, name: str, body: str) -> str:
    """``document`` with section ``name`` set to ``body`` (added last if absent; the others kept)."""
    sections = parse(document)
    sections[name] = body
    return render(sections)


def write(path: Path, name: str, body: str) -> None:
    """Replace section ``name`` of the file at ``path`` (created with the preamble if missing)."""
    document = path.read_text(encoding="utf-8") if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace(document, name, body), encoding="utf-8")
