"""NumPy ``.npy`` encoder.

Layout per the NPY format specification (numpy ``numpy/lib/format.py``,
NEP 1 "A simple file format for NumPy arrays")::

    b"\\x93NUMPY" | major | minor | HEADER_LEN | header | data

``HEADER_LEN`` is a little-endian ``uint16`` in version 1.0 and a ``uint32`` in
version 2.0 (used only when the header does not fit 65535 bytes). The header is
the ASCII ``repr`` of a dict with the keys ``'descr'``, ``'fortran_order'`` and
``'shape'``, padded with spaces and terminated by ``\\n`` so that the magic,
version, length field and header together are a multiple of 64 bytes. The data
follows in C (row-major) order, little-endian.

NPY has no bfloat16 type, so a bfloat16 tensor is refused with a
:class:`FormatError` rather than silently widened or carried as ``uint16``.
"""

from __future__ import annotations

import struct

from initserve.formats.body import EncodedBody, TensorPart, assemble
from initserve.formats.errors import FormatError
from initserve.formats.source import TensorSource, storage_dtype

MEDIA_TYPE = "application/octet-stream"
MAGIC = b"\x93NUMPY"
ALIGNMENT = 64


def npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    """The magic string, version, header length and padded header dict for a C-order array."""
    dims = tuple(int(dim) for dim in shape)
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {dims!r}, }}"
    for version, length_format in ((1, "<H"), (2, "<I")):
        prefix_len = len(MAGIC) + 2 + struct.calcsize(length_format)
        unpadded = prefix_len + len(text) + 1  # + the terminating newline
        padded_text = text + " " * (-unpadded % ALIGNMENT) + "\n"
        header_len = len(padded_text)
        if header_len < 1 << (8 * struct.calcsize(length_format)):
            return MAGIC + bytes((version, 0)) + struct.pack(length_format, header_len) + padded_text.encode("latin1")
    raise FormatError("shape", shape, "shape too long for an .npy header")  # pragma: no cover - needs > 4 GiB header


def encode_npy(source: TensorSource) -> EncodedBody:
    """Encode ``source`` as a streamed ``.npy`` file.

    Raises :class:`FormatError` (field ``format``) for bfloat16, which NPY cannot carry.
    """
    if source.dtype == "bfloat16":
        raise FormatError(
            "format",
            "npy",
            "format 'npy' cannot carry dtype 'bfloat16'; use format=safetensors or format=raw",
        )
    descr = storage_dtype(source.dtype).str
    return assemble([npy_header(source.shape, descr), TensorPart(source)], MEDIA_TYPE)
