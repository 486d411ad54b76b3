"""NumPy ``.npz`` encoder: a streamed, uncompressed ZIP archive of ``.npy`` files.

``np.load`` reads an ``.npz`` file as a ZIP archive whose member ``{name}.npy``
holds the tensor ``name`` (``name`` may contain ``.`` and ``/``). Each member is
exactly what :func:`initserve.formats.npy.encode_npy` produces. Layout per the
PKWARE ZIP File Format Specification (APPNOTE.TXT 6.3.10), all integers
little-endian::

    for each member, in the order given:
        local file header (4.3.7)     PK\\x03\\x04, version 2.0, flags, method 0, time, date,
                                      CRC-32 0, sizes 0, name length, extra length 0, name
        file data                     the .npy bytes, stored (method 0: no compression)
        data descriptor (4.3.9)       PK\\x07\\x08, CRC-32, compressed size, uncompressed size
    central directory (4.3.12)        per member: PK\\x01\\x02, version made by and needed 2.0,
                                      flags, method, time, date, CRC-32, sizes, name length,
                                      extra/comment length 0, disk 0, attributes 0,
                                      offset of the local header, name
    end of central directory (4.3.16) PK\\x05\\x06, disk numbers 0, member counts,
                                      central directory size and offset, comment length 0

General-purpose flag bit 3 (4.4.4) says the CRC-32 and sizes are zero in the
local header and given in the data descriptor after the data; bit 11 says names
are UTF-8. Every size is known before any value is generated, so the body
length is exact; only the CRC-32s are not. Each is computed while its member
streams and written in the data descriptor and the central directory; a byte
range that needs a CRC-32 whose member it did not stream in full computes it by
a pass over that member's bytes, once per body. Modification times are fixed at
1980-01-01 00:00 (the DOS epoch), so equal tensors give identical archives.

There is no ZIP64: an archive of 4 GiB or more or of more than 65535 members is
refused with a :class:`FormatError`, as is bfloat16, which ``.npy`` cannot carry.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from initserve.formats.body import Chunk, DeferredBytes, EncodedBody, Part, TensorPart, assemble, iter_parts
from initserve.formats.errors import FormatError
from initserve.formats.npy import npy_header
from initserve.formats.source import TensorSource, check_names, storage_dtype

MEDIA_TYPE = "application/zip"
SUFFIX = ".npy"
MAX_ARCHIVE_BYTES = 1 << 32  # exclusive: 32-bit offsets and sizes
MAX_MEMBERS = 0xFFFF  # 16-bit member counts
MAX_NAME_BYTES = 0xFFFF  # 16-bit name lengths

VERSION = 20  # 2.0, made by and needed to extract; host 0 (MS-DOS attributes, all zero)
FLAGS = 1 << 3 | 1 << 11  # CRC-32 and sizes in a data descriptor; UTF-8 names
STORED = 0
DOS_TIME = 0  # 00:00:00
DOS_DATE = (1980 - 1980) << 9 | 1 << 5 | 1  # 1980-01-01

LOCAL_SIGNATURE = 0x04034B50
DESCRIPTOR_SIGNATURE = struct.pack("<I", 0x08074B50)
CENTRAL_SIGNATURE = 0x02014B50
END_SIGNATURE = 0x06054B50

LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
SIZES = struct.Struct("<II")
CENTRAL_HEAD = struct.Struct("<IHHHHHH")  # up to the CRC-32
CENTRAL_TAIL = struct.Struct("<IIHHHHHII")  # after the CRC-32
END_OF_CENTRAL_DIRECTORY = struct.Struct("<IHHHHIIH")
CRC_BYTES = 4
MEMBER_OVERHEAD = LOCAL_HEADER.size + len(DESCRIPTOR_SIGNATURE) + CRC_BYTES + SIZES.size
CENTRAL_OVERHEAD = CENTRAL_HEAD.size + CRC_BYTES + CENTRAL_TAIL.size


@dataclass(eq=False)
class _Member:
    """One member's file data (an ``.npy`` file), whose CRC-32 is learnt the first time it streams in full."""

    filename: bytes
    parts: tuple[bytes, TensorPart]
    nbytes: int = field(init=False)
    crc: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.nbytes = len(self.parts[0]) + self.parts[1].nbytes

    def iter_bytes(self, lo: int, hi: int) -> Iterator[Chunk]:
        """Yield bytes ``[lo, hi)`` of the file data, taking the CRC-32 on the way when they are all of it."""
        if self.crc is None and (lo, hi) == (0, self.nbytes):
            return self._checksummed()
        return iter_parts(self.parts, lo, hi)

    def _checksummed(self) -> Iterator[Chunk]:
        crc = 0
        for piece in iter_parts(self.parts, 0, self.nbytes):
            crc = zlib.crc32(piece, crc)
            yield piece
        self.crc = crc

    def crc_field(self) -> bytes:
        """The CRC-32 of the file data, little-endian; a pass over the data if it has not streamed yet."""
        if self.crc is None:
            for _ in self._checksummed():  # the pass sets self.crc
                pass
        return struct.pack("<I", self.crc)


