"""Crafted files for the tests of untrusted inputs: decompression bombs, small on disk, that unpack to
gigabytes, built in a second without holding what they unpack to."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

MiB = 2**20


def zip_bomb(source: Path, out: Path, mib: int) -> Path:
    """`source` (a torch checkpoint) with `mib` MiB of zeros after its pickle (the unpickler stops before
    them), deflated: a real bomb torch would unpack whole, about 1 KB per MiB on disk (mib < 4096)."""
    with zipfile.ZipFile(source) as src:
        entries = [(i.filename, src.read(i)) for i in src.infolist()]
    name, pickled = next(e for e in entries if e[0].endswith("/data.pkl"))
    c, zeros = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(MiB)
    first = c.compress(pickled) + c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)
    again = c.compress(zeros) + c.flush(zlib.Z_SYNC_FLUSH)  # the window before each repeat holds zeros only
    stream = first + again * (mib - 1) + c.flush()
    crc = zlib.crc32(pickled)
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:  # the deflated bytes stored, then relabelled
        for n, data in entries:
            dst.writestr(n, stream if n == name else data)
    raw = bytearray(out.read_bytes())
    with zipfile.ZipFile(out) as z:
        local = z.getinfo(name).header_offset
    size = len(pickled) + mib * MiB
    struct.pack_into("<H", raw, local + 8, 8)  # local header: method deflate, crc, uncompressed size
    struct.pack_into("<I", raw, local + 14, crc)
    struct.pack_into("<I", raw, local + 22, size)
    central = raw.find(b"PK\x01\x02")
    while central != -1:  # central directory: the same three fields of the same entry
        length = struct.unpack_from("<H", raw, central + 28)[0]
        if raw[central + 46: central + 46 + length] == name.encode():
            struct.pack_into("<H", raw, central + 10, 8)
            struct.pack_into("<I", raw, central + 16, crc)
            struct.pack_into("<I", raw, central + 24, size)
        central = raw.find(b"PK\x01\x02", central + 4)
    out.write_bytes(bytes(raw))
    return out


def png_bomb(path: Path, side: int) -> Path:
    """A valid grey PNG of side x side black pixels: about 1 MB on disk for 13,000 x 13,000."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    c, row = zlib.compressobj(1), bytes(side + 1)  # each row: filter byte 0, then the pixels
    idat = b"".join(c.compress(row) for _ in range(side)) + c.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path
