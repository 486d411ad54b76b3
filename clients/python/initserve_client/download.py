"""Where answer bodies go: memory or a file written atomically, with an optional progress bar.

A *sink* receives one answer body chunk by chunk. The client calls ``begin(total)`` at the start of each
attempt (a retried request starts over: the sink forgets what it had), ``write(chunk)`` per chunk and
``end()`` once the body is complete.

:class:`AtomicFile` writes a download to a temporary file in the target's directory (``.NAME.XXXX.part``)
and renames it over the target only once everything was received and checked; on any error (including
KeyboardInterrupt) the temporary file is removed and the target is left as it was.

Progress bars (tqdm, the extra ``progress``) are drawn on stderr when ``progress`` is true, or when it is
None and stderr is a terminal; without tqdm there is no bar.
"""

from __future__ import annotations

import importlib
import os
import secrets
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self

from initserve_client.errors import IntegrityError
from initserve_client.integrity import RangeHasher


def progress_wanted(progress: bool | None) -> bool:
    """``progress``, or when None whether stderr is a terminal."""
    if progress is not None:
        return progress
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def _tqdm() -> Any:
    try:
        return importlib.import_module("tqdm").tqdm
    except ImportError:
        return None


class Progress:
    """A byte-counting tqdm bar when enabled and tqdm is installed; otherwise does nothing."""

    def __init__(self, enabled: bool, description: str, *, leave: bool = True) -> None:
        self._enabled = enabled
        self._description = description
        self._leave = leave
        self._bar: Any = None

    def start(self, total: int | None) -> None:
        """(Re)start at zero bytes of ``total`` (None: unknown)."""
        self.close()
        tqdm = _tqdm() if self._enabled else None
        if tqdm is not None:
            self._bar = tqdm(total=total, desc=self._description, unit="B", unit_scale=True, unit_divisor=1024,
                             leave=self._leave, file=sys.stderr)

    def update(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class Sink(Protocol):
    """Receives one answer body (see the module docstring)."""

    def begin(self, total: int | None) -> None: ...

    def write(self, chunk: bytes) -> None: ...

    def end(self) -> None: ...


class BufferSink:
    """Collects the body in one writable ``bytearray`` (allocated once when the length is announced)."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.buffer = bytearray()
        self._size = 0
        self._total: int | None = None
        self._progress = progress

    def begin(self, total: int | None) -> None:
        self.buffer = bytearray(total) if total else bytearray()
        self._size = 0
        self._total = total
        if self._progress is not None:
            self._progress.start(total)

    def write(self, chunk: bytes) -> None:
        end = self._size + len(chunk)
        if end <= len(self.buffer):
            self.buffer[self._size : end] = chunk
        else:  # no (or a wrong) Content-Length: grow
            del self.buffer[self._size :]
            self.buffer += chunk
        self._size = end
        if self._progress is not None:
            self._progress.update(len(chunk))

    def end(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._total is not None and self._size != self._total:
            raise IntegrityError(f"received {self._size} bytes, Content-Length announced {self._total}")
        del self.buffer[self._size :]


class AtomicFile:
    """A temporary file beside ``target``, renamed over it by :meth:`commit`, removed otherwise."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        self.temporary = self.target
        self.file: IO[bytes] | None = None

    def __enter__(self) -> Self:
        directory = self.target.parent
        while True:  # open(..., "xb"): a new file, with the usual permissions (unlike mkstemp's 0600)
            self.temporary = directory / f".{self.target.name}.{secrets.token_hex(4)}.part"
            try:
                self.file = open(self.temporary, "xb")  # closed by commit() or __exit__
                return self
            except FileExistsError:
                continue

    def truncate(self) -> None:
        """Start over (a retried download)."""
        assert self.file is not None
        self.file.seek(0)
        self.file.truncate()

    def commit(self) -> Path:
        """Flush, close and rename over the target."""
        assert self.file is not None
        self.file.close()
        os.replace(self.temporary, self.target)
        self.file = None
        return self.target

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.file is not None:  # not committed
            self.file.close()
            self.file = None
            self.temporary.unlink(missing_ok=True)


class FileSink:
    """Writes the body to an :class:`AtomicFile`, hashing safetensors byte ranges on the way when given a
    :class:`RangeHasher`."""

    def __init__(self, file: AtomicFile, hasher: RangeHasher | None = None, progress: Progress | None = None) -> None:
        self._file = file
        self._hasher = hasher
        self._progress = progress
        self._size = 0
        self._total: int | None = None

    def begin(self, total: int | None) -> None:
        self._file.truncate()
        self._size = 0
        self._total = total
        if self._hasher is not None:
            self._hasher.reset()
        if self._progress is not None:
            self._progress.start(total)

    def write(self, chunk: bytes) -> None:
        assert self._file.file is not None
        self._file.file.write(chunk)
        self._size += len(chunk)
        if self._hasher is not None:
            self._hasher.update(chunk)
        if self._progress is not None:
            self._progress.update(len(chunk))

    def end(self) -> None:
        assert self._file.file is not None
        self._file.file.flush()
        if self._progress is not None:
            self._progress.close()
        if self._total is not None and self._size != self._total:
            raise IntegrityError(f"received {self._size} bytes, Content-Length announced {self._total}")
        if self._hasher is not None:
            self._hasher.finish()