def _refuse(message: str) -> FormatError:
    return FormatError("format", "npz", f"format 'npz' {message}; use format=safetensors")


def _members(sources: Sequence[TensorSource]) -> list[_Member]:
    if len(sources) > MAX_MEMBERS:
        raise _refuse(f"holds at most {MAX_MEMBERS} tensors, got {len(sources)}")
    check_names(sources, "npz")
    members = []
    for source in sources:
        if source.dtype == "bfloat16":
            raise _refuse(f"cannot carry dtype 'bfloat16' (tensor {source.name!r})")
        filename = (source.name + SUFFIX).encode("utf-8")
        if len(filename) > MAX_NAME_BYTES:
            raise FormatError("name", source.name, f"tensor name longer than {MAX_NAME_BYTES - len(SUFFIX)} bytes")
        header = npy_header(source.shape, storage_dtype(source.dtype).str)
        members.append(_Member(filename, (header, TensorPart(source))))
    return members


def _local_size(member: _Member) -> int:
    return MEMBER_OVERHEAD + len(member.filename) + member.nbytes


def _crc(member: _Member) -> DeferredBytes:
    return DeferredBytes(CRC_BYTES, member.crc_field)


def _local_parts(member: _Member) -> list[Part]:
    crc_and_sizes = (0, 0, 0)  # in the data descriptor (flag bit 3)
    header = LOCAL_HEADER.pack(
        LOCAL_SIGNATURE, VERSION, FLAGS, STORED, DOS_TIME, DOS_DATE, *crc_and_sizes, len(member.filename), 0
    )
    sizes = SIZES.pack(member.nbytes, member.nbytes)
    return [header + member.filename, member, DESCRIPTOR_SIGNATURE, _crc(member), sizes]


def _central_parts(member: _Member, offset: int) -> list[Part]:
    head = CENTRAL_HEAD.pack(CENTRAL_SIGNATURE, VERSION, VERSION, FLAGS, STORED, DOS_TIME, DOS_DATE)
    tail = CENTRAL_TAIL.pack(member.nbytes, member.nbytes, len(member.filename), 0, 0, 0, 0, 0, offset)
    return [head, _crc(member), tail + member.filename]


def encode_npz(sources: Sequence[TensorSource]) -> EncodedBody:
    """Encode ``sources`` as one streamed, uncompressed ``.npz`` archive, members in the order given.

    Raises :class:`FormatError`: field ``name`` for an empty, duplicate or
    overlong tensor name; field ``format`` for bfloat16, more than 65535
    tensors or an archive of 4 GiB or more.
    """
    members = _members(sources)
    directory_offset = sum(map(_local_size, members))
    directory_size = sum(CENTRAL_OVERHEAD + len(member.filename) for member in members)
    length = directory_offset + directory_size + END_OF_CENTRAL_DIRECTORY.size
    if length >= MAX_ARCHIVE_BYTES:
        raise _refuse(f"is limited to archives under 4 GiB (no ZIP64), this one would be {length} bytes")
    parts: list[Part] = []
    directory: list[Part] = []
    offset = 0
    for member in members:
        parts.extend(_local_parts(member))
        directory.extend(_central_parts(member, offset))
        offset += _local_size(member)
    count = len(members)
    end = END_OF_CENTRAL_DIRECTORY.pack(END_SIGNATURE, 0, 0, count, count, directory_size, directory_offset, 0)
    return assemble([*parts, *directory, end], MEDIA_TYPE)
