"""Write the app's OpenAPI document: ``python -m initserve.api.openapi_export [PATH]``.

``make openapi`` runs it from the repository root, writing
``openapi/openapi.json`` (sorted keys, indent 2, trailing newline); a test
fails when the committed file and the app drift apart.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fastapi import FastAPI

from initserve.api.app import create_app
from initserve.api.settings import Settings

DEFAULT_PATH = Path("openapi/openapi.json")


def render_openapi(app: FastAPI | None = None) -> str:
    """The OpenAPI document of ``app`` (default: an app with default settings) as stable text."""
    document = (app or create_app(Settings())).openapi()
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Write the document to ``PATH`` (default ``openapi/openapi.json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "path", nargs="?", type=Path, default=DEFAULT_PATH, help=f"output file (default {DEFAULT_PATH})"
    )
    path: Path = parser.parse_args(argv).path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_openapi(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
